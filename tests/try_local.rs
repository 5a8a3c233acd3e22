//! `pipewright try` on failing fixtures: each runs for real with this machine's
//! toolchains (Node and Python), fails, and is classified as the failure class its
//! directory names (`tests/fixtures/try-fail/<class>[-variant]/`). The green fixtures
//! (`tests/fixtures/try/`) run in `.ci/run`, where every job must pass.

use std::path::Path;

use pipewright::analyze::analyze_path;
use pipewright::generate::Target;
use pipewright::plan::{self, local};

fn has(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn failing_fixtures_fail_with_their_class() {
    if !has("node") || !has("npm") || !has("python3") {
        assert!(
            std::env::var_os("PIPEWRIGHT_REQUIRE_SHARED").is_none(),
            "node, npm and python3 are required in CI"
        );
        eprintln!("skipped: node, npm or python3 missing");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/try-fail");
    let cache = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let class = [
            "missing-executable",
            "lint-findings",
            "toolchain-unsupported",
            "lockfile-mismatch",
            "service-unreachable",
            "tests-failing",
            "transient",
            "timeout-oom",
        ]
        .into_iter()
        .find(|c| name.starts_with(c))
        .unwrap_or_else(|| panic!("{name}: name it after its class"));
        let path = root.join(&name);
        let analysis = analyze_path(&path).unwrap();
        let p = plan::build(&analysis, &Target::github());
        let work = tempfile::tempdir().unwrap();
        let opts = local::Options {
            job: None,
            interactive: false,
            cache_dir: cache.path().to_path_buf(),
            work_dir: work.path().to_path_buf(),
        };
        let mut out = Vec::new();
        let report = local::run(&p, &path, &opts, &mut out).unwrap();
        assert_eq!(
            report.exit_code(),
            1,
            "{name}: {}",
            local::render_table(&report)
        );
        let failed: Vec<_> = report
            .jobs
            .iter()
            .flat_map(|j| j.steps.iter())
            .filter(|s| s.outcome == local::Outcome::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{name}: one failing step stops its job");
        assert_eq!(
            failed[0].class.as_deref(),
            Some(class),
            "{name}: {}",
            local::render_table(&report)
        );
        assert!(
            !failed[0].tail.is_empty(),
            "{name}: the failure shows its output"
        );
        // Steps after the failure did not run.
        let job = &report.jobs[0];
        let at = job
            .steps
            .iter()
            .position(|s| s.outcome == local::Outcome::Failed)
            .unwrap();
        assert!(job.steps[at + 1..]
            .iter()
            .all(|s| s.outcome == local::Outcome::NotRun));
    }
}

#[test]
fn a_job_needing_a_service_this_machine_lacks_is_skipped_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"x","version":"1.0.0","scripts":{"test":"node -e 0"}}"#,
    )
    .unwrap();
    // memcached on 11211: not running on CI machines or here.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  cache:\n    image: memcached:1.6\n",
    )
    .unwrap();
    if !has("node") {
        return;
    }
    let analysis = analyze_path(dir.path()).unwrap();
    let p = plan::build(&analysis, &Target::github());
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let opts = local::Options {
        job: None,
        interactive: false,
        cache_dir: cache.path().to_path_buf(),
        work_dir: work.path().to_path_buf(),
    };
    let mut out = Vec::new();
    let report = local::run(&p, dir.path(), &opts, &mut out).unwrap();
    let test = report.jobs[0]
        .steps
        .iter()
        .find(|s| s.role == "test")
        .unwrap();
    assert_eq!(test.outcome, local::Outcome::Skipped);
    assert!(test.reason.as_deref().unwrap().contains("memcached"));
    assert_eq!(report.exit_code(), 3, "skipped is not passed");
}
