//! Stack detection over the fixture repositories (one snapshot each), plus generated
//! hostile trees: a symlink loop, a symlink out of the root, a 50,000-file tree, and
//! arbitrary bytes as every kind of manifest.

use std::path::{Path, PathBuf};

use pipewright::analyze::{self, analyze, analyze_path, load_local, render_text, Limits, RepoTree};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_fixture_matches_its_snapshot() {
    let names = fixture_names();
    assert!(names.len() >= 40, "fixtures went missing: {names:?}");
    for name in names {
        let mut a =
            analyze_path(&fixtures_dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for p in &mut a.projects {
            p.reasons.clear();
        }
        insta::assert_json_snapshot!(name, a);
    }
}

#[test]
fn explain_names_the_rule_and_file_behind_each_conclusion() {
    let a = analyze_path(&fixtures_dir().join("node-pnpm-turbo-workspace")).unwrap();
    insta::assert_snapshot!("explain__node-pnpm-turbo-workspace", render_text(&a, true));
    let text = render_text(
        &analyze_path(&fixtures_dir().join("python-uv-fastapi")).unwrap(),
        false,
    );
    insta::assert_snapshot!("text__python-uv-fastapi", text);
}

fn project_paths(a: &analyze::Analysis) -> Vec<(String, String)> {
    a.projects
        .iter()
        .map(|p| (p.path.clone(), p.language.to_string()))
        .collect()
}

#[test]
fn key_conclusions() {
    let get = |n: &str| analyze_path(&fixtures_dir().join(n)).unwrap();
    // Workspaces are one project; independent sub-projects are each listed.
    assert_eq!(
        project_paths(&get("rust-workspace-nextest")),
        [(".".into(), "rust".into())]
    );
    assert_eq!(
        project_paths(&get("node-pnpm-turbo-workspace")),
        [(".".into(), "typescript".into())]
    );
    assert_eq!(
        project_paths(&get("monorepo-backend-frontend")),
        [
            ("backend".into(), "python".into()),
            ("frontend".into(), "javascript".into())
        ]
    );
    assert_eq!(
        project_paths(&get("kotlin-gradle-multiproject")),
        [(".".into(), "kotlin".into())]
    );
    // Task runners win over guessed commands.
    let go = get("go-gin-make");
    assert_eq!(go.projects[0].commands.test.as_deref(), Some("make test"));
    // Existing CI: present → not missing; CD recognised.
    assert_eq!(get("with-github-ci").missing, ["cd"]);
    assert!(get("with-gitlab-ci-and-cd").missing.is_empty());
    // Nothing inside vendor/, node_modules/ or .gitignored dirs counts.
    assert_eq!(
        project_paths(&get("vendored-and-ignored")),
        [(".".into(), "go".into())]
    );
    // Malformed manifests: warnings, best-effort, no panic.
    let broken = get("malformed-manifests");
    assert!(broken.warnings.len() >= 3, "{:?}", broken.warnings);
    let empty = get("empty");
    assert!(empty.projects.is_empty() && empty.missing == ["ci"]);
}

#[cfg(unix)]
#[test]
fn symlinks_are_never_followed_and_loops_do_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("go.mod"), "module x\n\ngo 1.22\n").unwrap();
    // A loop, and a link out of the root to a directory holding a manifest.
    std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("package.json"),
        "{\"dependencies\": {\"react\": \"1\"}}",
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("package.json"), root.join("package.json")).unwrap();
    let a = analyze_path(&root).unwrap();
    assert_eq!(project_paths(&a), [(".".into(), "go".into())]);
    assert!(
        a.warnings.iter().any(|w| w.contains("symbolic link")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn a_50000_file_tree_is_bounded_and_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"big\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    for i in 0..500 {
        let d = root.join(format!("src/m{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for j in 0..100 {
            std::fs::write(d.join(format!("f{j}.rs")), "").unwrap();
        }
    }
    let tree = load_local(root, &Limits::default()).unwrap();
    assert_eq!(tree.files().len(), 50_001);
    assert_eq!(tree.files_read(), 1);
    let a = analyze(&tree);
    assert_eq!(project_paths(&a), [(".".into(), "rust".into())]);
    // With a lower cap the listing stops and says so.
    let capped = load_local(
        root,
        &Limits {
            max_files: 1_000,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(capped.files().len(), 1_000);
    assert!(capped
        .warnings()
        .iter()
        .any(|w| w.contains("listing stopped at 1000 files")));
}

const MANIFESTS: &[&str] = &[
    "Cargo.toml",
    "rust-toolchain.toml",
    "package.json",
    "pnpm-workspace.yaml",
    ".nvmrc",
    "deno.json",
    "pyproject.toml",
    "requirements.txt",
    "setup.cfg",
    "tox.ini",
    "Pipfile",
    ".python-version",
    "go.mod",
    "go.work",
    "pom.xml",
    "build.gradle.kts",
    "settings.gradle",
    "Gemfile",
    "composer.json",
    "App.csproj",
    "global.json",
    "mix.exs",
    "CMakeLists.txt",
    "meson.build",
    "Package.swift",
    "pubspec.yaml",
    "build.zig.zon",
    "stack.yaml",
    "build.sbt",
    "docker-compose.yml",
    ".github/workflows/ci.yml",
    ".gitlab-ci.yml",
    "Makefile",
    "justfile",
    ".tool-versions",
    "mkdocs.yml",
    "Chart.yaml",
    "main.tf",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_bytes_as_any_manifest_never_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        text in "[\\[\\]{}:,\"'=<>/ a-z0-9\\n-]{0,400}",
        i in 0..MANIFESTS.len(),
    ) {
        for content in [bytes.as_slice(), text.as_bytes()] {
            let name = MANIFESTS[i];
            let mut tree = RepoTree::from_paths([name, "sub/Cargo.toml", "x.c"]);
            tree.insert_content(name, content);
            let _ = analyze(&tree);
        }
    }
}
