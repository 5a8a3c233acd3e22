//! The plan's invariants over every fixture repository, with default features and with
//! every feature on: every executable a step calls is provided (tool provenance, in both
//! the GitHub and the container layout), every step has something to run, ids are
//! unique, and each generator bug class the first-run study found has a fixture whose
//! plan no longer has the bug.

use std::path::Path;

use pipewright::analyze::analyze_path;
use pipewright::generate::{Feature, Target};
use pipewright::plan::{self, tools, Action, Plan, Role};

/// Every fixture repository: the detection fixtures and the ones `try` runs in CI.
fn fixtures() -> Vec<(String, std::path::PathBuf)> {
    let mut v = Vec::new();
    for dir in ["tests/fixtures/repos", "tests/fixtures/try"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        v.extend(std::fs::read_dir(&root).unwrap().map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        }));
    }
    v.sort();
    v
}

fn try_plan_of(name: &str, target: &Target) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/try")
        .join(name);
    plan::build(&analyze_path(&path).unwrap(), target)
}

fn commands(p: &Plan, role: Role) -> Vec<String> {
    p.jobs()
        .flat_map(|j| j.steps.iter())
        .filter(|s| s.role == role)
        .filter_map(|s| s.command().map(str::to_owned))
        .collect()
}

fn all_features() -> Target {
    let mut t = Target::github();
    for f in [Feature::Coverage, Feature::Release, Feature::Security] {
        t.features.set(f, true);
    }
    t
}

fn plan_of(name: &str, target: &Target) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/repos")
        .join(name);
    plan::build(&analyze_path(&path).unwrap(), target)
}

#[test]
fn every_fixture_plan_upholds_the_invariants() {
    for (name, path) in fixtures() {
        let analysis = analyze_path(&path).unwrap();
        for target in [Target::github(), all_features()] {
            let p = plan::build(&analysis, &target);
            let violations = tools::check(&p);
            assert!(
                violations.is_empty(),
                "{name}: {}",
                violations
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(
                !p.notes.iter().any(|n| n.starts_with("warning:")),
                "{name}: an essential step calls an unprovided tool: {:?}",
                p.notes
            );
            let mut ids: Vec<&str> = p.jobs().map(|j| j.id.as_str()).collect();
            let n = ids.len();
            ids.sort_unstable();
            ids.dedup();
            // Workflows are separate files on GitHub; within one workflow ids are unique.
            for w in &p.workflows {
                let mut w_ids: Vec<&str> = w.jobs.iter().map(|j| j.id.as_str()).collect();
                let m = w_ids.len();
                w_ids.sort_unstable();
                w_ids.dedup();
                assert_eq!(m, w_ids.len(), "{name}: duplicate job id in {}", w.file);
            }
            assert!(ids.len() <= n);
            for j in p.jobs() {
                for s in &j.steps {
                    match &s.action {
                        Action::Run(c) => assert!(
                            !c.trim().is_empty(),
                            "{name}: job {} step {} has an empty command",
                            j.id,
                            s.name
                        ),
                        Action::Uses { action, .. } => assert!(!action.is_empty()),
                    }
                }
            }
        }
    }
}

#[test]
fn a_lint_tool_nothing_installs_is_left_out_with_a_note() {
    // python-requirements-flask configures flake8 (setup.cfg) but installs it nowhere.
    let p = plan_of("python-requirements-flask", &Target::github());
    let cmds: Vec<&str> = p
        .jobs()
        .flat_map(|j| j.steps.iter())
        .filter(|s| s.role == Role::Lint)
        .filter_map(|s| s.command())
        .collect();
    assert!(!cmds.iter().any(|c| c.contains("flake8")), "{cmds:?}");
    assert!(cmds.contains(&"black --check ."), "{cmds:?}");
}

#[test]
fn a_task_runner_recipe_the_job_cannot_satisfy_falls_back() {
    // go-gin-make: `make lint` runs golangci-lint, which nothing installs.
    let p = plan_of("go-gin-make", &Target::github());
    let lint: Vec<&str> = p
        .jobs()
        .flat_map(|j| j.steps.iter())
        .filter(|s| s.role == Role::Lint)
        .filter_map(|s| s.command())
        .collect();
    assert_eq!(lint, ["go vet ./..."]);
    assert!(
        p.notes.iter().any(|n| n.contains("golangci-lint")),
        "{:?}",
        p.notes
    );
    // `make test` (go test) is satisfiable and stays.
    assert!(p
        .jobs()
        .flat_map(|j| j.steps.iter())
        .any(|s| s.command() == Some("make test")));
}

#[test]
fn an_msrv_is_a_build_check_not_the_test_matrix() {
    let p = plan_of("rust-axum", &Target::github());
    let jobs: Vec<&plan::Job> = p.jobs().collect();
    let main = jobs.iter().find(|j| j.id == "rust").unwrap();
    assert_eq!(main.toolchain.as_ref().unwrap().versions, ["stable"]);
    let min = jobs.iter().find(|j| j.id == "rust-minimum").unwrap();
    assert_eq!(min.toolchain.as_ref().unwrap().versions, ["1.75"]);
    assert_eq!(min.steps.len(), 1);
    assert_eq!(min.steps[0].command(), Some("cargo check --locked"));
}

#[test]
fn strict_lint_gates_warnings_and_undoes_advisory_lints() {
    let mut t = Target::github();
    t.adjustments = vec![plan::Adjustment::LintNonBlocking {
        tool: "clippy".into(),
    }];
    let relaxed = plan_of("rust-axum", &t);
    let clippy = |p: &Plan| {
        p.jobs()
            .flat_map(|j| j.steps.iter())
            .find(|s| s.command().is_some_and(|c| c.contains("clippy")))
            .cloned()
            .unwrap()
    };
    assert!(
        !clippy(&relaxed).blocking,
        "the first run made clippy advisory"
    );
    assert!(!clippy(&relaxed).command().unwrap().contains("-D warnings"));
    t.features.set(Feature::StrictLint, true);
    let strict = plan_of("rust-axum", &t);
    assert!(clippy(&strict).blocking);
    assert!(clippy(&strict)
        .command()
        .unwrap()
        .ends_with("-- -D warnings"));
}

#[test]
fn stored_env_adjustments_cannot_inject_names() {
    let mut t = Target::github();
    t.adjustments = vec![
        plan::Adjustment::Env {
            name: "TZ".into(),
            value: "UTC".into(),
        },
        plan::Adjustment::Env {
            name: "X: ${{ secrets.A }}\nY".into(),
            value: "1".into(),
        },
    ];
    let p = plan_of("rust-axum", &t);
    let env: Vec<&(String, String)> = p.jobs().flat_map(|j| j.env.iter()).collect();
    assert!(env.iter().any(|(k, v)| k == "TZ" && v == "UTC"));
    assert!(env.iter().all(|(k, _)| k == "TZ"), "{env:?}");
}

// Rules from running the proposals on real public repositories (their own CI removed);
// each has a fixture of ours, green under `try` in CI where it runs code.

#[test]
fn make_variables_in_a_recipe_are_not_programs_and_an_unsatisfiable_lint_is_left_out() {
    // `$(CC) -DX=1 $(CFLAGS) $< -o test/$@` needs the C compiler only; `make lint`
    // calls clang-tidy, which nothing installs: that lint is left out with a note.
    let p = try_plan_of("c-make-recipes", &Target::github());
    assert_eq!(commands(&p, Role::Test), ["make test"]);
    assert!(
        commands(&p, Role::Lint).is_empty(),
        "{:?}",
        commands(&p, Role::Lint)
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("clang-tidy") && n.contains("left out")),
        "{:?}",
        p.notes
    );
    assert!(
        !p.notes.iter().any(|n| n.contains("CFLAGS")),
        "{:?}",
        p.notes
    );
}

#[test]
fn cmake_and_meson_in_one_directory_are_one_c_project_tested_by_its_makefile() {
    let a = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/try/c-cmake-meson-make"),
    )
    .unwrap();
    let projects: Vec<(String, String)> = a
        .projects
        .iter()
        .map(|p| (p.path.clone(), p.language.to_string()))
        .collect();
    // No Meson twin, no C++ from contrib/, no .NET project from Visual Studio files.
    assert_eq!(projects, [(".".to_owned(), "c".to_owned())]);
    let p = try_plan_of("c-cmake-meson-make", &Target::github());
    assert_eq!(commands(&p, Role::Test), ["make test"]);
    assert!(commands(&p, Role::Build)[0].starts_with("cmake -S . -B build"));
}

#[test]
fn a_django_app_installs_its_development_requirements_and_runs_pytest_django() {
    let a = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/try/python-django-requirements-dir"),
    )
    .unwrap();
    // The settings module named setup.py marks no project.
    assert_eq!(a.projects.len(), 1, "{:?}", a.projects);
    let py = &a.projects[0];
    assert_eq!(
        py.commands.install.as_deref(),
        Some("python -m pip install -r requirements/local.txt")
    );
    assert_eq!(py.commands.test.as_deref(), Some("pytest"));
    assert_eq!(py.commands.lint, ["ruff check ."]);
}

#[test]
fn fuzz_crates_are_not_projects_and_a_channel_less_toolchain_file_means_stable() {
    let a = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/repos/rust-fuzz-toolchain-components"),
    )
    .unwrap();
    assert_eq!(a.projects.len(), 1, "{:?}", a.projects);
    assert_eq!(a.projects[0].runtime_versions, ["stable"]);
    let p = plan_of("rust-fuzz-toolchain-components", &Target::github());
    // The MSRV is still checked, in its own job.
    assert!(p.jobs().any(|j| j.id.ends_with("-minimum")));
}

#[test]
fn a_frozen_pre_commit_revision_installs_the_tag_it_names_and_a_bare_commit_nothing() {
    let p = plan_of("python-precommit-frozen", &Target::github());
    let tools = commands(&p, Role::Tools);
    assert!(tools.iter().any(|c| c.contains("ruff==0.6.9")), "{tools:?}");
    assert!(!tools
        .iter()
        .any(|c| c.contains("cb8c523f") || c.contains("3a6eb0fa")));
    let lint = commands(&p, Role::Lint);
    assert!(lint.contains(&"ruff check .".to_owned()), "{lint:?}");
    assert!(!lint.iter().any(|c| c.contains("black")), "{lint:?}");
}

#[test]
fn docs_install_what_read_the_docs_installs() {
    let a = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/python-docs-readthedocs"),
    )
    .unwrap();
    let docs = a.projects.iter().find(|p| p.path == "docs").unwrap();
    assert_eq!(
        docs.commands.install.as_deref(),
        Some("python -m pip install -r reqs.txt -e '..[speedups]'")
    );
}

#[test]
fn helper_folders_of_a_node_package_are_not_projects() {
    let a = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/try/node-bench-helpers"),
    )
    .unwrap();
    let paths: Vec<&str> = a.projects.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["."]);
}

#[test]
fn the_orgs_reusable_workflow_replaces_the_primary_job_on_github_only() {
    use pipewright::analyze::conventions::ReusableCall;
    use pipewright::generate::Provider;
    let call = |uses: &str| ReusableCall {
        uses: uses.to_owned(),
        with: [
            ("toolchain".to_owned(), "stable".to_owned()),
            ("bad key: x".to_owned(), "1".to_owned()),
        ]
        .into(),
        secrets_inherit: true,
        typed: None,
        pinned: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
    };
    // A ref nobody resolved to a commit is not called: the job is written out.
    let mut unpinned = Target::github();
    let mut loose = call("acme/.github/.github/workflows/rust.yml@v2");
    loose.pinned = None;
    unpinned.reusable_workflow = Some(loose);
    let p = plan_of("rust-axum", &unpinned);
    assert!(p.jobs().all(|j| j.reusable.is_none()));
    assert!(
        p.notes.iter().any(|n| n.contains("could not be resolved")),
        "{:?}",
        p.notes
    );
    let mut target = Target::github();
    target.reusable_workflow = Some(call("acme/.github/.github/workflows/rust.yml@v2"));
    let p = plan_of("rust-axum", &target);
    let primary = p.jobs().next().unwrap();
    let adopted = primary.reusable.as_ref().expect("the primary job calls it");
    assert_eq!(adopted.uses, "acme/.github/.github/workflows/rust.yml@v2");
    assert!(adopted.with.contains_key("toolchain") && !adopted.with.contains_key("bad key: x"));
    assert!(!adopted.secrets_inherit, "secrets are not handed over");
    assert!(primary.steps.is_empty() && primary.toolchain.is_none());
    assert!(
        p.jobs().all(|j| !j.id.ends_with("-minimum")),
        "the call replaces the minimum check too"
    );
    assert!(
        p.notes.iter().any(|n| n.contains("rust.yml@v2")),
        "{:?}",
        p.notes
    );
    assert!(tools::check(&p).is_empty());
    let files = pipewright::generate::render_plan(&p, &target).unwrap();
    let wf = &files[0].content;
    assert!(
        wf.contains("    uses: acme/.github/.github/workflows/rust.yml@0123456789abcdef0123456789abcdef01234567 # v2\n    with:\n      toolchain: \"stable\"\n"),
        "{wf}"
    );
    assert!(!wf.contains("runs-on") && !wf.contains("steps:"), "{wf}");

    // Not on the container providers, and never a malformed reference.
    let mut gitlab = target.clone();
    gitlab.provider = Provider::Gitlab;
    assert!(plan_of("rust-axum", &gitlab)
        .jobs()
        .all(|j| j.reusable.is_none()));
    let mut bad = Target::github();
    bad.reusable_workflow = Some(call("acme/x/../../evil.yml@v1"));
    assert!(plan_of("rust-axum", &bad)
        .jobs()
        .all(|j| j.reusable.is_none()));
}
