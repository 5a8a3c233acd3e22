//! GitHub Actions layout of a [`Plan`]: one workflow file per plan workflow (`ci.yml`,
//! `ci-<project>.yml` with path filters in a monorepo, `release.yml`). Each job checks
//! out without persisted credentials, runs the plan's GitHub setup steps and its steps;
//! lint runs once, on the newest cell of a matrix. Decisions live in the plan; this
//! file only lays them out (and applies GitHub's own safety rules: no caches on
//! release branches, GHCR for images, `gh release` for the release entry).

use serde::Serialize;

use super::pins::pin;
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::plan::{self, Action, JobKind, Plan, Trigger};

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
    env: Vec<(String, String)>,
    services: Vec<Service>,
    steps: Vec<Step>,
    /// A call of the org's reusable workflow: `uses` and its `with:` inputs, in place of
    /// `runs-on` and steps.
    reusable: Option<(String, Vec<Input>)>,
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
    continue_on_error: bool,
    uses: Option<String>,
    version: Option<&'static str>,
    with: Vec<(&'static str, String)>,
    env: Vec<(&'static str, String)>,
    /// Environment entries written verbatim: constants of this crate
    /// (`${{ secrets.CODECOV_TOKEN }}`), never repository data.
    raw_env: Vec<(&'static str, &'static str)>,
    /// Inputs written verbatim: built only from constants of this crate.
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

/// A matrix value usable in an `if:` comparison without quoting trouble.
fn plain(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn step(s: &plan::Step, newest: &Option<String>) -> Step {
    let mut out = match &s.action {
        Action::Run(cmd) => run(&s.name, cmd.clone()),
        Action::Uses {
            action,
            with,
            raw_with,
        } => {
            let mut u = uses(&s.name, action, with.clone());
            u.raw_with = raw_with.clone();
            u
        }
    };
    out.env = s.env.clone();
    out.raw_env = s.raw_env.clone();
    if s.newest_only {
        out.cond = newest.clone();
    }
    out.continue_on_error = !s.blocking;
    out
}

/// Caches on release branches are a poisoning risk (zizmor: cache-poisoning): runs
/// there publish from what the cache holds. Such workflows get no dependency cache.
fn strip_caches(steps: &mut Vec<Step>) {
    let rust_cache = pin("Swatinem/rust-cache").uses();
    let setup_node = pin("actions/setup-node").uses();
    steps.retain(|s| s.uses.as_deref() != Some(rust_cache.as_str()));
    for s in steps {
        s.with.retain(|(k, _)| {
            !matches!(
                *k,
                "cache" | "cache-dependency-path" | "enable-cache" | "bundler-cache"
            )
        });
        if s.uses.as_deref() == Some(setup_node.as_str()) {
            s.with.push(("package-manager-cache", "false".to_owned()));
        }
    }
}

fn job(j: &plan::Job, target: &Target) -> Job {
    let matrix = j
        .toolchain
        .as_ref()
        .and_then(|t| t.matrix.as_ref())
        .map(|m| Matrix {
            key: m.key,
            values: m.values.clone(),
        });
    // Lint once, on the newest toolchain of a matrix: older ones may lack the lints.
    let newest = matrix.as_ref().and_then(|m| {
        m.values
            .last()
            .filter(|v| plain(v))
            .map(|v| format!("${{{{ matrix.{} == '{v}' }}}}", m.key))
    });
    let mut steps = Vec::new();
    match j.kind {
        JobKind::ForgeRelease => {
            let mut release = run(
                "Create the GitHub release",
                "gh release create \"$TAG\" --verify-tag --generate-notes --repo \"$GITHUB_REPOSITORY\"",
            );
            release.raw_env.push(("GH_TOKEN", "${{ github.token }}"));
            release.raw_env.push(("TAG", "${{ github.ref_name }}"));
            steps.push(release);
        }
        JobKind::ImagePublish => {
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
            let push = plan::release::docker_push_commands(
                &j.dockerfiles,
                "ghcr.io/${GITHUB_REPOSITORY,,}",
                "${GITHUB_REF_NAME}",
            );
            steps.extend([checkout(), login, run("Build and push", push.join(" && "))]);
        }
        _ if j.reusable.is_some() => {}
        _ => {
            steps.push(checkout());
            if let Some(t) = &j.toolchain {
                steps.extend(
                    t.steps
                        .iter()
                        .filter(|s| s.on_github())
                        .map(|s| step(s, &newest)),
                );
            }
            steps.extend(
                j.steps
                    .iter()
                    .filter(|s| s.on_github())
                    .map(|s| step(s, &newest)),
            );
        }
    }
    if j.kind == JobKind::Project && target.push_branches().iter().any(|b| b.contains("release")) {
        strip_caches(&mut steps);
    }
    Job {
        id: if j.kind == JobKind::ForgeRelease {
            "github-release".to_owned()
        } else {
            j.id.clone()
        },
        name: if j.kind == JobKind::ImagePublish {
            "Publish images to GHCR".to_owned()
        } else if j.kind == JobKind::ForgeRelease {
            "GitHub release".to_owned()
        } else {
            j.name.clone()
        },
        permissions: j.permissions.clone(),
        timeout: j.timeout_minutes,
        working_directory: (j.dir != ".").then(|| j.dir.clone()),
        matrix,
        env: j.env.clone(),
        services: j
            .services
            .iter()
            .map(|s| Service {
                name: s.name,
                image: s.image,
                env: s.env.clone(),
                ports: s.ports.clone(),
                options: s.options,
            })
            .collect(),
        steps,
        reusable: j.reusable.as_ref().map(|r| {
            (
                r.uses.clone(),
                r.with.iter().map(|(k, v)| input(k, v)).collect(),
            )
        }),
    }
}

/// A `with:` input: key, value, and whether the value is written unquoted.
type Input = (String, String, bool);

/// A `with:` input of a reusable-workflow call: booleans and numbers stay unquoted
/// (GitHub checks an input's declared type, and `'true'` is no boolean), anything else
/// is written as a quoted string.
fn input(key: &str, value: &str) -> Input {
    // Integers only: `3.10` unquoted would be the number 3.1 (a Python version).
    let digits = value.strip_prefix('-').unwrap_or(value);
    let plain = matches!(value, "true" | "false")
        || (!digits.is_empty()
            && digits.len() <= 18
            && digits.chars().all(|c| c.is_ascii_digit())
            && !(digits.len() > 1 && digits.starts_with('0')));
    (key.to_owned(), value.to_owned(), plain)
}

/// The workflow files for `plan`.
pub fn generate(plan: &Plan, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut files = Vec::new();
    for wf in &plan.workflows {
        let (tags, paths, paths_ignore, branches) = match &wf.trigger {
            Trigger::Tags { patterns } => (patterns.clone(), Vec::new(), Vec::new(), Vec::new()),
            Trigger::Ci { paths } => {
                // GitHub refuses `paths` and `paths-ignore` together: fold ignores into
                // `paths`.
                if paths.is_empty() {
                    (
                        Vec::new(),
                        Vec::new(),
                        target.paths_ignore.clone(),
                        target.push_branches(),
                    )
                } else {
                    let mut p = paths.clone();
                    p.extend(target.paths_ignore.iter().map(|i| format!("!{i}")));
                    (Vec::new(), p, Vec::new(), target.push_branches())
                }
            }
        };
        let out = Workflow {
            summary: wf.summary.clone(),
            name: wf.name.clone(),
            tags,
            branches,
            paths,
            paths_ignore,
            runs_on: target.runs_on.clone(),
            jobs: wf.jobs.iter().map(|j| job(j, target)).collect(),
        };
        let content = render(
            "github/workflow.yml.j2",
            target.template_dir.as_deref(),
            &out,
        )?;
        files.push(GeneratedFile {
            path: format!(".github/workflows/{}.yml", wf.file),
            content,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use crate::plan::slug;

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
