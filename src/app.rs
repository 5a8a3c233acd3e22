//! Process lifecycle of `serve` and `worker`: open and migrate the database, start the
//! intake writers, the worker pool, the retention sweeper and (for `serve`) the HTTP
//! server; on SIGTERM or Ctrl-C stop them in order so nothing accepted is lost.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::console::setup::GithubAppSlot;
use crate::db::deliveries::{self, DELIVERY_RETENTION_MS};
use crate::db::Db;
use crate::forge::Forges;
use crate::jobs::{self, JobsContext};
use crate::metrics::Metrics;
use crate::queue::{store, WorkerOptions, WorkerPool};
use crate::server::{self, AppState, Intake};

/// How long succeeded jobs are kept for `jobs list`, in milliseconds (7 days).
pub const SUCCEEDED_JOB_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Cached embeddings no repository refers to are kept this long (milliseconds): a
/// repository that flips back to an earlier manifest within a month finds its vector.
pub const EMBEDDING_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How long per-installation API usage is kept, in milliseconds (7 days).
pub const API_USAGE_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How often retention sweeps run, in seconds.
pub const SWEEP_INTERVAL_SECS: u64 = 60 * 60;
/// How often the sweeper checks that every installation has its next reconcile queued.
pub const RECONCILE_CHECK_SECS: u64 = 5 * 60;
/// How long in-flight HTTP requests may take to finish at shutdown, in seconds.
pub const HTTP_SHUTDOWN_SECS: u64 = 30;
/// How often `reconcile --wait` looks at the queue, in milliseconds.
pub const RECONCILE_WAIT_POLL_MS: u64 = 500;

/// `pipewright serve`: webhooks, the console and workers in one process.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let db = open(&config).await?;
    log_forges(&config);
    let clock = Clock::System;
    let notify = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new());

    let github_app = Arc::new(GithubAppSlot::from_config(&config));
    if let Err(e) = github_app
        .load_stored(&db, config.credentials_key.as_ref())
        .await
    {
        warn!(error = %format!("{e:#}"), "cannot load the stored GitHub App");
    }
    let mut app_changes = github_app.subscribe();
    let (intake, writers) = Intake::start(db.clone(), clock.clone(), notify.clone());
    let (learner, learn_status) = crate::learn::start(
        config.learn.model_dir.as_deref(),
        &config.learn.data_dir,
        &db,
    )
    .await;
    let mut bot = Bot::start(
        &config,
        &github_app,
        &db,
        &clock,
        &notify,
        &metrics,
        &learner,
    )?;
    let watcher = tokio::spawn(crate::console::setup::watch_stored(
        github_app.clone(),
        db.clone(),
        config.credentials_key.clone(),
        Duration::from_secs(RECONCILE_CHECK_SECS),
    ));

    let state = web::Data::new(AppState {
        config: config.clone(),
        db: db.clone(),
        intake,
        metrics,
        clock: clock.clone(),
        github_app: github_app.clone(),
    });
    let console = web::Data::new(crate::console::ConsoleState::new(
        config.clone(),
        db.clone(),
        clock.clone(),
        github_app.clone(),
    )?);
    let app_state = state.clone();
    let learn_state = web::Data::new(learn_status);
    let http = HttpServer::new(move || {
        App::new()
            .app_data(learn_state.clone())
            .configure(server::configure(app_state.clone()))
            .configure(crate::console::configure(console.clone()))
    })
    .disable_signals()
    .shutdown_timeout(HTTP_SHUTDOWN_SECS)
    .bind(config.listen)
    .with_context(|| format!("cannot listen on {}", config.listen))?
    .run();
    let handle = http.handle();
    let http_task = tokio::spawn(http);
    info!(listen = %config.listen, workers = config.workers, console = %format!("http://{}/console/", config.listen), "pipewright is serving");

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Ok(()) = app_changes.changed() => {
                // A GitHub App was created in the console (or by another replica): the
                // workers start acting as it without a restart of the process.
                info!("GitHub App credentials changed: restarting the workers with them");
                bot.stop().await;
                bot = Bot::start(&config, &github_app, &db, &clock, &notify, &state.metrics, &learner)?;
            }
        }
    }
    info!("shutdown requested: finishing in-flight deliveries");
    handle.stop(true).await;
    let _ = http_task.await;
    drop(state);
    for w in writers {
        if tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .is_err()
        {
            warn!("intake writer did not finish in time");
        }
    }
    bot.stop().await;
    watcher.abort();
    save_indexes(&learner);
    db.close().await;
    info!("stopped");
    Ok(())
}

/// The bot's moving parts for one set of forge credentials: connections, workers, and
/// the sweeper that schedules reconcile passes.
struct Bot {
    workers: Option<crate::queue::WorkerHandle>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Bot {
    fn start(
        config: &Config,
        github_app: &GithubAppSlot,
        db: &Db,
        clock: &Clock,
        notify: &Arc<Notify>,
        metrics: &Arc<Metrics>,
        learner: &Option<Arc<crate::learn::Learner>>,
    ) -> anyhow::Result<Bot> {
        let bot = github_app.bot_config(&config.bot);
        let forges = Arc::new(Forges::from_config(&bot, clock.clone())?);
        metrics.attach_api_calls(forges.totals());
        let mut effective = config.clone();
        effective.bot = bot;
        let workers = start_workers(&effective, db, clock, notify, metrics, &forges, learner);
        let sweeper = tokio::spawn(sweep_loop(
            db.clone(),
            clock.clone(),
            forges,
            config.bot.reconcile_secs,
        ));
        Ok(Bot { workers, sweeper })
    }

    async fn stop(&mut self) {
        if let Some(w) = self.workers.take() {
            w.shutdown().await;
        }
        self.sweeper.abort();
    }
}

/// `pipewright worker`: workers only (scale-out replicas on PostgreSQL), with an optional
/// HTTP endpoint for health probes and metrics.
pub async fn worker(
    config: Config,
    health_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.workers > 0,
        "PIPEWRIGHT_WORKERS is 0: a worker process needs at least one"
    );
    let db = open(&config).await?;
    let clock = Clock::System;
    let notify = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new());
    let github_app = Arc::new(GithubAppSlot::from_config(&config));
    if let Err(e) = github_app
        .load_stored(&db, config.credentials_key.as_ref())
        .await
    {
        warn!(error = %format!("{e:#}"), "cannot load the stored GitHub App");
    }
    let mut app_changes = github_app.subscribe();
    let (learner, learn_status) = crate::learn::start(
        config.learn.model_dir.as_deref(),
        &config.learn.data_dir,
        &db,
    )
    .await;
    let mut bot = Bot::start(
        &config,
        &github_app,
        &db,
        &clock,
        &notify,
        &metrics,
        &learner,
    )?;
    let watcher = tokio::spawn(crate::console::setup::watch_stored(
        github_app.clone(),
        db.clone(),
        config.credentials_key.clone(),
        Duration::from_secs(RECONCILE_CHECK_SECS),
    ));
    let health = match health_listen {
        Some(addr) => {
            let state = web::Data::new(WorkerHttp {
                db: db.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                learning: learn_status.clone(),
            });
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .route("/healthz", web::get().to(|| async { "ok\n" }))
                    .route("/readyz", web::get().to(worker_ready))
                    .route("/metrics", web::get().to(worker_metrics))
            })
            .workers(1)
            .disable_signals()
            .bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?
            .run();
            info!(listen = %addr, "worker health and metrics endpoint");
            let handle = server.handle();
            Some((handle, tokio::spawn(server)))
        }
        None => None,
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Ok(()) = app_changes.changed() => {
                info!("GitHub App credentials changed: restarting the workers with them");
                bot.stop().await;
                bot = Bot::start(&config, &github_app, &db, &clock, &notify, &metrics, &learner)?;
            }
        }
    }
    info!("shutdown requested");
    if let Some((handle, task)) = health {
        handle.stop(true).await;
        let _ = task.await;
    }
    bot.stop().await;
    watcher.abort();
    save_indexes(&learner);
    db.close().await;
    Ok(())
}

/// Persists the sibling indexes at shutdown, so the next start loads them instead of
/// rebuilding from the database (a crash only costs that rebuild).
fn save_indexes(learner: &Option<Arc<crate::learn::Learner>>) {
    if let Some(l) = learner {
        match l.siblings().save_all() {
            Ok(n) if n > 0 => info!(installations = n, "sibling indexes saved"),
            Ok(_) => {}
            Err(e) => warn!(error = %format!("{e:#}"), "cannot save the sibling indexes"),
        }
    }
}

/// What the worker's small HTTP endpoint reads.
struct WorkerHttp {
    db: Db,
    metrics: Arc<Metrics>,
    clock: Clock,
    learning: crate::learn::Status,
}

async fn worker_ready(state: web::Data<WorkerHttp>) -> actix_web::HttpResponse {
    match state.db.check_ready().await {
        Ok(()) => {
            actix_web::HttpResponse::Ok().body(format!("ready\n{}\n", state.learning.describe()))
        }
        Err(e) => actix_web::HttpResponse::ServiceUnavailable().body(format!("not ready: {e:#}\n")),
    }
}

async fn worker_metrics(state: web::Data<WorkerHttp>) -> actix_web::HttpResponse {
    match state.metrics.render(&state.db, state.clock.now()).await {
        Ok(text) => actix_web::HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => actix_web::HttpResponse::ServiceUnavailable().body(format!("{e:#}\n")),
    }
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect_and_migrate(config.database_url.expose())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    info!(database = %config.database_url_redacted(), backend = ?db.backend(), "database ready");
    Ok(db)
}

fn log_forges(config: &Config) {
    let forges = [
        (
            "github",
            !config.github_webhook_secrets.is_empty(),
            "PIPEWRIGHT_GITHUB_WEBHOOK_SECRET, or create the App at /setup/github",
        ),
        (
            "gitlab",
            !config.gitlab_webhook_secrets.is_empty() || !config.gitlab_signing_keys.is_empty(),
            "PIPEWRIGHT_GITLAB_WEBHOOK_SECRET or PIPEWRIGHT_GITLAB_SIGNING_KEY",
        ),
        (
            "bitbucket",
            !config.bitbucket_webhook_secrets.is_empty(),
            "PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET",
        ),
    ];
    for (forge, enabled, var) in forges {
        if enabled {
            info!(forge, endpoint = %format!("/webhooks/{forge}"), "webhooks enabled");
        } else {
            info!(
                forge,
                "webhooks disabled (set {var} to enable); the endpoint answers 404"
            );
        }
    }
}

fn start_workers(
    config: &Config,
    db: &Db,
    clock: &Clock,
    notify: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    forges: &Arc<Forges>,
    learner: &Option<Arc<crate::learn::Learner>>,
) -> Option<crate::queue::WorkerHandle> {
    if config.workers == 0 {
        info!("PIPEWRIGHT_WORKERS=0: intake only, no jobs run in this process");
        return None;
    }
    let mut ctx = JobsContext::from_config(config, clock.clone(), forges.clone());
    ctx.learner = learner.clone();
    let registry = jobs::registry(ctx);
    Some(
        WorkerPool::new(
            db.clone(),
            registry,
            clock.clone(),
            WorkerOptions::new(config.workers),
            notify.clone(),
            metrics.clone(),
        )
        .start(),
    )
}

async fn sweep_loop(db: Db, clock: Clock, forges: Arc<Forges>, reconcile_secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(RECONCILE_CHECK_SECS));
    let mut last_sweep: Option<i64> = None;
    loop {
        tick.tick().await;
        let now = clock.now();
        match crate::jobs::reconcile::schedule_reconciles(
            &db,
            &forges.configured(),
            (reconcile_secs as i64).saturating_mul(1000),
            now,
        )
        .await
        {
            Ok(n) if n > 0 => info!(n, "scheduled reconcile passes"),
            Ok(_) => {}
            Err(e) => warn!(error = %format!("{e:#}"), "cannot schedule reconcile passes"),
        }
        if last_sweep.is_some_and(|t| now - t < (SWEEP_INTERVAL_SECS * 1000) as i64) {
            continue;
        }
        last_sweep = Some(now);
        match deliveries::sweep(&db, now - DELIVERY_RETENTION_MS).await {
            Ok(n) if n > 0 => info!(n, "forgot old deliveries"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot sweep deliveries"),
        }
        match crate::db::console::purge_sessions(&db, now).await {
            Ok(n) if n > 0 => info!(n, "forgot expired console sessions"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot sweep console sessions"),
        }
        if let Err(e) = crate::db::console::purge_api_usage(&db, now - API_USAGE_RETENTION_MS).await
        {
            warn!(error = %e, "cannot sweep API usage");
        }
        match crate::db::learn::purge_embeddings(&db, now - EMBEDDING_RETENTION_MS).await {
            Ok(n) if n > 0 => info!(n, "forgot cached embeddings no repository refers to"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot sweep cached embeddings"),
        }
        match store::purge_succeeded(&db, now - SUCCEEDED_JOB_RETENTION_MS).await {
            Ok(n) if n > 0 => info!(n, "purged old succeeded jobs"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot purge succeeded jobs"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn public_url(config: &Config, given: Option<&str>) -> anyhow::Result<String> {
    given
        .map(|u| u.trim_end_matches('/').to_owned())
        .or_else(|| config.bot.public_url.clone())
        .context("pass --url or set PIPEWRIGHT_PUBLIC_URL: the address the forge should call")
}

/// `pipewright gitlab connect --group G`: a webhook (with the secret) on every project
/// of the group, the group recorded as an installation, and a reconcile pass queued.
pub async fn gitlab_connect(
    config: &Config,
    group: &str,
    url: Option<&str>,
) -> anyhow::Result<std::process::ExitCode> {
    let hook_url = format!("{}/webhooks/gitlab", public_url(config, url)?);
    let secret = config
        .gitlab_webhook_secrets
        .last()
        .context("set PIPEWRIGHT_GITLAB_WEBHOOK_SECRET: GitLab sends it with every delivery")?;
    let clock = Clock::System;
    let forges = Forges::from_config(&config.bot, clock.clone())?;
    let client = forges.gitlab_client(group)?;
    let listing = crate::progress::Progress::new(&format!("listing projects of {group}"), None);
    let projects = crate::forge::ForgeClient::list_repositories(&client).await?;
    listing.finish(&format!("{} projects", projects.len()));
    let progress = crate::progress::Progress::new("webhooks", Some(projects.len() as u64));
    let (mut created, mut present) = (0, 0);
    for p in &projects {
        let id: u64 = p
            .handle
            .id
            .parse()
            .context("GitLab project ids are numbers")?;
        if client.ensure_hook(id, &hook_url, secret).await? {
            created += 1;
        } else {
            present += 1;
        }
        progress.inc(1, &p.handle.full_name);
    }
    progress.finish(&format!("{created} created, {present} already present"));
    let db = open(config).await?;
    record_tenant(&db, crate::forge::Forge::Gitlab, group, group, clock.now()).await?;
    db.close().await;
    println!(
        "GitLab group {group}: {} projects, {created} hooks created, {present} already present; \
         deliveries go to {hook_url}. A reconcile pass is queued.",
        projects.len()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// `pipewright bitbucket connect --workspace W`: one workspace webhook (with its secret)
/// — or one per repository when the token may not manage workspace webhooks — the
/// workspace recorded as an installation, and a reconcile pass queued. Events the token
/// has no scope for are left out and said so, never fatal.
pub async fn bitbucket_connect(
    config: &Config,
    workspace: &str,
    url: Option<&str>,
) -> anyhow::Result<std::process::ExitCode> {
    let hook_url = format!("{}/webhooks/bitbucket", public_url(config, url)?);
    let secret = config.bitbucket_webhook_secrets.last().context(
        "set PIPEWRIGHT_BITBUCKET_WEBHOOK_SECRET: Bitbucket signs every delivery with it",
    )?;
    let clock = Clock::System;
    let forges = Forges::from_config(&config.bot, clock.clone())?;
    let client = forges.bitbucket_client(workspace)?;
    let progress = crate::progress::Progress::new(&format!("connecting {workspace}"), Some(3));
    let report = client.connect_hooks(&hook_url, secret).await?;
    progress.inc(1, "webhooks");
    let uuid = client.workspace_uuid().await?;
    progress.inc(1, "workspace id");
    let db = open(config).await?;
    record_tenant(
        &db,
        crate::forge::Forge::Bitbucket,
        &uuid,
        workspace,
        clock.now(),
    )
    .await?;
    db.close().await;
    progress.inc(1, "reconcile pass queued");
    progress.finish("done");
    use crate::forge::bitbucket::client::{HookChange, HookScope};
    let said = |c: &HookChange| match c {
        HookChange::Created => "created",
        HookChange::Updated => "updated",
        HookChange::Unchanged => "already present",
    };
    let hooks = match &report.scope {
        HookScope::Workspace(c) => format!("workspace webhook {}", said(c)),
        HookScope::Repositories(rs) => {
            let count = |k: HookChange| rs.iter().filter(|(_, c)| *c == k).count();
            format!(
                "the token may not manage workspace webhooks, so each of its {} repositories \
                 has one ({} created, {} updated, {} already present; reconcile passes \
                 hook new ones when PIPEWRIGHT_PUBLIC_URL is set)",
                rs.len(),
                count(HookChange::Created),
                count(HookChange::Updated),
                count(HookChange::Unchanged)
            )
        }
    };
    println!(
        "Bitbucket workspace {workspace}: {hooks}; events: {}; deliveries go to {hook_url}. A \
         reconcile pass is queued.",
        report.events.join(", ")
    );
    if let Some(line) = report.dropped_line() {
        println!("Note: {line}.");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn record_tenant(
    db: &Db,
    forge: crate::forge::Forge,
    external_id: &str,
    account: &str,
    now: i64,
) -> anyhow::Result<()> {
    crate::db::installations::upsert_installation(
        db,
        forge,
        external_id,
        Some(account),
        crate::db::installations::InstallationState::Active,
        now,
    )
    .await?;
    let job = crate::jobs::ReconcileInstallation {
        forge,
        installation: crate::forge::InstallationId(external_id.to_owned()),
        period: 0,
    };
    store::enqueue(db, &crate::queue::NewJob::of(&job), now).await?;
    Ok(())
}

/// `pipewright reconcile --wait`: follows reconcile job `id` and then the analyses it
/// queued for the installation, with a progress bar (plain lines off a terminal). The
/// work itself is done by the workers of `serve` / `worker` processes.
pub async fn wait_for_reconcile(
    db: &Db,
    id: i64,
    forge: crate::forge::Forge,
    installation: &str,
    started: i64,
) -> anyhow::Result<std::process::ExitCode> {
    use crate::progress::Progress;
    use crate::queue::store::JobState;
    let poll = Duration::from_millis(RECONCILE_WAIT_POLL_MS);
    let pass = Progress::new("reconcile pass", None);
    loop {
        let job = store::get(db, id)
            .await?
            .with_context(|| format!("reconcile job {id} disappeared"))?;
        match job.state {
            JobState::Succeeded => {
                pass.finish("repositories listed");
                break;
            }
            JobState::Dead => {
                pass.finish("failed");
                eprintln!(
                    "pipewright: the reconcile pass failed: {}",
                    job.last_error.as_deref().unwrap_or("(no error recorded)")
                );
                return Ok(std::process::ExitCode::FAILURE);
            }
            JobState::Running => pass.set_position(0, "listing repositories"),
            JobState::Queued | JobState::Failed => {
                pass.set_position(0, "waiting for a worker (is `serve` or `worker` running?)")
            }
        }
        tokio::time::sleep(poll).await;
    }
    let analyses = Progress::new("analyses", None);
    loop {
        let (total, finished, dead) =
            crate::db::console::analysis_progress(db, forge.as_str(), installation, started)
                .await?;
        analyses.set_total(total.max(0) as u64);
        analyses.set_position(finished.max(0) as u64, &format!("{dead} failed"));
        if finished >= total {
            analyses.finish(&format!("{dead} failed"));
            return Ok(if dead > 0 {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            });
        }
        tokio::time::sleep(poll).await;
    }
}
