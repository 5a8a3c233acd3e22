//! GitHub Actions: one workflow for a single-project repository (`ci.yml`), one per
//! sub-project of a monorepo (`ci-<project>.yml`, triggered only when its paths change).
//! Each job: checkout without persisted credentials, the toolchain at the declared
//! version(s) (a matrix when several), the ecosystem's dependency cache, install, lint,
//! build, test, and service containers for the services the repository's compose files
//! run. Dockerfiles get a build check (never a push).

use serde::Serialize;

use super::pins::pin;
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::analyze::{Analysis, Framework, Language, PackageManager, Project, TestTool};

/// Minutes a job may run.
const JOB_TIMEOUT_MINUTES: u32 = 30;

#[derive(Debug, Serialize)]
struct Workflow {
    summary: String,
    name: String,
    /// Tag patterns: a release workflow (push of tags only, never cancelled).
    tags: Vec<String>,
    branches: Vec<String>,
    paths: Vec<String>,
    paths_ignore: Vec<String>,
    runs_on: Vec<String>,
    jobs: Vec<Job>,
}

#[derive(Debug, Serialize)]
struct Job {
    id: String,
    name: String,
    /// Job-level permissions beyond the top-level `contents: read` (release jobs).
    permissions: Vec<(&'static str, &'static str)>,
    timeout: u32,
    working_directory: Option<String>,
    matrix: Option<Matrix>,
    services: Vec<Service>,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
struct Matrix {
    key: &'static str,
    values: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Service {
    name: &'static str,
    image: &'static str,
    env: Vec<(&'static str, &'static str)>,
    ports: Vec<&'static str>,
    options: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
struct Step {
    name: String,
    cond: Option<String>,
    uses: Option<String>,
    version: Option<&'static str>,
    with: Vec<(&'static str, String)>,
    env: Vec<(&'static str, String)>,
    /// Environment entries the generator writes verbatim: names and expressions are
    /// constants in this file (`${{ secrets.CODECOV_TOKEN }}`), never repository data.
    raw_env: Vec<(&'static str, &'static str)>,
    /// Inputs written verbatim: built only from constants in this file.
    raw_with: Vec<(&'static str, &'static str)>,
    run: Option<String>,
}

fn uses(name: &str, action: &str, with: Vec<(&'static str, String)>) -> Step {
    let p = pin(action);
    Step {
        name: name.to_owned(),
        uses: Some(p.uses()),
        version: Some(p.version),
        with,
        ..Step::default()
    }
}

fn run(name: &str, cmd: impl Into<String>) -> Step {
    Step {
        name: name.to_owned(),
        run: Some(cmd.into()),
        ..Step::default()
    }
}

fn checkout() -> Step {
    // persist-credentials: false keeps the token out of .git/config, where any later
    // step (or uploaded artifact) could read it.
    uses(
        "Check out",
        "actions/checkout",
        vec![("persist-credentials", "false".to_owned())],
    )
}

/// Services CI can provide, by the name detection reports.
fn service(name: &str) -> Option<Service> {
    const HEALTH_PG: &str =
        "--health-cmd pg_isready --health-interval 5s --health-timeout 5s --health-retries 10";
    Some(match name {
        "postgres" => Service { name: "postgres", image: "postgres:17", env: vec![("POSTGRES_USER", "postgres"), ("POSTGRES_PASSWORD", "postgres"), ("POSTGRES_DB", "test")], ports: vec!["5432:5432"], options: Some(HEALTH_PG) },
        "redis" => Service { name: "redis", image: "redis:7", env: vec![], ports: vec!["6379:6379"], options: Some("--health-cmd \"redis-cli ping\" --health-interval 5s --health-timeout 5s --health-retries 10") },
        "mysql" => Service { name: "mysql", image: "mysql:8.4", env: vec![("MYSQL_ROOT_PASSWORD", "root"), ("MYSQL_DATABASE", "test")], ports: vec!["3306:3306"], options: Some("--health-cmd \"mysqladmin ping -h 127.0.0.1\" --health-interval 5s --health-timeout 5s --health-retries 20") },
        "mariadb" => Service { name: "mariadb", image: "mariadb:11", env: vec![("MARIADB_ROOT_PASSWORD", "root"), ("MARIADB_DATABASE", "test")], ports: vec!["3306:3306"], options: None },
        "mongo" => Service { name: "mongo", image: "mongo:7", env: vec![], ports: vec!["27017:27017"], options: None },
        "rabbitmq" => Service { name: "rabbitmq", image: "rabbitmq:3", env: vec![], ports: vec!["5672:5672"], options: None },
        "memcached" => Service { name: "memcached", image: "memcached:1.6", env: vec![], ports: vec!["11211:11211"], options: None },
        _ => return None,
    })
}

/// A job id: letters, digits, `-`, `_`, starting with a letter.
pub(crate) fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!("p-{out}").trim_end_matches('-').to_owned()
    } else {
        out
    }
}

/// A project's slug: its language at the root, its path elsewhere.
pub(crate) fn project_slug(p: &Project) -> String {
    slug(if p.path == "." {
        p.language.as_str()
    } else {
        &p.path
    })
}

/// A job id for `p` not yet in `taken` (two projects may share a slug), recorded there.
pub(crate) fn unique_project_id(p: &Project, taken: &mut Vec<String>) -> String {
    let base = project_slug(p);
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    taken.push(id.clone());
    id
}

/// A matrix value usable in an `if:` comparison without quoting trouble.
fn plain(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Setup steps and the matrix for a project's toolchain.
fn toolchain(p: &Project, lint: bool) -> (Vec<Step>, Option<Matrix>) {
    let versions = &p.runtime_versions;
    let matrix = |key: &'static str, default: &str| -> (String, Option<Matrix>) {
        match versions.len() {
            0 => (default.to_owned(), None),
            1 => (versions[0].clone(), None),
            _ => (
                format!("${{{{ matrix.{key} }}}}"),
                Some(Matrix {
                    key,
                    values: versions.clone(),
                }),
            ),
        }
    };
    let lock_path = |name: &str| {
        if p.path == "." {
            name.to_owned()
        } else {
            format!("{}/{name}", p.path)
        }
    };
    match (p.language, p.package_manager) {
        (Language::Rust, _) => {
            let (v, m) = matrix("rust", "stable");
            // rustfmt and clippy only when the lint step runs: they cost a download each.
            let mut install = run(
                "Install Rust",
                if lint {
                    "rustup toolchain install \"$TOOLCHAIN\" --profile minimal --component rustfmt,clippy && rustup default \"$TOOLCHAIN\""
                } else {
                    "rustup toolchain install \"$TOOLCHAIN\" --profile minimal && rustup default \"$TOOLCHAIN\""
                },
            );
            install.env.push(("TOOLCHAIN", v));
            let mut steps = vec![
                install,
                uses(
                    "Cache",
                    "Swatinem/rust-cache",
                    vec![("workspaces", p.path.clone())],
                ),
            ];
            if p.test_tool == Some(TestTool::Nextest) {
                steps.push(uses(
                    "Install cargo-nextest",
                    "taiki-e/install-action",
                    vec![("tool", "cargo-nextest".to_owned())],
                ));
            }
            (steps, m)
        }
        (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
            let (v, m) = matrix("node", "lts/*");
            let (cache, dep) = match pm {
                PackageManager::Pnpm => ("pnpm", "pnpm-lock.yaml"),
                PackageManager::Yarn => ("yarn", "yarn.lock"),
                _ => ("npm", "package-lock.json"),
            };
            let mut steps = Vec::new();
            if pm != PackageManager::Npm {
                // pnpm and yarn come from corepack (pinned by packageManager when set).
                steps.push(run("Enable corepack", "corepack enable"));
            }
            let mut with = vec![("node-version", v)];
            // The lockfile may sit at the workspace root, above the project.
            if let Some(lock) = p
                .evidence
                .iter()
                .find(|e| e.rsplit('/').next() == Some(dep))
            {
                with.push(("cache", String::from(cache)));
                with.push(("cache-dependency-path", lock.clone()));
            }
            steps.push(uses("Set up Node.js", "actions/setup-node", with));
            (steps, m)
        }
        (_, Some(PackageManager::Bun)) => {
            (vec![uses("Set up Bun", "oven-sh/setup-bun", vec![])], None)
        }
        (_, Some(PackageManager::Deno)) => (
            vec![uses(
                "Set up Deno",
                "denoland/setup-deno",
                vec![("deno-version", "v2.x".to_owned())],
            )],
            None,
        ),
        (Language::Python, pm) => {
            let (v, m) = matrix("python", "3.13");
            let mut steps = Vec::new();
            if pm == Some(PackageManager::Uv) {
                steps.push(uses(
                    "Set up uv",
                    "astral-sh/setup-uv",
                    vec![("python-version", v), ("enable-cache", "true".to_owned())],
                ));
            } else {
                steps.push(uses(
                    "Set up Python",
                    "actions/setup-python",
                    vec![("python-version", v)],
                ));
                // uv has its own setup action above.
                let tools: Vec<&str> = super::images::python_tools(p)
                    .into_iter()
                    .filter(|t| *t != "uv")
                    .collect();
                if !tools.is_empty() {
                    steps.push(run(
                        "Install tools",
                        format!("python -m pip install {}", tools.join(" ")),
                    ));
                }
            }
            (steps, m)
        }
        (Language::Go, _) => (
            vec![uses(
                "Set up Go",
                "actions/setup-go",
                vec![
                    ("go-version-file", lock_path("go.mod")),
                    ("cache-dependency-path", lock_path("go.sum")),
                ],
            )],
            None,
        ),
        (Language::Java | Language::Kotlin | Language::Scala, pm) => {
            let (v, m) = matrix("java", "21");
            let cache = match pm {
                Some(PackageManager::Maven) => "maven",
                Some(PackageManager::Gradle) => "gradle",
                _ => "sbt",
            };
            let mut with = vec![("distribution", "temurin".to_owned()), ("java-version", v)];
            if pm != Some(PackageManager::Gradle) {
                with.push(("cache", String::from(cache)));
            }
            let mut steps = vec![uses("Set up Java", "actions/setup-java", with)];
            match pm {
                Some(PackageManager::Gradle) => {
                    steps.push(uses("Set up Gradle", "gradle/actions/setup-gradle", vec![]))
                }
                Some(PackageManager::Sbt) => {
                    steps.push(uses("Set up sbt", "sbt/setup-sbt", vec![]))
                }
                _ => {}
            }
            (steps, m)
        }
        (Language::Ruby, _) => {
            let (v, m) = matrix("ruby", "ruby");
            let with = vec![
                ("ruby-version", v),
                ("bundler-cache", "true".to_owned()),
                ("working-directory", p.path.clone()),
            ];
            (vec![uses("Set up Ruby", "ruby/setup-ruby", with)], m)
        }
        (Language::Php, _) => {
            let (v, m) = matrix("php", "8.4");
            (
                vec![uses(
                    "Set up PHP",
                    "shivammathur/setup-php",
                    vec![("php-version", v)],
                )],
                m,
            )
        }
        (Language::CSharp | Language::FSharp, _) => {
            let (v, m) = matrix("dotnet", "9.0.x");
            (
                vec![uses(
                    "Set up .NET",
                    "actions/setup-dotnet",
                    vec![("dotnet-version", v)],
                )],
                m,
            )
        }
        (Language::Elixir, _) => {
            let find = |tool: &str| {
                versions
                    .iter()
                    .find_map(|v| v.strip_prefix(tool))
                    .map(|v| v.trim().to_owned())
            };
            let with = vec![
                (
                    "otp-version",
                    find("erlang").unwrap_or_else(|| "27".to_owned()),
                ),
                (
                    "elixir-version",
                    find("elixir").unwrap_or_else(|| "1.17".to_owned()),
                ),
            ];
            (vec![uses("Set up Elixir", "erlef/setup-beam", with)], None)
        }
        (Language::Dart, _) if p.frameworks.contains(&Framework::Flutter) => (
            vec![uses(
                "Set up Flutter",
                "subosito/flutter-action",
                vec![
                    ("channel", "stable".to_owned()),
                    ("cache", "true".to_owned()),
                ],
            )],
            None,
        ),
        (Language::Dart, _) => (
            vec![uses("Set up Dart", "dart-lang/setup-dart", vec![])],
            None,
        ),
        (Language::Haskell, pm) => {
            let mut with = vec![("ghc-version", "latest".to_owned())];
            if pm == Some(PackageManager::Stack) {
                with.push(("enable-stack", "true".to_owned()));
            }
            (
                vec![uses("Set up Haskell", "haskell-actions/setup", with)],
                None,
            )
        }
        (Language::Zig, _) => {
            let v = versions
                .first()
                .cloned()
                .unwrap_or_else(|| "0.14.1".to_owned());
            // setup-zig still runs on a deprecated Node runtime; PyPI's ziglang ships Zig.
            let install = format!(
                "python3 -m pip install --user \"ziglang=={v}\" && mkdir -p \"$HOME/.local/bin\" && printf '#!/bin/sh\\nexec python3 -m ziglang \"$@\"\\n' > \"$HOME/.local/bin/zig\" && chmod +x \"$HOME/.local/bin/zig\""
            );
            (vec![run("Install Zig", install)], None)
        }
        (Language::Hcl, _) => (
            vec![uses(
                "Set up Terraform",
                "hashicorp/setup-terraform",
                vec![],
            )],
            None,
        ),
        (Language::Markdown, _)
            if p.frameworks.contains(&Framework::Mkdocs)
                || p.frameworks.contains(&Framework::Sphinx) =>
        {
            (
                vec![uses(
                    "Set up Python",
                    "actions/setup-python",
                    vec![("python-version", "3.13".to_owned())],
                )],
                None,
            )
        }
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Jekyll) => {
            let with = vec![
                ("ruby-version", "ruby".to_owned()),
                ("bundler-cache", "true".to_owned()),
                ("working-directory", p.path.clone()),
            ];
            (vec![uses("Set up Ruby", "ruby/setup-ruby", with)], None)
        }
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Hugo) => (
            vec![run(
                "Install Hugo",
                "sudo apt-get update && sudo apt-get install -y hugo",
            )],
            None,
        ),
        // Learned archetypes whose commands install Python tools (nbval, sqlfluff,
        // ansible-lint, PlatformIO) need a Python with pip.
        (Language::Jupyter | Language::Sql, _) => (python_setup(), None),
        (Language::Yaml, _) if p.frameworks.contains(&Framework::Ansible) => (python_setup(), None),
        (Language::C | Language::Cpp, _) if p.frameworks.contains(&Framework::Platformio) => {
            (python_setup(), None)
        }
        (Language::Tex, _) => (
            vec![run(
                "Install LaTeX",
                "sudo apt-get update && sudo apt-get install -y latexmk texlive-latex-recommended",
            )],
            None,
        ),
        (Language::C | Language::Cpp, Some(PackageManager::Meson)) => (
            vec![run(
                "Install Meson",
                "sudo apt-get update && sudo apt-get install -y meson ninja-build",
            )],
            None,
        ),
        (Language::Shell, _) if p.test_tool == Some(TestTool::Bats) => (
            vec![run(
                "Install bats",
                "sudo apt-get update && sudo apt-get install -y bats",
            )],
            None,
        ),
        // C/C++ (gcc, cmake), Swift, shellcheck and helm are on GitHub's Ubuntu runners.
        _ => (Vec::new(), None),
    }
}

fn python_setup() -> Vec<Step> {
    vec![uses(
        "Set up Python",
        "actions/setup-python",
        vec![("python-version", "3.13".to_owned())],
    )]
}

fn project_job(p: &Project, analysis: &Analysis, target: &Target, id: String) -> Job {
    let (mut setup, matrix) = toolchain(p, target.features.lint);
    // Runs on release branches publish from what the cache holds: a poisoned cache would
    // reach a release. Such workflows get no dependency cache (zizmor: cache-poisoning).
    if target.push_branches().iter().any(|b| b.contains("release")) {
        setup.retain(|s| {
            s.uses
                .as_deref()
                .is_none_or(|u| !u.starts_with("Swatinem/rust-cache@"))
        });
        for s in &mut setup {
            s.with.retain(|(k, _)| {
                !matches!(
                    *k,
                    "cache" | "cache-dependency-path" | "enable-cache" | "bundler-cache"
                )
            });
            if s.uses
                .as_deref()
                .is_some_and(|u| u.starts_with("actions/setup-node@"))
            {
                s.with.push(("package-manager-cache", "false".to_owned()));
            }
        }
    }
    let mut steps = vec![checkout()];
    steps.append(&mut setup);
    // Lint once, on the newest toolchain of a matrix: older ones may lack the lints.
    let lint_cond = matrix.as_ref().and_then(|m| {
        m.values
            .last()
            .filter(|v| plain(v))
            .map(|v| format!("${{{{ matrix.{} == '{v}' }}}}", m.key))
    });
    let bundled = matches!(p.language, Language::Ruby) || p.frameworks.contains(&Framework::Jekyll);
    if let Some(cmd) = p
        .commands
        .install
        .as_ref()
        .filter(|_| !(bundled && p.package_manager == Some(PackageManager::Bundler)))
    {
        steps.push(run("Install dependencies", cmd.clone()));
    }
    for (i, cmd) in p.commands.lint.iter().enumerate() {
        let name = if i == 0 {
            "Lint".to_owned()
        } else {
            format!("Lint ({})", i + 1)
        };
        let mut s = run(&name, cmd.clone());
        s.cond = lint_cond.clone();
        steps.push(s);
    }
    if let Some(cmd) = &p.commands.build {
        steps.push(run("Build", cmd.clone()));
    }
    let mut services = Vec::new();
    if let Some(cmd) = &p.commands.test {
        steps.push(run("Test", cmd.clone()));
        services = analysis
            .services
            .iter()
            .filter_map(|s| service(s))
            .collect();
    }
    if target.features.security {
        if let Some(cmd) = super::images::security_command(p) {
            let cmd = match p.language {
                // A pinned prebuilt cargo-audit instead of compiling it in every run.
                Language::Rust => {
                    steps.push(uses(
                        "Install cargo-audit",
                        "taiki-e/install-action",
                        vec![("tool", "cargo-audit".to_owned())],
                    ));
                    "cargo audit".to_owned()
                }
                _ => cmd,
            };
            steps.push(run("Security audit", cmd));
        }
    }
    if target.features.coverage {
        if let Some(cov) = super::images::coverage(p, false) {
            // Measured once, on the newest toolchain of a matrix.
            let mut cov_steps = Vec::new();
            if p.language == Language::Rust {
                cov_steps.push(uses(
                    "Install cargo-llvm-cov",
                    "taiki-e/install-action",
                    vec![("tool", "cargo-llvm-cov".to_owned())],
                ));
            }
            for cmd in cov.commands {
                cov_steps.push(run("Coverage", cmd));
            }
            let report = if p.path == "." {
                cov.report.to_owned()
            } else {
                format!("{}/{}", p.path, cov.report)
            };
            let mut upload = uses(
                "Upload coverage",
                "codecov/codecov-action",
                vec![("files", report), ("fail_ci_if_error", "false".to_owned())],
            );
            upload
                .raw_env
                .push(("CODECOV_TOKEN", "${{ secrets.CODECOV_TOKEN }}"));
            cov_steps.push(upload);
            for mut st in cov_steps {
                st.cond = lint_cond.clone();
                steps.push(st);
            }
        }
    }
    for extra in &target.extra_steps {
        steps.push(run(&extra.name, extra.run.clone()));
    }
    let name = if p.path == "." {
        format!(
            "{} ({})",
            p.language,
            p.package_manager.map(|m| m.as_str()).unwrap_or("build")
        )
    } else {
        format!("{} ({})", p.path, p.language)
    };
    Job {
        id,
        name,
        permissions: Vec::new(),
        timeout: JOB_TIMEOUT_MINUTES,
        working_directory: (p.path != ".").then(|| p.path.clone()),
        matrix,
        services,
        steps,
    }
}

fn docker_job(dockerfiles: &[String]) -> Job {
    let mut steps = vec![
        checkout(),
        uses("Set up Docker Buildx", "docker/setup-buildx-action", vec![]),
    ];
    for f in dockerfiles {
        let context = f
            .rsplit_once('/')
            .map_or(".".to_owned(), |(d, _)| d.to_owned());
        steps.push(uses(
            &format!("Build {f}"),
            "docker/build-push-action",
            // Build only: a CI check never pushes an image.
            vec![
                ("context", context),
                ("file", f.clone()),
                ("push", "false".to_owned()),
            ],
        ));
    }
    Job {
        id: "docker".to_owned(),
        name: "Docker build".to_owned(),
        permissions: Vec::new(),
        timeout: JOB_TIMEOUT_MINUTES,
        working_directory: None,
        matrix: None,
        services: Vec::new(),
        steps,
    }
}

fn summary(projects: &[&Project]) -> String {
    let parts: Vec<String> = projects
        .iter()
        .map(|p| {
            let pm = p
                .package_manager
                .map(|m| format!(", {m}"))
                .unwrap_or_default();
            format!("{}{pm}", p.language)
        })
        .collect();
    if parts.is_empty() {
        "Dockerfile".to_owned()
    } else {
        parts.join("; ")
    }
}

fn workflow(
    target: &Target,
    name: String,
    paths: Vec<String>,
    projects: &[&Project],
    jobs: Vec<Job>,
) -> Result<String, GenerateError> {
    // GitHub refuses `paths` and `paths-ignore` together: fold ignores into `paths`.
    let (paths, paths_ignore) = if paths.is_empty() {
        (paths, target.paths_ignore.clone())
    } else {
        let mut p = paths;
        p.extend(target.paths_ignore.iter().map(|i| format!("!{i}")));
        (p, Vec::new())
    };
    let wf = Workflow {
        summary: summary(projects),
        name,
        tags: Vec::new(),
        branches: target.push_branches(),
        paths,
        paths_ignore,
        runs_on: target.runs_on.clone(),
        jobs,
    };
    render(
        "github/workflow.yml.j2",
        target.template_dir.as_deref(),
        &wf,
    )
}

/// "rust, cargo; python, uv" — the header line of every generated file.
pub(crate) fn summary_of(analysis: &Analysis) -> String {
    summary(&analysis.projects.iter().collect::<Vec<_>>())
}

/// `release.yml`: on a `v*` tag, publish each project to its registry, push images to
/// GHCR, and create the GitHub release. No caches (a poisoned cache must not reach a
/// release); each job gets only the permissions it needs.
fn release_workflow(analysis: &Analysis, target: &Target) -> Result<GeneratedFile, GenerateError> {
    let mut jobs = Vec::new();
    for p in &analysis.projects {
        let wd = (p.path != ".").then(|| p.path.clone());
        let base = project_slug(p);
        let (mut steps, permissions, suffix) = match (p.language, p.package_manager) {
            (Language::Rust, _) => {
                let mut publish = run("Publish to crates.io", "cargo publish --locked");
                publish.raw_env.push((
                    "CARGO_REGISTRY_TOKEN",
                    "${{ secrets.CARGO_REGISTRY_TOKEN }}",
                ));
                (vec![checkout(), run("Install Rust", "rustup toolchain install stable --profile minimal && rustup default stable"), publish], vec![], "crate")
            }
            (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
                let mut steps = vec![checkout()];
                if pm != PackageManager::Npm {
                    steps.push(run("Enable corepack", "corepack enable"));
                }
                steps.push(uses(
                    "Set up Node.js",
                    "actions/setup-node",
                    vec![
                        ("node-version", "lts/*".to_owned()),
                        ("registry-url", "https://registry.npmjs.org".to_owned()),
                        // setup-node caches by default; a release must not read a cache.
                        ("package-manager-cache", "false".to_owned()),
                    ],
                ));
                if let Some(i) = &p.commands.install {
                    steps.push(run("Install dependencies", i.clone()));
                }
                if let Some(b) = &p.commands.build {
                    steps.push(run("Build", b.clone()));
                }
                let mut publish = run("Publish to npm", "npm publish --provenance --access public");
                publish
                    .raw_env
                    .push(("NODE_AUTH_TOKEN", "${{ secrets.NPM_TOKEN }}"));
                steps.push(publish);
                (steps, vec![("id-token", "write")], "npm")
            }
            (Language::Python, _) => {
                let dist = if p.path == "." {
                    "dist/".to_owned()
                } else {
                    format!("{}/dist/", p.path)
                };
                (
                    vec![
                        checkout(),
                        uses(
                            "Set up Python",
                            "actions/setup-python",
                            vec![("python-version", "3.13".to_owned())],
                        ),
                        run(
                            "Build distributions",
                            "python -m pip install build && python -m build",
                        ),
                        // Trusted publishing: PyPI trusts this workflow's OIDC token; no secret.
                        uses(
                            "Publish to PyPI",
                            "pypa/gh-action-pypi-publish",
                            vec![("packages-dir", dist)],
                        ),
                    ],
                    vec![("id-token", "write")],
                    "pypi",
                )
            }
            _ => continue,
        };
        jobs.push(Job {
            id: format!("publish-{base}-{suffix}"),
            name: format!("Publish {} ({suffix})", p.path),
            permissions,
            timeout: JOB_TIMEOUT_MINUTES,
            working_directory: wd,
            matrix: None,
            services: Vec::new(),
            steps: std::mem::take(&mut steps),
        });
    }
    if analysis.dockerfile {
        let mut login = uses(
            "Log in to GHCR",
            "docker/login-action",
            vec![("registry", "ghcr.io".to_owned())],
        );
        login.raw_with.push(("username", "${{ github.actor }}"));
        login
            .raw_with
            .push(("password", "${{ secrets.GITHUB_TOKEN }}"));
        // Image names must be lowercase; the shell lowercases the repository name.
        let push = super::images::docker_push_commands(
            &analysis.dockerfiles,
            "ghcr.io/${GITHUB_REPOSITORY,,}",
            "${GITHUB_REF_NAME}",
        );
        jobs.push(Job {
            id: "publish-images".to_owned(),
            name: "Publish images to GHCR".to_owned(),
            permissions: vec![("packages", "write")],
            timeout: JOB_TIMEOUT_MINUTES,
            working_directory: None,
            matrix: None,
            services: Vec::new(),
            steps: vec![checkout(), login, run("Build and push", push.join(" && "))],
        });
    }
    let mut release = run(
        "Create the GitHub release",
        "gh release create \"$TAG\" --verify-tag --generate-notes --repo \"$GITHUB_REPOSITORY\"",
    );
    release.raw_env.push(("GH_TOKEN", "${{ github.token }}"));
    release.raw_env.push(("TAG", "${{ github.ref_name }}"));
    jobs.push(Job {
        id: "github-release".to_owned(),
        name: "GitHub release".to_owned(),
        permissions: vec![("contents", "write")],
        timeout: JOB_TIMEOUT_MINUTES,
        working_directory: None,
        matrix: None,
        services: Vec::new(),
        steps: vec![release],
    });
    let wf = Workflow {
        summary: summary(&analysis.projects.iter().collect::<Vec<_>>()),
        name: "Release".to_owned(),
        tags: vec!["v*".to_owned()],
        branches: Vec::new(),
        paths: Vec::new(),
        paths_ignore: Vec::new(),
        runs_on: target.runs_on.clone(),
        jobs,
    };
    let content = render(
        "github/workflow.yml.j2",
        target.template_dir.as_deref(),
        &wf,
    )?;
    Ok(GeneratedFile {
        path: ".github/workflows/release.yml".to_owned(),
        content,
    })
}

/// The workflow files for `analysis`.
pub fn generate(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut files = ci_workflows(analysis, target)?;
    if target.features.release {
        files.push(release_workflow(analysis, target)?);
    }
    Ok(files)
}

fn ci_workflows(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let projects: Vec<&Project> = analysis.projects.iter().collect();
    let mut ids: Vec<String> = Vec::new();
    let mut unique_id = |p: &Project| unique_project_id(p, &mut ids);
    let mut files = Vec::new();
    if projects.len() <= 1 {
        let mut jobs: Vec<Job> = projects
            .iter()
            .map(|p| project_job(p, analysis, target, unique_id(p)))
            .collect();
        if analysis.dockerfile {
            jobs.push(docker_job(&analysis.dockerfiles));
        }
        if jobs.is_empty() {
            return Ok(files);
        }
        let content = workflow(target, "CI".to_owned(), Vec::new(), &projects, jobs)?;
        files.push(GeneratedFile {
            path: ".github/workflows/ci.yml".to_owned(),
            content,
        });
        return Ok(files);
    }
    // A monorepo: one workflow per project, run only when its files change.
    let mut claimed = vec![false; analysis.dockerfiles.len()];
    for p in &projects {
        let id = unique_id(p);
        let file = format!(".github/workflows/ci-{id}.yml");
        let mut jobs = vec![project_job(p, analysis, target, id.clone())];
        let mut own = Vec::new();
        for (i, f) in analysis.dockerfiles.iter().enumerate() {
            if p.path != "." && f.starts_with(&format!("{}/", p.path)) && !claimed[i] {
                claimed[i] = true;
                own.push(f.clone());
            }
        }
        if !own.is_empty() {
            jobs.push(docker_job(&own));
        }
        let paths = if p.path == "." {
            Vec::new()
        } else {
            vec![format!("{}/**", p.path), file.clone()]
        };
        let content = workflow(target, format!("CI ({})", p.path), paths, &[p], jobs)?;
        files.push(GeneratedFile {
            path: file,
            content,
        });
    }
    let rest: Vec<String> = analysis
        .dockerfiles
        .iter()
        .zip(&claimed)
        .filter(|(_, c)| !**c)
        .map(|(f, _)| f.clone())
        .collect();
    if !rest.is_empty() {
        let content = workflow(
            target,
            "Docker".to_owned(),
            Vec::new(),
            &[],
            vec![docker_job(&rest)],
        )?;
        files.push(GeneratedFile {
            path: ".github/workflows/ci-docker.yml".to_owned(),
            content,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_job_ids() {
        assert_eq!(slug("backend"), "backend");
        assert_eq!(slug("services/API v2"), "services-api-v2");
        assert_eq!(slug("weird dir/$(whoami)"), "weird-dir-whoami");
        assert_eq!(slug("2fa"), "p-2fa");
        assert_eq!(slug("${{ x }}"), "x");
        assert_eq!(slug("!!!"), "p");
    }
}
