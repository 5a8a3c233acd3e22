//! The CI/CD plan: one provider-neutral description of what CI runs for a repository,
//! built from its [`Analysis`]. Every per-ecosystem decision is made here, once — which
//! toolchain and versions, which services and caches, which steps in which order, what
//! each step needs and provides. The renderers in `generate/` only lay a plan out as
//! GitHub Actions, GitLab CI or Bitbucket Pipelines, and `pipewright try` runs the same
//! plan locally. Pure: no forge, database, environment or clock.
//!
//! A plan upholds one invariant, checked by [`tools::check`]: every executable a step
//! calls is provided by the toolchain, installed by an earlier step, or a script of the
//! project itself. A step that cannot satisfy it is left out and the plan says why
//! ([`Plan::notes`]), rather than proposing CI that fails on its first run.

pub mod adjust;
pub mod deploy;
pub mod heal;
pub mod local;
pub mod release;
pub mod services;
pub mod toolchain;
pub mod tools;

use serde::Serialize;

pub use adjust::Adjustment;
pub use services::Service;
pub use toolchain::{Toolchain, ToolchainKind};

use crate::analyze::conventions::ReusableCall;
use crate::analyze::{Analysis, Framework, Language, PackageManager, Project};
use crate::generate::{Provider, Target};

/// Minutes a job may run.
pub const JOB_TIMEOUT_MINUTES: u32 = 30;

/// Task runners installed whenever a project's commands call them (entry points, not
/// gates: installing them never makes CI stricter).
const RUNNER_TOOLS: &[&str] = &["just"];

/// What CI runs for one repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// "rust, cargo; python, uv": the stack, for headers and messages.
    pub summary: String,
    /// Workflows (GitHub files; sections of one file elsewhere), CI first.
    pub workflows: Vec<Workflow>,
    /// Decisions people should know about (a lint left out, a matrix narrowed), in the
    /// words the PR body and `explain` use.
    pub notes: Vec<String>,
}

/// A set of jobs with one trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    /// File stem on GitHub (`ci`, `ci-backend`, `release`).
    pub file: String,
    /// Display name.
    pub name: String,
    /// When it runs.
    pub trigger: Trigger,
    /// The stack of its projects, for the file header.
    pub summary: String,
    /// Jobs, in order.
    pub jobs: Vec<Job>,
}

/// When a workflow runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Pull requests and pushes to the CI branches; `paths` (repository globs) limits a
    /// monorepo project's workflow to its own files.
    Ci {
        /// Path filters; empty = every change.
        paths: Vec<String>,
    },
    /// Pushes of version tags (`v*`): releases. Never cancelled, never cached.
    Tags {
        /// Tag patterns.
        patterns: Vec<String>,
    },
    /// Continuous delivery: pushes to the default branch deploy `staging`, version tags
    /// (`v*`) deploy `production`. Never pull requests, never forks; never cancelled.
    Deploy {
        /// Pushes to the default branch deploy (a staging job exists).
        branch: bool,
        /// Version tags deploy (a production job exists).
        tags: bool,
    },
}

/// What a job is for (renderers lay some kinds out with the forge's own facilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Install, lint, build and test one project.
    Project,
    /// Build the repository's Dockerfiles (never pushed).
    DockerBuild,
    /// Publish a package to its registry (release).
    Publish,
    /// Build and push images to the forge's registry (release).
    ImagePublish,
    /// Create the forge's release entry for the tag.
    ForgeRelease,
    /// Build and push the image a deploy runs, tagged with the commit SHA, with
    /// provenance and SBOM attestations where the forge's builder allows them.
    DeployImage,
    /// Deploy to one target and environment ([`Job::deploy`]).
    Deploy,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Id: letters, digits, `-`, starting with a letter; unique in the plan.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub kind: JobKind,
    /// The project directory the commands run in (`.` = the repository root).
    pub dir: String,
    /// The toolchain and its setup (project jobs).
    pub toolchain: Option<Toolchain>,
    /// Container providers: the image of a job without a toolchain.
    pub image: Option<String>,
    /// Service containers the test steps need.
    pub services: Vec<Service>,
    /// Steps after the checkout, in order.
    pub steps: Vec<Step>,
    /// Permissions beyond reading the repository (release jobs only).
    pub permissions: Vec<(&'static str, &'static str)>,
    /// Minutes before the job is stopped.
    pub timeout_minutes: u32,
    /// Environment for every step (`TZ`, from a healed first run).
    pub env: Vec<(String, String)>,
    /// Coverage report (repository path) and its format, when coverage is on.
    pub coverage_report: Option<(String, &'static str)>,
    /// Dockerfiles a docker or image-publish job builds.
    pub dockerfiles: Vec<String>,
    /// Container providers: repository globs whose changes run the job (monorepos).
    pub changes: Vec<String>,
    /// GitHub: the org's reusable workflow this job calls instead of running steps
    /// (adopted from sibling repositories); such a job has no toolchain and no steps.
    pub reusable: Option<crate::analyze::conventions::ReusableCall>,
    /// Jobs of the same workflow that must succeed first.
    pub needs: Vec<String>,
    /// A deploy job's provider-neutral description (credentials, commands, gate).
    pub deploy: Option<Box<crate::deploy::DeployJob>>,
    /// Delivery jobs: the directory of the service they deploy (its build context), so a
    /// renderer can gate them on that project's checks.
    pub service: Option<String>,
}

/// A version matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// The matrix variable (`python`, `node`, `rust`, …).
    pub key: &'static str,
    /// Its values, oldest first.
    pub values: Vec<String>,
}

/// Why a step is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Installs the toolchain (`try` finds or provisions it locally instead).
    Toolchain,
    /// Installs a tool the project uses but does not install itself (tox, a pinned ruff).
    Tools,
    /// Installs the project's dependencies.
    Install,
    /// Lint, format or type check.
    Lint,
    /// Build.
    Build,
    /// Tests.
    Test,
    /// Coverage measurement and upload.
    Coverage,
    /// Dependency vulnerability scan.
    Security,
    /// Publishing (release jobs).
    Publish,
    /// A step from `.pipewright.yml`.
    Extra,
}

impl Role {
    /// Lower-case name, as shown by `try` and `explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Toolchain => "toolchain",
            Role::Tools => "tools",
            Role::Install => "install",
            Role::Lint => "lint",
            Role::Build => "build",
            Role::Test => "test",
            Role::Coverage => "coverage",
            Role::Security => "security",
            Role::Publish => "publish",
            Role::Extra => "extra",
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A shell command, run in the job's project directory.
    Run(String),
    /// A pinned GitHub action (`generate::pins`) with its inputs.
    Uses {
        /// `owner/repo[/path]`.
        action: &'static str,
        /// Inputs from data (quoted when rendered).
        with: Vec<(&'static str, String)>,
        /// Inputs written verbatim: only constants of this crate (`${{ secrets.X }}`).
        raw_with: Vec<(&'static str, &'static str)>,
    },
}

/// Which layouts a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Where {
    /// Every provider (and `try`).
    All,
    /// GitHub's hosted runners only (actions, `sudo apt-get`).
    Github,
    /// Container providers only (GitLab, Bitbucket): what their images lack.
    Containers,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Display name.
    pub name: String,
    /// Why it is there.
    pub role: Role,
    /// What it does.
    pub action: Action,
    /// Where it applies.
    pub on: Where,
    /// Environment from data (quoted when rendered).
    pub env: Vec<(&'static str, String)>,
    /// Environment written verbatim: only constants of this crate (secret expressions).
    pub raw_env: Vec<(&'static str, &'static str)>,
    /// Runs only in the newest cell of a matrix (lint: older toolchains lack lints).
    pub newest_only: bool,
    /// A failure fails the job (false: reported, not gating).
    pub blocking: bool,
    /// Executables (and `scope:name` tools) it calls, derived from its command.
    pub needs: Vec<String>,
    /// Executables and tools it makes available to later steps.
    pub provides: Vec<String>,
}

impl Step {
    /// A blocking step on every provider; `needs` is derived from a `Run` command.
    pub fn new(name: &str, role: Role, action: Action) -> Step {
        let needs = match &action {
            Action::Run(cmd) => tools::needs(cmd),
            Action::Uses { .. } => Vec::new(),
        };
        Step {
            name: name.to_owned(),
            role,
            action,
            on: Where::All,
            env: Vec::new(),
            raw_env: Vec::new(),
            newest_only: false,
            blocking: true,
            needs,
            provides: Vec::new(),
        }
    }

    /// The shell command, for `Run` steps.
    pub fn command(&self) -> Option<&str> {
        match &self.action {
            Action::Run(c) => Some(c),
            Action::Uses { .. } => None,
        }
    }

    /// Does the step apply to container providers?
    pub fn on_containers(&self) -> bool {
        self.on != Where::Github
    }

    /// Does the step apply to GitHub?
    pub fn on_github(&self) -> bool {
        self.on != Where::Containers
    }
}

/// A job id: letters, digits, `-`, starting with a letter.
pub fn slug(s: &str) -> String {
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
pub fn project_slug(p: &Project) -> String {
    slug(if p.path == "." {
        p.language.as_str()
    } else {
        &p.path
    })
}

/// A job id for `p` not yet in `taken` (two projects may share a slug), recorded there.
fn unique_project_id(p: &Project, taken: &mut Vec<String>) -> String {
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

/// "rust, cargo; python, uv" for a set of projects ("Dockerfile" for none).
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

/// The plan for `analysis` under `target`'s features and settings.
pub fn build(analysis: &Analysis, target: &Target) -> Plan {
    let mut notes = Vec::new();
    let mut analysis = analysis.clone();
    if !target.features.docker {
        analysis.dockerfile = false;
        analysis.dockerfiles.clear();
    }
    let projects: Vec<&Project> = analysis.projects.iter().collect();
    let mut ids: Vec<String> = Vec::new();
    let mut workflows = Vec::new();
    let monorepo = projects.len() > 1;
    if !monorepo {
        let mut jobs: Vec<Job> = Vec::new();
        for p in &projects {
            let id = unique_project_id(p, &mut ids);
            jobs.push(project_job(
                p,
                &analysis,
                target,
                id.clone(),
                false,
                &mut notes,
            ));
            if target.features.matrix {
                jobs.extend(minimum_job(p, &id, false));
            }
        }
        if analysis.dockerfile {
            jobs.push(docker_job(analysis.dockerfiles.clone()));
        }
        if !jobs.is_empty() {
            workflows.push(Workflow {
                file: "ci".to_owned(),
                name: "CI".to_owned(),
                trigger: Trigger::Ci { paths: Vec::new() },
                summary: summary(&projects),
                jobs,
            });
        }
    } else {
        // A monorepo: one workflow per project, run only when its files change.
        let mut claimed = vec![false; analysis.dockerfiles.len()];
        for p in &projects {
            let id = unique_project_id(p, &mut ids);
            let file = format!("ci-{id}");
            let mut jobs = vec![project_job(
                p,
                &analysis,
                target,
                id.clone(),
                true,
                &mut notes,
            )];
            if target.features.matrix {
                jobs.extend(minimum_job(p, &id, true));
            }
            let mut own = Vec::new();
            for (i, f) in analysis.dockerfiles.iter().enumerate() {
                if p.path != "." && f.starts_with(&format!("{}/", p.path)) && !claimed[i] {
                    claimed[i] = true;
                    own.push(f.clone());
                }
            }
            if !own.is_empty() {
                let mut d = docker_job(own);
                d.changes = vec![format!("{}/**/*", p.path)];
                jobs.push(d);
            }
            let paths = if p.path == "." {
                Vec::new()
            } else {
                vec![
                    format!("{}/**", p.path),
                    format!(".github/workflows/{file}.yml"),
                ]
            };
            workflows.push(Workflow {
                name: format!("CI ({})", p.path),
                file,
                trigger: Trigger::Ci { paths },
                summary: summary(&[p]),
                jobs,
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
            workflows.push(Workflow {
                file: "ci-docker".to_owned(),
                name: "Docker".to_owned(),
                trigger: Trigger::Ci { paths: Vec::new() },
                summary: "Dockerfile".to_owned(),
                jobs: vec![docker_job(rest)],
            });
        }
    }
    if target.features.release && !workflows.is_empty() {
        workflows.push(release::workflow(&analysis, summary(&projects)));
    }
    let deploy_targets = deploy::for_provider(&target.deploy, target.provider, &mut notes);
    workflows.extend(deploy::workflow(&deploy_targets, &summary(&projects)));
    let mut plan = Plan {
        summary: summary(&projects),
        workflows,
        notes,
    };
    // Strict lints gate again: an advisory lint from a first run is made blocking.
    let adjustments: Vec<Adjustment> = target
        .adjustments
        .iter()
        .filter(|a| {
            !(target.features.strict_lint && matches!(a, Adjustment::LintNonBlocking { .. }))
        })
        .cloned()
        .collect();
    adjust::apply(&mut plan, &adjustments);
    tools::enforce(&mut plan);
    if let (Some(call), Some(primary), Provider::Github) = (
        &target.reusable_workflow,
        analysis.projects.first(),
        target.provider,
    ) {
        call_org_workflow(&mut plan, primary, call);
    }
    plan
}

/// The org's reusable workflow replaces the primary project's job (and its minimum
/// check), as the sibling repositories do: their own CI is that call, and inlining what
/// it does would fork the org's conventions. Only a call that is well-formed is used;
/// `with:` inputs keep the keys GitHub allows, and `secrets: inherit` is never copied
/// (a new repository's secrets are not handed to a workflow without a person's say).
///
/// The call is pinned to a commit like every action pipewright writes: a ref the bot
/// resolved (`pinned`) or a SHA as written. An unpinned call is not adopted; the job is
/// inlined and a note says why.
fn call_org_workflow(plan: &mut Plan, primary: &Project, call: &ReusableCall) {
    if !crate::analyze::conventions::is_reusable_ref(&call.uses) {
        return;
    }
    if !call.is_pinned() && call.pinned.is_none() {
        plan.notes.push(format!(
            "The siblings call {}, but its ref could not be resolved to a commit to pin it \
             to; the job is written out instead",
            call.uses
        ));
        return;
    }
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let call = ReusableCall {
        uses: call.uses.clone(),
        with: call
            .with
            .iter()
            .filter(|(k, _)| valid_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        secrets_inherit: false,
        typed: call.typed.clone(),
        pinned: call.pinned.clone(),
    };
    let Some(wf) = plan.workflows.iter_mut().find(|w| {
        matches!(w.trigger, Trigger::Ci { .. })
            && w.jobs
                .iter()
                .any(|j| j.kind == JobKind::Project && j.dir == primary.path)
    }) else {
        return;
    };
    let Some(i) = wf
        .jobs
        .iter()
        .position(|j| j.kind == JobKind::Project && j.dir == primary.path)
    else {
        return;
    };
    let minimum = format!("{}-minimum", wf.jobs[i].id);
    let job = &mut wf.jobs[i];
    job.toolchain = None;
    job.steps.clear();
    job.services.clear();
    job.env.clear();
    job.coverage_report = None;
    job.reusable = Some(call.clone());
    wf.jobs.retain(|j| j.id != minimum);
    plan.notes.push(format!(
        "{}: calls the org's reusable workflow `{}`, as its sibling repositories do, \
         instead of inline steps",
        primary.path, call.uses
    ));
}

/// The strict form of a lint or docs command: warnings fail (`strict-lint` feature).
fn strict(cmd: &str) -> String {
    if cmd.contains("cargo clippy") && !cmd.contains("-D warnings") {
        if cmd.contains(" -- ") {
            format!("{cmd} -D warnings")
        } else {
            format!("{cmd} -- -D warnings")
        }
    } else if cmd.starts_with("sphinx-build ") && !cmd.contains(" -W") {
        cmd.replacen("sphinx-build ", "sphinx-build -W ", 1)
    } else if cmd.starts_with("mkdocs build") && !cmd.contains("--strict") {
        format!("{cmd} --strict")
    } else {
        cmd.to_owned()
    }
}

/// The versions a project's job runs on: every declared one with the matrix feature,
/// else the newest.
fn versions(p: &Project, target: &Target) -> Vec<String> {
    let mut v = p.runtime_versions.clone();
    if !target.features.matrix && v.len() > 1 {
        // The newest declared version (detection lists them oldest first).
        v = v.split_off(v.len() - 1);
    }
    v
}

fn run(name: &str, role: Role, cmd: impl Into<String>) -> Step {
    Step::new(name, role, Action::Run(cmd.into()))
}

fn uses(name: &str, role: Role, action: &'static str, with: Vec<(&'static str, String)>) -> Step {
    let mut s = Step::new(
        name,
        role,
        Action::Uses {
            action,
            with,
            raw_with: Vec::new(),
        },
    );
    s.on = Where::Github;
    s
}

/// The job that installs, lints, builds and tests one project.
fn project_job(
    p: &Project,
    analysis: &Analysis,
    target: &Target,
    id: String,
    monorepo: bool,
    notes: &mut Vec<String>,
) -> Job {
    let lint = target.features.lint && !p.commands.lint.is_empty();
    let tc = toolchain::toolchain(p, &versions(p, target), lint);
    // Task runners the commands call are installed like any tool (`just`).
    let mut tools_needed: Vec<crate::analyze::PinnedTool> = p.toolbox.tools.clone();
    let commands = p
        .commands
        .install
        .iter()
        .chain(p.commands.lint.iter())
        .chain(p.commands.build.iter())
        .chain(p.commands.test.iter());
    for c in commands {
        for n in tools::needs(c) {
            if RUNNER_TOOLS.contains(&n.as_str())
                && !tc.provides.contains(&n)
                && !tools_needed.iter().any(|t| t.name == n)
            {
                tools_needed.push(crate::analyze::PinnedTool {
                    name: n,
                    spec: None,
                });
            }
        }
    }
    let mut steps = Vec::new();
    // Tools the project's commands call that neither the toolchain nor its dependencies
    // install (tox, nox; a linter pinned only by pre-commit), at the version it pins.
    for t in &tools_needed {
        match adjust::install_steps(&t.name, t.spec.as_deref(), Some(&tc)) {
            Some(s) => steps.extend(s),
            None => notes.push(format!(
                "{}: pipewright does not know how to install `{}`",
                p.path, t.name
            )),
        }
    }
    // Ruby on GitHub: setup-ruby's bundler-cache already ran `bundle install`.
    let bundled = matches!(p.language, Language::Ruby) || p.frameworks.contains(&Framework::Jekyll);
    if let Some(cmd) = &p.commands.install {
        let mut s = run("Install dependencies", Role::Install, cmd.clone());
        if bundled && p.package_manager == Some(PackageManager::Bundler) {
            s.on = Where::Containers;
        }
        s.provides = p.toolbox.installs.clone();
        steps.push(s);
    }
    if target.features.lint {
        for (i, cmd) in p.commands.lint.iter().enumerate() {
            let name = if i == 0 {
                "Lint".to_owned()
            } else {
                format!("Lint ({})", i + 1)
            };
            let cmd = if target.features.strict_lint {
                strict(cmd)
            } else {
                cmd.clone()
            };
            let mut s = run(&name, Role::Lint, cmd);
            s.newest_only = true;
            steps.push(s);
        }
    }
    if let Some(cmd) = &p.commands.build {
        let cmd = if target.features.strict_lint {
            strict(cmd)
        } else {
            cmd.clone()
        };
        steps.push(run("Build", Role::Build, cmd));
    }
    let mut services = Vec::new();
    if let Some(cmd) = &p.commands.test {
        steps.push(run("Test", Role::Test, cmd.clone()));
    }
    // A task-runner command stays only when the job can satisfy its recipe; else the
    // ecosystem's own command runs (a recipe calling tools CI does not have would fail).
    let mut have: Vec<String> = tc.provides.clone();
    for s in &steps {
        have.extend(s.provides.iter().cloned());
    }
    have.extend(["make".to_owned(), "just".to_owned()]);
    let mut i = 0;
    while i < steps.len() {
        let Some(cmd) = steps[i].command().map(str::to_owned) else {
            i += 1;
            continue;
        };
        let Some(task) = p.toolbox.runner_tasks.iter().find(|t| t.command == cmd) else {
            i += 1;
            continue;
        };
        let missing: Vec<&String> = task
            .recipe_needs
            .iter()
            .filter(|n| !tools::available(&have, n))
            .collect();
        if missing.is_empty() {
            i += 1;
            continue;
        }
        let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        if task.fallback.is_empty() && steps[i].role == Role::Lint {
            // A lint is optional: one whose recipe calls a tool CI does not have would
            // only fail the first run (`make lint` running clang-tidy).
            notes.push(format!(
                "{}: `{cmd}` calls {} which CI would not have; left out",
                p.path,
                names.join(", ")
            ));
            steps.remove(i);
            continue;
        }
        if task.fallback.is_empty() {
            notes.push(format!(
                "{}: `{cmd}` calls {} which CI may not have",
                p.path,
                names.join(", ")
            ));
            i += 1;
            continue;
        }
        notes.push(format!(
            "{}: `{cmd}` calls {} which CI would not have; running `{}` instead",
            p.path,
            names.join(", "),
            task.fallback.join("`, `")
        ));
        let old = steps.remove(i);
        for (k, f) in task.fallback.iter().enumerate() {
            let name = if k == 0 {
                old.name.clone()
            } else {
                format!("{} ({})", old.name, k + 1)
            };
            let mut s = run(&name, old.role, f.clone());
            s.newest_only = old.newest_only;
            steps.insert(i + k, s);
        }
        i += task.fallback.len();
    }
    if p.commands.test.is_some() {
        services = analysis
            .services
            .iter()
            .filter_map(|s| services::service(s))
            .collect();
    }
    if target.features.security {
        steps.extend(security_steps(p));
    }
    let mut coverage_report = None;
    if target.features.coverage {
        if let Some((cov_steps, report)) = coverage_steps(p) {
            steps.extend(cov_steps);
            coverage_report = Some(report);
        }
    }
    for extra in &target.extra_steps {
        steps.push(run(&extra.name, Role::Extra, extra.run.clone()));
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
        kind: JobKind::Project,
        dir: p.path.clone(),
        toolchain: Some(tc),
        image: None,
        services,
        steps,
        permissions: Vec::new(),
        timeout_minutes: JOB_TIMEOUT_MINUTES,
        env: Vec::new(),
        coverage_report,
        dockerfiles: Vec::new(),
        changes: if monorepo && p.path != "." {
            vec![format!("{}/**/*", p.path)]
        } else {
            Vec::new()
        },
        reusable: None,
        needs: Vec::new(),
        deploy: None,
        service: None,
    }
}

/// A build check on the oldest toolchain the project declares (Rust's MSRV): only
/// the library builds, so dev-dependencies and lints that need newer toolchains do not
/// count against it.
fn minimum_job(p: &Project, id: &str, monorepo: bool) -> Option<Job> {
    let m = p.toolbox.minimum.as_ref()?;
    let tc = toolchain::toolchain(p, std::slice::from_ref(&m.version), false);
    let mut check = run(
        &format!("Check the build on {}", m.version),
        Role::Build,
        m.command.clone(),
    );
    check.blocking = true;
    Some(Job {
        id: format!("{id}-minimum"),
        name: format!(
            "{} (minimum {})",
            if p.path == "." {
                p.language.as_str()
            } else {
                &p.path
            },
            m.version
        ),
        kind: JobKind::Project,
        dir: p.path.clone(),
        toolchain: Some(tc),
        image: None,
        services: Vec::new(),
        steps: vec![check],
        permissions: Vec::new(),
        timeout_minutes: JOB_TIMEOUT_MINUTES,
        env: Vec::new(),
        coverage_report: None,
        dockerfiles: Vec::new(),
        changes: if monorepo && p.path != "." {
            vec![format!("{}/**/*", p.path)]
        } else {
            Vec::new()
        },
        reusable: None,
        needs: Vec::new(),
        deploy: None,
        service: None,
    })
}

/// The dependency vulnerability scan of a project (`security` feature).
fn security_steps(p: &Project) -> Vec<Step> {
    let yarn_berry = p.evidence.iter().any(|e| e.ends_with(".yarnrc.yml"));
    let cmd = match (p.language, p.package_manager) {
        (Language::Rust, _) => {
            // A pinned prebuilt cargo-audit on GitHub instead of compiling it every run.
            let mut gh = uses(
                "Install cargo-audit",
                Role::Security,
                "taiki-e/install-action",
                vec![("tool", "cargo-audit".to_owned())],
            );
            gh.provides = vec!["cargo-audit".to_owned()];
            let mut ct = run(
                "Install cargo-audit",
                Role::Security,
                "cargo install cargo-audit --locked",
            );
            ct.on = Where::Containers;
            ct.provides = vec!["cargo-audit".to_owned()];
            return vec![gh, ct, run("Security audit", Role::Security, "cargo audit")];
        }
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
        _ => return Vec::new(),
    };
    vec![run("Security audit", Role::Security, cmd)]
}

/// Coverage steps (measured once, on the newest toolchain of a matrix) and the report
/// (repository path, format: `cobertura` or `go`).
fn coverage_steps(p: &Project) -> Option<(Vec<Step>, (String, &'static str))> {
    let exec = |bin: &str| match p.package_manager {
        Some(PackageManager::Pnpm) => format!("pnpm exec {bin}"),
        Some(PackageManager::Yarn) => format!("yarn {bin}"),
        Some(PackageManager::Bun) => format!("bunx {bin}"),
        _ => format!("npx {bin}"),
    };
    let mut steps = Vec::new();
    let (commands, report, format): (Vec<String>, &str, &'static str) =
        match (p.language, p.package_manager, p.test_tool) {
            (Language::Rust, _, _) => {
                let mut gh = uses(
                    "Install cargo-llvm-cov",
                    Role::Coverage,
                    "taiki-e/install-action",
                    vec![("tool", "cargo-llvm-cov".to_owned())],
                );
                gh.provides = vec!["cargo-llvm-cov".to_owned()];
                steps.push(gh);
                let mut ct = run(
                    "Install cargo-llvm-cov",
                    Role::Coverage,
                    "cargo install cargo-llvm-cov --locked",
                );
                ct.on = Where::Containers;
                ct.provides = vec!["cargo-llvm-cov".to_owned()];
                steps.push(ct);
                (
                    vec![
                        "rustup component add llvm-tools-preview".to_owned(),
                        "cargo llvm-cov --all-features --cobertura --output-path coverage.xml"
                            .to_owned(),
                    ],
                    "coverage.xml",
                    "cobertura",
                )
            }
            (
                Language::Python,
                Some(PackageManager::Uv),
                Some(crate::analyze::TestTool::Pytest),
            ) => (
                vec![
                    "uv run --with pytest-cov pytest --cov --cov-report=xml:coverage.xml"
                        .to_owned(),
                ],
                "coverage.xml",
                "cobertura",
            ),
            (
                Language::Python,
                Some(PackageManager::Poetry),
                Some(crate::analyze::TestTool::Pytest),
            ) => (
                vec![
                    "poetry run python -m pip install pytest-cov".to_owned(),
                    "poetry run pytest --cov --cov-report=xml:coverage.xml".to_owned(),
                ],
                "coverage.xml",
                "cobertura",
            ),
            (
                Language::Python,
                Some(PackageManager::Pip),
                Some(crate::analyze::TestTool::Pytest),
            ) => (
                vec![
                    "python -m pip install pytest-cov".to_owned(),
                    "python -m pytest --cov --cov-report=xml:coverage.xml".to_owned(),
                ],
                "coverage.xml",
                "cobertura",
            ),
            (
                Language::JavaScript | Language::TypeScript,
                _,
                Some(crate::analyze::TestTool::Jest),
            ) => (
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
    for cmd in commands {
        let mut s = run("Coverage", Role::Coverage, cmd);
        if s.command()
            .is_some_and(|c| c.contains("pip install pytest-cov"))
        {
            s.provides = vec!["py:pytest-cov".to_owned()];
        }
        steps.push(s);
    }
    let report_path = if p.path == "." {
        report.to_owned()
    } else {
        format!("{}/{report}", p.path)
    };
    let mut upload = uses(
        "Upload coverage",
        Role::Coverage,
        "codecov/codecov-action",
        vec![
            ("files", report_path.clone()),
            ("fail_ci_if_error", "false".to_owned()),
        ],
    );
    upload
        .raw_env
        .push(("CODECOV_TOKEN", "${{ secrets.CODECOV_TOKEN }}"));
    steps.push(upload);
    for s in &mut steps {
        s.newest_only = true;
    }
    Some((steps, (report_path, format)))
}

/// A job that builds Dockerfiles (a check: never pushed).
fn docker_job(dockerfiles: Vec<String>) -> Job {
    let mut steps = vec![uses(
        "Set up Docker Buildx",
        Role::Toolchain,
        "docker/setup-buildx-action",
        vec![],
    )];
    for f in &dockerfiles {
        let context = f
            .rsplit_once('/')
            .map_or(".".to_owned(), |(d, _)| d.to_owned());
        steps.push(uses(
            &format!("Build {f}"),
            Role::Build,
            "docker/build-push-action",
            // Build only: a CI check never pushes an image.
            vec![
                ("context", context.clone()),
                ("file", f.clone()),
                ("push", "false".to_owned()),
            ],
        ));
        let mut ct = run(
            &format!("Build {f}"),
            Role::Build,
            format!(
                "docker build --file {} {}",
                crate::generate::render::shell_quote(f),
                crate::generate::render::shell_quote(&context)
            ),
        );
        ct.on = Where::Containers;
        steps.push(ct);
    }
    Job {
        id: "docker".to_owned(),
        name: "Docker build".to_owned(),
        kind: JobKind::DockerBuild,
        dir: ".".to_owned(),
        toolchain: None,
        image: None,
        services: Vec::new(),
        steps,
        permissions: Vec::new(),
        timeout_minutes: JOB_TIMEOUT_MINUTES,
        env: Vec::new(),
        coverage_report: None,
        dockerfiles,
        changes: Vec::new(),
        reusable: None,
        needs: Vec::new(),
        deploy: None,
        service: None,
    }
}

impl Plan {
    /// Every job of every workflow.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.workflows.iter().flat_map(|w| w.jobs.iter())
    }

    /// The delivery workflow, if the plan deploys.
    pub fn deploy_workflow(&self) -> Option<&Workflow> {
        self.workflows
            .iter()
            .find(|w| matches!(w.trigger, Trigger::Deploy { .. }))
    }

    /// Keeps only the delivery workflow: what a repository whose CI exists gets when it
    /// asks for deploys.
    pub fn retain_deploy_only(&mut self) {
        self.workflows
            .retain(|w| matches!(w.trigger, Trigger::Deploy { .. }));
    }

    /// The CI workflows (not releases).
    pub fn ci_workflows(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows
            .iter()
            .filter(|w| matches!(w.trigger, Trigger::Ci { .. }))
    }

    /// A stable hash of the plan (healing remembers which plan a fix was for).
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).expect("plans serialize");
        hex::encode(&Sha256::digest(json)[..8])
    }
}
