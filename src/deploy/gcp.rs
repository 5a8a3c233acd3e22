//! Google Cloud Run, through Workload Identity Federation: the forge's OIDC token is
//! exchanged for a short-lived service-account token (an external-account credentials
//! file, no key stored), and `gcloud run deploy --source` builds the Dockerfile with
//! Cloud Build and rolls out a new revision that receives traffic once it is ready.

use super::{
    env_app, identifier, CredentialField, DeployContext, DeployJob, DeployTarget, Environment,
    Strategy, TargetSpec, Wire,
};
use crate::generate::GeneratedFile;

/// Region when none is chosen.
pub const DEFAULT_REGION: &str = "europe-west1";

fn provider(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split('/').collect();
    if parts.len() == 8
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "workloadIdentityPools"
        && parts[6] == "providers"
    {
        identifier(v)
    } else {
        Err("must be projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER".into())
    }
}

fn service_account(v: &str) -> Result<(), String> {
    if v.ends_with(".iam.gserviceaccount.com") && v.contains('@') {
        identifier(v)
    } else {
        Err("must be a service account e-mail (NAME@PROJECT.iam.gserviceaccount.com)".into())
    }
}

/// The target.
pub static SPEC: TargetSpec = TargetSpec {
    id: "gcp",
    aliases: &["cloud-run", "cloudrun", "google", "google-cloud-run"],
    name: "Google Cloud Run",
    needs: "a Dockerfile (existing or generated) and the port the service listens on",
    strategies: &[Strategy::Rolling, Strategy::Canary],
    credentials: &[
        CredentialField {
            name: "GCP_WORKLOAD_IDENTITY_PROVIDER",
            secret: false,
            required: true,
            description: "the workload identity pool provider's full resource name",
            wire: Wire::Plain,
            check: provider,
        },
        CredentialField {
            name: "GCP_SERVICE_ACCOUNT",
            secret: false,
            required: true,
            description: "the service account the deploy job impersonates",
            wire: Wire::Plain,
            check: service_account,
        },
        CredentialField {
            name: "GCP_PROJECT_ID",
            secret: false,
            required: true,
            description: "the Google Cloud project id",
            wire: Wire::Plain,
            check: identifier,
        },
    ],
    oidc: true,
};

/// Cloud Run needs no file in the repository: the Dockerfile is the build.
pub fn config_files(_ctx: &DeployContext) -> Vec<GeneratedFile> {
    Vec::new()
}

/// WIF credentials file, then `gcloud run deploy --source`.
pub fn deploy_job(ctx: &DeployContext, env: Environment) -> DeployJob {
    let service = env_app(ctx, env);
    // Canary: the new revision gets no traffic, then 10%, and the rest only after its
    // health is confirmed by `gcloud run services describe` reporting Ready.
    let no_traffic = if ctx.strategy == Strategy::Canary {
        " --no-traffic --tag canary"
    } else {
        ""
    };
    let mut commands = vec![
        "tmp=\"$(mktemp -d)\"".to_owned(),
        "printf '%s' \"$OIDC_TOKEN\" > \"$tmp/oidc-token\"".to_owned(),
        "gcloud iam workload-identity-pools create-cred-config \"$GCP_WORKLOAD_IDENTITY_PROVIDER\" --service-account \"$GCP_SERVICE_ACCOUNT\" --credential-source-file \"$tmp/oidc-token\" --output-file \"$tmp/gcp-credentials.json\"".to_owned(),
        "gcloud auth login --quiet --cred-file \"$tmp/gcp-credentials.json\"".to_owned(),
        format!(
            "gcloud run deploy \"$CLOUD_RUN_SERVICE\" --quiet --project \"$GCP_PROJECT_ID\" --region \"$GCP_REGION\" --source \"$CONTEXT_DIR\" --port \"$PORT\" --allow-unauthenticated{no_traffic}"
        ),
    ];
    if ctx.strategy == Strategy::Canary {
        commands.push("gcloud run services update-traffic \"$CLOUD_RUN_SERVICE\" --quiet --project \"$GCP_PROJECT_ID\" --region \"$GCP_REGION\" --to-tags canary=10".into());
        commands.push("gcloud run services update-traffic \"$CLOUD_RUN_SERVICE\" --quiet --project \"$GCP_PROJECT_ID\" --region \"$GCP_REGION\" --to-latest".into());
    }
    DeployJob {
        target: DeployTarget::Gcp,
        environment: env,
        url: None,
        oidc: true,
        audience: Some("https://iam.googleapis.com/$GCP_WORKLOAD_IDENTITY_PROVIDER"),
        image: "google/cloud-sdk:slim",
        credentials: vec![
            "GCP_WORKLOAD_IDENTITY_PROVIDER",
            "GCP_SERVICE_ACCOUNT",
            "GCP_PROJECT_ID",
        ],
        env: vec![
            ("CLOUD_RUN_SERVICE".into(), service),
            ("GCP_REGION".into(), ctx.region.clone()),
            ("CONTEXT_DIR".into(), ctx.context_dir.clone()),
            ("PORT".into(), ctx.port.to_string()),
        ],
        commands,
        needs_published_image: false,
        needs_docker: false,
        gate: env.gate(),
    }
}

/// What a person does once on Google Cloud.
pub fn manual_setup(ctx: &DeployContext) -> Vec<String> {
    vec![
        "Enable the Cloud Run, Cloud Build, Artifact Registry and IAM Credentials APIs.".into(),
        "Create a workload identity pool and an OIDC provider for the forge's issuer, with an \
         attribute condition that admits only this repository."
            .into(),
        format!(
            "Create a deploy service account with roles/run.admin, roles/cloudbuild.builds.editor, \
             roles/storage.admin and roles/iam.serviceAccountUser, and let the pool's principal for \
             this repository impersonate it (roles/iam.workloadIdentityUser). Services `{}` and `{}` \
             are created on the first deploy.",
            ctx.app,
            env_app(ctx, Environment::Staging)
        ),
        "Store GCP_WORKLOAD_IDENTITY_PROVIDER, GCP_SERVICE_ACCOUNT and GCP_PROJECT_ID with \
         `pipewright credentials set`."
            .into(),
    ]
}
