//! End to end, for each forge: a signed real webhook payload goes through the HTTP
//! intake, the queue and the workers to the forge's (fake, stateful) API, and the right
//! pull request comes out. The payloads are the real ones from
//! `../shared/fixtures/webhooks/`, with ids and names pointed at the fake's repositories.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use fake_forge::{FakeForge, RepoSpec};
use hmac::{Hmac, Mac};
use pipewright::bot::pr_body;
use pipewright::clock::Clock;
use pipewright::config::{Config, GithubAppConfig, Secret};
use pipewright::db::installations::{self, InstallationState};
use pipewright::forge::{Forge, Forges, InstallationId};
use pipewright::jobs::{self, JobsContext, ReconcileInstallation};
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobRow, JobState, ListFilter};
use pipewright::queue::{NewJob, WorkerOptions, WorkerPool};
use pipewright::server::{self, AppState, Intake};
use serde_json::{json, Value};
use sha2::Sha256;
use testdb::TestDb;
use tokio::sync::Notify;

const SECRET: &str = "e2e-webhook-secret";
const GITHUB_INSTALLATION: &str = "957387";
const GROUP: &str = "acme";
const WORKSPACE_UUID: &str = "{9d7c8b5e-0000-4000-8000-00000000acme}";
const BRANCH: &str = "pipewright/ci";

const CARGO: &str = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
const PACKAGE_JSON: &str =
    "{\"name\":\"web\",\"scripts\":{\"test\":\"vitest run\"},\"devDependencies\":{\"vitest\":\"^1\"}}\n";
const PYPROJECT: &str =
    "[project]\nname = \"svc\"\nversion = \"0.1.0\"\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n";
const WORKFLOW: &str =
    "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: go test ./...\n";

struct Harness {
    t: TestDb,
    fake: FakeForge,
    forge: Forge,
    clock: Clock,
    state: web::Data<AppState>,
    ctx: JobsContext,
    deliveries: AtomicU64,
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn fixture(path: &str) -> Option<Value> {
    let dir = shared::shared_dir()?;
    let text = std::fs::read_to_string(dir.join("fixtures/webhooks").join(path)).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// Sets a field of a fixture (the parent must exist; the field itself may be new).
fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let obj = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("fixture has no object at {parent}"));
    obj.insert(key.to_owned(), value);
}

/// Bitbucket repository uuids of the fake (documented in fake_forge/bitbucket.rs).
fn bb_uuid(id: u64) -> String {
    format!("{{00000000-0000-4000-8000-{id:012x}}}")
}

impl Harness {
    async fn new(t: TestDb, forge: Forge, prs_per_hour: u32) -> Harness {
        let fake = match forge {
            Forge::Github => FakeForge::github().await,
            Forge::Gitlab => FakeForge::gitlab().await,
            Forge::Bitbucket => FakeForge::bitbucket().await,
        };
        if forge == Forge::Github {
            fake.world()
                .set_workflows_permission(GITHUB_INSTALLATION, true);
        }
        let mut config = Config::for_database(&t.url);
        config.github_webhook_secrets = vec![Secret::new(SECRET)];
        config.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
        config.bitbucket_webhook_secrets = vec![Secret::new(SECRET)];
        config.bot.prs_per_hour = prs_per_hour;
        match forge {
            Forge::Github => {
                config.bot.github_app = Some(GithubAppConfig {
                    app_id: fake_forge::APP_ID,
                    private_key: Secret::new(fake_forge::app_private_key()),
                });
                config.bot.github_api_url = fake.url.clone();
            }
            Forge::Gitlab => {
                config.bot.gitlab_url = fake.url.clone();
                config.bot.gitlab_token = Some(Secret::new(fake_forge::GITLAB_TOKEN));
                config.bot.gitlab_groups = vec![GROUP.into()];
            }
            Forge::Bitbucket => {
                config.bot.bitbucket_api_url = fake.url.clone();
                config.bot.bitbucket_token = Some(Secret::new(fake_forge::BITBUCKET_TOKEN));
                config.bot.bitbucket_workspaces = vec![GROUP.into()];
            }
        }
        // Real time: the fake's installation tokens expire an hour after it issues them.
        let clock = Clock::manual(Clock::System.now());
        let forges = Arc::new(Forges::from_config(&config.bot, clock.clone()).unwrap());
        let ctx = JobsContext::from_config(&config, clock.clone(), forges);
        let (intake, _writers) =
            Intake::start(t.db.clone(), clock.clone(), Arc::new(Notify::new()));
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            db: t.db.clone(),
            intake,
            metrics: Arc::new(Metrics::new()),
            clock: clock.clone(),
        });
        Harness {
            t,
            fake,
            forge,
            clock,
            state,
            ctx,
            deliveries: AtomicU64::new(0),
        }
    }

    fn tenant(&self) -> &'static str {
        match self.forge {
            Forge::Github => GITHUB_INSTALLATION,
            Forge::Gitlab | Forge::Bitbucket => GROUP,
        }
    }

    fn owner(&self) -> &'static str {
        match self.forge {
            Forge::Github => "Codertocat",
            Forge::Gitlab | Forge::Bitbucket => GROUP,
        }
    }

    fn full(&self, name: &str) -> String {
        format!("{}/{name}", self.owner())
    }

    fn add_repo(&self, id: u64, name: &str, files: &[(&str, &str)]) -> String {
        let mut spec = RepoSpec::new(id, &self.full(name), self.tenant());
        for (p, c) in files {
            spec = spec.file(p, c);
        }
        self.fake.world().add_repo(spec)
    }

    /// Signs and posts one delivery through the real HTTP intake.
    async fn deliver(&self, event: &str, body: &Value) -> StatusCode {
        let body = serde_json::to_vec(body).unwrap();
        let id = format!("e2e-{}", self.deliveries.fetch_add(1, Ordering::SeqCst));
        let app =
            test::init_service(App::new().configure(server::configure(self.state.clone()))).await;
        let req = test::TestRequest::post()
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.clone());
        let req = match self.forge {
            Forge::Github => req
                .uri("/webhooks/github")
                .insert_header(("X-GitHub-Event", event))
                .insert_header(("X-GitHub-Delivery", id))
                .insert_header(("X-Hub-Signature-256", format!("sha256={}", hmac_hex(&body)))),
            Forge::Gitlab => req
                .uri("/webhooks/gitlab")
                .insert_header(("X-Gitlab-Event", event))
                .insert_header(("Idempotency-Key", id))
                .insert_header(("X-Gitlab-Token", SECRET)),
            Forge::Bitbucket => req
                .uri("/webhooks/bitbucket")
                .insert_header(("X-Event-Key", event))
                .insert_header(("X-Request-UUID", id))
                .insert_header(("X-Hub-Signature", format!("sha256={}", hmac_hex(&body)))),
        };
        test::call_service(&app, req.to_request()).await.status()
    }

    /// Runs workers until no job is due or running.
    async fn drain(&self) {
        let mut opts = WorkerOptions::new(2);
        opts.poll_ms = 10;
        let pool = WorkerPool::new(
            self.t.db.clone(),
            jobs::registry(self.ctx.clone()),
            self.clock.clone(),
            opts,
            Arc::new(Notify::new()),
            Arc::new(Metrics::new()),
        )
        .start();
        let db = self.t.db.clone();
        let clock = self.clock.clone();
        testdb::wait_until("the queue drains", || {
            let db = db.clone();
            let now = clock.now();
            async move {
                let live = all_jobs(&db).await;
                !live.iter().any(|j| {
                    j.state == JobState::Running
                        || (matches!(j.state, JobState::Queued | JobState::Failed)
                            && j.run_at <= now)
                })
            }
        })
        .await;
        pool.shutdown().await;
    }

    /// What `install` means on each forge: GitHub sends `installation.created`; GitLab and
    /// Bitbucket are connected by an operator (`gitlab connect` / `bitbucket connect`).
    async fn install(&self) {
        match self.forge {
            Forge::Github => {
                let Some(mut p) = fixture("github/installation.created.json") else {
                    return;
                };
                set(&mut p, "/installation/id", json!(957387));
                assert_eq!(self.deliver("installation", &p).await, StatusCode::ACCEPTED);
            }
            Forge::Gitlab | Forge::Bitbucket => {
                let ext = if self.forge == Forge::Gitlab {
                    GROUP
                } else {
                    WORKSPACE_UUID
                };
                let now = self.clock.now();
                installations::upsert_installation(
                    &self.t.db,
                    self.forge,
                    ext,
                    Some(GROUP),
                    InstallationState::Active,
                    now,
                )
                .await
                .unwrap();
                let job = ReconcileInstallation {
                    forge: self.forge,
                    installation: InstallationId(ext.into()),
                    period: 0,
                };
                store::enqueue(&self.t.db, &NewJob::of(&job), now)
                    .await
                    .unwrap();
            }
        }
    }

    /// A person pushes to the default branch, and the forge delivers the push event.
    async fn push_main(&self, id: u64, name: &str, files: &[(&str, Option<&str>)]) -> String {
        let full = self.full(name);
        let before = self.fake.world().branch_head(&full, "main").unwrap();
        let after = self.fake.world().push(&full, "main", files, "alice");
        let changed: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
        let Some(body) = self.push_payload(id, name, "main", &before, &after, &changed, "alice")
        else {
            return after;
        };
        let event = match self.forge {
            Forge::Github => "push",
            Forge::Gitlab => "Push Hook",
            Forge::Bitbucket => "repo:push",
        };
        assert_eq!(self.deliver(event, &body).await, StatusCode::ACCEPTED);
        after
    }

    #[allow(clippy::too_many_arguments)]
    fn push_payload(
        &self,
        id: u64,
        name: &str,
        branch: &str,
        before: &str,
        after: &str,
        changed: &[&str],
        author: &str,
    ) -> Option<Value> {
        let full = self.full(name);
        Some(match self.forge {
            Forge::Github => {
                let mut p = fixture("github/push.default-branch.app.json")?;
                set(&mut p, "/installation/id", json!(957387));
                set(&mut p, "/repository/id", json!(id));
                set(&mut p, "/repository/name", json!(name));
                set(&mut p, "/repository/full_name", json!(full));
                set(&mut p, "/repository/default_branch", json!("main"));
                set(&mut p, "/repository/master_branch", json!("main"));
                set(&mut p, "/ref", json!(format!("refs/heads/{branch}")));
                set(&mut p, "/before", json!(before));
                set(&mut p, "/after", json!(after));
                set(&mut p, "/sender/login", json!(author));
                let commit = json!({"id": after, "tree_id": after, "distinct": true, "message": "change",
                    "timestamp": "2026-11-24T08:00:00Z", "url": "https://example.invalid",
                    "author": {"name": author, "email": "a@example.invalid", "username": author},
                    "committer": {"name": author, "email": "a@example.invalid", "username": author},
                    "added": changed, "removed": [], "modified": []});
                set(&mut p, "/commits", json!([commit.clone()]));
                set(&mut p, "/head_commit", commit);
                p
            }
            Forge::Gitlab => {
                let mut p = fixture("gitlab/push.json")?;
                set(&mut p, "/project_id", json!(id));
                set(&mut p, "/project/id", json!(id));
                set(&mut p, "/project/path_with_namespace", json!(full));
                set(&mut p, "/project/default_branch", json!("main"));
                set(&mut p, "/ref", json!(format!("refs/heads/{branch}")));
                set(&mut p, "/before", json!(before));
                set(&mut p, "/after", json!(after));
                set(&mut p, "/checkout_sha", json!(after));
                set(&mut p, "/user_username", json!(author));
                let commit = json!({"id": after, "message": "change", "timestamp": "2026-11-24T08:00:00+00:00",
                    "url": "https://example.invalid", "author": {"name": author, "email": "a@example.invalid"},
                    "added": changed, "modified": [], "removed": []});
                set(&mut p, "/commits", json!([commit]));
                set(&mut p, "/total_commits_count", json!(1));
                p
            }
            Forge::Bitbucket => {
                let mut p = fixture("bitbucket/repo_push.json")?;
                set(&mut p, "/repository/uuid", json!(bb_uuid(id)));
                set(&mut p, "/repository/full_name", json!(full));
                set(&mut p, "/repository/name", json!(name));
                p["repository"]["mainbranch"] = json!({"type": "branch", "name": "main"});
                p["repository"]["workspace"] = json!({"type": "workspace", "slug": GROUP, "name": GROUP, "uuid": WORKSPACE_UUID});
                set(&mut p, "/actor/nickname", json!(author));
                let change = &mut p["push"]["changes"][0];
                set(change, "/new/name", json!(branch));
                set(change, "/new/type", json!("branch"));
                set(change, "/new/target/hash", json!(after));
                set(change, "/old/name", json!(branch));
                set(change, "/old/target/hash", json!(before));
                change["created"] = json!(false);
                change["closed"] = json!(false);
                change["forced"] = json!(false);
                p
            }
        })
    }

    /// A person closes the bot's PR without merging; the forge delivers the event.
    async fn close_pr(&self, id: u64, name: &str, number: u64) {
        let full = self.full(name);
        self.fake.world().close_pr(&full, number, false);
        let (event, body) = match self.forge {
            Forge::Github => {
                let Some(mut p) = fixture("github/pull_request.closed.json") else {
                    return;
                };
                set(&mut p, "/installation/id", json!(957387));
                set(&mut p, "/repository/id", json!(id));
                set(&mut p, "/repository/full_name", json!(full));
                set(&mut p, "/repository/name", json!(name));
                set(&mut p, "/number", json!(number));
                set(&mut p, "/pull_request/number", json!(number));
                set(&mut p, "/pull_request/merged", json!(false));
                set(&mut p, "/pull_request/head/ref", json!(BRANCH));
                ("pull_request", p)
            }
            Forge::Gitlab => {
                let Some(mut p) = fixture("gitlab/merge_request.close.json") else {
                    return;
                };
                set(&mut p, "/project/id", json!(id));
                set(&mut p, "/project/path_with_namespace", json!(full));
                set(&mut p, "/object_attributes/iid", json!(number));
                set(&mut p, "/object_attributes/source_branch", json!(BRANCH));
                set(&mut p, "/object_attributes/action", json!("close"));
                set(&mut p, "/object_attributes/state", json!("closed"));
                ("Merge Request Hook", p)
            }
            Forge::Bitbucket => {
                let Some(mut p) = fixture("bitbucket/pullrequest_rejected.json") else {
                    return;
                };
                set(&mut p, "/repository/uuid", json!(bb_uuid(id)));
                set(&mut p, "/repository/full_name", json!(full));
                p["repository"]["workspace"] = json!({"type": "workspace", "slug": GROUP, "name": GROUP, "uuid": WORKSPACE_UUID});
                set(&mut p, "/pullrequest/id", json!(number));
                set(&mut p, "/pullrequest/state", json!("DECLINED"));
                set(&mut p, "/pullrequest/source/branch/name", json!(BRANCH));
                ("pullrequest:rejected", p)
            }
        };
        assert_eq!(self.deliver(event, &body).await, StatusCode::ACCEPTED);
    }

    fn prs(&self, name: &str) -> Vec<fake_forge::Pr> {
        self.fake.world().prs(&self.full(name))
    }

    fn all_prs(&self, names: &[&str]) -> usize {
        names.iter().map(|n| self.prs(n).len()).sum()
    }
}

async fn all_jobs(db: &pipewright::Db) -> Vec<JobRow> {
    store::list(
        db,
        &ListFilter {
            state: None,
            kind: None,
            limit: 10_000,
        },
    )
    .await
    .unwrap()
}

fn have_fixtures() -> bool {
    if shared::shared_dir().is_some() {
        return true;
    }
    eprintln!("skipping: ../shared/fixtures is absent");
    false
}

/// The PR's state block names the branch tip the bot wrote.
fn assert_bot_pr(h: &Harness, name: &str) -> fake_forge::Pr {
    let prs = h.prs(name);
    assert_eq!(prs.len(), 1, "{}: one PR for {name}", h.forge);
    let pr = prs[0].clone();
    assert_eq!(pr.head, BRANCH);
    let state = pr_body::parse_state(&pr.body).expect("the body carries the bot's state");
    let tip = h.fake.world().branch_head(&h.full(name), BRANCH).unwrap();
    assert_eq!(
        state.head.as_deref(),
        Some(tip.as_str()),
        "{}: state head",
        h.forge
    );
    pr
}

async fn install_flow(forge: Forge, t: TestDb) {
    let h = Harness::new(t, forge, 2).await;
    let hello_id = if forge == Forge::Github {
        186853002
    } else {
        101
    };
    h.add_repo(
        hello_id,
        "Hello-World",
        &[("Cargo.toml", CARGO), ("src/main.rs", "fn main() {}\n")],
    );
    h.add_repo(102, "web", &[("package.json", PACKAGE_JSON)]);
    h.add_repo(103, "svc", &[("pyproject.toml", PYPROJECT)]);
    h.add_repo(
        104,
        "has-ci",
        &[
            ("go.mod", "module x\n\ngo 1.22\n"),
            (".github/workflows/ci.yml", WORKFLOW),
        ],
    );
    let mut archived = RepoSpec::new(105, &h.full("old"), h.tenant()).file("go.mod", "module y\n");
    archived.archived = true;
    // Bitbucket Cloud has no archived repositories: the fork flag skips it there.
    archived.fork = true;
    h.fake.world().add_repo(archived);
    let names = ["Hello-World", "web", "svc", "has-ci", "old"];

    h.install().await;
    h.drain().await;
    // Budget of 2 per hour: two PRs now, the third analysis waits, silently.
    assert_eq!(h.all_prs(&names), 2, "{forge}: PRs within the budget");
    assert!(h.prs("has-ci").is_empty() && h.prs("old").is_empty());
    let waiting: Vec<JobRow> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
        .collect();
    assert_eq!(waiting.len(), 1, "{forge}: one analysis deferred");
    assert!(waiting[0].run_at > h.clock.now() + 50 * 60 * 1000);
    assert!(waiting[0]
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("pull requests in the last hour"));

    h.clock.advance(61 * 60 * 1000);
    h.drain().await;
    assert_eq!(h.all_prs(&names), 3, "{forge}: the rest after an hour");
    for n in ["Hello-World", "web", "svc"] {
        let pr = assert_bot_pr(&h, n);
        // One commit on top of the default branch carries every file.
        let commits = h.fake.world().commits(&h.full(n), BRANCH);
        let main = h.fake.world().branch_head(&h.full(n), "main").unwrap();
        assert_eq!(
            commits[1].sha, main,
            "{forge}: {n} branch is one commit on main"
        );
        assert!(pr.title.starts_with("Add CI with"), "{}", pr.title);
    }
    let ci_path = match forge {
        Forge::Github => ".github/workflows/ci.yml",
        Forge::Gitlab => ".gitlab-ci.yml",
        Forge::Bitbucket => "bitbucket-pipelines.yml",
    };
    let ci = h
        .fake
        .world()
        .file(&h.full("Hello-World"), BRANCH, ci_path)
        .expect("CI file");
    assert!(ci.contains("cargo"), "{forge}: {ci}");
    // Nothing failed on the way.
    let dead: Vec<JobRow> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.state == JobState::Dead)
        .collect();
    assert!(dead.is_empty(), "{forge}: dead jobs {dead:?}");

    // Redelivering the install changes nothing: no second PR, no new commit.
    let tips: Vec<String> = ["Hello-World", "web", "svc"]
        .iter()
        .map(|n| h.fake.world().branch_head(&h.full(n), BRANCH).unwrap())
        .collect();
    h.install().await;
    h.clock.advance(1000);
    h.drain().await;
    assert_eq!(h.all_prs(&names), 3);
    for (n, tip) in ["Hello-World", "web", "svc"].iter().zip(&tips) {
        assert_eq!(
            &h.fake.world().branch_head(&h.full(n), BRANCH).unwrap(),
            tip
        );
    }

    // A manifest change on main updates the open PR in place (a new commit on its branch).
    let before = h.prs("web")[0].clone();
    let old_tip = h.fake.world().branch_head(&h.full("web"), BRANCH).unwrap();
    h.push_main(
        102,
        "web",
        &[("Dockerfile", Some("FROM node:22\nCOPY . .\n"))],
    )
    .await;
    h.drain().await;
    let after = assert_bot_pr(&h, "web");
    assert_eq!(after.number, before.number);
    assert_ne!(
        pr_body::parse_state(&after.body).unwrap().hash,
        pr_body::parse_state(&before.body).unwrap().hash,
        "{forge}: proposal changed"
    );
    // A fast-forward on top of the previous bot commit, never a rewrite.
    let commits = h.fake.world().commits(&h.full("web"), BRANCH);
    assert_eq!(commits[1].sha, old_tip, "{forge}: update is a fast-forward");
    // The branch is not rebased (no force-push): main's Dockerfile is not on it, but the
    // proposal now builds it.
    let ci = h
        .fake
        .world()
        .file(&h.full("web"), BRANCH, ci_path)
        .unwrap();
    assert!(ci.to_lowercase().contains("docker"), "{forge}: {ci}");

    // A person commits to the bot's branch: the next change is not pushed over it.
    let human = h.fake.world().push(
        &h.full("svc"),
        BRANCH,
        &[("notes.txt", Some("mine\n"))],
        "alice",
    );
    h.push_main(103, "svc", &[("Dockerfile", Some("FROM python:3.12\n"))])
        .await;
    h.drain().await;
    assert_eq!(
        h.fake.world().branch_head(&h.full("svc"), BRANCH).unwrap(),
        human
    );
    let svc_pr = h.prs("svc")[0].number;
    let comments = h.fake.world().comments(&h.full("svc"), svc_pr);
    assert_eq!(comments.len(), 1, "{forge}: one comment instead of a push");
    assert!(
        comments[0].body.contains("will not"),
        "{}",
        comments[0].body
    );
    // And it says so once, not on every push.
    h.push_main(103, "svc", &[("Makefile", Some("test:\n\tpytest\n"))])
        .await;
    h.drain().await;
    assert_eq!(h.fake.world().comments(&h.full("svc"), svc_pr).len(), 1);

    // A person closes the PR: the same proposal is never reopened.
    let hello_pr = h.prs("Hello-World")[0].number;
    h.close_pr(hello_id, "Hello-World", hello_pr).await;
    h.drain().await;
    h.push_main(
        hello_id,
        "Hello-World",
        &[
            ("README.md", Some("# changed\n")),
            ("Cargo.toml", Some(CARGO)),
        ],
    )
    .await;
    h.drain().await;
    let prs = h.prs("Hello-World");
    assert_eq!(prs.len(), 1, "{forge}: not reopened");
    assert_ne!(prs[0].state, fake_forge::PrState::Open);
    h.fake.stop();
}

#[actix_web::test]
async fn github_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    for t in TestDb::all().await {
        install_flow(Forge::Github, t).await;
    }
}

#[actix_web::test]
async fn gitlab_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    install_flow(Forge::Gitlab, TestDb::sqlite().await).await;
}

#[actix_web::test]
async fn bitbucket_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    install_flow(Forge::Bitbucket, TestDb::sqlite().await).await;
}

/// First push to a new (empty) repository → PR; a rate limit defers the job and it
/// completes later; a failure after the branch was written (a crashed attempt) still
/// ends with exactly one PR; the bot's own events are ignored.
async fn faults_flow(forge: Forge) {
    let h = Harness::new(TestDb::sqlite().await, forge, 50).await;
    h.fake
        .world()
        .add_repo(RepoSpec::new(201, &h.full("fresh"), h.tenant()).empty());
    h.add_repo(202, "limited", &[("go.mod", "module l\n\ngo 1.22\n")]);
    let (tree_path, pr_path) = match forge {
        Forge::Github => ("/git/trees/", "/pulls"),
        Forge::Gitlab => ("/repository/tree", "/merge_requests"),
        Forge::Bitbucket => ("/src/", "/pullrequests"),
    };
    // Rate limit on the tree listing: deferred to the reset, not failed; then completes.
    let now_s = h.clock.now() / 1000;
    h.fake
        .world()
        .rate_limit_next("GET", tree_path, now_s + 600, now_s);
    // And the PR creation fails once after the branch is written (a crashed attempt).
    h.fake.world().fail_next(
        "POST",
        pr_path,
        502,
        vec![],
        "{\"message\":\"Server Error\"}",
    );
    h.install().await;
    h.drain().await;
    // The empty repository waits for its first push.
    assert!(h.prs("fresh").is_empty());
    let job = all_jobs(&h.t.db)
        .await
        .into_iter()
        .find(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
        .expect("the analysis is deferred");
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("rate limit"),
        "{job:?}"
    );
    assert_eq!(job.attempts, 0, "a deferral does not count as an attempt");
    assert!(h.prs("limited").is_empty());
    h.clock.advance(601 * 1000);
    h.drain().await;
    // The 502 made it retry (backoff), the branch write is redone, one PR in the end.
    assert!(h.prs("limited").is_empty());
    h.clock.advance(10 * 60 * 1000);
    h.drain().await;
    assert_bot_pr(&h, "limited");
    let commits = h.fake.world().commits(&h.full("limited"), BRANCH);
    let main = h
        .fake
        .world()
        .branch_head(&h.full("limited"), "main")
        .unwrap();
    assert_eq!(
        commits[1].sha, main,
        "{forge}: the retried write left one commit"
    );

    // First push to the new repository → PR.
    let full = h.full("fresh");
    h.fake.world().push(
        &full,
        "main",
        &[("go.mod", Some("module f\n\ngo 1.22\n"))],
        "alice",
    );
    let after = h.fake.world().branch_head(&full, "main").unwrap();
    let zero = "0000000000000000000000000000000000000000";
    if let Some(body) = h.push_payload(201, "fresh", "main", zero, &after, &["go.mod"], "alice") {
        let event = match forge {
            Forge::Github => "push",
            Forge::Gitlab => "Push Hook",
            Forge::Bitbucket => "repo:push",
        };
        assert_eq!(h.deliver(event, &body).await, StatusCode::ACCEPTED);
    }
    h.drain().await;
    assert_bot_pr(&h, "fresh");

    // The bot's own comment and its own push to its branch queue nothing.
    let jobs_before = all_jobs(&h.t.db).await.len();
    let pr = h.prs("limited")[0].number;
    let bot = h.fake.world().bot_login.clone();
    let tip = h
        .fake
        .world()
        .branch_head(&h.full("limited"), BRANCH)
        .unwrap();
    if let Some(body) = h.push_payload(202, "limited", BRANCH, &tip, &tip, &["x"], &bot) {
        let event = match forge {
            Forge::Github => "push",
            Forge::Gitlab => "Push Hook",
            Forge::Bitbucket => "repo:push",
        };
        assert_eq!(h.deliver(event, &body).await, StatusCode::ACCEPTED);
    }
    if forge == Forge::Github {
        if let Some(mut c) = fixture("github/issue_comment.created.on-pull-request.app.json") {
            set(&mut c, "/installation/id", json!(957387));
            set(&mut c, "/repository/id", json!(202));
            set(&mut c, "/repository/full_name", json!(h.full("limited")));
            set(&mut c, "/issue/number", json!(pr));
            set(&mut c, "/comment/body", json!("/pipewright help"));
            set(&mut c, "/comment/user/login", json!("pipewright[bot]"));
            set(&mut c, "/comment/user/type", json!("Bot"));
            set(&mut c, "/sender/login", json!("pipewright[bot]"));
            set(&mut c, "/sender/type", json!("Bot"));
            assert_eq!(h.deliver("issue_comment", &c).await, StatusCode::ACCEPTED);
        }
    }
    h.drain().await;
    let jobs_after = all_jobs(&h.t.db).await;
    let follow_ups: Vec<&JobRow> = jobs_after[..jobs_after.len() - jobs_before]
        .iter()
        .filter(|j| j.kind != "handle_event")
        .collect();
    assert!(
        follow_ups.is_empty(),
        "{forge}: own events queued {follow_ups:?}"
    );
    h.fake.stop();
}

#[actix_web::test]
async fn github_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Github).await;
    }
}

#[actix_web::test]
async fn gitlab_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Gitlab).await;
    }
}

#[actix_web::test]
async fn bitbucket_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Bitbucket).await;
    }
}

/// Without `workflows: write`, GitHub refuses the commit: the job ends with a clear
/// outcome, no PR, no retry loop.
#[actix_web::test]
async fn github_without_workflows_permission_stops_cleanly() {
    if !have_fixtures() {
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Github, 10).await;
    h.fake
        .world()
        .set_workflows_permission(GITHUB_INSTALLATION, false);
    h.add_repo(186853002, "Hello-World", &[("Cargo.toml", CARGO)]);
    h.install().await;
    h.drain().await;
    assert!(h.prs("Hello-World").is_empty());
    let jobs = all_jobs(&h.t.db).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    let repo = installations::get_repo(&h.t.db, Forge::Github, "186853002")
        .await
        .unwrap()
        .unwrap();
    let st = pipewright::db::pull_requests::repo_state(&h.t.db, repo.id)
        .await
        .unwrap();
    assert!(st.last_outcome.unwrap().contains("workflows: write"));
    h.fake.stop();
}

/// `serve --dry-run`: everything runs against the real (here: fake) forge's read API, but
/// the would-be branch, PR and comments land in the outbox; the forge is not written to.
#[actix_web::test]
async fn dry_run_records_the_pull_request_in_the_outbox() {
    if !have_fixtures() {
        return;
    }
    let mut h = Harness::new(TestDb::sqlite().await, Forge::Github, 10).await;
    let outbox = tempfile::tempdir().unwrap();
    h.ctx.outbox = Some(outbox.path().to_owned());
    h.add_repo(186853002, "Hello-World", &[("Cargo.toml", CARGO)]);
    h.install().await;
    h.drain().await;
    assert!(h.prs("Hello-World").is_empty());
    assert!(h
        .fake
        .world()
        .branch_head(&h.full("Hello-World"), BRANCH)
        .is_none());
    let dir = outbox.path().join("github/Codertocat_Hello-World");
    let pr = std::fs::read_to_string(dir.join("pull-request.md")).unwrap();
    assert!(pr.starts_with("# Add CI with GitHub Actions"), "{pr}");
    assert!(pr.contains(pr_body::BEGIN));
    let ci = std::fs::read_to_string(dir.join("files/.github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("cargo"));
    // Every request the dry run made was a read.
    let writes: Vec<String> = h
        .fake
        .world()
        .requests()
        .into_iter()
        .filter(|r| {
            !r.starts_with("GET ") && !r.contains("/access_tokens") && !r.contains("/graphql")
        })
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    h.fake.stop();
}

/// Uninstalling stops the bot: queued work for the installation is dropped.
#[actix_web::test]
async fn uninstall_drops_queued_work() {
    if !have_fixtures() {
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Github, 1).await;
    for i in 0..3 {
        h.add_repo(300 + i, &format!("r{i}"), &[("Cargo.toml", CARGO)]);
    }
    h.install().await;
    h.drain().await;
    let waiting = |jobs: &[JobRow]| {
        jobs.iter()
            .filter(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
            .count()
    };
    assert_eq!(
        waiting(&all_jobs(&h.t.db).await),
        2,
        "two wait for the budget"
    );
    let Some(mut p) = fixture("github/installation.deleted.json") else {
        return;
    };
    set(&mut p, "/installation/id", json!(957387));
    assert_eq!(h.deliver("installation", &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    assert_eq!(waiting(&all_jobs(&h.t.db).await), 0);
    let inst = installations::get_installation(&h.t.db, Forge::Github, GITHUB_INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, "deleted");
    h.fake.stop();
}
