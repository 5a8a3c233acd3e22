//! The HTTP surface: webhook routes, `/healthz`, `/readyz`, `/metrics`. Handlers only
//! verify, de-duplicate and enqueue; they never call a forge.

pub mod intake;
pub mod verify;
pub mod webhook;

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::clock::Clock;
use crate::config::{Config, MAX_WEBHOOK_BODY_BYTES};
use crate::db::Db;
use crate::metrics::Metrics;

pub use intake::Intake;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Validated configuration (secrets included, never logged).
    pub config: Arc<Config>,
    /// Database.
    pub db: Db,
    /// Group-commit writer for deliveries.
    pub intake: Intake,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Clock (signature timestamp windows).
    pub clock: Clock,
    /// The GitHub App in force: its webhook secret verifies GitHub deliveries when
    /// `PIPEWRIGHT_GITHUB_WEBHOOK_SECRET` is not set (an App stored by `/setup/github`).
    pub github_app: Arc<crate::console::setup::GithubAppSlot>,
}

/// Adds pipewright's routes to an actix `App`, with the webhook body limit set on
/// purpose (actix's default of 256 kB is below the forges' 25 MB).
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(MAX_WEBHOOK_BODY_BYTES))
            .route("/webhooks/github", web::post().to(webhook::github))
            .route("/webhooks/gitlab", web::post().to(webhook::gitlab))
            .route("/webhooks/bitbucket", web::post().to(webhook::bitbucket))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics));
    }
}

/// Liveness: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: the database answers and every migration is applied. Learned detection
/// being off (no model) is reported as degraded, not as unready: rules still work.
async fn readyz(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match state.db.check_ready().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body(
            match req.app_data::<web::Data<crate::learn::Status>>() {
                Some(learning) => format!("ready\n{}\n", learning.describe()),
                None => "ready\n".to_owned(),
            },
        ),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "not ready");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body(format!("not ready: {e:#}\n"))
        }
    }
}

/// Prometheus text exposition.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render(&state.db, state.clock.now()).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot render metrics");
            HttpResponse::ServiceUnavailable().body(format!("cannot read the queue: {e:#}\n"))
        }
    }
}
