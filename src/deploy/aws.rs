//! AWS ECS on Fargate, through OIDC: the job exchanges the forge's short-lived OIDC
//! token for a role session (`sts assume-role-with-web-identity`), so no long-lived AWS
//! key is ever stored. It builds and pushes the image to ECR, registers a new revision
//! of `.aws/task-definition.json` with that image, and waits for the service to be
//! stable (ECS's rolling deployment with its circuit breaker rolls back a failed one).

use super::{
    env_app, identifier, CredentialField, DeployContext, DeployJob, DeployTarget, Environment,
    Strategy, TargetSpec, Wire,
};
use crate::generate::GeneratedFile;

/// Region when none is chosen.
pub const DEFAULT_REGION: &str = "us-east-1";

fn role_arn(v: &str) -> Result<(), String> {
    let ok = v.starts_with("arn:aws")
        && v.split(':')
            .nth(4)
            .is_some_and(|acct| acct.len() == 12 && acct.chars().all(|c| c.is_ascii_digit()))
        && v.split(':').nth(5).is_some_and(|r| r.starts_with("role/"));
    if ok {
        identifier(v)
    } else {
        Err("must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME)".into())
    }
}

/// The target.
pub static SPEC: TargetSpec = TargetSpec {
    id: "aws",
    aliases: &["ecs", "fargate", "aws-ecs"],
    name: "AWS ECS (Fargate)",
    needs: "a Dockerfile (existing or generated), the service's port, an ECS cluster and service",
    strategies: &[Strategy::Rolling],
    credentials: &[
        CredentialField {
            name: "AWS_ROLE_ARN",
            secret: false,
            required: true,
            description: "the IAM role the deploy job assumes through OIDC",
            wire: Wire::Plain,
            check: role_arn,
        },
        CredentialField {
            name: "ECS_CLUSTER",
            secret: false,
            required: true,
            description: "the ECS cluster name",
            wire: Wire::Plain,
            check: identifier,
        },
        CredentialField {
            name: "ECR_REPOSITORY",
            secret: false,
            required: true,
            description: "the ECR repository name the image is pushed to",
            wire: Wire::Plain,
            check: identifier,
        },
    ],
    oidc: true,
};

const TASK_DEFINITION: &str = ".aws/task-definition.json";

/// `.aws/task-definition.json` (the container's image is filled in at deploy time).
pub fn config_files(ctx: &DeployContext) -> Vec<GeneratedFile> {
    let health = match &ctx.health_path {
        Some(p) => format!(
            ",\n      \"healthCheck\": {{\n        \"command\": [\"CMD-SHELL\", \"wget -qO- http://127.0.0.1:{}{} >/dev/null || exit 1\"],\n        \"interval\": 15,\n        \"timeout\": 5,\n        \"retries\": 3,\n        \"startPeriod\": 20\n      }}",
            ctx.port, p
        ),
        None => String::new(),
    };
    let json = format!(
        "{{\n  \"family\": \"{app}\",\n  \"requiresCompatibilities\": [\"FARGATE\"],\n  \
         \"networkMode\": \"awsvpc\",\n  \"cpu\": \"256\",\n  \"memory\": \"512\",\n  \
         \"executionRoleArn\": \"ecsTaskExecutionRole\",\n  \"containerDefinitions\": [\n    {{\n      \
         \"name\": \"app\",\n      \"image\": \"@IMAGE@\",\n      \"essential\": true,\n      \
         \"portMappings\": [{{ \"containerPort\": {port}, \"protocol\": \"tcp\" }}],\n      \
         \"environment\": [{{ \"name\": \"PORT\", \"value\": \"{port}\" }}],\n      \
         \"logConfiguration\": {{\n        \"logDriver\": \"awslogs\",\n        \"options\": {{\n          \
         \"awslogs-group\": \"/ecs/{app}\",\n          \"awslogs-region\": \"{region}\",\n          \
         \"awslogs-stream-prefix\": \"app\",\n          \"awslogs-create-group\": \"true\"\n        }}\n      }}{health}\n    }}\n  ]\n}}\n",
        app = ctx.app,
        port = ctx.port,
        region = ctx.region,
    );
    vec![GeneratedFile {
        path: TASK_DEFINITION.into(),
        content: json,
    }]
}

/// Build, push, register, update, wait — for one environment's service.
pub fn deploy_job(ctx: &DeployContext, env: Environment) -> DeployJob {
    let service = env_app(ctx, env);
    DeployJob {
        target: DeployTarget::Aws,
        environment: env,
        url: None,
        oidc: true,
        audience: Some("sts.amazonaws.com"),
        image: "docker:27-cli",
        credentials: vec!["AWS_ROLE_ARN", "ECS_CLUSTER", "ECR_REPOSITORY"],
        env: vec![
            ("AWS_REGION".into(), ctx.region.clone()),
            ("ECS_SERVICE".into(), service),
            ("TASK_DEFINITION".into(), TASK_DEFINITION.into()),
            ("DOCKERFILE".into(), ctx.dockerfile.clone()),
            ("CONTEXT_DIR".into(), ctx.context_dir.clone()),
        ],
        commands: vec![
            "command -v aws >/dev/null || { (apk add --no-cache aws-cli >/dev/null 2>&1) || (apt-get update -qq && apt-get install -y -qq awscli >/dev/null); }".into(),
            // OIDC: the renderer puts the forge's token in OIDC_TOKEN; exchange it.
            "creds=\"$(aws sts assume-role-with-web-identity --role-arn \"$AWS_ROLE_ARN\" --role-session-name \"pipewright-$IMAGE_TAG\" --web-identity-token \"$OIDC_TOKEN\" --duration-seconds 3600 --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)\"".into(),
            "AWS_ACCESS_KEY_ID=\"$(printf '%s' \"$creds\" | cut -f1)\"; AWS_SECRET_ACCESS_KEY=\"$(printf '%s' \"$creds\" | cut -f2)\"; AWS_SESSION_TOKEN=\"$(printf '%s' \"$creds\" | cut -f3)\"; export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN".into(),
            "registry=\"$(aws sts get-caller-identity --query Account --output text).dkr.ecr.$AWS_REGION.amazonaws.com\"".into(),
            "aws ecr get-login-password | docker login --username AWS --password-stdin \"$registry\"".into(),
            "image=\"$registry/$ECR_REPOSITORY:$IMAGE_TAG\"".into(),
            "docker build --file \"$DOCKERFILE\" --tag \"$image\" \"$CONTEXT_DIR\"".into(),
            "docker push \"$image\"".into(),
            "sed \"s|@IMAGE@|$image|\" \"$TASK_DEFINITION\" > task-definition.rendered.json".into(),
            "revision=\"$(aws ecs register-task-definition --cli-input-json file://task-definition.rendered.json --query taskDefinition.taskDefinitionArn --output text)\"".into(),
            "aws ecs update-service --cluster \"$ECS_CLUSTER\" --service \"$ECS_SERVICE\" --task-definition \"$revision\" >/dev/null".into(),
            "aws ecs wait services-stable --cluster \"$ECS_CLUSTER\" --services \"$ECS_SERVICE\"".into(),
        ],
        needs_published_image: false,
        needs_docker: true,
        gate: env.gate(),
    }
}

/// The role's trust policy for a forge's OIDC issuer (shown in the PR body).
pub fn trust_policy(forge: crate::forge::Forge, repo: &str) -> String {
    let (issuer, aud, sub) = match forge {
        crate::forge::Forge::Github => (
            "token.actions.githubusercontent.com",
            "sts.amazonaws.com",
            format!("repo:{repo}:environment:*"),
        ),
        crate::forge::Forge::Gitlab => (
            "gitlab.com",
            "sts.amazonaws.com",
            format!("project_path:{repo}:ref_type:*:ref:*"),
        ),
        crate::forge::Forge::Bitbucket => (
            "api.bitbucket.org/2.0/workspaces/WORKSPACE/pipelines-config/identity/oidc",
            "ari:cloud:bitbucket::workspace/WORKSPACE_UUID",
            "{REPOSITORY_UUID}:*".to_owned(),
        ),
    };
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{{\n    \"Effect\": \"Allow\",\n    \
         \"Principal\": {{ \"Federated\": \"arn:aws:iam::ACCOUNT_ID:oidc-provider/{issuer}\" }},\n    \
         \"Action\": \"sts:AssumeRoleWithWebIdentity\",\n    \"Condition\": {{\n      \
         \"StringEquals\": {{ \"{issuer}:aud\": \"{aud}\" }},\n      \
         \"StringLike\": {{ \"{issuer}:sub\": \"{sub}\" }}\n    }}\n  }}]\n}}"
    )
}

/// What a person does once on AWS.
pub fn manual_setup(ctx: &DeployContext) -> Vec<String> {
    vec![
        "Add the forge's OIDC identity provider to IAM (once per account).".into(),
        "Create the deploy role with the trust policy below, allowing ecr:GetAuthorizationToken, \
         ecr push to the repository, ecs:RegisterTaskDefinition, ecs:UpdateService, \
         ecs:DescribeServices and iam:PassRole on ecsTaskExecutionRole."
            .into(),
        format!(
            "Create the ECR repository, the ECS cluster, and two Fargate services `{}` and `{}` \
             (with the deployment circuit breaker and rollback on).",
            ctx.app,
            env_app(ctx, Environment::Staging)
        ),
        "Store AWS_ROLE_ARN, ECS_CLUSTER and ECR_REPOSITORY with `pipewright credentials set`."
            .into(),
    ]
}
