//! The bot end to end harness shared by `bot_e2e.rs` and `commands_e2e.rs`: a fake forge,
//! a real database, the real HTTP intake (signed deliveries), the real worker pool and a
//! manual clock. Include with `#[path = "support/harness.rs"] mod harness;` after the
//! `fake_forge`, `shared` and `testdb` modules.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
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
use tokio::sync::Notify;

use crate::fake_forge::{self, FakeForge, RepoSpec};
use crate::shared;
use crate::testdb::{self, TestDb};

pub const SECRET: &str = "e2e-webhook-secret";
pub const GITHUB_INSTALLATION: &str = "957387";
pub const GROUP: &str = "acme";
pub const WORKSPACE_UUID: &str = "{9d7c8b5e-0000-4000-8000-00000000acme}";
pub const BRANCH: &str = "pipewright/ci";

pub const CARGO: &str = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
pub const PACKAGE_JSON: &str =
    "{\"name\":\"web\",\"scripts\":{\"test\":\"vitest run\"},\"devDependencies\":{\"vitest\":\"^1\"}}\n";
pub const PYPROJECT: &str =
    "[project]\nname = \"svc\"\nversion = \"0.1.0\"\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n";
pub const WORKFLOW: &str =
    "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: go test ./...\n";

pub struct Harness {
    pub t: TestDb,
    pub fake: FakeForge,
    pub forge: Forge,
    pub clock: Clock,
    pub state: web::Data<AppState>,
    pub ctx: JobsContext,
    pub deliveries: AtomicU64,
}

pub fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn fixture(path: &str) -> Option<Value> {
    let dir = shared::shared_dir()?;
    let text = std::fs::read_to_string(dir.join("fixtures/webhooks").join(path)).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// Sets a field of a fixture (the parent must exist; the field itself may be new).
pub fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let obj = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("fixture has no object at {parent}"));
    obj.insert(key.to_owned(), value);
}

/// Bitbucket repository uuids of the fake (documented in fake_forge/bitbucket.rs).
pub fn bb_uuid(id: u64) -> String {
    format!("{{00000000-0000-4000-8000-{id:012x}}}")
}

impl Harness {
    pub async fn new(t: TestDb, forge: Forge, prs_per_hour: u32) -> Harness {
        let fake = match forge {
            Forge::Github => FakeForge::github().await,
            Forge::Gitlab => FakeForge::gitlab().await,
            Forge::Bitbucket => FakeForge::bitbucket().await,
        };
        if forge == Forge::Github {
            fake.world()
                .set_workflows_permission(GITHUB_INSTALLATION, true);
        }
        if forge == Forge::Gitlab {
            // A group access token acts as a bot user named like this.
            fake.world().bot_login = "group_9_bot_7f3a".into();
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
            github_app: Arc::new(pipewright::console::setup::GithubAppSlot::from_config(
                &config,
            )),
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

    pub fn tenant(&self) -> &'static str {
        match self.forge {
            Forge::Github => GITHUB_INSTALLATION,
            Forge::Gitlab | Forge::Bitbucket => GROUP,
        }
    }

    pub fn owner(&self) -> &'static str {
        match self.forge {
            Forge::Github => "Codertocat",
            Forge::Gitlab | Forge::Bitbucket => GROUP,
        }
    }

    pub fn full(&self, name: &str) -> String {
        format!("{}/{name}", self.owner())
    }

    pub fn add_repo(&self, id: u64, name: &str, files: &[(&str, &str)]) -> String {
        let mut spec = RepoSpec::new(id, &self.full(name), self.tenant());
        for (p, c) in files {
            spec = spec.file(p, c);
        }
        self.fake.world().add_repo(spec)
    }

    /// Signs and posts one delivery through the real HTTP intake.
    pub async fn deliver(&self, event: &str, body: &Value) -> StatusCode {
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
    pub async fn drain(&self) {
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
    pub async fn install(&self) {
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
    pub async fn push_main(&self, id: u64, name: &str, files: &[(&str, Option<&str>)]) -> String {
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
    pub fn push_payload(
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
    pub async fn close_pr(&self, id: u64, name: &str, number: u64) {
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

    pub fn prs(&self, name: &str) -> Vec<fake_forge::Pr> {
        self.fake.world().prs(&self.full(name))
    }

    pub fn all_prs(&self, names: &[&str]) -> usize {
        names.iter().map(|n| self.prs(n).len()).sum()
    }
}

/// The comment payload a forge sends for `body` by `author` on PR (or issue) `number`.
#[allow(clippy::too_many_arguments)]
pub fn comment_payload(
    h: &Harness,
    repo_id: u64,
    name: &str,
    number: u64,
    on_pr: bool,
    comment_id: &str,
    body: &str,
    author: &str,
    bot: bool,
) -> Option<(&'static str, Value)> {
    let full = h.full(name);
    Some(match h.forge {
        Forge::Github => {
            let mut p = fixture("github/issue_comment.created.on-pull-request.app.json")?;
            set(&mut p, "/installation/id", json!(957387));
            set(&mut p, "/repository/id", json!(repo_id));
            set(&mut p, "/repository/full_name", json!(full));
            set(&mut p, "/repository/name", json!(name));
            set(&mut p, "/issue/number", json!(number));
            if !on_pr {
                p["issue"].as_object_mut().unwrap().remove("pull_request");
            }
            set(
                &mut p,
                "/comment/id",
                json!(comment_id.parse::<u64>().unwrap()),
            );
            set(&mut p, "/comment/body", json!(body));
            let kind = if bot { "Bot" } else { "User" };
            set(&mut p, "/comment/user/login", json!(author));
            set(&mut p, "/comment/user/type", json!(kind));
            set(&mut p, "/sender/login", json!(author));
            set(&mut p, "/sender/type", json!(kind));
            ("issue_comment", p)
        }
        Forge::Gitlab => {
            let mut p = fixture("gitlab/note.merge_request.json")?;
            set(&mut p, "/project_id", json!(repo_id));
            set(&mut p, "/project/id", json!(repo_id));
            set(&mut p, "/project/path_with_namespace", json!(full));
            set(&mut p, "/merge_request/iid", json!(number));
            set(
                &mut p,
                "/object_attributes/id",
                json!(comment_id.parse::<u64>().unwrap()),
            );
            set(&mut p, "/object_attributes/note", json!(body));
            set(&mut p, "/user/username", json!(author));
            ("Note Hook", p)
        }
        Forge::Bitbucket => {
            let mut p = fixture("bitbucket/pullrequest_comment_created.json")?;
            set(&mut p, "/repository/uuid", json!(bb_uuid(repo_id)));
            set(&mut p, "/repository/full_name", json!(full));
            p["repository"]["workspace"] =
                json!({"type": "workspace", "slug": GROUP, "name": GROUP, "uuid": WORKSPACE_UUID});
            set(&mut p, "/pullrequest/id", json!(number));
            set(
                &mut p,
                "/comment/id",
                json!(comment_id.parse::<u64>().unwrap()),
            );
            set(&mut p, "/comment/content/raw", json!(body));
            set(&mut p, "/actor/nickname", json!(author));
            // Bitbucket keys permissions on the account's uuid, never the nickname.
            set(
                &mut p,
                "/actor/uuid",
                json!(fake_forge::bitbucket_uuid(author)),
            );
            set(
                &mut p,
                "/actor/account_id",
                json!(fake_forge::bitbucket_account_id(author)),
            );
            set(
                &mut p,
                "/actor/type",
                json!(if bot { "app_user" } else { "user" }),
            );
            ("pullrequest:comment_created", p)
        }
    })
}

pub async fn all_jobs(db: &pipewright::Db) -> Vec<JobRow> {
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

pub fn have_fixtures() -> bool {
    if shared::shared_dir().is_some() {
        return true;
    }
    eprintln!("skipping: ../shared/fixtures is absent");
    false
}

/// The PR's state block names the branch tip the bot wrote.
pub fn assert_bot_pr(h: &Harness, name: &str) -> fake_forge::Pr {
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
    let (say, never) = forge_words(h.forge);
    assert!(
        pr.body.contains(say) && !pr.body.contains(never),
        "{}: the body speaks of {say}s:\n{}",
        h.forge,
        pr.body
    );
    pr
}

/// What a forge calls pipewright's change request, and what it must never be called
/// there.
pub fn forge_words(forge: Forge) -> (&'static str, &'static str) {
    match forge {
        Forge::Gitlab => ("merge request", "pull request"),
        Forge::Github | Forge::Bitbucket => ("pull request", "merge request"),
    }
}
