//! Stack detection: what a repository is, from its files. Pure: input is a [`RepoTree`]
//! (paths plus the contents of the files [`files_to_read`] asked for), output is an
//! [`Analysis`]; no forge, database, environment or clock. `pipewright analyze` and the
//! bot's workers run the same code.
//!
//! Two phases keep remote analysis cheap: [`files_to_read`] picks, from names alone, the
//! handful of manifests detection needs (one tree listing + those blob reads), then
//! [`analyze`] discovers sub-projects and runs each ecosystem's rules on them. Refiners
//! (the embedding model) may fill gaps afterwards but never override a confident rule.

pub mod ci;
pub mod conventions;
pub mod fingerprint;
pub mod rules;
pub mod stack;
pub mod tree;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

pub use ci::ExistingCi;
pub use rules::{Reason, Rule};
pub use stack::{CiProvider, Framework, Language, PackageManager, TestTool};
pub use tree::{load_local, Content, Limits, RepoTree};

use rules::{Ctx, Draft, ECOSYSTEMS};

/// What detection concluded about a repository (the `analyze --format json` contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Every buildable project, root first, then by path.
    pub projects: Vec<Project>,
    /// Any Dockerfile in the repository.
    pub dockerfile: bool,
    /// Their paths.
    pub dockerfiles: Vec<String>,
    /// Services that docker-compose files run (postgres, redis, …): tests may need them.
    pub services: Vec<String>,
    /// CI/CD configuration already present, whatever system it is for.
    pub existing_ci: Vec<ExistingCi>,
    /// The forge `missing` is judged for (omitted when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forge: Option<crate::forge::Forge>,
    /// What is missing: `ci`, `cd`. With a `forge`, only CI that runs there counts (its
    /// own CI or an external service); without, any CI file counts.
    pub missing: Vec<&'static str>,
    /// Problems met (malformed manifests, limits hit); the result is best-effort.
    pub warnings: Vec<String>,
    /// Files whose content was read (the proxy for forge API calls).
    pub files_read: usize,
}

/// One buildable project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    /// Directory, relative, `/`-separated; `.` for the root.
    pub path: String,
    /// Main language.
    pub language: Language,
    /// Package manager (`""` when the project has none).
    #[serde(serialize_with = "opt_str")]
    pub package_manager: Option<PackageManager>,
    /// Frameworks and tools.
    pub frameworks: Vec<Framework>,
    /// Test runner (`""` when none was found).
    #[serde(serialize_with = "opt_str")]
    pub test_tool: Option<TestTool>,
    /// Commands, in the project's directory.
    pub commands: Commands,
    /// Runtime versions the project declares (toolchain, language versions).
    pub runtime_versions: Vec<String>,
    /// 0–1: how sure the rules are.
    pub confidence: f64,
    /// Files that fired a rule.
    pub evidence: Vec<String>,
    /// Which rule concluded what, from which file (`--explain`; omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Workspace members folded into this project (paths; omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// What the plan needs to know about the project's tools (not in the JSON contract).
    #[serde(skip)]
    pub toolbox: Toolbox,
}

/// Where a project's tools come from: what its install command makes available, and
/// the tools CI must install for it (at the version it pins). The plan checks every
/// step against these (see `plan::tools`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toolbox {
    /// Tools the install command makes available, scoped as `plan::tools` describes
    /// (`venv:ruff`, `py:pytest`, `node:jest`, `tox`).
    pub installs: Vec<String>,
    /// Tools to install before the project's own install step.
    pub tools: Vec<PinnedTool>,
    /// A declared minimum toolchain to check the build with (Rust's MSRV).
    pub minimum: Option<MinimumCheck>,
    /// Commands that run a Makefile target or justfile recipe, with what the recipe
    /// calls and the ecosystem's own command to fall back to.
    pub runner_tasks: Vec<RunnerTask>,
}

/// A task run through the project's task runner (`make test`, `just lint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerTask {
    /// The command (`make test`).
    pub command: String,
    /// Tools the recipe's lines call.
    pub recipe_needs: Vec<String>,
    /// The commands detection would have used without the task runner.
    pub fallback: Vec<String>,
}

/// A build check on the oldest toolchain the project declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumCheck {
    /// The version (`1.70`).
    pub version: String,
    /// The command (`cargo check --locked`).
    pub command: String,
}

/// A tool CI installs for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedTool {
    /// The executable (`tox`, `ruff`, `just`).
    pub name: String,
    /// The requirement the project pins (`ruff==0.4.4`), if any.
    pub spec: Option<String>,
}

/// The commands CI should run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Commands {
    /// Install dependencies (honouring the lockfile).
    #[serde(serialize_with = "opt_string")]
    pub install: Option<String>,
    /// Lint and format checks, only with tools the project uses.
    pub lint: Vec<String>,
    /// Build.
    #[serde(serialize_with = "opt_string")]
    pub build: Option<String>,
    /// Run the tests.
    #[serde(serialize_with = "opt_string")]
    pub test: Option<String>,
}

fn opt_str<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

fn opt_string<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

/// Something that refines an analysis after the rules (the embedding model). It may fill
/// empty fields or add evidence; it must not override a rule's confident conclusion.
pub trait Refiner {
    /// Refines `analysis` of `tree` in place.
    fn refine(&self, tree: &RepoTree, analysis: &mut Analysis);
}

/// Compose files whose services tests may need.
const COMPOSE_FILES: &[&str] = &[
    "docker-compose.yml",
    "docker-compose.yaml",
    "compose.yml",
    "compose.yaml",
    "docker-compose.test.yml",
    "docker-compose.ci.yml",
];

/// Images → the service name CI should provide.
const SERVICES: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("postgis", "postgres"),
    ("mysql", "mysql"),
    ("mariadb", "mariadb"),
    ("redis", "redis"),
    ("valkey", "redis"),
    ("mongo", "mongo"),
    ("rabbitmq", "rabbitmq"),
    ("elasticsearch", "elasticsearch"),
    ("opensearch", "opensearch"),
    ("memcached", "memcached"),
    ("kafka", "kafka"),
    ("minio", "minio"),
    ("localstack", "localstack"),
    ("nats", "nats"),
];

/// Files detection reads, chosen from names alone (no content). Small on purpose: it is
/// the number of blob reads a remote analysis costs.
pub fn files_to_read(paths: &[&str]) -> Vec<String> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for eco in ECOSYSTEMS {
        names.extend(eco.markers.iter().filter(|m| !m.ends_with(".tf")));
        names.extend(eco.reads);
    }
    // Markers whose presence suffices (large, or never parsed).
    for skip in [
        "Makefile",
        "_config.yml",
        "config.toml",
        "hugo.toml",
        "Chart.yaml",
        "ansible.cfg",
        "playbook.yml",
        "site.yml",
        "mkdocs.yml",
        "mkdocs.yaml",
        "hugo.yaml",
        "hugo.json",
        "build.zig",
        "stack.yaml",
        "cabal.project",
        "build.sbt",
        "Package.swift",
    ] {
        names.remove(skip);
    }
    names.extend([
        "Makefile",
        "makefile",
        "GNUmakefile",
        "justfile",
        "Justfile",
        "tsconfig.json",
        "mkdocs.yml",
        "stack.yaml",
        "Package.swift",
        "pubspec.yaml",
    ]);
    names.extend(COMPOSE_FILES);
    let mut out: Vec<String> = paths
        .iter()
        .filter(|p| {
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
            if is_sample_dir(dir) {
                return false;
            }
            names.contains(name)
                || name.ends_with(".csproj")
                || name.ends_with(".fsproj")
                || (name.starts_with("requirements")
                    && name.ends_with(".txt")
                    && p.split('/').count() <= 3)
                // `requirements/dev.txt`: a project's requirements directory.
                || (name.ends_with(".txt")
                    && dir.rsplit('/').next() == Some("requirements")
                    && p.split('/').count() <= 4)
                || ci::is_ci_file(p)
                || crate::repo_config::CONFIG_PATHS.contains(p)
        })
        .map(|p| (*p).to_owned())
        .collect();
    // Shallow files first: if the read cap is hit, the root survives.
    out.sort_by_key(|p| (p.matches('/').count(), p.clone()));
    out
}

/// Does a change to `path` possibly change what detection concludes? A push that only
/// touches other files (sources, docs) is not worth an analysis's API calls.
pub fn affects_detection(path: &str) -> bool {
    if !files_to_read(&[path]).is_empty() {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("Dockerfile")
        || name.ends_with(".dockerfile")
        || name.ends_with(".tf")
        || ECOSYSTEMS.iter().any(|e| e.markers.contains(&name))
}

/// Reads a local checkout and analyses it.
pub fn analyze_path(root: &Path) -> anyhow::Result<Analysis> {
    let tree = load_local(root, &Limits::default())?;
    Ok(analyze(&tree))
}

/// Analyses a snapshot with the rules alone.
pub fn analyze(tree: &RepoTree) -> Analysis {
    analyze_with(tree, &[])
}

/// Analyses a snapshot, then lets each refiner fill gaps.
pub fn analyze_with(tree: &RepoTree, refiners: &[&dyn Refiner]) -> Analysis {
    let warnings = RefCell::new(tree.warnings().to_vec());
    let mut projects = discover(tree, &warnings);
    if projects.is_empty() {
        let ctx = Ctx::new(tree, "", &warnings);
        if let Some(d) = rules::others::detect_shell(&ctx) {
            projects.push(finish(&ctx, d));
        }
    }

    let dockerfiles: Vec<String> = tree
        .files()
        .iter()
        .filter(|p| {
            let (dir, n) = p.rsplit_once('/').unwrap_or(("", p));
            !is_sample_dir(dir)
                && (n == "Dockerfile"
                    || n == "Containerfile"
                    || n.starts_with("Dockerfile.")
                    || n.ends_with(".Dockerfile")
                    || n.ends_with(".dockerfile"))
        })
        .cloned()
        .collect();
    let services = compose_services(tree, &warnings);
    let existing_ci = ci::detect(tree);
    let missing = missing_for(
        &existing_ci,
        None,
        !projects.is_empty() || !dockerfiles.is_empty(),
    );
    let mut analysis = Analysis {
        projects,
        dockerfile: !dockerfiles.is_empty(),
        dockerfiles,
        services,
        existing_ci,
        forge: None,
        missing,
        warnings: warnings.into_inner(),
        files_read: tree.files_read(),
    };
    for r in refiners {
        r.refine(tree, &mut analysis);
    }
    analysis
}

/// What is missing (`ci`, `cd`) given the CI present, counting only what runs on `forge`
/// when it is known.
fn missing_for(
    existing: &[ExistingCi],
    forge: Option<crate::forge::Forge>,
    buildable: bool,
) -> Vec<&'static str> {
    let counts = |c: &&ExistingCi| forge.is_none_or(|f| c.runs_on_forge(f));
    let has = |kind: &str| existing.iter().filter(counts).any(|c| c.kind == kind);
    let mut missing = Vec::new();
    if !has("ci") {
        missing.push("ci");
    }
    if !has("cd") && buildable {
        missing.push("cd");
    }
    missing
}

impl Analysis {
    /// Judges what is missing for a repository hosted on `forge`: a forge runs only its
    /// own CI and external services, so `.github/workflows/` on GitLab or Bitbucket, or a
    /// `.gitlab-ci.yml` on GitHub, is listed in `existing_ci` but is no CI there.
    pub fn judge_for(&mut self, forge: crate::forge::Forge) {
        self.forge = Some(forge);
        self.missing = missing_for(
            &self.existing_ci,
            Some(forge),
            !self.projects.is_empty() || self.dockerfile,
        );
    }

    /// The CI (`kind` ci) files that run for this repository: on its forge when known
    /// ([`Analysis::judge_for`]), otherwise all of them.
    pub fn effective_ci(&self) -> impl Iterator<Item = &ExistingCi> {
        self.existing_ci
            .iter()
            .filter(move |c| c.kind == "ci" && self.forge.is_none_or(|f| c.runs_on_forge(f)))
    }

    /// CI files present that do not run on the repository's forge (none when the forge
    /// is unknown).
    pub fn foreign_ci(&self) -> impl Iterator<Item = &ExistingCi> {
        self.existing_ci
            .iter()
            .filter(move |c| self.forge.is_some_and(|f| !c.runs_on_forge(f)))
    }
}

/// Directory names whose projects are samples, fixtures or scaffolding templates, not
/// parts of the repository's own build (vite's `create-vite/template-*`, flask's
/// `examples/*`, a test suite's fixture repositories).
const NOT_PROJECT_DIRS: &[&str] = &[
    "examples",
    "example",
    "samples",
    "sample",
    "fixtures",
    "__fixtures__",
    "testdata",
    "test-fixtures",
    "playground",
    "templates",
    "template",
];

fn is_sample_dir(dir: &str) -> bool {
    dir.split('/')
        .any(|c| NOT_PROJECT_DIRS.contains(&c) || c.starts_with("template-"))
}

/// Finds project roots, folds workspace members into their workspace, detects each.
fn discover(tree: &RepoTree, warnings: &RefCell<Vec<String>>) -> Vec<Project> {
    // Directories holding any marker, shallowest first.
    let mut dirs: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut samples = BTreeSet::new();
    for p in tree.files() {
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        if is_sample_dir(dir) {
            if ECOSYSTEMS.iter().any(|e| e.markers.contains(&name)) {
                samples.insert(dir);
            }
            continue;
        }
        if ECOSYSTEMS.iter().any(|e| {
            e.markers.contains(&name) || e.marker_suffixes.iter().any(|s| name.ends_with(s))
        }) {
            dirs.insert((
                if dir.is_empty() {
                    0
                } else {
                    dir.matches('/').count() + 1
                },
                dir.to_owned(),
            ));
        }
    }
    // (ecosystem, root dir, member globs) of accepted workspace roots.
    let mut roots: Vec<(&str, String, Vec<String>)> = Vec::new();
    let mut projects: Vec<Project> = Vec::new();
    for (_, dir) in &dirs {
        for eco in ECOSYSTEMS {
            let ctx = Ctx::new(tree, dir, warnings);
            if !(eco.is_root)(&ctx) {
                continue;
            }
            let covered = roots.iter().position(|(name, root, globs)| {
                *name == eco.name
                    && is_under(dir, root)
                    && globs.iter().any(|g| glob_match(g, relative(dir, root)))
            });
            if let Some(i) = covered {
                let members: &mut Vec<String> = &mut projects[i].members;
                if !members.contains(dir) {
                    members.push(dir.clone());
                }
                continue;
            }
            roots.push((eco.name, dir.clone(), (eco.members)(&ctx)));
            let draft = (eco.detect)(&ctx);
            projects.push(finish(&ctx, draft));
        }
    }
    // A Rails, Laravel, Symfony, Django or Phoenix application whose directory also holds
    // a package.json (its assets) is that application first: the JavaScript project at
    // the same path comes after it.
    let backend = |p: &Project| {
        p.frameworks.iter().any(|f| {
            matches!(
                f,
                Framework::Rails
                    | Framework::Laravel
                    | Framework::Symfony
                    | Framework::Django
                    | Framework::Phoenix
            )
        })
    };
    let mut i = 0;
    while i < projects.len() {
        let j = (i..projects.len())
            .find(|&k| projects[k].path != projects[i].path)
            .unwrap_or(projects.len());
        projects[i..j].sort_by_key(|p| !backend(p));
        i = j;
    }
    if !samples.is_empty() {
        warnings.borrow_mut().push(format!(
            "{} example, fixture or template project(s) not listed (e.g. {})",
            samples.len(),
            samples.iter().next().copied().unwrap_or_default()
        ));
    }
    projects
}

fn is_under(dir: &str, root: &str) -> bool {
    dir != root && (root.is_empty() || dir.starts_with(root) && dir[root.len()..].starts_with('/'))
}

fn relative<'a>(dir: &'a str, root: &str) -> &'a str {
    if root.is_empty() {
        dir
    } else {
        &dir[root.len() + 1..]
    }
}

/// Workspace member globs: `*` matches within a path segment, `**` any segments.
fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<&str> = path.split('/').collect();
    fn seg_match(p: &str, s: &str) -> bool {
        match p.split_once('*') {
            None => p == s,
            Some((pre, rest)) => {
                if !s.starts_with(pre) {
                    return false;
                }
                let s = &s[pre.len()..];
                (0..=s.len())
                    .filter(|i| s.is_char_boundary(*i))
                    .any(|i| seg_match(rest, &s[i..]))
            }
        }
    }
    fn go(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(pp), Some(ss)) => seg_match(pp, ss) && go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(&pat, &segs)
}

/// Applies the project's own task runners and turns a draft into a project. A
/// Makefile or justfile recipe replaces the ecosystem's command; the plan keeps it only
/// when the job can satisfy the recipe (see `Toolbox::runner_tasks`). CMake and Meson
/// projects keep their build system's own runner: a hand-written Makefile there wraps
/// the same build, and ctest/meson test are what the job just built — unless the build
/// system registers no tests, where the Makefile's `test` target is the only suite.
fn finish(ctx: &Ctx, mut d: Draft) -> Project {
    let native_build = matches!(
        d.package_manager,
        Some(PackageManager::Cmake) | Some(PackageManager::Meson)
    );
    let mut runner_tasks = Vec::new();
    for (task, slot) in [("test", 0), ("lint", 1), ("build", 2)] {
        if let Some((rule, file, cmd)) = ctx.task_runner(task) {
            // CMake and Meson build and test what they configured; a hand-written
            // Makefile's target is used only for what the build system lacks (tests it
            // never registered, a lint).
            let covered = match slot {
                0 => d.test.is_some(),
                1 => !d.lint.is_empty(),
                _ => true,
            };
            if native_build && cmd.starts_with("make ") && covered {
                continue;
            }
            d.because(rule, &file, format!("{task}: {cmd}"));
            let recipe_needs: Vec<String> = ctx
                .recipe(&file, task)
                .iter()
                .flat_map(|line| crate::plan::tools::needs(&runner_variables_as_words(line)))
                .collect();
            let fallback: Vec<String> = match slot {
                0 => d.test.replace(cmd.clone()).into_iter().collect(),
                1 => std::mem::replace(&mut d.lint, vec![cmd.clone()]),
                _ => d.build.replace(cmd.clone()).into_iter().collect(),
            };
            runner_tasks.push(RunnerTask {
                command: cmd,
                recipe_needs,
                fallback,
            });
        }
    }
    Project {
        path: if ctx.dir.is_empty() {
            ".".to_owned()
        } else {
            ctx.dir.to_owned()
        },
        language: d.language,
        package_manager: d.package_manager,
        frameworks: d.frameworks.into_iter().collect(),
        test_tool: d.test_tool,
        commands: Commands {
            install: d.install,
            lint: d.lint,
            build: d.build,
            test: d.test,
        },
        runtime_versions: d.runtime_versions,
        confidence: (d.confidence * 100.0).round() / 100.0,
        evidence: d.evidence.into_iter().collect(),
        reasons: d.reasons,
        members: Vec::new(),
        toolbox: Toolbox {
            installs: d.installs,
            tools: d.tools,
            minimum: d.minimum,
            runner_tasks,
        },
    }
}

/// A recipe line with make's and just's variable references written as plain shell
/// variables (`$(CC) $(CFLAGS) $< -o $@` → `$CC $CFLAGS $_ -o $_`), so the shell-word
/// parser sees one word per reference: a program given by a variable is the runner's to
/// resolve (`$(CC)` is the C compiler the toolchain has), and its parentheses and `$<`
/// are not shell syntax (a subshell, a redirection) that would turn flags into programs.
fn runner_variables_as_words(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            // make's `$$` is a literal `$` for the shell.
            ('$', Some('$')) => {
                chars.next();
                out.push('$');
            }
            ('$', Some(open @ ('(' | '{'))) => {
                chars.next();
                let close = if open == '(' { ')' } else { '}' };
                let mut depth = 1;
                let mut name = String::new();
                for n in chars.by_ref() {
                    if n == open {
                        depth += 1;
                    } else if n == close {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    name.push(n);
                }
                let word: String = name
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                    .collect();
                out.push('$');
                out.push_str(if word.is_empty() { "_" } else { &word });
            }
            // Automatic variables: `$@ $< $^ $? $* $+`.
            ('$', Some('@' | '<' | '^' | '?' | '*' | '+')) => {
                chars.next();
                out.push_str("$_");
            }
            // just's `{{name}}` interpolation.
            ('{', Some('{')) => {
                chars.next();
                let mut name = String::new();
                while let Some(n) = chars.next() {
                    if n == '}' && chars.peek() == Some(&'}') {
                        chars.next();
                        break;
                    }
                    name.push(n);
                }
                let word: String = name
                    .trim()
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                    .collect();
                out.push('$');
                out.push_str(if word.is_empty() { "_" } else { &word });
            }
            _ => out.push(c),
        }
    }
    out
}

fn compose_services(tree: &RepoTree, warnings: &RefCell<Vec<String>>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for path in tree
        .files()
        .iter()
        .filter(|p| COMPOSE_FILES.contains(&p.rsplit('/').next().unwrap_or(p)))
    {
        let Some(text) = tree.text(path) else {
            continue;
        };
        let Some(doc) = rules::parse_yaml(text, path, |m| warnings.borrow_mut().push(m)) else {
            continue;
        };
        let Some(services) = doc["services"].as_hash() else {
            continue;
        };
        for svc in services.values() {
            let Some(image) = svc["image"].as_str() else {
                continue;
            };
            // registry/namespace/name:tag → name
            let name = image
                .rsplit('/')
                .next()
                .unwrap_or(image)
                .split([':', '@'])
                .next()
                .unwrap_or("");
            if let Some((_, id)) = SERVICES
                .iter()
                .find(|(img, _)| name == *img || name.starts_with(&format!("{img}-")))
            {
                out.insert((*id).to_owned());
            }
        }
    }
    out.into_iter().collect()
}

/// A readable report; with `explain`, the rule and file behind every conclusion.
pub fn render_text(a: &Analysis, explain: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if a.projects.is_empty() {
        s.push_str("No buildable project found.\n");
    }
    for p in &a.projects {
        let _ = writeln!(
            s,
            "{} — {} ({:.0}% sure)",
            p.path,
            p.language,
            p.confidence * 100.0
        );
        let row = |s: &mut String, k: &str, v: String| {
            if !v.is_empty() {
                let _ = writeln!(s, "  {k:<16} {v}");
            }
        };
        row(
            &mut s,
            "package manager",
            p.package_manager.map(|x| x.to_string()).unwrap_or_default(),
        );
        row(
            &mut s,
            "frameworks",
            p.frameworks
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            &mut s,
            "test tool",
            p.test_tool.map(|x| x.to_string()).unwrap_or_default(),
        );
        row(&mut s, "versions", p.runtime_versions.join(", "));
        row(
            &mut s,
            "install",
            p.commands.install.clone().unwrap_or_default(),
        );
        for l in &p.commands.lint {
            row(&mut s, "lint", l.clone());
        }
        row(
            &mut s,
            "build",
            p.commands.build.clone().unwrap_or_default(),
        );
        row(&mut s, "test", p.commands.test.clone().unwrap_or_default());
        if explain {
            let _ = writeln!(s, "  because:");
            for r in &p.reasons {
                let _ = writeln!(s, "    [{}] {}: {}", r.rule, r.file, r.conclusion);
            }
        } else {
            row(&mut s, "evidence", p.evidence.join(", "));
        }
        s.push('\n');
    }
    if a.dockerfile {
        let _ = writeln!(s, "Dockerfiles: {}", a.dockerfiles.join(", "));
    }
    if !a.services.is_empty() {
        let _ = writeln!(s, "Services (compose): {}", a.services.join(", "));
    }
    if a.existing_ci.is_empty() {
        s.push_str("Existing CI/CD: none\n");
    } else {
        for c in &a.existing_ci {
            let elsewhere = match a.forge {
                Some(f) if !c.runs_on_forge(f) => format!("; does not run on {f}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "Existing {}: {} ({}{elsewhere})",
                c.kind.to_uppercase(),
                c.path,
                c.provider
            );
        }
    }
    let _ = writeln!(
        s,
        "Missing{}: {}",
        a.forge.map(|f| format!(" on {f}")).unwrap_or_default(),
        if a.missing.is_empty() {
            "nothing".to_owned()
        } else {
            a.missing.join(", ")
        }
    );
    for w in &a.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_variables_are_single_words() {
        let needs = |l: &str| crate::plan::tools::needs(&runner_variables_as_words(l));
        // A program given by a make variable, flags with `=`, automatic variables.
        assert!(needs("$(CC) -DJSMN_STRICT=1 $(CFLAGS) $(LDFLAGS) $< -o test/$@").is_empty());
        assert_eq!(needs("${PYTHON} -m pytest"), Vec::<String>::new());
        assert_eq!(needs("clang-tidy jsmn.h --checks='*'"), vec!["clang-tidy"]);
        assert_eq!(
            needs("cargo test {{ args }} && mdbook build"),
            vec!["cargo", "mdbook"]
        );
        assert_eq!(
            runner_variables_as_words("echo $$HOME $(shell ls (x))"),
            "echo $HOME $shell_ls__x_"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("packages/*", "packages/app"));
        assert!(!glob_match("packages/*", "packages/app/sub"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("./crates/**", "crates/x/y"));
        assert!(glob_match("apps/web-*", "apps/web-admin"));
        assert!(!glob_match("apps/web-*", "apps/api"));
        assert!(glob_match("backend", "backend"));
    }

    #[test]
    fn reads_only_manifests() {
        let paths = [
            "Cargo.toml",
            "src/main.rs",
            "README.md",
            "web/package.json",
            ".github/workflows/ci.yml",
            "docs/x.md",
            "app/App.csproj",
            "requirements-dev.txt",
        ];
        assert_eq!(
            files_to_read(&paths),
            [
                "Cargo.toml",
                "requirements-dev.txt",
                "app/App.csproj",
                "web/package.json",
                ".github/workflows/ci.yml"
            ]
        );
    }

    #[test]
    fn only_changes_detection_reads_trigger_an_analysis() {
        for p in [
            "Cargo.toml",
            "web/package.json",
            ".github/workflows/ci.yml",
            "Dockerfile",
            "infra/main.tf",
            ".pipewright.yml",
            "go.mod",
        ] {
            assert!(affects_detection(p), "{p}");
        }
        for p in [
            "src/main.rs",
            "README.md",
            "docs/index.md",
            "web/src/App.tsx",
        ] {
            assert!(!affects_detection(p), "{p}");
        }
    }
}
