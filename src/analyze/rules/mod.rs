//! Detection rules, one file per ecosystem. Each file is mostly tables (marker files,
//! lockfile → package manager precedence, dependency → framework, script → command)
//! plus the little code that parses its manifests. Every conclusion records the rule
//! that drew it and the file that fired, so `--explain` can show why.
//!
//! To add a stack: a rule file here with an [`Ecosystem`] and its rules, a line in
//! [`ECOSYSTEMS`] and in [`RULES`], a fixture under `tests/fixtures/repos/`, its
//! snapshot, and the vocabulary in `stack.rs` if it needs new words.

pub(crate) mod docs;
pub(crate) mod dotnet;
pub(crate) mod go;
pub(crate) mod jvm;
pub(crate) mod native;
pub(crate) mod node;
pub(crate) mod others;
pub(crate) mod python;
pub(crate) mod ruby_php;
pub(crate) mod rust;

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::Serialize;

use super::stack::{Framework, Language, PackageManager, TestTool};
use super::tree::RepoTree;

/// Identity of a rule, for `--explain` and the registry.
#[derive(Debug, Serialize)]
pub struct Rule {
    /// Stable id, `<ecosystem>/<what>`.
    pub id: &'static str,
    /// What it concludes from what.
    pub description: &'static str,
}

/// Declares a rule constant.
macro_rules! rule {
    ($name:ident, $id:literal, $desc:literal) => {
        pub(crate) static $name: $crate::analyze::rules::Rule = $crate::analyze::rules::Rule {
            id: $id,
            description: $desc,
        };
    };
}
pub(crate) use rule;

/// An ecosystem: how to recognise a project root, detect it, and which nested roots its
/// workspace covers (so members are not counted twice).
pub(crate) struct Ecosystem {
    /// Name (ecosystems fold only their own members).
    pub name: &'static str,
    /// File names that mark a project root.
    pub markers: &'static [&'static str],
    /// File-name suffixes that mark a project root (`.csproj`).
    pub marker_suffixes: &'static [&'static str],
    /// Extra file names whose content detection reads.
    pub reads: &'static [&'static str],
    /// Is `ctx.dir` a root of this ecosystem (beyond having a marker)?
    pub is_root: fn(&Ctx) -> bool,
    /// Detects the project at `ctx.dir`.
    pub detect: fn(&Ctx) -> Draft,
    /// Globs (relative to `ctx.dir`) of nested roots this project's workspace covers.
    pub members: fn(&Ctx) -> Vec<String>,
}

/// Every ecosystem, in reporting order for projects that share a directory.
pub(crate) static ECOSYSTEMS: &[&Ecosystem] = &[
    &rust::ECOSYSTEM,
    &node::ECOSYSTEM,
    &node::DENO,
    &python::ECOSYSTEM,
    &go::ECOSYSTEM,
    &jvm::MAVEN,
    &jvm::GRADLE,
    &jvm::SBT,
    &ruby_php::RUBY,
    &ruby_php::PHP,
    &dotnet::ECOSYSTEM,
    &others::ELIXIR,
    &native::CMAKE,
    &native::MESON,
    &others::SWIFT,
    &others::DART,
    &others::ZIG,
    &others::HASKELL,
    &docs::MKDOCS,
    &docs::HUGO,
    &docs::JEKYLL,
    &docs::SPHINX,
    &docs::TERRAFORM,
    &docs::HELM,
    &docs::ANSIBLE,
    &docs::LATEX,
];

/// Every rule (ids unique: a test checks).
pub fn all_rules() -> Vec<&'static Rule> {
    let mut v = Vec::new();
    v.extend(rust::RULES);
    v.extend(node::RULES);
    v.extend(python::RULES);
    v.extend(go::RULES);
    v.extend(jvm::RULES);
    v.extend(ruby_php::RULES);
    v.extend(dotnet::RULES);
    v.extend(native::RULES);
    v.extend(others::RULES);
    v.extend(docs::RULES);
    v.extend(COMMON_RULES);
    v
}

rule!(
    RUNNER_MAKE,
    "runner/make",
    "a Makefile target (test, lint, build) wins over a guessed command"
);
rule!(
    RUNNER_JUST,
    "runner/just",
    "a justfile recipe (test, lint, build) wins over a guessed command"
);
static COMMON_RULES: &[&Rule] = &[&RUNNER_MAKE, &RUNNER_JUST];

/// Why a conclusion was drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Rule id.
    pub rule: &'static str,
    /// File that fired (repository-relative).
    pub file: String,
    /// What was concluded.
    pub conclusion: String,
}

/// A project being detected.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub language: Language,
    pub package_manager: Option<PackageManager>,
    pub frameworks: BTreeSet<Framework>,
    pub test_tool: Option<TestTool>,
    pub install: Option<String>,
    pub lint: Vec<String>,
    pub build: Option<String>,
    pub test: Option<String>,
    pub runtime_versions: Vec<String>,
    pub confidence: f64,
    pub evidence: BTreeSet<String>,
    pub reasons: Vec<Reason>,
    /// Tools the install command makes available (scoped, see `plan::tools`).
    pub installs: Vec<String>,
    /// Tools CI installs for the project.
    pub tools: Vec<crate::analyze::PinnedTool>,
    /// A build check on the declared minimum toolchain.
    pub minimum: Option<crate::analyze::MinimumCheck>,
}

impl Draft {
    /// A draft for `language` with a base confidence.
    pub fn new(language: Language, confidence: f64) -> Draft {
        Draft {
            language,
            package_manager: None,
            frameworks: BTreeSet::new(),
            test_tool: None,
            install: None,
            lint: Vec::new(),
            build: None,
            test: None,
            runtime_versions: Vec::new(),
            confidence,
            evidence: BTreeSet::new(),
            reasons: Vec::new(),
            installs: Vec::new(),
            tools: Vec::new(),
            minimum: None,
        }
    }

    /// Records evidence for a conclusion.
    pub fn because(&mut self, rule: &'static Rule, file: &str, conclusion: impl Into<String>) {
        self.evidence.insert(file.to_owned());
        self.reasons.push(Reason {
            rule: rule.id,
            file: file.to_owned(),
            conclusion: conclusion.into(),
        });
    }

    /// Raises confidence (capped below certainty: rules can be wrong).
    pub fn boost(&mut self, by: f64) {
        self.confidence = (self.confidence + by).min(0.99);
    }

    /// Adds a lint command once.
    pub fn add_lint(&mut self, cmd: impl Into<String>) {
        let cmd = cmd.into();
        if !self.lint.contains(&cmd) {
            self.lint.push(cmd);
        }
    }
}

/// What a rule sees: the snapshot and the project directory.
pub(crate) struct Ctx<'a> {
    pub tree: &'a RepoTree,
    /// Project directory, "" for the root.
    pub dir: &'a str,
    warnings: &'a RefCell<Vec<String>>,
}

/// Largest YAML document parsed, in bytes (the parser expands aliases).
const MAX_YAML_BYTES: usize = 256 * 1024;
/// Most YAML anchors accepted (alias expansion is exponential in nesting).
const MAX_YAML_ANCHORS: usize = 64;
/// Deepest YAML/flow nesting accepted.
const MAX_YAML_DEPTH: usize = 64;

impl<'a> Ctx<'a> {
    pub fn new(tree: &'a RepoTree, dir: &'a str, warnings: &'a RefCell<Vec<String>>) -> Ctx<'a> {
        Ctx {
            tree,
            dir,
            warnings,
        }
    }

    /// Repository-relative path of `name` in this project.
    pub fn path(&self, name: &str) -> String {
        join(self.dir, name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.tree.has(&self.path(name))
    }

    /// The first of `names` that exists.
    pub fn first(&self, names: &[&'static str]) -> Option<&'static str> {
        names.iter().copied().find(|n| self.has(n))
    }

    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.tree.text(&self.path(name))
    }

    pub fn warn(&self, message: String) {
        let mut w = self.warnings.borrow_mut();
        if !w.contains(&message) {
            w.push(message);
        }
    }

    /// Parses a TOML file; a malformed one is a warning and `None`.
    pub fn toml(&self, name: &str) -> Option<toml::Table> {
        let text = self.text(name)?;
        match text.parse::<toml::Table>() {
            Ok(t) => Some(t),
            Err(e) => {
                let msg = e.to_string();
                self.warn(format!(
                    "{}: invalid TOML ({}); detection is best-effort",
                    self.path(name),
                    first_line(&msg)
                ));
                None
            }
        }
    }

    /// Parses a JSON file; a malformed one is a warning and `None`.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        let text = self.text(name)?;
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.warn(format!(
                    "{}: invalid JSON ({e}); detection is best-effort",
                    self.path(name)
                ));
                None
            }
        }
    }

    /// Parses a YAML file (first document); malformed or dangerous → warning and `None`.
    pub fn yaml(&self, name: &str) -> Option<yaml_rust2::Yaml> {
        let path = self.path(name);
        parse_yaml(self.text(name)?, &path, |m| self.warn(m))
    }

    /// Targets of this directory's Makefile and recipes of its justfile.
    pub fn task_runner(&self, task: &str) -> Option<(&'static Rule, String, String)> {
        for (file, rule, cmd) in [
            ("Makefile", &RUNNER_MAKE, "make"),
            ("makefile", &RUNNER_MAKE, "make"),
            ("GNUmakefile", &RUNNER_MAKE, "make"),
            ("justfile", &RUNNER_JUST, "just"),
            ("Justfile", &RUNNER_JUST, "just"),
        ] {
            if let Some(text) = self.text(file) {
                let defined = text.lines().any(|l| {
                    l.strip_prefix(task).is_some_and(|rest| {
                        let rest = rest.trim_start();
                        // `test:` (make, just) or `test arg:` (just) but not `test := x`.
                        (rest.starts_with(':') && !rest.starts_with(":="))
                            || (cmd == "just" && rest.contains(':') && !rest.contains(":="))
                    })
                });
                if defined {
                    return Some((rule, self.path(file), format!("{cmd} {task}")));
                }
            }
        }
        None
    }

    /// The lines of a Makefile target's or justfile recipe's body (`file` is the
    /// repository path `task_runner` returned).
    pub fn recipe(&self, file: &str, task: &str) -> Vec<String> {
        let Some(text) = self.tree.text(file) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if inside {
                let body = line.strip_prefix('\t').or_else(|| {
                    line.strip_prefix("    ")
                        .or_else(|| line.strip_prefix("  "))
                });
                match body {
                    Some(b) if !b.trim().is_empty() => {
                        // make's `@` (silent) and `-` (ignore errors) prefixes.
                        out.push(b.trim().trim_start_matches(['@', '-']).to_owned());
                        continue;
                    }
                    _ if line.trim().is_empty() => continue,
                    _ => inside = false,
                }
            }
            if let Some(rest) = line.strip_prefix(task) {
                let rest = rest.trim_start();
                if (rest.starts_with(':') && !rest.starts_with(":="))
                    || (file.to_ascii_lowercase().ends_with("justfile")
                        && rest.contains(':')
                        && !rest.contains(":="))
                {
                    inside = true;
                    // `test: build` runs `build` first: its recipe counts too.
                    let deps = rest.split_once(':').map(|(_, d)| d).unwrap_or("");
                    for dep in deps.split_whitespace().filter(|w| {
                        w.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    }) {
                        if dep != task {
                            out.extend(self.recipe_once(file, dep));
                        }
                    }
                }
            }
        }
        out
    }

    /// `recipe` without following prerequisites (no recursion).
    fn recipe_once(&self, file: &str, task: &str) -> Vec<String> {
        let Some(text) = self.tree.text(file) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if inside {
                match line
                    .strip_prefix('\t')
                    .or_else(|| line.strip_prefix("    "))
                {
                    Some(b) if !b.trim().is_empty() => {
                        out.push(b.trim().trim_start_matches(['@', '-']).to_owned());
                        continue;
                    }
                    _ if line.trim().is_empty() => continue,
                    _ => inside = false,
                }
            }
            if line.strip_prefix(task).is_some_and(|r| {
                r.trim_start().starts_with(':') && !r.trim_start().starts_with(":=")
            }) {
                inside = true;
            }
        }
        out
    }

    /// Does any file directly in this directory end with `suffix`?
    pub fn any_child_with_suffix(&self, suffix: &str) -> Option<&'a str> {
        self.tree.children(self.dir).find(|p| p.ends_with(suffix))
    }

    /// Does any file under this directory (any depth) end with one of `suffixes`?
    pub fn any_under_with_suffix(&self, suffixes: &[&str]) -> bool {
        self.tree
            .under(self.dir)
            .any(|p| suffixes.iter().any(|s| p.ends_with(s)))
    }
}

/// Parses YAML defensively (size, anchors, depth) before handing it to the parser.
pub(crate) fn parse_yaml(
    text: &str,
    path: &str,
    warn: impl Fn(String),
) -> Option<yaml_rust2::Yaml> {
    if text.len() > MAX_YAML_BYTES {
        warn(format!(
            "{path}: YAML over {MAX_YAML_BYTES} bytes; not parsed"
        ));
        return None;
    }
    let anchors = text
        .split(|c: char| c.is_whitespace() || c == '[' || c == '{' || c == ',')
        .filter(|t| t.len() > 1 && (t.starts_with('&') || t.starts_with('*')))
        .count();
    let depth = text
        .lines()
        .map(|l| l.len() - l.trim_start().len())
        .max()
        .unwrap_or(0)
        / 2
        + text
            .chars()
            .filter(|c| *c == '[' || *c == '{')
            .count()
            .min(MAX_YAML_DEPTH + 1);
    if anchors > MAX_YAML_ANCHORS || depth > MAX_YAML_DEPTH * 4 {
        warn(format!(
            "{path}: YAML with too many anchors or too deep; not parsed"
        ));
        return None;
    }
    match yaml_rust2::YamlLoader::load_from_str(text) {
        Ok(mut docs) if !docs.is_empty() => Some(docs.swap_remove(0)),
        Ok(_) => None,
        Err(e) => {
            warn(format!(
                "{path}: invalid YAML ({e}); detection is best-effort"
            ));
            None
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// `dir/name`, or `name` at the root.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Frameworks named by a dependency table (`dependency name → framework`), with the
/// dependency that named each.
pub(crate) fn frameworks_from<'t>(
    deps: &BTreeSet<String>,
    table: &'t [(&'t str, Framework)],
) -> Vec<(Framework, &'t str)> {
    table
        .iter()
        .filter(|(dep, _)| deps.contains(*dep))
        .map(|(dep, fw)| (*fw, *dep))
        .collect()
}

/// Major versions named in a requirement (`>=18`, `^20 || ^22`, `18.x`, `v20.11.0`).
pub(crate) fn majors_in(req: &str) -> Vec<u32> {
    let bytes = req.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || bytes[i - 1] != b'.') {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if let Ok(n) = req[start..i].parse() {
                out.push(n);
            }
            // Skip the `.minor.patch` (or `.x`) that belongs to this version.
            while i < bytes.len() && matches!(bytes[i], b'.' | b'0'..=b'9' | b'x' | b'*') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Versions of a release line list (e.g. supported Python minors) allowed by a simple
/// requirement: `>=A`, `>A`, `<B`, `<=B`, `~=A`, `^A`, `==A`, comma/space separated.
pub(crate) fn versions_in_range(req: &str, lines: &[&str]) -> Vec<String> {
    let parse = |v: &str| -> Option<Vec<u32>> {
        let v = v.trim().trim_start_matches('v').trim_end_matches(".*");
        let parts: Option<Vec<u32>> = v
            .split('.')
            .take(2)
            .map(|p| p.trim().parse().ok())
            .collect();
        parts.filter(|p| !p.is_empty())
    };
    let mut keep: Vec<String> = Vec::new();
    'line: for line in lines {
        let Some(lv) = parse(line) else { continue };
        for clause in req
            .split([',', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let (op, v) = if let Some(v) = clause.strip_prefix(">=") {
                (">=", v)
            } else if let Some(v) = clause.strip_prefix("<=") {
                ("<=", v)
            } else if let Some(v) = clause.strip_prefix("~=") {
                (">=", v)
            } else if let Some(v) = clause.strip_prefix("==") {
                ("==", v)
            } else if let Some(v) = clause.strip_prefix("!=") {
                ("!=", v)
            } else if let Some(v) = clause.strip_prefix('>') {
                (">", v)
            } else if let Some(v) = clause.strip_prefix('<') {
                ("<", v)
            } else if let Some(v) = clause.strip_prefix('^') {
                (">=", v)
            } else {
                ("==", clause)
            };
            // A clause we cannot read makes the whole requirement unknown.
            let Some(bound) = parse(v) else {
                return Vec::new();
            };
            let cmp = lv.iter().take(bound.len()).cmp(bound.iter());
            let ok = match op {
                ">=" => cmp.is_ge(),
                "<=" => cmp.is_le(),
                ">" => cmp.is_gt(),
                "<" => cmp.is_lt(),
                "!=" => !cmp.is_eq(),
                _ => cmp.is_eq(),
            };
            if !ok {
                continue 'line;
            }
        }
        keep.push((*line).to_owned());
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique() {
        let rules = all_rules();
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(n, ids.len(), "duplicate rule id");
        assert!(n > 40);
    }

    #[test]
    fn majors() {
        assert_eq!(majors_in(">=18"), [18]);
        assert_eq!(majors_in("^20.1 || ^22"), [20, 22]);
        assert_eq!(majors_in("v20.11.0"), [20]);
        assert_eq!(majors_in("18.x"), [18]);
        assert_eq!(majors_in("lts/*"), Vec::<u32>::new());
    }

    #[test]
    fn version_ranges() {
        let py = ["3.10", "3.11", "3.12", "3.13", "3.14"];
        assert_eq!(
            versions_in_range(">=3.11", &py),
            ["3.11", "3.12", "3.13", "3.14"]
        );
        assert_eq!(
            versions_in_range(">=3.9,<3.13", &py),
            ["3.10", "3.11", "3.12"]
        );
        assert_eq!(versions_in_range("~=3.12", &py), ["3.12", "3.13", "3.14"]);
        assert_eq!(versions_in_range("==3.11.*", &py), ["3.11"]);
        assert_eq!(versions_in_range("garbage", &py), Vec::<String>::new());
    }

    #[test]
    fn yaml_bombs_are_refused() {
        let bomb = "a: &a [x,x]\nb: &b [*a,*a]\n".to_owned()
            + &(0..70)
                .map(|i| format!("c{i}: &c{i} [*b,*b]\n"))
                .collect::<String>();
        let warned = RefCell::new(Vec::new());
        assert!(parse_yaml(&bomb, "x.yml", |m| warned.borrow_mut().push(m)).is_none());
        assert_eq!(warned.borrow().len(), 1);
        assert!(parse_yaml("a: [1, 2]", "y.yml", |_| {}).is_some());
    }
}
