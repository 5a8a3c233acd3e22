//! Test databases: a temporary SQLite file, and a fresh PostgreSQL database per test when
//! `PIPEWRIGHT_TEST_DATABASE_URL` points at a server (dropped afterwards). Without it the
//! PostgreSQL half of a test is skipped with a printed notice, unless
//! `PIPEWRIGHT_REQUIRE_PG=1` (CI), which turns the skip into a failure.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use pipewright::Db;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A migrated database that cleans up after itself.
pub struct TestDb {
    /// The pool.
    pub db: Db,
    /// Its URL (for child processes).
    pub url: String,
    /// "sqlite" or "postgres", for assertion messages.
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite database in a temp dir.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect_and_migrate(&url).await.expect("sqlite opens");
        TestDb {
            db,
            url,
            name: "sqlite",
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a notice) when none is configured.
    pub async fn postgres() -> Option<TestDb> {
        let admin = match std::env::var("PIPEWRIGHT_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                if std::env::var("PIPEWRIGHT_REQUIRE_PG").as_deref() == Ok("1") {
                    panic!("PIPEWRIGHT_REQUIRE_PG=1 but PIPEWRIGHT_TEST_DATABASE_URL is not set");
                }
                eprintln!(
                    "skipped: PostgreSQL half of this test (set PIPEWRIGHT_TEST_DATABASE_URL)"
                );
                return None;
            }
        };
        let name = format!(
            "pw_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            &uuid_like()
        );
        let admin_db = Db::connect(&admin)
            .await
            .expect("PostgreSQL admin connection");
        if let Db::Postgres(pool) = &admin_db {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(pool)
                .await
                .expect("create test database");
        }
        admin_db.close().await;
        let url = replace_db_name(&admin, &name);
        let db = Db::connect_and_migrate(&url)
            .await
            .expect("test database migrates");
        Some(TestDb {
            db,
            url,
            name: "postgres",
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    /// SQLite, plus PostgreSQL when available.
    pub async fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres().await {
            v.push(pg);
        }
        v
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside async: use a private runtime on a plain thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let admin_db = Db::connect(&admin).await.ok()?;
                    if let Db::Postgres(pool) = &admin_db {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(pool)
                                .await;
                    }
                    admin_db.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// Polls `check` every 10 ms until it is true, panicking after `WAIT_TIMEOUT`.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Longest a test waits for a condition.
pub const WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
