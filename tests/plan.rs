//! The plan's invariants over every fixture repository, with default features and with
//! every feature on: every executable a step calls is provided (tool provenance, in both
//! the GitHub and the container layout), every step has something to run, ids are
//! unique, and each generator bug class the first-run study found has a fixture whose
//! plan no longer has the bug.

use std::path::Path;

use pipewright::analyze::analyze_path;
use pipewright::generate::{Feature, Target};
use pipewright::plan::{self, tools, Action, Plan, Role};

fn fixtures() -> Vec<(String, std::path::PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    v.sort();
    v
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
