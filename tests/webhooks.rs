//! Webhook intake over HTTP, on SQLite and PostgreSQL: signatures (each forge's scheme,
//! rotation), status codes for every bad input, de-duplication of redeliveries, and the
//! `handle_event` job turning deliveries into installations, repositories and follow-up
//! jobs.

#[path = "support/db.rs"]
mod testdb;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pipewright::clock::Clock;
use pipewright::config::{Config, Secret};
use pipewright::db::{deliveries, installations};
use pipewright::forge::Forge;
use pipewright::jobs::{self, JobsContext};
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobRow, JobState, ListFilter};
use pipewright::queue::{WorkerOptions, WorkerPool};
use pipewright::server::{self, AppState, Intake};
use sha2::Sha256;
use testdb::{wait_until, TestDb};
use tokio::sync::Notify;

const GITHUB_SECRET: &str = "gh-secret-new";
const GITHUB_OLD_SECRET: &str = "gh-secret-old";
const GITLAB_TOKEN: &str = "gl-token";
const GITLAB_KEY_RAW: &[u8] = b"gitlab-signing-key-bytes";
const BITBUCKET_SECRET: &str = "bb-secret";

fn config(db_url: &str) -> Config {
    let mut c = Config::for_database(db_url);
    c.github_webhook_secrets = vec![Secret::new(GITHUB_OLD_SECRET), Secret::new(GITHUB_SECRET)];
    c.gitlab_webhook_secrets = vec![Secret::new(GITLAB_TOKEN)];
    c.gitlab_signing_keys = vec![Secret::new(hex::encode(GITLAB_KEY_RAW))];
    c.bitbucket_webhook_secrets = vec![Secret::new(BITBUCKET_SECRET)];
    c
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

struct Ctx {
    state: web::Data<AppState>,
    clock: Clock,
}

fn ctx(t: &TestDb, cfg: Config) -> Ctx {
    let clock = Clock::System;
    let (intake, _writers) = Intake::start(t.db.clone(), clock.clone(), Arc::new(Notify::new()));
    let state = web::Data::new(AppState {
        github_app: Arc::new(pipewright::console::setup::GithubAppSlot::from_config(&cfg)),
        config: Arc::new(cfg),
        db: t.db.clone(),
        intake,
        metrics: Arc::new(Metrics::new()),
        clock: clock.clone(),
    });
    Ctx { state, clock }
}

macro_rules! app {
    ($ctx:expr) => {
        test::init_service(App::new().configure(server::configure($ctx.state.clone()))).await
    };
}

fn github_req(event: &str, delivery: &str, body: &str, secret: Option<&str>) -> test::TestRequest {
    let mut req = test::TestRequest::post()
        .uri("/webhooks/github")
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-GitHub-Event", event))
        .insert_header(("X-GitHub-Delivery", delivery))
        .set_payload(body.to_owned());
    if let Some(s) = secret {
        req = req.insert_header((
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(s.as_bytes(), body.as_bytes())),
        ));
    }
    req
}

const PUSH: &str = r#"{
  "ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
  "after": "2222222222222222222222222222222222222222", "created": false, "deleted": false, "forced": false,
  "commits": [{"added": ["Cargo.toml"], "modified": [], "removed": []}],
  "repository": {"id": 42, "full_name": "acme/widget", "default_branch": "main", "private": false,
                 "archived": false, "fork": false, "owner": {"login": "acme"}},
  "installation": {"id": 7},
  "sender": {"login": "alice", "id": 1, "type": "User"}
}"#;

async fn all_jobs(db: &pipewright::Db) -> Vec<JobRow> {
    store::list(
        db,
        &ListFilter {
            state: None,
            kind: None,
            limit: 1000,
        },
    )
    .await
    .unwrap()
}

#[actix_web::test]
async fn github_signatures_and_status_codes() {
    for t in TestDb::all().await {
        let c = ctx(&t, config(&t.url));
        let app = app!(c);

        // Good signature (new secret) → 202 and one job.
        let resp = test::call_service(
            &app,
            github_req("push", "d-1", PUSH, Some(GITHUB_SECRET)).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{}", t.name);
        // Rotation: the old secret still works.
        let resp = test::call_service(
            &app,
            github_req("push", "d-2", PUSH, Some(GITHUB_OLD_SECRET)).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        // Redelivery of d-1 → 2xx, no second job.
        let resp = test::call_service(
            &app,
            github_req("push", "d-1", PUSH, Some(GITHUB_SECRET)).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(body["status"], "duplicate");
        assert_eq!(
            all_jobs(&t.db).await.len(),
            2,
            "{}: redelivery queued a job",
            t.name
        );
        assert_eq!(deliveries::count(&t.db).await.unwrap(), 2);

        // Wrong secret, missing signature, garbage signature → 401, nothing stored.
        for req in [
            github_req("push", "d-3", PUSH, Some("wrong")),
            github_req("push", "d-3", PUSH, None),
            github_req("push", "d-3", PUSH, None)
                .insert_header(("X-Hub-Signature-256", "sha256=zz")),
        ] {
            let resp = test::call_service(&app, req.to_request()).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        // A body signed, then altered → 401.
        let sig = format!(
            "sha256={}",
            hmac_hex(GITHUB_SECRET.as_bytes(), PUSH.as_bytes())
        );
        let tampered = PUSH.replace("alice", "mallory");
        let req =
            github_req("push", "d-3", &tampered, None).insert_header(("X-Hub-Signature-256", sig));
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Malformed JSON (signed) → 400; wrong shape → 400.
        for bad in ["{not json", "[]", r#"{"ref": 5}"#] {
            let resp = test::call_service(
                &app,
                github_req("push", "d-4", bad, Some(GITHUB_SECRET)).to_request(),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        // Unknown event → 202 ignored, no job.
        let resp = test::call_service(
            &app,
            github_req("star", "d-5", "{}", Some(GITHUB_SECRET)).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(body["status"], "ignored");
        // Missing event header or delivery id → 400.
        let req = test::TestRequest::post()
            .uri("/webhooks/github")
            .insert_header(("X-GitHub-Delivery", "d-6"))
            .insert_header((
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(GITHUB_SECRET.as_bytes(), b"{}")),
            ))
            .set_payload("{}");
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::BAD_REQUEST
        );
        let req = test::TestRequest::post()
            .uri("/webhooks/github")
            .insert_header(("X-GitHub-Event", "push"))
            .insert_header((
                "X-Hub-Signature-256",
                format!(
                    "sha256={}",
                    hmac_hex(GITHUB_SECRET.as_bytes(), PUSH.as_bytes())
                ),
            ))
            .set_payload(PUSH);
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::BAD_REQUEST
        );
        // Form-encoded bodies are refused clearly.
        let form = "payload=%7B%7D";
        let req = github_req("push", "d-7", form, Some(GITHUB_SECRET))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::BAD_REQUEST
        );

        assert_eq!(
            all_jobs(&t.db).await.len(),
            2,
            "{}: a rejected delivery queued a job",
            t.name
        );
        let metrics = c.state.metrics.render(&t.db, c.clock.now()).await.unwrap();
        assert!(
            metrics.contains(r#"pipewright_webhook_signature_failures_total{forge="github"} 4"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"pipewright_jobs{kind="handle_event",state="queued"} 2"#),
            "{metrics}"
        );
    }
}

#[actix_web::test]
async fn oversized_bodies_get_413() {
    let t = TestDb::sqlite().await;
    let c = ctx(&t, config(&t.url));
    let app = app!(c);
    let big = format!(
        "{{\"x\":\"{}\"}}",
        "a".repeat(pipewright::config::MAX_WEBHOOK_BODY_BYTES)
    );
    let resp = test::call_service(
        &app,
        github_req("push", "big", &big, Some(GITHUB_SECRET)).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read (and then rejected only for its content).
    let almost = format!(
        "{{\"x\":\"{}\"}}",
        "a".repeat(pipewright::config::MAX_WEBHOOK_BODY_BYTES - 100)
    );
    let resp = test::call_service(
        &app,
        github_req("push", "almost", &almost, Some(GITHUB_SECRET)).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn unconfigured_forges_answer_404() {
    let t = TestDb::sqlite().await;
    let c = ctx(&t, Config::for_database(&t.url));
    let app = app!(c);
    for forge in ["github", "gitlab", "bitbucket"] {
        let req = test::TestRequest::post()
            .uri(&format!("/webhooks/{forge}"))
            .set_payload("{}");
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::NOT_FOUND,
            "{forge}"
        );
    }
    let req = test::TestRequest::get().uri("/healthz");
    assert_eq!(
        test::call_service(&app, req.to_request()).await.status(),
        StatusCode::OK
    );
    let req = test::TestRequest::get().uri("/readyz");
    assert_eq!(
        test::call_service(&app, req.to_request()).await.status(),
        StatusCode::OK
    );
}

const GITLAB_PUSH: &str = r#"{
  "object_kind": "push", "event_name": "push", "ref": "refs/heads/main",
  "before": "1111111111111111111111111111111111111111", "after": "3333333333333333333333333333333333333333",
  "user_username": "bob", "user_id": 5, "user_name": "Bob", "project_id": 99,
  "project": {"id": 99, "path_with_namespace": "platform/tools/runner", "default_branch": "main", "visibility_level": 0},
  "commits": [{"id": "3333333333333333333333333333333333333333", "added": [], "modified": ["package.json"], "removed": []}],
  "total_commits_count": 1
}"#;

fn gitlab_req(delivery: &str, body: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/webhooks/gitlab")
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Gitlab-Event", "Push Hook"))
        .insert_header(("Idempotency-Key", delivery))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn gitlab_token_and_signing_key() {
    for t in TestDb::all().await {
        let c = ctx(&t, config(&t.url));
        let app = app!(c);
        let ok = gitlab_req("g-1", GITLAB_PUSH).insert_header(("X-Gitlab-Token", GITLAB_TOKEN));
        assert_eq!(
            test::call_service(&app, ok.to_request()).await.status(),
            StatusCode::ACCEPTED,
            "{}",
            t.name
        );
        let bad = gitlab_req("g-2", GITLAB_PUSH).insert_header(("X-Gitlab-Token", "nope"));
        assert_eq!(
            test::call_service(&app, bad.to_request()).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let none = gitlab_req("g-2", GITLAB_PUSH);
        assert_eq!(
            test::call_service(&app, none.to_request()).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Standard Webhooks signature, fresh and stale.
        let sign = |id: &str, ts: i64| {
            let mut mac = Hmac::<Sha256>::new_from_slice(GITLAB_KEY_RAW).unwrap();
            mac.update(format!("{id}.{ts}.{GITLAB_PUSH}").as_bytes());
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        };
        let now = c.clock.now() / 1000;
        let signed = |id: &str, ts: i64| {
            gitlab_req(id, GITLAB_PUSH)
                .insert_header(("webhook-id", id))
                .insert_header(("webhook-timestamp", ts.to_string()))
                .insert_header(("webhook-signature", sign(id, ts)))
        };
        assert_eq!(
            test::call_service(&app, signed("g-3", now).to_request())
                .await
                .status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            test::call_service(&app, signed("g-4", now - 3600).to_request())
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "replayed old signature accepted"
        );
        // A present but wrong signature is not rescued by a valid token.
        let wrong = signed("g-5", now)
            .insert_header(("webhook-signature", "v1,AAAA"))
            .insert_header(("X-Gitlab-Token", GITLAB_TOKEN));
        assert_eq!(
            test::call_service(&app, wrong.to_request()).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(all_jobs(&t.db).await.len(), 2);
    }
}

const BITBUCKET_PUSH: &str = r#"{
  "push": {"changes": [{"old": {"type": "branch", "name": "main", "target": {"hash": "4444444444444444444444444444444444444444"}},
                        "new": {"type": "branch", "name": "main", "target": {"hash": "5555555555555555555555555555555555555555"}},
                        "created": false, "closed": false, "forced": false, "truncated": false}]},
  "repository": {"type": "repository", "uuid": "{11111111-2222-3333-4444-555555555555}", "full_name": "team/service",
                 "is_private": true, "mainbranch": {"name": "main"},
                 "workspace": {"uuid": "{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}", "slug": "team"}},
  "actor": {"type": "user", "display_name": "Carol", "uuid": "{99999999-0000-0000-0000-000000000000}", "nickname": "carol"}
}"#;

#[actix_web::test]
async fn bitbucket_signature() {
    let t = TestDb::sqlite().await;
    let c = ctx(&t, config(&t.url));
    let app = app!(c);
    let req = |uuid: &str, secret: &str| {
        test::TestRequest::post()
            .uri("/webhooks/bitbucket")
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Event-Key", "repo:push"))
            .insert_header(("X-Request-UUID", uuid))
            .insert_header((
                "X-Hub-Signature",
                format!(
                    "sha256={}",
                    hmac_hex(secret.as_bytes(), BITBUCKET_PUSH.as_bytes())
                ),
            ))
            .set_payload(BITBUCKET_PUSH)
    };
    assert_eq!(
        test::call_service(&app, req("b-1", BITBUCKET_SECRET).to_request())
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        test::call_service(&app, req("b-1", BITBUCKET_SECRET).to_request())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        test::call_service(&app, req("b-2", "other").to_request())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(all_jobs(&t.db).await.len(), 1);
}

#[actix_web::test]
async fn concurrent_redeliveries_queue_one_job() {
    for t in TestDb::all().await {
        let c = ctx(&t, config(&t.url));
        let app = app!(c);
        let mut futs = Vec::new();
        for _ in 0..20 {
            futs.push(test::call_service(
                &app,
                github_req("push", "same", PUSH, Some(GITHUB_SECRET)).to_request(),
            ));
        }
        let statuses: Vec<StatusCode> = futures_util::future::join_all(futs)
            .await
            .iter()
            .map(|r| r.status())
            .collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::ACCEPTED)
                .count(),
            1,
            "{}: {statuses:?}",
            t.name
        );
        assert!(statuses.iter().all(|s| s.is_success()));
        assert_eq!(all_jobs(&t.db).await.len(), 1);
    }
}

const INSTALLATION_CREATED: &str = r#"{
  "action": "created",
  "installation": {"id": 7, "account": {"login": "acme", "id": 100, "type": "Organization"}},
  "repositories": [{"id": 42, "name": "widget", "full_name": "acme/widget", "private": false},
                   {"id": 43, "name": "gadget", "full_name": "acme/gadget", "private": true}],
  "sender": {"login": "alice", "id": 1, "type": "User"}
}"#;

fn comment(body: &str, login: &str, kind: &str) -> String {
    serde_json::json!({
        "action": "created",
        "issue": {"number": 3, "pull_request": {"url": "https://api.github.com/repos/acme/widget/pulls/3"}},
        "comment": {"id": 555, "body": body, "user": {"login": login, "id": 2, "type": kind}},
        "repository": {"id": 42, "full_name": "acme/widget", "default_branch": "main", "owner": {"login": "acme"}},
        "installation": {"id": 7},
        "sender": {"login": login, "id": 2, "type": kind}
    })
    .to_string()
}

#[actix_web::test]
async fn handle_event_tracks_installations_and_fans_out_follow_ups() {
    for t in TestDb::all().await {
        let c = ctx(&t, config(&t.url));
        let app = app!(c);
        let send = |event: &str, id: &str, body: String| {
            github_req(event, id, &body, Some(GITHUB_SECRET)).to_request()
        };
        for (event, id, body) in [
            ("installation", "e-1", INSTALLATION_CREATED.to_owned()),
            ("push", "e-2", PUSH.to_owned()),
            (
                "issue_comment",
                "e-3",
                comment("/pipewright help", "alice", "User"),
            ),
            (
                "issue_comment",
                "e-4",
                comment("/pipewright help", "dependabot[bot]", "Bot"),
            ),
            (
                "issue_comment",
                "e-5",
                comment("looks good", "alice", "User"),
            ),
        ] {
            let resp = test::call_service(&app, send(event, id, body)).await;
            assert_eq!(
                resp.status(),
                StatusCode::ACCEPTED,
                "{}: {event} {id}",
                t.name
            );
        }
        let registry = jobs::registry(JobsContext::new("pipewright", c.clock.clone()));
        let mut opts = WorkerOptions::new(2);
        opts.poll_ms = 20;
        let pool = WorkerPool::new(
            t.db.clone(),
            registry,
            c.clock.clone(),
            opts,
            Arc::new(Notify::new()),
            Arc::new(Metrics::new()),
        )
        .start();
        let db = t.db.clone();
        wait_until("events handled", || {
            let db = db.clone();
            async move {
                store::list(
                    &db,
                    &ListFilter {
                        state: Some(JobState::Succeeded),
                        kind: Some("handle_event".into()),
                        limit: 100,
                    },
                )
                .await
                .unwrap()
                .len()
                    == 5
            }
        })
        .await;
        pool.shutdown().await;

        let inst = installations::get_installation(&t.db, Forge::Github, "7")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (inst.account.as_deref(), inst.state.as_str()),
            (Some("acme"), "active"),
            "{}",
            t.name
        );
        let repos = installations::list_repos(&t.db, inst.id).await.unwrap();
        let names: Vec<&str> = repos.iter().map(|r| r.full_name.as_str()).collect();
        assert_eq!(names, ["acme/gadget", "acme/widget"]);
        let widget = installations::get_repo(&t.db, Forge::Github, "42")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            widget.last_push_sha.as_deref(),
            Some("2222222222222222222222222222222222222222")
        );
        assert_eq!(widget.default_branch.as_deref(), Some("main"));

        let queued = store::list(
            &t.db,
            &ListFilter {
                state: Some(JobState::Queued),
                kind: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
        let mut keys: Vec<String> = queued.iter().filter_map(|j| j.dedupe_key.clone()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "analyze:github:42:2222222222222222222222222222222222222222",
                "analyze:github:42:head",
                "analyze:github:43:head",
                "command:github:555:e-3",
                "reconcile:github:7:0",
            ],
            "{}",
            t.name
        );
    }
}

#[actix_web::test]
async fn a_database_outage_answers_503_and_forgotten_deliveries_are_accepted_again() {
    let t = TestDb::sqlite().await;
    let c = ctx(&t, config(&t.url));
    let app = app!(c);
    let resp = test::call_service(
        &app,
        github_req("push", "r-1", PUSH, Some(GITHUB_SECRET)).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    // Retention: once a delivery id is swept, the same id is new again.
    assert_eq!(
        deliveries::sweep(&t.db, c.clock.now() + 1).await.unwrap(),
        1
    );
    let jobs = all_jobs(&t.db).await;
    assert_eq!(jobs.len(), 1);
    // (Its job is still queued, so the job-level dedupe key keeps it single.)
    let resp = test::call_service(
        &app,
        github_req("push", "r-1", PUSH, Some(GITHUB_SECRET)).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(all_jobs(&t.db).await.len(), 1);

    t.db.close().await;
    let resp = test::call_service(
        &app,
        github_req("push", "r-2", PUSH, Some(GITHUB_SECRET)).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let req = test::TestRequest::get().uri("/readyz");
    assert_eq!(
        test::call_service(&app, req.to_request()).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}
