//! Continuous delivery: the registry of deploy targets. Each target is one module that
//! says what it needs from the analysis, which config files it writes (`fly.toml`, …),
//! the credentials it needs (a typed schema: names, which are secret, how each is
//! checked) and the deploy commands its job runs, plus the one-time setup a person must
//! still do on the platform.
//!
//! Pure like `generate/`: an [`Analysis`] and a [`DeploySettings`] go in, data comes
//! out. No forge, database, environment or clock. Credentials values never pass through
//! here; only their names do.
//!
//! Adding a target: a module beside `fly.rs` with a `SPEC`, a line in [`TARGETS`], its
//! config-file and command tests, the README table, and `validate-ci-files` over its
//! workflows in `.ci/run` (the loop covers every id in [`TARGETS`]).

pub mod aws;
pub mod azure;
pub mod container;
pub mod digitalocean;
pub mod fly;
pub mod gcp;
pub mod ssh;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::analyze::{Analysis, Framework, Project};
use crate::generate::GeneratedFile;

/// The deploy targets pipewright can set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployTarget {
    /// Fly.io (`fly.toml`, `flyctl deploy`).
    Fly,
    /// AWS ECS on Fargate, through OIDC role assumption.
    Aws,
    /// Google Cloud Run, through Workload Identity Federation.
    Gcp,
    /// Azure Container Apps, through OIDC (federated credentials).
    Azure,
    /// DigitalOcean App Platform.
    Digitalocean,
    /// A host running Docker Compose, over SSH, with health check and rollback.
    Ssh,
}

/// Every target, in the order of the README and `help`.
pub const TARGETS: [DeployTarget; 6] = [
    DeployTarget::Fly,
    DeployTarget::Aws,
    DeployTarget::Gcp,
    DeployTarget::Azure,
    DeployTarget::Digitalocean,
    DeployTarget::Ssh,
];

impl DeployTarget {
    /// The id used in commands, `.pipewright.yml`, credentials and the database.
    pub fn as_str(self) -> &'static str {
        self.spec().id
    }

    /// The target's description.
    pub fn spec(self) -> &'static TargetSpec {
        match self {
            DeployTarget::Fly => &fly::SPEC,
            DeployTarget::Aws => &aws::SPEC,
            DeployTarget::Gcp => &gcp::SPEC,
            DeployTarget::Azure => &azure::SPEC,
            DeployTarget::Digitalocean => &digitalocean::SPEC,
            DeployTarget::Ssh => &ssh::SPEC,
        }
    }

    /// The config files this target adds to the repository.
    pub fn config_files(self, ctx: &DeployContext) -> Vec<GeneratedFile> {
        match self {
            DeployTarget::Fly => fly::config_files(ctx),
            DeployTarget::Aws => aws::config_files(ctx),
            DeployTarget::Gcp => gcp::config_files(ctx),
            DeployTarget::Azure => azure::config_files(ctx),
            DeployTarget::Digitalocean => digitalocean::config_files(ctx),
            DeployTarget::Ssh => ssh::config_files(ctx),
        }
    }

    /// What its deploy job runs for one environment (provider-neutral).
    pub fn deploy_job(self, ctx: &DeployContext, env: Environment) -> DeployJob {
        match self {
            DeployTarget::Fly => fly::deploy_job(ctx, env),
            DeployTarget::Aws => aws::deploy_job(ctx, env),
            DeployTarget::Gcp => gcp::deploy_job(ctx, env),
            DeployTarget::Azure => azure::deploy_job(ctx, env),
            DeployTarget::Digitalocean => digitalocean::deploy_job(ctx, env),
            DeployTarget::Ssh => ssh::deploy_job(ctx, env),
        }
    }

    /// The one-time setup a person must do on the platform, in order (shown in the PR).
    pub fn manual_setup(self, ctx: &DeployContext) -> Vec<String> {
        match self {
            DeployTarget::Fly => fly::manual_setup(ctx),
            DeployTarget::Aws => aws::manual_setup(ctx),
            DeployTarget::Gcp => gcp::manual_setup(ctx),
            DeployTarget::Azure => azure::manual_setup(ctx),
            DeployTarget::Digitalocean => digitalocean::manual_setup(ctx),
            DeployTarget::Ssh => ssh::manual_setup(ctx),
        }
    }
}

impl fmt::Display for DeployTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeployTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        TARGETS
            .into_iter()
            .find(|t| t.spec().id == lower || t.spec().aliases.contains(&lower.as_str()))
            .ok_or_else(|| {
                format!(
                    "unknown deploy target `{}` (one of: {})",
                    s.chars().take(40).collect::<String>(),
                    TARGETS.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

impl<'de> serde::Deserialize<'de> for DeployTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What describes a target: its ids, what it needs, its credential schema.
#[derive(Debug)]
pub struct TargetSpec {
    /// Id (`fly`).
    pub id: &'static str,
    /// Other accepted names (`flyio`, `cloud-run`).
    pub aliases: &'static [&'static str],
    /// Display name.
    pub name: &'static str,
    /// What it needs from the analysis, in words (PR body, `help`).
    pub needs: &'static str,
    /// The strategies it supports; the first is its default.
    pub strategies: &'static [Strategy],
    /// The credentials (secrets and variables) its deploy job reads.
    pub credentials: &'static [CredentialField],
    /// Uses short-lived OIDC tokens (`id-token: write` on GitHub, `id_tokens` on GitLab,
    /// `oidc: true` on Bitbucket) instead of a stored long-lived key.
    pub oidc: bool,
}

/// How a credential value is handed to the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// As stored.
    Plain,
    /// Base64 of the stored value: multi-line values (an SSH key) become one line, which
    /// GitLab can mask; the deploy job decodes it.
    Base64,
}

/// One named value a target's deploy job reads.
#[derive(Debug)]
pub struct CredentialField {
    /// Its name, also the forge secret's or variable's name (`FLY_API_TOKEN`).
    pub name: &'static str,
    /// A secret (masked, never shown) or an identifier (an ARN, a region).
    pub secret: bool,
    /// The deploy cannot run without it.
    pub required: bool,
    /// What it is and where to get it.
    pub description: &'static str,
    /// How it is written to the forge.
    pub wire: Wire,
    /// Checks a value; the error names what is wrong, never the value.
    pub check: fn(&str) -> Result<(), String>,
}

impl TargetSpec {
    /// The field called `name`, if this target has one.
    pub fn field(&self, name: &str) -> Option<&'static CredentialField> {
        self.credentials.iter().find(|f| f.name == name)
    }

    /// The field set when no name is given: the only secret one, if exactly one.
    pub fn default_field(&self) -> Option<&'static CredentialField> {
        let mut secret = self.credentials.iter().filter(|f| f.secret);
        match (secret.next(), secret.next()) {
            (Some(f), None) => Some(f),
            _ => None,
        }
    }
}

/// Deploy strategies (Fly's words; other targets map them to their own mechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Replace machines/instances a few at a time.
    Rolling,
    /// Start a full new set beside the old, switch when healthy.
    Bluegreen,
    /// One new instance first, then the rest.
    Canary,
    /// Replace everything at once (no health gate).
    Immediate,
}

impl Strategy {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::Bluegreen => "bluegreen",
            Strategy::Canary => "canary",
            Strategy::Immediate => "immediate",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rolling" => Ok(Strategy::Rolling),
            "bluegreen" | "blue-green" => Ok(Strategy::Bluegreen),
            "canary" => Ok(Strategy::Canary),
            "immediate" => Ok(Strategy::Immediate),
            _ => Err("unknown strategy (rolling, bluegreen, canary or immediate)".into()),
        }
    }
}

/// Deploy environments.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Deployed on every push to the default branch.
    Staging,
    /// Deployed from version tags (`v*`), behind an approval.
    Production,
}

impl Environment {
    /// The word, also the forge environment's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Both, staging first.
    pub const ALL: [Environment; 2] = [Environment::Staging, Environment::Production];
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err("unknown environment (staging or production)".into()),
        }
    }
}

/// Choices for one target (from `.pipewright.yml`, a command, or `--deploy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploySettings {
    /// The target.
    pub target: DeployTarget,
    /// Environments to deploy (default: both).
    pub environments: Vec<Environment>,
    /// Strategy (default: the target's first).
    pub strategy: Option<Strategy>,
    /// Region (default: the target's).
    pub region: Option<String>,
    /// Health path to probe (default: from the framework, else none).
    pub health_path: Option<String>,
}

impl DeploySettings {
    /// Defaults for `target`: staging and production, the default strategy and region.
    pub fn new(target: DeployTarget) -> Self {
        DeploySettings {
            target,
            environments: Environment::ALL.to_vec(),
            strategy: None,
            region: None,
            health_path: None,
        }
    }
}

/// Everything a target module needs, decided once from the analysis and settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployContext {
    /// App name on the platform: the repository's name as a DNS label.
    pub app: String,
    /// The port the service listens on inside its container.
    pub port: u16,
    /// Whether `port` comes from the stack (false: the `PORT` convention's 8080).
    pub port_known: bool,
    /// HTTP path that answers 200 when the service is healthy, if known.
    pub health_path: Option<String>,
    /// Region (the target's default when not chosen).
    pub region: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Environments to deploy.
    pub environments: Vec<Environment>,
    /// The Dockerfile the image is built from (repository path).
    pub dockerfile: String,
    /// The build context directory of that Dockerfile.
    pub context_dir: String,
}

/// Why a target cannot be set up for a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// No service and no Dockerfile: nothing to deploy.
    #[error(
        "nothing to deploy: no Dockerfile, and no project with a web framework pipewright \
         can containerise"
    )]
    NothingToDeploy,
    /// A service pipewright cannot containerise yet (and no Dockerfile).
    #[error("{0}")]
    NoContainer(String),
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// What starts a deploy job. Deploys never run for pull requests, and never from forks
/// (a fork's pushes do not reach the upstream's default branch or tags; renderers also
/// guard on the repository where the forge allows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployTrigger {
    /// Pushes to the default branch (staging).
    DefaultBranch,
    /// Version tags `v*` (production).
    VersionTags,
}

/// The plan-level decisions of a deploy job that do not depend on the target: when it
/// runs, whether a person approves it, and how deploys of one environment queue.
/// Renderers map them: GitHub `environment:` + `concurrency:` + `permissions: id-token:
/// write` (this job only); GitLab `environment:` + `when: manual` (production) +
/// `resource_group:` + `id_tokens:`; Bitbucket `deployment:` + `trigger: manual` +
/// `oidc: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployGate {
    /// When it runs.
    pub trigger: DeployTrigger,
    /// Waits for a person's approval (production).
    pub approval: bool,
    /// One deploy per environment at a time: the group's name.
    pub concurrency_group: String,
    /// Never cancel a deploy that has started (a half-done deploy is worse than a late one).
    pub cancel_in_progress: bool,
}

impl Environment {
    /// When this environment deploys, and how.
    pub fn gate(self) -> DeployGate {
        DeployGate {
            trigger: match self {
                Environment::Staging => DeployTrigger::DefaultBranch,
                Environment::Production => DeployTrigger::VersionTags,
            },
            approval: self == Environment::Production,
            concurrency_group: format!("deploy-{}", self.as_str()),
            cancel_in_progress: false,
        }
    }
}

/// The deploy job of one target and environment, provider-neutral: renderers (and the
/// plan) lay it out per forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployJob {
    /// The target.
    pub target: DeployTarget,
    /// The environment.
    pub environment: Environment,
    /// A public URL of the deployed app, when the platform makes one predictable.
    pub url: Option<String>,
    /// Short-lived OIDC token needed (only this job gets `id-token: write`).
    pub oidc: bool,
    /// The audience the OIDC token is minted for (the cloud's token exchange checks it);
    /// may name a variable of the job (`$GCP_WORKLOAD_IDENTITY_PROVIDER`).
    pub audience: Option<&'static str>,
    /// Container image for container-based CI (GitLab, Bitbucket).
    pub image: &'static str,
    /// Credential names the job reads, as environment variables of the same names.
    pub credentials: Vec<&'static str>,
    /// Non-secret environment for the commands.
    pub env: Vec<(String, String)>,
    /// Shell commands, in order, run as one script; they read only the variables above,
    /// `IMAGE_TAG` (the commit SHA) and, for OIDC targets, `OIDC_TOKEN` (the forge's
    /// token: GitHub's from `ACTIONS_ID_TOKEN_REQUEST_URL`, GitLab's `id_tokens`,
    /// Bitbucket's `BITBUCKET_STEP_OIDC_TOKEN`).
    pub commands: Vec<String>,
    /// Runs the image the forge's registry published for this commit (`IMAGE`): the
    /// plan adds the image-publish job before it. Other targets build on the platform.
    pub needs_published_image: bool,
    /// Needs a Docker daemon (builds and pushes to the cloud's registry itself).
    pub needs_docker: bool,
    /// When it runs and how it queues.
    pub gate: DeployGate,
}

/// Web frameworks that make a project a long-running service, with the port their
/// standard production server listens on and a health path when the framework has one.
/// Ordered: the first framework of a project that is listed wins.
const SERVICE_FRAMEWORKS: &[(Framework, Option<u16>, Option<&str>)] = &[
    (Framework::Next, Some(3000), None),
    (Framework::Nestjs, Some(3000), None),
    (Framework::Express, Some(3000), None),
    (Framework::Fastify, Some(3000), None),
    (Framework::Remix, Some(3000), None),
    (Framework::Nuxt, Some(3000), None),
    (Framework::SvelteKit, Some(3000), None),
    (Framework::Django, Some(8000), None),
    (Framework::Fastapi, Some(8000), None),
    (Framework::Flask, Some(8000), None),
    // Rails 7.1+ generates GET /up for load balancers.
    (Framework::Rails, Some(3000), Some("/up")),
    (Framework::Sinatra, Some(4567), None),
    (Framework::Laravel, Some(8080), None),
    (Framework::Symfony, Some(8080), None),
    (Framework::SpringBoot, Some(8080), None),
    (Framework::Phoenix, Some(4000), None),
    // These listen where the program says: the `PORT` convention, not known here.
    (Framework::Axum, None, None),
    (Framework::ActixWeb, None, None),
    (Framework::Rocket, Some(8000), None),
    (Framework::Warp, None, None),
    (Framework::Leptos, Some(3000), None),
    (Framework::Gin, Some(8080), None),
    (Framework::Echo, None, None),
    (Framework::Fiber, None, None),
    (Framework::Chi, None, None),
];

/// Port assumed when the stack does not say: the `PORT` convention most platforms use.
pub const DEFAULT_PORT: u16 = 8080;

/// The service framework of a project, with its port and health path, if it is one.
pub fn service_of(project: &Project) -> Option<(Framework, Option<u16>, Option<&'static str>)> {
    SERVICE_FRAMEWORKS
        .iter()
        .find(|(f, _, _)| project.frameworks.contains(f))
        .copied()
}

/// The project to deploy: the first (root first) that is a service.
pub fn service_project(analysis: &Analysis) -> Option<&Project> {
    analysis.projects.iter().find(|p| service_of(p).is_some())
}

/// Makes a DNS label from a repository name: lowercase letters, digits and `-`, at most
/// 30 characters, starting with a letter (Fly, Cloud Run and Container Apps all accept it).
pub fn app_name(repo_name: &str) -> String {
    let base = repo_name.rsplit('/').next().unwrap_or(repo_name);
    let mut out = String::new();
    for c in base.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(30).collect();
    out = out.trim_end_matches('-').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out = format!("app-{out}")
            .trim_end_matches('-')
            .chars()
            .take(30)
            .collect();
    }
    out
}

/// A health path must be an absolute URL path of safe characters (it lands in configs
/// and shell commands).
pub fn check_health_path(path: &str) -> Result<(), String> {
    if path.starts_with('/')
        && path.len() <= 200
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
    {
        Ok(())
    } else {
        Err("a health path is `/` followed by letters, digits, `/`, `-`, `_`, `.` or `~`".into())
    }
}

/// A region id: lowercase letters, digits and `-` (every platform's region ids are).
pub fn check_region(region: &str) -> Result<(), String> {
    if !region.is_empty()
        && region.len() <= 40
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Ok(())
    } else {
        Err("a region is lowercase letters, digits and `-` (e.g. `fra`, `eu-west-1`)".into())
    }
}

/// Builds the context for `settings` from the analysis. `repo_name` names the app.
/// `dockerfile` is the repository's own Dockerfile when it has one; otherwise the one
/// [`container`] generates is used, which needs a service project.
pub fn context(
    analysis: &Analysis,
    repo_name: &str,
    settings: &DeploySettings,
) -> Result<DeployContext, DeployError> {
    let spec = settings.target.spec();
    let strategy = settings.strategy.unwrap_or(spec.strategies[0]);
    if !spec.strategies.contains(&strategy) {
        return Err(DeployError::Invalid(format!(
            "{} supports the strategies {}",
            spec.name,
            spec.strategies
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(r) = &settings.region {
        check_region(r).map_err(DeployError::Invalid)?;
    }
    if let Some(h) = &settings.health_path {
        check_health_path(h).map_err(DeployError::Invalid)?;
    }
    let service = service_project(analysis);
    let (dockerfile, context_dir) = match analysis.dockerfiles.first() {
        Some(existing) => {
            let dir = match existing.rsplit_once('/') {
                Some((d, _)) => d.to_owned(),
                None => ".".to_owned(),
            };
            (existing.clone(), dir)
        }
        None => match service {
            Some(p) => (container::dockerfile_path(p), p.path.clone()),
            None => return Err(DeployError::NothingToDeploy),
        },
    };
    let (port, port_known, framework_health) = match service.and_then(service_of) {
        Some((_, Some(port), health)) => (port, true, health),
        Some((_, None, health)) => (DEFAULT_PORT, false, health),
        None => (DEFAULT_PORT, false, None),
    };
    let health_path = settings
        .health_path
        .clone()
        .or(framework_health.map(str::to_owned));
    // Fly's bluegreen and canary deploys wait on health checks; without a known health
    // path there is nothing to wait on.
    if settings.target == DeployTarget::Fly
        && matches!(strategy, Strategy::Bluegreen | Strategy::Canary)
        && health_path.is_none()
    {
        return Err(DeployError::Invalid(format!(
            "the {} strategy needs a health path: set `health-path` in the deploy section of \
             .pipewright.yml",
            strategy.as_str()
        )));
    }
    let mut environments = settings.environments.clone();
    environments.sort();
    environments.dedup();
    if environments.is_empty() {
        environments = Environment::ALL.to_vec();
    }
    Ok(DeployContext {
        app: app_name(repo_name),
        port,
        port_known,
        health_path,
        region: settings
            .region
            .clone()
            .unwrap_or_else(|| default_region(settings.target).to_owned()),
        strategy,
        environments,
        dockerfile,
        context_dir,
    })
}

fn default_region(target: DeployTarget) -> &'static str {
    match target {
        DeployTarget::Fly => fly::DEFAULT_REGION,
        DeployTarget::Aws => aws::DEFAULT_REGION,
        DeployTarget::Gcp => gcp::DEFAULT_REGION,
        DeployTarget::Azure => azure::DEFAULT_REGION,
        DeployTarget::Digitalocean => digitalocean::DEFAULT_REGION,
        DeployTarget::Ssh => "",
    }
}

/// The files continuous delivery adds for `settings` (each target's config files, and a
/// generated `Dockerfile` + `.dockerignore` when the repository has no Dockerfile), in
/// a stable order, one file per path.
pub fn deploy_files(
    analysis: &Analysis,
    repo_files: &[String],
    repo_name: &str,
    settings: &[DeploySettings],
) -> Result<Vec<GeneratedFile>, DeployError> {
    prepare(analysis, repo_files, repo_name, settings).map(|d| d.files)
}

/// What continuous delivery adds for a set of settings: the files ([`deploy_files`]) and
/// each target's decided context, which the plan turns into deploy jobs
/// (`generate::Target::deploy`).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Config files, and the generated Dockerfile + .dockerignore when there is none.
    pub files: Vec<GeneratedFile>,
    /// Each target with its context, in the order of the settings.
    pub contexts: Vec<(DeployTarget, DeployContext)>,
}

/// The files of `settings` and their contexts, each context decided once.
pub fn prepare(
    analysis: &Analysis,
    repo_files: &[String],
    repo_name: &str,
    settings: &[DeploySettings],
) -> Result<Delivery, DeployError> {
    let mut files: Vec<GeneratedFile> = Vec::new();
    let mut contexts = Vec::with_capacity(settings.len());
    let mut health: Option<String> = None;
    for s in settings {
        let ctx = context(analysis, repo_name, s)?;
        health = health.or(ctx.health_path.clone());
        files.extend(s.target.config_files(&ctx));
        contexts.push((s.target, ctx));
    }
    if !settings.is_empty() {
        match container::dockerfile_for(analysis, repo_files, health.as_deref()) {
            Ok(more) => files.extend(more),
            Err(e) => return Err(DeployError::NoContainer(e.to_string())),
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.path.clone()));
    Ok(Delivery { files, contexts })
}

/// The PR body's delivery section: per target, the secrets the deploy job reads (names
/// only), whether each is stored, and the one-time setup a person must do. Markdown;
/// `repo` is the repository's full name (for the AWS trust policy).
pub fn pr_section(
    contexts: &[(DeployTarget, DeployContext)],
    forge: crate::forge::Forge,
    repo: &str,
    stored: &dyn Fn(DeployTarget, &str) -> bool,
) -> String {
    use std::fmt::Write as _;
    if contexts.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n### Continuous delivery\n\n");
    s.push_str(
        "`staging` deploys every push to the default branch once its checks pass; `production` \
         deploys version tags (`v*`) after an approval. Deploys never run for pull requests or \
         forks, and one deploy per environment runs at a time, never cancelled half-way.\n",
    );
    for (target, ctx) in contexts {
        let spec = target.spec();
        let _ = writeln!(s, "\n#### {}\n", spec.name);
        let envs: Vec<&str> = ctx.environments.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(
            s,
            "Environments: {}. Strategy: {}.{}\n",
            envs.join(", "),
            ctx.strategy.as_str(),
            if ctx.region.is_empty() {
                String::new()
            } else {
                format!(" Region: {}.", ctx.region)
            }
        );
        s.push_str("| secret or variable | kind | status |\n|---|---|---|\n");
        for f in spec.credentials {
            let status = if stored(*target, f.name) {
                "stored; written to the forge"
            } else if f.required {
                "**missing**"
            } else {
                "optional, not set"
            };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} |",
                f.name,
                if f.secret { "secret" } else { "variable" },
                status
            );
        }
        // Bitbucket has no registry of its own: the image the SSH deploy runs is pushed to
        // the registry these repository variables name.
        if *target == DeployTarget::Ssh && forge == crate::forge::Forge::Bitbucket {
            for (name, kind) in [
                ("DOCKER_IMAGE", "variable"),
                ("DOCKER_USERNAME", "variable"),
                ("DOCKER_PASSWORD", "secret"),
            ] {
                let _ = writeln!(
                    s,
                    "| `{name}` | {kind} | set it as a secured repository variable (the image registry) |"
                );
            }
        }
        s.push_str(
            "\nOperators store values with `pipewright credentials set --installation … [--repo …] \
             --target ",
        );
        s.push_str(spec.id);
        s.push_str(" --name NAME --from-file FILE` (never in a comment).\n\nOne-time setup:\n\n");
        for (i, step) in target.manual_setup(ctx).iter().enumerate() {
            let _ = writeln!(s, "{}. {step}", i + 1);
        }
        if *target == DeployTarget::Aws {
            let _ = writeln!(
                s,
                "\nTrust policy of the deploy role:\n\n```json\n{}\n```",
                aws::trust_policy(forge, repo)
            );
        }
        if ctx.environments.contains(&Environment::Production) {
            s.push_str(match forge {
                crate::forge::Forge::Github => "\nApproval: in Settings → Environments → `production`, add required reviewers (repository admins only).\n",
                crate::forge::Forge::Gitlab => "\nApproval: the production job is manual; protect the `v*` tags (Settings → Repository → Protected tags) so only maintainers can release, and add deployment approvals on Premium.\n",
                crate::forge::Forge::Bitbucket => "\nApproval: in Repository settings → Deployments → Production, restrict deployments to admins or named users.\n",
            });
        }
    }
    s
}

/// Whether a generated path is a CI configuration file (as opposed to a deploy file,
/// such as the delivery workflow a repository with its own CI gets).
pub fn is_ci_path(path: &str) -> bool {
    (path.starts_with(".github/workflows/") && path != ".github/workflows/deploy.yml")
        || path == ".gitlab-ci.yml"
        || path == "bitbucket-pipelines.yml"
}

/// The app name of an environment (`myapp-staging`, `myapp`): two apps, so staging can
/// never overwrite production.
pub fn env_app(ctx: &DeployContext, env: Environment) -> String {
    match env {
        Environment::Staging => format!("{}-staging", ctx.app),
        Environment::Production => ctx.app.clone(),
    }
}

// ---- shared credential checks (the error never repeats the value) ----

pub(crate) fn single_line_token(v: &str) -> Result<(), String> {
    if v.len() < 16 {
        Err("is too short for an API token".into())
    } else if v.chars().any(|c| c.is_control()) {
        Err("must be one line (no control characters)".into())
    } else {
        Ok(())
    }
}

pub(crate) fn identifier(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 300 {
        Err("must be 1-300 characters".into())
    } else if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/@=+,".contains(c))
    {
        Err("may hold only letters, digits and - _ . : / @ = + ,".into())
    } else {
        Ok(())
    }
}

pub(crate) fn uuid_like(v: &str) -> Result<(), String> {
    let ok = v.len() == 36
        && v.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err("must be a GUID (8-4-4-4-12 hex digits)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_aliases_and_schemas_are_consistent() {
        let mut seen = std::collections::HashSet::new();
        for t in TARGETS {
            let s = t.spec();
            assert!(seen.insert(s.id), "{} twice", s.id);
            for a in s.aliases {
                assert!(seen.insert(a), "{a} twice");
            }
            assert_eq!(s.id.parse::<DeployTarget>().unwrap(), t);
            assert!(!s.strategies.is_empty());
            assert!(!s.credentials.is_empty());
            let mut names = std::collections::HashSet::new();
            for f in s.credentials {
                assert!(names.insert(f.name), "{}: {} twice", s.id, f.name);
                assert!(
                    f.name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                    "{}",
                    f.name
                );
            }
            // An OIDC target stores no long-lived cloud key.
            if s.oidc {
                assert!(s.credentials.iter().all(|f| !f.secret), "{}", s.id);
            }
        }
        assert!("heroku"
            .parse::<DeployTarget>()
            .unwrap_err()
            .contains("fly, aws"));
        assert_eq!(
            "Cloud-Run".parse::<DeployTarget>().unwrap(),
            DeployTarget::Gcp
        );
    }

    #[test]
    fn staging_deploys_the_default_branch_production_tags_after_approval() {
        let s = Environment::Staging.gate();
        assert_eq!(s.trigger, DeployTrigger::DefaultBranch);
        assert!(!s.approval && !s.cancel_in_progress);
        let p = Environment::Production.gate();
        assert_eq!(p.trigger, DeployTrigger::VersionTags);
        assert!(p.approval && !p.cancel_in_progress);
        assert_ne!(s.concurrency_group, p.concurrency_group);
    }

    #[test]
    fn the_pr_names_bitbucket_registry_variables_for_the_ssh_image() {
        let ctx = DeployContext {
            app: "demo".into(),
            port: 8080,
            port_known: true,
            health_path: None,
            region: String::new(),
            strategy: Strategy::Bluegreen,
            environments: Environment::ALL.to_vec(),
            dockerfile: "Dockerfile".into(),
            context_dir: ".".into(),
        };
        let none = |_: DeployTarget, _: &str| false;
        let bb = pr_section(
            &[(DeployTarget::Ssh, ctx.clone())],
            crate::forge::Forge::Bitbucket,
            "acme/demo",
            &none,
        );
        assert!(bb.contains("`DOCKER_IMAGE`") && bb.contains("`DOCKER_PASSWORD` | secret"));
        let gh = pr_section(
            &[(DeployTarget::Ssh, ctx)],
            crate::forge::Forge::Github,
            "acme/demo",
            &none,
        );
        assert!(!gh.contains("DOCKER_IMAGE") && gh.contains("`SSH_PRIVATE_KEY` | secret"));
    }

    #[test]
    fn app_names_are_dns_labels() {
        assert_eq!(app_name("acme/My_Service.api"), "my-service-api");
        assert_eq!(app_name("acme/42"), "app-42");
        assert_eq!(app_name("acme/---"), "app");
        let long = app_name(&"x".repeat(80));
        assert_eq!(long.len(), 30);
    }

    #[test]
    fn checks_never_echo_values() {
        let secret = "sk_live_\u{7}abcdefghijklmnop";
        let e = single_line_token(secret).unwrap_err();
        assert!(!e.contains("sk_live"));
        assert!(check_health_path("/healthz").is_ok());
        assert!(check_health_path("/x;rm -rf /").is_err());
        assert!(check_region("eu-west-1").is_ok());
        assert!(check_region("EU west").is_err());
        assert!(uuid_like("0b7e7a59-63a7-4d4e-9c7a-2b1f0d1e9a11").is_ok());
        assert!(uuid_like("nope").is_err());
    }
}
