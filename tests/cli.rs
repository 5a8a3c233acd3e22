//! The `pipewright` binary as an operator uses it: `config check`, `migrate`, `jobs …`,
//! and `serve` end to end (a signed delivery in, the job run by its workers, a graceful
//! SIGTERM stop), on an embedded SQLite file.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn config_check_redacts_secrets_and_rejects_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = pipewright(
        dir.path(),
        &["config", "check"],
        &[
            ("PIPEWRIGHT_GITHUB_WEBHOOK_SECRET", "hunter2,hunter3"),
            (
                "PIPEWRIGHT_DATABASE_URL",
                "postgres://bot:pa55word@db.internal/pw",
            ),
            ("PIPEWRIGHT_GITLAB_TOKEN", "glpat-hunter4"),
            ("PIPEWRIGHT_GITLAB_GROUPS", "acme"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("gitlab_token = [redacted]"), "{text}");
    assert!(text.contains("gitlab_groups = acme"), "{text}");
    assert!(text.contains("prs_per_hour = 20"), "{text}");
    assert!(
        text.contains("github_webhook_secret = [redacted] x2"),
        "{text}"
    );
    assert!(
        text.contains("database_url = postgres://bot:***@db.internal/pw"),
        "{text}"
    );
    assert!(
        text.contains("gitlab_webhook_secret = (not set: endpoint disabled)"),
        "{text}"
    );
    assert!(
        !text.contains("hunter") && !text.contains("pa55word"),
        "{text}"
    );

    let out = pipewright(
        dir.path(),
        &["config", "check"],
        &[("PIPEWRIGHT_WORKERS", "many")],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "pipewright: invalid PIPEWRIGHT_WORKERS: `many` is not a whole number"
    );

    let out = pipewright(
        dir.path(),
        &["config", "check"],
        &[("PIPEWRIGHT_LISTEN", "nowhere")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "pipewright: invalid PIPEWRIGHT_LISTEN: `nowhere` is not an address like 127.0.0.1:8080 \
         (invalid socket address syntax)"
    );
}

#[test]
fn migrate_and_jobs_commands_on_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pw.db").display());
    let env = [("PIPEWRIGHT_DATABASE_URL", db.as_str())];
    let out = pipewright(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pipewright(dir.path(), &["jobs", "list", "--format", "json"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    let out = pipewright(dir.path(), &["jobs", "list"], &env);
    assert!(stdout(&out).contains("(no jobs)"));
    let out = pipewright(dir.path(), &["jobs", "retry", "12"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "pipewright: job 12 does not exist");
    let out = pipewright(dir.path(), &["jobs", "show", "12"], &env);
    assert_eq!(out.status.code(), Some(1));
    let out = pipewright(dir.path(), &["jobs", "list", "--state", "sleeping"], &env);
    assert_eq!(out.status.code(), Some(2));
    let out = pipewright(dir.path(), &["jobs", "purge-dead"], &env);
    assert_eq!(stdout(&out).trim(), "deleted 0 dead job(s)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http(port: u16, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

#[test]
fn serve_accepts_a_signed_delivery_runs_it_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pw.db").display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .current_dir(dir.path())
        .arg("serve")
        .env_clear()
        .env("PIPEWRIGHT_DATABASE_URL", &db)
        .env("PIPEWRIGHT_LISTEN", &listen)
        .env("PIPEWRIGHT_WORKERS", "2")
        .env("PIPEWRIGHT_GITHUB_WEBHOOK_SECRET", "s3cret")
        .env("PIPEWRIGHT_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = http(port, b"GET /readyz HTTP/1.0\r\n\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let body = r#"{"action":"created","installation":{"id":7,"account":{"login":"acme"}},"repositories":[{"id":42,"full_name":"acme/widget","private":false}],"sender":{"login":"alice","id":1,"type":"User"}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let req = format!(
        "POST /webhooks/github HTTP/1.0\r\nContent-Type: application/json\r\nX-GitHub-Event: installation\r\n\
         X-GitHub-Delivery: 0f0e-1\r\nX-Hub-Signature-256: sha256={sig}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = http(port, req.as_bytes()).unwrap();
    assert_eq!(status, 202, "{text}");
    let (status, _) = http(
        port,
        b"POST /webhooks/gitlab HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(status, 404, "gitlab is not configured");

    // The worker runs handle_event, which queues an analysis of the one repository.
    let env = [("PIPEWRIGHT_DATABASE_URL", db.as_str())];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = pipewright(dir.path(), &["jobs", "list", "--format", "json"], &env);
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let states: Vec<(String, String)> = jobs
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|j| {
                        (
                            j["kind"].as_str().unwrap_or("").to_owned(),
                            j["state"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if states.contains(&("handle_event".into(), "succeeded".into()))
            && states.contains(&("analyze_repo".into(), "queued".into()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "jobs never settled: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http(port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"pipewright_webhook_deliveries_total{forge="github",event="installation",outcome="accepted"} 1"#), "{metrics}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(status.success(), "exit {status}: {logs}");
    // JSON logs, one object per line, never a secret.
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{logs}"
    );
    assert!(!logs.contains("s3cret"));
    assert!(
        logs.contains("delivery accepted") && logs.contains("0f0e-1"),
        "{logs}"
    );
}

#[test]
fn generate_honours_the_repository_config_and_reports_a_bad_one_precisely() {
    let repo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/with-pipewright-config");
    // Empty path variables (`PIPEWRIGHT_MODEL_DIR=`, as compose files write to switch a
    // feature off) mean unset, not a missing value.
    let out = pipewright(
        Path::new("."),
        &["generate", repo.to_str().unwrap()],
        &[("PIPEWRIGHT_MODEL_DIR", ""), ("PIPEWRIGHT_DATA_DIR", "")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("# ---- .github/workflows/ci.yml ----")
            && text.contains("cargo audit")
            && text.contains("cargo doc --no-deps"),
        "{text}"
    );
    let out = pipewright(
        Path::new("."),
        &[
            "generate",
            repo.to_str().unwrap(),
            "--without",
            "security",
            "--provider",
            "gitlab",
        ],
        &[],
    );
    assert!(
        out.status.success()
            && !stdout(&out).contains("cargo audit")
            && stdout(&out).contains("# ---- .gitlab-ci.yml ----")
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module x\n\ngo 1.22\n").unwrap();
    std::fs::write(
        dir.path().join(".pipewright.yml"),
        "features:\n  secuirty: true\n",
    )
    .unwrap();
    let out = pipewright(dir.path(), &["generate", "."], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .starts_with("pipewright: .pipewright.yml:2:3: features: unknown field `secuirty`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).is_empty(),
        "nothing is generated from an invalid configuration"
    );
}

#[test]
fn worker_serves_health_and_metrics_when_asked_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pw.db").display());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .current_dir(dir.path())
        .args(["worker", "--health-listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PIPEWRIGHT_DATABASE_URL", &db)
        .env("PIPEWRIGHT_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = http(port, b"GET /readyz HTTP/1.0\r\n\r\n") {
            assert!(body.contains("\r\n\r\nready\n"), "{body}");
            // No model configured: ready, and says it runs on rules alone.
            assert!(
                body.ends_with(
                    "degraded: learned detection off (PIPEWRIGHT_MODEL_DIR is not set); \
                     detecting with rules only\n"
                ),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "worker endpoint did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(port, b"GET /healthz HTTP/1.0\r\n\r\n").unwrap().0, 200);
    let (status, metrics) = http(port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("pipewright_queue_depth"), "{metrics}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// `analyze` lists every CI file with where it runs, and judges `missing` for the forge
/// given with `--forge`, or read from the checkout's `origin` remote.
#[test]
fn analyze_judges_missing_ci_for_the_repositorys_forge() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module x\n\ngo 1.22\n").unwrap();
    std::fs::create_dir_all(dir.path().join(".github/workflows")).unwrap();
    std::fs::write(
        dir.path().join(".github/workflows/ci.yml"),
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: go test ./...\n",
    )
    .unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["analyze", ".", "--format", "json"];
        all.extend_from_slice(args);
        let out = pipewright(dir.path(), &all, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    // Unknown forge: any CI counts.
    let a = json(&[]);
    assert_eq!(a["missing"], serde_json::json!(["cd"]));
    assert!(a.get("forge").is_none());
    assert_eq!(a["existing_ci"][0]["runs_on"], "github");
    // On GitLab the workflow does not run: CI is missing, the file is still listed.
    let a = json(&["--forge", "gitlab"]);
    assert_eq!(a["forge"], "gitlab");
    assert_eq!(a["missing"], serde_json::json!(["ci", "cd"]));
    assert_eq!(a["existing_ci"].as_array().unwrap().len(), 1);
    let a = json(&["--forge", "github"]);
    assert_eq!(a["missing"], serde_json::json!(["cd"]));
    // The forge of a clone, from its origin remote.
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(
        dir.path().join(".git/config"),
        "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@bitbucket.org:acme/app.git\n",
    )
    .unwrap();
    let a = json(&[]);
    assert_eq!(a["forge"], "bitbucket");
    assert_eq!(a["missing"], serde_json::json!(["ci", "cd"]));
    let out = pipewright(dir.path(), &["analyze", "."], &[]);
    assert!(
        stdout(&out).contains("(github; does not run on bitbucket)")
            && stdout(&out).contains("Missing on bitbucket: ci, cd"),
        "{}",
        stdout(&out)
    );
}
