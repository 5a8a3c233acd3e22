//! Regression tests for the forge mismatches of issue 10, each against a fake held to the
//! forge's published behaviour (the Bitbucket scope checks live in `tests/connect.rs`):
//! - Bitbucket commits: every file part carries a `filename`, so files at paths named like
//!   the metadata fields (`message`, `branch`, `parents`, `author`, `files`) stay files;
//! - Bitbucket commenter permissions: keyed by the account's uuid, never the nickname;
//! - GitLab tree listing: `ref` and `recursive` in the query string (the fakes refuse a
//!   GET with a body);
//! - "has CI" counts only CI that runs on the repository's forge;
//! - every text says "merge request" / `!N` on GitLab.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use actix_web::http::StatusCode;
use fake_forge::{FakeForge, Kind, RepoSpec};
use harness::*;
use pipewright::clock::Clock;
use pipewright::config::{BotConfig, Secret};
use pipewright::forge::client::{
    BranchWrite, FileWrite, ForgeClient, Parent, Permission, RepoHandle,
};
use pipewright::forge::event::Actor;
use pipewright::forge::{Forge, Forges};
use testdb::TestDb;

fn client_for(fake: &FakeForge) -> Box<dyn ForgeClient> {
    let mut cfg = BotConfig::default();
    match fake.kind {
        Kind::Bitbucket => {
            cfg.bitbucket_api_url = fake.url.clone();
            cfg.bitbucket_token = Some(Secret::new(fake.token()));
            cfg.bitbucket_workspaces = vec!["acme".into()];
        }
        Kind::Gitlab => {
            cfg.gitlab_url = fake.url.clone();
            cfg.gitlab_token = Some(Secret::new(fake.token()));
            cfg.gitlab_groups = vec!["acme".into()];
        }
        Kind::Github => unreachable!("not needed here"),
    }
    let forges = Forges::from_config(&cfg, Clock::System).unwrap();
    match fake.kind {
        Kind::Bitbucket => forges
            .client(Forge::Bitbucket, "{acme}", Some("acme"))
            .unwrap(),
        _ => forges.client(Forge::Gitlab, "acme", None).unwrap(),
    }
}

fn handle(id: &str, full_name: &str) -> RepoHandle {
    RepoHandle {
        id: id.into(),
        full_name: full_name.into(),
    }
}

#[actix_web::test]
async fn bitbucket_commits_files_named_like_metadata_fields() {
    let fake = FakeForge::bitbucket().await;
    let base = fake
        .world()
        .add_repo(RepoSpec::new(1, "acme/app", "acme").file("Cargo.toml", "[package]\n"));
    let c = client_for(&fake);
    let paths = [
        "message",
        "branch",
        "parents",
        "author",
        "files",
        "ci/message",
    ];
    let files: Vec<FileWrite> = paths
        .iter()
        .map(|p| FileWrite {
            path: (*p).to_owned(),
            content: Some(format!("content of {p}\n")),
            exists: false,
        })
        .collect();
    let sha = c
        .write_branch(
            &handle("{1}", "acme/app"),
            &BranchWrite {
                branch: "pipewright/ci".into(),
                parent: Parent::Fresh { base: base.clone() },
                files,
                message: "Add CI with Bitbucket Pipelines".into(),
            },
        )
        .await
        .unwrap();
    let w = fake.world();
    assert_eq!(
        w.branch_head("acme/app", "pipewright/ci").as_deref(),
        Some(sha.as_str()),
        "the branch is the one named in the metadata, not a file's content"
    );
    let commit = &w.commits("acme/app", "pipewright/ci")[0];
    assert_eq!(commit.message, "Add CI with Bitbucket Pipelines");
    assert_eq!(commit.parents, [base]);
    for p in paths {
        assert_eq!(
            w.file("acme/app", "pipewright/ci", p).as_deref(),
            Some(format!("content of {p}\n").as_str()),
            "{p} is a file"
        );
    }
    assert!(w.file("acme/app", "pipewright/ci", "Cargo.toml").is_some());
    assert!(w.quirks.is_empty(), "{:?}", w.quirks);
    drop(w);
    fake.stop();
}

/// The fake tells a file part from a metadata field by its `filename`, as Bitbucket
/// does: the same part without one is the commit message.
#[actix_web::test]
async fn the_fake_reads_a_part_without_filename_as_metadata() {
    let fake = FakeForge::bitbucket().await;
    let base = fake.world().add_repo(RepoSpec::new(1, "acme/app", "acme"));
    let http = reqwest::Client::new();
    let url = format!("{}/repositories/acme/app/src", fake.url);
    for (with_filename, branch) in [(false, "a"), (true, "b")] {
        let part = reqwest::multipart::Part::text("from the part");
        let part = if with_filename {
            part.file_name("message")
        } else {
            part
        };
        let form = reqwest::multipart::Form::new()
            .text("branch", branch)
            .text("parents", base.clone())
            .part("message", part);
        let resp = http
            .post(&url)
            .bearer_auth(fake_forge::BITBUCKET_TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let w = fake.world();
        let commit = &w.commits("acme/app", branch)[0];
        if with_filename {
            assert_eq!(
                w.file("acme/app", branch, "message").as_deref(),
                Some("from the part")
            );
            assert_ne!(commit.message, "from the part");
        } else {
            assert_eq!(commit.message, "from the part");
            assert!(w.file("acme/app", branch, "message").is_none());
        }
    }
    fake.stop();
}

#[actix_web::test]
async fn bitbucket_permissions_are_keyed_by_the_account_not_the_nickname() {
    let fake = FakeForge::bitbucket().await;
    fake.world().add_repo(RepoSpec::new(1, "acme/app", "acme"));
    fake.world().set_permission("acme/app", "alice", "admin");
    fake.world().set_permission("acme/app", "bob", "read");
    let c = client_for(&fake);
    let repo = handle("{1}", "acme/app");
    let who = |login: &str, id: Option<String>| Actor {
        login: login.into(),
        id,
        is_bot: false,
    };
    let cases = [
        // Someone whose nickname is alice's, but who is bob: bob's permission.
        (
            who("alice", Some(fake_forge::bitbucket_uuid("bob"))),
            Permission::Read,
        ),
        // Alice under another nickname: still alice.
        (
            who("alice-renamed", Some(fake_forge::bitbucket_uuid("alice"))),
            Permission::Admin,
        ),
        // The Atlassian account id works too.
        (
            who("x", Some(fake_forge::bitbucket_account_id("alice"))),
            Permission::Admin,
        ),
        // No stable id: nothing is granted on a nickname alone.
        (who("alice", None), Permission::None),
        (
            who("carol", Some(fake_forge::bitbucket_uuid("carol"))),
            Permission::None,
        ),
    ];
    for (actor, want) in cases {
        assert_eq!(
            c.permission(&repo, &actor).await.unwrap(),
            want,
            "{actor:?}"
        );
    }
    let queries: Vec<String> = fake
        .world()
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains("/permissions/"))
        .map(|r| r.query)
        .collect();
    assert!(!queries.is_empty());
    assert!(
        queries.iter().all(|q| !q.contains("nickname")),
        "{queries:?}"
    );
    fake.stop();
}

/// End to end: a comment by someone who took a maintainer's nickname is refused.
#[actix_web::test]
async fn bitbucket_commands_from_a_borrowed_nickname_are_refused() {
    if shared::shared_dir().is_none() {
        eprintln!("skipped: ../shared/fixtures is absent");
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Bitbucket, 10).await;
    h.add_repo(101, "app", &[("Cargo.toml", CARGO)]);
    h.fake
        .world()
        .set_permission(&h.full("app"), "maria", "write");
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "app").number;
    let before = h.fake.world().branch_head(&h.full("app"), BRANCH);
    let id = h
        .fake
        .world()
        .add_comment(&h.full("app"), pr, "/pipewright ignore", "mallory");
    let (event, mut p) = comment_payload(
        &h,
        101,
        "app",
        pr,
        true,
        &id,
        "/pipewright ignore",
        "mallory",
        false,
    )
    .unwrap();
    // Mallory's account, maria's nickname.
    set(&mut p, "/actor/nickname", serde_json::json!("maria"));
    assert_eq!(h.deliver(event, &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    let bot = h.fake.world().bot_login.clone();
    let replies: Vec<String> = h
        .fake
        .world()
        .comments(&h.full("app"), pr)
        .into_iter()
        .filter(|c| c.author == bot)
        .map(|c| c.body)
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains("write access"), "{}", replies[0]);
    assert_eq!(h.prs("app")[0].state, fake_forge::PrState::Open);
    assert_eq!(h.fake.world().branch_head(&h.full("app"), BRANCH), before);
    h.fake.stop();
}

#[actix_web::test]
async fn gitlab_tree_listing_sends_its_parameters_in_the_query() {
    let fake = FakeForge::gitlab().await;
    fake.world()
        .add_repo(RepoSpec::new(7, "acme/app", "acme").file("src/lib.rs", "\n"));
    // A commit on another branch: the listing must be of that commit, recursively.
    let sha = fake.world().push(
        "acme/app",
        "feature",
        &[("deep/a/b/only-here.txt", Some("x\n"))],
        "alice",
    );
    let c = client_for(&fake);
    let tree = c.tree(&handle("7", "acme/app"), &sha).await.unwrap();
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"deep/a/b/only-here.txt"), "{paths:?}");
    assert!(paths.contains(&"src/lib.rs"), "{paths:?}");
    let listing = fake
        .world()
        .request_log()
        .into_iter()
        .find(|r| r.path.ends_with("/repository/tree"))
        .expect("a tree listing");
    assert!(
        listing.query.contains(&format!("ref={sha}")) && listing.query.contains("recursive=true"),
        "{listing:?}"
    );
    fake.stop();
}

/// A GET with a body (what the `gitlab` crate's `Tree` endpoint sends) is refused by
/// every fake, so no client can come to depend on one.
#[actix_web::test]
async fn the_fakes_refuse_a_get_with_a_body() {
    for kind in [Kind::Github, Kind::Gitlab, Kind::Bitbucket] {
        let fake = FakeForge::start(kind);
        fake.world().add_repo(RepoSpec::new(7, "acme/app", "acme"));
        let url = match kind {
            Kind::Gitlab => format!("{}/api/v4/projects/7/repository/tree", fake.url),
            Kind::Bitbucket => format!("{}/repositories/acme/app", fake.url),
            Kind::Github => format!("{}/repos/acme/app", fake.url),
        };
        let resp = reqwest::Client::new()
            .get(&url)
            .header("PRIVATE-TOKEN", fake_forge::GITLAB_TOKEN)
            .bearer_auth(fake_forge::BITBUCKET_TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("ref=main&recursive=true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{kind:?}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("must not carry a body"), "{kind:?}: {body}");
        fake.stop();
    }
}

const GO: (&str, &str) = ("go.mod", "module x\n\ngo 1.22\n");
const GITLAB_CI: (&str, &str) = (".gitlab-ci.yml", "test:\n  script: go test ./...\n");
const PIPELINES: (&str, &str) = (
    "bitbucket-pipelines.yml",
    "pipelines:\n  default:\n    - step:\n        script:\n          - go test ./...\n",
);
const JENKINS: (&str, &str) = (
    "Jenkinsfile",
    "pipeline { stages { stage('test') { steps { sh 'go test ./...' } } } }\n",
);

/// Per forge: a repository whose only CI is another forge's gets a proposal; its own CI
/// or an external service means none.
async fn ci_counts_where_it_runs(forge: Forge) {
    if shared::shared_dir().is_none() && forge == Forge::Github {
        eprintln!("skipped: ../shared/fixtures is absent");
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, forge, 10).await;
    let actions = (".github/workflows/ci.yml", WORKFLOW);
    let (own, foreign) = match forge {
        Forge::Github => (actions, GITLAB_CI),
        Forge::Gitlab => (GITLAB_CI, actions),
        Forge::Bitbucket => (PIPELINES, actions),
    };
    let other = if forge == Forge::Bitbucket {
        GITLAB_CI
    } else {
        PIPELINES
    };
    let base = if forge == Forge::Github { 900 } else { 200 };
    h.add_repo(base + 1, "foreign-ci", &[GO, foreign, other]);
    h.add_repo(base + 2, "own-ci", &[GO, own, foreign]);
    h.add_repo(base + 3, "jenkins", &[GO, JENKINS, foreign]);
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "foreign-ci");
    let note = pr
        .body
        .lines()
        .find(|l| l.contains("found too, but"))
        .unwrap_or_default();
    assert!(
        note.contains(&format!("`{}`", foreign.0)) && note.contains("does not run them"),
        "{forge}: the body says why the file does not count:\n{}",
        pr.body
    );
    assert!(h.prs("own-ci").is_empty(), "{forge}: its own CI counts");
    assert!(
        h.prs("jenkins").is_empty(),
        "{forge}: Jenkins runs anywhere"
    );
    h.fake.stop();
}

#[actix_web::test]
async fn github_ci_counts_where_it_runs() {
    ci_counts_where_it_runs(Forge::Github).await;
}

#[actix_web::test]
async fn gitlab_ci_counts_where_it_runs() {
    ci_counts_where_it_runs(Forge::Gitlab).await;
}

#[actix_web::test]
async fn bitbucket_ci_counts_where_it_runs() {
    ci_counts_where_it_runs(Forge::Bitbucket).await;
}

/// On GitLab the merge request, its body and every reply say "merge request", "MR" or
/// `!N`, never "pull request".
#[actix_web::test]
async fn gitlab_texts_say_merge_request() {
    if shared::shared_dir().is_none() {
        eprintln!("skipped: ../shared/fixtures is absent");
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Gitlab, 10).await;
    h.add_repo(101, "app", &[("Cargo.toml", CARGO)]);
    h.fake.world().set_permission(&h.full("app"), "maria", "40");
    h.install().await;
    h.drain().await;
    let mr = assert_bot_pr(&h, "app");
    assert!(!mr.title.contains("pull request"), "{}", mr.title);
    let number = mr.number;
    let say = |body: &'static str| {
        let h = &h;
        async move {
            let id = h
                .fake
                .world()
                .add_comment(&h.full("app"), number, body, "maria");
            let (event, p) =
                comment_payload(h, 101, "app", number, true, &id, body, "maria", false).unwrap();
            assert_eq!(h.deliver(event, &p).await, StatusCode::ACCEPTED);
            h.drain().await;
        }
    };
    for cmd in [
        "/pipewright help",
        "/pipewright analyze",
        "/pipewright explain",
        "/pipewright config",
        "/pipewright regenerate",
        "/pipewright ignore",
    ] {
        say(cmd).await;
    }
    let bot = h.fake.world().bot_login.clone();
    let replies: Vec<String> = h
        .fake
        .world()
        .comments(&h.full("app"), number)
        .into_iter()
        .filter(|c| c.author == bot)
        .map(|c| c.body)
        .collect();
    assert_eq!(replies.len(), 6, "{replies:?}");
    for r in &replies {
        assert!(
            !r.contains("pull request") && !r.contains(&format!("#{number}")),
            "a GitLab reply says pull request:\n{r}"
        );
    }
    let all = replies.join("\n");
    assert!(all.contains("merge request"), "{all}");
    assert!(
        all.contains(&format!("!{number}")),
        "ignore names the MR: {all}"
    );
    h.fake.stop();
}

/// The scopes `app-manifests/README.md` documents for access tokens (its first table).
fn documented_access_token_scopes() -> Vec<String> {
    let doc = std::fs::read_to_string(format!(
        "{}/app-manifests/README.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let section = "### Access tokens (workspace, project or repository)";
    let body = &doc[doc.find(section).expect("the section exists") + section.len()..];
    let body = &body[..body.find("\n#").unwrap_or(body.len())];
    body.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The bot itself with a workspace access token of exactly the documented scopes: the
/// analysis opens a pull request, and a maintainer's command is obeyed (the permission
/// check is admin-only on Bitbucket). `tests/connect.rs` runs `connect` with them.
#[actix_web::test]
async fn bitbucket_bot_works_with_exactly_the_documented_scopes() {
    if shared::shared_dir().is_none() {
        eprintln!("skipped: ../shared/fixtures is absent");
        return;
    }
    let scopes = documented_access_token_scopes();
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let h = Harness::new(TestDb::sqlite().await, Forge::Bitbucket, 10).await;
    h.fake
        .world()
        .set_bitbucket_credential(fake_forge::BbCredential::Workspace, &refs);
    h.add_repo(101, "app", &[("Cargo.toml", CARGO)]);
    h.fake
        .world()
        .set_permission(&h.full("app"), "maria", "write");
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "app").number;
    let id = h
        .fake
        .world()
        .add_comment(&h.full("app"), pr, "/pipewright explain", "maria");
    let (event, p) = comment_payload(
        &h,
        101,
        "app",
        pr,
        true,
        &id,
        "/pipewright explain",
        "maria",
        false,
    )
    .unwrap();
    assert_eq!(h.deliver(event, &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    let bot = h.fake.world().bot_login.clone();
    let replies: Vec<String> = h
        .fake
        .world()
        .comments(&h.full("app"), pr)
        .into_iter()
        .filter(|c| c.author == bot)
        .map(|c| c.body)
        .collect();
    assert!(
        replies.iter().any(|r| r.contains("Cargo.toml")),
        "explain answered: {replies:?}"
    );
    let dead: Vec<_> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.state == pipewright::queue::store::JobState::Dead)
        .collect();
    assert!(dead.is_empty(), "{dead:?}");
    h.fake.stop();
}

/// With a project or repository access token, `connect` hooks each repository; the
/// reconcile pass hooks repositories created since. With a workspace token it adds
/// nothing (the workspace webhook covers new repositories) and costs one call.
#[actix_web::test]
async fn bitbucket_reconcile_hooks_new_repositories_when_the_token_cannot_own_workspace_hooks() {
    let scopes = documented_access_token_scopes();
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let url = "https://pw.example.com/webhooks/bitbucket";
    for kind in [
        fake_forge::BbCredential::Repository,
        fake_forge::BbCredential::Workspace,
    ] {
        let mut h = Harness::new(TestDb::sqlite().await, Forge::Bitbucket, 10).await;
        h.ctx.bitbucket_hook = Some((url.into(), pipewright::config::Secret::new(SECRET)));
        h.fake.world().set_bitbucket_credential(kind.clone(), &refs);
        h.add_repo(101, "api", &[("Cargo.toml", CARGO)]);
        h.install().await;
        h.drain().await;
        h.add_repo(102, "web", &[("package.json", PACKAGE_JSON)]);
        h.clock.advance(1000);
        h.install().await;
        h.drain().await;
        let hooks = h.fake.world().hooks.clone();
        match kind {
            fake_forge::BbCredential::Repository => {
                for repo in ["acme/api", "acme/web"] {
                    let list = hooks
                        .get(repo)
                        .unwrap_or_else(|| panic!("{repo}: {hooks:?}"));
                    assert_eq!(list.len(), 1, "{repo}");
                    assert_eq!(list[0].url, url);
                    assert_eq!(list[0].secret, SECRET);
                    assert!(!list[0].events.iter().any(|e| e.starts_with("issue:")));
                }
            }
            _ => assert!(hooks.is_empty(), "{hooks:?}"),
        }
        assert_eq!(h.prs("api").len(), 1, "{kind:?}: the analysis still ran");
        h.fake.stop();
    }
}
