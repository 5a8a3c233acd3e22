//! The command line: `serve`, `worker`, `migrate`, `jobs …`, `config check`. Parses
//! arguments, resolves configuration once, and hands off to the library. The only module
//! that prints to stdout.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::config::{Config, ConfigArgs};
use crate::db::Db;
use crate::queue::store::{self, JobRow, JobState, ListFilter, RetryError};

/// pipewright: gives every repository the CI/CD it is missing.
#[derive(Debug, Parser)]
#[command(name = "pipewright", version, about)]
pub struct Cli {
    /// Configuration (flags, `PIPEWRIGHT_*` variables, optional TOML file).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks and run workers (embedded SQLite by default; no other service needed).
    Serve {
        /// Read from the forges but write nothing: record every would-be pull request
        /// (files and body) and comment under the outbox directory (PIPEWRIGHT_OUTBOX).
        #[arg(long)]
        dry_run: bool,
    },
    /// GitLab setup.
    Gitlab {
        /// GitLab subcommand.
        #[command(subcommand)]
        command: GitlabCommand,
    },
    /// Bitbucket Cloud setup.
    Bitbucket {
        /// Bitbucket subcommand.
        #[command(subcommand)]
        command: BitbucketCommand,
    },
    /// Queue a reconcile pass now: list an installation's repositories and analyse the new
    /// or changed ones (normally runs every PIPEWRIGHT_RECONCILE_SECS).
    Reconcile {
        /// Forge.
        #[arg(long)]
        forge: crate::forge::Forge,
        /// Installation id (GitHub), top-level group (GitLab) or workspace uuid (Bitbucket).
        #[arg(long)]
        installation: String,
        /// Wait for the pass and the analyses it queues, showing progress (the workers of
        /// a running `serve` or `worker` do the work).
        #[arg(long)]
        wait: bool,
    },
    /// Run workers only (scale-out replicas sharing a PostgreSQL database).
    Worker {
        /// Serve `/healthz`, `/readyz` and `/metrics` on this address (for probes and
        /// scraping); off unless given, so a worker beside `serve` never fights for its port.
        #[arg(long, env = "PIPEWRIGHT_WORKER_LISTEN")]
        health_listen: Option<std::net::SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect and repair the job queue.
    Jobs {
        /// Jobs subcommand.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Show what pipewright detects in a local checkout (no forge, no database).
    Analyze {
        /// Repository directory.
        path: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show the rule and file behind every conclusion.
        #[arg(long)]
        explain: bool,
        /// The forge hosting the repository: `missing` counts only CI that runs there
        /// (default: from the checkout's `origin` remote; unknown: any CI counts).
        #[arg(long)]
        forge: Option<crate::forge::Forge>,
    },
    /// Write (or print) the CI files pipewright would propose for a local checkout.
    Generate {
        /// Repository directory.
        path: std::path::PathBuf,
        /// CI provider (only github is implemented so far).
        #[arg(long, default_value = "github")]
        provider: crate::generate::Provider,
        /// Write the files under this directory, at their repository paths.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Branch whose pushes run CI.
        #[arg(long, default_value = "main")]
        branch: String,
        /// Directory of templates overriding the built-in ones.
        #[arg(long, env = "PIPEWRIGHT_TEMPLATE_DIR")]
        templates: Option<std::path::PathBuf>,
        /// Switch a feature on (repeatable): lint, matrix, docker, security, coverage, release.
        #[arg(long = "with", value_enum)]
        with: Vec<crate::generate::Feature>,
        /// Switch a feature off (repeatable).
        #[arg(long = "without", value_enum)]
        without: Vec<crate::generate::Feature>,
        /// Add continuous delivery to a target (repeatable): fly, aws, gcp, azure,
        /// digitalocean, ssh. Writes the target's config files and a Dockerfile when the
        /// repository has none. Exit status 3 when the repository has nothing to deploy.
        #[arg(long = "deploy")]
        deploy: Vec<crate::deploy::DeployTarget>,
    },
    /// Run the proposed CI's steps on a local checkout with this machine's toolchains:
    /// each job on a fresh copy, step by step; exit 0 only if every job passed.
    Try {
        /// Repository directory.
        path: std::path::PathBuf,
        /// Only the jobs whose id or name contains this.
        #[arg(long)]
        job: Option<String>,
        /// Output format (the closing report; progress goes to stderr).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Keep each job's checkout and logs under this directory (default: a temporary
        /// directory, removed at the end unless a job failed).
        #[arg(long)]
        work_dir: Option<std::path::PathBuf>,
    },
    /// Print forge setup documents.
    Manifest {
        /// Which manifest.
        #[command(subcommand)]
        command: ManifestCommand,
    },
    /// The pinned GitHub Actions table.
    Pins {
        /// Pins subcommand.
        #[command(subcommand)]
        command: PinsCommand,
    },
    /// Deploy credentials, stored encrypted (PIPEWRIGHT_CREDENTIALS_KEY); values are read
    /// from a file or stdin, never from the command line, and never shown again.
    Credentials {
        /// Credentials subcommand.
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// The audit trail: who changed what (credentials, deploy setup, console actions).
    Audit {
        /// Audit subcommand.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Configuration tools.
    Config {
        /// Config subcommand.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Learned detection's vector indexes (needs PIPEWRIGHT_MODEL_DIR).
    Index {
        /// Index subcommand.
        #[command(subcommand)]
        command: IndexCommand,
    },
}

/// `pipewright index …`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Per installation: vectors, model hash, size on disk; and the archetype index.
    Stats {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Rebuild index files from the database (one installation row id, or all).
    Rebuild {
        /// Installation row id (as `index stats` shows); all when omitted.
        #[arg(long)]
        installation: Option<i64>,
    },
}

/// `pipewright jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (queued, running, succeeded, failed, dead).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one job with its payload and last error.
    Show {
        /// Job id.
        id: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Queue a dead (or failed) job again, attempts reset.
    Retry {
        /// Job id.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Retry every dead job.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete dead jobs.
    PurgeDead {
        /// Only those dead for longer than this many days.
        #[arg(long, default_value_t = 0)]
        older_than_days: i64,
    },
}

/// `pipewright gitlab …`
#[derive(Debug, Subcommand)]
pub enum GitlabCommand {
    /// Register pipewright's webhook on every project of a group (idempotent), and record
    /// the group so the reconcile pass analyses it and covers new projects.
    Connect {
        /// Top-level group path (must be in PIPEWRIGHT_GITLAB_GROUPS).
        #[arg(long)]
        group: String,
        /// Public base URL of this pipewright (hooks go to URL/webhooks/gitlab); defaults
        /// to PIPEWRIGHT_PUBLIC_URL.
        #[arg(long)]
        url: Option<String>,
    },
}

/// `pipewright bitbucket …`
#[derive(Debug, Subcommand)]
pub enum BitbucketCommand {
    /// Register a workspace webhook for pipewright (idempotent) and record the workspace.
    Connect {
        /// Workspace slug (must be in PIPEWRIGHT_BITBUCKET_WORKSPACES).
        #[arg(long)]
        workspace: String,
        /// Public base URL of this pipewright (hooks go to URL/webhooks/bitbucket); defaults
        /// to PIPEWRIGHT_PUBLIC_URL.
        #[arg(long)]
        url: Option<String>,
    },
}

/// `pipewright manifest …`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// The GitHub App manifest for GitHub's manifest flow, with this deployment's URLs.
    Github {
        /// Public base URL of this pipewright (webhooks go to URL/webhooks/github).
        #[arg(long)]
        url: String,
        /// App name.
        #[arg(long, default_value = "pipewright")]
        name: String,
    },
}

/// `pipewright pins …`
#[derive(Debug, Subcommand)]
pub enum PinsCommand {
    /// Print the current table (action, version, SHA).
    List,
    /// Ask the GitHub API for each action's latest release and print a refreshed table.
    Refresh {
        /// GitHub API base URL.
        #[arg(
            long,
            env = "PIPEWRIGHT_GITHUB_API_URL",
            default_value = "https://api.github.com"
        )]
        api_url: String,
        /// Name of an environment variable holding a token (raises the rate limit).
        #[arg(long, default_value = "GITHUB_TOKEN")]
        token_env: String,
    },
}

/// Whose credential: an installation's default, or one of its repositories' override.
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialScopeArgs {
    /// Forge of the installation.
    #[arg(long, default_value = "github")]
    pub forge: crate::forge::Forge,
    /// Installation: GitHub installation id or organisation, GitLab top-level group,
    /// Bitbucket workspace (slug or UUID).
    #[arg(long)]
    pub installation: String,
    /// A repository of the installation (full name or id): the value overrides the
    /// installation's default for it alone.
    #[arg(long)]
    pub repo: Option<String>,
    /// Deploy target (fly, aws, gcp, azure, digitalocean, ssh).
    #[arg(long)]
    pub target: crate::deploy::DeployTarget,
    /// The credential's name (e.g. FLY_API_TOKEN); optional when the target has one secret.
    #[arg(long)]
    pub name: Option<String>,
    /// Who is acting, for the audit trail (default: PIPEWRIGHT_ACTOR, SUDO_USER, USER).
    #[arg(long, env = "PIPEWRIGHT_ACTOR")]
    pub actor: Option<String>,
}

/// `pipewright credentials …`
#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Store (or replace) a value, encrypted; it is checked against the target's schema.
    Set {
        /// Whose, which.
        #[command(flatten)]
        scope: CredentialScopeArgs,
        /// Read the value from this file (`-` = standard input).
        #[arg(long)]
        from_file: std::path::PathBuf,
    },
    /// Names, scopes and key ids of stored credentials (never their values).
    List {
        /// Forge.
        #[arg(long, default_value = "github")]
        forge: crate::forge::Forge,
        /// Only this installation.
        #[arg(long)]
        installation: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete a value (or all of a target's values with no --name).
    Delete {
        /// Whose, which.
        #[command(flatten)]
        scope: CredentialScopeArgs,
    },
    /// Re-encrypt every value under the first key of PIPEWRIGHT_CREDENTIALS_KEY (list
    /// the new key first and keep the old ones until this has run).
    RotateKey {
        /// Who is acting, for the audit trail.
        #[arg(long, env = "PIPEWRIGHT_ACTOR")]
        actor: Option<String>,
    },
    /// What each target reads: names, which are secret, whether required.
    Schema {
        /// Only this target.
        #[arg(long)]
        target: Option<crate::deploy::DeployTarget>,
    },
}

/// `pipewright audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recorded actions, newest first.
    List {
        /// Only this forge.
        #[arg(long)]
        forge: Option<crate::forge::Forge>,
        /// Only this installation (GitHub installation id, GitLab group, Bitbucket workspace).
        #[arg(long)]
        installation: Option<String>,
        /// Only actions starting with this (e.g. `credentials.`).
        #[arg(long)]
        action: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// `pipewright config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate and print the effective configuration, secrets redacted.
    Check,
}

/// Output format of inspection commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable.
    Text,
    /// JSON.
    Json,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Local commands need no server configuration.
    match &cli.command {
        Command::Analyze {
            path,
            format,
            explain,
            forge,
        } => {
            return analyze(
                path,
                *format,
                *explain,
                *forge,
                local_model_dir(&cli.config).as_deref(),
            )
        }
        Command::Generate {
            path,
            provider,
            out,
            branch,
            templates,
            with,
            without,
            deploy,
        } => {
            let mut target = crate::generate::Target::github();
            target.provider = *provider;
            target.default_branch = branch.clone();
            target.template_dir = templates.clone();
            return generate(
                path,
                target,
                with,
                without,
                deploy,
                out.as_deref(),
                local_model_dir(&cli.config).as_deref(),
            );
        }
        Command::Try {
            path,
            job,
            format,
            work_dir,
        } => return try_local(path, job.clone(), *format, work_dir.clone()),
        Command::Pins { command } => return pins(command).await,
        Command::Manifest {
            command: ManifestCommand::Github { url, name },
        } => {
            return match crate::bot::manifest::github(url, name) {
                Ok(m) => {
                    println!("{m}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("pipewright: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        _ => {}
    }
    let config = match cli.config.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pipewright: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::telemetry::init(config.log_format);
    match cli.command {
        Command::Serve { dry_run } => {
            let mut config = config;
            config.bot.dry_run = dry_run;
            crate::app::serve(config).await?
        }
        Command::Gitlab {
            command: GitlabCommand::Connect { group, url },
        } => return crate::app::gitlab_connect(&config, &group, url.as_deref()).await,
        Command::Bitbucket {
            command: BitbucketCommand::Connect { workspace, url },
        } => return crate::app::bitbucket_connect(&config, &workspace, url.as_deref()).await,
        Command::Reconcile {
            forge,
            installation,
            wait,
        } => {
            let db = Db::connect_and_migrate(config.database_url.expose()).await?;
            let started = Clock::System.now();
            let job = crate::jobs::ReconcileInstallation {
                forge,
                installation: crate::forge::InstallationId(installation.clone()),
                period: -started,
            };
            let id = store::enqueue(&db, &crate::queue::NewJob::of(&job), started).await?;
            match id {
                Some(id) => println!("queued reconcile job {id}"),
                None => println!("a reconcile pass is already queued"),
            }
            let code = match (id, wait) {
                (Some(id), true) => {
                    crate::app::wait_for_reconcile(&db, id, forge, &installation, started).await?
                }
                _ => ExitCode::SUCCESS,
            };
            db.close().await;
            return Ok(code);
        }
        Command::Worker { health_listen } => crate::app::worker(config, health_listen).await?,
        Command::Migrate => {
            Db::connect_and_migrate(config.database_url.expose())
                .await
                .with_context(|| format!("database {}", config.database_url_redacted()))?
                .close()
                .await;
            println!("migrations applied to {}", config.database_url_redacted());
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.render_redacted());
            println!("# configuration is valid");
        }
        Command::Jobs { command } => return jobs(&config, command).await,
        Command::Audit { command } => return audit(&config, command).await,
        Command::Credentials { command } => return credentials(&config, command).await,
        Command::Index { command } => return index(&config, command).await,
        Command::Analyze { .. }
        | Command::Generate { .. }
        | Command::Try { .. }
        | Command::Pins { .. }
        | Command::Manifest { .. } => {
            unreachable!("local commands return before configuration is resolved")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The model folder for local commands (`analyze`, `generate`): the flag or
/// PIPEWRIGHT_MODEL_DIR, an empty value meaning unset.
fn local_model_dir(args: &ConfigArgs) -> Option<std::path::PathBuf> {
    args.model_dir.clone().filter(|d| !d.as_os_str().is_empty())
}

/// Reads a local checkout (with the READMEs fingerprints use when a model is given) and
/// analyses it: rules, then the archetypes.
fn analyze_local(
    path: &std::path::Path,
    model_dir: Option<&std::path::Path>,
) -> anyhow::Result<(crate::analyze::RepoTree, crate::analyze::Analysis)> {
    let Some(dir) = model_dir else {
        let tree = crate::analyze::load_local(path, &crate::analyze::Limits::default())?;
        let analysis = crate::analyze::analyze(&tree);
        return Ok((tree, analysis));
    };
    let tree = crate::analyze::tree::load_local_learned(path, &crate::analyze::Limits::default())?;
    let learner = crate::learn::Learner::load(dir, None)?;
    let analysis = learner.analyze_local(&tree)?;
    Ok((tree, analysis))
}

fn analyze(
    path: &std::path::Path,
    format: Format,
    explain: bool,
    forge: Option<crate::forge::Forge>,
    model_dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (_, mut analysis) = analyze_local(path, model_dir)?;
    if let Some(f) = forge.or_else(|| forge_of_checkout(path)) {
        analysis.judge_for(f);
    }
    match format {
        Format::Json => {
            if !explain {
                for p in &mut analysis.projects {
                    p.reasons.clear();
                }
            }
            println!("{}", serde_json::to_string_pretty(&analysis)?);
        }
        Format::Text => print!("{}", crate::analyze::render_text(&analysis, explain)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The forge of a checkout, from the host of its `origin` remote in `.git/config`
/// (github.com, bitbucket.org, gitlab.com or a host named gitlab.*); `None` when there is
/// no such remote or the host says nothing.
fn forge_of_checkout(path: &std::path::Path) -> Option<crate::forge::Forge> {
    use crate::forge::Forge;
    let config = std::fs::read_to_string(path.join(".git").join("config")).ok()?;
    let mut in_origin = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
            continue;
        }
        let Some(url) = line
            .strip_prefix("url")
            .map(str::trim_start)
            .and_then(|l| l.strip_prefix('='))
            .filter(|_| in_origin)
        else {
            continue;
        };
        // `https://host/…`, `ssh://git@host/…` or scp-like `git@host:…`.
        let rest = url.trim().split("://").last()?;
        let host = rest
            .split(['/', ':'])
            .next()?
            .rsplit('@')
            .next()?
            .to_ascii_lowercase();
        return match host.as_str() {
            "github.com" => Some(Forge::Github),
            "bitbucket.org" => Some(Forge::Bitbucket),
            h if h == "gitlab.com" || h.starts_with("gitlab.") => Some(Forge::Gitlab),
            _ => None,
        };
    }
    None
}

async fn pins(command: &PinsCommand) -> anyhow::Result<ExitCode> {
    use crate::generate::pins;
    match command {
        PinsCommand::List => {
            for p in pins::PINS {
                println!("{:<32} {:<10} {}", p.action, p.version, p.sha);
            }
        }
        PinsCommand::Refresh { api_url, token_env } => {
            let token = std::env::var(token_env).ok().filter(|t| !t.is_empty());
            let fresh = pins::refresh(api_url, token.as_deref()).await?;
            for p in &fresh {
                if p.version != p.old_version {
                    eprintln!("{}: {} -> {}", p.action, p.old_version, p.version);
                }
            }
            print!("{}", pins::render_table(&fresh));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(
    path: &std::path::Path,
    target: crate::generate::Target,
    with: &[crate::generate::Feature],
    without: &[crate::generate::Feature],
    deploy: &[crate::deploy::DeployTarget],
    out: Option<&std::path::Path>,
    model_dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (tree, analysis) = analyze_local(path, model_dir)?;
    // The repository's .pipewright.yml first, then the command line on top.
    // Deploy targets: the file's `deploy:` entries, then `--deploy` adds targets with
    // default settings.
    let mut deploy_settings: Vec<crate::deploy::DeploySettings> = Vec::new();
    let mut target = match crate::repo_config::load(&tree) {
        Ok(Some((_, config))) => {
            deploy_settings.extend(config.deploy.iter().map(|d| d.settings()));
            target.with_repo_config(&config)
        }
        Ok(None) => target,
        Err(e) => {
            eprintln!("pipewright: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for f in with {
        target.features.set(*f, true);
    }
    for f in without {
        target.features.set(*f, false);
    }
    if let Err(e) = crate::generate::check_branches(&target) {
        eprintln!("pipewright: {e}");
        return Ok(ExitCode::from(1));
    }
    for t in deploy {
        if !deploy_settings.iter().any(|s| s.target == *t) {
            deploy_settings.push(crate::deploy::DeploySettings::new(*t));
        }
    }
    // Deploy files first: their targets join the plan, whose delivery workflow the
    // renderers lay out beside CI.
    let mut deploy_files = Vec::new();
    if !deploy_settings.is_empty() {
        let repo_name = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".into());
        match crate::deploy::prepare(&analysis, tree.files(), &repo_name, &deploy_settings) {
            Ok(d) => {
                deploy_files = d.files;
                target.deploy = d.contexts;
            }
            Err(
                e @ (crate::deploy::DeployError::NothingToDeploy
                | crate::deploy::DeployError::NoContainer(_)),
            ) => {
                eprintln!("pipewright: {e}");
                return Ok(ExitCode::from(3));
            }
            Err(e) => {
                eprintln!("pipewright: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let plan = crate::plan::build(&analysis, &target);
    let mut files = match crate::generate::render_plan(&plan, &target) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pipewright: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for n in &plan.notes {
        eprintln!("note: {n}");
    }
    files.extend(deploy_files);
    if files.is_empty() {
        eprintln!("pipewright: nothing to generate (no buildable project or Dockerfile found)");
    }
    for f in &files {
        match out {
            Some(dir) => {
                let dest = dir.join(&f.path);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&dest, &f.content)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                println!("wrote {}", dest.display());
            }
            None => print!("# ---- {} ----\n{}", f.path, f.content),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pipewright try`: the plan for the checkout, run locally.
fn try_local(
    path: &std::path::Path,
    job: Option<String>,
    format: Format,
    work_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let tree = crate::analyze::load_local(path, &crate::analyze::Limits::default())?;
    let analysis = crate::analyze::analyze(&tree);
    let target = match crate::repo_config::load(&tree) {
        Ok(Some((_, config))) => crate::generate::Target::github().with_repo_config(&config),
        Ok(None) => crate::generate::Target::github(),
        Err(e) => {
            eprintln!("pipewright: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let plan = crate::plan::build(&analysis, &target);
    if plan.ci_workflows().next().is_none() {
        eprintln!("pipewright: nothing to try (no buildable project found)");
        return Ok(ExitCode::from(2));
    }
    let temp = match &work_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("pipewright-try-")
                .tempdir()?,
        ),
    };
    let work = work_dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .expect("one of them is set");
    let opts = crate::plan::local::Options {
        job,
        interactive: std::io::stderr().is_terminal(),
        cache_dir: crate::plan::local::default_cache_dir(),
        work_dir: work.clone(),
    };
    let mut err = std::io::stderr();
    let root = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let report = crate::plan::local::run(&plan, &root, &opts, &mut err)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", crate::plan::local::render_table(&report)),
    }
    let code = report.exit_code();
    if code == 1 {
        if let Some(t) = temp {
            // Keep the failed jobs' checkouts and logs for inspection.
            let kept = t.keep();
            eprintln!("pipewright: logs kept in {}", kept.display());
        }
    }
    Ok(ExitCode::from(code as u8))
}

async fn index(config: &Config, command: IndexCommand) -> anyhow::Result<ExitCode> {
    let Some(model_dir) = &config.learn.model_dir else {
        eprintln!("pipewright: set PIPEWRIGHT_MODEL_DIR: the indexes hold that model's vectors");
        return Ok(ExitCode::from(2));
    };
    let db = Db::connect_and_migrate(config.database_url.expose())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    let learner = crate::learn::Learner::load(model_dir, Some(&config.learn.data_dir))?;
    let siblings = learner.siblings();
    match command {
        IndexCommand::Stats { format } => {
            let archetype_file = crate::learn::ArchetypeIndex::path(
                &config.learn.data_dir,
                learner.model_hash(),
                learner.archetypes().corpus(),
            );
            let archetype_bytes = std::fs::metadata(&archetype_file).map_or(0, |m| m.len());
            let tenants = siblings.stats(&db).await?;
            let cached = crate::db::learn::embedding_counts(&db).await?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "model_hash": learner.model_hash(),
                        "data_dir": config.learn.data_dir,
                        "archetypes": {
                            "exemplars": learner.archetypes().len(),
                            "corpus_hash": learner.archetypes().corpus().hash,
                            "bytes_on_disk": archetype_bytes,
                        },
                        "installations": tenants,
                        "cached_embeddings": cached.iter().map(|(m, n)| serde_json::json!({"model_hash": m, "vectors": n})).collect::<Vec<_>>(),
                    }))?
                ),
                Format::Text => {
                    println!(
                        "model {}  data dir {}",
                        learner.model_hash(),
                        config.learn.data_dir.display()
                    );
                    println!(
                        "archetypes: {} exemplars, corpus {}, {} bytes on disk",
                        learner.archetypes().len(),
                        learner.archetypes().corpus().hash,
                        archetype_bytes
                    );
                    println!(
                        "{:<14} {:>8} {:>9} {:>14}",
                        "installation", "vectors", "recorded", "bytes on disk"
                    );
                    for t in &tenants {
                        println!(
                            "{:<14} {:>8} {:>9} {:>14}",
                            t.installation, t.vectors, t.recorded, t.bytes_on_disk
                        );
                    }
                    for (m, n) in &cached {
                        println!("cached embeddings of model {m}: {n}");
                    }
                }
            }
        }
        IndexCommand::Rebuild { installation } => {
            let ids: Vec<i64> = match installation {
                Some(i) => vec![i],
                None => crate::db::learn::installation_counts(&db)
                    .await?
                    .into_iter()
                    .filter(|r| r.5 > 0)
                    .map(|r| r.0)
                    .collect(),
            };
            for id in ids {
                let started = std::time::Instant::now();
                let n = siblings.rebuild(&db, id).await?;
                println!(
                    "installation {id}: {n} vectors rebuilt from the database in {} ms",
                    started.elapsed().as_millis()
                );
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn jobs(config: &Config, command: JobsCommand) -> anyhow::Result<ExitCode> {
    let db = Db::connect_and_migrate(config.database_url.expose())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    let now = Clock::System.now();
    let code = match command {
        JobsCommand::List {
            state,
            kind,
            limit,
            format,
        } => {
            let state = match state.map(|s| s.parse::<JobState>()).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("pipewright: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let rows = store::list(&db, &ListFilter { state, kind, limit }).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Text => print!("{}", render_table(&rows, now)),
            }
            ExitCode::SUCCESS
        }
        JobsCommand::Show { id, format } => match store::get(&db, id).await? {
            None => {
                eprintln!("pipewright: job {id} does not exist");
                ExitCode::from(1)
            }
            Some(job) => {
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&job)?),
                    Format::Text => print!("{}", render_job(&job)),
                }
                ExitCode::SUCCESS
            }
        },
        JobsCommand::Retry { id, all_dead } => {
            if all_dead {
                let (revived, skipped) = store::retry_all_dead(&db, now).await?;
                println!("queued {} dead job(s) again", revived.len());
                if !skipped.is_empty() {
                    println!("skipped {skipped:?}: a live job with the same dedupe key exists");
                }
                ExitCode::SUCCESS
            } else {
                let id = id.context("a job id or --all-dead is required")?;
                match store::retry(&db, id, now).await {
                    Ok(()) => {
                        println!("job {id} queued again");
                        ExitCode::SUCCESS
                    }
                    Err(RetryError::Db(e)) => return Err(e.into()),
                    Err(e) => {
                        eprintln!("pipewright: {e}");
                        ExitCode::from(1)
                    }
                }
            }
        }
        JobsCommand::PurgeDead { older_than_days } => {
            let before = now - older_than_days.max(0) * 24 * 60 * 60 * 1000;
            let n = store::purge_dead(&db, before + 1).await?;
            println!("deleted {n} dead job(s)");
            ExitCode::SUCCESS
        }
    };
    db.close().await;
    Ok(code)
}

/// The person at the shell: `--actor`/PIPEWRIGHT_ACTOR, else the sudo user, else USER.
fn shell_actor(explicit: Option<String>) -> crate::db::audit::Actor {
    let name = explicit
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    crate::db::audit::Actor::cli(name.chars().take(100).collect::<String>())
}

fn read_value(path: &std::path::Path) -> anyhow::Result<crate::config::Secret> {
    use std::io::Read as _;
    let mut buf = String::new();
    let limit = (crate::credentials::MAX_VALUE_BYTES + 1) as u64;
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_string(&mut buf)
            .context("cannot read the value from standard input (UTF-8 text expected)")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_string(&mut buf))
            .with_context(|| format!("cannot read {} (UTF-8 text expected)", path.display()))?;
    }
    Ok(crate::config::Secret::new(buf))
}

async fn credentials(config: &Config, command: CredentialsCommand) -> anyhow::Result<ExitCode> {
    use crate::credentials as creds;
    if let CredentialsCommand::Schema { target } = &command {
        for t in crate::deploy::TARGETS {
            if target.is_some_and(|x| x != t) {
                continue;
            }
            let spec = t.spec();
            println!(
                "{} ({}){}",
                spec.id,
                spec.name,
                if spec.oidc {
                    ", OIDC: no stored cloud key"
                } else {
                    ""
                }
            );
            for f in spec.credentials {
                println!(
                    "  {:<32} {:<8} {:<9} {}",
                    f.name,
                    if f.secret { "secret" } else { "variable" },
                    if f.required { "required" } else { "optional" },
                    f.description
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let db = Db::connect_and_migrate(config.database_url.expose())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    let now = Clock::System.now();
    let keyring = config.credentials_key.as_ref();
    let scope_of = |a: &CredentialScopeArgs| creds::Scope {
        forge: a.forge,
        installation: a.installation.clone(),
        repo: a.repo.clone(),
    };
    let result: Result<(), creds::CredentialError> = match command {
        CredentialsCommand::Set { scope, from_file } => {
            // Refuse before reading anything when there is no key to seal with.
            if keyring.is_none() {
                Err(creds::CredentialError::NoKey)
            } else {
                let value = read_value(&from_file)?;
                creds::set(
                    &db,
                    keyring,
                    &scope_of(&scope),
                    scope.target,
                    scope.name.as_deref(),
                    &value,
                    &shell_actor(scope.actor.clone()),
                    now,
                )
                .await
                .map(|name| {
                    println!(
                        "stored {name} for {} {}{} ({} target), encrypted with key `{}`",
                        scope.forge,
                        scope.installation,
                        scope
                            .repo
                            .as_deref()
                            .map(|r| format!(" / {r}"))
                            .unwrap_or_default(),
                        scope.target,
                        keyring.map(|k| k.primary_id()).unwrap_or_default()
                    )
                })
            }
        }
        CredentialsCommand::List {
            forge,
            installation,
            format,
        } => creds::list(&db, forge, installation.as_deref())
            .await
            .map(|rows| match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
                ),
                Format::Text => {
                    println!(
                        "{:<24}  {:<28}  {:<13}  {:<32}  {:<10}  UPDATED",
                        "INSTALLATION", "SCOPE", "TARGET", "NAME", "KEY"
                    );
                    for r in &rows {
                        let scope = if r.repository.is_empty() {
                            "(installation default)".to_owned()
                        } else {
                            r.repository_name
                                .clone()
                                .unwrap_or_else(|| r.repository.clone())
                        };
                        println!(
                            "{:<24}  {:<28}  {:<13}  {:<32}  {:<10}  {}",
                            r.installation,
                            scope,
                            r.target,
                            r.name,
                            r.key_id,
                            ago(now, r.updated_at)
                        );
                    }
                    if rows.is_empty() {
                        println!("(no credentials)");
                    }
                }
            }),
        CredentialsCommand::Delete { scope } => creds::delete(
            &db,
            &scope_of(&scope),
            scope.target,
            scope.name.as_deref(),
            &shell_actor(scope.actor.clone()),
            now,
        )
        .await
        .map(|n| println!("deleted {n} value(s)")),
        CredentialsCommand::RotateKey { actor } => {
            creds::rotate_key(&db, keyring, &shell_actor(actor), now)
                .await
                .map(|r| {
                    println!(
                        "re-encrypted {} value(s) with key `{}`{}",
                        r.resealed,
                        keyring.map(|k| k.primary_id()).unwrap_or_default(),
                        if r.raced > 0 {
                            format!(" ({} changed meanwhile and were left as set)", r.raced)
                        } else {
                            String::new()
                        }
                    )
                })
        }
        CredentialsCommand::Schema { .. } => Ok(()),
    };
    db.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(creds::CredentialError::Db(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("pipewright: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn audit(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let db = Db::connect_and_migrate(config.database_url.expose())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    let now = Clock::System.now();
    match command {
        AuditCommand::List {
            forge,
            installation,
            action,
            limit,
            format,
        } => {
            let filter = crate::db::audit::AuditFilter {
                forge: forge.map(|f| f.as_str().to_owned()),
                installation,
                action_prefix: action,
                limit,
                ..Default::default()
            };
            let rows = crate::db::audit::list(&db, &filter).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Text => print!("{}", render_audit(&rows, now)),
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

fn render_audit(rows: &[crate::db::audit::AuditRow], now: i64) -> String {
    let mut out = format!(
        "{:>6}  {:<9}  {:<22}  {:<24}  {:<40}  {}\n",
        "ID", "WHEN", "WHO", "ACTION", "ON", "DETAILS"
    );
    for r in rows {
        let on = [
            r.forge.as_deref(),
            r.installation.as_deref(),
            r.repository_name.as_deref().or(r.repository.as_deref()),
            r.target.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
        out.push_str(&format!(
            "{:>6}  {:<9}  {:<22}  {:<24}  {:<40}  {}\n",
            r.id,
            ago(now, r.at),
            format!("{}:{}", r.actor.kind.as_str(), r.actor.name),
            r.action,
            on,
            r.details
        ));
    }
    if rows.is_empty() {
        out.push_str("(no entries)\n");
    }
    out
}

fn ago(now: i64, then: i64) -> String {
    let secs = (now - then) / 1000;
    match secs {
        s if s < -1 => format!("in {}", human(-s)),
        s if s < 1 => "now".to_owned(),
        s => format!("{} ago", human(s)),
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

fn render_table(rows: &[JobRow], now: i64) -> String {
    let mut out = format!(
        "{:>8}  {:<20}  {:<9}  {:>8}  {:<10}  {}\n",
        "ID", "KIND", "STATE", "ATTEMPTS", "RUN AT", "LAST ERROR"
    );
    for j in rows {
        let err = j
            .last_error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        let err: String = err.chars().take(60).collect();
        out.push_str(&format!(
            "{:>8}  {:<20}  {:<9}  {:>8}  {:<10}  {}\n",
            j.id,
            j.kind,
            j.state.as_str(),
            format!("{}/{}", j.attempts, j.max_attempts),
            ago(now, j.run_at),
            err
        ));
    }
    if rows.is_empty() {
        out.push_str("(no jobs)\n");
    }
    out
}

fn render_job(j: &JobRow) -> String {
    let payload = serde_json::from_str::<serde_json::Value>(&j.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| j.payload.clone());
    format!(
        "job {}\n  kind:            {}\n  state:           {}\n  attempts:        {}/{}\n  \
         priority:        {}\n  run at:          {}\n  dedupe key:      {}\n  \
         concurrency key: {}\n  locked by:       {}\n  last error:      {}\npayload:\n{}\n",
        j.id,
        j.kind,
        j.state,
        j.attempts,
        j.max_attempts,
        j.priority,
        j.run_at,
        j.dedupe_key.as_deref().unwrap_or("-"),
        j.concurrency_key.as_deref().unwrap_or("-"),
        j.locked_by.as_deref().unwrap_or("-"),
        j.last_error.as_deref().unwrap_or("-"),
        payload
    )
}
