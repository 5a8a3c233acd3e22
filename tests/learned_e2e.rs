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
         library:\n    uses: {owner}/.github/.github/workflows/python-library.yml@v3\n    with:\n      python-version: \"3.10\"\n      coverage: true\n      shards: 2\n    secrets: inherit\n  \
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
    // The org's shared workflows, tagged `v3` (the proposal pins the call to that commit).
    let shared = h.add_repo(
        300,
        ".github",
        &[(
            ".github/workflows/python-library.yml",
            "on:\n  workflow_call:\n    inputs:\n      python-version: {type: string}\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo test\n",
        )],
    );
    {
        let full = h.full(".github");
        let mut w = h.fake.world();
        let idx = w.repos.iter().position(|r| r.full_name == full).unwrap();
        w.repos[idx].tags.insert("v3".to_owned(), shared.clone());
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
            ("mkdocs.yml", "site_name: gamma\n"),
            ("docs/index.md", "# gamma\n"),
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
        .find(|(p, c)| p.starts_with(".github/workflows/") && c.contains("python-library.yml"))
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| panic!("{name}: no workflow calls the org's: {files:?}"));
    // The Python library's job calls the org's reusable workflow, with the siblings'
    // inputs typed as they wrote them, and without handing it every secret.
    assert!(
        workflow.contains(&format!(
            "    uses: {owner}/.github/.github/workflows/python-library.yml@{shared} # v3\n    with:\n"
        )) && workflow.contains("      python-version: \"3.10\"\n")
            && workflow.contains("      coverage: true\n")
            && workflow.contains("      shards: 2\n"),
        "{name}: the org's reusable workflow:\n{workflow}"
    );
    assert!(
        !workflow.contains("secrets: inherit"),
        "{name}:\n{workflow}"
    );
    assert!(
        !workflow.contains("pytest"),
        "{name}: not inlined as well:\n{workflow}"
    );
    // The jobs it does not cover (the docs) run on the org's runner labels.
    let docs = files
        .iter()
        .filter(|(p, _)| p.starts_with(".github/workflows/"))
        .map(|(_, c)| c.as_str())
        .find(|c| c.contains("mkdocs"))
        .unwrap_or_else(|| panic!("{name}: a docs job: {:?}", files.keys()));
    assert!(
        docs.contains(&format!("{owner}-large")),
        "{name}: the org's runner labels:\n{docs}"
    );
    assert!(
        !workflow.contains("rust-builders") && !docs.contains("rust-builders"),
        "{name}"
    );
    assert!(
        pr.body.contains("python-library.yml@v3") && pr.body.contains("Python 3.11, 3.12"),
        "{name}: the PR says what it adopted:\n{}",
        pr.body
    );

    // Uninstalled: what was learned from the installation's repositories is forgotten,
    // in the database (for every replica) and in this process's index.
    let inst = installations::get_installation(&h.t.db, Forge::Github, GITHUB_INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store::installation_count(&h.t.db, inst.id).await.unwrap(),
        5,
        "{name}: every analysed repository was recorded (the org's `.github` too)"
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
