//! Learned conventions through the whole bot: an organisation whose Python repositories
//! run CI on their own runner labels and Python versions (and call the org's reusable
//! workflow) gets a proposal for its new Python repository that follows them and names
//! the siblings it learned from; its Rust repository (another stack) is not used.
//! GitHub, through the real intake, queue, workers and fake forge, on SQLite and
//! PostgreSQL, with the real embedding model.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/model.rs"]
mod model;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use std::sync::Arc;

use actix_web::http::StatusCode;
use harness::*;
use pipewright::db::installations;
use pipewright::db::learn as store;
use pipewright::forge::Forge;
use pipewright::learn::Learner;
use serde_json::json;
use testdb::TestDb;

const LIB_PYPROJECT: &str = "[project]\nname = \"lib\"\nversion = \"1.0.0\"\ndependencies = [\"httpx\"]\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n";

fn org_workflow(owner: &str) -> String {
    format!(
        "name: ci\non: [push, pull_request]\npermissions: {{contents: read}}\njobs:\n  \
         library:\n    uses: {owner}/.github/.github/workflows/python-library.yml@v3\n    secrets: inherit\n  \
         smoke:\n    runs-on: [self-hosted, linux, {owner}-large]\n    strategy:\n      matrix:\n        python-version: [\"3.11\", \"3.12\"]\n    \
         steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-python@v5\n        with:\n          python-version: ${{{{ matrix.python-version }}}}\n      \
         - run: pip install nox && nox -s tests\n"
    )
}

const RUST_WORKFLOW: &str = "on: push\njobs:\n  test:\n    runs-on: [rust-builders]\n    steps:\n      - uses: actions/checkout@v4\n      - run: cargo test\n";

async fn follows_the_org(t: TestDb) {
    let Some(embedder) = model::embedder() else {
        return;
    };
    if !have_fixtures() {
        return;
    }
    let name = t.name;
    let mut h = Harness::new(t, Forge::Github, 20).await;
    let data = tempfile::tempdir().unwrap();
    h.ctx.learner = Some(Arc::new(
        Learner::with_embedder(embedder, Some(data.path())).unwrap(),
    ));
    let owner = h.owner().to_owned();
    let wf = org_workflow(&owner);
    for (id, repo) in [(301, "lib-alpha"), (302, "lib-beta")] {
        h.add_repo(
            id,
            repo,
            &[
                ("pyproject.toml", LIB_PYPROJECT),
                ("src/lib/__init__.py", ""),
                ("tests/test_lib.py", "def test_x():\n    assert True\n"),
                ("noxfile.py", "import nox\n"),
                ("README.md", "# lib\n\nA Python library of the org.\n"),
                (".github/workflows/ci.yml", &wf),
            ],
        );
    }
    h.add_repo(
        303,
        "tool-rs",
        &[
            ("Cargo.toml", CARGO),
            ("src/main.rs", "fn main() {}\n"),
            (".github/workflows/ci.yml", RUST_WORKFLOW),
        ],
    );
    h.install().await;
    h.drain().await;
    assert_eq!(
        h.all_prs(&["lib-alpha", "lib-beta", "tool-rs"]),
        0,
        "{name}: they have CI"
    );

    // A new Python library arrives and gets its first push.
    h.add_repo(
        304,
        "lib-gamma",
        &[
            ("pyproject.toml", LIB_PYPROJECT),
            ("src/gamma/__init__.py", ""),
            (
                "README.md",
                "# gamma\n\nAnother Python library of the org.\n",
            ),
        ],
    );
    // (A manifest change: pushes that touch no manifest are not analysed.)
    let pyproject = LIB_PYPROJECT.replace("httpx", "httpx\", \"rich");
    h.push_main(
        304,
        "lib-gamma",
        &[("pyproject.toml", Some(pyproject.as_str()))],
    )
    .await;
    h.drain().await;
    let pr = assert_bot_pr(&h, "lib-gamma");
    assert!(
        pr.body.contains("Learned from this organisation"),
        "{name}: {}",
        pr.body
    );
    assert!(
        pr.body.contains(&format!("{owner}/lib-alpha"))
            && pr.body.contains(&format!("{owner}/lib-beta")),
        "{name}: the siblings are named"
    );
    assert!(
        !pr.body.contains("tool-rs"),
        "{name}: another stack is not a sibling"
    );
    let files = h
        .fake
        .world()
        .repo(&h.full("lib-gamma"))
        .and_then(|r| r.tree_of(BRANCH).cloned())
        .unwrap_or_default();
    let workflow = files
        .iter()
        .find(|(p, _)| p.starts_with(".github/workflows/"))
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| panic!("{name}: no workflow on the branch: {:?}", files.keys()));
    assert!(
        workflow.contains(&format!("{owner}-large")),
        "{name}: the org's runner labels:\n{workflow}"
    );
    assert!(!workflow.contains("rust-builders"), "{name}");
    assert!(
        workflow.contains("3.11") && workflow.contains("3.12"),
        "{name}: the org's Python versions:\n{workflow}"
    );

    // Uninstalled: what was learned from the installation's repositories is forgotten,
    // in the database (for every replica) and in this process's index.
    let inst = installations::get_installation(&h.t.db, Forge::Github, GITHUB_INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store::installation_count(&h.t.db, inst.id).await.unwrap(),
        4,
        "{name}: every analysed repository was recorded"
    );
    let mut p = fixture("github/installation.deleted.json").unwrap();
    set(&mut p, "/installation/id", json!(957387));
    assert_eq!(h.deliver("installation", &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    assert_eq!(
        store::installation_count(&h.t.db, inst.id).await.unwrap(),
        0,
        "{name}"
    );
    let learner = h.ctx.learner.clone().unwrap();
    let stats = learner.siblings().stats(&h.t.db).await.unwrap();
    assert!(stats.is_empty(), "{name}: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_repository_follows_its_siblings_sqlite() {
    follows_the_org(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_repository_follows_its_siblings_postgres() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    follows_the_org(t).await;
}
