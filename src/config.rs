//! Server configuration: flags and `PIPEWRIGHT_*` environment variables, an optional
//! `pipewright.toml`, and `*_FILE` variants for secrets. Parsed and validated once at
//! start-up into [`Config`], which is passed down; nothing else reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// Configuration file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "pipewright.toml";
/// Default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pipewright.db";
/// Default listen address: loopback only, so a first try exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default number of worker tasks in `serve` (and `worker`).
pub const DEFAULT_WORKERS: usize = 4;
/// Largest accepted webhook body, in bytes (GitHub and GitLab cap payloads at 25 MB).
pub const MAX_WEBHOOK_BODY_BYTES: usize = 25 * 1024 * 1024;
/// Shortest accepted `PIPEWRIGHT_ADMIN_TOKEN`, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;
/// How far a Standard Webhooks `webhook-timestamp` may be from now, in seconds (replay window).
pub const SIGNATURE_TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// A secret value: `Debug` and `Display` print `[redacted]`; the value is only reachable
/// through [`Secret::expose`], so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used (signature checks, API auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags (each also readable from its `PIPEWRIGHT_*` variable) shared by every command
/// that needs configuration. All optional here: defaults and the config file fill gaps.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Optional TOML file with the same keys as the flags (snake_case); defaults to
    /// ./pipewright.toml when that exists. Flags and environment variables win over it.
    #[arg(long, env = "PIPEWRIGHT_CONFIG", global = true, value_parser = path_or_empty)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://path` (created if missing) or `postgres://…`.
    #[arg(long, env = "PIPEWRIGHT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address the HTTP server listens on.
    #[arg(long, env = "PIPEWRIGHT_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Worker tasks (concurrent jobs) in this process; 0 = webhook intake only.
    /// (Text, so a bad value is reported under its variable's name.)
    #[arg(long, env = "PIPEWRIGHT_WORKERS", global = true)]
    pub workers: Option<String>,
    /// GitHub webhook secret(s), comma-separated to allow rotation.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITHUB_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub github_webhook_secret: Option<String>,
    /// File holding the GitHub webhook secret(s).
    #[arg(long, env = "PIPEWRIGHT_GITHUB_WEBHOOK_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// GitLab webhook secret token(s) (`X-Gitlab-Token`), comma-separated.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITLAB_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub gitlab_webhook_secret: Option<String>,
    /// File holding the GitLab webhook secret token(s).
    #[arg(long, env = "PIPEWRIGHT_GITLAB_WEBHOOK_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub gitlab_webhook_secret_file: Option<PathBuf>,
    /// GitLab signing token(s) (`whsec_…`, Standard Webhooks), comma-separated.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITLAB_SIGNING_KEY",
        global = true,
        hide_env_values = true
    )]
    pub gitlab_signing_key: Option<String>,
    /// File holding the GitLab signing token(s).
    #[arg(long, env = "PIPEWRIGHT_GITLAB_SIGNING_KEY_FILE", global = true, value_parser = path_or_empty)]
    pub gitlab_signing_key_file: Option<PathBuf>,
    /// Bitbucket Cloud webhook secret(s), comma-separated.
    #[arg(
        long,
        env = "PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub bitbucket_webhook_secret: Option<String>,
    /// File holding the Bitbucket webhook secret(s).
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub bitbucket_webhook_secret_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "PIPEWRIGHT_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// The word of slash commands (`/pipewright help`); comments without it queue nothing.
    #[arg(long, env = "PIPEWRIGHT_COMMAND_WORD", global = true)]
    pub command_word: Option<String>,
    /// GitHub App id.
    #[arg(long, env = "PIPEWRIGHT_GITHUB_APP_ID", global = true)]
    pub github_app_id: Option<String>,
    /// GitHub App slug: its bot account is `<slug>[bot]` and `@<slug>` mentions it.
    #[arg(long, env = "PIPEWRIGHT_GITHUB_APP_SLUG", global = true)]
    pub github_app_slug: Option<String>,
    /// GitHub App private key (PEM).
    #[arg(
        long,
        env = "PIPEWRIGHT_GITHUB_PRIVATE_KEY",
        global = true,
        hide_env_values = true
    )]
    pub github_private_key: Option<String>,
    /// File holding the GitHub App private key (PEM).
    #[arg(long, env = "PIPEWRIGHT_GITHUB_PRIVATE_KEY_FILE", global = true, value_parser = path_or_empty)]
    pub github_private_key_file: Option<PathBuf>,
    /// GitHub REST API root (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long, env = "PIPEWRIGHT_GITHUB_API_URL", global = true)]
    pub github_api_url: Option<String>,
    /// GitLab instance root (`https://gitlab.com` or a self-managed URL).
    #[arg(long, env = "PIPEWRIGHT_GITLAB_URL", global = true)]
    pub gitlab_url: Option<String>,
    /// GitLab group (or instance) access token.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITLAB_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub gitlab_token: Option<String>,
    /// File holding the GitLab access token.
    #[arg(long, env = "PIPEWRIGHT_GITLAB_TOKEN_FILE", global = true, value_parser = path_or_empty)]
    pub gitlab_token_file: Option<PathBuf>,
    /// Top-level GitLab groups pipewright may act in, comma-separated (required with a token).
    #[arg(long, env = "PIPEWRIGHT_GITLAB_GROUPS", global = true)]
    pub gitlab_groups: Option<String>,
    /// Bitbucket Cloud API root.
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_API_URL", global = true)]
    pub bitbucket_api_url: Option<String>,
    /// Bitbucket workspace, project or repository access token, or an Atlassian API
    /// token (with PIPEWRIGHT_BITBUCKET_EMAIL).
    #[arg(
        long,
        env = "PIPEWRIGHT_BITBUCKET_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub bitbucket_token: Option<String>,
    /// The Atlassian account e-mail of an API token (Basic auth); unset for access tokens.
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_EMAIL", global = true)]
    pub bitbucket_email: Option<String>,
    /// File holding the Bitbucket access token.
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_TOKEN_FILE", global = true, value_parser = path_or_empty)]
    pub bitbucket_token_file: Option<PathBuf>,
    /// Bitbucket workspaces (slugs) pipewright may act in, comma-separated.
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_WORKSPACES", global = true)]
    pub bitbucket_workspaces: Option<String>,
    /// Branch of pipewright's pull request.
    #[arg(long, env = "PIPEWRIGHT_PR_BRANCH", global = true)]
    pub pr_branch: Option<String>,
    /// Pull requests opened per installation (org, group, workspace) per hour.
    #[arg(long, env = "PIPEWRIGHT_PRS_PER_HOUR", global = true)]
    pub prs_per_hour: Option<String>,
    /// Seconds between reconcile passes over each installation (0 = never).
    #[arg(long, env = "PIPEWRIGHT_RECONCILE_SECS", global = true)]
    pub reconcile_secs: Option<String>,
    /// Where `serve --dry-run` writes would-be pull requests.
    #[arg(long, env = "PIPEWRIGHT_OUTBOX", global = true, value_parser = path_or_empty)]
    pub outbox: Option<PathBuf>,
    /// Public base URL of this deployment (webhook registration: `gitlab connect`,
    /// `bitbucket connect`, and hooks on new GitLab projects, or new Bitbucket
    /// repositories when the token cannot own workspace webhooks, found by reconcile).
    #[arg(long, env = "PIPEWRIGHT_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Operator token: signs in to the console (sees everything) and authenticates
    /// `Authorization: Bearer …` on the console and `/api/v1/`.
    #[arg(
        long,
        env = "PIPEWRIGHT_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// File holding the operator token.
    #[arg(long, env = "PIPEWRIGHT_ADMIN_TOKEN_FILE", global = true, value_parser = path_or_empty)]
    pub admin_token_file: Option<PathBuf>,
    /// GitHub App's OAuth client id (console sign-in with GitHub).
    #[arg(long, env = "PIPEWRIGHT_GITHUB_CLIENT_ID", global = true)]
    pub github_client_id: Option<String>,
    /// GitHub App's OAuth client secret.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITHUB_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub github_client_secret: Option<String>,
    /// File holding the GitHub OAuth client secret.
    #[arg(long, env = "PIPEWRIGHT_GITHUB_CLIENT_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub github_client_secret_file: Option<PathBuf>,
    /// GitHub web root for OAuth and the App manifest flow (default: derived from the API
    /// URL: `https://github.com`, or the GHES host).
    #[arg(long, env = "PIPEWRIGHT_GITHUB_WEB_URL", global = true)]
    pub github_web_url: Option<String>,
    /// GitLab OAuth application id (console sign-in with GitLab).
    #[arg(long, env = "PIPEWRIGHT_GITLAB_CLIENT_ID", global = true)]
    pub gitlab_client_id: Option<String>,
    /// GitLab OAuth application secret.
    #[arg(
        long,
        env = "PIPEWRIGHT_GITLAB_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub gitlab_client_secret: Option<String>,
    /// File holding the GitLab OAuth application secret.
    #[arg(long, env = "PIPEWRIGHT_GITLAB_CLIENT_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub gitlab_client_secret_file: Option<PathBuf>,
    /// Bitbucket OAuth consumer key (console sign-in with Bitbucket).
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_CLIENT_ID", global = true)]
    pub bitbucket_client_id: Option<String>,
    /// Bitbucket OAuth consumer secret.
    #[arg(
        long,
        env = "PIPEWRIGHT_BITBUCKET_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub bitbucket_client_secret: Option<String>,
    /// File holding the Bitbucket OAuth consumer secret.
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_CLIENT_SECRET_FILE", global = true, value_parser = path_or_empty)]
    pub bitbucket_client_secret_file: Option<PathBuf>,
    /// Bitbucket web root for OAuth (`https://bitbucket.org`).
    #[arg(long, env = "PIPEWRIGHT_BITBUCKET_WEB_URL", global = true)]
    pub bitbucket_web_url: Option<String>,
    /// Directory whose `console/*.html` files override the console's built-in templates.
    #[arg(long, env = "PIPEWRIGHT_CONSOLE_TEMPLATES", global = true, value_parser = path_or_empty)]
    pub console_templates: Option<PathBuf>,
    /// Keys that encrypt stored credentials: `id:base64` entries (32 random bytes each),
    /// comma- or newline-separated; the first encrypts, all decrypt (rotation).
    #[arg(
        long,
        env = "PIPEWRIGHT_CREDENTIALS_KEY",
        global = true,
        hide_env_values = true
    )]
    pub credentials_key: Option<String>,
    /// File holding the credentials key(s).
    #[arg(long, env = "PIPEWRIGHT_CREDENTIALS_KEY_FILE", global = true, value_parser = path_or_empty)]
    pub credentials_key_file: Option<PathBuf>,
    /// Deploy targets proposed to repositories that have CI but no CD, comma-separated
    /// (e.g. `fly`); unset: never.
    #[arg(long, env = "PIPEWRIGHT_PROPOSE_CD", global = true)]
    pub propose_cd: Option<String>,
    /// Folder holding the embedding model (config.json, tokenizer.json,
    /// model.safetensors of all-MiniLM-L6-v2; `deploy/provision-model` makes it). Unset
    /// or empty: detection runs on rules alone.
    #[arg(long, env = "PIPEWRIGHT_MODEL_DIR", global = true, value_parser = path_or_empty)]
    pub model_dir: Option<PathBuf>,
    /// Directory for index files (archetype and per-installation vector indexes).
    #[arg(long, env = "PIPEWRIGHT_DATA_DIR", global = true, value_parser = path_or_empty)]
    pub data_dir: Option<PathBuf>,
}

/// The same keys as [`ConfigArgs`], read from `pipewright.toml`. Unknown keys are an
/// error, so a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<String>,
    workers: Option<usize>,
    github_webhook_secret: Option<String>,
    github_webhook_secret_file: Option<PathBuf>,
    gitlab_webhook_secret: Option<String>,
    gitlab_webhook_secret_file: Option<PathBuf>,
    gitlab_signing_key: Option<String>,
    gitlab_signing_key_file: Option<PathBuf>,
    bitbucket_webhook_secret: Option<String>,
    bitbucket_webhook_secret_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    command_word: Option<String>,
    github_app_id: Option<u64>,
    github_app_slug: Option<String>,
    github_private_key: Option<String>,
    github_private_key_file: Option<PathBuf>,
    github_api_url: Option<String>,
    gitlab_url: Option<String>,
    gitlab_token: Option<String>,
    gitlab_token_file: Option<PathBuf>,
    gitlab_groups: Option<String>,
    bitbucket_api_url: Option<String>,
    bitbucket_token: Option<String>,
    bitbucket_email: Option<String>,
    bitbucket_token_file: Option<PathBuf>,
    bitbucket_workspaces: Option<String>,
    pr_branch: Option<String>,
    prs_per_hour: Option<u32>,
    reconcile_secs: Option<u64>,
    outbox: Option<PathBuf>,
    public_url: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    github_client_id: Option<String>,
    github_client_secret: Option<String>,
    github_client_secret_file: Option<PathBuf>,
    github_web_url: Option<String>,
    gitlab_client_id: Option<String>,
    gitlab_client_secret: Option<String>,
    gitlab_client_secret_file: Option<PathBuf>,
    bitbucket_client_id: Option<String>,
    bitbucket_client_secret: Option<String>,
    bitbucket_client_secret_file: Option<PathBuf>,
    bitbucket_web_url: Option<String>,
    console_templates: Option<PathBuf>,
    credentials_key: Option<String>,
    credentials_key_file: Option<PathBuf>,
    propose_cd: Option<String>,
    model_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
}

/// The validated configuration of a pipewright process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database URL (may embed a password: print it with [`Config::database_url_redacted`]).
    pub database_url: Secret,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Worker tasks in this process.
    pub workers: usize,
    /// Accepted GitHub webhook secrets (empty: the GitHub endpoint is disabled).
    pub github_webhook_secrets: Vec<Secret>,
    /// Accepted GitLab `X-Gitlab-Token` values.
    pub gitlab_webhook_secrets: Vec<Secret>,
    /// Accepted GitLab signing keys (raw HMAC keys, decoded from `whsec_…`).
    pub gitlab_signing_keys: Vec<Secret>,
    /// Accepted Bitbucket webhook secrets.
    pub bitbucket_webhook_secrets: Vec<Secret>,
    /// Log format.
    pub log_format: LogFormat,
    /// Slash-command word, without the slash.
    pub command_word: String,
    /// Forge credentials and the bot's behaviour.
    pub bot: BotConfig,
    /// Keys for credentials stored encrypted in the database (`None`: storing or using
    /// credentials fails with a message naming `PIPEWRIGHT_CREDENTIALS_KEY`).
    pub credentials_key: Option<crate::crypto::Keyring>,
    /// The operator console: who may sign in, and how.
    pub console: ConsoleConfig,
    /// Learned detection (embedding model, index files).
    pub learn: LearnConfig,
}

/// An OAuth client registered on a forge (console sign-in).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// Client id / consumer key.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
}

/// The operator console's settings.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// `PIPEWRIGHT_ADMIN_TOKEN`: sees everything.
    pub admin_token: Option<Secret>,
    /// Sign-in with GitHub (the App's user-to-server flow).
    pub github: Option<OAuthClient>,
    /// GitHub web root (OAuth pages, App manifest flow).
    pub github_web_url: String,
    /// Sign-in with GitLab.
    pub gitlab: Option<OAuthClient>,
    /// Sign-in with Bitbucket.
    pub bitbucket: Option<OAuthClient>,
    /// Bitbucket web root (OAuth pages).
    pub bitbucket_web_url: String,
    /// Template override directory.
    pub templates: Option<PathBuf>,
}

/// Default Bitbucket web root.
pub const DEFAULT_BITBUCKET_WEB_URL: &str = "https://bitbucket.org";

/// GitHub's web root for an API root: `https://api.github.com` → `https://github.com`,
/// GHES `https://HOST/api/v3` → `https://HOST`; anything else is used as is.
pub fn github_web_url_for(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if api == DEFAULT_GITHUB_API_URL {
        return "https://github.com".into();
    }
    api.strip_suffix("/api/v3").unwrap_or(api).to_owned()
}

/// Default directory for index files.
pub const DEFAULT_DATA_DIR: &str = "pipewright-data";

/// Where learned detection finds its model and keeps its index files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnConfig {
    /// The model folder (`None`: rules only).
    pub model_dir: Option<PathBuf>,
    /// Index files live under `<data_dir>/index/`.
    pub data_dir: PathBuf,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig {
            model_dir: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

/// Default GitHub API root.
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// Default GitLab instance.
pub const DEFAULT_GITLAB_URL: &str = "https://gitlab.com";
/// Default Bitbucket Cloud API root.
pub const DEFAULT_BITBUCKET_API_URL: &str = "https://api.bitbucket.org/2.0";
/// Default branch of the bot's pull request.
pub const DEFAULT_PR_BRANCH: &str = "pipewright/ci";
/// Default pull requests opened per installation per hour: an org of 5,000 repositories
/// is onboarded over days, not in one flood, and well inside GitHub's content limits.
pub const DEFAULT_PRS_PER_HOUR: u32 = 20;
/// Default seconds between reconcile passes (6 hours).
pub const DEFAULT_RECONCILE_SECS: u64 = 6 * 3600;

/// GitHub App credentials.
#[derive(Debug, Clone)]
pub struct GithubAppConfig {
    /// App id.
    pub app_id: u64,
    /// PEM private key.
    pub private_key: Secret,
}

/// How the bot talks to the forges and how it behaves.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// GitHub App (`None`: GitHub deliveries are recorded but not acted on).
    pub github_app: Option<GithubAppConfig>,
    /// GitHub App slug (bot login `<slug>[bot]`).
    pub github_app_slug: String,
    /// GitHub REST API root.
    pub github_api_url: String,
    /// GitLab instance root.
    pub gitlab_url: String,
    /// GitLab access token.
    pub gitlab_token: Option<Secret>,
    /// Allowlisted top-level GitLab groups (lowercase).
    pub gitlab_groups: Vec<String>,
    /// Bitbucket API root.
    pub bitbucket_api_url: String,
    /// Bitbucket access token or Atlassian API token.
    pub bitbucket_token: Option<Secret>,
    /// The Atlassian account e-mail of an API token (Basic auth); `None`: access token.
    pub bitbucket_email: Option<String>,
    /// Allowlisted Bitbucket workspaces (lowercase slugs).
    pub bitbucket_workspaces: Vec<String>,
    /// Branch of the bot's pull request.
    pub pr_branch: String,
    /// PRs opened per installation per hour.
    pub prs_per_hour: u32,
    /// Seconds between reconcile passes (0 = off).
    pub reconcile_secs: u64,
    /// Dry run (`serve --dry-run`): record would-be PRs in `outbox`, write nothing.
    pub dry_run: bool,
    /// Outbox directory used by `--dry-run`.
    pub outbox: PathBuf,
    /// Public base URL of this deployment, for registering webhooks.
    pub public_url: Option<String>,
    /// Deploy targets proposed to repositories that have CI but no CD (none by default).
    pub propose_cd: Vec<crate::deploy::DeployTarget>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            github_app: None,
            github_app_slug: "pipewright".into(),
            github_api_url: DEFAULT_GITHUB_API_URL.into(),
            gitlab_url: DEFAULT_GITLAB_URL.into(),
            gitlab_token: None,
            gitlab_groups: Vec::new(),
            bitbucket_api_url: DEFAULT_BITBUCKET_API_URL.into(),
            bitbucket_token: None,
            bitbucket_email: None,
            bitbucket_workspaces: Vec::new(),
            pr_branch: DEFAULT_PR_BRANCH.into(),
            prs_per_hour: DEFAULT_PRS_PER_HOUR,
            reconcile_secs: DEFAULT_RECONCILE_SECS,
            dry_run: false,
            outbox: PathBuf::from("pipewright-outbox"),
            public_url: None,
            propose_cd: Vec::new(),
        }
    }
}

impl BotConfig {
    /// The bot's settings for `config check`, secrets redacted.
    pub fn render(&self) -> String {
        let set = |s: &Option<Secret>| {
            if s.is_some() {
                "[redacted]"
            } else {
                "(not set)"
            }
        };
        let list = |l: &[String]| {
            if l.is_empty() {
                "(none)".to_owned()
            } else {
                l.join(", ")
            }
        };
        format!(
            "github_app_id = {}\ngithub_private_key = {}\ngithub_app_slug = {}\n\
             github_api_url = {}\ngitlab_url = {}\ngitlab_token = {}\ngitlab_groups = {}\n\
             bitbucket_api_url = {}\nbitbucket_token = {}\nbitbucket_email = {}\n\
             bitbucket_workspaces = {}\n\
             pr_branch = {}\nprs_per_hour = {}\nreconcile_secs = {}\npublic_url = {}\n\
             outbox = {}\npropose_cd = {}\n",
            self.github_app.as_ref().map_or(
                "(not set: GitHub deliveries are recorded, not acted on)".to_owned(),
                |a| a.app_id.to_string()
            ),
            if self.github_app.is_some() {
                "[redacted]"
            } else {
                "(not set)"
            },
            self.github_app_slug,
            self.github_api_url,
            self.gitlab_url,
            set(&self.gitlab_token),
            list(&self.gitlab_groups),
            self.bitbucket_api_url,
            set(&self.bitbucket_token),
            self.bitbucket_email
                .as_deref()
                .unwrap_or("(not set: an access token, sent as Bearer)"),
            list(&self.bitbucket_workspaces),
            self.pr_branch,
            self.prs_per_hour,
            self.reconcile_secs,
            self.public_url.as_deref().unwrap_or("(not set)"),
            self.outbox.display(),
            if self.propose_cd.is_empty() {
                "(none: repositories with CI get no CD proposal)".to_owned()
            } else {
                self.propose_cd
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        )
    }
}

fn name_list(raw: Option<String>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn http_url(key: &'static str, url: String) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::Invalid {
            key,
            message: format!("`{url}` is not an http(s) URL"),
        })
    }
}

fn one_secret(
    key: &'static str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            key,
            message: format!("set either {key} or {key}_FILE, not both"),
        }),
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|v| Some(Secret::new(v.trim())))
            .map_err(|e| ConfigError::Invalid {
                key,
                message: format!("cannot read {}: {e}", path.display()),
            }),
        (None, None) => Ok(None),
    }
}

/// A configuration problem, reported once at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key.
    #[error("invalid config file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid {key}: {message}")]
    Invalid {
        /// The setting's environment variable name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ConfigArgs {
    /// Merges flags/env over the optional file over defaults, and validates.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.without_empty_values().resolve_set()
    }

    /// `VAR=` (set but empty, as compose files and templated manifests produce) means
    /// "not set", not "set to nothing".
    fn without_empty_values(&self) -> ConfigArgs {
        let mut a = self.clone();
        for v in [
            &mut a.database_url,
            &mut a.listen,
            &mut a.workers,
            &mut a.github_webhook_secret,
            &mut a.gitlab_webhook_secret,
            &mut a.gitlab_signing_key,
            &mut a.bitbucket_webhook_secret,
            &mut a.command_word,
            &mut a.github_app_id,
            &mut a.github_app_slug,
            &mut a.github_private_key,
            &mut a.github_api_url,
            &mut a.gitlab_url,
            &mut a.gitlab_token,
            &mut a.gitlab_groups,
            &mut a.bitbucket_api_url,
            &mut a.bitbucket_token,
            &mut a.bitbucket_email,
            &mut a.bitbucket_workspaces,
            &mut a.pr_branch,
            &mut a.prs_per_hour,
            &mut a.reconcile_secs,
            &mut a.public_url,
            &mut a.admin_token,
            &mut a.github_client_id,
            &mut a.github_client_secret,
            &mut a.github_web_url,
            &mut a.gitlab_client_id,
            &mut a.gitlab_client_secret,
            &mut a.bitbucket_client_id,
            &mut a.bitbucket_client_secret,
            &mut a.bitbucket_web_url,
            &mut a.credentials_key,
            &mut a.propose_cd,
        ] {
            if v.as_deref().is_some_and(|x| x.trim().is_empty()) {
                *v = None;
            }
        }
        for p in [
            &mut a.github_webhook_secret_file,
            &mut a.gitlab_webhook_secret_file,
            &mut a.gitlab_signing_key_file,
            &mut a.bitbucket_webhook_secret_file,
            &mut a.github_private_key_file,
            &mut a.gitlab_token_file,
            &mut a.bitbucket_token_file,
            &mut a.outbox,
            &mut a.credentials_key_file,
            &mut a.config,
            &mut a.admin_token_file,
            &mut a.github_client_secret_file,
            &mut a.gitlab_client_secret_file,
            &mut a.bitbucket_client_secret_file,
            &mut a.console_templates,
            &mut a.model_dir,
            &mut a.data_dir,
        ] {
            if p.as_ref().is_some_and(|x| x.as_os_str().is_empty()) {
                *p = None;
            }
        }
        a
    }

    fn resolve_set(&self) -> Result<Config, ConfigError> {
        // An explicit file must exist; otherwise ./pipewright.toml is used when present.
        let mut file = match &self.config {
            Some(path) => read_file_config(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                read_file_config(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        let bot = self.resolve_bot(&mut file)?;
        let console = self.resolve_console(&mut file, &bot)?;
        let learn = LearnConfig {
            model_dir: self.model_dir.clone().or(file.model_dir.take()),
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir.take())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        };
        if let Some(dir) = learn.model_dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_MODEL_DIR",
                message: format!("{} is not a directory", dir.display()),
            });
        }
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_DATABASE_URL",
                message: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        let listen_text = self
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                key: "PIPEWRIGHT_LISTEN",
                message: format!("`{listen_text}` is not an address like 127.0.0.1:8080 ({e})"),
            })?;
        let workers = match &self.workers {
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map_err(|_| ConfigError::Invalid {
                    key: "PIPEWRIGHT_WORKERS",
                    message: format!("`{text}` is not a whole number"),
                })?,
            None => file.workers.unwrap_or(DEFAULT_WORKERS),
        };
        if workers > 1024 {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_WORKERS",
                message: format!("{workers} is more than 1024"),
            });
        }
        let github_webhook_secrets = secret_list(
            "PIPEWRIGHT_GITHUB_WEBHOOK_SECRET",
            self.github_webhook_secret
                .clone()
                .or(file.github_webhook_secret),
            self.github_webhook_secret_file
                .clone()
                .or(file.github_webhook_secret_file),
        )?;
        let gitlab_webhook_secrets = secret_list(
            "PIPEWRIGHT_GITLAB_WEBHOOK_SECRET",
            self.gitlab_webhook_secret
                .clone()
                .or(file.gitlab_webhook_secret),
            self.gitlab_webhook_secret_file
                .clone()
                .or(file.gitlab_webhook_secret_file),
        )?;
        let gitlab_signing_keys = secret_list(
            "PIPEWRIGHT_GITLAB_SIGNING_KEY",
            self.gitlab_signing_key.clone().or(file.gitlab_signing_key),
            self.gitlab_signing_key_file
                .clone()
                .or(file.gitlab_signing_key_file),
        )?
        .into_iter()
        .map(|s| decode_signing_key(&s))
        .collect::<Result<Vec<_>, _>>()?;
        let bitbucket_webhook_secrets = secret_list(
            "PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET",
            self.bitbucket_webhook_secret
                .clone()
                .or(file.bitbucket_webhook_secret),
            self.bitbucket_webhook_secret_file
                .clone()
                .or(file.bitbucket_webhook_secret_file),
        )?;
        let command_word = self
            .command_word
            .clone()
            .or(file.command_word)
            .unwrap_or_else(|| "pipewright".to_owned());
        if command_word.is_empty()
            || !command_word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_COMMAND_WORD",
                message: format!("`{command_word}` must be letters, digits, `-` or `_`"),
            });
        }
        let credentials_key =
            match one_secret(
                "PIPEWRIGHT_CREDENTIALS_KEY",
                self.credentials_key.clone().or(file.credentials_key.take()),
                self.credentials_key_file
                    .clone()
                    .or(file.credentials_key_file.take()),
            )? {
                Some(text) => Some(crate::crypto::Keyring::parse(&text).map_err(|e| {
                    ConfigError::Invalid {
                        key: "PIPEWRIGHT_CREDENTIALS_KEY",
                        message: e.to_string(),
                    }
                })?),
                None => None,
            };
        Ok(Config {
            bot,
            console,
            credentials_key,
            learn,
            database_url: Secret::new(database_url),
            listen,
            workers,
            github_webhook_secrets,
            gitlab_webhook_secrets,
            gitlab_signing_keys,
            bitbucket_webhook_secrets,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            command_word,
        })
    }

    fn resolve_console(
        &self,
        file: &mut FileConfig,
        bot: &BotConfig,
    ) -> Result<ConsoleConfig, ConfigError> {
        let admin_token = one_secret(
            "PIPEWRIGHT_ADMIN_TOKEN",
            self.admin_token.clone().or(file.admin_token.take()),
            self.admin_token_file
                .clone()
                .or(file.admin_token_file.take()),
        )?;
        if let Some(t) = &admin_token {
            // A short token can be guessed over the network; 16 characters is a floor.
            if t.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(ConfigError::Invalid {
                    key: "PIPEWRIGHT_ADMIN_TOKEN",
                    message: format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
                });
            }
        }
        let client = |id_key: &'static str,
                      secret_key: &'static str,
                      id: Option<String>,
                      secret: Option<String>,
                      secret_file: Option<PathBuf>|
         -> Result<Option<OAuthClient>, ConfigError> {
            let secret = one_secret(secret_key, secret, secret_file)?;
            match (id, secret) {
                (Some(client_id), Some(client_secret)) => Ok(Some(OAuthClient {
                    client_id: client_id.trim().to_owned(),
                    client_secret,
                })),
                (None, None) => Ok(None),
                (Some(_), None) => Err(ConfigError::Invalid {
                    key: secret_key,
                    message: format!("{id_key} is set, so the client secret is needed too"),
                }),
                (None, Some(_)) => Err(ConfigError::Invalid {
                    key: id_key,
                    message: format!("{secret_key} is set, so the client id is needed too"),
                }),
            }
        };
        let github = client(
            "PIPEWRIGHT_GITHUB_CLIENT_ID",
            "PIPEWRIGHT_GITHUB_CLIENT_SECRET",
            self.github_client_id
                .clone()
                .or(file.github_client_id.take()),
            self.github_client_secret
                .clone()
                .or(file.github_client_secret.take()),
            self.github_client_secret_file
                .clone()
                .or(file.github_client_secret_file.take()),
        )?;
        let gitlab = client(
            "PIPEWRIGHT_GITLAB_CLIENT_ID",
            "PIPEWRIGHT_GITLAB_CLIENT_SECRET",
            self.gitlab_client_id
                .clone()
                .or(file.gitlab_client_id.take()),
            self.gitlab_client_secret
                .clone()
                .or(file.gitlab_client_secret.take()),
            self.gitlab_client_secret_file
                .clone()
                .or(file.gitlab_client_secret_file.take()),
        )?;
        let bitbucket = client(
            "PIPEWRIGHT_BITBUCKET_CLIENT_ID",
            "PIPEWRIGHT_BITBUCKET_CLIENT_SECRET",
            self.bitbucket_client_id
                .clone()
                .or(file.bitbucket_client_id.take()),
            self.bitbucket_client_secret
                .clone()
                .or(file.bitbucket_client_secret.take()),
            self.bitbucket_client_secret_file
                .clone()
                .or(file.bitbucket_client_secret_file.take()),
        )?;
        let github_web_url = match self.github_web_url.clone().or(file.github_web_url.take()) {
            Some(u) => http_url("PIPEWRIGHT_GITHUB_WEB_URL", u)?,
            None => github_web_url_for(&bot.github_api_url),
        };
        let bitbucket_web_url = http_url(
            "PIPEWRIGHT_BITBUCKET_WEB_URL",
            self.bitbucket_web_url
                .clone()
                .or(file.bitbucket_web_url.take())
                .unwrap_or_else(|| DEFAULT_BITBUCKET_WEB_URL.to_owned()),
        )?;
        Ok(ConsoleConfig {
            admin_token,
            github,
            github_web_url,
            gitlab,
            bitbucket,
            bitbucket_web_url,
            templates: self
                .console_templates
                .clone()
                .or(file.console_templates.take()),
        })
    }

    fn resolve_bot(&self, file: &mut FileConfig) -> Result<BotConfig, ConfigError> {
        let d = BotConfig::default();
        let app_id = match (&self.github_app_id, file.github_app_id) {
            (Some(t), _) => Some(t.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                key: "PIPEWRIGHT_GITHUB_APP_ID",
                message: format!("`{t}` is not a number"),
            })?),
            (None, f) => f,
        };
        let key = one_secret(
            "PIPEWRIGHT_GITHUB_PRIVATE_KEY",
            self.github_private_key
                .clone()
                .or(file.github_private_key.take()),
            self.github_private_key_file
                .clone()
                .or(file.github_private_key_file.take()),
        )?;
        let github_app =
            match (app_id, key) {
                (Some(app_id), Some(private_key)) => Some(GithubAppConfig {
                    app_id,
                    private_key,
                }),
                (None, None) => None,
                (Some(_), None) => return Err(ConfigError::Invalid {
                    key: "PIPEWRIGHT_GITHUB_PRIVATE_KEY",
                    message:
                        "PIPEWRIGHT_GITHUB_APP_ID is set, so the App's private key is needed too"
                            .into(),
                }),
                (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "PIPEWRIGHT_GITHUB_APP_ID",
                        message: "a private key is set, so the App id is needed too".into(),
                    })
                }
            };
        let gitlab_token = one_secret(
            "PIPEWRIGHT_GITLAB_TOKEN",
            self.gitlab_token.clone().or(file.gitlab_token.take()),
            self.gitlab_token_file
                .clone()
                .or(file.gitlab_token_file.take()),
        )?;
        let gitlab_groups = name_list(self.gitlab_groups.clone().or(file.gitlab_groups.take()));
        if gitlab_token.is_some() && gitlab_groups.is_empty() {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_GITLAB_GROUPS",
                message: "a GitLab token is set: list the top-level groups pipewright may act in"
                    .into(),
            });
        }
        let bitbucket_token = one_secret(
            "PIPEWRIGHT_BITBUCKET_TOKEN",
            self.bitbucket_token.clone().or(file.bitbucket_token.take()),
            self.bitbucket_token_file
                .clone()
                .or(file.bitbucket_token_file.take()),
        )?;
        let bitbucket_workspaces = name_list(
            self.bitbucket_workspaces
                .clone()
                .or(file.bitbucket_workspaces.take()),
        );
        let bitbucket_email = self
            .bitbucket_email
            .clone()
            .or(file.bitbucket_email.take())
            .map(|e| e.trim().to_owned());
        if let Some(e) = &bitbucket_email {
            if !e.contains('@') || e.contains(char::is_whitespace) {
                return Err(ConfigError::Invalid {
                    key: "PIPEWRIGHT_BITBUCKET_EMAIL",
                    message: format!(
                        "`{e}` is not an e-mail address (the Atlassian account of the API token)"
                    ),
                });
            }
        }
        if bitbucket_token.is_some() && bitbucket_workspaces.is_empty() {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_BITBUCKET_WORKSPACES",
                message: "a Bitbucket token is set: list the workspaces pipewright may act in"
                    .into(),
            });
        }
        let pr_branch = self
            .pr_branch
            .clone()
            .or(file.pr_branch.take())
            .unwrap_or(d.pr_branch);
        if !crate::generate::is_safe_branch(&pr_branch) {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_PR_BRANCH",
                message: format!("`{pr_branch}` is not a usable branch name"),
            });
        }
        let prs_per_hour = match &self.prs_per_hour {
            Some(t) => t.trim().parse::<u32>().map_err(|_| ConfigError::Invalid {
                key: "PIPEWRIGHT_PRS_PER_HOUR",
                message: format!("`{t}` is not a whole number"),
            })?,
            None => file.prs_per_hour.unwrap_or(d.prs_per_hour),
        };
        if prs_per_hour == 0 {
            return Err(ConfigError::Invalid {
                key: "PIPEWRIGHT_PRS_PER_HOUR",
                message: "must be at least 1".into(),
            });
        }
        let reconcile_secs = match &self.reconcile_secs {
            Some(t) => t.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                key: "PIPEWRIGHT_RECONCILE_SECS",
                message: format!("`{t}` is not a whole number of seconds"),
            })?,
            None => file.reconcile_secs.unwrap_or(d.reconcile_secs),
        };
        Ok(BotConfig {
            github_app,
            github_app_slug: self
                .github_app_slug
                .clone()
                .or(file.github_app_slug.take())
                .unwrap_or(d.github_app_slug),
            github_api_url: http_url(
                "PIPEWRIGHT_GITHUB_API_URL",
                self.github_api_url
                    .clone()
                    .or(file.github_api_url.take())
                    .unwrap_or(d.github_api_url),
            )?,
            gitlab_url: http_url(
                "PIPEWRIGHT_GITLAB_URL",
                self.gitlab_url
                    .clone()
                    .or(file.gitlab_url.take())
                    .unwrap_or(d.gitlab_url),
            )?,
            gitlab_token,
            gitlab_groups,
            bitbucket_api_url: http_url(
                "PIPEWRIGHT_BITBUCKET_API_URL",
                self.bitbucket_api_url
                    .clone()
                    .or(file.bitbucket_api_url.take())
                    .unwrap_or(d.bitbucket_api_url),
            )?,
            bitbucket_token,
            bitbucket_email,
            bitbucket_workspaces,
            pr_branch,
            prs_per_hour,
            reconcile_secs,
            dry_run: false,
            outbox: self
                .outbox
                .clone()
                .or(file.outbox.take())
                .unwrap_or(d.outbox),
            public_url: match self.public_url.clone().or(file.public_url.take()) {
                Some(u) => Some(http_url("PIPEWRIGHT_PUBLIC_URL", u)?),
                None => None,
            },
            propose_cd: self
                .propose_cd
                .clone()
                .or(file.propose_cd.take())
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<crate::deploy::DeployTarget>().map_err(|message| {
                        ConfigError::Invalid {
                            key: "PIPEWRIGHT_PROPOSE_CD",
                            message,
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        })
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// A comma-separated list of secrets from a value or from a file (not both).
fn secret_list(
    key: &'static str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Vec<Secret>, ConfigError> {
    let raw = match (value, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key,
                message: format!("set either {key} or {key}_FILE, not both"),
            })
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
            key,
            message: format!("cannot read {}: {e}", path.display()),
        })?,
        (None, None) => return Ok(Vec::new()),
    };
    let secrets: Vec<Secret> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            message: "is set but holds no secret".into(),
        });
    }
    Ok(secrets)
}

/// Standard Webhooks keys are `whsec_` + base64 of the raw HMAC key.
fn decode_signing_key(secret: &Secret) -> Result<Secret, ConfigError> {
    use base64::Engine as _;
    let text = secret.expose();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ConfigError::Invalid {
            key: "PIPEWRIGHT_GITLAB_SIGNING_KEY",
            message: "a signing key must be `whsec_` followed by base64".into(),
        })?;
    // HMAC keys are bytes; keep them in a String-based Secret via lossless hex.
    Ok(Secret::new(hex::encode(raw)))
}

impl Config {
    /// The database URL with any password replaced by `***`, for logs and `config check`.
    pub fn database_url_redacted(&self) -> String {
        redact_url_password(self.database_url.expose())
    }

    /// Is this a PostgreSQL configuration?
    pub fn is_postgres(&self) -> bool {
        self.database_url.expose().starts_with("postgres")
    }

    /// Human-readable effective configuration, every secret redacted (`config check`).
    pub fn render_redacted(&self) -> String {
        fn secrets(list: &[Secret]) -> String {
            if list.is_empty() {
                "(not set: endpoint disabled)".to_owned()
            } else {
                format!("[redacted] x{}", list.len())
            }
        }
        format!(
            "database_url = {}\nlisten = {}\nworkers = {}\ngithub_webhook_secret = {}\n\
             gitlab_webhook_secret = {}\ngitlab_signing_key = {}\nbitbucket_webhook_secret = {}\n\
             log_format = {}\ncommand_word = {}\ncredentials_key = {}\nadmin_token = {}\nconsole_sign_in = {}\nmodel_dir = {}\ndata_dir = {}\n{}",
            self.database_url_redacted(),
            self.listen,
            self.workers,
            secrets(&self.github_webhook_secrets),
            secrets(&self.gitlab_webhook_secrets),
            secrets(&self.gitlab_signing_keys),
            secrets(&self.bitbucket_webhook_secrets),
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.command_word,
            match &self.credentials_key {
                Some(k) => format!(
                    "[redacted] ids {} (new values sealed with `{}`)",
                    k.ids().collect::<Vec<_>>().join(", "),
                    k.primary_id()
                ),
                None => "(not set: deploy credentials cannot be stored)".to_owned(),
            },
            if self.console.admin_token.is_some() {
                "[redacted]"
            } else {
                "(not set)"
            },
            {
                let mut v = Vec::new();
                if self.console.github.is_some() {
                    v.push("github");
                }
                if self.console.gitlab.is_some() {
                    v.push("gitlab");
                }
                if self.console.bitbucket.is_some() {
                    v.push("bitbucket");
                }
                if v.is_empty() {
                    "(none: admin token only)".to_owned()
                } else {
                    v.join(", ")
                }
            },
            self.learn
                .model_dir
                .as_ref()
                .map_or("(not set: rules only)".to_owned(), |d| d
                    .display()
                    .to_string()),
            self.learn.data_dir.display(),
            self.bot.render(),
        )
    }

    /// A configuration for tests and benchmarks: the given database, no forge secrets.
    pub fn for_database(database_url: &str) -> Self {
        Config {
            database_url: Secret::new(database_url),
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            workers: DEFAULT_WORKERS,
            github_webhook_secrets: Vec::new(),
            gitlab_webhook_secrets: Vec::new(),
            gitlab_signing_keys: Vec::new(),
            bitbucket_webhook_secrets: Vec::new(),
            log_format: LogFormat::Text,
            command_word: "pipewright".into(),
            bot: BotConfig::default(),
            console: ConsoleConfig {
                github_web_url: "https://github.com".into(),
                bitbucket_web_url: DEFAULT_BITBUCKET_WEB_URL.into(),
                ..ConsoleConfig::default()
            },
            credentials_key: None,
            learn: LearnConfig::default(),
        }
    }
}

/// Replaces the password of `scheme://user:password@host/…` with `***`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

/// A path argument that may be empty: `PIPEWRIGHT_MODEL_DIR=` (as compose files and
/// `env` lines write to switch a feature off) means unset, which `resolve` decides;
/// clap's own path parser would refuse the empty value before that.
fn path_or_empty(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_zero_config() {
        let c = ConfigArgs::default().resolve().unwrap();
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.workers, 4);
        assert!(c.github_webhook_secrets.is_empty());
    }

    #[test]
    fn learned_detection_is_off_by_default_and_a_bad_model_dir_is_refused() {
        let c = ConfigArgs::default().resolve().unwrap();
        assert_eq!(c.learn, LearnConfig::default());
        assert!(c
            .render_redacted()
            .contains("model_dir = (not set: rules only)"));
        let dir = std::env::temp_dir();
        let c = ConfigArgs {
            model_dir: Some(dir.clone()),
            data_dir: Some("/var/lib/pw".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.learn.model_dir.as_deref(), Some(dir.as_path()));
        assert_eq!(c.learn.data_dir, PathBuf::from("/var/lib/pw"));
        let err = ConfigArgs {
            model_dir: Some("/nonexistent/model".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("PIPEWRIGHT_MODEL_DIR"), "{err}");
        // `PIPEWRIGHT_MODEL_DIR=` (empty, as compose files write) means unset.
        let c = ConfigArgs {
            model_dir: Some(PathBuf::new()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(c.learn.model_dir.is_none());
    }

    #[test]
    fn secrets_split_on_commas_and_never_print() {
        let args = ConfigArgs {
            github_webhook_secret: Some("old, new".into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.github_webhook_secrets.len(), 2);
        assert_eq!(c.github_webhook_secrets[1].expose(), "new");
        let shown = format!("{c:?}\n{}", c.render_redacted());
        assert!(!shown.contains("old") && !shown.contains("new,"), "{shown}");
        assert!(shown.contains("[redacted] x2"));
    }

    #[test]
    fn bad_listen_address_names_the_variable() {
        let args = ConfigArgs {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid PIPEWRIGHT_LISTEN: `localhost`"),
            "{err}"
        );
    }

    #[test]
    fn value_and_file_are_exclusive() {
        let args = ConfigArgs {
            bitbucket_webhook_secret: Some("a".into()),
            bitbucket_webhook_secret_file: Some("/nonexistent".into()),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET: set either \
             PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET or PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET_FILE, not both"
        );
    }

    #[test]
    fn file_config_rejects_unknown_keys_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipewright.toml");
        std::fs::write(&path, "workers = 2\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            workers: Some("7".into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.workers, 7);
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");

        std::fs::write(&path, "wrokers = 2\n").unwrap();
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("unknown field `wrokers`"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn signing_key_must_be_whsec_base64() {
        let ok = ConfigArgs {
            gitlab_signing_key: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            ..Default::default()
        };
        assert_eq!(ok.resolve().unwrap().gitlab_signing_keys.len(), 1);
        let bad = ConfigArgs {
            gitlab_signing_key: Some("whsec_***".into()),
            ..Default::default()
        };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://bot:hunter2@db:5432/pw"),
            "postgres://bot:***@db:5432/pw"
        );
        assert_eq!(
            redact_url_password("postgres://bot@db/pw"),
            "postgres://bot@db/pw"
        );
        assert_eq!(redact_url_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn console_settings_are_validated() {
        let base = ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        };
        let e = ConfigArgs {
            admin_token: Some("short".into()),
            ..base.clone()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("PIPEWRIGHT_ADMIN_TOKEN"), "{e}");
        let e = ConfigArgs {
            gitlab_client_id: Some("app".into()),
            ..base.clone()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("PIPEWRIGHT_GITLAB_CLIENT_SECRET"), "{e}");
        let c = ConfigArgs {
            admin_token: Some("a-long-enough-operator-token".into()),
            github_client_id: Some("Iv1.abc".into()),
            github_client_secret: Some("shh-secret".into()),
            github_api_url: Some("https://ghe.example.com/api/v3".into()),
            ..base
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console.github_web_url, "https://ghe.example.com");
        let shown = format!("{c:?}\n{}", c.render_redacted());
        assert!(
            !shown.contains("a-long-enough") && !shown.contains("shh-secret"),
            "{shown}"
        );
        assert_eq!(
            github_web_url_for("https://api.github.com/"),
            "https://github.com"
        );
    }

    #[test]
    fn empty_values_mean_unset() {
        let c = ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            github_app_id: Some(String::new()),
            gitlab_token: Some(" ".into()),
            github_webhook_secret: Some(String::new()),
            prs_per_hour: Some(String::new()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(c.bot.github_app.is_none() && c.bot.gitlab_token.is_none());
        assert!(c.github_webhook_secrets.is_empty());
        assert_eq!(c.bot.prs_per_hour, DEFAULT_PRS_PER_HOUR);
    }

    #[test]
    fn bot_settings_are_validated_and_name_their_variable() {
        let err = |a: ConfigArgs| a.resolve().unwrap_err().to_string();
        let base = ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        };
        let e = err(ConfigArgs {
            gitlab_token: Some("glpat-x".into()),
            ..base.clone()
        });
        assert!(e.contains("PIPEWRIGHT_GITLAB_GROUPS"), "{e}");
        let e = err(ConfigArgs {
            prs_per_hour: Some("0".into()),
            ..base.clone()
        });
        assert!(e.contains("PIPEWRIGHT_PRS_PER_HOUR"), "{e}");
        let e = err(ConfigArgs {
            pr_branch: Some("../x".into()),
            ..base.clone()
        });
        assert!(e.contains("PIPEWRIGHT_PR_BRANCH"), "{e}");
        let e = err(ConfigArgs {
            github_app_id: Some("12".into()),
            ..base.clone()
        });
        assert!(e.contains("PIPEWRIGHT_GITHUB_PRIVATE_KEY"), "{e}");
        let e = err(ConfigArgs {
            github_api_url: Some("api.github.com".into()),
            ..base.clone()
        });
        assert!(e.contains("PIPEWRIGHT_GITHUB_API_URL"), "{e}");
        let c = ConfigArgs {
            bitbucket_token: Some("t".into()),
            bitbucket_workspaces: Some(" Acme , other ".into()),
            github_api_url: Some("https://ghe.example.com/api/v3/".into()),
            ..base
        }
        .resolve()
        .unwrap();
        assert_eq!(c.bot.bitbucket_workspaces, ["acme", "other"]);
        assert_eq!(c.bot.github_api_url, "https://ghe.example.com/api/v3");
        assert!(!format!("{:?}", c.bot).contains("\"t\""));
    }

    #[test]
    fn credentials_key_is_validated_once_and_never_printed() {
        use base64::Engine as _;
        let base = ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        };
        let c = base.resolve().unwrap();
        assert!(c.credentials_key.is_none());
        let new = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let old = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        let c = ConfigArgs {
            credentials_key: Some(format!("2026:{new}, 2025:{old}")),
            ..base.clone()
        }
        .resolve()
        .unwrap();
        let ring = c.credentials_key.as_ref().unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["2026", "2025"]);
        let shown = format!("{c:?}\n{}", c.render_redacted());
        assert!(!shown.contains(&new) && !shown.contains(&old), "{shown}");
        assert!(shown.contains("ids 2026, 2025"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("# current\nk1:{new}\n")).unwrap();
        let c = ConfigArgs {
            credentials_key_file: Some(path),
            ..base.clone()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.credentials_key.unwrap().primary_id(), "k1");

        let e = ConfigArgs {
            credentials_key: Some("k1:dG9vIHNob3J0".into()),
            ..base
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid PIPEWRIGHT_CREDENTIALS_KEY: key `k1`"),
            "{e}"
        );
        assert!(!e.contains("dG9vIHNob3J0"), "{e}");
    }
}
