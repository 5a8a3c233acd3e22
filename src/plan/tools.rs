//! Tool provenance: which executables a step's command calls ([`needs`]), and the
//! plan's invariant ([`check`]) that each of them is provided by the toolchain, by an
//! earlier step, or is a script of the project itself. [`enforce`] leaves out the
//! optional steps (lint, coverage) that break it and says so in the plan's notes.
//!
//! Tools are named by scope:
//! - `name`: an executable on `PATH`;
//! - `py:name`: importable by the job's interpreter (`python -m name`; a `pip install`
//!   into the setup interpreter provides both `name` and `py:name`);
//! - `venv:name`: in the project's own environment, reached through its runner
//!   (`uv run`, `poetry run`, …), which also falls back to `PATH`;
//! - `node:name`: a binary in `node_modules/.bin`, reached through `npx`, `pnpm exec`…
//!
//! Package names stand for the executables they install ([`PACKAGE_EXECUTABLES`]).

use super::toolchain::BASE_TOOLS;
use super::{Plan, Role, Step, Where};

/// Packages whose executables are not named after them.
pub const PACKAGE_EXECUTABLES: &[(&str, &[&str])] = &[
    (
        "sphinx",
        &["sphinx-build", "sphinx-apidoc", "sphinx-autobuild"],
    ),
    ("django", &["django-admin"]),
    ("pytest", &["py.test"]),
    ("mkdocs-material", &["mkdocs"]),
    ("typescript", &["tsc"]),
    ("@playwright/test", &["playwright"]),
    ("@biomejs/biome", &["biome"]),
    ("rust-just", &["just"]),
    ("ansible-core", &["ansible", "ansible-playbook"]),
    ("ziglang", &["zig"]),
];

/// Cargo's own subcommands (anything else is an external `cargo-<name>`).
const CARGO_BUILTIN: &[&str] = &[
    "add",
    "bench",
    "build",
    "b",
    "check",
    "c",
    "clean",
    "doc",
    "d",
    "fetch",
    "fix",
    "generate-lockfile",
    "help",
    "info",
    "init",
    "install",
    "locate-project",
    "login",
    "logout",
    "metadata",
    "new",
    "owner",
    "package",
    "pkgid",
    "publish",
    "read-manifest",
    "remove",
    "report",
    "run",
    "r",
    "rustc",
    "rustdoc",
    "search",
    "test",
    "t",
    "tree",
    "uninstall",
    "update",
    "vendor",
    "verify-project",
    "version",
    "yank",
];

/// Modules of Python's standard library a command may run with `python -m`.
const PYTHON_STDLIB_MODULES: &[&str] = &[
    "pip",
    "venv",
    "unittest",
    "http.server",
    "json.tool",
    "ensurepip",
    "compileall",
    "doctest",
    "zipfile",
    "py_compile",
    "site",
];

/// Options of `uv run` that take a value.
const UV_RUN_VALUE_OPTIONS: &[&str] = &[
    "--with",
    "--with-editable",
    "--with-requirements",
    "--group",
    "--extra",
    "--package",
    "--python",
    "-p",
    "--directory",
    "--project",
    "--env-file",
    "--only-group",
    "--no-group",
    "--index",
    "--default-index",
];

/// Splits a command line into simple commands (on `&&`, `||`, `;`, `|`, newlines),
/// each as its words, respecting single and double quotes. Redirections are dropped.
pub fn simple_commands(cmd: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars().peekable();
    let mut skip_next_word = false;
    let flush =
        |word: &mut String, in_word: &mut bool, words: &mut Vec<String>, skip: &mut bool| {
            if *in_word {
                if *skip {
                    *skip = false;
                } else {
                    words.push(std::mem::take(word));
                }
                word.clear();
                *in_word = false;
            }
        };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        _ => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            ' ' | '\t' => flush(&mut word, &mut in_word, &mut words, &mut skip_next_word),
            '&' | '|' | ';' | '\n' | '(' | ')' => {
                // `2>&1` is a redirection, not an operator.
                if c == '&' && word.ends_with('>') {
                    word.push(c);
                    continue;
                }
                flush(&mut word, &mut in_word, &mut words, &mut skip_next_word);
                if c == '&' && chars.peek() != Some(&'&') {
                    // A background `&` also ends a command.
                }
                if matches!(chars.peek(), Some('&') | Some('|')) && c != ';' {
                    chars.next();
                }
                if !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
            }
            '>' | '<' => {
                flush(&mut word, &mut in_word, &mut words, &mut skip_next_word);
                // `> file`, `>> file`, `2> file`: the target is not a word of the command.
                while matches!(chars.peek(), Some('>') | Some('&')) {
                    chars.next();
                }
                if words
                    .last()
                    .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
                {
                    words.pop();
                }
                while matches!(chars.peek(), Some(' ')) {
                    chars.next();
                }
                // `>&2` style targets are digits; everything else is a file name.
                skip_next_word = true;
                if matches!(chars.peek(), Some(c) if c.is_ascii_digit()) {
                    // `2>&1`: consume the digit.
                    chars.next();
                    skip_next_word = false;
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut words, &mut skip_next_word);
    if !words.is_empty() {
        out.push(words);
    }
    out
}

/// The tools a command needs (base tools and the project's own scripts excluded).
pub fn needs(cmd: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |t: String| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for words in simple_commands(cmd) {
        let mut i = 0;
        // Leading assignments and wrappers that run the next word.
        while i < words.len() {
            let w = &words[i];
            let assignment = w.contains('=') && !w.starts_with('-') && !w.starts_with('=');
            let wrapper = matches!(
                w.as_str(),
                "sudo" | "env" | "time" | "exec" | "nohup" | "command"
            );
            if !(assignment || wrapper) {
                break;
            }
            i += 1;
        }
        let words = &words[i..];
        let Some(prog) = words.first() else { continue };
        needs_of(prog, &words[1..], &mut add);
    }
    out
}

fn first_arg(args: &[String], value_options: &[&str]) -> Option<(usize, String)> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return args.get(i + 1).map(|x| (i + 1, x.clone()));
        }
        if a.starts_with('-') {
            if value_options.contains(&a.as_str()) {
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        return Some((i, a.clone()));
    }
    None
}

fn needs_of(prog: &str, args: &[String], add: &mut impl FnMut(String)) {
    if prog == "xargs" {
        // xargs runs its first non-option argument.
        add_word_needs(args, &["-I", "-n", "-P", "-L", "-d", "-s", "-E"], add);
        return;
    }
    if prog.starts_with('$') || prog.contains('/') || BASE_TOOLS.contains(&prog) {
        // A variable, the project's own script (`./gradlew`, `scripts/x.sh`), or a shell
        // builtin / utility every CI machine has.
        return;
    }
    let prog_name = prog.to_owned();
    match prog {
        "python" | "python3" => {
            add("python".to_owned());
            if let Some(pos) = args.iter().position(|a| a == "-m") {
                if let Some(m) = args.get(pos + 1) {
                    if !PYTHON_STDLIB_MODULES.contains(&m.as_str()) {
                        add(format!("py:{m}"));
                    }
                }
            }
        }
        "cargo" => {
            add("cargo".to_owned());
            let args: Vec<&String> = args.iter().filter(|a| !a.starts_with('+')).collect();
            if let Some(sub) = args.iter().find(|a| !a.starts_with('-')) {
                if !CARGO_BUILTIN.contains(&sub.as_str()) {
                    add(format!("cargo-{sub}"));
                }
            }
        }
        "uv" => {
            add("uv".to_owned());
            if args.first().is_some_and(|a| a == "run") {
                if let Some((pos, x)) = first_arg(&args[1..], UV_RUN_VALUE_OPTIONS) {
                    env_tool(&x, &args[pos + 2..], "venv", add);
                }
            }
        }
        "poetry" | "pdm" | "pipenv" | "hatch" => {
            add(prog_name);
            if args.first().is_some_and(|a| a == "run") {
                if let Some((pos, x)) = first_arg(&args[1..], &[]) {
                    if !x.contains(':') {
                        env_tool(&x, &args[pos + 2..], "venv", add);
                    }
                }
            }
        }
        "npx" | "bunx" => {
            add(if prog == "npx" { "npx" } else { "bunx" }.to_owned());
            if let Some((_, x)) = first_arg(args, &["-p", "--package"]) {
                add(format!("node:{}", strip_version(&x)));
            }
        }
        "pnpm" | "npm" if args.first().is_some_and(|a| a == "exec") => {
            add(prog_name);
            if let Some((_, x)) = first_arg(&args[1..], &[]) {
                add(format!("node:{}", strip_version(&x)));
            }
        }
        _ => add(prog_name),
    }
}

/// `x` run inside a scope (`venv`), and what it itself runs (`python -m y`).
fn env_tool(x: &str, rest: &[String], scope: &str, add: &mut impl FnMut(String)) {
    if x == "python" || x == "python3" {
        if let Some(pos) = rest.iter().position(|a| a == "-m") {
            if let Some(m) = rest.get(pos + 1) {
                if !PYTHON_STDLIB_MODULES.contains(&m.as_str()) {
                    add(format!("{scope}:{m}"));
                }
            }
        }
    } else if !x.contains('/') && !BASE_TOOLS.contains(&x) {
        add(format!("{scope}:{x}"));
    }
}

fn add_word_needs(args: &[String], value_options: &[&str], add: &mut impl FnMut(String)) {
    if let Some((pos, x)) = first_arg(args, value_options) {
        needs_of(&x, &args[pos + 1..], add);
    }
}

/// `pkg@1.2.3` → `pkg` (scoped `@org/pkg@1` → `@org/pkg`).
fn strip_version(x: &str) -> &str {
    match x[1..].find('@') {
        Some(i) => &x[..i + 1],
        None => x,
    }
}

/// Does `provided` (a tool or a package, scoped) satisfy the need `need`?
pub fn satisfies(provided: &str, need: &str) -> bool {
    if provided == need {
        return true;
    }
    let (ps, pn) = provided.split_once(':').unwrap_or(("", provided));
    let (ns, nn) = need.split_once(':').unwrap_or(("", need));
    if ps != ns {
        return false;
    }
    PACKAGE_EXECUTABLES
        .iter()
        .any(|(pkg, exes)| *pkg == pn && exes.contains(&nn))
}

/// Is `need` available given `available`? `venv:x` falls back to `x` on `PATH` (the
/// runners put the environment first and keep `PATH`).
pub fn available(available: &[String], need: &str) -> bool {
    let direct = available.iter().any(|p| satisfies(p, need));
    if direct {
        return true;
    }
    match need.split_once(':') {
        Some(("venv", name)) => available.iter().any(|p| satisfies(p, name)),
        _ => false,
    }
}

/// A step calling a tool nothing provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Job id.
    pub job: String,
    /// Step name.
    pub step: String,
    /// Its role.
    pub role: Role,
    /// The missing tool.
    pub tool: String,
    /// The layout where it is missing (`github` or `containers`).
    pub layout: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {} step {:?} ({}) calls {} which nothing provides on {}",
            self.job,
            self.step,
            self.role.as_str(),
            self.tool,
            self.layout
        )
    }
}

/// Checks the provenance invariant over every job, in both layouts.
pub fn check(plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    for job in plan.jobs() {
        for (layout, applies) in [
            ("github", Step::on_github as fn(&Step) -> bool),
            ("containers", Step::on_containers as fn(&Step) -> bool),
        ] {
            let mut have: Vec<String> = job
                .toolchain
                .as_ref()
                .map(|t| t.provides.clone())
                .unwrap_or_default();
            // Image jobs run where a Docker daemon is (the runner; docker-in-docker).
            if matches!(
                job.kind,
                super::JobKind::DockerBuild | super::JobKind::ImagePublish
            ) {
                have.push("docker".to_owned());
            }
            if let Some(t) = &job.toolchain {
                for s in t.steps.iter().filter(|s| applies(s)) {
                    have.extend(s.provides.iter().cloned());
                }
            }
            for s in job.steps.iter().filter(|s| applies(s)) {
                if s.role != Role::Toolchain && s.role != Role::Publish {
                    for n in &s.needs {
                        if !available(&have, n) {
                            out.push(Violation {
                                job: job.id.clone(),
                                step: s.name.clone(),
                                role: s.role,
                                tool: n.clone(),
                                layout,
                            });
                        }
                    }
                }
                have.extend(s.provides.iter().cloned());
            }
        }
    }
    out
}

/// Leaves out the optional steps (lint, coverage, security) whose tools nothing
/// provides, with a note each; the steps a job exists for (install, build, test) stay,
/// and their violations are noted for people to see.
pub fn enforce(plan: &mut Plan) {
    loop {
        let violations = check(plan);
        let Some(v) = violations.first() else { break };
        let optional = matches!(v.role, Role::Lint | Role::Coverage | Role::Security);
        let mut removed = false;
        for w in &mut plan.workflows {
            for job in w.jobs.iter_mut().filter(|j| j.id == v.job) {
                if optional {
                    let before = job.steps.len();
                    let cmd = job
                        .steps
                        .iter()
                        .find(|s| s.name == v.step)
                        .and_then(|s| s.command().map(str::to_owned))
                        .unwrap_or_default();
                    job.steps.retain(|s| s.name != v.step);
                    removed = job.steps.len() != before;
                    if removed {
                        plan.notes.push(format!(
                            "`{cmd}` is left out of job {}: it calls `{}`, which the project configures but nothing installs (declare it as a development dependency, pinned, to have it run)",
                            v.job,
                            v.tool.rsplit(':').next().unwrap_or(&v.tool)
                        ));
                    }
                }
            }
        }
        if !removed {
            // Not optional (or not found): record once, and stop looking at it.
            let note = format!("warning: {v}");
            if !plan.notes.contains(&note) {
                plan.notes.push(note);
            }
            // Mark the step so the loop ends: its needs are now accepted as noted.
            for w in &mut plan.workflows {
                for job in w.jobs.iter_mut().filter(|j| j.id == v.job) {
                    for s in job.steps.iter_mut().filter(|s| s.name == v.step) {
                        s.needs.retain(|n| n != &v.tool);
                    }
                }
            }
        }
    }
}

/// Steps that apply in `layout` (`Where::Github` or `Where::Containers`).
pub fn in_layout(steps: &[Step], layout: Where) -> impl Iterator<Item = &Step> {
    steps.iter().filter(move |s| match layout {
        Where::Github => s.on_github(),
        Where::Containers => s.on_containers(),
        Where::All => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands_and_finds_programs() {
        assert_eq!(
            needs("cargo clippy --all-targets -- -D warnings"),
            ["cargo", "cargo-clippy"]
        );
        assert_eq!(
            needs("cargo +nightly fmt --all -- --check"),
            ["cargo", "cargo-fmt"]
        );
        assert_eq!(needs("cargo test --workspace"), ["cargo"]);
        assert_eq!(needs("uv run pytest -q"), ["uv", "venv:pytest"]);
        assert_eq!(
            needs("uv run --all-packages --group dev pytest"),
            ["uv", "venv:pytest"]
        );
        assert_eq!(needs("uv run python -m mypy src"), ["uv", "venv:mypy"]);
        assert_eq!(needs("python -m pip install -e .[dev]"), ["python"]);
        assert_eq!(needs("python -m pytest"), ["python", "py:pytest"]);
        assert_eq!(needs("npx jest --ci"), ["npx", "node:jest"]);
        assert_eq!(needs("pnpm exec tsc --noEmit"), ["pnpm", "node:tsc"]);
        assert_eq!(needs("npm run lint && npm test"), ["npm"]);
        assert_eq!(
            needs("git ls-files -z '*.sh' | xargs -0 shellcheck"),
            ["shellcheck"]
        );
        assert_eq!(needs("./gradlew test"), Vec::<String>::new());
        assert_eq!(needs("CI=1 FOO='a b' make test 2>&1"), ["make"]);
        assert_eq!(
            needs("cmake -S . -B build && cmake --build build"),
            ["cmake"]
        );
        assert_eq!(needs("echo hi > out.txt; tox -e py"), ["tox"]);
        assert_eq!(needs("poetry run pytest"), ["poetry", "venv:pytest"]);
        assert_eq!(needs("npx -p typescript@5 tsc"), ["npx", "node:tsc"]);
    }

    #[test]
    fn hostile_commands_never_panic() {
        for c in [
            "",
            "'",
            "\"",
            "\\",
            "&&",
            "|||",
            ">",
            "2>&",
            "a >",
            "((",
            "$(x) y",
            "uv run",
            "python -m",
        ] {
            let _ = needs(c);
        }
    }

    #[test]
    fn package_names_satisfy_their_executables() {
        assert!(satisfies("venv:sphinx", "venv:sphinx-build"));
        assert!(satisfies("node:typescript", "node:tsc"));
        assert!(!satisfies("venv:ruff", "py:ruff"));
        assert!(available(&["ruff".to_owned()], "venv:ruff"));
        assert!(!available(&["venv:ruff".to_owned()], "ruff"));
    }
}
