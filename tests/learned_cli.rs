//! Learned detection as an operator meets it through the binary: `analyze --explain`
//! names the neighbours; `index rebuild` and `index stats` work from the database alone
//! (a replica without index files rebuilds them, timed); without a model, `analyze` runs
//! on rules alone and `index` says what is missing.

#[path = "support/model.rs"]
mod model;

use std::path::Path;
use std::process::{Command, Output};

use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::db::learn::{self as store, NewConventions};
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, RepoId};
use pipewright::Db;

fn pipewright(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipewright"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pipewright")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/learned")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn without_a_model_rules_alone_answer() {
    let dir = tempfile::tempdir().unwrap();
    let out = pipewright(dir.path(), &["analyze", &fixture("dbt-analytics")], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("learned/archetype"));
    let out = pipewright(dir.path(), &["index", "stats"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("PIPEWRIGHT_MODEL_DIR"),
        "{}",
        text(&out)
    );
}

#[test]
fn analyze_explains_the_neighbours() {
    let Some(m) = model::model_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = m.display().to_string();
    let out = pipewright(
        dir.path(),
        &["analyze", &fixture("ansible-role-nginx"), "--explain"],
        &[("PIPEWRIGHT_MODEL_DIR", &m)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(t.contains("yaml"), "{t}");
    assert!(
        t.contains("[learned/archetype]") && t.contains("nearest: ansible-role 0."),
        "{t}"
    );
    let out = pipewright(
        dir.path(),
        &[
            "analyze",
            &fixture("ansible-role-nginx"),
            "--format",
            "json",
        ],
        &[("PIPEWRIGHT_MODEL_DIR", &m)],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["projects"][0]["language"], "yaml");
    assert_eq!(
        v["projects"][0]["evidence"][0],
        "embedding: archetype ansible-role"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_rebuild_and_stats_work_from_the_database() {
    let Some(m) = model::embedder() else { return };
    let m_dir = model::model_dir().unwrap().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pw.db").display());
    let db = Db::connect_and_migrate(&url).await.unwrap();
    let inst = installations::upsert_installation(
        &db,
        Forge::Github,
        "77",
        Some("acme"),
        InstallationState::Active,
        1,
    )
    .await
    .unwrap();
    for i in 0..3u64 {
        let id = installations::upsert_repo(
            &db,
            Some(inst),
            Forge::Github,
            &Repo {
                id: RepoId(i.to_string()),
                full_name: format!("acme/r{i}"),
                default_branch: None,
                private: None,
                archived: None,
                fork: None,
            },
            RepoState::Active,
            1,
        )
        .await
        .unwrap();
        let v = m.embed(&[&format!("files: r{i}.py")]).unwrap().remove(0);
        let hash = format!("h{i}");
        store::put_embeddings(&db, m.hash(), &[(hash.clone(), v)], 1)
            .await
            .unwrap();
        store::upsert_conventions(
            &db,
            &NewConventions {
                repository_id: id,
                installation_id: inst,
                language: "python",
                fingerprint_hash: &hash,
                fingerprint: "files: x",
                has_ci: true,
                conventions: "{}",
            },
            2,
        )
        .await
        .unwrap();
    }
    db.close().await;
    let data = dir.path().join("data");
    let env = [
        ("PIPEWRIGHT_DATABASE_URL", url.as_str()),
        ("PIPEWRIGHT_MODEL_DIR", m_dir.as_str()),
        ("PIPEWRIGHT_DATA_DIR", data.to_str().unwrap()),
    ];
    let out = pipewright(dir.path(), &["index", "rebuild"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "installation {inst}: 3 vectors rebuilt from the database in"
        )),
        "{}",
        text(&out)
    );
    let out = pipewright(dir.path(), &["index", "stats", "--format", "json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model_hash"], m.hash());
    assert_eq!(v["installations"][0]["vectors"], 3);
    assert!(v["installations"][0]["bytes_on_disk"].as_u64().unwrap() > 0);
    assert!(v["archetypes"]["exemplars"].as_u64().unwrap() > 20);
    assert!(v["archetypes"]["bytes_on_disk"].as_u64().unwrap() > 0);
}
