//! Learned detection end to end, below the forge: the archetype index over fixture
//! repositories that rules alone get wrong or leave empty (they must come out right with
//! the embeddings, and every existing fixture's confident answers must not move), the
//! persisted index, the embedding cache, and the per-installation sibling index —
//! isolation between installations (also after an uninstall, and across replicas on
//! PostgreSQL) and conventions adopted from siblings of the same stack only.

#[path = "support/model.rs"]
mod model;
#[path = "support/db.rs"]
mod testdb;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipewright::analyze::conventions::{self, Conventions};
use pipewright::analyze::fingerprint::fingerprint;
use pipewright::analyze::tree::load_local_learned;
use pipewright::analyze::{analyze, load_local, render_text, Analysis, Limits, RepoTree};
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::db::learn::{self as store, NewConventions};
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, RepoId};
use pipewright::generate::{generate, Provider, Target};
use pipewright::learn::archetypes::CONFIDENT;
use pipewright::learn::{adopt, Learner, Siblings};
use pipewright::Db;
use testdb::TestDb;

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn learner() -> Option<Learner> {
    let m = model::embedder()?;
    Some(Learner::with_embedder(m, None).unwrap())
}

/// Fixtures rules alone get wrong or leave empty → (archetype, language) expected.
const LEARNED: &[(&str, &str, &str)] = &[
    ("bash-tool-no-extension", "shell-scripts", "shell"),
    ("dbt-analytics", "dbt", "sql"),
    ("ansible-role-nginx", "ansible-role", "yaml"),
    ("notebooks-course", "notebooks", "jupyter"),
    ("dotfiles-plain", "dotfiles", "shell"),
    ("platformio-weather", "platformio", "cpp"),
    ("static-homepage", "static-site", "html"),
    ("sql-migrations", "sql-scripts", "sql"),
];

#[test]
fn archetypes_get_right_what_rules_miss() {
    let Some(l) = learner() else { return };
    let mut report = Vec::new();
    for (name, archetype, language) in LEARNED {
        let dir = fixtures("learned").join(name);
        let rules = analyze(&load_local(&dir, &Limits::default()).unwrap());
        let rules_right = rules
            .projects
            .first()
            .is_some_and(|p| p.language.as_str() == *language);
        assert!(
            !rules_right,
            "{name}: rules alone already get it right; not a learned fixture"
        );
        let tree = load_local_learned(&dir, &Limits::default()).unwrap();
        let a = l.analyze_local(&tree).unwrap();
        let p = a.projects.first().unwrap_or_else(|| {
            panic!(
                "{name}: no project with embeddings: {}",
                render_text(&a, true)
            )
        });
        report.push(format!(
            "{name}: rules {:?} → {} ({})",
            rules.projects.first().map(|p| p.language.as_str()),
            p.language,
            p.reasons
                .last()
                .map(|r| r.conclusion.clone())
                .unwrap_or_default()
        ));
        assert_eq!(
            p.language.as_str(),
            *language,
            "{name}: {}",
            render_text(&a, true)
        );
        assert!(
            p.evidence
                .contains(&format!("embedding: archetype {archetype}")),
            "{name}: evidence says the embedding contributed: {:?}",
            p.evidence
        );
        assert!(
            p.confidence < CONFIDENT,
            "learned answers stay below rules' confidence"
        );
        // The recipe becomes CI like any other project, on every provider.
        for provider in [Provider::Github, Provider::Gitlab, Provider::Bitbucket] {
            let target = Target {
                provider,
                ..Target::github()
            };
            let files =
                generate(&a, &target).unwrap_or_else(|e| panic!("{name} {provider:?}: {e}"));
            assert!(!files.is_empty(), "{name}: {provider:?} generated nothing");
        }
    }
    eprintln!("{}", report.join("\n"));
}

fn comparable(a: &Analysis) -> serde_json::Value {
    let mut v = serde_json::to_value(a).unwrap();
    // READMEs are read for fingerprints: more files read is expected, nothing else.
    v.as_object_mut().unwrap().remove("files_read");
    v
}

#[test]
fn confident_rule_answers_never_change() {
    let Some(l) = learner() else { return };
    let mut names: Vec<String> = std::fs::read_dir(fixtures("repos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut changed = Vec::new();
    for name in &names {
        let dir = fixtures("repos").join(name);
        let rules = analyze(&load_local(&dir, &Limits::default()).unwrap());
        let learned = l
            .analyze_local(&load_local_learned(&dir, &Limits::default()).unwrap())
            .unwrap();
        for p in &rules.projects {
            let q = learned
                .projects
                .iter()
                .find(|q| q.path == p.path)
                .unwrap_or_else(|| panic!("{name}: project {} vanished", p.path));
            if p.confidence >= CONFIDENT {
                assert_eq!(p, q, "{name}: a confident answer changed");
            } else {
                assert_eq!(
                    p.language, q.language,
                    "{name}: the language of {} changed",
                    p.path
                );
                assert_eq!(p.package_manager, q.package_manager);
                assert_eq!(p.frameworks, q.frameworks);
            }
        }
        if comparable(&rules) != comparable(&learned) {
            changed.push(name.clone());
        }
    }
    // Only repositories where rules were unsure or silent may differ at all.
    for name in &changed {
        let rules =
            analyze(&load_local(&fixtures("repos").join(name), &Limits::default()).unwrap());
        assert!(
            rules.projects.is_empty() || rules.projects.iter().any(|p| p.confidence < CONFIDENT),
            "{name} changed although every rule was confident"
        );
    }
    eprintln!("fixtures refined (rules unsure or silent): {changed:?}");
}

#[test]
fn explain_shows_the_neighbours_and_their_similarity() {
    let Some(l) = learner() else { return };
    let tree = load_local_learned(
        &fixtures("learned").join("dbt-analytics"),
        &Limits::default(),
    )
    .unwrap();
    let text = render_text(&l.analyze_local(&tree).unwrap(), true);
    assert!(text.contains("[learned/archetype]"), "{text}");
    assert!(text.contains("nearest: dbt 0."), "{text}");
}

#[test]
fn the_archetype_index_is_persisted_and_rebuilt_when_its_key_changes() {
    let Some(m) = model::embedder() else { return };
    let data = tempfile::tempdir().unwrap();
    let first = Learner::with_embedder(m.clone(), Some(data.path())).unwrap();
    let path =
        pipewright::learn::ArchetypeIndex::path(data.path(), m.hash(), first.archetypes().corpus());
    assert!(path.is_file(), "saved at {}", path.display());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains(m.hash()) && name.contains(&first.archetypes().corpus().hash));
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let second = Learner::with_embedder(m.clone(), Some(data.path())).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "loaded, not rebuilt"
    );
    let tree = load_local_learned(
        &fixtures("learned").join("notebooks-course"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        first.analyze_local(&tree).unwrap(),
        second.analyze_local(&tree).unwrap()
    );
    // A corrupt file is rebuilt, not trusted.
    std::fs::write(&path, b"junk").unwrap();
    let third = Learner::with_embedder(m, Some(data.path())).unwrap();
    assert_eq!(third.archetypes().len(), first.archetypes().len());
    assert!(std::fs::metadata(&path).unwrap().len() > 4);
}

// ---- the sibling index (database) ----

/// A deterministic unit vector near `base` (same `base` → close, different → far).
fn vector(base: u64, jitter: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..384)
        .map(|i| {
            let x = (base.wrapping_mul(2654435761).wrapping_add(i as u64 * 40503)) % 1000;
            x as f32 / 1000.0 - 0.5
        })
        .collect();
    v[(jitter as usize) % 384] += 0.05 * jitter as f32;
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn python_ci(org: &str, labels: &str) -> Conventions {
    let wf = format!(
        "on: push\njobs:\n  lib:\n    uses: {org}/.github/.github/workflows/python-lib.yml@v2\n    secrets: inherit\n  extra:\n    runs-on: [{labels}]\n    steps:\n      - uses: actions/setup-python@v5\n        with: {{python-version: '3.12'}}\n      - run: pip install nox && nox\n"
    );
    let mut t = RepoTree::from_paths([".github/workflows/ci.yml"]);
    t.insert_content(".github/workflows/ci.yml", wf.as_bytes());
    conventions::extract(&t)
}

struct Org {
    installation: i64,
    repos: HashMap<&'static str, i64>,
}

async fn org(db: &Db, ext: &str, owner: &str, base_id: u64) -> Org {
    let installation = installations::upsert_installation(
        db,
        Forge::Github,
        ext,
        Some(owner),
        InstallationState::Active,
        1,
    )
    .await
    .unwrap();
    let mut repos = HashMap::new();
    for (i, name) in ["py-a", "py-b", "rust-c", "py-new"].iter().enumerate() {
        let id = installations::upsert_repo(
            db,
            Some(installation),
            Forge::Github,
            &Repo {
                id: RepoId((base_id + i as u64).to_string()),
                full_name: format!("{owner}/{name}"),
                default_branch: Some("main".into()),
                private: Some(false),
                archived: Some(false),
                fork: Some(false),
            },
            RepoState::Active,
            1,
        )
        .await
        .unwrap();
        repos.insert(*name, id);
    }
    Org {
        installation,
        repos,
    }
}

/// Records a repository as an analysis would: its vector cached, its conventions stored.
#[allow(clippy::too_many_arguments)]
async fn record(
    s: &Siblings,
    db: &Db,
    o: &Org,
    name: &str,
    language: &str,
    c: &Conventions,
    v: &[f32],
    now: i64,
) {
    let hash = format!("{name}-{}-{}", o.installation, v[0]);
    store::put_embeddings(db, s_model(), &[(hash.clone(), v.to_vec())], now)
        .await
        .unwrap();
    s.record(
        db,
        &NewConventions {
            repository_id: o.repos[name],
            installation_id: o.installation,
            language,
            fingerprint_hash: &hash,
            fingerprint: "files: x",
            has_ci: !c.is_empty(),
            conventions: &serde_json::to_string(c).unwrap(),
        },
        now,
    )
    .await
    .unwrap();
}

fn s_model() -> &'static str {
    "testmodel0000000"
}

async fn isolation(t: TestDb) {
    let db = &t.db;
    let data = tempfile::tempdir().unwrap();
    let s = Siblings::new(s_model(), Some(data.path()));
    let acme = org(db, "1001", "acme", 5000).await;
    let other = org(db, "2002", "other", 6000).await;
    // acme: two Python siblings with the org workflow and runner labels, one Rust repo
    // with other labels. other: identical repositories (same vectors), its own conventions.
    let py = vector(1, 0);
    record(
        &s,
        db,
        &acme,
        "py-a",
        "python",
        &python_ci("acme", "self-hosted, acme-large"),
        &vector(1, 1),
        10,
    )
    .await;
    record(
        &s,
        db,
        &acme,
        "py-b",
        "python",
        &python_ci("acme", "self-hosted, acme-large"),
        &vector(1, 2),
        11,
    )
    .await;
    let mut rust = python_ci("acme", "rust-runner");
    rust.python_versions.clear();
    record(&s, db, &acme, "rust-c", "rust", &rust, &vector(1, 3), 12).await;
    record(
        &s,
        db,
        &other,
        "py-a",
        "python",
        &python_ci("other", "other-runner"),
        &vector(1, 1),
        13,
    )
    .await;
    record(
        &s,
        db,
        &other,
        "py-b",
        "python",
        &python_ci("other", "other-runner"),
        &vector(1, 2),
        14,
    )
    .await;

    let found = s
        .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
        .await
        .unwrap();
    let names: Vec<&str> = found.iter().map(|x| x.full_name.as_str()).collect();
    assert_eq!(names.len(), 2, "{}: {names:?}", t.name);
    assert!(
        names.iter().all(|n| n.starts_with("acme/py-")),
        "{}: same org, same stack: {names:?}",
        t.name
    );
    let adopted = adopt(found, "acme");
    assert_eq!(
        adopted.reusable_workflow.as_ref().unwrap().uses,
        "acme/.github/.github/workflows/python-lib.yml@v2"
    );
    assert_eq!(adopted.runs_on, ["acme-large", "self-hosted"]);
    assert_eq!(adopted.python_versions, ["3.12"]);

    let theirs = adopt(
        s.nearest(db, other.installation, other.repos["py-new"], "python", &py)
            .await
            .unwrap(),
        "other",
    );
    assert_eq!(theirs.runs_on, ["other-runner"], "{}", t.name);
    assert!(theirs
        .siblings
        .iter()
        .all(|x| x.full_name.starts_with("other/")));
    // A repository is never its own sibling; a stack nobody has yields nothing.
    assert!(s
        .nearest(
            db,
            acme.installation,
            acme.repos["py-a"],
            "python",
            &vector(1, 1)
        )
        .await
        .unwrap()
        .iter()
        .all(|x| x.full_name != "acme/py-a"));
    assert!(s
        .nearest(db, acme.installation, acme.repos["py-new"], "go", &py)
        .await
        .unwrap()
        .is_empty());

    // Persisted, then a second replica (its own process state, same data dir or none)
    // sees the same; an uninstall seen by one is honoured by the other.
    s.save_all().unwrap();
    let replica = Siblings::new(s_model(), None);
    assert_eq!(
        replica
            .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
            .await
            .unwrap()
            .len(),
        2
    );
    let from_file = Siblings::new(s_model(), Some(data.path()));
    assert_eq!(
        from_file
            .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
            .await
            .unwrap()
            .len(),
        2
    );

    assert_eq!(s.forget(db, acme.installation).await.unwrap(), 3);
    assert!(
        replica
            .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
            .await
            .unwrap()
            .is_empty(),
        "{}: replica honours the uninstall",
        t.name
    );
    assert!(from_file
        .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
        .await
        .unwrap()
        .is_empty());
    // Reinstalled: nothing of the old installation, nothing of the other one.
    installations::upsert_installation(
        db,
        Forge::Github,
        "1001",
        Some("acme"),
        InstallationState::Active,
        20,
    )
    .await
    .unwrap();
    let fresh = Siblings::new(s_model(), Some(data.path()));
    assert!(fresh
        .nearest(db, acme.installation, acme.repos["py-new"], "python", &py)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        fresh
            .nearest(db, other.installation, other.repos["py-new"], "python", &py)
            .await
            .unwrap()
            .len(),
        2
    );
    let stats = fresh.stats(db).await.unwrap();
    assert_eq!(
        stats.len(),
        1,
        "{}: only the other installation has vectors: {stats:?}",
        t.name
    );
}

#[tokio::test]
async fn one_installation_never_informs_another_sqlite() {
    isolation(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_installation_never_informs_another_postgres() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    isolation(t).await;
}

/// Several workers (replicas with their own indexes) record and search concurrently on
/// PostgreSQL: every replica ends with every repository of its installation, and none of
/// the other installation's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replicas_converge_without_mixing_tenants() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let db = t.db.clone();
    let a = org(&db, "3003", "alpha", 7000).await;
    let b = org(&db, "4004", "beta", 8000).await;
    let replicas: Vec<Arc<Siblings>> = (0..4)
        .map(|_| Arc::new(Siblings::new(s_model(), None)))
        .collect();
    let mut tasks = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let (r, db) = (r.clone(), db.clone());
        let (o, owner) = if i % 2 == 0 {
            (&a, "alpha")
        } else {
            (&b, "beta")
        };
        let o = Org {
            installation: o.installation,
            repos: o.repos.clone(),
        };
        tasks.push(tokio::spawn(async move {
            for (j, name) in ["py-a", "py-b"].iter().enumerate() {
                let c = python_ci(owner, &format!("{owner}-runner"));
                record(
                    &r,
                    &db,
                    &o,
                    name,
                    "python",
                    &c,
                    &vector(7, (i * 2 + j) as u64 + 1),
                    100 + i as i64,
                )
                .await;
                let _ = r
                    .nearest(
                        &db,
                        o.installation,
                        o.repos["py-new"],
                        "python",
                        &vector(7, 0),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for r in &replicas {
        for (o, owner) in [(&a, "alpha"), (&b, "beta")] {
            let found = r
                .nearest(
                    &db,
                    o.installation,
                    o.repos["py-new"],
                    "python",
                    &vector(7, 0),
                )
                .await
                .unwrap();
            assert_eq!(found.len(), 2, "{owner}: {found:?}");
            assert!(found
                .iter()
                .all(|s| s.full_name.starts_with(&format!("{owner}/"))));
        }
    }
}

#[tokio::test]
async fn embeddings_are_cached_by_fingerprint() {
    let Some(m) = model::embedder() else { return };
    for t in TestDb::all().await {
        let l = Arc::new(Learner::with_embedder(m.clone(), None).unwrap());
        let tree = load_local_learned(
            &fixtures("learned").join("dotfiles-plain"),
            &Limits::default(),
        )
        .unwrap();
        let fp = fingerprint(&tree, ".").unwrap();
        let first = l
            .embed_cached(&t.db, std::slice::from_ref(&fp), 5)
            .await
            .unwrap();
        let cached = store::get_embeddings(&t.db, l.model_hash(), &[fp.hash()])
            .await
            .unwrap();
        assert_eq!(cached[&fp.hash()], first[&fp.hash()], "{}", t.name);
        // Another model's cache is not read.
        assert!(store::get_embeddings(&t.db, "othermodel", &[fp.hash()])
            .await
            .unwrap()
            .is_empty());
        let again = l
            .embed_cached(&t.db, &[fp.clone(), fp.clone()], 6)
            .await
            .unwrap();
        assert_eq!(again[&fp.hash()], first[&fp.hash()]);
        assert_eq!(
            store::embedding_counts(&t.db).await.unwrap(),
            [(l.model_hash().to_owned(), 1)]
        );
    }
}

/// The sweeper's purge: a cached vector no repository refers to any more is forgotten
/// once it is older than the retention; vectors still referred to stay, whatever their
/// age, and recent ones stay either way.
#[tokio::test]
async fn unreferenced_embeddings_are_forgotten() {
    for t in TestDb::all().await {
        let db = &t.db;
        let s = Siblings::new(s_model(), None);
        let acme = org(db, "3003", "acme", 7000).await;
        let referenced = vector(3, 0);
        record(
            &s,
            db,
            &acme,
            "py-a",
            "python",
            &python_ci("acme", "x"),
            &referenced,
            10,
        )
        .await;
        store::put_embeddings(db, s_model(), &[("old-orphan".into(), vector(4, 0))], 10)
            .await
            .unwrap();
        store::put_embeddings(db, s_model(), &[("new-orphan".into(), vector(5, 0))], 1_000)
            .await
            .unwrap();
        let removed = store::purge_embeddings(db, 500).await.unwrap();
        assert_eq!(removed, 1, "{}", t.name);
        let hashes = [
            format!("py-a-{}-{}", acme.installation, referenced[0]),
            "old-orphan".to_owned(),
            "new-orphan".to_owned(),
        ];
        let left = store::get_embeddings(db, s_model(), &hashes).await.unwrap();
        assert!(
            left.contains_key(&hashes[0]),
            "{}: the referenced vector stays",
            t.name
        );
        assert!(!left.contains_key("old-orphan"), "{}", t.name);
        assert!(left.contains_key("new-orphan"), "{}", t.name);
    }
}
