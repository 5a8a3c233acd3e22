//! The audit trail (`audit_log`) on SQLite and PostgreSQL: every kind of actor, the
//! filters `pipewright audit list` and the console use, newest first.

#[path = "support/db.rs"]
mod testdb;

use pipewright::db::audit::{self, Actor, AuditFilter};
use testdb::TestDb;

#[tokio::test]
async fn audit_filters_on_both_backends() {
    for t in TestDb::all().await {
        let db = &t.db;
        let mut e = audit::AuditEntry::new(Actor::console("octocat"), "job.retry");
        e.forge = Some("github".into());
        e.installation = Some("100".into());
        e.details = serde_json::json!({ "job": 7 });
        audit::record(db, &e, 1_000).await.unwrap();
        let mut e2 = audit::AuditEntry::new(Actor::forge("dev"), "deploy.secret_written");
        e2.forge = Some("gitlab".into());
        e2.installation = Some("acme".into());
        e2.target = Some("fly".into());
        audit::record(db, &e2, 2_000).await.unwrap();
        audit::record(
            db,
            &audit::AuditEntry::new(Actor::bot(), "job_retry_100%"),
            3_000,
        )
        .await
        .unwrap();
        let all = audit::list(
            db,
            &AuditFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(all.len(), 3, "{}", t.name);
        assert_eq!(all[0].action, "job_retry_100%");
        assert_eq!(all[2].details["job"], 7);
        let gh = audit::list(
            db,
            &AuditFilter {
                forge: Some("github".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(gh.len(), 1);
        // `_` and `%` in a prefix are literal.
        let p = audit::list(
            db,
            &AuditFilter {
                action_prefix: Some("job_".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(p.len(), 1, "{}: {p:?}", t.name);
        let since = audit::list(
            db,
            &AuditFilter {
                since: Some(2_000),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(since.len(), 2);
        let inst = audit::list(
            db,
            &AuditFilter {
                installation: Some("acme".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(inst[0].actor, Actor::forge("dev"));
        assert_eq!(inst[0].target.as_deref(), Some("fly"));
    }
}
