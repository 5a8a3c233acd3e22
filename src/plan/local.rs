//! `pipewright try`: runs a plan's CI jobs on this machine, step by step, with the
//! local toolchains — what a person runs before installing the bot, and what our tests
//! run. Each job gets a fresh copy of the checkout (tracked and unignored files, as a CI
//! checkout would have), the matrix cell nearest to what is installed, and its tools
//! provisioned into a private directory (never the user's global environment). A job
//! stops at its first failing step; failures are classified with the same classifier
//! the bot uses on CI logs (`crate::diagnose`).
//!
//! Not here: the bot never runs repository code. Only a person's own checkout (or a
//! test fixture) goes through this module.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::toolchain::ToolchainKind;
use super::{Action, Job, JobKind, Plan, Role};
use crate::diagnose::{self, LogFormat};

/// Bytes of a step's output kept in memory (the tail; the full log is on disk).
const KEPT_OUTPUT_BYTES: usize = 256 * 1024;
/// Lines of output shown for a failed step.
const FAILURE_TAIL_LINES: usize = 20;
/// Environment variables a job never inherits from the person running `try`.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTUP_TOOLCHAIN",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "CONDA_PREFIX",
    "PIP_REQUIRE_VIRTUALENV",
    "UV_PROJECT_ENVIRONMENT",
    "NODE_PATH",
    "NODE_OPTIONS",
    "GOFLAGS",
];
/// How often a running step's progress line is redrawn.
const TICK: Duration = Duration::from_millis(120);

/// How a step or job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and succeeded.
    Passed,
    /// It ran and failed.
    Failed,
    /// Failed, but the plan marks it non-blocking.
    FailedNonBlocking,
    /// Not run, with a reason (a service or toolchain this machine lacks).
    Skipped,
    /// Only meaningful on CI (an upload); not run, and not counted against the job.
    CiOnly,
    /// Not reached: an earlier step failed.
    NotRun,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::FailedNonBlocking => "failed (non-blocking)",
            Outcome::Skipped => "skipped",
            Outcome::CiOnly => "CI only",
            Outcome::NotRun => "not run",
        }
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// Its role.
    pub role: &'static str,
    /// The command run (or the action mapped).
    pub command: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Why it was skipped, or what the local mapping did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure class (`diagnose`), for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// What the classifier pointed at (the missing tool, the lint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The last lines of output, for a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

/// One job's result.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Job id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The matrix cell chosen (`python 3.11`), and why.
    pub cell: String,
    /// How the job ended: passed, failed or skipped.
    pub outcome: Outcome,
    /// Why a job was skipped as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its steps.
    pub steps: Vec<StepReport>,
    /// Where its full logs are.
    pub log_dir: String,
}

/// What `try` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every job run (or skipped).
    pub jobs: Vec<JobReport>,
    /// The plan's notes (lints left out, …).
    pub notes: Vec<String>,
}

impl Report {
    /// 0: every job passed; 1: some job failed; 3: none failed, some were skipped.
    pub fn exit_code(&self) -> i32 {
        if self.jobs.iter().any(|j| j.outcome == Outcome::Failed) {
            1
        } else if self.jobs.iter().any(|j| j.outcome == Outcome::Skipped) {
            3
        } else {
            0
        }
    }
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only jobs whose id (or name) contains this.
    pub job: Option<String>,
    /// Draw live progress (a terminal); else plain lines.
    pub interactive: bool,
    /// Where tools are provisioned and reused between runs.
    pub cache_dir: PathBuf,
    /// Where checkouts and logs go (kept for inspection).
    pub work_dir: PathBuf,
}

/// Default cache directory: `$XDG_CACHE_HOME/pipewright/try` or `~/.cache/…`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pipewright")
        .join("try")
}

/// Progress output: a redrawn line on a terminal, plain lines otherwise.
struct Progress<'a> {
    out: &'a mut dyn Write,
    interactive: bool,
}

impl Progress<'_> {
    fn line(&mut self, s: &str) {
        if self.interactive {
            let _ = write!(self.out, "\r\x1b[2K");
        }
        let _ = writeln!(self.out, "{s}");
        let _ = self.out.flush();
    }

    fn tick(&mut self, name: &str, started: Instant, frame: usize) {
        if self.interactive {
            const SPIN: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let _ = write!(
                self.out,
                "\r\x1b[2K  {} {name}  {:.1}s",
                SPIN[frame % SPIN.len()],
                started.elapsed().as_secs_f64()
            );
            let _ = self.out.flush();
        }
    }
}

/// Runs `plan`'s CI jobs on the checkout at `root`.
pub fn run(
    plan: &Plan,
    root: &Path,
    opts: &Options,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.cache_dir)?;
    std::fs::create_dir_all(&opts.work_dir)?;
    let mut progress = Progress {
        out,
        interactive: opts.interactive,
    };
    let mut jobs = Vec::new();
    for job in plan.ci_workflows().flat_map(|w| w.jobs.iter()) {
        if let Some(f) = &opts.job {
            if !job.id.contains(f.as_str()) && !job.name.contains(f.as_str()) {
                continue;
            }
        }
        jobs.push(run_job(job, root, opts, &mut progress)?);
    }
    Ok(Report {
        jobs,
        notes: plan.notes.clone(),
    })
}

/// A job's private machine: its checkout, bin directory and environment.
struct Machine {
    checkout: PathBuf,
    bin: PathBuf,
    logs: PathBuf,
    path: String,
    env: Vec<(String, String)>,
}

impl Machine {
    fn command(&self, cmd: &str, dir: &Path) -> Command {
        let mut c = Command::new("bash");
        // GitHub's `run:` shell: bash with errexit and pipefail, no profile.
        c.args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
            .arg(format!("exec 2>&1\n{cmd}"))
            .current_dir(dir)
            .env("PATH", &self.path)
            .env("CI", "true")
            .stdin(Stdio::null());
        // A CI machine has none of these: they would point builds at this user's
        // environment (a shared target dir, an activated venv) instead of the job's own.
        for var in SCRUBBED_ENV {
            c.env_remove(var);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Finds `exe` on this machine's PATH.
    fn which(&self, exe: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path)
            .map(|d| d.join(exe))
            .find(|p| p.is_file())
    }

    /// Runs a short command and returns its output (for version probes).
    fn probe(&self, cmd: &str) -> Option<String> {
        let o = self
            .command(cmd, &self.checkout)
            .stdout(Stdio::piped())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }
}

/// Copies the files a CI checkout would have (tracked or not ignored, no `.git`).
fn copy_checkout(root: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let walk = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walk {
        let entry = entry?;
        let rel = entry.path().strip_prefix(root)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(rel);
        let ft = entry.file_type();
        if ft.is_some_and(|t| t.is_dir()) {
            std::fs::create_dir_all(&target)?;
        } else if ft.is_some_and(|t| t.is_symlink()) {
            // Symlinks inside the checkout are recreated, never followed out of it.
            let link = std::fs::read_link(entry.path())?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(&link, &target).ok();
        } else if ft.is_some_and(|t| t.is_file()) {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// `3.11.7` / `v20.20.2` / `rustc 1.95.0 (…)` → the first `N` or `N.M` found.
fn version_in(text: &str, parts: usize) -> Option<String> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let v: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    Some(v.split('.').take(parts).collect::<Vec<_>>().join("."))
}

fn numeric(v: &str) -> Option<Vec<u32>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// The matrix value nearest to `local` (exact first; else the closest number).
fn nearest(values: &[String], local: &str) -> Option<String> {
    if let Some(v) = values.iter().find(|v| *v == local) {
        return Some(v.clone());
    }
    let l = numeric(local)?;
    values
        .iter()
        .filter_map(|v| numeric(v).map(|n| (v, n)))
        .min_by_key(|(_, n)| {
            let a = n.first().copied().unwrap_or(0) as i64 * 1000
                + n.get(1).copied().unwrap_or(0) as i64;
            let b = l.first().copied().unwrap_or(0) as i64 * 1000
                + l.get(1).copied().unwrap_or(0) as i64;
            (a - b).abs()
        })
        .map(|(v, _)| v.clone())
}

/// A venv of its own in the cache with `pkg` installed (as pipx would: one tool's
/// dependencies never meet another's); its `exe` is linked into `bin`.
fn provision_python_tool(m: &Machine, cache: &Path, pkg: &str, exe: &str) -> Result<(), String> {
    let venv = cache.join("tools").join(super::slug(pkg));
    let py = venv.join("bin").join("python");
    if !py.is_file() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("cannot run python3 to make a tools venv: {e}"))?;
        if !status.success() {
            return Err("python3 -m venv failed".to_owned());
        }
    }
    let exe_path = venv.join("bin").join(exe);
    if !exe_path.is_file() {
        let o = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", pkg])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "pip install {pkg} failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
    }
    link(&exe_path, &m.bin.join(exe))
}

fn link(from: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(to);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(from, to).map_err(|e| e.to_string())
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Node `version` from the npm registry's `node` package, cached.
fn provision_node(cache: &Path, version: &str) -> Result<PathBuf, String> {
    let dir = cache.join(format!("node-{version}"));
    let bin = dir.join("node_modules").join("node").join("bin");
    if bin.join("node").is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let o = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!("node@{version}"))
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !o.status.success() || !bin.join("node").is_file() {
        return Err(format!(
            "npm could not fetch node@{version}: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(bin)
}

/// The `packageManager` pin (`pnpm@9.15.9`) of the job's project or the repository root.
fn pinned_package_manager(job: &Job, m: &Machine) -> String {
    let dirs = [m.checkout.join(&job.dir), m.checkout.clone()];
    dirs.iter()
        .filter_map(|d| std::fs::read_to_string(d.join("package.json")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .find_map(|v| v.get("packageManager")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// pnpm or yarn at the pinned version, installed from the npm registry into the cache
/// (npm checks each tarball's integrity). CI gets them through corepack instead.
fn provision_package_manager(cache: &Path, pm: &str, pin: &str) -> Result<PathBuf, String> {
    let version = pin
        .strip_prefix(&format!("{pm}@"))
        .map(|v| v.split('+').next().unwrap_or(v).to_owned())
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or_else(|| "latest".to_owned());
    let major = version
        .split('.')
        .next()
        .unwrap_or("")
        .parse::<u32>()
        .unwrap_or(0);
    // Yarn 2+ is published as @yarnpkg/cli-dist; Yarn 1 and pnpm under their names.
    let package = if pm == "yarn" && major >= 2 {
        format!("@yarnpkg/cli-dist@{version}")
    } else {
        format!("{pm}@{version}")
    };
    let dir = cache.join(format!("{pm}-{version}"));
    let bin = dir.join("node_modules").join(".bin");
    if bin.join(pm).is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let o = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&dir)
        .arg(&package)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !o.status.success() || !bin.join(pm).is_file() {
        return Err(format!(
            "npm could not install {package}: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(bin)
}

/// Sets up the job's toolchain locally; `Err(reason)` skips the job.
fn provision(job: &Job, m: &mut Machine, cache: &Path) -> Result<String, String> {
    let Some(tc) = &job.toolchain else {
        return Ok("no toolchain".to_owned());
    };
    let values: Vec<String> = tc.versions.clone();
    let need_tool = |t: &str| tc.provides.iter().any(|p| p == t);
    let cell = match tc.kind {
        ToolchainKind::Python => {
            // The interpreter: python3.X for a matrix value if installed, else python3.
            let mut chosen = None;
            for v in values.iter().rev() {
                if Command::new(format!("python{v}"))
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
                {
                    chosen = Some((format!("python{v}"), v.clone()));
                    break;
                }
            }
            let (exe, version) = match chosen {
                Some(c) => c,
                None => {
                    let local = m
                        .probe("python3 --version")
                        .and_then(|v| version_in(&v, 2))
                        .ok_or("no python3 on this machine")?;
                    if !values.is_empty() && !values.contains(&local) {
                        return Err(format!(
                            "the job runs Python {}; this machine has {local}",
                            values.join(", ")
                        ));
                    }
                    ("python3".to_owned(), local)
                }
            };
            // A fresh interpreter environment, as setup-python gives a fresh interpreter.
            let venv = m.logs.parent().unwrap_or(&m.logs).join("python");
            let st = Command::new(&exe)
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .map_err(|e| format!("cannot make a venv with {exe}: {e}"))?;
            if !st.success() {
                return Err(format!("{exe} -m venv failed"));
            }
            m.path = format!("{}:{}", venv.join("bin").display(), m.path);
            for pm in ["uv", "poetry", "pdm", "pipenv", "hatch"] {
                if need_tool(pm) && m.which(pm).is_none() {
                    // The same package spec the CI step installs (`pdm[locked]`).
                    let spec = super::toolchain::pip_spec_of(pm).trim_matches('\'');
                    provision_python_tool(m, cache, spec, pm)?;
                }
            }
            if need_tool("uv") {
                link(&m.bin.join("uv"), &m.bin.join("uvx")).ok();
                // uv tools (`uv tool install`) go to the job, not the user's home.
                m.env.push((
                    "UV_TOOL_DIR".into(),
                    m.bin.join("uv-tools").display().to_string(),
                ));
                m.env
                    .push(("UV_TOOL_BIN_DIR".into(), m.bin.display().to_string()));
                m.env.push((
                    "UV_PYTHON".into(),
                    venv.join("bin").join("python").display().to_string(),
                ));
            }
            format!("python {version}")
        }
        ToolchainKind::Node => {
            let local = m
                .probe("node --version")
                .and_then(|v| version_in(&v, 1))
                .ok_or("no node on this machine")?;
            // `lts/*` (the default when the project declares nothing) is the newest LTS
            // line on CI, whatever this machine has: a local older Node would fail
            // packages that need the current LTS, and pass ones that do not run on it.
            let newest_lts = crate::analyze::rules::node::NODE_LTS
                .iter()
                .max()
                .map(|v| v.to_string())
                .unwrap_or_else(|| local.clone());
            let want = if values.is_empty()
                || values
                    .iter()
                    .any(|v| v.starts_with("lts") || v == "node" || v == "latest")
            {
                newest_lts
            } else {
                nearest(&values, &local).unwrap_or(local.clone())
            };
            if want != local {
                let bin = provision_node(cache, &want)?;
                m.path = format!("{}:{}", bin.display(), m.path);
            }
            for pm in ["pnpm", "yarn"] {
                if need_tool(pm) && m.which(pm).is_none() {
                    let bin =
                        provision_package_manager(cache, pm, &pinned_package_manager(job, m))?;
                    m.path = format!("{}:{}", bin.display(), m.path);
                }
            }
            if want == local {
                format!("node {want} (local)")
            } else {
                format!("node {want} (from the npm registry; local is {local})")
            }
        }
        ToolchainKind::Rust => {
            let v = values
                .first()
                .cloned()
                .unwrap_or_else(|| "stable".to_owned());
            let local = m
                .probe("rustc --version")
                .and_then(|v| version_in(&v, 3))
                .ok_or("no Rust toolchain on this machine")?;
            if v != "stable" && !local.starts_with(&v) {
                let have = m
                    .probe("rustup toolchain list")
                    .is_some_and(|l| l.lines().any(|t| t.starts_with(&v)));
                if !have {
                    return Err(format!("the job runs Rust {v}; this machine has {local}"));
                }
                m.env.push(("RUSTUP_TOOLCHAIN".into(), v.clone()));
            }
            for (tool, probe, component) in [
                ("cargo-clippy", "cargo clippy --version", "clippy"),
                ("cargo-fmt", "cargo fmt --version", "rustfmt"),
            ] {
                if need_tool(tool) && m.probe(probe).is_none() {
                    m.probe(&format!("rustup component add {component}"));
                    if m.probe(probe).is_none() {
                        return Err(format!("the Rust component {component} is not installed"));
                    }
                }
            }
            format!("rust {v} (local {local})")
        }
        _ => {
            // Other toolchains: what the job needs must already be on this machine.
            let missing: Vec<&String> = tc
                .provides
                .iter()
                .filter(|p| !p.contains(':') && m.which(p).is_none())
                .collect();
            let essential = tc.provides.first();
            if essential.is_some_and(|e| missing.contains(&e)) {
                return Err(format!(
                    "{} is not installed on this machine",
                    essential.map(String::as_str).unwrap_or("the toolchain")
                ));
            }
            format!("{:?} (local)", tc.kind).to_lowercase()
        }
    };
    Ok(cell)
}

/// How `try` runs a GitHub action locally, or why it does not.
enum Mapped {
    /// Ensure a tool (install-action): provision it.
    Tool(String),
    /// Meaningful only on CI (uploads, caches, Docker builds without an engine).
    CiOnly(&'static str),
}

fn map_action(action: &str, with: &[(&'static str, String)]) -> Mapped {
    match action {
        "taiki-e/install-action" => Mapped::Tool(
            with.iter()
                .find(|(k, _)| *k == "tool")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        ),
        "codecov/codecov-action" => Mapped::CiOnly("uploads coverage to Codecov"),
        "Swatinem/rust-cache" => Mapped::CiOnly("a CI cache"),
        _ => Mapped::CiOnly("a GitHub action with no local equivalent"),
    }
}

fn provision_tool(tool: &str, m: &Machine, cache: &Path) -> Result<(), String> {
    if m.which(tool).is_some() {
        return Ok(());
    }
    match tool {
        "just" => provision_python_tool(m, cache, "rust-just", "just"),
        t if t.starts_with("cargo-") => {
            let root = cache.join("cargo-tools");
            let bin = root.join("bin").join(t);
            if !bin.is_file() {
                let o = Command::new("cargo")
                    .args(["install", "--locked", "--root"])
                    .arg(&root)
                    .arg(t)
                    .output()
                    .map_err(|e| e.to_string())?;
                if !o.status.success() {
                    return Err(format!("cargo install {t} failed"));
                }
            }
            link(&bin, &m.bin.join(t))
        }
        other => provision_python_tool(m, cache, other, other),
    }
}

/// Is `port` on loopback accepting connections?
fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// A step's output: the tail in memory, everything in the log file.
struct Captured {
    tail: Vec<u8>,
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn execute(
    m: &Machine,
    cmd: &str,
    dir: &Path,
    env: &[(String, String)],
    log: &Path,
    timeout: Duration,
    progress: &mut Progress,
    name: &str,
) -> anyhow::Result<(bool, Captured, f64, bool)> {
    let started = Instant::now();
    let mut c = m.command(cmd, dir);
    for (k, v) in env {
        c.env(k, v);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a timeout stops everything it started.
        c.process_group(0);
    }
    let mut child = c.stdout(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut file = std::fs::File::create(log)?;
    let reader = {
        let buf = Arc::clone(&buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = file.write_all(&chunk[..n]);
                        let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                        b.extend_from_slice(&chunk[..n]);
                        if b.len() > KEPT_OUTPUT_BYTES * 2 {
                            let cut = b.len() - KEPT_OUTPUT_BYTES;
                            b.drain(..cut);
                        }
                    }
                }
            }
        })
    };
    let mut frame = 0;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            break child.wait()?;
        }
        progress.tick(name, started, frame);
        frame += 1;
        std::thread::sleep(TICK);
    };
    let _ = reader.join();
    let tail = std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()));
    let mut tail = tail;
    if timed_out {
        tail.extend_from_slice(
            format!(
                "\n##[error]The job running on this machine has exceeded the maximum execution time of {} minutes.\n",
                timeout.as_secs() / 60
            )
            .as_bytes(),
        );
    }
    Ok((
        status.success() && !timed_out,
        Captured { tail },
        started.elapsed().as_secs_f64(),
        timed_out,
    ))
}

fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(300).collect())
        .collect()
}

fn run_job(
    job: &Job,
    root: &Path,
    opts: &Options,
    progress: &mut Progress,
) -> anyhow::Result<JobReport> {
    let job_dir = opts.work_dir.join(&job.id);
    let _ = std::fs::remove_dir_all(&job_dir);
    let checkout = job_dir.join("checkout");
    let logs = job_dir.join("logs");
    let bin = job_dir.join("bin");
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&bin)?;
    copy_checkout(root, &checkout)?;
    let mut m = Machine {
        checkout: checkout.clone(),
        bin: bin.clone(),
        logs: logs.clone(),
        path: format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
        ),
        env: job.env.clone(),
    };
    let mut report = JobReport {
        id: job.id.clone(),
        name: job.name.clone(),
        cell: String::new(),
        outcome: Outcome::Passed,
        reason: None,
        steps: Vec::new(),
        log_dir: logs.display().to_string(),
    };
    progress.line(&format!("job {} — {}", job.id, job.name));
    if job.kind == JobKind::DockerBuild
        && !Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        report.outcome = Outcome::Skipped;
        report.reason = Some("no Docker engine on this machine".to_owned());
        progress.line("  skipped: no Docker engine on this machine");
        return Ok(report);
    }
    match provision(job, &mut m, &opts.cache_dir) {
        Ok(cell) => {
            progress.line(&format!("  on {cell}"));
            report.cell = cell;
        }
        Err(reason) => {
            progress.line(&format!("  skipped: {reason}"));
            report.outcome = Outcome::Skipped;
            report.reason = Some(reason);
            return Ok(report);
        }
    }
    let missing_services: Vec<&str> = job
        .services
        .iter()
        .filter(|s| !reachable(s.port))
        .map(|s| s.name)
        .collect();
    let dir = if job.dir == "." {
        checkout.clone()
    } else {
        checkout.join(&job.dir)
    };
    let timeout = Duration::from_secs(u64::from(job.timeout_minutes) * 60);
    let mut failed = false;
    for (i, step) in job.steps.iter().filter(|s| s.on_github()).enumerate() {
        let mut r = StepReport {
            name: step.name.clone(),
            role: step.role.as_str(),
            command: String::new(),
            outcome: Outcome::Passed,
            seconds: 0.0,
            reason: None,
            class: None,
            subject: None,
            tail: Vec::new(),
        };
        if failed {
            r.outcome = Outcome::NotRun;
            r.command = step.command().unwrap_or_default().to_owned();
            report.steps.push(r);
            continue;
        }
        match &step.action {
            Action::Uses { action, with, .. } => {
                r.command = format!("uses {action}");
                match map_action(action, with) {
                    Mapped::Tool(t) => {
                        let started = Instant::now();
                        match provision_tool(&t, &m, &opts.cache_dir) {
                            Ok(()) => r.reason = Some(format!("provided {t} locally")),
                            Err(e) => {
                                r.outcome = Outcome::Failed;
                                r.class = Some("missing-executable".to_owned());
                                r.subject = Some(t.clone());
                                r.tail = vec![e];
                            }
                        }
                        r.seconds = started.elapsed().as_secs_f64();
                    }
                    Mapped::CiOnly(why) => {
                        r.outcome = Outcome::CiOnly;
                        r.reason = Some(why.to_owned());
                    }
                }
            }
            Action::Run(cmd) => {
                r.command = cmd.clone();
                if step.role == Role::Toolchain {
                    r.outcome = Outcome::CiOnly;
                    r.reason = Some("the toolchain was provided locally".to_owned());
                } else if step.role == Role::Publish {
                    r.outcome = Outcome::CiOnly;
                    r.reason = Some("publishing runs only on CI".to_owned());
                } else if cmd.contains("sudo apt-get") {
                    // A runner package install: check what it provides instead.
                    let missing: Vec<&String> = step
                        .provides
                        .iter()
                        .filter(|t| m.which(t).is_none())
                        .collect();
                    if missing.is_empty() {
                        r.outcome = Outcome::CiOnly;
                        r.reason = Some("already installed here".to_owned());
                    } else {
                        r.outcome = Outcome::Skipped;
                        r.reason = Some(format!(
                            "needs {} from the system's packages",
                            missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                } else if step.role == Role::Test && !missing_services.is_empty() {
                    r.outcome = Outcome::Skipped;
                    r.reason = Some(format!(
                        "needs {} on 127.0.0.1, not reachable",
                        missing_services.join(", ")
                    ));
                } else {
                    let env: Vec<(String, String)> = step
                        .env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect();
                    let log = logs.join(format!("{:02}-{}.log", i + 1, super::slug(&step.name)));
                    let (ok, captured, secs, _timed_out) =
                        execute(&m, cmd, &dir, &env, &log, timeout, progress, &step.name)?;
                    r.seconds = secs;
                    if !ok {
                        let text = diagnose::normalise(&captured.tail, LogFormat::Plain);
                        let d = diagnose::classify(&text);
                        r.class = Some(d.class.id().to_owned());
                        r.subject = d.subject.clone();
                        r.tail = last_lines(&text, FAILURE_TAIL_LINES);
                        r.outcome = if step.blocking {
                            Outcome::Failed
                        } else {
                            Outcome::FailedNonBlocking
                        };
                    }
                }
            }
        }
        let mark = match r.outcome {
            Outcome::Passed => "✓",
            Outcome::Failed => "✗",
            Outcome::FailedNonBlocking => "!",
            Outcome::Skipped => "-",
            Outcome::CiOnly | Outcome::NotRun => "·",
        };
        let extra = r
            .reason
            .as_deref()
            .map(|x| format!(" ({x})"))
            .or_else(|| r.class.as_deref().map(|c| format!(" [{c}]")))
            .unwrap_or_default();
        progress.line(&format!(
            "  {mark} {:<28} {:>7.1}s  {}{extra}",
            r.name,
            r.seconds,
            r.outcome.word()
        ));
        match r.outcome {
            Outcome::Failed => {
                failed = true;
                report.outcome = Outcome::Failed;
            }
            Outcome::Skipped if report.outcome == Outcome::Passed => {
                report.outcome = Outcome::Skipped;
                report.reason = r.reason.clone();
            }
            _ => {}
        }
        report.steps.push(r);
    }
    Ok(report)
}

/// The closing table: job, step, outcome, seconds; for a failure its class and the
/// last lines of its output.
pub fn render_table(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<22} {:<30} {:<22} {:>8}",
        "job", "step", "outcome", "seconds"
    );
    for j in &report.jobs {
        if j.steps.is_empty() {
            let _ = writeln!(
                s,
                "{:<22} {:<30} {:<22} {:>8}  {}",
                j.id,
                "-",
                j.outcome.word(),
                "",
                j.reason.as_deref().unwrap_or("")
            );
        }
        for st in &j.steps {
            let _ = writeln!(
                s,
                "{:<22} {:<30} {:<22} {:>8.1}",
                j.id,
                st.name.chars().take(30).collect::<String>(),
                st.outcome.word(),
                st.seconds
            );
            if matches!(st.outcome, Outcome::Failed | Outcome::FailedNonBlocking) {
                let _ = writeln!(
                    s,
                    "    class: {}{}",
                    st.class.as_deref().unwrap_or("unknown"),
                    st.subject
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                );
                let _ = writeln!(s, "    command: {}", st.command);
                for l in &st.tail {
                    let _ = writeln!(s, "    | {l}");
                }
            }
        }
    }
    for n in &report.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let passed = report
        .jobs
        .iter()
        .filter(|j| j.outcome == Outcome::Passed)
        .count();
    let _ = writeln!(
        s,
        "\n{passed} of {} job(s) passed{}",
        report.jobs.len(),
        match report.exit_code() {
            0 => "".to_owned(),
            1 => "; some failed".to_owned(),
            _ => "; some were skipped (not verified here)".to_owned(),
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_cell() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            nearest(&v(&["3.11", "3.12"]), "3.12").as_deref(),
            Some("3.12")
        );
        assert_eq!(nearest(&v(&["22", "24"]), "20").as_deref(), Some("22"));
        assert_eq!(
            nearest(&v(&["3.12", "3.13"]), "3.11").as_deref(),
            Some("3.12")
        );
        assert_eq!(nearest(&v(&["lts/*"]), "20"), None);
    }

    #[test]
    fn versions_are_read_from_tool_banners() {
        assert_eq!(version_in("Python 3.11.7", 2).as_deref(), Some("3.11"));
        assert_eq!(version_in("v20.20.2", 1).as_deref(), Some("20"));
        assert_eq!(
            version_in("rustc 1.95.0 (59807616e 2026-04-14)", 3).as_deref(),
            Some("1.95.0")
        );
    }

    #[test]
    fn checkout_copy_respects_gitignore() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::create_dir_all(src.path().join("target")).unwrap();
        std::fs::write(src.path().join("target/x"), "x").unwrap();
        std::fs::write(src.path().join("a.log"), "x").unwrap();
        std::fs::create_dir_all(src.path().join("src")).unwrap();
        std::fs::write(src.path().join("src/main.rs"), "fn main() {}").unwrap();
        let dst = tempfile::tempdir().unwrap();
        copy_checkout(src.path(), dst.path()).unwrap();
        assert!(dst.path().join("src/main.rs").is_file());
        assert!(dst.path().join(".gitignore").is_file());
        assert!(!dst.path().join("target").exists());
        assert!(!dst.path().join("a.log").exists());
    }
}
