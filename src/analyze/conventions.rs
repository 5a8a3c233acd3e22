//! Conventions: what a repository's existing CI shows about how its organisation builds
//! things — reusable workflows it calls (`org/.github/.github/workflows/x.yml@ref`),
//! runner labels, how toolchains are installed, which actions at which versions, caches,
//! lint tools, test runners, matrix versions, and the names (never values) of secrets and
//! variables. Pure: input is a [`RepoTree`] whose CI files were read (they are in
//! [`super::files_to_read`]), output is data stored per repository and adopted by sibling
//! proposals (see `learn::conventions`).
//!
//! Everything here comes from files people wrote and is untrusted: values are kept only
//! when they look like what they claim to be (an action reference, a label, a version),
//! so nothing odd can flow from one repository's CI into another's proposal.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use yaml_rust2::Yaml;

use super::RepoTree;

/// A job that calls a reusable workflow instead of running steps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReusableCall {
    /// `owner/repo/.github/workflows/file.yml@ref`, as written.
    pub uses: String,
    /// Its `with:` inputs (scalars only, as text).
    pub with: BTreeMap<String, String>,
    /// `secrets: inherit`.
    pub secrets_inherit: bool,
    /// The `with:` keys whose values were YAML numbers or booleans (written unquoted
    /// again; every other value was a string and stays quoted, so `"2"` is not turned into
    /// the number 2). `None` for calls recorded before the types were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<BTreeSet<String>>,
    /// The commit its ref pointed at when pipewright adopted it: the call is written
    /// pinned to it, the ref kept as a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
}

impl ReusableCall {
    /// The workflow without its ref (`owner/repo/.github/workflows/file.yml`).
    pub fn workflow(&self) -> &str {
        self.uses.split('@').next().unwrap_or(&self.uses)
    }

    /// The ref as written (`v3`, `main`, a SHA).
    pub fn reference(&self) -> &str {
        self.uses.split_once('@').map_or("", |(_, r)| r)
    }

    /// `owner/repo` of the repository that holds the workflow.
    pub fn repository(&self) -> String {
        self.workflow()
            .splitn(3, '/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Written with a full commit SHA already (nothing to resolve).
    pub fn is_pinned(&self) -> bool {
        let r = self.reference();
        r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The owner of the repository that holds the workflow.
    pub fn owner(&self) -> &str {
        self.uses.split('/').next().unwrap_or("")
    }
}

/// What one repository's CI shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conventions {
    /// CI files read.
    pub files: Vec<String>,
    /// Reusable workflows its jobs call.
    pub reusable_workflows: Vec<ReusableCall>,
    /// Runner label sets of its jobs (`runs-on`), each sorted; GitLab `tags`.
    pub runner_labels: Vec<Vec<String>>,
    /// Actions used and their refs (`actions/setup-python` → `v5`).
    pub actions: BTreeMap<String, String>,
    /// How toolchains are installed (setup actions, installer commands).
    pub toolchain_setup: Vec<String>,
    /// Caches (`actions/cache`, `setup-python cache: pip`, …).
    pub caches: Vec<String>,
    /// Lint and format tools its steps run.
    pub lint_tools: Vec<String>,
    /// Test runners its steps run.
    pub test_runners: Vec<String>,
    /// Matrix axes and their values (`python-version` → `3.11, 3.12`).
    pub matrix: BTreeMap<String, Vec<String>>,
    /// Python versions it sets up (literal or from the matrix).
    pub python_versions: Vec<String>,
    /// Names of secrets referenced (`secrets.X`).
    pub secrets: Vec<String>,
    /// Names of variables referenced (`vars.X`).
    pub variables: Vec<String>,
}

impl Conventions {
    /// Nothing was learned (no CI, or CI that says nothing we use).
    pub fn is_empty(&self) -> bool {
        self.reusable_workflows.is_empty()
            && self.runner_labels.is_empty()
            && self.actions.is_empty()
            && self.lint_tools.is_empty()
            && self.test_runners.is_empty()
            && self.python_versions.is_empty()
    }

    /// One line for people (PR body, `analyze --explain`).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for r in &self.reusable_workflows {
            parts.push(format!("calls {}", r.uses));
        }
        for l in &self.runner_labels {
            parts.push(format!("runs on [{}]", l.join(", ")));
        }
        if !self.python_versions.is_empty() {
            parts.push(format!("Python {}", self.python_versions.join(", ")));
        }
        if !self.toolchain_setup.is_empty() {
            parts.push(format!("setup {}", self.toolchain_setup.join(", ")));
        }
        if !self.lint_tools.is_empty() {
            parts.push(format!("lint {}", self.lint_tools.join(", ")));
        }
        if !self.test_runners.is_empty() {
            parts.push(format!("tests {}", self.test_runners.join(", ")));
        }
        parts.join("; ")
    }
}

/// Lint/format tools recognised in `run:` commands (word → tool).
const LINT_TOOLS: &[&str] = &[
    "ruff",
    "black",
    "flake8",
    "pylint",
    "mypy",
    "isort",
    "pyright",
    "eslint",
    "prettier",
    "biome",
    "shellcheck",
    "shfmt",
    "clippy",
    "rustfmt",
    "golangci-lint",
    "gofmt",
    "rubocop",
    "hadolint",
    "yamllint",
    "markdownlint",
    "actionlint",
    "sqlfluff",
    "ansible-lint",
    "pre-commit",
];
/// Test runners recognised in `run:` commands.
const TEST_RUNNERS: &[&str] = &[
    "pytest", "nox", "tox", "unittest", "jest", "vitest", "mocha", "bats", "rspec", "phpunit",
    "nextest", "ctest",
];
/// Toolchain installers recognised in `run:` commands (`pip install uv` → `uv`).
const INSTALLERS: &[&str] = &[
    "uv", "poetry", "pdm", "hatch", "pipx", "pip", "conda", "mamba",
];

/// Extracts the conventions of every CI file in `tree` that was read.
pub fn extract(tree: &RepoTree) -> Conventions {
    let mut c = Conventions::default();
    let mut labels: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut setup = BTreeSet::new();
    let mut caches = BTreeSet::new();
    let mut lint = BTreeSet::new();
    let mut tests = BTreeSet::new();
    let mut pythons = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut vars = BTreeSet::new();
    let mut calls = BTreeSet::new();
    for path in tree.files() {
        let github = path.starts_with(".github/workflows/")
            && (path.ends_with(".yml") || path.ends_with(".yaml"))
            && !path[".github/workflows/".len()..].contains('/');
        let gitlab = path == ".gitlab-ci.yml" || path == ".gitlab-ci.yaml";
        if !(github || gitlab) {
            continue;
        }
        let Some(text) = tree.text(path) else {
            continue;
        };
        c.files.push(path.clone());
        names_after(text, "secrets.", &mut secrets);
        names_after(text, "vars.", &mut vars);
        let Some(doc) = super::rules::parse_yaml(text, path, |_| {}) else {
            continue;
        };
        let Some(jobs) = (if github {
            doc["jobs"].as_hash()
        } else {
            doc.as_hash()
        }) else {
            continue;
        };
        for (_, job) in jobs {
            if !matches!(job, Yaml::Hash(_)) {
                continue;
            }
            if github {
                if let Some(uses) = job["uses"].as_str().filter(|u| is_reusable_ref(u)) {
                    let with: BTreeMap<String, String> = job["with"]
                        .as_hash()
                        .map(|h| {
                            h.iter()
                                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v)?)))
                                .filter(|(k, v)| plain_key(k) && v.len() <= 200)
                                .collect()
                        })
                        .unwrap_or_default();
                    let typed = job["with"]
                        .as_hash()
                        .map(|h| {
                            h.iter()
                                .filter(|(_, v)| !matches!(v, Yaml::String(_)))
                                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                                .filter(|k| with.contains_key(k))
                                .collect()
                        })
                        .unwrap_or_default();
                    calls.insert(ReusableCall {
                        uses: uses.to_owned(),
                        with,
                        secrets_inherit: job["secrets"].as_str() == Some("inherit"),
                        typed: Some(typed),
                        pinned: None,
                    });
                }
                if let Some(set) = runner_labels(&job["runs-on"]) {
                    labels.insert(set);
                }
                let matrix = &job["strategy"]["matrix"];
                if let Some(h) = matrix.as_hash() {
                    for (k, v) in h {
                        let (Some(k), Some(list)) = (k.as_str(), v.as_vec()) else {
                            continue;
                        };
                        let values: Vec<String> = list.iter().filter_map(scalar).collect();
                        if !plain_key(k) || values.is_empty() {
                            continue;
                        }
                        if k.starts_with("python") {
                            pythons.extend(values.iter().filter(|v| is_version(v)).cloned());
                        }
                        c.matrix.entry(k.to_owned()).or_insert(values);
                    }
                }
                for step in job["steps"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                    if let Some(uses) = step["uses"].as_str() {
                        let (action, r) = uses.split_once('@').unwrap_or((uses, ""));
                        if is_action(action) && !r.is_empty() && r.len() <= 64 {
                            c.actions.insert(action.to_owned(), r.to_owned());
                        }
                        if action.contains("/setup-") {
                            setup.insert(action.to_owned());
                        }
                        if action == "actions/cache" {
                            caches.insert("actions/cache".to_owned());
                        }
                        if let Some(cache) = step["with"]["cache"].as_str() {
                            caches.insert(format!("{action} cache: {cache}"));
                        }
                        if step["with"]["enable-cache"].as_bool() == Some(true)
                            || step["with"]["enable-cache"].as_str() == Some("true")
                        {
                            caches.insert(format!("{action} cache"));
                        }
                        if action == "actions/setup-python" {
                            if let Some(v) = scalar(&step["with"]["python-version"]) {
                                if is_version(&v) {
                                    pythons.insert(v);
                                }
                            }
                        }
                    }
                    if let Some(run) = step["run"].as_str() {
                        scan_run(run, &mut setup, &mut lint, &mut tests);
                    }
                }
            } else {
                // GitLab: jobs are top-level mappings with `script`; tags pick runners.
                if let Some(tags) = job["tags"].as_vec() {
                    let mut set: Vec<String> = tags
                        .iter()
                        .filter_map(|t| t.as_str())
                        .filter(|t| is_label(t))
                        .map(str::to_owned)
                        .collect();
                    set.sort();
                    if !set.is_empty() {
                        labels.insert(set);
                    }
                }
                for key in ["before_script", "script"] {
                    for line in job[key].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
                        if let Some(run) = line.as_str() {
                            scan_run(run, &mut setup, &mut lint, &mut tests);
                        }
                    }
                }
                if let Some(image) = job["image"].as_str().filter(|i| i.starts_with("python:")) {
                    let v = image["python:".len()..].split('-').next().unwrap_or("");
                    if is_version(v) {
                        pythons.insert(v.to_owned());
                    }
                }
            }
        }
    }
    c.reusable_workflows = calls.into_iter().collect();
    c.runner_labels = labels.into_iter().collect();
    c.toolchain_setup = setup.into_iter().collect();
    c.caches = caches.into_iter().collect();
    c.lint_tools = lint.into_iter().collect();
    c.test_runners = tests.into_iter().collect();
    let mut pythons: Vec<String> = pythons.into_iter().collect();
    pythons.sort_by_key(|v| version_key(v));
    c.python_versions = pythons;
    c.secrets = secrets.into_iter().collect();
    c.variables = vars.into_iter().collect();
    c
}

/// Sorts `3.9` before `3.10`.
pub fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn scan_run(
    run: &str,
    setup: &mut BTreeSet<String>,
    lint: &mut BTreeSet<String>,
    tests: &mut BTreeSet<String>,
) {
    for line in run.lines() {
        let words: Vec<&str> = line
            .split(|c: char| {
                c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '"' | '\'')
            })
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_end_matches(':');
            if LINT_TOOLS.contains(&w) {
                lint.insert(w.to_owned());
            }
            if w == "clippy" || (w == "fmt" && i > 0 && words[i - 1] == "cargo") {
                lint.insert(if w == "clippy" { "clippy" } else { "rustfmt" }.to_owned());
            }
            if TEST_RUNNERS.contains(&w) {
                tests.insert(w.to_owned());
            }
            // `pip install uv`, `pipx install poetry`: the installer the org uses.
            if w == "install" && i > 0 && matches!(words[i - 1], "pip" | "pipx" | "pip3") {
                for next in &words[i + 1..] {
                    if INSTALLERS.contains(next) || matches!(*next, "nox" | "tox") {
                        setup.insert(format!("{} install {next}", words[i - 1]));
                    }
                }
            }
        }
    }
}

/// `secrets.NAME` / `vars.NAME` → NAME (identifier characters only).
fn names_after(text: &str, marker: &str, into: &mut BTreeSet<String>) {
    for (i, _) in text.match_indices(marker) {
        // `needs.secrets.x` or `xsecrets.` are not references.
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            continue;
        }
        let name: String = text[i + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name.len() <= 100 && name != "GITHUB_TOKEN" {
            into.insert(name);
        }
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn runner_labels(v: &Yaml) -> Option<Vec<String>> {
    let mut set: Vec<String> = match v {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Yaml::Hash(_) => v["labels"]
            .as_vec()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .or_else(|| v["labels"].as_str().map(|s| vec![s.to_owned()]))?,
        _ => return None,
    };
    // Expressions (`${{ matrix.os }}`) are not labels.
    if set.is_empty() || !set.iter().all(|l| is_label(l)) {
        return None;
    }
    set.sort();
    set.dedup();
    Some(set)
}

/// A runner label: letters, digits, `-`, `_`, `.`; no expressions or spaces.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `3`, `3.12`, `3.13.1`, `pypy3.10`: a version an installer understands.
pub fn is_version(s: &str) -> bool {
    let s = s.strip_prefix("pypy").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 16
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

fn is_action(a: &str) -> bool {
    let parts: Vec<&str> = a.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// `owner/repo/.github/workflows/file.yml@ref` (a local `./.github/…` call is the
/// repository's own business and is not adopted elsewhere).
pub fn is_reusable_ref(u: &str) -> bool {
    let Some((path, r)) = u.split_once('@') else {
        return false;
    };
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 5
        && parts[2] == ".github"
        && parts[3] == "workflows"
        && (parts[4].ends_with(".yml") || parts[4].ends_with(".yaml"))
        && is_action(&format!("{}/{}", parts[0], parts[1]))
        && parts[4]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !r.is_empty()
        && r.len() <= 64
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> RepoTree {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            t.insert_content(p, c.as_bytes());
        }
        t
    }

    #[test]
    fn reads_what_an_org_workflow_shows() {
        let wf = r#"
name: ci
on: [push]
jobs:
  shared:
    uses: acme/.github/.github/workflows/python-lib.yml@v3
    with:
      python-versions: '["3.11", "3.12"]'
      run-nox: true
    secrets: inherit
  lint:
    runs-on: [self-hosted, linux, acme-large]
    strategy:
      matrix:
        python-version: ["3.11", "3.12"]
        os: ${{ fromJSON(vars.OSES) }}
    steps:
      - uses: actions/checkout@v4
      - uses: astral-sh/setup-uv@v5
        with: {enable-cache: true}
      - uses: actions/setup-python@v5
        with:
          python-version: ${{ matrix.python-version }}
          cache: pip
      - run: |
          pip install nox
          uvx ruff check . && nox -s tests
          echo "${{ secrets.PYPI_TOKEN }} ${{ vars.REGION }}"
  local:
    uses: ./.github/workflows/local.yml
    runs-on: ${{ matrix.os }}
"#;
        let c = extract(&tree(&[(".github/workflows/ci.yml", wf), ("x.py", "")]));
        assert_eq!(c.files, [".github/workflows/ci.yml"]);
        assert_eq!(c.reusable_workflows.len(), 1);
        let r = &c.reusable_workflows[0];
        assert_eq!(
            r.workflow(),
            "acme/.github/.github/workflows/python-lib.yml"
        );
        assert_eq!(r.owner(), "acme");
        assert!(r.secrets_inherit);
        assert_eq!(r.with["run-nox"], "true");
        assert_eq!(
            c.runner_labels,
            [vec!["acme-large", "linux", "self-hosted"]]
        );
        assert_eq!(c.actions["astral-sh/setup-uv"], "v5");
        assert_eq!(c.python_versions, ["3.11", "3.12"]);
        assert_eq!(c.lint_tools, ["ruff"]);
        assert_eq!(c.test_runners, ["nox"]);
        assert!(c.toolchain_setup.contains(&"astral-sh/setup-uv".to_owned()));
        assert!(c.toolchain_setup.contains(&"pip install nox".to_owned()));
        assert!(c
            .caches
            .contains(&"actions/setup-python cache: pip".to_owned()));
        assert!(c.caches.contains(&"astral-sh/setup-uv cache".to_owned()));
        assert_eq!(c.secrets, ["PYPI_TOKEN"]);
        assert_eq!(c.variables, ["OSES", "REGION"]);
        assert!(c
            .summary()
            .contains("calls acme/.github/.github/workflows/python-lib.yml@v3"));
    }

    #[test]
    fn gitlab_tags_and_images() {
        let ci = "test:\n  image: python:3.12-slim\n  tags: [acme-docker]\n  script:\n    - pip install tox\n    - tox -e py\n";
        let c = extract(&tree(&[(".gitlab-ci.yml", ci)]));
        assert_eq!(c.runner_labels, [vec!["acme-docker"]]);
        assert_eq!(c.python_versions, ["3.12"]);
        assert_eq!(c.test_runners, ["tox"]);
    }

    #[test]
    fn hostile_values_are_dropped() {
        let wf = "jobs:\n  a:\n    uses: \"evil/x/.github/workflows/a.yml@main; rm -rf /\"\n  b:\n    runs-on: \"ubuntu latest $(id)\"\n    steps:\n      - uses: \"a b/c@v1\"\n      - uses: actions/setup-python@v5\n        with: {python-version: \"3.12; curl x\"}\n";
        let c = extract(&tree(&[(".github/workflows/x.yml", wf)]));
        assert!(c.reusable_workflows.is_empty());
        assert!(c.runner_labels.is_empty());
        assert_eq!(
            c.actions.keys().collect::<Vec<_>>(),
            ["actions/setup-python"]
        );
        assert!(c.python_versions.is_empty());
        assert!(!c.is_empty());
        // Unparseable YAML is no convention, and no panic.
        assert!(extract(&tree(&[(".github/workflows/y.yml", "jobs: [\n")])).is_empty());
    }
}
