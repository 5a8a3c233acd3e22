//! `pipewright gitlab connect` and `pipewright bitbucket connect` against the fake forges:
//! hooks (with the webhook secret) on every project / on the workspace, idempotent on a
//! second run, the tenant recorded, a reconcile pass queued; and the allowlist refuses a
//! group the operator did not list. Bitbucket with exactly the scopes
//! `app-manifests/README.md` documents (read from it), and with each one missing: the fake
//! enforces each endpoint's and each webhook event's scope as Bitbucket does.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/db.rs"]
mod testdb;

use fake_forge::{FakeForge, RepoSpec};
use pipewright::config::{Config, Secret};
use pipewright::db::installations;
use pipewright::forge::Forge;
use pipewright::queue::store::{self, ListFilter};
use testdb::TestDb;

const SECRET: &str = "hook-secret";

fn config(t: &TestDb) -> Config {
    let mut c = Config::for_database(&t.url);
    c.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
    c.bitbucket_webhook_secrets = vec![Secret::new(SECRET)];
    c
}

async fn reconciles(t: &TestDb) -> usize {
    store::list(
        &t.db,
        &ListFilter {
            state: None,
            kind: Some("reconcile_installation".into()),
            limit: 10,
        },
    )
    .await
    .unwrap()
    .len()
}

#[actix_web::test]
async fn gitlab_connect_hooks_every_project_once() {
    let fake = FakeForge::gitlab().await;
    for (id, name) in [(1, "acme/api"), (2, "acme/sub/web"), (3, "other/x")] {
        fake.world()
            .add_repo(RepoSpec::new(id, name, name.split('/').next().unwrap()));
    }
    let t = TestDb::sqlite().await;
    let mut c = config(&t);
    c.bot.gitlab_url = fake.url.clone();
    c.bot.gitlab_token = Some(Secret::new(fake_forge::GITLAB_TOKEN));
    c.bot.gitlab_groups = vec!["acme".into()];
    for _ in 0..2 {
        pipewright::app::gitlab_connect(&c, "acme", Some("https://pw.example.com"))
            .await
            .unwrap();
    }
    let hooks = fake.world().hooks.clone();
    for id in ["1", "2"] {
        let h = &hooks[id];
        assert_eq!(h.len(), 1, "project {id}: one hook after two runs");
        assert_eq!(h[0].url, "https://pw.example.com/webhooks/gitlab");
        assert_eq!(h[0].secret, SECRET);
        assert_eq!(h[0].events, ["push", "merge_requests", "note", "pipeline"]);
    }
    assert!(!hooks.contains_key("3"), "never outside the group");
    let inst = installations::get_installation(&t.db, Forge::Gitlab, "acme")
        .await
        .unwrap();
    assert_eq!(inst.unwrap().state, "active");
    assert_eq!(reconciles(&t).await, 1);
    // A group the operator did not list is refused before any API call.
    fake.world().clear_requests();
    let err = pipewright::app::gitlab_connect(&c, "other", Some("https://pw.example.com"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("PIPEWRIGHT_GITLAB_GROUPS"),
        "{err}"
    );
    assert!(fake.world().requests().is_empty());
    fake.stop();
}

#[actix_web::test]
async fn bitbucket_connect_registers_one_workspace_hook() {
    let fake = FakeForge::bitbucket().await;
    fake.world().add_repo(RepoSpec::new(1, "acme/api", "acme"));
    let t = TestDb::sqlite().await;
    let mut c = config(&t);
    c.bot.bitbucket_api_url = fake.url.clone();
    c.bot.bitbucket_token = Some(Secret::new(fake_forge::BITBUCKET_TOKEN));
    c.bot.bitbucket_workspaces = vec!["acme".into()];
    for _ in 0..2 {
        pipewright::app::bitbucket_connect(&c, "acme", Some("https://pw.example.com/"))
            .await
            .unwrap();
    }
    let hooks = fake.world().hooks["acme"].clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].url, "https://pw.example.com/webhooks/bitbucket");
    assert_eq!(hooks[0].secret, SECRET);
    assert!(hooks[0]
        .events
        .iter()
        .any(|e| e == "pullrequest:comment_created"));
    let all = installations::list_installations(&t.db, Forge::Bitbucket)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].account.as_deref(), Some("acme"));
    assert!(
        all[0].external_id.starts_with('{'),
        "keyed by the workspace uuid"
    );
    assert_eq!(reconciles(&t).await, 1);
    fake.stop();
}

/// The scopes a table of `app-manifests/README.md` documents (first column, in
/// backticks), under the heading `section`: the test holds the docs, not a copy of them.
fn documented_scopes(section: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(format!(
        "{}/app-manifests/README.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let start = doc
        .find(section)
        .unwrap_or_else(|| panic!("app-manifests/README.md has no `{section}`"));
    let body = &doc[start + section.len()..];
    let end = body.find("\n#").unwrap_or(body.len());
    let scopes: Vec<String> = body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert!(!scopes.is_empty(), "no scope table under `{section}`");
    scopes
}

/// A fake Bitbucket with two repositories and a config acting in workspace `acme`.
async fn bitbucket_setup() -> (FakeForge, TestDb, Config) {
    let fake = FakeForge::bitbucket().await;
    fake.world().add_repo(RepoSpec::new(1, "acme/api", "acme"));
    fake.world().add_repo(RepoSpec::new(2, "acme/web", "acme"));
    let t = TestDb::sqlite().await;
    let mut c = config(&t);
    c.bot.bitbucket_api_url = fake.url.clone();
    c.bot.bitbucket_token = Some(Secret::new(fake_forge::BITBUCKET_TOKEN));
    c.bot.bitbucket_workspaces = vec!["acme".into()];
    (fake, t, c)
}

const URL: &str = "https://pw.example.com";

fn events(hooks: &[fake_forge::HookRec]) -> Vec<String> {
    let mut e = hooks[0].events.clone();
    e.sort();
    e
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Everything pipewright subscribes to except the issue tracker.
const WITHOUT_ISSUES: [&str; 6] = [
    "repo:push",
    "repo:commit_status_updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
];

#[actix_web::test]
async fn bitbucket_connect_works_with_exactly_the_documented_access_token_scopes() {
    let scopes = documented_scopes("### Access tokens (workspace, project or repository)");
    assert!(
        !scopes
            .iter()
            .any(|s| s.starts_with("issue") || s == "account"),
        "access tokens have no issue scope, and `account` is not needed: {scopes:?}"
    );
    let (fake, t, c) = bitbucket_setup().await;
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    fake.world()
        .set_bitbucket_credential(fake_forge::BbCredential::Workspace, &refs);
    pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
        .await
        .expect("connect succeeds with the documented scopes");
    let hooks = fake.world().hooks["acme"].clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].secret, SECRET);
    // The issue event needs the issue scope, which access tokens cannot have: left out.
    assert_eq!(events(&hooks), sorted(&WITHOUT_ISSUES));
    // The refusal was the fake's real scope check, not a guess: one 403, then the retry.
    let creates: Vec<String> = fake
        .world()
        .requests()
        .into_iter()
        .filter(|r| r == "POST /2.0/workspaces/acme/hooks")
        .collect();
    assert_eq!(creates.len(), 2, "first with the issue event, then without");
    assert_eq!(reconciles(&t).await, 1, "the reconcile pass is queued");
    // Idempotent: a second run adds no hook. It asks once more for the issue event (the
    // token may have gained the scope since), is refused, and leaves the hook as it was.
    fake.world().clear_requests();
    pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
        .await
        .unwrap();
    let hooks = fake.world().hooks["acme"].clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(events(&hooks), sorted(&WITHOUT_ISSUES));
    let writes: Vec<String> = fake
        .world()
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST") || r.starts_with("PUT"))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("PUT /2.0/workspaces/acme/hooks/"));
    fake.stop();
}

#[actix_web::test]
async fn bitbucket_connect_with_one_documented_scope_missing() {
    let scopes = documented_scopes("### Access tokens (workspace, project or repository)");
    for missing in &scopes {
        let (fake, _t, c) = bitbucket_setup().await;
        let rest: Vec<&str> = scopes
            .iter()
            .filter(|s| *s != missing)
            .map(String::as_str)
            .collect();
        fake.world()
            .set_bitbucket_credential(fake_forge::BbCredential::Workspace, &rest);
        let result = pipewright::app::bitbucket_connect(&c, "acme", Some(URL)).await;
        match missing.as_str() {
            // Without it no webhook can exist: a clear failure naming the scope.
            "webhook" => {
                let err = format!("{:#}", result.unwrap_err());
                assert!(
                    err.contains("privilege scopes") && err.contains("webhook"),
                    "{err}"
                );
                assert!(!fake.world().hooks.contains_key("acme"));
            }
            // The others are implied by their write scope or used only by the bot.
            _ => {
                result.unwrap_or_else(|e| panic!("without `{missing}`: {e:#}"));
                assert_eq!(
                    events(&fake.world().hooks["acme"]),
                    sorted(&WITHOUT_ISSUES),
                    "without `{missing}`"
                );
            }
        }
        fake.stop();
    }
    // Without both pull request scopes, only the repository events are left: still a
    // working hook (pushes, and CI results).
    let (fake, _t, c) = bitbucket_setup().await;
    fake.world().set_bitbucket_credential(
        fake_forge::BbCredential::Workspace,
        &["repository:write", "webhook"],
    );
    pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
        .await
        .unwrap();
    assert_eq!(
        events(&fake.world().hooks["acme"]),
        ["repo:commit_status_updated", "repo:push"]
    );
    // And with only the webhook scope, no event is left: a clear failure.
    let (fake2, _t2, c2) = bitbucket_setup().await;
    fake2
        .world()
        .set_bitbucket_credential(fake_forge::BbCredential::Workspace, &["webhook"]);
    let err = format!(
        "{:#}",
        pipewright::app::bitbucket_connect(&c2, "acme", Some(URL))
            .await
            .unwrap_err()
    );
    assert!(err.contains("privilege scopes"), "{err}");
    fake.stop();
    fake2.stop();
}

#[actix_web::test]
async fn bitbucket_connect_with_an_api_token_keeps_issue_events_when_granted() {
    let scopes = documented_scopes("### Atlassian API tokens");
    assert!(
        scopes.iter().all(|s| s.ends_with(":bitbucket")),
        "{scopes:?}"
    );
    for with_issues in [false, true] {
        let (fake, _t, mut c) = bitbucket_setup().await;
        c.bot.bitbucket_email = Some(fake_forge::BITBUCKET_EMAIL.into());
        let mut granted: Vec<&str> = scopes.iter().map(String::as_str).collect();
        if with_issues {
            granted.push("read:issue:bitbucket");
        }
        fake.world()
            .set_bitbucket_credential(fake_forge::BbCredential::ApiToken, &granted);
        pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
            .await
            .unwrap();
        let got = events(&fake.world().hooks["acme"]);
        assert_eq!(
            got.contains(&"issue:comment_created".to_owned()),
            with_issues,
            "{got:?}"
        );
        fake.stop();
    }
    // Without the e-mail the API token is sent as Bearer, and Bitbucket says 401.
    let (fake, _t, c) = bitbucket_setup().await;
    fake.world()
        .set_bitbucket_credential(fake_forge::BbCredential::ApiToken, &[]);
    let err = format!(
        "{:#}",
        pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
            .await
            .unwrap_err()
    );
    assert!(err.contains("401"), "{err}");
    fake.stop();
}

#[actix_web::test]
async fn bitbucket_connect_with_a_repository_token_hooks_each_repository() {
    let scopes = documented_scopes("### Access tokens (workspace, project or repository)");
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    for kind in [
        fake_forge::BbCredential::Project,
        fake_forge::BbCredential::Repository,
    ] {
        let (fake, t, c) = bitbucket_setup().await;
        fake.world().set_bitbucket_credential(kind.clone(), &refs);
        pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
        let hooks = fake.world().hooks.clone();
        assert!(!hooks.contains_key("acme"), "{kind:?}: no workspace hook");
        for repo in ["acme/api", "acme/web"] {
            let h = &hooks[repo];
            assert_eq!(h.len(), 1, "{kind:?} {repo}");
            assert_eq!(h[0].url, format!("{URL}/webhooks/bitbucket"));
            assert_eq!(events(h), sorted(&WITHOUT_ISSUES), "{kind:?} {repo}");
        }
        assert_eq!(reconciles(&t).await, 1);
        fake.stop();
    }
}

#[actix_web::test]
async fn bitbucket_connect_updates_a_hook_with_old_events() {
    let (fake, _t, c) = bitbucket_setup().await;
    pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
        .await
        .unwrap();
    let all = events(&fake.world().hooks["acme"]);
    assert!(all.contains(&"issue:comment_created".to_owned()), "{all:?}");
    // An older pipewright registered fewer events.
    fake.world().hooks.get_mut("acme").unwrap()[0].events = vec!["repo:push".into()];
    pipewright::app::bitbucket_connect(&c, "acme", Some(URL))
        .await
        .unwrap();
    let hooks = fake.world().hooks["acme"].clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(events(&hooks), all);
    fake.stop();
}
