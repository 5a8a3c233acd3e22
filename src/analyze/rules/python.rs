//! Python: pip (requirements files), poetry, uv, pdm, hatch, pipenv, setuptools; pytest,
//! unittest, tox, nox; ruff, flake8, black, mypy when configured; the Python versions
//! from .python-version, requires-python, classifiers or tox envs; Django, Flask, FastAPI.

use std::collections::BTreeSet;

use super::{frameworks_from, rule, versions_in_range, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(
    MANIFEST,
    "python/manifest",
    "pyproject.toml, setup.py, setup.cfg, requirements*.txt or Pipfile marks a Python project"
);
rule!(
    PACKAGE_MANAGER,
    "python/package-manager",
    "a lockfile or [tool.*] table names the package manager"
);
rule!(
    TEST_RUNNER,
    "python/test-runner",
    "tox, nox or pytest configuration names how tests run"
);
rule!(
    LINTER,
    "python/linter",
    "ruff, black, flake8 or mypy is configured"
);
rule!(
    VERSION,
    "python/version",
    ".python-version, requires-python, classifiers or tox envs declare Python versions"
);
rule!(
    FRAMEWORK,
    "python/framework",
    "a dependency names a web framework"
);
pub(crate) static RULES: &[&Rule] = &[
    &MANIFEST,
    &PACKAGE_MANAGER,
    &TEST_RUNNER,
    &LINTER,
    &VERSION,
    &FRAMEWORK,
];

/// Python release lines still maintained (a declared range is tested on these).
const PYTHON_LINES: &[&str] = &["3.10", "3.11", "3.12", "3.13", "3.14"];

const FRAMEWORKS: &[(&str, Framework)] = &[
    ("django", Framework::Django),
    ("flask", Framework::Flask),
    ("fastapi", Framework::Fastapi),
];

const MARKERS: &[&str] = &[
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements.txt",
    "Pipfile",
];

pub(crate) static ECOSYSTEM: Ecosystem = Ecosystem {
    name: "python",
    markers: MARKERS,
    marker_suffixes: &[],
    reads: &[
        "pyproject.toml",
        "setup.cfg",
        "requirements.txt",
        "requirements-dev.txt",
        "requirements_dev.txt",
        "dev-requirements.txt",
        "requirements-test.txt",
        "test-requirements.txt",
        "requirements/dev.txt",
        "requirements/test.txt",
        "Pipfile",
        "tox.ini",
        ".python-version",
        ".flake8",
    ],
    // A docs site's requirements.txt (mkdocs, sphinx) is that site's, not a Python project.
    is_root: |c| {
        let docs_only = (c.has("mkdocs.yml") || c.has("mkdocs.yaml") || c.has("conf.py"))
            && !["pyproject.toml", "setup.py", "setup.cfg", "Pipfile"]
                .iter()
                .any(|m| c.has(m));
        !docs_only && MARKERS.iter().any(|m| c.has(m))
    },
    detect,
    members: |c| {
        c.toml("pyproject.toml")
            .and_then(|t| {
                let m = t
                    .get("tool")?
                    .get("uv")?
                    .get("workspace")?
                    .get("members")?
                    .as_array()?
                    .clone();
                Some(
                    m.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                )
            })
            .unwrap_or_default()
    },
};

/// Requirement names from a requirements file (`Django>=4` → `django`).
fn requirement_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('-'))
        .map(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .filter(|n| !n.is_empty())
}

fn names_of(values: Option<&toml::Value>, into: &mut BTreeSet<String>) {
    match values {
        Some(toml::Value::Array(a)) => {
            for v in a.iter().filter_map(|v| v.as_str()) {
                into.extend(requirement_names(v));
            }
        }
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                if let toml::Value::Array(_) = v {
                    names_of(Some(v), into); // optional-dependencies / dependency-groups
                } else {
                    into.insert(k.to_ascii_lowercase());
                }
            }
        }
        _ => {}
    }
}

fn detect(c: &Ctx) -> Draft {
    let py = c.toml("pyproject.toml");
    let marker = MARKERS
        .iter()
        .find(|m| c.has(m))
        .copied()
        .unwrap_or("pyproject.toml");
    let mut d = Draft::new(Language::Python, 0.75);
    d.because(&MANIFEST, &c.path(marker), "language python");
    let tool = |name: &str| {
        py.as_ref()
            .and_then(|t| t.get("tool"))
            .and_then(|t| t.get(name))
    };

    // Dependencies from every place they are declared.
    let mut deps = BTreeSet::new();
    if let Some(t) = &py {
        let project = t.get("project");
        names_of(project.and_then(|p| p.get("dependencies")), &mut deps);
        names_of(
            project.and_then(|p| p.get("optional-dependencies")),
            &mut deps,
        );
        names_of(t.get("dependency-groups"), &mut deps);
        if let Some(poetry) = tool("poetry") {
            names_of(poetry.get("dependencies"), &mut deps);
            names_of(poetry.get("dev-dependencies"), &mut deps);
            if let Some(groups) = poetry.get("group").and_then(|g| g.as_table()) {
                for g in groups.values() {
                    names_of(g.get("dependencies"), &mut deps);
                }
            }
        }
    }
    let req_files: Vec<&str> = ECOSYSTEM
        .reads
        .iter()
        .copied()
        .filter(|f| f.contains("requirements") && c.has(f))
        .collect();
    for f in &req_files {
        if let Some(text) = c.text(f) {
            deps.extend(requirement_names(text));
        }
    }
    if let Some(p) = c.toml("Pipfile") {
        names_of(p.get("packages"), &mut deps);
        names_of(p.get("dev-packages"), &mut deps);
    }

    // Package manager: a lockfile is the strongest sign; then [tool.*] tables.
    let (pm, why) = if c.has("uv.lock") {
        (PackageManager::Uv, c.path("uv.lock"))
    } else if c.has("poetry.lock") || tool("poetry").is_some() {
        (
            PackageManager::Poetry,
            c.path(if c.has("poetry.lock") {
                "poetry.lock"
            } else {
                "pyproject.toml"
            }),
        )
    } else if c.has("pdm.lock") || tool("pdm").is_some() {
        (
            PackageManager::Pdm,
            c.path(if c.has("pdm.lock") {
                "pdm.lock"
            } else {
                "pyproject.toml"
            }),
        )
    } else if c.has("Pipfile") {
        (PackageManager::Pipenv, c.path("Pipfile"))
    } else if tool("hatch").is_some() || c.has("hatch.toml") {
        (
            PackageManager::Hatch,
            c.path(if c.has("hatch.toml") {
                "hatch.toml"
            } else {
                "pyproject.toml"
            }),
        )
    } else if tool("uv").is_some() {
        (PackageManager::Uv, c.path("pyproject.toml"))
    } else {
        (PackageManager::Pip, c.path(marker))
    };
    d.package_manager = Some(pm);
    d.because(&PACKAGE_MANAGER, &why, format!("package manager {pm}"));
    if why.ends_with(".lock") {
        d.boost(0.2);
    } else if py.is_some() {
        d.boost(0.1);
    }
    let run = |cmd: &str| -> String {
        match pm {
            PackageManager::Uv => format!("uv run {cmd}"),
            PackageManager::Poetry => format!("poetry run {cmd}"),
            PackageManager::Pdm => format!("pdm run {cmd}"),
            PackageManager::Pipenv => format!("pipenv run {cmd}"),
            PackageManager::Hatch => format!("hatch run {cmd}"),
            _ => cmd.to_owned(),
        }
    };
    let extras: Vec<String> = py
        .as_ref()
        .and_then(|t| {
            t.get("project")?
                .get("optional-dependencies")?
                .as_table()
                .map(|e| e.keys().cloned().collect())
        })
        .unwrap_or_default();
    d.install = Some(match pm {
        PackageManager::Uv => if c.has("uv.lock") {
            "uv sync --locked --all-extras --dev"
        } else {
            "uv sync --all-extras --dev"
        }
        .to_owned(),
        PackageManager::Poetry => "poetry install --no-interaction".to_owned(),
        PackageManager::Pdm => "pdm install --dev".to_owned(),
        PackageManager::Pipenv => "pipenv install --dev".to_owned(),
        PackageManager::Hatch => "hatch env create".to_owned(),
        _ => {
            let mut parts = Vec::new();
            for f in &req_files {
                parts.push(format!("-r {f}"));
            }
            let has_build = py
                .as_ref()
                .is_some_and(|t| t.get("project").is_some() || t.get("build-system").is_some())
                || c.has("setup.py");
            if has_build {
                let wanted: Vec<&str> = ["dev", "test", "tests", "testing"]
                    .into_iter()
                    .filter(|e| extras.iter().any(|x| x == e))
                    .collect();
                parts.push(if wanted.is_empty() {
                    "-e .".to_owned()
                } else {
                    format!("-e \".[{}]\"", wanted.join(","))
                });
            }
            if parts.is_empty() {
                "python -m pip install --upgrade pip".to_owned()
            } else {
                format!("python -m pip install {}", parts.join(" "))
            }
        }
    });
    if py.as_ref().is_some_and(|t| t.get("build-system").is_some()) {
        d.build = Some(match pm {
            PackageManager::Uv => "uv build".to_owned(),
            PackageManager::Poetry => "poetry build".to_owned(),
            PackageManager::Pdm => "pdm build".to_owned(),
            PackageManager::Hatch => "hatch build".to_owned(),
            // pip builds a wheel itself; `python -m build` would need the build package.
            _ => "python -m pip wheel --no-deps --wheel-dir dist .".to_owned(),
        });
    }

    // Test runner: tox and nox orchestrate everything; else pytest; else unittest.
    let tox_ini = c.text("tox.ini");
    let has_tox = tox_ini.is_some() || tool("tox").is_some();
    let pytest_cfg = ["pytest.ini", "conftest.py", "tests/conftest.py"]
        .iter()
        .find(|f| c.has(f))
        .map(|f| c.path(f))
        .or_else(|| tool("pytest").map(|_| c.path("pyproject.toml")))
        .or_else(|| {
            c.text("setup.cfg")
                .filter(|t| t.contains("[tool:pytest]"))
                .map(|_| c.path("setup.cfg"))
        })
        .or_else(|| {
            tox_ini
                .filter(|t| t.contains("[pytest]"))
                .map(|_| c.path("tox.ini"))
        })
        .or_else(|| deps.contains("pytest").then(|| c.path(marker)));
    if has_tox {
        d.test_tool = Some(TestTool::Tox);
        d.test = Some("tox".to_owned());
        d.because(
            &TEST_RUNNER,
            &c.path(if tox_ini.is_some() {
                "tox.ini"
            } else {
                "pyproject.toml"
            }),
            "tox runs the tests",
        );
    } else if c.has("noxfile.py") {
        d.test_tool = Some(TestTool::Nox);
        d.test = Some("nox".to_owned());
        d.because(&TEST_RUNNER, &c.path("noxfile.py"), "nox runs the tests");
    } else if let Some(f) = pytest_cfg {
        d.test_tool = Some(TestTool::Pytest);
        d.test = Some(run("pytest"));
        d.because(&TEST_RUNNER, &f, "pytest");
    } else if c.tree.under(c.dir).any(|p| {
        p.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("test") && n.ends_with(".py"))
    }) {
        d.test_tool = Some(TestTool::Unittest);
        d.test = Some(run("python -m unittest discover"));
    }

    // Linters, only those the project configures or depends on.
    let ruff = c
        .first(&["ruff.toml", ".ruff.toml"])
        .map(|f| c.path(f))
        .or_else(|| tool("ruff").map(|_| c.path("pyproject.toml")))
        .or_else(|| deps.contains("ruff").then(|| c.path(marker)));
    if let Some(f) = ruff {
        d.add_lint(run("ruff check ."));
        if tool("ruff").and_then(|r| r.get("format")).is_some()
            || deps.contains("ruff") && !deps.contains("black")
        {
            d.add_lint(run("ruff format --check ."));
        }
        d.because(&LINTER, &f, "ruff");
    }
    if let Some(f) = tool("black")
        .map(|_| c.path("pyproject.toml"))
        .or_else(|| deps.contains("black").then(|| c.path(marker)))
    {
        d.add_lint(run("black --check ."));
        d.because(&LINTER, &f, "black");
    }
    let flake8 = c
        .has(".flake8")
        .then(|| c.path(".flake8"))
        .or_else(|| {
            c.text("setup.cfg")
                .filter(|t| t.contains("[flake8]"))
                .map(|_| c.path("setup.cfg"))
        })
        .or_else(|| {
            tox_ini
                .filter(|t| t.contains("[flake8]"))
                .map(|_| c.path("tox.ini"))
        });
    if let Some(f) = flake8 {
        d.add_lint(run("flake8"));
        d.because(&LINTER, &f, "flake8");
    }
    let mypy = c
        .first(&["mypy.ini", ".mypy.ini"])
        .map(|f| c.path(f))
        .or_else(|| tool("mypy").map(|_| c.path("pyproject.toml")))
        .or_else(|| {
            c.text("setup.cfg")
                .filter(|t| t.contains("[mypy"))
                .map(|_| c.path("setup.cfg"))
        });
    if let Some(f) = mypy {
        d.add_lint(run("mypy ."));
        d.because(&LINTER, &f, "mypy");
    }

    // Versions: a pinned .python-version wins; then requires-python; classifiers; tox.
    if let Some(v) = c
        .text(".python-version")
        .and_then(|t| t.lines().next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let minor: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
        d.runtime_versions = vec![minor.clone()];
        d.because(
            &VERSION,
            &c.path(".python-version"),
            format!("python {minor}"),
        );
    } else if let Some(req) = py
        .as_ref()
        .and_then(|t| {
            t.get("project")?
                .get("requires-python")?
                .as_str()
                .map(str::to_owned)
        })
        .or_else(|| {
            tool("poetry").and_then(|p| {
                p.get("dependencies")?
                    .get("python")?
                    .as_str()
                    .map(str::to_owned)
            })
        })
    {
        let req_norm = req.replace('^', ">=");
        let v = versions_in_range(&req_norm, PYTHON_LINES);
        if !v.is_empty() {
            d.because(
                &VERSION,
                &c.path("pyproject.toml"),
                format!("requires-python {req} → {}", v.join(", ")),
            );
            d.runtime_versions = v;
        }
    } else {
        let classifiers: Vec<String> = py
            .as_ref()
            .and_then(|t| t.get("project")?.get("classifiers")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                v.as_str()?
                    .strip_prefix("Programming Language :: Python :: 3.")
                    .map(|m| format!("3.{m}"))
            })
            .filter(|v| v.split('.').count() == 2)
            .collect();
        if !classifiers.is_empty() {
            d.because(
                &VERSION,
                &c.path("pyproject.toml"),
                format!("classifiers {}", classifiers.join(", ")),
            );
            d.runtime_versions = classifiers;
        } else if let Some(t) = tox_ini {
            let envs: Vec<String> = t
                .lines()
                .find_map(|l| l.trim().strip_prefix("envlist"))
                .map(|l| {
                    l.trim_start_matches([' ', '='])
                        .split([',', ' '])
                        .filter_map(|e| {
                            let digits = e.trim().strip_prefix("py3")?;
                            digits.parse::<u32>().ok().map(|m| format!("3.{m}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !envs.is_empty() {
                d.because(
                    &VERSION,
                    &c.path("tox.ini"),
                    format!("tox envs {}", envs.join(", ")),
                );
                d.runtime_versions = envs;
            }
        }
    }

    let mut fws = frameworks_from(&deps, FRAMEWORKS);
    if c.has("manage.py") && !fws.iter().any(|(f, _)| *f == Framework::Django) {
        fws.push((Framework::Django, "manage.py"));
    }
    for (fw, dep) in fws {
        d.frameworks.insert(fw);
        d.because(&FRAMEWORK, &c.path(marker), format!("`{dep}` → {fw}"));
    }
    if d.frameworks.contains(&Framework::Django) && d.test_tool.is_none() && c.has("manage.py") {
        d.test_tool = Some(TestTool::Unittest);
        d.test = Some(run("python manage.py test"));
    }
    d
}
