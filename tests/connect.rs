//! `pipewright gitlab connect` and `pipewright bitbucket connect` against the fake forges:
//! hooks (with the webhook secret) on every project / on the workspace, idempotent on a
//! second run, the tenant recorded, a reconcile pass queued; and the allowlist refuses a
//! group the operator did not list.

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
        assert_eq!(h[0].events, ["push", "merge_requests", "note"]);
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
