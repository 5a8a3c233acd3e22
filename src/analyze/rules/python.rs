//! Python: pip (requirements files), poetry, uv, pdm, hatch, pipenv, setuptools; pytest,
//! unittest, tox, nox; ruff, flake8, black, mypy when configured; the Python versions
//! from .python-version, requires-python, classifiers or tox envs; Django, Flask, FastAPI.

use std::collections::{BTreeMap, BTreeSet};

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
const PYTHON_LINES: &[&str] = &["3.11", "3.12", "3.13", "3.14"];

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
        "requirements/development.txt",
        "requirements/local.txt",
        "requirements/test.txt",
        "requirements/tests.txt",
        "requirements/testing.txt",
        "pytest.ini",
        "setup.py",
        "Pipfile",
        "tox.ini",
        "noxfile.py",
        ".python-version",
        ".flake8",
        "mypy.ini",
        ".pre-commit-config.yaml",
    ],
    // A docs site's requirements.txt (mkdocs, sphinx) is that site's, not a Python project.
    is_root: |c| {
        let docs_only = (c.has("mkdocs.yml") || c.has("mkdocs.yaml") || c.has("conf.py"))
            && !["pyproject.toml", "setup.py", "setup.cfg", "Pipfile"]
                .iter()
                .any(|m| c.has(m));
        !docs_only
            && MARKERS
                .iter()
                .any(|m| c.has(m) && (*m != "setup.py" || is_packaging_script(c)))
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

/// Is this directory's `setup.py` a packaging script? A module that happens to be
/// named `setup.py` (a Django settings package's `setup.py`) marks no project.
fn is_packaging_script(c: &Ctx) -> bool {
    match c.text("setup.py") {
        Some(t) => ["setup(", "setuptools", "distutils", "skbuild"]
            .iter()
            .any(|k| t.contains(k)),
        // Not read (over the size cap or the read budget): assume the common case.
        None => true,
    }
}

/// Requirements files a test job installs, in order: the root ones, then the
/// development and test files of a `requirements/` directory.
const REQUIREMENT_FILES: &[&str] = &[
    "requirements.txt",
    "requirements-dev.txt",
    "requirements_dev.txt",
    "dev-requirements.txt",
    "requirements-test.txt",
    "test-requirements.txt",
    "requirements/dev.txt",
    "requirements/development.txt",
    "requirements/local.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/testing.txt",
];

/// How deep `-r other.txt` includes are followed.
const MAX_REQUIREMENT_INCLUDES: usize = 4;

/// The files `-r`/`--requirement` lines of a requirements file include (repository
/// paths relative to this project's directory), followed transitively.
fn requirement_includes(c: &Ctx, file: &str, depth: usize, into: &mut Vec<String>) {
    if depth >= MAX_REQUIREMENT_INCLUDES {
        return;
    }
    let Some(text) = c.text(file) else { return };
    let base = file.rsplit_once('/').map_or("", |(d, _)| d);
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        let target = l
            .strip_prefix("--requirement")
            .or_else(|| l.strip_prefix("-r"))
            .map(|t| t.trim_start_matches('=').trim());
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            continue;
        };
        // Relative to the including file; never out of the project.
        let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
        let mut ok = true;
        for seg in target.split('/') {
            match seg {
                "" | "." => {}
                ".." => ok &= parts.pop().is_some(),
                s => parts.push(s),
            }
        }
        let path = parts.join("/");
        if ok && !path.is_empty() && !into.contains(&path) {
            into.push(path.clone());
            requirement_includes(c, &path, depth + 1, into);
        }
    }
}

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

/// Where a dependency is declared: `main`, `extra:<name>`, `group:<name>` (PEP 735,
/// Poetry, PDM and uv dev groups) or `req:<file>`.
type Groups = BTreeSet<String>;

/// Every dependency the project declares: name → (the requirement as written, groups).
fn declared(
    c: &Ctx,
    py: Option<&toml::Table>,
    req_files: &[&str],
) -> BTreeMap<String, (String, Groups)> {
    let mut out: BTreeMap<String, (String, Groups)> = BTreeMap::new();
    let mut add = |spec: &str, group: String| {
        if let Some(name) = requirement_names(spec).next() {
            let e = out
                .entry(name)
                .or_insert_with(|| (spec.trim().to_owned(), Groups::new()));
            e.1.insert(group);
        }
    };
    let strs = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(t) = py {
        let project = t.get("project");
        for d in strs(project.and_then(|p| p.get("dependencies"))) {
            add(&d, "main".to_owned());
        }
        if let Some(extras) = project
            .and_then(|p| p.get("optional-dependencies"))
            .and_then(|e| e.as_table())
        {
            for (name, list) in extras {
                for d in strs(Some(list)) {
                    add(&d, format!("extra:{name}"));
                }
            }
        }
        if let Some(groups) = t.get("dependency-groups").and_then(|g| g.as_table()) {
            for (name, list) in groups {
                // `{include-group = "x"}` entries are tables, not requirements: the
                // included group's own entries are declared under it.
                for d in strs(Some(list)) {
                    add(&d, format!("group:{name}"));
                }
            }
        }
        let tool = t.get("tool");
        for d in strs(
            tool.and_then(|t| t.get("uv"))
                .and_then(|u| u.get("dev-dependencies")),
        ) {
            add(&d, "group:dev".to_owned());
        }
        if let Some(poetry) = tool.and_then(|t| t.get("poetry")) {
            let table_names = |v: Option<&toml::Value>| -> Vec<(String, String)> {
                v.and_then(|v| v.as_table())
                    .map(|t| {
                        t.iter()
                            .filter(|(k, _)| k.as_str() != "python")
                            .map(|(k, v)| {
                                let ver = v
                                    .as_str()
                                    .map(str::to_owned)
                                    .or_else(|| {
                                        v.get("version").and_then(|x| x.as_str()).map(str::to_owned)
                                    })
                                    .unwrap_or_default();
                                (k.clone(), ver)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for (k, _) in table_names(poetry.get("dependencies")) {
                add(&k, "main".to_owned());
            }
            for (k, _) in table_names(poetry.get("dev-dependencies")) {
                add(&k, "group:dev".to_owned());
            }
            if let Some(groups) = poetry.get("group").and_then(|g| g.as_table()) {
                for (name, g) in groups {
                    for (k, _) in table_names(g.get("dependencies")) {
                        add(&k, format!("group:{name}"));
                    }
                }
            }
        }
        if let Some(groups) = tool
            .and_then(|t| t.get("pdm"))
            .and_then(|p| p.get("dev-dependencies"))
            .and_then(|g| g.as_table())
        {
            for (name, list) in groups {
                for d in strs(Some(list)) {
                    add(&d, format!("group:{name}"));
                }
            }
        }
    }
    for f in req_files {
        // A file and everything it includes (`-r base.txt`) count as that file's.
        let mut files = vec![(*f).to_owned()];
        requirement_includes(c, f, 0, &mut files);
        for inc in &files {
            if let Some(text) = c.text(inc) {
                for line in text.lines() {
                    let l = line.split('#').next().unwrap_or("").trim();
                    if !l.is_empty() && !l.starts_with('-') {
                        add(l, format!("req:{f}"));
                    }
                }
            }
        }
    }
    if let Some(p) = c.toml("Pipfile") {
        for (key, group) in [("packages", "main"), ("dev-packages", "group:dev")] {
            if let Some(t) = p.get(key).and_then(|t| t.as_table()) {
                for k in t.keys() {
                    add(k, group.to_owned());
                }
            }
        }
    }
    out
}

/// Extras and groups a CI test job installs with pip (development, tests, linting and
/// typing; docs have their own job).
const DEV_GROUP_NAMES: &[&str] = &[
    "dev",
    "develop",
    "development",
    "test",
    "tests",
    "testing",
    "lint",
    "linting",
    "typing",
    "types",
    "type",
    "check",
    "checks",
    "style",
    "quality",
];

/// Python linters pre-commit hook repositories pin, by repository URL suffix.
const PRECOMMIT_TOOLS: &[(&str, &str)] = &[
    ("astral-sh/ruff-pre-commit", "ruff"),
    ("charliermarsh/ruff-pre-commit", "ruff"),
    ("psf/black", "black"),
    ("psf/black-pre-commit-mirror", "black"),
    ("pycqa/flake8", "flake8"),
    ("pre-commit/mirrors-mypy", "mypy"),
    ("pycqa/isort", "isort"),
];

/// Python linters pinned by `.pre-commit-config.yaml` (repository root or project):
/// tool → `tool==rev`, and the hook ids seen (`ruff-format`).
fn precommit_pins(c: &Ctx) -> (BTreeMap<&'static str, String>, BTreeSet<String>) {
    let mut pins = BTreeMap::new();
    let mut hooks = BTreeSet::new();
    let root = Ctx::new(c.tree, "", c.warnings);
    let (doc, raw) = match c.yaml(".pre-commit-config.yaml") {
        Some(doc) => (doc, c.text(".pre-commit-config.yaml").unwrap_or("")),
        None => match root.yaml(".pre-commit-config.yaml") {
            Some(doc) => (doc, root.text(".pre-commit-config.yaml").unwrap_or("")),
            None => return (pins, hooks),
        },
    };
    for repo in doc["repos"].as_vec().into_iter().flatten() {
        let url = repo["repo"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let rev = repo["rev"].as_str().unwrap_or("");
        // `pre-commit autoupdate --freeze` pins a commit and names its tag in a comment
        // (`rev: cb8c…  # frozen: v0.16.0`): the tag is the version; a bare commit
        // names no release to install.
        let frozen = is_commit_id(rev).then(|| frozen_tag(raw, rev)).flatten();
        let rev = match (&frozen, is_commit_id(rev)) {
            (Some(tag), _) => tag.as_str(),
            (None, true) => "",
            (None, false) => rev,
        }
        .trim_start_matches('v');
        for h in repo["hooks"].as_vec().into_iter().flatten() {
            if let Some(id) = h["id"].as_str() {
                // ruff-pre-commit renamed its `ruff` hook to `ruff-check`.
                hooks.insert(if id == "ruff-check" { "ruff" } else { id }.to_owned());
            }
        }
        if let Some((_, tool)) = PRECOMMIT_TOOLS
            .iter()
            .find(|(suffix, _)| url.ends_with(&suffix.to_ascii_lowercase()))
        {
            let ok = !rev.is_empty()
                && rev
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '.');
            if ok {
                pins.insert(*tool, format!("{tool}=={rev}"));
            }
        }
    }
    (pins, hooks)
}

/// Is `rev` a git commit id (7 to 40 hex digits, not a plain number)?
fn is_commit_id(rev: &str) -> bool {
    (7..=40).contains(&rev.len())
        && rev.chars().all(|c| c.is_ascii_hexdigit())
        && rev.chars().any(|c| c.is_ascii_alphabetic())
}

/// The tag a frozen pre-commit revision names: `rev: <sha>  # frozen: v1.2.3`.
fn frozen_tag(raw: &str, sha: &str) -> Option<String> {
    raw.lines()
        .find(|l| l.contains(sha) && l.contains("rev"))
        .and_then(|l| l.split_once("# frozen:"))
        .map(|(_, tag)| tag.trim().to_owned())
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
}

/// Directories of the project's importable packages (`src/pkg`, `pkg`), for type
/// checkers that should not walk tests, docs and scripts.
fn package_dirs(c: &Ctx) -> Vec<String> {
    let mut out = BTreeSet::new();
    for p in c.tree.under(c.dir) {
        let rel = if c.dir.is_empty() {
            p
        } else {
            &p[c.dir.len() + 1..]
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let pkg = match parts.as_slice() {
            ["src", pkg, "__init__.py"] => format!("src/{pkg}"),
            [pkg, "__init__.py"] => (*pkg).to_owned(),
            _ => continue,
        };
        let name = pkg.rsplit('/').next().unwrap_or(&pkg);
        if !matches!(
            name,
            "tests" | "test" | "docs" | "examples" | "scripts" | "benchmarks"
        ) {
            out.insert(pkg);
        }
    }
    out.into_iter().collect()
}

/// The test session of a noxfile (`tests`, `test`, `pytest`, `unit`), if one exists.
fn nox_test_session(text: &str) -> Option<String> {
    let mut pending_session = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("@nox.session") || l.starts_with("@session") {
            pending_session = true;
            // `@nox.session(name="tests")`
            if let Some(i) = l.find("name=") {
                let rest = &l[i + 5..];
                let q = rest.chars().next()?;
                if q == '"' || q == '\'' {
                    let name: String = rest[1..].chars().take_while(|ch| *ch != q).collect();
                    if matches!(
                        name.as_str(),
                        "tests" | "test" | "pytest" | "unit" | "unittests"
                    ) {
                        return Some(name);
                    }
                    pending_session = false;
                }
            }
            continue;
        }
        if pending_session {
            if let Some(rest) = l.strip_prefix("def ") {
                let name: String = rest.chars().take_while(|ch| *ch != '(').collect();
                if matches!(
                    name.as_str(),
                    "tests" | "test" | "pytest" | "unit" | "unittests"
                ) {
                    return Some(name);
                }
                pending_session = false;
            }
        }
    }
    None
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

    let mut req_files: Vec<&str> = REQUIREMENT_FILES
        .iter()
        .copied()
        .filter(|f| c.has(f))
        .collect();
    // A root requirements.txt that only points into requirements/ (what a platform
    // such as Heroku reads: production packages) gives way to that directory's
    // development file, which includes the base packages and the test tools.
    let pointer_only = c.text("requirements.txt").is_some_and(|t| {
        let lines: Vec<&str> = t
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .collect();
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l.starts_with("-r") || l.starts_with("--requirement"))
    });
    if pointer_only && req_files.iter().any(|f| f.starts_with("requirements/")) {
        req_files.retain(|f| *f != "requirements.txt");
        d.because(
            &PACKAGE_MANAGER,
            &c.path("requirements.txt"),
            "only includes files of requirements/: the development file is installed instead",
        );
    }
    let declared = declared(c, py.as_ref(), &req_files);
    let deps: BTreeSet<String> = declared.keys().cloned().collect();

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
    let uv_workspace = pm == PackageManager::Uv && !(ECOSYSTEM.members)(c).is_empty();
    let run = |cmd: &str| -> String {
        match pm {
            PackageManager::Uv if uv_workspace => format!("uv run --all-packages {cmd}"),
            PackageManager::Uv => format!("uv run {cmd}"),
            PackageManager::Poetry => format!("poetry run {cmd}"),
            PackageManager::Pdm => format!("pdm run {cmd}"),
            PackageManager::Pipenv => format!("pipenv run {cmd}"),
            PackageManager::Hatch => format!("hatch run {cmd}"),
            _ => cmd.to_owned(),
        }
    };
    // What the install command installs, and how the job reaches it.
    let extras: Vec<String> = py
        .as_ref()
        .and_then(|t| {
            t.get("project")?
                .get("optional-dependencies")?
                .as_table()
                .map(|e| e.keys().cloned().collect())
        })
        .unwrap_or_default();
    let poetry_optional_groups: Vec<String> = tool("poetry")
        .and_then(|p| p.get("group"))
        .and_then(|g| g.as_table())
        .map(|g| {
            g.iter()
                .filter(|(_, v)| v.get("optional").and_then(|o| o.as_bool()) == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let is_dev_group = |g: &str| {
        let name = g.split_once(':').map_or(g, |(_, n)| n);
        DEV_GROUP_NAMES.contains(&name.to_ascii_lowercase().as_str())
    };
    let covered = |g: &str| -> bool {
        match pm {
            // Every extra and group: lint and docs tools live in groups of their own.
            PackageManager::Uv | PackageManager::Poetry | PackageManager::Pdm => true,
            PackageManager::Pipenv => g == "main" || g == "group:dev",
            PackageManager::Hatch => g == "main",
            _ => g == "main" || g.starts_with("req:") || is_dev_group(g),
        }
    };
    d.install = Some(match pm {
        PackageManager::Uv => format!(
            "uv sync{}{} --all-extras --all-groups",
            if c.has("uv.lock") { " --locked" } else { "" },
            if uv_workspace { " --all-packages" } else { "" }
        ),
        PackageManager::Poetry => {
            let mut cmd = "poetry install --no-interaction --all-extras".to_owned();
            if !poetry_optional_groups.is_empty() {
                cmd.push_str(&format!(" --with {}", poetry_optional_groups.join(",")));
            }
            cmd
        }
        PackageManager::Pdm => "pdm install -G :all".to_owned(),
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
                let wanted: Vec<&str> = extras
                    .iter()
                    .map(String::as_str)
                    .filter(|e| is_dev_group(e))
                    .collect();
                parts.push(if wanted.is_empty() {
                    "-e .".to_owned()
                } else {
                    format!("-e \".[{}]\"", wanted.join(","))
                });
            }
            // PEP 735 groups: pip reads them only from 25.1 on, so their requirements
            // are named on the command line.
            for (name, (spec, groups)) in &declared {
                let in_dev_group = groups
                    .iter()
                    .any(|g| g.starts_with("group:") && is_dev_group(g));
                let elsewhere = groups.iter().any(|g| !g.starts_with("group:"));
                if in_dev_group && !elsewhere && !name.is_empty() {
                    parts.push(crate::generate::render::shell_quote(spec));
                }
            }
            if parts.is_empty() {
                "python -m pip install --upgrade pip".to_owned()
            } else {
                format!("python -m pip install {}", parts.join(" "))
            }
        }
    });
    let mut installs: Vec<String> = Vec::new();
    for (name, (_, groups)) in &declared {
        if groups.iter().any(|g| covered(g)) {
            if matches!(pm, PackageManager::Pip) {
                installs.push(name.clone());
                installs.push(format!("py:{name}"));
            } else {
                installs.push(format!("venv:{name}"));
            }
        }
    }
    d.installs = installs.clone();
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
    // Is `tool` installed by the install step (reached through `run`)?
    let installed = |name: &str| -> bool {
        installs
            .iter()
            .any(|i| i == name || i.split_once(':').is_some_and(|(_, n)| n == name))
    };
    let (pins, hooks) = precommit_pins(c);
    // A tool the project configures runs (a) from its own environment when a dependency
    // installs it, (b) at the version pre-commit pins, (c) not at all.
    let tool_cmd = |name: &str, args: &str, d: &mut Draft, file: &str| -> Option<String> {
        if installed(name) {
            Some(run(&format!("{name} {args}")).trim_end().to_owned())
        } else if let Some(spec) = pins.get(name) {
            if !d.tools.iter().any(|t| t.name == name) {
                d.tools.push(crate::analyze::PinnedTool {
                    name: name.to_owned(),
                    spec: Some(spec.clone()),
                });
            }
            d.because(
                &LINTER,
                ".pre-commit-config.yaml",
                format!("{name} pinned by pre-commit: {spec}"),
            );
            Some(format!("{name} {args}").trim_end().to_owned())
        } else {
            d.because(
                &LINTER,
                file,
                format!(
                    "{name} is configured but no dependency or pre-commit hook pins it: not run"
                ),
            );
            None
        }
    };

    // Test runner: Django's own runner for Django apps (unless pytest-django is
    // configured); tox and nox only through their test environment for the job's one
    // interpreter; else pytest; else unittest discovery.
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
    let is_django = deps.contains("django") || c.has("manage.py");
    let pytest_django = deps.contains("pytest-django")
        || tool("pytest")
            .map(|t| t.to_string())
            .is_some_and(|t| t.contains("DJANGO_SETTINGS_MODULE"))
        || ["pytest.ini", "setup.cfg", "tox.ini"].iter().any(|f| {
            c.text(f).is_some_and(|t| {
                (t.contains("[pytest]") || t.contains("[tool:pytest]"))
                    && t.contains("DJANGO_SETTINGS_MODULE")
            })
        });
    let nox_session = c.text("noxfile.py").and_then(nox_test_session);
    if is_django && c.has("manage.py") && !pytest_django {
        d.test_tool = Some(TestTool::Unittest);
        d.test = Some(run("python manage.py test"));
        d.because(&TEST_RUNNER, &c.path("manage.py"), "Django's test runner");
    } else if has_tox && !(pytest_cfg.is_some() && installed("pytest")) {
        d.test_tool = Some(TestTool::Tox);
        // `py`: the test environment on the interpreter running tox (the job's).
        d.test = Some(if installed("tox") {
            run("tox -e py")
        } else {
            d.tools.push(crate::analyze::PinnedTool {
                name: "tox".to_owned(),
                spec: None,
            });
            "tox -e py".to_owned()
        });
        d.because(
            &TEST_RUNNER,
            &c.path(if tox_ini.is_some() {
                "tox.ini"
            } else {
                "pyproject.toml"
            }),
            "tox runs the tests (its `py` environment: the job's interpreter)",
        );
    } else if let (Some(session), false) = (
        nox_session.as_ref(),
        pytest_cfg.is_some() && installed("pytest"),
    ) {
        d.test_tool = Some(TestTool::Nox);
        // `--force-python python`: the session on the job's interpreter only.
        let cmd = format!("nox -s {session} --force-python python");
        d.test = Some(if installed("nox") {
            run(&cmd)
        } else {
            d.tools.push(crate::analyze::PinnedTool {
                name: "nox".to_owned(),
                spec: None,
            });
            cmd
        });
        d.because(
            &TEST_RUNNER,
            &c.path("noxfile.py"),
            format!("nox session `{session}` runs the tests"),
        );
    } else if let Some(f) = pytest_cfg {
        d.test_tool = Some(TestTool::Pytest);
        if !installed("pytest") {
            // Configured but installed by nothing the job runs: install it.
            d.tools.push(crate::analyze::PinnedTool {
                name: "pytest".to_owned(),
                spec: declared.get("pytest").map(|(s, _)| s.clone()),
            });
            d.test = Some(if pm == PackageManager::Pip {
                "pytest".to_owned()
            } else {
                run("pytest")
            });
        } else {
            d.test = Some(run("pytest"));
        }
        d.because(&TEST_RUNNER, &f, "pytest");
    } else if c.tree.under(c.dir).any(|p| {
        p.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("test") && n.ends_with(".py"))
    }) {
        d.test_tool = Some(TestTool::Unittest);
        d.test = Some(run("python -m unittest discover"));
    }

    // Linters, only those the project configures, from where the project gets them.
    let ruff_cfg = c
        .first(&["ruff.toml", ".ruff.toml"])
        .map(|f| c.path(f))
        .or_else(|| tool("ruff").map(|_| c.path("pyproject.toml")))
        .or_else(|| {
            hooks
                .contains("ruff")
                .then(|| ".pre-commit-config.yaml".to_owned())
        })
        .or_else(|| deps.contains("ruff").then(|| c.path(marker)));
    if let Some(f) = ruff_cfg {
        if let Some(cmd) = tool_cmd("ruff", "check .", &mut d, &f) {
            d.add_lint(cmd);
            d.because(&LINTER, &f, "ruff");
            let ruff_format = tool("ruff").and_then(|r| r.get("format")).is_some()
                || c.first(&["ruff.toml", ".ruff.toml"])
                    .and_then(|f| c.text(f))
                    .is_some_and(|t| t.contains("[format]"))
                || hooks.contains("ruff-format");
            if ruff_format {
                if let Some(cmd) = tool_cmd("ruff", "format --check .", &mut d, &f) {
                    d.add_lint(cmd);
                }
            }
        }
    }
    if let Some(f) = tool("black")
        .map(|_| c.path("pyproject.toml"))
        .or_else(|| {
            hooks
                .contains("black")
                .then(|| ".pre-commit-config.yaml".to_owned())
        })
        .or_else(|| deps.contains("black").then(|| c.path(marker)))
    {
        if let Some(cmd) = tool_cmd("black", "--check .", &mut d, &f) {
            d.add_lint(cmd);
            d.because(&LINTER, &f, "black");
        }
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
        // uv and PDM install into a `.venv` inside the project, which flake8 (unlike ruff
        // and black) does not skip by default: it would lint every installed package.
        let config = c.text(f.rsplit('/').next().unwrap_or(&f)).unwrap_or("");
        let in_project_venv = matches!(pm, PackageManager::Uv | PackageManager::Pdm)
            && !config.contains(".venv")
            && !config.contains("extend-exclude")
            && !config.contains("extend_exclude");
        let args = if in_project_venv {
            "--extend-exclude .venv"
        } else {
            ""
        };
        if let Some(cmd) = tool_cmd("flake8", args, &mut d, &f) {
            d.add_lint(cmd);
            d.because(&LINTER, &f, "flake8");
        }
    }
    let mypy_ini = c.first(&["mypy.ini", ".mypy.ini"]);
    let mypy = mypy_ini
        .map(|f| c.path(f))
        .or_else(|| tool("mypy").map(|_| c.path("pyproject.toml")))
        .or_else(|| {
            c.text("setup.cfg")
                .filter(|t| t.contains("[mypy"))
                .map(|_| c.path("setup.cfg"))
        });
    if let Some(f) = mypy {
        // mypy checks imports: it must run in the project's environment, never from a
        // standalone pin. Its targets: the configured `files`/`packages`, else the
        // project's packages (not tests, docs or scripts the project never checks).
        let configured_targets = tool("mypy").is_some_and(|m| {
            m.get("files").is_some() || m.get("packages").is_some() || m.get("modules").is_some()
        }) || mypy_ini
            .and_then(|f| c.text(f))
            .or_else(|| c.text("setup.cfg"))
            .is_some_and(|t| {
                t.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("files") || l.starts_with("packages") || l.starts_with("modules")
                })
            });
        let targets = if configured_targets {
            Some(String::new())
        } else {
            let dirs = package_dirs(c);
            (!dirs.is_empty()).then(|| {
                dirs.iter()
                    .map(|d| crate::generate::render::shell_quote(d))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        match (installed("mypy"), targets) {
            (true, Some(t)) => {
                d.add_lint(run(&format!("mypy {t}")).trim_end().to_owned());
                d.because(&LINTER, &f, "mypy");
            }
            (false, _) => d.because(
                &LINTER,
                &f,
                "mypy is configured but not a dependency the job installs: not run",
            ),
            (true, None) => d.because(&LINTER, &f, "mypy: no package to check found"),
        }
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

#[cfg(test)]
mod tests {
    use crate::analyze::{analyze, RepoTree};

    fn lint_of(files: &[(&str, &str)]) -> Vec<String> {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            t.insert_content(p, c.as_bytes());
        }
        analyze(&t).projects[0].commands.lint.clone()
    }

    #[test]
    fn flake8_skips_the_in_project_venv_of_uv_and_pdm_only() {
        let pyproject =
            "[project]\nname = \"m\"\nversion = \"1\"\n\n[dependency-groups]\ndev = [\"flake8\"]\n";
        let uv = lint_of(&[
            ("pyproject.toml", pyproject),
            ("uv.lock", "version = 1\n"),
            (".flake8", "[flake8]\nmax-line-length = 100\n"),
        ]);
        assert!(
            uv.iter()
                .any(|l| l.ends_with("flake8 --extend-exclude .venv")),
            "{uv:?}"
        );
        // The project excludes things itself: its own list stands.
        let own = lint_of(&[
            ("pyproject.toml", pyproject),
            ("uv.lock", "version = 1\n"),
            (".flake8", "[flake8]\nextend-exclude = build\n"),
        ]);
        assert!(own.iter().any(|l| l.ends_with("flake8")), "{own:?}");
        // pip installs into the interpreter: nothing to skip.
        let pip = lint_of(&[
            ("requirements.txt", "flake8\n"),
            ("setup.cfg", "[flake8]\nmax-line-length = 100\n"),
            ("app.py", ""),
        ]);
        assert!(pip.iter().any(|l| l.ends_with("flake8")), "{pip:?}");
    }
}
