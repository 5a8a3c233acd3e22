//! Adjustments: changes to a plan that its first CI run taught (healing) or that
//! people asked for. They are data — stored with the repository's proposal and applied
//! on every regeneration — so a healed plan stays healed when the repository changes.
//! Also the table of how to install a tool on each kind of CI machine
//! ([`install_steps`]), shared by detection's tool installs and healing.

use serde::{Deserialize, Serialize};

use super::toolchain::{Toolchain, ToolchainKind};
use super::{Action, Job, JobKind, Plan, Role, Step, Where};

/// One change to a plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Adjustment {
    /// Install a tool a step calls that nothing installed.
    InstallTool {
        /// The executable.
        tool: String,
    },
    /// A lint the code does not pass today reports without failing the job.
    LintNonBlocking {
        /// The lint tool (`clippy`, `ruff`, `eslint`, …) as it appears in the command.
        tool: String,
    },
    /// A toolchain version the project cannot build with leaves the matrix.
    DropVersion {
        /// The matrix value.
        version: String,
    },
    /// An environment variable every project job sets (`TZ=UTC`).
    Env {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// A service container the tests need.
    AddService {
        /// Service name (`postgres`, `redis`, …).
        name: String,
    },
}

impl Adjustment {
    /// A short description for comments and `explain`.
    pub fn describe(&self) -> String {
        match self {
            Adjustment::InstallTool { tool } => format!("install `{tool}` before it is used"),
            Adjustment::LintNonBlocking { tool } => {
                format!("run `{tool}` without failing the job (the code does not pass it today)")
            }
            Adjustment::DropVersion { version } => {
                format!("drop version {version} from the test matrix")
            }
            Adjustment::Env { name, value } => format!("set `{name}={value}` in the jobs"),
            Adjustment::AddService { name } => format!("start a `{name}` service for the tests"),
        }
    }
}

/// Steps that install `tool` (at `spec`, a requirement such as `ruff==0.4.4`, when
/// the project pins it) on a machine with toolchain `tc`; `None` for a tool pipewright
/// does not know how to install. GitHub gets pinned prebuilt binaries where an
/// installer action has them; container images install from their own registries.
pub fn install_steps(tool: &str, spec: Option<&str>, tc: Option<&Toolchain>) -> Option<Vec<Step>> {
    let kind = tc.map(|t| t.kind);
    let uv = tc.is_some_and(|t| t.provides.iter().any(|p| p == "uv"));
    let provides = vec![tool.to_owned()];
    let step = |cmd: String, on: Where| {
        let mut s = Step::new(&format!("Install {tool}"), Role::Tools, Action::Run(cmd));
        s.on = on;
        s.provides = provides.clone();
        s
    };
    let action = |t: &str| {
        let mut s = Step::new(
            &format!("Install {tool}"),
            Role::Tools,
            Action::Uses {
                action: "taiki-e/install-action",
                with: vec![("tool", t.to_owned())],
                raw_with: Vec::new(),
            },
        );
        s.on = Where::Github;
        s.provides = provides.clone();
        s
    };
    const PYTHON_TOOLS: &[&str] = &[
        "tox",
        "nox",
        "ruff",
        "mypy",
        "black",
        "flake8",
        "isort",
        "pylint",
        "pytest",
        "pre-commit",
        "sphinx-build",
        "mkdocs",
        "codespell",
        "yamllint",
        "ansible-lint",
    ];
    const CARGO_TOOLS: &[&str] = &[
        "cargo-nextest",
        "cargo-llvm-cov",
        "cargo-audit",
        "cargo-deny",
        "cargo-hack",
        "cargo-machete",
    ];
    const APT_TOOLS: &[&str] = &["shellcheck", "make", "cmake", "ninja", "jq", "zip", "unzip"];
    if PYTHON_TOOLS.contains(&tool) {
        let pkg = match tool {
            "sphinx-build" => "sphinx",
            t => t,
        };
        let req = crate::generate::render::shell_quote(spec.unwrap_or(pkg));
        if uv {
            // setup-uv puts uv's tool directory on PATH; the images' Python has pip.
            return Some(vec![
                step(format!("uv tool install {req}"), Where::Github),
                step(format!("python -m pip install {req}"), Where::Containers),
            ]);
        }
        return Some(vec![step(
            format!("python -m pip install {req}"),
            Where::All,
        )]);
    }
    if CARGO_TOOLS.contains(&tool) {
        return Some(vec![
            action(tool),
            step(format!("cargo install {tool} --locked"), Where::Containers),
        ]);
    }
    if tool == "just" {
        // just ships on PyPI and npm as `rust-just`, and installs from crates.io.
        let ct = match kind {
            Some(ToolchainKind::Rust) => "cargo install just --locked",
            Some(ToolchainKind::Node) => "npm install --global rust-just",
            _ => "python3 -m pip install rust-just",
        };
        return Some(vec![action("just"), step(ct.to_owned(), Where::Containers)]);
    }
    if APT_TOOLS.contains(&tool) {
        let pkg = match tool {
            "ninja" => "ninja-build",
            t => t,
        };
        return Some(vec![
            step(
                format!("sudo apt-get update && sudo apt-get install -y {pkg}"),
                Where::Github,
            ),
            step(
                format!("apt-get update && apt-get install -y --no-install-recommends {pkg}"),
                Where::Containers,
            ),
        ]);
    }
    None
}

/// Does `step` call the executable `tool`? Also through the project's environment
/// (`venv:tool`, whose runners fall back to `PATH`) or the job's interpreter
/// (`py:tool`, which a `pip install` of the tool provides): an installed `tool` serves
/// those calls too.
pub fn calls(step: &Step, tool: &str) -> bool {
    step.needs.iter().any(|n| {
        n == tool || n.strip_prefix("venv:") == Some(tool) || n.strip_prefix("py:") == Some(tool)
    })
}

/// Does a lint command run `tool`?
fn lint_runs(step: &Step, tool: &str) -> bool {
    step.role == Role::Lint
        && step.command().is_some_and(|c| {
            super::tools::simple_commands(c)
                .iter()
                .flatten()
                .any(|w| w == tool || w.trim_start_matches("cargo-") == tool)
        })
}

fn project_jobs(plan: &mut Plan) -> impl Iterator<Item = &mut Job> {
    plan.workflows
        .iter_mut()
        .flat_map(|w| w.jobs.iter_mut())
        .filter(|j| j.kind == JobKind::Project)
}

/// Applies `adjustments` to `plan`, recording each in the plan's notes.
pub fn apply(plan: &mut Plan, adjustments: &[Adjustment]) {
    for a in adjustments {
        let mut applied = false;
        match a {
            Adjustment::InstallTool { tool } => {
                for job in project_jobs(plan) {
                    let called = job.steps.iter().any(|s| calls(s, tool));
                    if let (true, Some(steps)) =
                        (called, install_steps(tool, None, job.toolchain.as_ref()))
                    {
                        let at = job
                            .steps
                            .iter()
                            .position(|s| s.role != Role::Tools)
                            .unwrap_or(job.steps.len());
                        for (i, s) in steps.into_iter().enumerate() {
                            job.steps.insert(at + i, s);
                        }
                        applied = true;
                    }
                }
            }
            Adjustment::LintNonBlocking { tool } => {
                for job in project_jobs(plan) {
                    for s in job.steps.iter_mut().filter(|s| lint_runs(s, tool)) {
                        s.blocking = false;
                        applied = true;
                    }
                }
            }
            Adjustment::DropVersion { version } => {
                for job in project_jobs(plan) {
                    if let Some(t) = job.toolchain.as_mut() {
                        if let Some(i) = t.versions.iter().position(|v| v == version) {
                            if t.versions.len() > 1 {
                                t.versions.remove(i);
                                if t.images.len() > i {
                                    t.images.remove(i);
                                }
                                if let Some(m) = t.matrix.as_mut() {
                                    m.values.retain(|v| v != version);
                                    if m.values.len() < 2 {
                                        let only = m.values.first().cloned();
                                        let key = m.key;
                                        t.matrix = None;
                                        // The setup steps named the matrix variable.
                                        let expr = format!("${{{{ matrix.{key} }}}}");
                                        if let Some(v) = only {
                                            for s in &mut t.steps {
                                                if let Action::Uses { with, .. } = &mut s.action {
                                                    for (_, val) in with.iter_mut() {
                                                        if *val == expr {
                                                            *val = v.clone();
                                                        }
                                                    }
                                                }
                                                for (_, val) in s.env.iter_mut() {
                                                    if *val == expr {
                                                        *val = v.clone();
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                applied = true;
                            }
                        }
                    }
                }
            }
            Adjustment::Env { name, value } => {
                // Stored data: only a plain variable name reaches a workflow's `env:`.
                let plain = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !plain || value.len() > 200 {
                    continue;
                }
                for job in project_jobs(plan) {
                    if !job.env.iter().any(|(k, _)| k == name) {
                        job.env.push((name.clone(), value.clone()));
                        applied = true;
                    }
                }
            }
            Adjustment::AddService { name } => {
                if let Some(svc) = super::services::service(name) {
                    for job in project_jobs(plan) {
                        let tests = job.steps.iter().any(|s| s.role == Role::Test);
                        if tests && !job.services.iter().any(|s| s.name == svc.name) {
                            job.services.push(svc.clone());
                            applied = true;
                        }
                    }
                }
            }
        }
        if applied {
            plan.notes
                .push(format!("adjusted after a CI run: {}", a.describe()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_round_trip_as_json() {
        let a = vec![
            Adjustment::InstallTool {
                tool: "just".into(),
            },
            Adjustment::Env {
                name: "TZ".into(),
                value: "UTC".into(),
            },
        ];
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(
            j,
            r#"[{"action":"install-tool","tool":"just"},{"action":"env","name":"TZ","value":"UTC"}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Adjustment>>(&j).unwrap(), a);
    }

    #[test]
    fn known_tools_install_everywhere() {
        for t in ["just", "tox", "cargo-nextest", "shellcheck"] {
            let steps = install_steps(t, None, None).unwrap();
            assert!(steps.iter().any(|s| s.on_github()), "{t}");
            assert!(steps.iter().any(|s| s.on_containers()), "{t}");
            assert!(steps.iter().all(|s| s.provides == [t]), "{t}");
        }
        assert!(install_steps("definitely-unknown", None, None).is_none());
    }
}
