//! How each project's toolchain gets onto a CI machine, decided once for every
//! provider: the GitHub-hosted runner's setup steps (pinned actions), the container
//! image per version for GitLab and Bitbucket, the cache directories and the lockfiles
//! that key them, and — for the provenance check — the executables the toolchain puts
//! on `PATH` in either layout.

use super::{Action, Matrix, Role, Step, Where};
use crate::analyze::{Framework, Language, PackageManager, Project, TestTool};

/// A toolchain, laid out for both kinds of CI machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Toolchain {
    /// What it is, for people and for `try` (`python`, `node`, `rust`, …).
    pub kind: ToolchainKind,
    /// The version each matrix cell runs (one entry without a matrix).
    pub versions: Vec<String>,
    /// A matrix over `versions` when there are several.
    pub matrix: Option<Matrix>,
    /// Setup steps, in order (GitHub actions, container-only commands, or both).
    pub steps: Vec<Step>,
    /// Container providers: the image per entry of `versions`.
    pub images: Vec<String>,
    /// The image's entrypoint is a tool, not a shell: reset it.
    pub reset_entrypoint: bool,
    /// Container providers: environment the toolchain needs (`${CI_PROJECT_DIR}` is
    /// the project directory, translated per provider).
    pub variables: Vec<(&'static str, String)>,
    /// Container providers: directories to cache, relative to the project.
    pub cache_paths: Vec<String>,
    /// Container providers: lockfiles (repository paths) keying the cache.
    pub cache_key_files: Vec<String>,
    /// Executables on `PATH` once set up, in every layout.
    pub provides: Vec<String>,
}

/// The kind of toolchain (what `try` must find or provision locally).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolchainKind {
    /// rustup + cargo.
    Rust,
    /// Node.js (npm; pnpm and yarn through corepack).
    Node,
    /// Bun.
    Bun,
    /// Deno.
    Deno,
    /// CPython (+ the project's package manager).
    Python,
    /// Go.
    Go,
    /// A JDK (+ Maven, Gradle or sbt).
    Java,
    /// Ruby + Bundler.
    Ruby,
    /// PHP + Composer.
    Php,
    /// .NET SDK.
    Dotnet,
    /// Erlang/OTP + Elixir.
    Elixir,
    /// Dart or Flutter.
    Dart,
    /// GHC + cabal or stack.
    Haskell,
    /// Zig.
    Zig,
    /// Swift.
    Swift,
    /// A C/C++ compiler with CMake, Meson or make.
    Native,
    /// Terraform / OpenTofu.
    Terraform,
    /// Helm.
    Helm,
    /// A static-site or document builder (Hugo, Jekyll, LaTeX, MkDocs, Sphinx).
    Docs,
    /// A plain shell environment.
    Shell,
}

/// Shell tools and utilities every CI machine pipewright targets has.
pub const BASE_TOOLS: &[&str] = &[
    "sh", "bash", "cd", "echo", "printf", "test", "[", "true", "false", "export", "set", "exit",
    "mkdir", "rm", "cp", "mv", "cat", "ls", "chmod", "touch", "find", "xargs", "grep", "sed", "tr",
    "head", "tail", "env", "git", "exec", "command", "source", ".", "if", "then", "fi", "for",
    "do", "done", "while",
];

fn run(name: &str, cmd: impl Into<String>) -> Step {
    Step::new(name, Role::Toolchain, Action::Run(cmd.into()))
}

fn uses(name: &str, action: &'static str, with: Vec<(&'static str, String)>) -> Step {
    Step::new(
        name,
        Role::Toolchain,
        Action::Uses {
            action,
            with,
            raw_with: Vec::new(),
        },
    )
}

fn container(name: &str, cmd: impl Into<String>) -> Step {
    let mut s = run(name, cmd);
    s.on = Where::Containers;
    s
}

fn github(mut s: Step) -> Step {
    s.on = Where::Github;
    s
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

/// The project's files named `name` (at the project or, for workspaces, the root).
fn lock(p: &Project, name: &str) -> Vec<String> {
    p.evidence
        .iter()
        .filter(|e| e.rsplit('/').next() == Some(name))
        .cloned()
        .collect()
}

/// `name` inside the project, as a repository path.
fn in_project(p: &Project, name: &str) -> String {
    if p.path == "." {
        name.to_owned()
    } else {
        format!("{}/{name}", p.path)
    }
}

/// The toolchain for `p`. `versions` are the versions to test on (already narrowed by
/// the plan), `lint` whether lint steps will run (their components cost a download).
pub fn toolchain(p: &Project, versions: &[String], lint: bool) -> Toolchain {
    let mut t = Toolchain {
        kind: ToolchainKind::Shell,
        versions: versions.to_vec(),
        matrix: None,
        steps: Vec::new(),
        images: Vec::new(),
        reset_entrypoint: false,
        variables: Vec::new(),
        cache_paths: Vec::new(),
        cache_key_files: Vec::new(),
        provides: Vec::new(),
    };
    // The version expression a GitHub setup step uses, and the matrix when several.
    let mut version_of = |key: &'static str, default: &str| -> String {
        match versions.len() {
            0 => default.to_owned(),
            1 => versions[0].clone(),
            _ => {
                t.matrix = Some(Matrix {
                    key,
                    values: versions.to_vec(),
                });
                format!("${{{{ matrix.{key} }}}}")
            }
        }
    };
    let images_for = |default: &str, f: &dyn Fn(&str) -> String| -> Vec<String> {
        if versions.is_empty() {
            vec![f(default)]
        } else {
            versions.iter().map(|v| f(v)).collect()
        }
    };
    let provides = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match (p.language, p.package_manager) {
        (Language::Rust, _) => {
            t.kind = ToolchainKind::Rust;
            let v = version_of("rust", "stable");
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
            t.steps.push(github(install));
            t.steps.push(github(uses(
                "Cache",
                "Swatinem/rust-cache",
                vec![("workspaces", p.path.clone())],
            )));
            t.images = images_for("stable", &|v| {
                format!(
                    "rust:{}",
                    if v == "stable" {
                        "latest".to_owned()
                    } else {
                        tag(v)
                    }
                )
            });
            if lint {
                t.steps.push(container(
                    "Install Rust components",
                    "rustup component add rustfmt clippy",
                ));
            }
            t.variables
                .push(("CARGO_HOME", "${CI_PROJECT_DIR}/.cargo".to_owned()));
            t.cache_paths = vec![".cargo/registry".to_owned(), "target".to_owned()];
            t.cache_key_files = lock(p, "Cargo.lock");
            t.provides = provides(&["cargo", "rustc", "rustup", "make"]);
            if lint {
                t.provides
                    .extend(provides(&["cargo-fmt", "rustfmt", "cargo-clippy"]));
            }
        }
        (_, Some(PackageManager::Bun)) => {
            t.kind = ToolchainKind::Bun;
            t.steps
                .push(github(uses("Set up Bun", "oven-sh/setup-bun", vec![])));
            t.images = vec!["oven/bun:1".to_owned()];
            t.provides = provides(&["bun", "bunx"]);
        }
        (_, Some(PackageManager::Deno)) => {
            t.kind = ToolchainKind::Deno;
            t.steps.push(github(uses(
                "Set up Deno",
                "denoland/setup-deno",
                vec![("deno-version", "v2.x".to_owned())],
            )));
            t.images = vec!["denoland/deno:2".to_owned()];
            t.provides = provides(&["deno"]);
        }
        (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
            t.kind = ToolchainKind::Node;
            let v = version_of("node", "lts/*");
            let (cache, dep, dir) = match pm {
                PackageManager::Pnpm => ("pnpm", "pnpm-lock.yaml", ".pnpm-store"),
                PackageManager::Yarn => ("yarn", "yarn.lock", ".yarn/cache"),
                _ => ("npm", "package-lock.json", ".npm"),
            };
            if pm != PackageManager::Npm {
                // pnpm and yarn come from corepack (pinned by packageManager when set);
                // on GitHub before setup-node, whose cache needs the package manager.
                t.steps.push(run("Enable corepack", "corepack enable"));
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
            t.steps
                .push(github(uses("Set up Node.js", "actions/setup-node", with)));
            t.images = images_for("lts", &|v| {
                format!(
                    "node:{}",
                    if v.starts_with("lts") {
                        "lts".to_owned()
                    } else {
                        tag(v)
                    }
                )
            });
            match pm {
                PackageManager::Npm => t
                    .variables
                    .push(("npm_config_cache", "${CI_PROJECT_DIR}/.npm".to_owned())),
                PackageManager::Pnpm => t.steps.push(container(
                    "Configure the pnpm store",
                    "pnpm config set store-dir .pnpm-store",
                )),
                _ => {}
            }
            t.cache_paths = vec![dir.to_owned()];
            t.cache_key_files = lock(p, dep);
            t.provides = provides(&["node", "npm", "npx", "corepack", "make"]);
            if pm != PackageManager::Npm {
                t.provides.push(pm.as_str().to_owned());
            }
        }
        (Language::Python, pm) => {
            t.kind = ToolchainKind::Python;
            let v = version_of("python", "3.13");
            if pm == Some(PackageManager::Uv) {
                t.steps.push(github(uses(
                    "Set up uv",
                    "astral-sh/setup-uv",
                    vec![("python-version", v), ("enable-cache", "true".to_owned())],
                )));
                t.steps
                    .push(container("Install uv", "python -m pip install uv"));
            } else {
                t.steps.push(github(uses(
                    "Set up Python",
                    "actions/setup-python",
                    vec![("python-version", v)],
                )));
                let pm_tool = match pm {
                    Some(PackageManager::Poetry) => Some("poetry"),
                    Some(PackageManager::Pdm) => Some("pdm"),
                    Some(PackageManager::Pipenv) => Some("pipenv"),
                    Some(PackageManager::Hatch) => Some("hatch"),
                    _ => None,
                };
                if let Some(tool) = pm_tool {
                    t.steps.push(run(
                        &format!("Install {tool}"),
                        format!("python -m pip install {}", pip_spec_of(tool)),
                    ));
                }
            }
            t.images = images_for("3.13", &|v| format!("python:{}", tag(v)));
            t.variables
                .push(("PIP_CACHE_DIR", "${CI_PROJECT_DIR}/.cache/pip".to_owned()));
            t.cache_paths = vec![".cache/pip".to_owned()];
            for f in [
                "uv.lock",
                "poetry.lock",
                "pdm.lock",
                "Pipfile.lock",
                "requirements.txt",
            ] {
                t.cache_key_files.extend(lock(p, f));
            }
            t.provides = provides(&["python", "python3", "pip", "make"]);
            if let Some(pm) = pm.filter(|pm| *pm != PackageManager::Pip) {
                t.provides.push(pm.as_str().to_owned());
                if pm == PackageManager::Uv {
                    t.provides.push("uvx".to_owned());
                }
            }
        }
        (Language::Go, _) => {
            t.kind = ToolchainKind::Go;
            t.steps.push(github(uses(
                "Set up Go",
                "actions/setup-go",
                vec![
                    ("go-version-file", in_project(p, "go.mod")),
                    ("cache-dependency-path", in_project(p, "go.sum")),
                ],
            )));
            t.images = images_for("1.23", &|v| format!("golang:{}", tag(v)));
            // go-version-file decides on GitHub: a version matrix is for images only.
            t.variables
                .push(("GOPATH", "${CI_PROJECT_DIR}/.go".to_owned()));
            t.cache_paths = vec![".go/pkg/mod".to_owned()];
            t.provides = provides(&["go", "gofmt", "make"]);
        }
        (Language::Java | Language::Kotlin | Language::Scala, pm) => {
            t.kind = ToolchainKind::Java;
            let v = version_of("java", "21");
            let cache = match pm {
                Some(PackageManager::Maven) => "maven",
                Some(PackageManager::Gradle) => "gradle",
                _ => "sbt",
            };
            let mut with = vec![("distribution", "temurin".to_owned()), ("java-version", v)];
            if pm != Some(PackageManager::Gradle) {
                with.push(("cache", String::from(cache)));
            }
            t.steps
                .push(github(uses("Set up Java", "actions/setup-java", with)));
            match pm {
                Some(PackageManager::Gradle) => t.steps.push(github(uses(
                    "Set up Gradle",
                    "gradle/actions/setup-gradle",
                    vec![],
                ))),
                Some(PackageManager::Sbt) => {
                    t.steps
                        .push(github(uses("Set up sbt", "sbt/setup-sbt", vec![])))
                }
                _ => {}
            }
            t.provides = provides(&["java", "javac"]);
            match (p.language, pm) {
                (Language::Scala, _) => {
                    t.images = vec![
                        "sbtscala/scala-sbt:eclipse-temurin-21.0.6_7_1.10.11_3.6.4".to_owned()
                    ];
                    t.provides.push("sbt".to_owned());
                }
                (_, Some(PackageManager::Maven)) => {
                    t.images = images_for("21", &|v| format!("maven:3-eclipse-temurin-{}", tag(v)));
                    t.variables.push((
                        "MAVEN_OPTS",
                        "-Dmaven.repo.local=${CI_PROJECT_DIR}/.m2/repository".to_owned(),
                    ));
                    t.cache_paths = vec![".m2/repository".to_owned()];
                    t.provides.push("mvn".to_owned());
                }
                _ => {
                    t.images = images_for("21", &|v| format!("gradle:jdk{}", tag(v)));
                    t.variables
                        .push(("GRADLE_USER_HOME", "${CI_PROJECT_DIR}/.gradle".to_owned()));
                    t.cache_paths = vec![".gradle/caches".to_owned(), ".gradle/wrapper".to_owned()];
                    t.provides.push("gradle".to_owned());
                }
            }
        }
        (Language::Ruby, _) => {
            t.kind = ToolchainKind::Ruby;
            let v = version_of("ruby", "ruby");
            let with = vec![
                ("ruby-version", v),
                ("bundler-cache", "true".to_owned()),
                ("working-directory", p.path.clone()),
            ];
            t.steps
                .push(github(uses("Set up Ruby", "ruby/setup-ruby", with)));
            t.images = images_for("3.3", &|v| format!("ruby:{}", tag(v)));
            t.variables
                .push(("BUNDLE_PATH", "vendor/bundle".to_owned()));
            t.cache_paths = vec!["vendor/bundle".to_owned()];
            t.cache_key_files = lock(p, "Gemfile.lock");
            t.provides = provides(&["ruby", "gem", "bundle", "bundler", "rake", "make"]);
        }
        (Language::Php, _) => {
            t.kind = ToolchainKind::Php;
            let v = version_of("php", "8.4");
            t.steps.push(github(uses(
                "Set up PHP",
                "shivammathur/setup-php",
                vec![("php-version", v)],
            )));
            t.images = vec!["composer:2".to_owned()];
            t.variables.push((
                "COMPOSER_CACHE_DIR",
                "${CI_PROJECT_DIR}/.composer".to_owned(),
            ));
            t.cache_paths = vec![".composer".to_owned()];
            t.provides = provides(&["php", "composer"]);
        }
        (Language::CSharp | Language::FSharp, _) => {
            t.kind = ToolchainKind::Dotnet;
            let v = version_of("dotnet", "9.0.x");
            t.steps.push(github(uses(
                "Set up .NET",
                "actions/setup-dotnet",
                vec![("dotnet-version", v)],
            )));
            t.images = images_for("9.0", &|v| {
                format!(
                    "mcr.microsoft.com/dotnet/sdk:{}",
                    tag(v.trim_end_matches(".x"))
                )
            });
            t.variables.push((
                "NUGET_PACKAGES",
                "${CI_PROJECT_DIR}/.nuget/packages".to_owned(),
            ));
            t.cache_paths = vec![".nuget/packages".to_owned()];
            t.provides = provides(&["dotnet"]);
        }
        (Language::Elixir, _) => {
            t.kind = ToolchainKind::Elixir;
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
            t.steps
                .push(github(uses("Set up Elixir", "erlef/setup-beam", with)));
            let v = versions
                .iter()
                .find_map(|v| v.strip_prefix("elixir "))
                .map(|v| v.split('-').next().unwrap_or(v).to_owned());
            t.images = vec![format!(
                "elixir:{}",
                tag(&v.unwrap_or_else(|| "1.17".to_owned()))
            )];
            t.steps.push(container(
                "Install Hex and rebar",
                "mix local.hex --force && mix local.rebar --force",
            ));
            t.cache_paths = vec!["deps".to_owned(), "_build".to_owned()];
            t.provides = provides(&["mix", "elixir", "erl", "make"]);
            // GitHub-style versions are tool-prefixed; they are not a matrix.
            t.versions.clear();
        }
        // Learned archetypes (src/learn): PlatformIO brings its own compilers and needs
        // Python; notebooks (nbval) and SQL (sqlfluff) are checked with Python tools.
        (Language::C | Language::Cpp, _) if p.frameworks.contains(&Framework::Platformio) => {
            python_for_tools(&mut t);
        }
        (Language::Jupyter | Language::Sql, _) => {
            python_for_tools(&mut t);
        }
        // A hand-written static site is checked with an npm tool through npx.
        (Language::Html, _) => {
            t.kind = ToolchainKind::Node;
            t.steps.push(github(uses(
                "Set up Node.js",
                "actions/setup-node",
                vec![("node-version", "lts/*".to_owned())],
            )));
            t.images = vec!["node:lts".to_owned()];
            t.provides = provides(&["node", "npm", "npx"]);
        }
        (Language::C | Language::Cpp, pm) => {
            t.kind = ToolchainKind::Native;
            // gcc, cmake and make are on GitHub's Ubuntu runners; Meson is not.
            if pm == Some(PackageManager::Meson) {
                t.steps.push(github(run(
                    "Install Meson",
                    "sudo apt-get update && sudo apt-get install -y meson ninja-build",
                )));
            }
            t.images = vec!["gcc:14".to_owned()];
            let tools = if pm == Some(PackageManager::Meson) {
                "meson ninja-build"
            } else {
                "cmake"
            };
            t.steps.push(container(
                "Install build tools",
                format!("apt-get update && apt-get install -y --no-install-recommends {tools}"),
            ));
            t.provides = provides(&["gcc", "g++", "cc", "c++", "make", "cmake", "ctest"]);
            if pm == Some(PackageManager::Meson) {
                t.provides.extend(provides(&["meson", "ninja"]));
            }
        }
        (Language::Swift, _) => {
            t.kind = ToolchainKind::Swift;
            t.images = images_for("6.0", &|v| format!("swift:{}", tag(v)));
            t.provides = provides(&["swift"]);
            // Swift on GitHub comes with the runner; its version is the runner's.
            t.versions.clear();
        }
        (Language::Dart, _) if p.frameworks.contains(&Framework::Flutter) => {
            t.kind = ToolchainKind::Dart;
            t.steps.push(github(uses(
                "Set up Flutter",
                "subosito/flutter-action",
                vec![
                    ("channel", "stable".to_owned()),
                    ("cache", "true".to_owned()),
                ],
            )));
            t.images = vec!["ghcr.io/cirruslabs/flutter:stable".to_owned()];
            t.provides = provides(&["flutter", "dart"]);
        }
        (Language::Dart, _) => {
            t.kind = ToolchainKind::Dart;
            t.steps
                .push(github(uses("Set up Dart", "dart-lang/setup-dart", vec![])));
            t.images = vec!["dart:stable".to_owned()];
            t.provides = provides(&["dart"]);
        }
        (Language::Haskell, pm) => {
            t.kind = ToolchainKind::Haskell;
            let mut with = vec![("ghc-version", "latest".to_owned())];
            if pm == Some(PackageManager::Stack) {
                with.push(("enable-stack", "true".to_owned()));
            }
            t.steps.push(github(uses(
                "Set up Haskell",
                "haskell-actions/setup",
                with,
            )));
            t.images = vec!["haskell:9".to_owned()];
            t.provides = provides(&["ghc", "cabal", "stack", "make"]);
            t.versions.clear();
        }
        (Language::Zig, _) => {
            t.kind = ToolchainKind::Zig;
            let v = versions
                .first()
                .cloned()
                .unwrap_or_else(|| "0.14.1".to_owned());
            // setup-zig still runs on a deprecated Node runtime; PyPI's ziglang ships Zig.
            t.steps.push(github(run(
                "Install Zig",
                format!(
                    "python3 -m pip install --user \"ziglang=={v}\" && mkdir -p \"$HOME/.local/bin\" && printf '#!/bin/sh\\nexec python3 -m ziglang \"$@\"\\n' > \"$HOME/.local/bin/zig\" && chmod +x \"$HOME/.local/bin/zig\""
                ),
            )));
            t.images = vec!["python:3.13".to_owned()];
            t.steps.push(container(
                "Install Zig",
                format!("python -m pip install \"ziglang=={v}\" && printf '#!/bin/sh\\nexec python -m ziglang \"$@\"\\n' > /usr/local/bin/zig && chmod +x /usr/local/bin/zig"),
            ));
            t.provides = provides(&["zig"]);
            t.versions.truncate(1);
        }
        (Language::Hcl, _) => {
            t.kind = ToolchainKind::Terraform;
            t.steps.push(github(uses(
                "Set up Terraform",
                "hashicorp/setup-terraform",
                vec![],
            )));
            t.images = vec!["hashicorp/terraform:1.9".to_owned()];
            t.reset_entrypoint = true;
            t.provides = provides(&["terraform"]);
        }
        (Language::Yaml, _) if p.frameworks.contains(&Framework::Helm) => {
            t.kind = ToolchainKind::Helm;
            t.images = vec!["alpine/helm:3".to_owned()];
            t.reset_entrypoint = true;
            // helm is on GitHub's Ubuntu runners.
            t.provides = provides(&["helm"]);
        }
        (Language::Yaml, _) => {
            python_for_tools(&mut t);
        }
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Jekyll) => {
            t.kind = ToolchainKind::Docs;
            let with = vec![
                ("ruby-version", "ruby".to_owned()),
                ("bundler-cache", "true".to_owned()),
                ("working-directory", p.path.clone()),
            ];
            t.steps
                .push(github(uses("Set up Ruby", "ruby/setup-ruby", with)));
            t.images = vec!["ruby:3.3".to_owned()];
            t.provides = provides(&["ruby", "gem", "bundle", "bundler"]);
            if p.package_manager != Some(PackageManager::Bundler) {
                t.steps.push(run("Install Jekyll", "gem install jekyll"));
                t.provides.push("jekyll".to_owned());
            }
        }
        (Language::Markdown, _) if p.frameworks.contains(&Framework::Hugo) => {
            t.kind = ToolchainKind::Docs;
            t.steps.push(github(run(
                "Install Hugo",
                "sudo apt-get update && sudo apt-get install -y hugo",
            )));
            t.images = vec!["debian:stable-slim".to_owned()];
            t.steps.push(container(
                "Install Hugo",
                "apt-get update && apt-get install -y --no-install-recommends hugo",
            ));
            t.provides = provides(&["hugo"]);
        }
        (Language::Markdown, _) => {
            // MkDocs and Sphinx are Python tools: a Python toolchain (and a fresh
            // interpreter environment under `try`).
            python_for_tools(&mut t);
        }
        (Language::Tex, _) => {
            t.kind = ToolchainKind::Docs;
            t.steps.push(github(run(
                "Install LaTeX",
                "sudo apt-get update && sudo apt-get install -y latexmk texlive-latex-recommended",
            )));
            t.images = vec!["texlive/texlive:latest".to_owned()];
            t.provides = provides(&["latexmk", "pdflatex", "make"]);
        }
        (Language::Shell, _) => {
            t.kind = ToolchainKind::Shell;
            let bats = p.test_tool == Some(TestTool::Bats);
            if bats {
                t.steps.push(github(run(
                    "Install bats",
                    "sudo apt-get update && sudo apt-get install -y bats",
                )));
            }
            t.images = vec!["debian:stable-slim".to_owned()];
            t.steps.push(container(
                "Install shell tools",
                format!(
                    "apt-get update && apt-get install -y --no-install-recommends git make shellcheck{}",
                    if bats { " bats" } else { "" }
                ),
            ));
            // shellcheck is on GitHub's Ubuntu runners.
            t.provides = provides(&["shellcheck", "make"]);
            if bats {
                t.provides.push("bats".to_owned());
            }
        }
        _ => {
            t.images = vec!["debian:stable-slim".to_owned()];
        }
    }
    // Only a real matrix gives one image per version.
    if t.matrix.is_none() {
        t.images.truncate(1);
    }
    t
}

/// How a Python package manager is installed with pip: PDM publishes the dependency
/// set it was tested with as its `locked` extra (pdm-build-locked), so a new release of
/// one of its dependencies cannot break the job's package manager.
pub fn pip_spec_of(tool: &str) -> &'static str {
    match tool {
        "pdm" => "'pdm[locked]'",
        "poetry" => "poetry",
        "pipenv" => "pipenv",
        "hatch" => "hatch",
        "uv" => "uv",
        _ => "",
    }
}

/// The Python toolchain of projects checked with Python tools (docs, notebooks, SQL,
/// YAML, PlatformIO): the newest Python on GitHub's runners and in containers.
fn python_for_tools(t: &mut Toolchain) {
    t.kind = ToolchainKind::Python;
    t.steps.push(github(uses(
        "Set up Python",
        "actions/setup-python",
        vec![("python-version", "3.13".to_owned())],
    )));
    t.images = vec!["python:3.13".to_owned()];
    t.provides = ["python", "python3", "pip"].map(str::to_owned).to_vec();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::Commands;

    fn project(language: Language, pm: Option<PackageManager>) -> Project {
        Project {
            path: ".".to_owned(),
            language,
            package_manager: pm,
            frameworks: Vec::new(),
            test_tool: None,
            commands: Commands::default(),
            runtime_versions: Vec::new(),
            confidence: 0.9,
            evidence: Vec::new(),
            reasons: Vec::new(),
            members: Vec::new(),
            toolbox: Default::default(),
        }
    }

    #[test]
    fn a_matrix_gives_one_image_per_version() {
        let p = project(Language::Python, Some(PackageManager::Pip));
        let t = toolchain(&p, &["3.12".to_owned(), "3.13".to_owned()], true);
        assert_eq!(t.images, ["python:3.12", "python:3.13"]);
        assert_eq!(t.matrix.as_ref().unwrap().values, ["3.12", "3.13"]);
        let one = toolchain(&p, &["3.12".to_owned()], true);
        assert!(one.matrix.is_none());
        assert_eq!(one.images, ["python:3.12"]);
    }

    #[test]
    fn rust_components_only_with_lint() {
        let p = project(Language::Rust, Some(PackageManager::Cargo));
        assert!(toolchain(&p, &[], true)
            .provides
            .contains(&"cargo-clippy".to_owned()));
        assert!(!toolchain(&p, &[], false)
            .provides
            .contains(&"cargo-clippy".to_owned()));
    }
}
