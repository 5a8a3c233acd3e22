//! Healing: what to do about a failed first run of a proposal, decided from the failure
//! class (`crate::diagnose`), the plan, and what was already tried. Pure.
//!
//! Rules: at most [`MAX_FIXES`] changes per proposal; a fix is never repeated (its key
//! is the proposal hash plus the class); a transient failure is re-run once; a failure
//! that is the project's own (its tests fail, its lockfile is stale) changes nothing and
//! is explained once, leaving the pull request to people.

use serde::{Deserialize, Serialize};

use super::adjust::{install_steps, Adjustment};
use super::{JobKind, Plan, Role};

/// Changes pipewright makes to one proposal after failed runs.
pub const MAX_FIXES: usize = 2;

/// A classified failure, as healing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class id (`missing-executable`, `lint-findings`, …).
    pub class: String,
    /// What it points at (the tool, the lint, the version, the service).
    pub subject: Option<String>,
}

/// What was already done for this proposal.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Fixes committed so far (for this pull request).
    pub fixes: usize,
    /// Keys of fixes made (proposal hash + class).
    pub fix_keys: Vec<String>,
    /// The changes already made (stored with the repository): a change is never made
    /// twice, even when the plan it would go into has a new hash.
    pub adjustments: Vec<Adjustment>,
    /// A run of this pull request was re-run already.
    pub reran: bool,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Change the plan and push it.
    Commit {
        /// The change.
        adjustment: Adjustment,
        /// Why, in one sentence.
        why: String,
    },
    /// Run the failed jobs again.
    Rerun {
        /// Why.
        why: String,
    },
    /// Change nothing; explain.
    Explain {
        /// What people should know.
        why: String,
    },
}

impl Decision {
    /// The action's name as recorded (`commit`, `rerun`, `explain`).
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Commit { .. } => "commit",
            Decision::Rerun { .. } => "rerun",
            Decision::Explain { .. } => "explain",
        }
    }
}

/// The key of a fix: a fix for this class on this proposal is made at most once.
pub fn fix_key(proposal_hash: &str, class: &str) -> String {
    format!("{proposal_hash}:{class}")
}

fn lint_tools(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for j in plan.jobs().filter(|j| j.kind == JobKind::Project) {
        for s in j.steps.iter().filter(|s| s.role == Role::Lint) {
            for n in &s.needs {
                let name = n.rsplit(':').next().unwrap_or(n);
                let name = name.strip_prefix("cargo-").unwrap_or(name).to_owned();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

fn matrix_versions(plan: &Plan) -> Vec<String> {
    plan.jobs()
        .filter_map(|j| j.toolchain.as_ref())
        .filter_map(|t| t.matrix.as_ref())
        .flat_map(|m| m.values.iter().cloned())
        .collect()
}

/// The executable a "missing" subject names, as the plan's steps call it: Cargo reports
/// `no such command: nextest` for the `cargo-nextest` executable.
fn missing_tool(subject: &str, plan: &Plan) -> String {
    let cargo = format!("cargo-{subject}");
    let needed = |t: &str| {
        plan.jobs()
            .flat_map(|j| j.steps.iter())
            .any(|s| super::adjust::calls(s, t))
    };
    if !needed(subject) && needed(&cargo) {
        cargo
    } else {
        subject.to_owned()
    }
}

/// Does `adjustment` change `plan`? A change that alters nothing is no fix.
fn changes(plan: &Plan, adjustment: &Adjustment) -> bool {
    let mut after = plan.clone();
    super::adjust::apply(&mut after, std::slice::from_ref(adjustment));
    after.workflows != plan.workflows
}

/// Decides what to do about `failure` of the proposal with `proposal_hash`.
pub fn decide(failure: &Failure, plan: &Plan, proposal_hash: &str, history: &History) -> Decision {
    let key = fix_key(proposal_hash, &failure.class);
    let subject = failure.subject.clone().unwrap_or_default();
    let can_fix = history.fixes < MAX_FIXES && !history.fix_keys.contains(&key);
    // A fix is committed only when it is new, allowed and changes the plan.
    let commit = |adjustment: Adjustment, why: String| {
        if history.adjustments.contains(&adjustment) {
            return Decision::Explain {
                why: format!(
                    "pipewright already made this change ({}) and the run still fails; it will not repeat it, the rest is up to people",
                    adjustment.describe()
                ),
            };
        }
        if !can_fix {
            return Decision::Explain {
                why: if history.fixes >= MAX_FIXES {
                    format!(
                        "pipewright already changed this proposal {MAX_FIXES} times; the rest is up to people"
                    )
                } else {
                    "pipewright already tried a fix for this failure on this proposal; it will not repeat it".to_owned()
                },
            };
        }
        if !changes(plan, &adjustment) {
            return Decision::Explain {
                why: format!(
                    "pipewright would {}, but no job of the proposal would change; the failure needs a person",
                    adjustment.describe()
                ),
            };
        }
        Decision::Commit { adjustment, why }
    };
    match failure.class.as_str() {
        "missing-executable" => {
            let tool = missing_tool(&subject, plan);
            if tool.is_empty() || install_steps(&tool, None, None).is_none() {
                return Decision::Explain {
                    why: format!(
                        "a step calls `{}`, which pipewright does not know how to install; add its installation to the workflow (or to `.pipewright.yml` `extra-steps`)",
                        if tool.is_empty() { "a tool" } else { &tool }
                    ),
                };
            }
            commit(
                Adjustment::InstallTool { tool: tool.clone() },
                format!("a step calls `{tool}`, which nothing installed"),
            )
        }
        "lint-findings" => {
            let tools = lint_tools(plan);
            let tool = tools
                .iter()
                .find(|t| !subject.is_empty() && (subject.contains(t.as_str()) || t.contains(&subject)))
                .cloned()
                .or_else(|| (tools.len() == 1).then(|| tools[0].clone()));
            match tool {
                Some(t) => commit(
                    Adjustment::LintNonBlocking { tool: t.clone() },
                    format!(
                        "`{t}` reports findings in code this pull request did not touch; it now reports without failing the job (`/pipewright add strict-lint` makes lints gate again)"
                    ),
                ),
                None => Decision::Explain {
                    why: "a lint or format check failed on code this pull request did not touch".to_owned(),
                },
            }
        }
        "toolchain-unsupported" => {
            let versions = matrix_versions(plan);
            let drop = versions
                .iter()
                .find(|v| !subject.is_empty() && (subject == **v || subject.starts_with(&format!("{v}."))))
                .cloned();
            match drop {
                Some(v) => commit(
                    Adjustment::DropVersion { version: v.clone() },
                    format!("the project cannot run on version {v}; it leaves the test matrix"),
                ),
                None => Decision::Explain {
                    why: format!(
                        "a toolchain version is not supported{}; declare the versions the project supports (requires-python, engines, rust-version) and pipewright follows them",
                        if subject.is_empty() { String::new() } else { format!(" ({subject})") }
                    ),
                },
            }
        }
        "service-unreachable" => {
            let svc = ["postgres", "redis", "mysql", "mariadb", "mongo", "rabbitmq", "memcached"]
                .into_iter()
                .find(|s| subject.contains(s))
                .or_else(|| match subject.rsplit(':').next() {
                    Some("5432") => Some("postgres"),
                    Some("6379") => Some("redis"),
                    Some("3306") => Some("mysql"),
                    Some("27017") => Some("mongo"),
                    Some("5672") => Some("rabbitmq"),
                    Some("11211") => Some("memcached"),
                    _ => None,
                });
            let has = |name: &str| plan.jobs().any(|j| j.services.iter().any(|s| s.name == name));
            match svc {
                Some(s) if has(s) => Decision::Explain {
                    why: format!("the tests could not reach {s} although the job starts it: check the connection settings the tests expect (host, port, credentials)"),
                },
                Some(s) => commit(
                    Adjustment::AddService { name: s.to_owned() },
                    format!("the tests connect to {s}, which the job did not start"),
                ),
                None => Decision::Explain {
                    why: "the tests need a service pipewright could not identify".to_owned(),
                },
            }
        }
        "transient" if !history.reran => Decision::Rerun {
            why: "the failure looks transient (network, registry or runner)".to_owned(),
        },
        "transient" => Decision::Explain {
            why: "the failure looked transient, but it happened again after a re-run".to_owned(),
        },
        "lockfile-mismatch" => Decision::Explain {
            why: "the lockfile does not match the manifest: update it (`npm install`, `uv lock`, `cargo update -w`, …) and commit it; CI installs exactly what it pins".to_owned(),
        },
        "tests-failing" => Decision::Explain {
            why: "the project's own tests fail on CI; pipewright changed nothing. The log lines below show where; environment differences (time zone, locale, missing services) are common causes".to_owned(),
        },
        "timeout-oom" => Decision::Explain {
            why: "a job ran out of time or memory".to_owned(),
        },
        _ => Decision::Explain {
            why: "pipewright could not tell why the run failed".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::analyze;
    use crate::analyze::RepoTree;
    use crate::generate::Target;

    fn plan_for(files: &[(&str, &str)]) -> Plan {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            t.insert_content(p, c.as_bytes());
        }
        super::super::build(&analyze(&t), &Target::github())
    }

    fn fail(class: &str, subject: &str) -> Failure {
        Failure {
            class: class.to_owned(),
            subject: (!subject.is_empty()).then(|| subject.to_owned()),
        }
    }

    #[test]
    fn a_missing_known_tool_is_installed_once() {
        let plan = plan_for(&[
            (
                "pyproject.toml",
                "[project]\nname = \"x\"\nversion = \"0.1.0\"\nrequires-python = \">=3.12\"\n\n[dependency-groups]\ndev = [\"pytest>=8\", \"ruff>=0.6\"]\n\n[tool.ruff]\nline-length = 100\n",
            ),
            ("uv.lock", "version = 1\n"),
        ]);
        let d = decide(
            &fail("missing-executable", "ruff"),
            &plan,
            "h1",
            &History::default(),
        );
        assert!(
            matches!(d, Decision::Commit { adjustment: Adjustment::InstallTool { ref tool }, .. } if tool == "ruff"),
            "{d:?}"
        );
        let again = History {
            fixes: 1,
            fix_keys: vec![fix_key("h1", "missing-executable")],
            ..History::default()
        };
        assert_eq!(
            decide(&fail("missing-executable", "ruff"), &plan, "h1", &again).action(),
            "explain"
        );
        // The same change made before (under another proposal hash) is not made again.
        let made = History {
            fixes: 1,
            adjustments: vec![Adjustment::InstallTool {
                tool: "ruff".into(),
            }],
            ..History::default()
        };
        assert_eq!(
            decide(&fail("missing-executable", "ruff"), &plan, "h2", &made).action(),
            "explain"
        );
        let unknown = decide(
            &fail("missing-executable", "frobnicate"),
            &plan,
            "h1",
            &History::default(),
        );
        assert_eq!(unknown.action(), "explain");
        // A known tool that no step of the plan calls: installing it would change
        // nothing, so it is no fix.
        let d = decide(
            &fail("missing-executable", "just"),
            &plan,
            "h1",
            &History::default(),
        );
        assert!(
            matches!(&d, Decision::Explain { why } if why.contains("no job of the proposal would change")),
            "{d:?}"
        );
    }

    #[test]
    fn lint_findings_make_that_lint_non_blocking() {
        let plan = plan_for(&[("Cargo.toml", "[package]\nname='x'\nversion='0.1.0'\n")]);
        let d = decide(
            &fail("lint-findings", "clippy"),
            &plan,
            "h",
            &History::default(),
        );
        assert!(
            matches!(d, Decision::Commit { adjustment: Adjustment::LintNonBlocking { ref tool }, .. } if tool == "clippy"),
            "{d:?}"
        );
    }

    #[test]
    fn the_projects_own_failures_change_nothing_and_fixes_stop_at_two() {
        let plan = plan_for(&[("Cargo.toml", "[package]\nname='x'\nversion='0.1.0'\n")]);
        assert_eq!(
            decide(&fail("tests-failing", ""), &plan, "h", &History::default()).action(),
            "explain"
        );
        assert_eq!(
            decide(
                &fail("lockfile-mismatch", ""),
                &plan,
                "h",
                &History::default()
            )
            .action(),
            "explain"
        );
        let two = History {
            fixes: 2,
            ..History::default()
        };
        assert_eq!(
            decide(&fail("missing-executable", "just"), &plan, "h", &two).action(),
            "explain"
        );
        assert_eq!(
            decide(&fail("transient", ""), &plan, "h", &History::default()).action(),
            "rerun"
        );
        let reran = History {
            reran: true,
            ..History::default()
        };
        assert_eq!(
            decide(&fail("transient", ""), &plan, "h", &reran).action(),
            "explain"
        );
    }

    #[test]
    fn an_unsupported_matrix_version_leaves_the_matrix() {
        let plan = plan_for(&[(
            "pyproject.toml",
            "[project]\nname='x'\nversion='1'\nrequires-python='>=3.11'\ndependencies=['pytest']\n",
        )]);
        let d = decide(
            &fail("toolchain-unsupported", "3.11"),
            &plan,
            "h",
            &History::default(),
        );
        assert!(
            matches!(d, Decision::Commit { adjustment: Adjustment::DropVersion { ref version }, .. } if version == "3.11"),
            "{d:?}"
        );
    }
}
