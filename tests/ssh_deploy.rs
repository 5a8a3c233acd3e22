//! The SSH deploy target end to end against a real OpenSSH server on loopback: a
//! throw-away host key and user key, a non-default port, the host key pinned through
//! SSH_KNOWN_HOSTS. The generated `deploy/pipewright/ssh-deploy.sh` runs as the deploy
//! job would: it uploads the release over SSH and runs `remote-deploy.sh` on the "host".
//!
//! There is no Docker engine on this machine. On the host's PATH a small `docker` shim
//! (tests/data/ssh_host/docker) implements the compose subcommands the script uses
//! (`pull`, `up -d`, `down`) by starting and stopping local processes that serve the
//! health endpoint, and a forwarder standing in for the proxy container. SSH, upload,
//! health probes, the switch and the rollback are the real scripts' work.
//!
//! Skipped with a notice when `sshd` is not installed, unless `PIPEWRIGHT_REQUIRE_SSHD=1`
//! (CI installs `openssh-server`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pipewright::deploy::{DeployContext, DeployTarget, Environment, Strategy};

const SSHD: &str = "/usr/sbin/sshd";
/// Seconds a release has to become healthy in the test (production default: 60).
const HEALTH_TIMEOUT_SECS: &str = "4";

struct Host {
    dir: tempfile::TempDir,
    sshd: Child,
    port: u16,
    user: String,
    key_b64: String,
    known_hosts: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        // Stop every "container" the shim started, then sshd.
        let state = self.dir.path().join("state");
        if let Ok(entries) = std::fs::read_dir(&state) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "pid") {
                    if let Ok(pid) = std::fs::read_to_string(e.path()) {
                        // Only a process the shim started: its pid may have been reused by
                        // now (pids wrap at 32768 here), and a process group of someone
                        // else's must never be signalled.
                        let pid = pid.trim();
                        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                            .map(|c| {
                                let c = String::from_utf8_lossy(&c);
                                c.contains("fake_app.py") || c.contains("fake_proxy.py")
                            })
                            .unwrap_or(false);
                        if ours && pid.parse::<u32>().is_ok_and(|p| p > 1) {
                            let _ = Command::new("kill")
                                .args(["-TERM", &format!("-{pid}")])
                                .status();
                        }
                    }
                }
            }
        }
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A base port whose +1 and +2 are free too (the blue and green slots).
fn free_port_triple() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < 65000 && (1..=2).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no three consecutive free ports");
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

fn start_host() -> Option<Host> {
    if !Path::new(SSHD).exists() {
        if std::env::var("PIPEWRIGHT_REQUIRE_SSHD").as_deref() == Ok("1") {
            panic!("PIPEWRIGHT_REQUIRE_SSHD=1 but {SSHD} is not installed");
        }
        eprintln!("skipped: SSH deploy test (apt-get install openssh-server)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let user = String::from_utf8(run(Command::new("id").arg("-un")).stdout)
        .unwrap()
        .trim()
        .to_owned();
    for (name, kind) in [("host_key", "ed25519"), ("user_key", "ed25519")] {
        let out = run(Command::new("ssh-keygen").args([
            "-q",
            "-t",
            kind,
            "-N",
            "",
            "-C",
            "pipewright-test",
            "-f",
            d.join(name).to_str().unwrap(),
        ]));
        assert!(out.status.success(), "{out:?}");
    }
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ssh_host");
    std::fs::create_dir_all(d.join("state")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pubkey = std::fs::read_to_string(d.join("user_key.pub")).unwrap();
    std::fs::write(
        d.join("authorized_keys"),
        format!(
            "environment=\"PATH={path}\",environment=\"PW_SHIM_STATE={}\" {pubkey}",
            d.join("state").display()
        ),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile {ak}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n\
             UsePAM no\nPermitUserEnvironment yes\nAllowUsers {user}\nLogLevel VERBOSE\n",
            hk = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            ak = d.join("authorized_keys").display(),
        ),
    )
    .unwrap();
    // sshd's privilege-separation directory (absent on a fresh machine until the
    // service has run once).
    if !Path::new("/run/sshd").exists() {
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let sshd = Command::new(SSHD)
        .args(["-D", "-e", "-f", d.join("sshd_config").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .spawn()
        .expect("sshd starts");
    // Wait for the port, then pin the host key as an operator would (ssh-keyscan).
    let deadline = Instant::now() + Duration::from_secs(15);
    let known_hosts = loop {
        let out = run(Command::new("ssh-keyscan").args([
            "-p",
            &port.to_string(),
            "-t",
            "ed25519",
            "127.0.0.1",
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("ssh-ed25519") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not come up: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    use base64::Engine as _;
    let key_b64 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(d.join("user_key")).unwrap());
    Some(Host {
        dir,
        sshd,
        port,
        user,
        key_b64,
        known_hosts,
    })
}

/// Writes the generated SSH deploy files into a fresh "repository".
fn repo_with_ssh_files() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let ctx = DeployContext {
        app: "demo".into(),
        port: 8080,
        port_known: true,
        health_path: Some("/healthz".into()),
        region: String::new(),
        strategy: Strategy::Bluegreen,
        environments: vec![Environment::Production],
        dockerfile: "Dockerfile".into(),
        context_dir: ".".into(),
    };
    for f in DeployTarget::Ssh.config_files(&ctx) {
        let p = repo.path().join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f.content).unwrap();
    }
    repo
}

fn deploy(
    host: &Host,
    repo: &Path,
    public_port: u16,
    image: &str,
    release: &str,
    known_hosts: &str,
) -> Output {
    run(Command::new("sh")
        .arg(repo.join("deploy/pipewright/ssh-deploy.sh"))
        .env("SSH_HOST", "127.0.0.1")
        .env("SSH_PORT", host.port.to_string())
        .env("SSH_USER", &host.user)
        .env("SSH_PRIVATE_KEY", &host.key_b64)
        .env("SSH_KNOWN_HOSTS", known_hosts)
        .env("IMAGE", image)
        .env("RELEASE", release)
        .env("APP", "demo")
        .env("APP_PORT", "8080")
        .env("PUBLIC_PORT", public_port.to_string())
        .env("HEALTH_PATH", "/healthz")
        .env("HEALTH_TIMEOUT", HEALTH_TIMEOUT_SECS)
        .env(
            "SSH_DEPLOY_DIR",
            host.dir.path().join("srv/demo").to_str().unwrap(),
        ))
}

fn get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn good_release_switches_bad_release_rolls_back() {
    let Some(host) = start_host() else { return };
    let repo = repo_with_ssh_files();
    let public = free_port_triple();
    std::fs::create_dir_all(host.dir.path().join("srv/demo")).unwrap();
    // Everything the deploy job prints, searched for the private key at the end.
    let mut printed = String::new();

    // First release: nothing ran before; blue starts, passes, the proxy serves it.
    let out = deploy(
        &host,
        repo.path(),
        public,
        "registry.example/demo:v1",
        "r1",
        &host.known_hosts,
    );
    printed.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        get(public).as_deref(),
        Some("release registry.example/demo:v1")
    );

    // Second release starts in green beside blue, passes, the proxy switches, blue stops.
    let out = deploy(
        &host,
        repo.path(),
        public,
        "registry.example/demo:v2",
        "r2",
        &host.known_hosts,
    );
    printed.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("release r2 is live"),
        "{}",
        text(&out)
    );
    assert_eq!(
        get(public).as_deref(),
        Some("release registry.example/demo:v2")
    );
    assert_eq!(get(public + 1), None, "the old (blue) slot is stopped");
    assert_eq!(
        get(public + 2).as_deref(),
        Some("release registry.example/demo:v2")
    );

    // Third release fails its health check in blue: it is stopped, the proxy never
    // switches, v2 keeps serving, and the job fails.
    let out = deploy(
        &host,
        repo.path(),
        public,
        "registry.example/demo:v3-bad",
        "r3",
        &host.known_hosts,
    );
    printed.push_str(&text(&out));
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed its health check on /healthz; rolling back"),
        "{}",
        text(&out)
    );
    assert_eq!(
        get(public).as_deref(),
        Some("release registry.example/demo:v2")
    );
    assert_eq!(get(public + 1), None, "the failed release is stopped");
    let srv = host.dir.path().join("srv/demo");
    assert_eq!(
        std::fs::read_to_string(srv.join("active_slot"))
            .unwrap()
            .trim(),
        "green"
    );
    assert_eq!(
        std::fs::read_to_string(srv.join("current_release"))
            .unwrap()
            .trim(),
        "r2"
    );

    // An image that cannot be pulled changes nothing either.
    let out = deploy(
        &host,
        repo.path(),
        public,
        "registry.example/missing:v4",
        "r4",
        &host.known_hosts,
    );
    printed.push_str(&text(&out));
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        get(public).as_deref(),
        Some("release registry.example/demo:v2")
    );

    // A host whose key does not match the pinned one is refused before anything runs.
    let other = tempfile::tempdir().unwrap();
    run(Command::new("ssh-keygen").args([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        other.path().join("k").to_str().unwrap(),
    ]));
    let wrong = format!(
        "[127.0.0.1]:{} {}",
        host.port,
        std::fs::read_to_string(other.path().join("k.pub"))
            .unwrap()
            .trim()
    );
    let calls_before = std::fs::read_to_string(host.dir.path().join("state/calls.log")).unwrap();
    let out = deploy(
        &host,
        repo.path(),
        public,
        "registry.example/demo:v5",
        "r5",
        &wrong,
    );
    printed.push_str(&text(&out));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(host.dir.path().join("state/calls.log")).unwrap(),
        calls_before
    );
    assert!(!srv.join("releases/r5").exists());

    // Hostile input never reaches the remote shell.
    let out = deploy(
        &host,
        repo.path(),
        public,
        "x:1'; touch /tmp/pwned; '",
        "r6",
        &host.known_hosts,
    );
    printed.push_str(&text(&out));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("IMAGE is not valid"),
        "{}",
        text(&out)
    );
    // The private key never appears in what the job printed.
    let key = std::fs::read_to_string(host.dir.path().join("user_key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(
        !printed.contains(&host.key_b64[..40]) && !printed.contains(key_body),
        "{printed}"
    );
}

/// The deploy job as each forge's file has it — its script and environment read back from
/// the rendered YAML, the image it runs named the way the forge names it — runs against
/// the host: the release the publish job pushed goes live. Only the test's own bindings
/// are replaced (the host's port, its deploy folder, the public port, the secrets' values
/// that the forge would inject).
#[test]
fn the_rendered_deploy_job_of_every_forge_deploys() {
    use pipewright::generate::{render_plan, Provider, Target};
    use yaml_rust2::{Yaml, YamlLoader};

    let Some(host) = start_host() else { return };
    let tree = pipewright::analyze::tree::RepoTree::from_paths(["Dockerfile"]);
    let analysis = pipewright::analyze::analyze(&tree);
    let mut settings = pipewright::deploy::DeploySettings::new(DeployTarget::Ssh);
    settings.environments = vec![Environment::Staging];
    settings.health_path = Some("/healthz".into());
    let delivery =
        pipewright::deploy::prepare(&analysis, tree.files(), "Acme/Demo", &[settings]).unwrap();
    let repo = tempfile::tempdir().unwrap();
    for f in &delivery.files {
        let p = repo.path().join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &f.content).unwrap();
    }
    let secrets = [
        ("SSH_HOST", "127.0.0.1".to_owned()),
        ("SSH_PORT", host.port.to_string()),
        ("SSH_USER", host.user.clone()),
        ("SSH_PRIVATE_KEY", host.key_b64.clone()),
        ("SSH_KNOWN_HOSTS", host.known_hosts.clone()),
    ];
    let s = |y: &Yaml| y.as_str().unwrap_or("").to_owned();
    for (i, provider) in [Provider::Github, Provider::Gitlab, Provider::Bitbucket]
        .into_iter()
        .enumerate()
    {
        let target = Target {
            provider,
            deploy: delivery.contexts.clone(),
            ..Target::github()
        };
        let plan = pipewright::plan::build(&analysis, &target);
        let files = render_plan(&plan, &target).unwrap();
        let public = free_port_triple();
        let dir = host.dir.path().join(format!("srv/{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sha = format!("c0ffee{i}");
        // What the test binds: the host's deploy folder, a free public port, a short
        // health timeout.
        let bind = [
            ("SSH_DEPLOY_DIR", dir.to_str().unwrap().to_owned()),
            ("PUBLIC_PORT", public.to_string()),
            ("HEALTH_TIMEOUT", HEALTH_TIMEOUT_SECS.to_owned()),
        ];
        let bound = |k: &str| bind.iter().any(|(b, _)| *b == k);
        let mut cmd = Command::new("bash");
        cmd.current_dir(repo.path());
        for (k, v) in secrets.iter().chain(&bind) {
            cmd.env(k, v);
        }
        let (script, expected_image) = match provider {
            Provider::Github => {
                let ci = files
                    .iter()
                    .find(|f| f.path == ".github/workflows/ci.yml")
                    .unwrap();
                let doc = YamlLoader::load_from_str(&ci.content).unwrap().remove(0);
                let step = doc["jobs"]["deploy-ssh-staging"]["steps"].as_vec().unwrap()[1].clone();
                for (k, v) in step["env"].as_hash().unwrap() {
                    let (k, v) = (s(k), s(v));
                    if v.starts_with("${{ secrets.") || bound(&k) {
                        continue; // the secret's value (set above) or the test's binding
                    }
                    cmd.env(
                        &k,
                        if v == "${{ github.sha }}" {
                            sha.clone()
                        } else {
                            v
                        },
                    );
                }
                cmd.env("GITHUB_REPOSITORY", "Acme/Demo");
                (s(&step["run"]), format!("ghcr.io/acme/demo:{sha}"))
            }
            Provider::Gitlab => {
                let f = files.iter().find(|f| f.path == ".gitlab-ci.yml").unwrap();
                let doc = YamlLoader::load_from_str(&f.content).unwrap().remove(0);
                let job = &doc["deploy-ssh-staging"];
                // GitLab expands `$VAR` in variables as the shell does.
                let mut lines = vec!["set -e".to_owned()];
                for (k, v) in job["variables"].as_hash().unwrap() {
                    if !bound(&s(k)) {
                        lines.push(format!("export {}=\"{}\"", s(k), s(v)));
                    }
                }
                lines.extend(job["script"].as_vec().unwrap().iter().map(s));
                cmd.env("CI_REGISTRY_IMAGE", "registry.gitlab.com/acme/demo");
                cmd.env("CI_COMMIT_SHA", &sha);
                (
                    lines.join("\n"),
                    format!("registry.gitlab.com/acme/demo:{sha}"),
                )
            }
            Provider::Bitbucket => {
                let f = files
                    .iter()
                    .find(|f| f.path == "bitbucket-pipelines.yml")
                    .unwrap();
                let doc = YamlLoader::load_from_str(&f.content).unwrap().remove(0);
                let step = doc["pipelines"]["branches"]["main"]
                    .as_vec()
                    .unwrap()
                    .iter()
                    .find(|i| s(&i["step"]["deployment"]) == "staging")
                    .unwrap()["step"]
                    .clone();
                let mut lines = vec!["set -e".to_owned()];
                lines.extend(step["script"].as_vec().unwrap().iter().map(s).filter(|l| {
                    !bind
                        .iter()
                        .any(|(b, _)| l.starts_with(&format!("export {b}=")))
                }));
                cmd.env("DOCKER_IMAGE", "docker.io/acme/demo");
                cmd.env("BITBUCKET_COMMIT", &sha);
                (lines.join("\n"), format!("docker.io/acme/demo:{sha}"))
            }
        };
        let out = run(cmd.arg("-c").arg(&script));
        assert!(
            out.status.success(),
            "{provider:?}\n{script}\n{}",
            text(&out)
        );
        assert_eq!(
            get(public).as_deref(),
            Some(format!("release {expected_image}").as_str()),
            "{provider:?}"
        );
    }
}
