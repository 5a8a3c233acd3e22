//! A worker process SIGKILLed in the middle of opening a pull request: the forge (the fake
//! GitHub) still creates the PR from the request in flight, the dead worker never learns
//! it, and the worker that takes the job over after the lease expires finds and adopts
//! that PR. Exactly one PR, whatever moment the crash hits.
//!
//! The worker process is this test binary re-run with `--ignored --exact
//! child_bot_worker`, configured through environment variables.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/db.rs"]
mod testdb;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fake_forge::{FakeForge, RepoSpec};
use pipewright::bot::pr_body;
use pipewright::clock::Clock;
use pipewright::config::{Config, GithubAppConfig, Secret};
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, Forges, InstallationId, RepoId};
use pipewright::jobs::{self, AnalyzeReason, AnalyzeRepo, JobsContext};
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobState};
use pipewright::queue::{NewJob, WorkerOptions, WorkerPool};
use pipewright::Db;
use testdb::{wait_until, TestDb};
use tokio::sync::Notify;

const INSTALLATION: &str = "957387";
const LEASE_MS: i64 = 1_500;

fn context(db_url: &str, github_url: &str, clock: Clock) -> JobsContext {
    let mut config = Config::for_database(db_url);
    config.bot.github_app = Some(GithubAppConfig {
        app_id: fake_forge::APP_ID,
        private_key: Secret::new(fake_forge::app_private_key()),
    });
    config.bot.github_api_url = github_url.to_owned();
    config.bot.reconcile_secs = 0;
    let forges = Arc::new(Forges::from_config(&config.bot, clock.clone()).unwrap());
    JobsContext::from_config(&config, clock, forges)
}

fn pool(db: &Db, ctx: JobsContext) -> WorkerPool {
    let mut opts = WorkerOptions::new(2);
    opts.lease_ms = LEASE_MS;
    opts.heartbeat_ms = 300;
    opts.poll_ms = 20;
    opts.reap_ms = 100;
    WorkerPool::new(
        db.clone(),
        jobs::registry(ctx),
        Clock::System,
        opts,
        Arc::new(Notify::new()),
        Arc::new(Metrics::new()),
    )
}

/// Not a test: the body of the worker process spawned below.
#[test]
#[ignore = "entry point of the child worker process; run by the test below"]
fn child_bot_worker() {
    let (Ok(url), Ok(github)) = (
        std::env::var("PW_CHILD_DB"),
        std::env::var("PW_CHILD_GITHUB"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let db = Db::connect(&url).await.unwrap();
        let handle = pool(&db, context(&url, &github, Clock::System)).start();
        pipewright::app::shutdown_signal().await;
        handle.shutdown().await;
    });
}

#[actix_web::test]
async fn worker_killed_while_opening_the_pr_leaves_exactly_one() {
    let fake = FakeForge::github().await;
    fake.world().set_workflows_permission(INSTALLATION, true);
    let full = "Codertocat/Hello-World";
    fake.world()
        .add_repo(RepoSpec::new(186853002, full, INSTALLATION).file(
            "Cargo.toml",
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
        ));
    let t = TestDb::sqlite().await;
    let now = Clock::System.now();
    installations::upsert_installation(
        &t.db,
        Forge::Github,
        INSTALLATION,
        Some("Codertocat"),
        InstallationState::Active,
        now,
    )
    .await
    .unwrap();
    let repo = Repo {
        id: RepoId("186853002".into()),
        full_name: full.into(),
        default_branch: Some("main".into()),
        private: Some(false),
        archived: Some(false),
        fork: Some(false),
    };
    let inst = installations::get_installation(&t.db, Forge::Github, INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    installations::upsert_repo(
        &t.db,
        Some(inst.id),
        Forge::Github,
        &repo,
        RepoState::Active,
        now,
    )
    .await
    .unwrap();
    let job = AnalyzeRepo {
        forge: Forge::Github,
        installation: Some(InstallationId(INSTALLATION.into())),
        repo,
        reason: AnalyzeReason::Push,
        sha: None,
    };
    let job_id = store::enqueue(&t.db, &NewJob::of(&job), now)
        .await
        .unwrap()
        .unwrap();

    // The PR creation request will hang at the forge until we let it go.
    let hold = fake.world().hold_next("POST", "/pulls");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_bot_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PW_CHILD_DB", &t.url)
        .env("PW_CHILD_GITHUB", &fake.url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the worker process");
    let arrived = hold.arrived.clone();
    wait_until("the worker is opening the PR", || {
        let a = arrived.clone();
        async move { a.load(Ordering::SeqCst) }
    })
    .await;
    child.kill().expect("SIGKILL the worker");
    child.wait().unwrap();
    // The forge finishes the request the dead worker sent: the PR exists, unrecorded.
    hold.release.store(true, Ordering::SeqCst);
    let world = fake.world.clone();
    wait_until("the forge creates the PR", || {
        let w = world.clone();
        async move { w.lock().unwrap().prs(full).len() == 1 }
    })
    .await;
    let row = store::get(&t.db, job_id).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        JobState::Running,
        "still leased by the dead worker"
    );

    // Another worker takes the job over once the lease expires, and adopts the PR.
    let survivor = pool(&t.db, context(&t.url, &fake.url, Clock::System)).start();
    let db = t.db.clone();
    wait_until("the job completes", || {
        let db = db.clone();
        async move {
            store::get(&db, job_id)
                .await
                .unwrap()
                .is_some_and(|j| j.state == JobState::Succeeded)
        }
    })
    .await;
    survivor.shutdown().await;
    let row = store::get(&t.db, job_id).await.unwrap().unwrap();
    assert_eq!(row.attempts, 2, "the second attempt finished it");
    let prs = fake.world().prs(full);
    assert_eq!(prs.len(), 1, "exactly one PR");
    let state = pr_body::parse_state(&prs[0].body).unwrap();
    let tip = fake.world().branch_head(full, "pipewright/ci").unwrap();
    assert_eq!(state.head.as_deref(), Some(tip.as_str()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    fake.stop();
}
