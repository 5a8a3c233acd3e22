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
use crate::db::deliveries::{self, DELIVERY_RETENTION_MS};
use crate::db::Db;
use crate::jobs::{self, JobsContext};
use crate::metrics::Metrics;
use crate::queue::{store, WorkerOptions, WorkerPool};
use crate::server::{self, AppState, Intake};

/// How long succeeded jobs are kept for `jobs list`, in milliseconds (7 days).
pub const SUCCEEDED_JOB_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How often retention sweeps run, in seconds.
pub const SWEEP_INTERVAL_SECS: u64 = 60 * 60;
/// How long in-flight HTTP requests may take to finish at shutdown, in seconds.
pub const HTTP_SHUTDOWN_SECS: u64 = 30;

/// `pipewright serve`: webhooks + workers in one process.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let db = open(&config).await?;
    log_forges(&config);
    let clock = Clock::System;
    let notify = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new());

    let (intake, writers) = Intake::start(db.clone(), clock.clone(), notify.clone());
    let workers = start_workers(&config, &db, &clock, &notify, &metrics);
    let sweeper = tokio::spawn(sweep_loop(db.clone(), clock.clone()));

    let state = web::Data::new(AppState {
        config: config.clone(),
        db: db.clone(),
        intake,
        metrics,
        clock,
    });
    let app_state = state.clone();
    let http = HttpServer::new(move || App::new().configure(server::configure(app_state.clone())))
        .disable_signals()
        .shutdown_timeout(HTTP_SHUTDOWN_SECS)
        .bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?
        .run();
    let handle = http.handle();
    let http_task = tokio::spawn(http);
    info!(listen = %config.listen, workers = config.workers, "pipewright is serving");

    shutdown_signal().await;
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
    if let Some(w) = workers {
        w.shutdown().await;
    }
    sweeper.abort();
    db.close().await;
    info!("stopped");
    Ok(())
}

/// `pipewright worker`: workers only (scale-out replicas on PostgreSQL).
pub async fn worker(config: Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.workers > 0,
        "PIPEWRIGHT_WORKERS is 0: a worker process needs at least one"
    );
    let db = open(&config).await?;
    let clock = Clock::System;
    let notify = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new());
    let workers = start_workers(&config, &db, &clock, &notify, &metrics);
    let sweeper = tokio::spawn(sweep_loop(db.clone(), clock.clone()));
    shutdown_signal().await;
    info!("shutdown requested");
    if let Some(w) = workers {
        w.shutdown().await;
    }
    sweeper.abort();
    db.close().await;
    Ok(())
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
            "PIPEWRIGHT_GITHUB_WEBHOOK_SECRET",
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
) -> Option<crate::queue::WorkerHandle> {
    if config.workers == 0 {
        info!("PIPEWRIGHT_WORKERS=0: intake only, no jobs run in this process");
        return None;
    }
    let registry = jobs::registry(JobsContext {
        command_word: config.command_word.clone(),
        clock: clock.clone(),
    });
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

async fn sweep_loop(db: Db, clock: Clock) {
    let mut tick = tokio::time::interval(Duration::from_secs(SWEEP_INTERVAL_SECS));
    loop {
        tick.tick().await;
        let now = clock.now();
        match deliveries::sweep(&db, now - DELIVERY_RETENTION_MS).await {
            Ok(n) if n > 0 => info!(n, "forgot old deliveries"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot sweep deliveries"),
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
