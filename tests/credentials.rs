//! Deploy credentials and the audit trail, on SQLite and PostgreSQL: round trip with an
//! installation default and a repository override, key rotation, a wrong or missing key
//! (clear error, nothing changed), tenant isolation (one installation's credential is
//! never used for another's repository, and a row moved between owners does not open),
//! and the `pipewright credentials` / `audit` commands leaking nothing.

#[path = "support/db.rs"]
mod testdb;

use pipewright::config::Secret;
use pipewright::credentials::{self, CredentialError, Scope};
use pipewright::crypto::{CryptoError, Keyring};
use pipewright::db::audit::{self, Actor, AuditFilter};
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::deploy::DeployTarget;
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, RepoId};
use pipewright::Db;
use testdb::TestDb;

const TOKEN_A: &str = "fo1_installation-default-token-AAAA";
const TOKEN_B: &str = "fo1_repository-override-token-BBBB";
const TOKEN_OTHER: &str = "fo1_other-tenant-token-CCCCCCCCCC";

/// Two GitHub installations: 100 (acme: api, web) and 200 (globex: api).
async fn seed(db: &Db) -> (i64, i64, i64) {
    let mut rows = Vec::new();
    for (inst, account, repos) in [
        (
            "100",
            "acme",
            vec![("1001", "acme/api"), ("1002", "acme/web")],
        ),
        ("200", "globex", vec![("2001", "globex/api")]),
    ] {
        let id = installations::upsert_installation(
            db,
            Forge::Github,
            inst,
            Some(account),
            InstallationState::Active,
            1,
        )
        .await
        .unwrap();
        for (rid, name) in repos {
            let repo = Repo {
                id: RepoId(rid.into()),
                full_name: name.into(),
                default_branch: Some("main".into()),
                private: Some(true),
                archived: Some(false),
                fork: Some(false),
            };
            rows.push(
                installations::upsert_repo(
                    db,
                    Some(id),
                    Forge::Github,
                    &repo,
                    RepoState::Active,
                    1,
                )
                .await
                .unwrap(),
            );
        }
    }
    (rows[0], rows[1], rows[2])
}

fn scope(inst: &str, repo: Option<&str>) -> Scope {
    Scope {
        forge: Forge::Github,
        installation: inst.into(),
        repo: repo.map(str::to_owned),
    }
}

fn key(b: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

fn ring(text: &str) -> Keyring {
    Keyring::parse(&Secret::new(text)).unwrap()
}

async fn fly_token(db: &Db, keyring: &Keyring, repo_row: i64) -> Option<String> {
    credentials::resolve_for_repo(db, Some(keyring), repo_row, DeployTarget::Fly)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.field.name == "FLY_API_TOKEN")
        .map(|r| r.value.expose().to_owned())
}

#[tokio::test]
async fn default_override_and_tenant_isolation() {
    for t in TestDb::all().await {
        let db = &t.db;
        let (acme_api, acme_web, globex_api) = seed(db).await;
        let keys = ring(&format!("k1:{}", key(1)));
        let alice = Actor::cli("alice");
        // Installation default (by account name), then an override for acme/api.
        credentials::set(
            db,
            Some(&keys),
            &scope("acme", None),
            DeployTarget::Fly,
            None,
            &Secret::new(format!("{TOKEN_A}\n")),
            &alice,
            10,
        )
        .await
        .unwrap();
        credentials::set(
            db,
            Some(&keys),
            &scope("100", Some("ACME/api")),
            DeployTarget::Fly,
            Some("fly_api_token"),
            &Secret::new(TOKEN_B),
            &alice,
            11,
        )
        .await
        .unwrap();
        assert_eq!(
            fly_token(db, &keys, acme_api).await.as_deref(),
            Some(TOKEN_B),
            "{}",
            t.name
        );
        assert_eq!(
            fly_token(db, &keys, acme_web).await.as_deref(),
            Some(TOKEN_A),
            "{}",
            t.name
        );
        // Another tenant's repository gets nothing from acme.
        assert_eq!(fly_token(db, &keys, globex_api).await, None, "{}", t.name);
        // acme cannot name globex's repository, by name or by id.
        for r in ["globex/api", "2001"] {
            let e = credentials::set(
                db,
                Some(&keys),
                &scope("100", Some(r)),
                DeployTarget::Fly,
                None,
                &Secret::new(TOKEN_OTHER),
                &alice,
                12,
            )
            .await
            .unwrap_err();
            assert!(
                matches!(e, CredentialError::UnknownRepository { .. }),
                "{e}"
            );
        }
        credentials::set(
            db,
            Some(&keys),
            &scope("200", None),
            DeployTarget::Fly,
            None,
            &Secret::new(TOKEN_OTHER),
            &alice,
            13,
        )
        .await
        .unwrap();
        assert_eq!(
            fly_token(db, &keys, globex_api).await.as_deref(),
            Some(TOKEN_OTHER)
        );
        assert_eq!(
            fly_token(db, &keys, acme_web).await.as_deref(),
            Some(TOKEN_A)
        );

        // A row moved to another owner (someone with database access swapping tenants)
        // does not open: the owner is bound into the ciphertext.
        sqlx_exec(
            db,
            "DELETE FROM deploy_credentials WHERE installation = '200'",
        )
        .await;
        sqlx_exec(
            db,
            "UPDATE deploy_credentials SET installation = '200' WHERE installation = '100' AND repository = ''",
        )
        .await;
        let e = credentials::resolve_for_repo(db, Some(&keys), globex_api, DeployTarget::Fly)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CredentialError::Crypto(CryptoError::Mismatch(_))),
            "{e}"
        );

        // list shows names and scopes, never values.
        let rows = credentials::list(db, Forge::Github, None).await.unwrap();
        let shown = serde_json::to_string(&rows).unwrap();
        for v in [TOKEN_A, TOKEN_B, TOKEN_OTHER] {
            assert!(!shown.contains(v), "{shown}");
        }
        assert!(
            shown.contains("FLY_API_TOKEN") && shown.contains("acme/api"),
            "{shown}"
        );
        // Nothing in the table is the plaintext.
        assert!(!dump(db).await.contains("fo1_"), "{}", t.name);
        // Every change is in the audit trail, without values.
        let trail = audit::list(
            db,
            &AuditFilter {
                action_prefix: Some("credentials.".into()),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(trail.len(), 3, "{}: {trail:?}", t.name);
        assert_eq!(trail[2].installation.as_deref(), Some("100"));
        assert_eq!(trail[1].repository_name.as_deref(), Some("acme/api"));
        assert_eq!(trail[1].details["scope"], "repository");
        assert_eq!(trail[1].actor, alice);
        assert!(!serde_json::to_string(&trail).unwrap().contains("fo1_"));
    }
}

async fn sqlx_exec(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        Db::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

async fn dump(db: &Db) -> String {
    let sql = "SELECT forge || installation || repository || target || name || key_id || nonce || ciphertext FROM deploy_credentials";
    let rows: Vec<String> = match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    };
    rows.join("\n")
}

async fn key_ids(db: &Db) -> Vec<String> {
    let sql = "SELECT key_id FROM deploy_credentials ORDER BY id";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

#[tokio::test]
async fn rotation_wrong_key_and_missing_key() {
    for t in TestDb::all().await {
        let db = &t.db;
        let (acme_api, _, _) = seed(db).await;
        let old = ring(&format!("old:{}", key(1)));
        let alice = Actor::cli("alice");
        credentials::set(
            db,
            Some(&old),
            &scope("100", None),
            DeployTarget::Fly,
            None,
            &Secret::new(TOKEN_A),
            &alice,
            1,
        )
        .await
        .unwrap();
        credentials::set(
            db,
            Some(&old),
            &scope("100", Some("acme/api")),
            DeployTarget::Ssh,
            Some("SSH_HOST"),
            &Secret::new("deploy.example.com"),
            &alice,
            2,
        )
        .await
        .unwrap();

        // No key: a clear error and nothing stored.
        let e = credentials::set(
            db,
            None,
            &scope("100", None),
            DeployTarget::Fly,
            None,
            &Secret::new(TOKEN_B),
            &alice,
            3,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("PIPEWRIGHT_CREDENTIALS_KEY"), "{e}");
        assert_eq!(
            fly_token(db, &old, acme_api).await.as_deref(),
            Some(TOKEN_A)
        );

        // A wrong key under the same id: rotation fails, nothing changes.
        let wrong = ring(&format!("new:{},old:{}", key(2), key(9)));
        let e = credentials::rotate_key(db, Some(&wrong), &alice, 4)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CredentialError::Crypto(CryptoError::Mismatch(ref id)) if id == "old"),
            "{e}"
        );
        assert_eq!(key_ids(db).await, ["old", "old"], "{}", t.name);
        // The new key alone does not know `old`: the error names it.
        let new_only = ring(&format!("new:{}", key(2)));
        let e = credentials::resolve_for_repo(db, Some(&new_only), acme_api, DeployTarget::Fly)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`old`"), "{e}");

        // Rotation with new first and old kept: every row moves to `new`.
        let both = ring(&format!("new:{},old:{}", key(2), key(1)));
        let report = credentials::rotate_key(db, Some(&both), &alice, 5)
            .await
            .unwrap();
        assert_eq!(report.resealed, 2);
        assert_eq!(key_ids(db).await, ["new", "new"]);
        assert_eq!(
            fly_token(db, &new_only, acme_api).await.as_deref(),
            Some(TOKEN_A)
        );
        // Running it again is a no-op.
        assert_eq!(
            credentials::rotate_key(db, Some(&both), &alice, 6)
                .await
                .unwrap()
                .resealed,
            0
        );
        let trail = audit::list(
            db,
            &AuditFilter {
                action_prefix: Some("credentials.rotate".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(trail.len(), 2);
        assert_eq!(trail[1].details["resealed"], 2);
        assert_eq!(trail[1].details["from_keys"], serde_json::json!(["old"]));
    }
}

#[tokio::test]
async fn schema_checks_name_and_never_echo_values() {
    let t = TestDb::sqlite().await;
    let db = &t.db;
    seed(db).await;
    let keys = ring(&key(3));
    let bob = Actor::cli("bob");
    let cases: [(DeployTarget, Option<&str>, &str, &str); 5] = [
        (
            DeployTarget::Fly,
            Some("AWS_ROLE_ARN"),
            "x",
            "has no credential `AWS_ROLE_ARN`",
        ),
        (DeployTarget::Aws, None, "x", "say which with --name"),
        (
            DeployTarget::Aws,
            Some("AWS_ROLE_ARN"),
            "arn:aws:iam::12:role/secretish",
            "must be an IAM role ARN",
        ),
        (
            DeployTarget::Ssh,
            Some("SSH_PRIVATE_KEY"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nENCRYPTED\n-----END OPENSSH PRIVATE KEY-----",
            "passphrase",
        ),
        (DeployTarget::Fly, None, "   \n", "is empty"),
    ];
    for (target, name, value, expected) in cases {
        let e = credentials::set(
            db,
            Some(&keys),
            &scope("100", None),
            target,
            name,
            &Secret::new(value),
            &bob,
            1,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains(expected), "{e}");
        if value.len() > 3 {
            assert!(
                !e.contains("secretish") && !e.contains("ENCRYPTED\n"),
                "{e}"
            );
        }
    }
    let e = credentials::set(
        db,
        Some(&keys),
        &scope("999", None),
        DeployTarget::Fly,
        None,
        &Secret::new(TOKEN_A),
        &bob,
        1,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CredentialError::UnknownInstallation { .. }),
        "{e}"
    );
    assert!(credentials::list(db, Forge::Github, None)
        .await
        .unwrap()
        .is_empty());
    assert!(audit::list(
        db,
        &AuditFilter {
            limit: 10,
            ..Default::default()
        }
    )
    .await
    .unwrap()
    .is_empty());
}

/// The operator's commands, as a person runs them: the value goes in through stdin or a
/// file and never comes out — not in stdout, stderr, `list`, `audit list` or trace logs.
#[test]
fn cli_set_list_delete_rotate_leak_nothing() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("pw.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Db::connect_and_migrate(&db_url).await.unwrap();
        seed(&db).await;
        db.close().await;
    });
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("k1:{}\n", key(4))).unwrap();
    let run = |args: &[&str], stdin: Option<&str>, key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipewright"));
        cmd.current_dir(dir.path())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PIPEWRIGHT_DATABASE_URL", &db_url)
            .env("RUST_LOG", "trace")
            .env("USER", "carol")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match key {
            Some(k) => cmd.env("PIPEWRIGHT_CREDENTIALS_KEY", k),
            None => cmd.env("PIPEWRIGHT_CREDENTIALS_KEY_FILE", &key_file),
        };
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let mut all_output = String::new();
    let (code, out) = run(
        &[
            "credentials",
            "set",
            "--installation",
            "acme",
            "--target",
            "fly",
            "--from-file",
            "-",
        ],
        Some(TOKEN_A),
        None,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("stored FLY_API_TOKEN") && out.contains("key `k1`"),
        "{out}"
    );
    all_output.push_str(&out);
    let value_file = dir.path().join("token");
    std::fs::write(&value_file, TOKEN_B).unwrap();
    let (code, out) = run(
        &[
            "credentials",
            "set",
            "--installation",
            "100",
            "--repo",
            "acme/api",
            "--target",
            "fly",
            "--from-file",
            value_file.to_str().unwrap(),
        ],
        None,
        None,
    );
    assert_eq!(code, Some(0), "{out}");
    all_output.push_str(&out);
    let (code, out) = run(&["credentials", "list"], None, None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("(installation default)") && out.contains("acme/api"),
        "{out}"
    );
    all_output.push_str(&out);
    // Rotation: new key first, old kept.
    let (code, out) = run(
        &["credentials", "rotate-key"],
        None,
        Some(&format!("k2:{},k1:{}", key(5), key(4))),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("re-encrypted 2 value(s) with key `k2`"),
        "{out}"
    );
    all_output.push_str(&out);
    // The old key alone no longer opens anything: rotate-key says which key is missing.
    let (code, out) = run(&["credentials", "rotate-key"], None, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("key `k2`"), "{out}");
    all_output.push_str(&out);
    let (code, out) = run(
        &[
            "credentials",
            "delete",
            "--installation",
            "100",
            "--repo",
            "acme/api",
            "--target",
            "fly",
        ],
        None,
        None,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleted 1 value(s)"), "{out}");
    all_output.push_str(&out);
    let (code, out) = run(&["audit", "list", "--format", "json"], None, None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("credentials.delete") && out.contains("\"carol\""),
        "{out}"
    );
    all_output.push_str(&out);
    // A bad key configuration stops at start-up, naming the variable and not the key.
    let (code, out) = run(&["credentials", "list"], None, Some("k1:dG9vIHNob3J0"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("PIPEWRIGHT_CREDENTIALS_KEY") && !out.contains("dG9vIHNob3J0"),
        "{out}"
    );
    for secret in [TOKEN_A, TOKEN_B, &key(4), &key(5)] {
        assert!(
            !all_output.contains(secret),
            "a secret leaked:\n{all_output}"
        );
    }
}
