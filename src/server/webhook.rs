//! `POST /webhooks/{github,gitlab,bitbucket}`: verify the signature on the raw body,
//! read the event and delivery id, parse the payload into typed events, and store the
//! delivery with its `handle_event` job (group commit). Nothing here calls a forge.
//!
//! Answers: 401 bad or missing signature; 413 body over the limit (actix, before this
//! code runs); 400 malformed JSON or a missing required header; 202 accepted or ignored;
//! 200 for a redelivery already stored; 404 when the forge is not configured; 503 when
//! the delivery could not be stored (so the sender may retry).

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::{debug, info, warn, Instrument as _};

use super::verify::{self, VerifyError};
use super::AppState;
use crate::config::SIGNATURE_TIMESTAMP_TOLERANCE_SECS;
use crate::db::deliveries::{NewDelivery, Recorded};
use crate::forge::{self, Forge, ForgeEvent};
use crate::jobs::HandleEvent;
use crate::queue::NewJob;

/// Bodies larger than this are parsed on a blocking thread, in bytes, so a 25 MB payload
/// does not stall the HTTP worker serving other deliveries.
const PARSE_INLINE_MAX_BYTES: usize = 256 * 1024;
/// Longest accepted delivery id or event name, in bytes (they are stored).
const MAX_HEADER_VALUE_BYTES: usize = 200;

/// GitHub App / repository webhooks.
pub async fn github(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    receive(Forge::Github, state, req, body).await
}

/// GitLab project, group and system hooks.
pub async fn gitlab(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    receive(Forge::Gitlab, state, req, body).await
}

/// Bitbucket Cloud workspace / repository webhooks.
pub async fn bitbucket(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    receive(Forge::Bitbucket, state, req, body).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn reply(status: actix_web::http::StatusCode, outcome: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "status": outcome, "message": message }))
}

async fn receive(
    forge: Forge,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let headers = req.headers();
    let (event_header, id_candidates): (&str, &[&str]) = match forge {
        Forge::Github => ("X-GitHub-Event", &["X-GitHub-Delivery"]),
        // Idempotency-Key survives GitLab's retries; webhook-id equals it when signing is on.
        Forge::Gitlab => (
            "X-Gitlab-Event",
            &["Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID"],
        ),
        Forge::Bitbucket => ("X-Event-Key", &["X-Request-UUID"]),
    };
    let event = header(headers, event_header).unwrap_or("").to_owned();
    let delivery_id = id_candidates
        .iter()
        .find_map(|h| header(headers, h))
        .map(str::to_owned);
    let span = tracing::info_span!(
        "delivery",
        forge = %forge,
        event = %event,
        delivery_id = delivery_id.as_deref().unwrap_or("-"),
    );
    receive_inner(
        forge,
        state,
        req.headers(),
        body,
        event,
        delivery_id,
        event_header,
    )
    .instrument(span)
    .await
}

async fn receive_inner(
    forge: Forge,
    state: web::Data<AppState>,
    headers: &HeaderMap,
    body: web::Bytes,
    event: String,
    delivery_id: Option<String>,
    event_header: &'static str,
) -> HttpResponse {
    use actix_web::http::StatusCode as S;
    let config = &state.config;
    let metrics = &state.metrics;

    let enabled = match forge {
        Forge::Github => !state.github_app.webhook_secrets().is_empty(),
        Forge::Gitlab => {
            !config.gitlab_webhook_secrets.is_empty() || !config.gitlab_signing_keys.is_empty()
        }
        Forge::Bitbucket => !config.bitbucket_webhook_secrets.is_empty(),
    };
    if !enabled {
        metrics.delivery(forge.as_str(), &event, "disabled");
        return reply(
            S::NOT_FOUND,
            "disabled",
            "this forge is not configured on this pipewright",
        );
    }

    // 1. Authenticity, on the raw bytes, before anything else looks at them.
    if let Err(e) = authenticate(forge, state.get_ref(), headers, &body) {
        metrics.signature_failure(forge.as_str());
        metrics.delivery(forge.as_str(), &event, "unauthorized");
        warn!(error = %e, "rejected delivery: bad or missing signature");
        return reply(S::UNAUTHORIZED, "unauthorized", &e.to_string());
    }

    // 2. Required headers.
    if event.is_empty() {
        metrics.delivery(forge.as_str(), "", "bad_request");
        return reply(
            S::BAD_REQUEST,
            "bad_request",
            &format!("missing {event_header} header"),
        );
    }
    if event.len() > MAX_HEADER_VALUE_BYTES {
        metrics.delivery(forge.as_str(), "", "bad_request");
        return reply(
            S::BAD_REQUEST,
            "bad_request",
            &format!("{event_header} header is too long"),
        );
    }
    if !forge::payload::is_known_event(forge, &event) {
        metrics.delivery(forge.as_str(), &event, "ignored");
        debug!("event not handled: ignored");
        return reply(S::ACCEPTED, "ignored", "event not handled by pipewright");
    }
    let delivery_id = match delivery_id {
        Some(id) if !id.trim().is_empty() && id.len() <= MAX_HEADER_VALUE_BYTES => id,
        _ => {
            metrics.delivery(forge.as_str(), &event, "bad_request");
            return reply(
                S::BAD_REQUEST,
                "bad_request",
                "missing or invalid delivery id header",
            );
        }
    };
    if let Some(ct) = header(headers, "content-type") {
        if ct.starts_with("application/x-www-form-urlencoded") {
            metrics.delivery(forge.as_str(), &event, "bad_request");
            return reply(
                S::BAD_REQUEST,
                "bad_request",
                "form-encoded deliveries are not supported: set the webhook content type to application/json",
            );
        }
    }

    // 3. Parse into typed events.
    let parsed = if body.len() > PARSE_INLINE_MAX_BYTES {
        let (ev, b) = (event.clone(), body.clone());
        match web::block(move || forge::payload::parse(forge, &ev, &b)).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "payload parser task failed");
                return reply(
                    S::SERVICE_UNAVAILABLE,
                    "error",
                    "cannot parse the payload now",
                );
            }
        }
    } else {
        forge::payload::parse(forge, &event, &body)
    };
    let events: Vec<ForgeEvent> = match parsed {
        Ok(events) => events,
        Err(e) => {
            metrics.delivery(forge.as_str(), &event, "bad_request");
            warn!(error = %e, "rejected delivery: malformed payload");
            return reply(S::BAD_REQUEST, "bad_request", &e.to_string());
        }
    };
    if events.is_empty() {
        metrics.delivery(forge.as_str(), &event, "ignored");
        debug!("irrelevant action: ignored");
        return reply(S::ACCEPTED, "ignored", "nothing for pipewright to do");
    }

    // 4. Durable enqueue: delivery row + job row, one transaction.
    let job = HandleEvent {
        forge,
        delivery_id: delivery_id.clone(),
        event_name: event.clone(),
        events,
    };
    let delivery = NewDelivery {
        forge,
        delivery_id,
        event: event.clone(),
        job: NewJob::of(&job),
    };
    match state.intake.submit(delivery).await {
        Ok(Recorded::Accepted { job_id }) => {
            metrics.delivery(forge.as_str(), &event, "accepted");
            info!(job.id = job_id, "delivery accepted");
            HttpResponse::Accepted().json(json!({ "status": "accepted", "job_id": job_id }))
        }
        Ok(Recorded::Duplicate) => {
            metrics.delivery(forge.as_str(), &event, "duplicate");
            info!("redelivery of a stored delivery: nothing queued");
            reply(S::OK, "duplicate", "delivery already received")
        }
        Err(e) => {
            metrics.delivery(forge.as_str(), &event, "error");
            warn!(error = %e, "cannot store delivery");
            reply(
                S::SERVICE_UNAVAILABLE,
                "error",
                "cannot store the delivery; retry later",
            )
        }
    }
}

fn authenticate(
    forge: Forge,
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    let config = &state.config;
    match forge {
        Forge::Github => verify::verify_hub_signature(
            &state.github_app.webhook_secrets(),
            "X-Hub-Signature-256",
            header(headers, "X-Hub-Signature-256"),
            body,
        ),
        Forge::Bitbucket => verify::verify_hub_signature(
            &config.bitbucket_webhook_secrets,
            "X-Hub-Signature",
            header(headers, "X-Hub-Signature"),
            body,
        ),
        Forge::Gitlab => {
            // A signed delivery is judged by its signature; otherwise by the token.
            let signature = header(headers, "webhook-signature");
            if !config.gitlab_signing_keys.is_empty() && signature.is_some() {
                verify::verify_standard_webhook(
                    &config.gitlab_signing_keys,
                    header(headers, "webhook-id"),
                    header(headers, "webhook-timestamp"),
                    signature,
                    body,
                    state.clock.now() / 1000,
                    SIGNATURE_TIMESTAMP_TOLERANCE_SECS,
                )
            } else if !config.gitlab_webhook_secrets.is_empty() {
                verify::verify_gitlab_token(
                    &config.gitlab_webhook_secrets,
                    header(headers, "X-Gitlab-Token"),
                )
            } else {
                Err(VerifyError::Missing("webhook-signature"))
            }
        }
    }
}
