//! Console page render times with 10,000 repositories and 100,000 jobs: p50 and p99 of
//! each page over the full handler (session lookup, queries, template), on SQLite and,
//! when `PIPEWRIGHT_TEST_DATABASE_URL` is set, PostgreSQL.
//!
//! `cargo bench --bench console` (PIPEWRIGHT_BENCH_ROUNDS overrides the rounds per page).

#[path = "../tests/support/console_seed.rs"]
mod seed;
#[path = "../tests/support/db.rs"]
mod testdb;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use pipewright::clock::Clock;
use pipewright::config::{Config, Secret};
use pipewright::console::{self, setup::GithubAppSlot, ConsoleState};
use pipewright::forge::Forge;
use testdb::TestDb;

const ADMIN: &str = "operator-token-0123456789";
const NOW: i64 = 1_700_000_000_000;
const REPOS: usize = 10_000;
const JOBS: usize = 100_000;
/// Rounds per page unless PIPEWRIGHT_BENCH_ROUNDS says otherwise.
const DEFAULT_ROUNDS: usize = 200;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(t: TestDb) {
    let rounds: usize = std::env::var("PIPEWRIGHT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let started = Instant::now();
    let inst = seed::installation(&t.db, Forge::Github, "77", "bigcorp", NOW).await;
    seed::bulk_repositories(&t.db, Forge::Github, inst, "bigcorp", 1_000_000, REPOS, NOW).await;
    let repo =
        seed::detailed_repository(&t.db, Forge::Github, inst, "5001", "bigcorp/api", NOW).await;
    seed::bulk_jobs(&t.db, Forge::Github, "77", 1_000_000, REPOS, JOBS, NOW).await;
    let dead = seed::dead_job(&t.db, Forge::Github, "77", "5001", NOW).await;
    if let pipewright::Db::Postgres(p) = &t.db {
        sqlx::query("ANALYZE").execute(p).await.unwrap();
    }
    println!(
        "{}: seeded {REPOS} repositories and {JOBS} jobs in {:.1} s",
        t.name,
        started.elapsed().as_secs_f64()
    );
    let mut cfg = Config::for_database(&t.url);
    cfg.console.admin_token = Some(Secret::new(ADMIN));
    let cfg = Arc::new(cfg);
    let slot = Arc::new(GithubAppSlot::from_config(&cfg));
    let state =
        web::Data::new(ConsoleState::new(cfg, t.db.clone(), Clock::manual(NOW), slot).unwrap());
    let svc = test::init_service(App::new().configure(console::configure(state))).await;
    let login = test::call_service(
        &svc,
        test::TestRequest::post()
            .uri("/console/login")
            .set_form([("token", ADMIN)])
            .to_request(),
    )
    .await;
    let cookie = login
        .response()
        .cookies()
        .find(|c| c.name() == console::auth::SESSION_COOKIE)
        .unwrap()
        .value()
        .to_owned();
    // A cursor in the middle of the list: keyset pages cost the same everywhere.
    let middle = format!("bigcorp/service-{:05}", REPOS / 2);
    let cursor = {
        use base64::Engine as _;
        let id: i64 = match &t.db {
            pipewright::Db::Sqlite(p) => {
                sqlx::query_scalar("SELECT id FROM repositories WHERE full_name = $1")
                    .bind(&middle)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            pipewright::Db::Postgres(p) => {
                sqlx::query_scalar("SELECT id FROM repositories WHERE full_name = $1")
                    .bind(&middle)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{id}:{middle}"))
    };
    let pages = [
        ("overview", "/console/".to_owned()),
        (
            "installation, first page",
            format!("/console/installations/{inst}"),
        ),
        (
            "installation, page at 5,000",
            format!("/console/installations/{inst}?after={cursor}"),
        ),
        (
            "installation, outcome=failed",
            format!("/console/installations/{inst}?outcome=failed"),
        ),
        (
            "installation, name + stack filter",
            format!("/console/installations/{inst}?name=service-07&stack=pnpm"),
        ),
        ("repository", format!("/console/repositories/{repo}")),
        ("jobs, newest", "/console/jobs".to_owned()),
        ("jobs, dead", "/console/jobs?state=dead".to_owned()),
        (
            "jobs, kind=handle_event",
            "/console/jobs?kind=handle_event".to_owned(),
        ),
        ("job", format!("/console/jobs/{dead}")),
        ("API overview (bearer)", "/api/v1/overview".to_owned()),
        (
            "API repositories page",
            format!("/api/v1/installations/{inst}/repositories?limit=100"),
        ),
    ];
    println!(
        "{:<36} {:>10} {:>10} {:>10}",
        "page", "p50 ms", "p99 ms", "bytes"
    );
    for (name, uri) in &pages {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let req = if uri.starts_with("/api/") {
                test::TestRequest::get()
                    .uri(uri)
                    .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                    .to_request()
            } else {
                test::TestRequest::get()
                    .uri(uri)
                    .cookie(actix_web::cookie::Cookie::new(
                        console::auth::SESSION_COOKIE,
                        cookie.clone(),
                    ))
                    .to_request()
            };
            let t0 = Instant::now();
            let resp = test::call_service(&svc, req).await;
            assert_eq!(resp.status(), StatusCode::OK, "{name}");
            let body = test::read_body(resp).await;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<36} {:>10.2} {:>10.2} {:>10}",
            name,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            bytes
        );
    }
}

#[actix_web::main]
async fn main() {
    bench(TestDb::sqlite().await).await;
    if let Some(pg) = TestDb::postgres().await {
        bench(pg).await;
    }
}
