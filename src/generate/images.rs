//! Container-based providers (GitLab CI, Bitbucket Pipelines) run each job in an image:
//! which official image carries a project's toolchain at a given version, what must be
//! installed on top, and which directories and lockfiles key the dependency cache.

use crate::analyze::{Framework, Language, PackageManager, Project, TestTool};

/// How a project's job runs in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Image per declared version (one entry without a matrix).
    pub images: Vec<String>,
    /// Commands run before install (tooling the image lacks).
    pub setup: Vec<String>,
    /// Directories to cache, relative to the project.
    pub cache_paths: Vec<String>,
    /// Files whose content keys the cache, relative to the repository root.
    pub cache_key_files: Vec<String>,
    /// Environment variables the toolchain needs (cache locations inside the project).
    pub variables: Vec<(&'static str, String)>,
    /// The image's entrypoint is a tool, not a shell: reset it.
    pub reset_entrypoint: bool,
}

fn versions_or(p: &Project, default: &str, f: impl Fn(&str) -> String) -> Vec<String> {
    if p.runtime_versions.is_empty() {
        vec![f(default)]
    } else {
        p.runtime_versions.iter().map(|v| f(v)).collect()
    }
}

/// Image tags may not contain everything a version string can.
fn tag(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn lock(p: &Project, name: &str) -> Vec<String> {
    p.evidence
        .iter()
        .filter(|e| e.rsplit('/').next() == Some(name))
        .cloned()
        .collect()
}

/// The runtime of `p`.
pub fn runtime(p: &Project) -> Runtime {
    let mut r = Runtime {
        images: Vec::new(),
        setup: Vec::new(),
        cache_paths: Vec::new(),
        cache_key_files: Vec::new(),
        variables: Vec::new(),
        reset_entrypoint: false,
    };
    match (p.language, p.package_manager) {
        (Language::Rust, _) => {
            r.images = versions_or(p, "stable", |v| {
                format!(
                    "rust:{}",
                    if v == "stable" {
                        "latest".to_owned()
                    } else {
                        tag(v)
                    }
                )
            });
            r.setup
                .push("rustup component add rustfmt clippy".to_owned());
            r.variables
                .push(("CARGO_HOME", "${CI_PROJECT_DIR}/.cargo".to_owned()));
            r.cache_paths = vec![".cargo/registry".to_owned(), "target".to_owned()];
            r.cache_key_files = lock(p, "Cargo.lock");
            if p.test_tool == Some(TestTool::Nextest) {
                r.setup
                    .push("cargo install cargo-nextest --locked".to_owned());
            }
        }
        (_, Some(PackageManager::Bun)) => r.images = vec!["oven/bun:1".to_owned()],
        (_, Some(PackageManager::Deno)) => r.images = vec!["denoland/deno:2".to_owned()],
        (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
            r.images = versions_or(p, "lts", |v| {
                format!(
                    "node:{}",
                    if v.starts_with("lts") {
                        "lts".to_owned()
                    } else {
                        tag(v)
                    }
                )
            });
            if pm != PackageManager::Npm {
                r.setup.push("corepack enable".to_owned());
            }
            let (dir, file) = match pm {
                PackageManager::Pnpm => (".pnpm-store", "pnpm-lock.yaml"),
                PackageManager::Yarn => (".yarn/cache", "yarn.lock"),
                _ => (".npm", "package-lock.json"),
            };
            if pm == PackageManager::Npm {
                r.variables
                    .push(("npm_config_cache", "${CI_PROJECT_DIR}/.npm".to_owned()));
            } else if pm == PackageManager::Pnpm {
                r.setup
                    .push("pnpm config set store-dir .pnpm-store".to_owned());
            }
            r.cache_paths = vec![dir.to_owned()];
            r.cache_key_files = lock(p, file);
        }
        (Language::Python, _) => {
            r.images = versions_or(p, "3.13", |v| format!("python:{}", tag(v)));
            r.variables
                .push(("PIP_CACHE_DIR", "${CI_PROJECT_DIR}/.cache/pip".to_owned()));
            r.cache_paths = vec![".cache/pip".to_owned()];
            let tools = python_tools(p);
            if !tools.is_empty() {
                r.setup
                    .push(format!("python -m pip install {}", tools.join(" ")));
            }
            for f in [
                "uv.lock",
                "poetry.lock",
                "pdm.lock",
                "Pipfile.lock",
                "requirements.txt",
            ] {
                r.cache_key_files.extend(lock(p, f));
            }
        }
        (Language::Go, _) => {
            r.images = versions_or(p, "1.23", |v| format!("golang:{}", tag(v)));
            r.variables
                .push(("GOPATH", "${CI_PROJECT_DIR}/.go".to_owned()));
            r.cache_paths = vec![".go/pkg/mod".to_owned()];
        }
        (Language::Java | Language::Kotlin, Some(PackageManager::Maven)) => {
            r.images = versions_or(p, "21", |v| format!("maven:3-eclipse-temurin-{}", tag(v)));
            r.variables.push((
                "MAVEN_OPTS",
                "-Dmaven.repo.local=${CI_PROJECT_DIR}/.m2/repository".to_owned(),
            ));
            r.cache_paths = vec![".m2/repository".to_owned()];
        }
        (Language::Java | Language::Kotlin, _) => {
            r.images = versions_or(p, "21", |v| format!("gradle:jdk{}", tag(v)));
            r.variables
                .push(("GRADLE_USER_HOME", "${CI_PROJECT_DIR}/.gradle".to_owned()));
            r.cache_paths = vec![".gradle/caches".to_owned(), ".gradle/wrapper".to_owned()];
        }
        (Language::Scala, _) => {
            r.images = vec!["sbtscala/scala-sbt:eclipse-temurin-21.0.6_7_1.10.11_3.6.4".to_owned()]
        }
        (Language::Ruby, _) => {
            r.images = versions_or(p, "3.3", |v| format!("ruby:{}", tag(v)));
            r.variables
                .push(("BUNDLE_PATH", "vendor/bundle".to_owned()));
            r.cache_paths = vec!["vendor/bundle".to_owned()];
            r.cache_key_files = lock(p, "Gemfile.lock");
        }
        (Language::Php, _) => {
            r.images = vec!["composer:2".to_owned()];
            r.variables.push((
                "COMPOSER_CACHE_DIR",
                "${CI_PROJECT_DIR}/.composer".to_owned(),
            ));
            r.cache_paths = vec![".composer".to_owned()];
        }
        (Language::CSharp | Language::FSharp, _) => {
            r.images = versions_or(p, "9.0", |v| {
                format!(
                    "mcr.microsoft.com/dotnet/sdk:{}",
                    tag(v.trim_end_matches(".x"))
                )
            });
            r.variables.push((
                "NUGET_PACKAGES",
                "${CI_PROJECT_DIR}/.nuget/packages".to_owned(),
            ));
            r.cache_paths = vec![".nuget/packages".to_owned()];
        }
        (Language::Elixir, _) => {
            let v = p
                .runtime_versions
                .iter()
                .find_map(|v| v.strip_prefix("elixir "))
                .map(|v| v.split('-').next().unwrap_or(v).to_owned());
            r.images = vec![format!(
                "elixir:{}",
                tag(&v.unwrap_or_else(|| "1.17".to_owned()))
            )];
            r.setup
                .push("mix local.hex --force && mix local.rebar --force".to_owned());
            r.cache_paths = vec!["deps".to_owned(), "_build".to_owned()];
        }
        // PlatformIO brings its own toolchains; it needs Python.
        (Language::C | Language::Cpp, _) if p.frameworks.contains(&Framework::Platformio) => {
            r.images = vec!["python:3.13".to_owned()]
        }
        (Language::C | Language::Cpp, pm) => {
            r.images = vec!["gcc:14".to_owned()];
            let tools = if pm == Some(PackageManager::Meson) {
                "meson ninja-build"
            } else {
                "cmake"
            };
            r.setup.push(format!(
                "apt-get update && apt-get install -y --no-install-recommends {tools}"
            ));
        }
        (Language::Swift, _) => r.images = versions_or(p, "6.0", |v| format!("swift:{}", tag(v))),
        (Language::Dart, _) if p.frameworks.contains(&Framework::Flutter) => {
            r.images = vec!["ghcr.io/cirruslabs/flutter:stable".to_owned()]
        }
        (Language::Dart, _) => r.images = vec!["dart:stable".to_owned()],
        (Language::Haskell, _) => r.images = vec!["haskell:9".to_owned()],
        (Language::Zig, _) => {
            r.images = vec!["python:3.13".to_owned()];
            let v = p
                .runtime_versions
                .first()
                .cloned()
                .unwrap_or_else(|| "0.14.1".to_owned());
            r.setup.push(format!("python -m pip install \"ziglang=={v}\" && printf '#!/bin/sh\\nexec python -m ziglang \"$@\"\\n' > /usr/local/bin/zig && chmod +x /usr/local/bin/zig"));
        }
        (Language::Hcl, _) => {
            r.images = vec!["hashicorp/terraform:1.9".to_owned()];
            r.reset_entrypoint = true;
        }
        (Language::Yaml, _) if p.frameworks.contains(&Framework::Helm) => {
            r.images = vec!["alpine/helm:3".to_owned()];
            r.reset_entrypoint = true;
        }
        (Language::Yaml, _) => r.images = vec!["python:3.13".to_owned()],
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Jekyll) => {
            r.images = vec!["ruby:3.3".to_owned()]
        }
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Hugo) => {
            r.images = vec!["debian:stable-slim".to_owned()];
            r.setup.push(
                "apt-get update && apt-get install -y --no-install-recommends hugo".to_owned(),
            );
        }
        // Plain Markdown (no site generator) is checked with markdownlint, through npx.
        (Language::Markdown, _) if p.frameworks.is_empty() => r.images = vec!["node:22".to_owned()],
        (Language::Markdown, _) => r.images = vec!["python:3.13".to_owned()],
        (Language::Tex, _) => r.images = vec!["texlive/texlive:latest".to_owned()],
        // Learned archetypes: Python tools (nbval, sqlfluff, PlatformIO) or npx.
        (Language::Jupyter | Language::Sql, _) => r.images = vec!["python:3.13".to_owned()],
        (Language::Html, _) => r.images = vec!["node:22".to_owned()],
        (Language::Shell, _) => {
            r.images = vec!["debian:stable-slim".to_owned()];
            let bats = if p.test_tool == Some(TestTool::Bats) {
                " bats"
            } else {
                ""
            };
            r.setup.push(format!(
                "apt-get update && apt-get install -y --no-install-recommends git shellcheck{bats}"
            ));
        }
        _ => r.images = vec!["debian:stable-slim".to_owned()],
    }
    r
}

/// Python tools a project's commands call that its image or setup lacks (the package
/// manager, tox, nox).
pub fn python_tools(p: &Project) -> Vec<&'static str> {
    let mut tools: Vec<&'static str> = match p.package_manager {
        Some(PackageManager::Uv) => vec!["uv"],
        Some(PackageManager::Poetry) => vec!["poetry"],
        Some(PackageManager::Pdm) => vec!["pdm"],
        Some(PackageManager::Pipenv) => vec!["pipenv"],
        Some(PackageManager::Hatch) => vec!["hatch"],
        _ => Vec::new(),
    };
    match p.test_tool {
        Some(TestTool::Tox) => tools.push("tox"),
        Some(TestTool::Nox) => tools.push("nox"),
        _ => {}
    }
    tools
}

/// `docker build` commands checking each Dockerfile in its directory's context.
pub fn docker_build_commands(dockerfiles: &[String]) -> Vec<String> {
    dockerfiles
        .iter()
        .map(|f| {
            let ctx = f.rsplit_once('/').map_or(".", |(d, _)| d);
            format!(
                "docker build --file {} {}",
                super::render::shell_quote(f),
                super::render::shell_quote(ctx)
            )
        })
        .collect()
}

/// How a project measures coverage (`coverage` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRun {
    /// Commands (after install) that write the report.
    pub commands: Vec<String>,
    /// The report, relative to the project directory.
    pub report: &'static str,
    /// `cobertura` (GitLab reads it natively) or `go`.
    pub format: &'static str,
}

/// The coverage run of a project, if its ecosystem and test tool have a standard one.
/// `container`: tools are installed from source (no pinned installer action there).
pub fn coverage(p: &Project, container: bool) -> Option<CoverageRun> {
    let exec = |bin: &str| match p.package_manager {
        Some(PackageManager::Pnpm) => format!("pnpm exec {bin}"),
        Some(PackageManager::Yarn) => format!("yarn {bin}"),
        Some(PackageManager::Bun) => format!("bunx {bin}"),
        _ => format!("npx {bin}"),
    };
    let (commands, report, format) = match (p.language, p.package_manager, p.test_tool) {
        (Language::Rust, _, _) => {
            let mut c = vec!["rustup component add llvm-tools-preview".to_owned()];
            if container {
                c.push("cargo install cargo-llvm-cov --locked".to_owned());
            }
            c.push(
                "cargo llvm-cov --all-features --cobertura --output-path coverage.xml".to_owned(),
            );
            (c, "coverage.xml", "cobertura")
        }
        (Language::Python, Some(PackageManager::Uv), Some(TestTool::Pytest)) => (
            vec!["uv run --with pytest-cov pytest --cov --cov-report=xml:coverage.xml".to_owned()],
            "coverage.xml",
            "cobertura",
        ),
        (Language::Python, Some(PackageManager::Poetry), Some(TestTool::Pytest)) => (
            vec![
                "poetry run python -m pip install pytest-cov".to_owned(),
                "poetry run pytest --cov --cov-report=xml:coverage.xml".to_owned(),
            ],
            "coverage.xml",
            "cobertura",
        ),
        (Language::Python, Some(PackageManager::Pip), Some(TestTool::Pytest)) => (
            vec![
                "python -m pip install pytest-cov".to_owned(),
                "python -m pytest --cov --cov-report=xml:coverage.xml".to_owned(),
            ],
            "coverage.xml",
            "cobertura",
        ),
        (Language::JavaScript | Language::TypeScript, _, Some(TestTool::Jest)) => (
            vec![exec("jest --coverage --coverageReporters=cobertura")],
            "coverage/cobertura-coverage.xml",
            "cobertura",
        ),
        (Language::Go, _, _) => (
            vec!["go test -coverprofile=coverage.out ./...".to_owned()],
            "coverage.out",
            "go",
        ),
        _ => return None,
    };
    Some(CoverageRun {
        commands,
        report,
        format,
    })
}

/// The dependency vulnerability scan for a project (`security` feature), if its
/// ecosystem has a standard one.
pub fn security_command(p: &Project) -> Option<String> {
    let yarn_berry = p.evidence.iter().any(|e| e.ends_with(".yarnrc.yml"));
    Some(
        match (p.language, p.package_manager) {
            (Language::Rust, _) => "cargo install cargo-audit --locked && cargo audit",
            (_, Some(PackageManager::Npm)) => "npm audit --audit-level=high",
            (_, Some(PackageManager::Pnpm)) => "pnpm audit --audit-level high",
            (_, Some(PackageManager::Yarn)) if yarn_berry => "yarn npm audit --severity high",
            (_, Some(PackageManager::Yarn)) => "yarn audit --level high",
            (Language::Python, _) => "python -m pip install pip-audit && pip-audit",
            (Language::Go, _) => "go run golang.org/x/vuln/cmd/govulncheck@latest ./...",
            (Language::Ruby, _) => "gem install bundler-audit && bundle-audit check --update",
            (Language::Php, _) => "composer audit",
            (Language::CSharp | Language::FSharp, _) => {
                "dotnet list package --vulnerable --include-transitive"
            }
            _ => return None,
        }
        .to_owned(),
    )
}

/// The commands of a project's job, in order, after its runtime's setup.
pub fn script(p: &Project, r: &Runtime) -> Vec<String> {
    let mut s = r.setup.clone();
    s.extend(p.commands.install.iter().cloned());
    s.extend(p.commands.lint.iter().cloned());
    s.extend(p.commands.build.iter().cloned());
    s.extend(p.commands.test.iter().cloned());
    s
}

/// One container job of a container-based provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerJob {
    /// Job id (letters, digits, `-`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Project directory (`.` = root).
    pub dir: String,
    /// Image when there is no matrix.
    pub image: String,
    /// Images to run on, when more than one version is declared.
    pub matrix: Option<Vec<String>>,
    /// Reset the image's entrypoint.
    pub reset_entrypoint: bool,
    /// Variables (values may use `${CI_PROJECT_DIR}`, translated per provider).
    pub variables: Vec<(&'static str, String)>,
    /// Service names (see `services`) the tests need.
    pub services: Vec<&'static str>,
    /// Cache directories, relative to the repository root.
    pub cache_paths: Vec<String>,
    /// Lockfiles keying the cache (at most two: GitLab's limit).
    pub cache_key_files: Vec<String>,
    /// Paths whose changes trigger the job (monorepos only).
    pub changes: Vec<String>,
    /// Commands, already including `cd <dir>` for sub-projects.
    pub script: Vec<String>,
    /// Coverage report (repository path) and its format, when coverage is on.
    pub coverage: Option<(String, &'static str)>,
}

/// A service container: (name, image, environment).
pub type ServiceSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Services container providers can run, by the name detection reports.
pub const SERVICES: &[ServiceSpec] = &[
    (
        "postgres",
        "postgres:17",
        &[
            ("POSTGRES_USER", "postgres"),
            ("POSTGRES_PASSWORD", "postgres"),
            ("POSTGRES_DB", "test"),
        ],
    ),
    ("redis", "redis:7", &[]),
    (
        "mysql",
        "mysql:8.4",
        &[("MYSQL_ROOT_PASSWORD", "root"), ("MYSQL_DATABASE", "test")],
    ),
    (
        "mariadb",
        "mariadb:11",
        &[
            ("MARIADB_ROOT_PASSWORD", "root"),
            ("MARIADB_DATABASE", "test"),
        ],
    ),
    ("mongo", "mongo:7", &[]),
    ("rabbitmq", "rabbitmq:3", &[]),
    ("memcached", "memcached:1.6", &[]),
];

/// Jobs for every project of `analysis` (Dockerfiles are handled by each provider).
pub fn container_jobs(
    analysis: &crate::analyze::Analysis,
    target: &super::Target,
) -> Vec<ContainerJob> {
    let monorepo = analysis.projects.len() > 1;
    let mut ids: Vec<String> = Vec::new();
    let mut jobs = Vec::new();
    for p in &analysis.projects {
        let r = runtime(p);
        let id = super::github::unique_project_id(p, &mut ids);
        let prefix = |path: &str| {
            if p.path == "." {
                path.to_owned()
            } else {
                format!("{}/{path}", p.path)
            }
        };
        let mut lines = Vec::new();
        if p.path != "." {
            lines.push(format!("cd {}", super::render::shell_quote(&p.path)));
        }
        lines.extend(script(p, &r));
        if target.features.security {
            lines.extend(security_command(p));
        }
        let cov = target
            .features
            .coverage
            .then(|| coverage(p, true))
            .flatten();
        let coverage_report = cov.as_ref().map(|c| (prefix(c.report), c.format));
        if let Some(c) = cov {
            lines.extend(c.commands);
        }
        lines.extend(target.extra_steps.iter().map(|e| e.run.clone()));
        let services: Vec<&'static str> = if p.commands.test.is_some() {
            analysis
                .services
                .iter()
                .filter_map(|s| SERVICES.iter().find(|(n, _, _)| n == s).map(|(n, _, _)| *n))
                .collect()
        } else {
            Vec::new()
        };
        let mut variables: Vec<(&'static str, String)> = r
            .variables
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    v.replace(
                        "${CI_PROJECT_DIR}",
                        &format!(
                            "${{CI_PROJECT_DIR}}{}",
                            if p.path == "." {
                                String::new()
                            } else {
                                format!("/{}", p.path)
                            }
                        ),
                    ),
                )
            })
            .collect();
        for s in &services {
            if let Some((_, _, env)) = SERVICES.iter().find(|(n, _, _)| n == s) {
                variables.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
            }
        }
        jobs.push(ContainerJob {
            name: if p.path == "." {
                p.language.to_string()
            } else {
                format!("{} ({})", p.path, p.language)
            },
            dir: p.path.clone(),
            image: r.images[0].clone(),
            matrix: (r.images.len() > 1).then(|| r.images.clone()),
            reset_entrypoint: r.reset_entrypoint,
            variables,
            services,
            cache_paths: r.cache_paths.iter().map(|c| prefix(c)).collect(),
            cache_key_files: r.cache_key_files.iter().take(2).cloned().collect(),
            changes: if monorepo && p.path != "." {
                vec![format!("{}/**/*", p.path)]
            } else {
                Vec::new()
            },
            script: lines,
            coverage: coverage_report,
            id,
        });
    }
    jobs
}

/// A publish job for a version tag (`release` feature) on a container provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseJob {
    /// Job id.
    pub id: String,
    /// Image.
    pub image: String,
    /// Commands (credentials come from the provider's protected CI variables, named in
    /// the generated file's comments: CARGO_REGISTRY_TOKEN, NPM_TOKEN, PYPI_TOKEN).
    pub script: Vec<String>,
}

/// What each publishable project publishes, and how. Projects of other ecosystems get
/// no publish job (the provider's release entry still marks the tag).
pub fn release_jobs(analysis: &crate::analyze::Analysis) -> Vec<ReleaseJob> {
    let mut out = Vec::new();
    for p in &analysis.projects {
        let cd = (p.path != ".").then(|| format!("cd {}", super::render::shell_quote(&p.path)));
        let (suffix, image, commands): (&str, &str, Vec<&str>) = match (p.language, p.package_manager) {
            (Language::Rust, _) => ("crate", "rust:latest", vec!["cargo publish --locked"]),
            (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
                let mut c = Vec::new();
                if pm != PackageManager::Npm {
                    c.push("corepack enable".to_owned());
                }
                c.extend(p.commands.install.iter().cloned());
                c.extend(p.commands.build.iter().cloned());
                c.push("npm config set //registry.npmjs.org/:_authToken \"$NPM_TOKEN\"".to_owned());
                c.push("npm publish --access public".to_owned());
                let base = super::github::project_slug(p);
                let mut script: Vec<String> = cd.into_iter().collect();
                script.extend(c);
                out.push(ReleaseJob { id: format!("publish-{base}-npm"), image: "node:lts".to_owned(), script });
                continue;
            }
            (Language::Python, _) => (
                "pypi",
                "python:3.13",
                vec![
                    "python -m pip install build twine",
                    "python -m build",
                    "python -m twine upload --non-interactive -u __token__ -p \"$PYPI_TOKEN\" dist/*",
                ],
            ),
            _ => continue,
        };
        let base = super::github::project_slug(p);
        let mut script: Vec<String> = cd.into_iter().collect();
        script.extend(commands.into_iter().map(str::to_owned));
        out.push(ReleaseJob {
            id: format!("publish-{base}-{suffix}"),
            image: image.to_owned(),
            script,
        });
    }
    out
}

/// `docker build` + `docker push` of every Dockerfile for a release. `registry` is the
/// provider's image-name variable (`$CI_REGISTRY_IMAGE`, `$DOCKER_IMAGE`) and `tag` its
/// tag variable; a Dockerfile outside the root gets its directory as a sub-name.
pub fn docker_push_commands(dockerfiles: &[String], registry: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in dockerfiles {
        let (ctx, sub) = match f.rsplit_once('/') {
            Some((d, _)) => (d, format!("/{}", super::github::slug(d))),
            None => (".", String::new()),
        };
        let image = format!("\"{registry}{sub}:{tag}\"");
        out.push(format!(
            "docker build --file {} --tag {image} {}",
            super::render::shell_quote(f),
            super::render::shell_quote(ctx)
        ));
        out.push(format!("docker push {image}"));
    }
    out
}
