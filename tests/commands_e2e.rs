//! Slash commands end to end, for each forge: a real comment payload (GitHub
//! `issue_comment`, GitLab Note Hook, Bitbucket `pullrequest:comment_created`), signed and
//! delivered over HTTP, runs through the queue against the fake forge: every command,
//! authorisation (read-only user, outsider, bot), acknowledgement, and a redelivered
//! comment executed once.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use actix_web::http::StatusCode;
use harness::*;
use pipewright::db::{installations, pull_requests};
use pipewright::forge::Forge;
use serde_json::json;
use testdb::TestDb;

const MAINTAINER: &str = "maria";
const READER: &str = "rob";
const OUTSIDER: &str = "olga";

struct Repo {
    id: u64,
    name: &'static str,
    pr: u64,
}

impl Harness {
    /// A person writes `body` on the thread; the forge delivers it. Returns the comment id.
    async fn say(&self, r: &Repo, number: u64, on_pr: bool, body: &str, author: &str) -> String {
        let id = self
            .fake
            .world()
            .add_comment(&self.full(r.name), number, body, author);
        let bot = author == self.fake.world().bot_login;
        let (event, p) =
            comment_payload(self, r.id, r.name, number, on_pr, &id, body, author, bot).unwrap();
        assert_eq!(self.deliver(event, &p).await, StatusCode::ACCEPTED);
        self.drain().await;
        id
    }

    /// The bot's comments on a thread, oldest first.
    fn replies(&self, r: &Repo, number: u64) -> Vec<String> {
        let bot = self.fake.world().bot_login.clone();
        self.fake
            .world()
            .comments(&self.full(r.name), number)
            .into_iter()
            .filter(|c| c.author == bot)
            .map(|c| c.body)
            .collect()
    }

    fn ci(&self, r: &Repo) -> String {
        let path = match self.forge {
            Forge::Github => ".github/workflows/ci.yml",
            Forge::Gitlab => ".gitlab-ci.yml",
            Forge::Bitbucket => "bitbucket-pipelines.yml",
        };
        self.fake
            .world()
            .file(&self.full(r.name), BRANCH, path)
            .unwrap_or_default()
    }
}

async fn commands_flow(forge: Forge) {
    let h = Harness::new(TestDb::sqlite().await, forge, 10).await;
    let id = if forge == Forge::Github {
        186853002
    } else {
        101
    };
    h.add_repo(
        id,
        "Hello-World",
        &[("Cargo.toml", CARGO), ("Cargo.lock", "# lock\n")],
    );
    {
        let full = h.full("Hello-World");
        let mut w = h.fake.world();
        let (admin, write, read) = match forge {
            Forge::Github => ("admin", "write", "read"),
            Forge::Gitlab => ("40", "30", "20"),
            Forge::Bitbucket => ("admin", "write", "read"),
        };
        w.set_permission(&full, MAINTAINER, write);
        w.set_permission(&full, READER, read);
        w.set_permission(&full, "owner", admin);
    }
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "Hello-World").number;
    let r = Repo {
        id,
        name: "Hello-World",
        pr,
    };
    let replies = |h: &Harness| h.replies(&r, r.pr);
    // On Bitbucket an acknowledgement is a short reply; elsewhere a reaction.
    let per_command = if forge == Forge::Bitbucket { 2 } else { 1 };

    // help: one reply, reactions on GitHub and GitLab.
    let c = h
        .say(&r, pr, true, "thanks!\n/pipewright help", MAINTAINER)
        .await;
    let got = replies(&h);
    assert!(
        !got.is_empty() && got.len() <= per_command,
        "{forge}: {got:?}"
    );
    let help = got.last().unwrap();
    assert!(
        help.contains("regenerate") && help.contains("ignore"),
        "{forge}: {help}"
    );
    let (say, never) = forge_words(forge);
    assert!(
        help.contains(say) && !help.contains(never),
        "{forge}: help in the forge's words: {help}"
    );
    if forge != Forge::Bitbucket {
        let reactions = h.fake.world().reactions(&h.full(r.name), &c);
        assert!(
            !reactions.is_empty(),
            "{forge}: acknowledged with a reaction"
        );
    }

    // The same comment delivered again (a redelivery with a new id, or a retry) runs once.
    let n = replies(&h).len();
    let (event, p) = comment_payload(
        &h,
        r.id,
        r.name,
        pr,
        true,
        &c,
        "thanks!\n/pipewright help",
        MAINTAINER,
        false,
    )
    .unwrap();
    assert_eq!(h.deliver(event, &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    assert_eq!(replies(&h).len(), n, "{forge}: executed once");

    // add security: stored, and the PR is regenerated with it.
    let before = h.ci(&r);
    h.say(&r, pr, true, "/pipewright add security", MAINTAINER)
        .await;
    let after = h.ci(&r);
    assert_ne!(before, after, "{forge}: PR regenerated");
    assert!(
        after.contains("cargo audit") || after.contains("cargo-audit"),
        "{forge}: {after}"
    );
    assert!(replies(&h).last().unwrap().contains("security"));
    let row = installations::get_repo(&h.t.db, forge, &harness_repo_id(&h, id))
        .await
        .unwrap()
        .unwrap();
    let st = pull_requests::repo_state(&h.t.db, row.id).await.unwrap();
    assert!(st.settings.unwrap_or_default().contains("security"));

    // remove lint: clippy goes away.
    h.say(&r, pr, true, "/pipewright remove lint", MAINTAINER)
        .await;
    assert!(
        !h.ci(&r).contains("cargo clippy"),
        "{forge}: lint removed: {:?}\n{}",
        replies(&h).last(),
        h.ci(&r)
    );

    // explain, config, regenerate, a typo: every answer is specific.
    h.say(&r, pr, true, "/pipewright explain", MAINTAINER).await;
    assert!(
        replies(&h).last().unwrap().contains("Cargo.toml"),
        "{forge}: explain"
    );
    h.say(&r, pr, true, "/pipewright config", MAINTAINER).await;
    let cfg = replies(&h).last().unwrap().clone();
    assert!(
        cfg.contains("security") && cfg.contains("lint"),
        "{forge}: {cfg}"
    );
    h.say(&r, pr, true, "/pipewright regenerate", MAINTAINER)
        .await;
    assert!(
        replies(&h)
            .last()
            .unwrap()
            .to_lowercase()
            .contains("unchanged"),
        "{forge}"
    );
    h.say(&r, pr, true, "/pipewright regenrate", MAINTAINER)
        .await;
    assert!(
        replies(&h).last().unwrap().contains("regenerate"),
        "{forge}: suggestion"
    );
    h.say(&r, pr, true, "/pipewright add deploy fly", MAINTAINER)
        .await;
    assert!(
        replies(&h)
            .last()
            .unwrap()
            .to_lowercase()
            .contains("deploy"),
        "{forge}"
    );

    // analyze works on any thread (here the PR; on GitHub also an issue).
    h.say(&r, pr, true, "/pipewright analyze", MAINTAINER).await;
    assert!(
        replies(&h).last().unwrap().contains("rust"),
        "{forge}: analyze"
    );
    if forge == Forge::Github {
        let issue = h.fake.world().add_issue(&h.full(r.name), "question");
        h.say(&r, issue, false, "@pipewright analyze", MAINTAINER)
            .await;
        assert!(h.replies(&r, issue).last().unwrap().contains("rust"));
        // Commands that need the bot's PR say so on an issue.
        h.say(&r, issue, false, "/pipewright regenerate", MAINTAINER)
            .await;
        assert!(h
            .replies(&r, issue)
            .last()
            .unwrap()
            .contains("pull request"));
    }

    // A read-only user and an outsider get one polite answer each, and nothing happens.
    let tip = h.fake.world().branch_head(&h.full(r.name), BRANCH);
    for who in [READER, OUTSIDER] {
        let n = replies(&h).len();
        h.say(&r, pr, true, "/pipewright ignore", who).await;
        let got = replies(&h);
        assert_eq!(got.len(), n + 1, "{forge}: one answer to {who}");
        assert!(
            got.last().unwrap().contains("write access"),
            "{forge}: {}",
            got.last().unwrap()
        );
    }
    assert_eq!(h.fake.world().branch_head(&h.full(r.name), BRANCH), tip);
    assert_eq!(h.prs(r.name)[0].state, fake_forge::PrState::Open);

    // A bot's comment (pipewright's own included) is never answered.
    let n = replies(&h).len();
    let bot = h.fake.world().bot_login.clone();
    h.say(&r, pr, true, "/pipewright help", &bot).await;
    // Only the bot-authored comment the test injected itself is new.
    assert_eq!(
        replies(&h).len(),
        n + 1,
        "{forge}: bots are ignored: {:?}",
        &replies(&h)[n..]
    );

    // ignore closes the PR and is remembered; unignore answers.
    h.say(&r, pr, true, "/pipewright ignore", MAINTAINER).await;
    assert_ne!(
        h.prs(r.name)[0].state,
        fake_forge::PrState::Open,
        "{forge}: closed"
    );
    let st = pull_requests::repo_state(&h.t.db, row.id).await.unwrap();
    assert!(st.ignored);
    h.push_main(
        id,
        r.name,
        &[(
            "Cargo.toml",
            Some("[package]\nname = \"app2\"\nversion = \"0.1.0\"\n"),
        )],
    )
    .await;
    h.drain().await;
    assert_eq!(h.prs(r.name).len(), 1, "{forge}: ignored means no new PR");
    h.say(&r, pr, true, "/pipewright unignore", MAINTAINER)
        .await;
    let st = pull_requests::repo_state(&h.t.db, row.id).await.unwrap();
    assert!(!st.ignored);
    // The PR was closed by `ignore`, not refused by a person: a fresh one is proposed.
    let open: Vec<_> = h
        .prs(r.name)
        .into_iter()
        .filter(|p| p.state == fake_forge::PrState::Open)
        .collect();
    assert_eq!(open.len(), 1, "{forge}: unignore proposes again");
    let dead: Vec<_> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.state == pipewright::queue::store::JobState::Dead)
        .collect();
    assert!(dead.is_empty(), "{forge}: {dead:?}");
    h.fake.stop();
}

fn harness_repo_id(h: &Harness, id: u64) -> String {
    match h.forge {
        Forge::Bitbucket => bb_uuid(id),
        _ => id.to_string(),
    }
}

#[actix_web::test]
async fn github_commands() {
    if have_fixtures() {
        commands_flow(Forge::Github).await;
    }
}

#[actix_web::test]
async fn gitlab_commands() {
    if have_fixtures() {
        commands_flow(Forge::Gitlab).await;
    }
}

#[actix_web::test]
async fn bitbucket_commands() {
    if have_fixtures() {
        commands_flow(Forge::Bitbucket).await;
    }
}

/// Everything written to the logs while the deploy tests run (trace level), so they can
/// be searched for secret values.
static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
    std::sync::OnceLock::new();

#[derive(Clone)]
struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = LogSink(buf.clone());
        // pipewright's own events at every level (trace carries payloads); dependencies
        // at info, so the HTTP and SQL stacks' trace firehose does not slow the run.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("pipewright=trace,info"))
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .try_init();
        buf
    })
    .clone()
}

const FLY_TOKEN: &str = "FlyV1 fm2_e2e-secret-token-value-0123456789";

/// `add deploy fly` on pipewright's pull request: the PR gains `fly.toml` and a
/// Dockerfile and a delivery section naming the secret, the forge gets the secret (as
/// each forge keeps secrets), the audit log has the entry, and no log line holds the
/// value. The CI file on the branch gains the deploy jobs: staging after the checks,
/// production from version tags behind an approval.
async fn add_deploy_fly(forge: Forge) {
    let logs = capture_logs();
    let mut h = Harness::new(TestDb::sqlite().await, forge, 10).await;
    let (keyring, _) = pipewright::crypto::Keyring::generate("e2e");
    h.ctx.credentials_key = Some(keyring.clone());
    let id = if forge == Forge::Github {
        186853002
    } else {
        101
    };
    h.add_repo(
        id,
        "Hello-World",
        &[
            (
                "pyproject.toml",
                "[project]\nname = \"inventory\"\nversion = \"0.2.0\"\nrequires-python = \">=3.11\"\n\
                 dependencies = [\"fastapi>=0.110\", \"uvicorn[standard]\"]\n\n\
                 [dependency-groups]\ndev = [\"pytest>=8\"]\n",
            ),
            ("uv.lock", "version = 1\n"),
            ("main.py", "from fastapi import FastAPI\n\napp = FastAPI()\n"),
            ("tests/test_main.py", "def test_ok():\n    assert True\n"),
        ],
    );
    {
        let full = h.full("Hello-World");
        let write = match forge {
            Forge::Gitlab => "30",
            _ => "write",
        };
        h.fake.world().set_permission(&full, MAINTAINER, write);
    }
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "Hello-World").number;
    let r = Repo {
        id,
        name: "Hello-World",
        pr,
    };
    // An operator stores the installation's Fly token through the CLI's code path.
    pipewright::credentials::set(
        &h.t.db,
        Some(&keyring),
        &pipewright::credentials::Scope {
            forge,
            installation: h.tenant().to_owned(),
            repo: None,
        },
        pipewright::deploy::DeployTarget::Fly,
        None,
        &pipewright::config::Secret::new(FLY_TOKEN),
        &pipewright::db::audit::Actor::cli("ops"),
        h.clock.now(),
    )
    .await
    .unwrap();

    if forge == Forge::Github {
        // An App installed without `secrets: write`: GitHub answers 403, the reply says
        // what is missing, nothing is written and the job does not retry.
        h.fake.world().fail_next(
            "GET",
            "/actions/secrets/public-key",
            403,
            vec![],
            r#"{"message":"Resource not accessible by integration","status":"403"}"#,
        );
        h.say(&r, pr, true, "/pipewright add deploy fly", MAINTAINER)
            .await;
        let reply = h.replies(&r, pr).last().cloned().unwrap();
        assert!(
            reply.contains("refused to store the secrets (HTTP 403)"),
            "{reply}"
        );
        assert!(h
            .fake
            .world()
            .repo(&h.full("Hello-World"))
            .unwrap()
            .ci_vars
            .is_empty());
    }
    h.say(
        &r,
        pr,
        true,
        "/pipewright add deploy fly --strategy rolling",
        MAINTAINER,
    )
    .await;
    let reply = h.replies(&r, pr).last().cloned().unwrap();
    assert!(
        reply.contains("Added deploys to Fly.io"),
        "{forge}: {reply}"
    );
    assert!(reply.contains("`FLY_API_TOKEN`"), "{forge}: {reply}");
    assert!(
        !reply.contains("fm2_e2e"),
        "{forge}: the reply shows the secret"
    );

    // The PR gained the deploy files and says which secret it reads.
    let full = h.full("Hello-World");
    let fly = h
        .fake
        .world()
        .file(&full, BRANCH, "fly.toml")
        .expect("fly.toml on the branch");
    assert!(
        fly.contains("app = \"hello-world\"") && fly.contains("internal_port = 8000"),
        "{fly}"
    );
    let docker = h
        .fake
        .world()
        .file(&full, BRANCH, "Dockerfile")
        .expect("a Dockerfile");
    assert!(
        docker.contains("uv sync --frozen") && docker.contains("USER 10001"),
        "{docker}"
    );
    // The deploy jobs, as each forge runs them.
    let (path, staging, production) = match forge {
        Forge::Github => (
            ".github/workflows/ci.yml",
            "deploy-fly-staging:",
            "deploy-fly-production:",
        ),
        Forge::Gitlab => (
            ".gitlab-ci.yml",
            "deploy-fly-staging:",
            "deploy-fly-production:",
        ),
        Forge::Bitbucket => (
            "bitbucket-pipelines.yml",
            "deployment: staging",
            "deployment: production",
        ),
    };
    let ci = h
        .fake
        .world()
        .file(&full, BRANCH, path)
        .unwrap_or_else(|| panic!("{forge}: no {path} on the branch"));
    assert!(ci.contains(staging), "{forge}: no staging deploy\n{ci}");
    assert!(
        ci.contains("flyctl deploy --remote-only"),
        "{forge}: no flyctl\n{ci}"
    );
    if forge == Forge::Github {
        // Production: its own workflow, on version tags, in the `production` environment.
        let prod = h
            .fake
            .world()
            .file(&full, BRANCH, ".github/workflows/deploy.yml")
            .expect("the production deploy workflow");
        assert!(
            prod.contains(production) && prod.contains("name: production"),
            "{prod}"
        );
        assert!(
            ci.contains("FLY_API_TOKEN: ${{ secrets.FLY_API_TOKEN }}"),
            "{ci}"
        );
    } else {
        assert!(
            ci.contains(production),
            "{forge}: no production deploy\n{ci}"
        );
    }
    assert!(
        !ci.contains("fm2_e2e"),
        "{forge}: the CI file holds the secret"
    );
    let body = h.prs("Hello-World").last().unwrap().body.clone();
    assert!(
        body.contains("### Continuous delivery") && body.contains("`FLY_API_TOKEN`"),
        "{body}"
    );
    assert!(body.contains("stored; written to the forge"), "{body}");
    assert!(
        !body.contains("fm2_e2e"),
        "{forge}: the PR body shows the secret"
    );

    // The forge holds the secret as it keeps secrets.
    {
        let w = h.fake.world();
        let vars = &w.repo(&full).unwrap().ci_vars;
        let held: Vec<_> = vars
            .iter()
            .filter(|((_, k), v)| k == "FLY_API_TOKEN" && v.value == FLY_TOKEN)
            .collect();
        let expected = if forge == Forge::Bitbucket { 2 } else { 1 };
        assert_eq!(held.len(), expected, "{forge}: {vars:?}");
        if forge == Forge::Gitlab {
            assert!(held[0].1.protected);
        }
    }

    // The audit trail names who did it, and no value.
    let trail = pipewright::db::audit::list(
        &h.t.db,
        &pipewright::db::audit::AuditFilter {
            action_prefix: Some("deploy.".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(trail.len(), 1, "{forge}: {trail:?}");
    assert_eq!(
        trail[0].actor,
        pipewright::db::audit::Actor::forge(MAINTAINER)
    );
    assert_eq!(trail[0].target.as_deref(), Some("fly"));
    assert_eq!(trail[0].repository_name.as_deref(), Some(full.as_str()));
    assert_eq!(trail[0].details["names"], json!(["FLY_API_TOKEN"]));

    // remove deploy drops the files again.
    h.say(&r, pr, true, "/pipewright remove deploy fly", MAINTAINER)
        .await;
    assert!(
        h.fake.world().file(&full, BRANCH, "fly.toml").is_none(),
        "{forge}"
    );

    // Nothing the tests logged holds the secret.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!text.is_empty(), "no logs were captured");
    assert!(
        !text.contains("fm2_e2e"),
        "{forge}: a log line holds the secret"
    );
    h.fake.stop();
}

#[actix_web::test]
async fn github_add_deploy_fly() {
    if have_fixtures() {
        add_deploy_fly(Forge::Github).await;
    }
}

#[actix_web::test]
async fn gitlab_add_deploy_fly() {
    if have_fixtures() {
        add_deploy_fly(Forge::Gitlab).await;
    }
}

#[actix_web::test]
async fn bitbucket_add_deploy_fly() {
    if have_fixtures() {
        add_deploy_fly(Forge::Bitbucket).await;
    }
}
