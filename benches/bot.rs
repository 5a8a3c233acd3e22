//! Bot benchmark against the fake GitHub (tests/support/fake_forge): API calls and wall
//! time per repository for analyse + open PR (every fixture repository loaded into the
//! fake, median/p95/max), the cost of a re-analysis that changes nothing, and the
//! throughput of a 1,000-repository installation through the real queue and workers.
//! Run: `cargo bench --bench bot` (SQLite; set PIPEWRIGHT_BENCH_DATABASE_URL for PG).

#[path = "../tests/support/fake_forge/mod.rs"]
#[allow(unused_imports)]
mod fake_forge;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_forge::{FakeForge, RepoSpec};
use pipewright::clock::Clock;
use pipewright::config::{Config, GithubAppConfig, Secret};
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::forge::client::RepoHandle;
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, Forges, InstallationId, RepoId};
use pipewright::jobs::analyze_repo::{sync_repository, Outcome};
use pipewright::jobs::{self, JobsContext, ReconcileInstallation};
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobState, ListFilter};
use pipewright::queue::{NewJob, WorkerOptions, WorkerPool};
use pipewright::Db;
use tokio::sync::Notify;

const INSTALLATION: &str = "777";

fn files_of(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    let rel = p
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.push((rel, text));
                }
            }
        }
    }
    out.sort();
    out
}

fn pct<T: Copy + Ord>(v: &mut [T], p: f64) -> T {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn setup(db_url: &str, fake: &FakeForge, workers: usize) -> (Db, JobsContext, Config) {
    let db = Db::connect_and_migrate(db_url).await.unwrap();
    let mut config = Config::for_database(db_url);
    config.workers = workers;
    config.bot.github_app = Some(GithubAppConfig {
        app_id: fake_forge::APP_ID,
        private_key: Secret::new(fake_forge::app_private_key()),
    });
    config.bot.github_api_url = fake.url.clone();
    config.bot.prs_per_hour = 1_000_000;
    let clock = Clock::System;
    let forges = Arc::new(Forges::from_config(&config.bot, clock.clone()).unwrap());
    (
        db.clone(),
        JobsContext::from_config(&config, clock, forges),
        config,
    )
}

fn fresh_db_url(tag: &str) -> (String, Option<tempfile::TempDir>) {
    match std::env::var("PIPEWRIGHT_BENCH_DATABASE_URL") {
        Ok(u) if !u.is_empty() => (u, None),
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("{tag}.db")).display()
            );
            (url, Some(dir))
        }
    }
}

async fn per_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let fake = FakeForge::github().await;
    fake.world().set_workflows_permission(INSTALLATION, true);
    let (url, _keep) = fresh_db_url("per-repo");
    let (db, ctx, _) = setup(&url, &fake, 1).await;
    let now = Clock::System.now();
    installations::upsert_installation(
        &db,
        Forge::Github,
        INSTALLATION,
        Some("bench"),
        InstallationState::Active,
        now,
    )
    .await
    .unwrap();
    let inst = installations::get_installation(&db, Forge::Github, INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    let client_for = || ctx.forge_client(Forge::Github, INSTALLATION, None).unwrap();
    // Warm the token cache so the per-repository numbers are steady state.
    {
        let c = client_for();
        let _ = c.list_repositories().await;
    }
    let (mut opened_calls, mut opened_ms, mut other_calls, mut rerun_calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!("{:<30} {:>6} {:>9}  outcome", "fixture", "calls", "ms");
    for (i, name) in names.iter().enumerate() {
        let files = files_of(&root.join(name));
        let full = format!("bench/{name}");
        let mut spec = RepoSpec::new(10_000 + i as u64, &full, INSTALLATION);
        spec.files = files;
        if spec.files.is_empty() {
            spec = spec.empty();
        }
        fake.world().add_repo(spec);
        let repo = Repo {
            id: RepoId((10_000 + i).to_string()),
            full_name: full.clone(),
            default_branch: Some("main".into()),
            private: Some(true),
            archived: Some(false),
            fork: Some(false),
        };
        installations::upsert_repo(
            &db,
            Some(inst.id),
            Forge::Github,
            &repo,
            RepoState::Active,
            now,
        )
        .await
        .unwrap();
        let row = installations::get_repo(&db, Forge::Github, &repo.id.0)
            .await
            .unwrap()
            .unwrap();
        let handle = RepoHandle {
            id: repo.id.0.clone(),
            full_name: full,
        };
        let client = client_for();
        let t = Instant::now();
        let outcome = sync_repository(&ctx, &db, client.as_ref(), &inst, &row, &handle, None)
            .await
            .map(|o| o.describe(Forge::Github))
            .unwrap_or_else(|e| format!("error: {e}"));
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let calls = client.calls();
        println!("{name:<30} {calls:>6} {ms:>9.2}  {outcome}");
        if outcome.starts_with("opened") {
            opened_calls.push(calls);
            opened_ms.push((ms * 1000.0) as u64);
        } else {
            other_calls.push(calls);
        }
        // The same analysis again (a redelivery or an unrelated push): nothing changes.
        let again = client_for();
        let o2 = sync_repository(&ctx, &db, again.as_ref(), &inst, &row, &handle, None).await;
        if matches!(o2, Ok(Outcome::Unchanged(_))) {
            rerun_calls.push(again.calls());
        }
    }
    if !opened_calls.is_empty() {
        let n = opened_calls.len();
        println!(
            "\nanalyse + open PR ({n} repositories): API calls median {} p95 {} max {}; wall time median {:.2} ms p95 {:.2} ms",
            pct(&mut opened_calls, 0.5),
            pct(&mut opened_calls, 0.95),
            pct(&mut opened_calls, 1.0),
            pct(&mut opened_ms, 0.5) as f64 / 1000.0,
            pct(&mut opened_ms, 0.95) as f64 / 1000.0,
        );
    }
    if !other_calls.is_empty() {
        println!(
            "no PR (existing CI, empty, nothing to build; {} repositories): API calls median {} max {}",
            other_calls.len(),
            pct(&mut other_calls, 0.5),
            pct(&mut other_calls, 1.0)
        );
    }
    if !rerun_calls.is_empty() {
        println!(
            "re-analysis with nothing to change ({} repositories): API calls median {} max {}",
            rerun_calls.len(),
            pct(&mut rerun_calls, 0.5),
            pct(&mut rerun_calls, 1.0)
        );
    }
    fake.stop();
}

async fn installation_of(n: usize, workers: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let fixtures: Vec<Vec<(String, String)>> = [
        "rust-axum",
        "node-npm-react-vite",
        "python-uv-fastapi",
        "go-gin-make",
        "java-maven-spring",
        "with-github-ci",
        "ruby-rails-rspec",
        "php-laravel",
    ]
    .iter()
    .map(|f| files_of(&root.join(f)))
    .collect();
    let fake = FakeForge::github().await;
    fake.world().set_workflows_permission(INSTALLATION, true);
    for i in 0..n {
        let mut spec = RepoSpec::new(50_000 + i as u64, &format!("big/repo-{i:04}"), INSTALLATION);
        spec.files = fixtures[i % fixtures.len()].clone();
        fake.world().add_repo(spec);
    }
    let (url, _keep) = fresh_db_url("install");
    let (db, ctx, _) = setup(&url, &fake, workers).await;
    let now = Clock::System.now();
    installations::upsert_installation(
        &db,
        Forge::Github,
        INSTALLATION,
        Some("big"),
        InstallationState::Active,
        now,
    )
    .await
    .unwrap();
    fake.world().clear_requests();
    let t = Instant::now();
    store::enqueue(
        &db,
        &NewJob::of(&ReconcileInstallation {
            forge: Forge::Github,
            installation: InstallationId(INSTALLATION.into()),
            period: 0,
        }),
        now,
    )
    .await
    .unwrap();
    let mut opts = WorkerOptions::new(workers);
    opts.poll_ms = 20;
    let pool = WorkerPool::new(
        db.clone(),
        jobs::registry(ctx.clone()),
        Clock::System,
        opts,
        Arc::new(Notify::new()),
        Arc::new(Metrics::new()),
    )
    .start();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let live = store::list(
            &db,
            &ListFilter {
                state: None,
                kind: None,
                limit: 100_000,
            },
        )
        .await
        .unwrap();
        let busy = live.iter().any(|j| {
            matches!(
                j.state,
                JobState::Queued | JobState::Running | JobState::Failed
            )
        });
        if !busy && live.len() > 1 {
            break;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            println!("gave up after 30 minutes");
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    pool.shutdown().await;
    let prs: usize = (0..n)
        .map(|i| fake.world().prs(&format!("big/repo-{i:04}")).len())
        .sum();
    let calls = fake.world().requests().len();
    let dead = store::list(
        &db,
        &ListFilter {
            state: Some(JobState::Dead),
            kind: None,
            limit: 10,
        },
    )
    .await
    .unwrap()
    .len();
    println!(
        "\ninstallation of {n} repositories, {workers} workers ({}): {secs:.1} s, {:.1} repositories/s, {prs} PRs, {calls} API calls ({:.1} per repository), {dead} dead jobs",
        if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" },
        n as f64 / secs,
        calls as f64 / n as f64
    );
    fake.stop();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        per_repository().await;
        let n = std::env::var("PIPEWRIGHT_BENCH_REPOS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        installation_of(n, 8).await;
    });
}
