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
use crate::deploy::{DeployJob, DeployTrigger};
use crate::plan::{self, Action, JobKind, Plan, Trigger};

#[derive(Debug, Serialize)]
struct Workflow {
    summary: String,
    name: String,
    /// Tag patterns: a release workflow (push of tags only, never cancelled).
    tags: Vec<String>,
    /// The delivery workflow: pushes only (branches and/or tags), never pull requests.
    deploy: bool,
    branches: Vec<String>,
    paths: Vec<String>,
    paths_ignore: Vec<String>,
    jobs: Vec<Job>,
}

#[derive(Debug, Serialize)]
struct Job {
    id: String,
    name: String,
    /// Job-level permissions beyond the top-level `contents: read` (release and deploy
    /// jobs); `contents: read` is repeated, since a job's permissions replace the top
    /// level's.
    permissions: Vec<(&'static str, &'static str)>,
    /// Jobs that must succeed first.
    needs: Vec<String>,
    /// Job condition (an expression of constants and GitHub contexts, never repository
    /// data).
    cond: Option<String>,
    /// Deployment environment: name and URL.
    environment: Option<(&'static str, Option<String>)>,
    /// Concurrency group of a deploy: one at a time per environment, never cancelled.
    concurrency: Option<String>,
    timeout: u32,
    working_directory: Option<String>,
    matrix: Option<Matrix>,
    env: Vec<(String, String)>,
    services: Vec<Service>,
    steps: Vec<Step>,
    /// A call of the org's reusable workflow: `uses` and its `with:` inputs, in place of
    /// `runs-on` and steps.
    reusable: Option<(String, Vec<Input>)>,
    /// Runner labels; empty = GitHub's hosted Linux runner.
    runs_on: Vec<String>,
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
    env: Vec<(String, String)>,
    /// Environment entries written verbatim: built only from constants of this crate
    /// (`${{ secrets.CODECOV_TOKEN }}`), never repository data.
    raw_env: Vec<(&'static str, String)>,
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
    out.env = s
        .env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    out.raw_env = s
        .raw_env
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
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
            release
                .raw_env
                .push(("GH_TOKEN", "${{ github.token }}".to_owned()));
            release
                .raw_env
                .push(("TAG", "${{ github.ref_name }}".to_owned()));
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
        JobKind::DeployImage => {
            let mut login = uses(
                "Log in to GHCR",
                "docker/login-action",
                vec![("registry", "ghcr.io".to_owned())],
            );
            login.raw_with.push(("username", "${{ github.actor }}"));
            login
                .raw_with
                .push(("password", "${{ secrets.GITHUB_TOKEN }}"));
            let mut build = Vec::new();
            for f in &j.dockerfiles {
                build.extend(plan::release::deploy_image_commands(
                    f,
                    GHCR_IMAGE,
                    "${GITHUB_SHA}",
                    true,
                ));
            }
            steps.extend([
                checkout(),
                login,
                run("Build and push, with provenance and SBOM", build.join("\n")),
            ]);
        }
        JobKind::Deploy => {
            if let Some(d) = &j.deploy {
                steps.extend([checkout(), deploy_step(j, d)]);
            }
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
        permissions: if j.permissions.is_empty()
            || j.permissions.iter().any(|(k, _)| *k == "contents")
        {
            j.permissions.clone()
        } else {
            std::iter::once(("contents", "read"))
                .chain(j.permissions.iter().copied())
                .collect()
        },
        needs: j.needs.clone(),
        cond: job_condition(j),
        environment: j
            .deploy
            .as_ref()
            .map(|d| (d.environment.as_str(), d.url.clone())),
        concurrency: j
            .deploy
            .as_ref()
            .map(|d| format!("{}-{}", d.gate.concurrency_group, d.target.as_str())),
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
        runs_on: Vec::new(),
        reusable: j.reusable.as_ref().map(|r| {
            (
                // Pinned to the commit its ref named when adopted; the ref stays readable.
                match &r.pinned {
                    Some(sha) => format!("{}@{sha} # {}", r.workflow(), r.reference()),
                    None => r.uses.clone(),
                },
                r.with
                    .iter()
                    .map(|(k, v)| input(k, v, r.typed.as_ref().map(|t| t.contains(k))))
                    .collect(),
            )
        }),
    }
}

/// Image name expression of GHCR in a `run:` script: image names must be lowercase, and
/// the shell lowercases the repository name.
const GHCR_IMAGE: &str = "ghcr.io/${GITHUB_REPOSITORY,,}";

/// When a delivery job runs: never in a fork (its pushes run the fork's copy of the
/// workflow, without the deploy credentials); staging only for the default branch,
/// production only for `v*` tags.
fn job_condition(j: &plan::Job) -> Option<String> {
    const NOT_FORK: &str = "!github.event.repository.fork";
    match (j.kind, &j.deploy) {
        (JobKind::DeployImage, _) => Some(format!(
            "${{{{ github.event_name == 'push' && {NOT_FORK} }}}}"
        )),
        (JobKind::Deploy, Some(d)) => Some(match d.gate.trigger {
            DeployTrigger::DefaultBranch => format!(
                "${{{{ github.event_name == 'push' && github.ref_type == 'branch' && github.ref_name == github.event.repository.default_branch && {NOT_FORK} }}}}"
            ),
            DeployTrigger::VersionTags => format!(
                "${{{{ github.event_name == 'push' && github.ref_type == 'tag' && startsWith(github.ref_name, 'v') && {NOT_FORK} }}}}"
            ),
        }),
        _ => None,
    }
}

/// The step that runs a deploy: its commands as one script, after fetching the job's
/// OIDC token for the target's audience (kept in the script, masked, never in
/// `GITHUB_ENV`) and naming the published image. Credentials come from repository
/// secrets of the same names (pipewright writes them there).
fn deploy_step(j: &plan::Job, d: &DeployJob) -> Step {
    let mut script = vec!["set -euo pipefail".to_owned()];
    if let (true, Some(aud)) = (d.oidc, d.audience) {
        script.push(format!("aud=\"$(jq -rn --arg a \"{aud}\" '$a|@uri')\""));
        script.push("OIDC_TOKEN=\"$(curl -fsS -H \"Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN\" \"$ACTIONS_ID_TOKEN_REQUEST_URL&audience=$aud\" | jq -r .value)\"".to_owned());
        script.push("echo \"::add-mask::$OIDC_TOKEN\"".to_owned());
        script.push("export OIDC_TOKEN".to_owned());
    }
    if let Some(f) = j.dockerfiles.first() {
        script.push(format!(
            "export IMAGE=\"{}\"",
            plan::release::image_ref(f, GHCR_IMAGE, "$IMAGE_TAG")
        ));
    }
    script.extend(d.commands.iter().cloned());
    let mut step = run(
        &format!(
            "Deploy to {} ({})",
            d.target.spec().name,
            d.environment.as_str()
        ),
        script.join("\n"),
    );
    step.env = d.env.clone();
    step.raw_env
        .push(("IMAGE_TAG", "${{ github.sha }}".to_owned()));
    for name in &d.credentials {
        step.raw_env
            .push((name, format!("${{{{ secrets.{name} }}}}")));
    }
    step
}

/// A `with:` input: key, value, and whether the value is written unquoted.
type Input = (String, String, bool);

/// A `with:` input of a reusable-workflow call: numbers and booleans stay unquoted
/// (GitHub checks an input's declared type, and `'true'` is no boolean), anything else
/// is written as a quoted string. `typed` says whether the siblings wrote the value as a
/// number or boolean; without it (calls recorded before types were kept) the value's
/// look decides.
fn input(key: &str, value: &str, typed: Option<bool>) -> Input {
    // Integers only when guessing: `3.10` unquoted would be the number 3.1 (a Python
    // version).
    let digits = value.strip_prefix('-').unwrap_or(value);
    let integer = !digits.is_empty()
        && digits.len() <= 18
        && digits.chars().all(|c| c.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'));
    let number = !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && value.parse::<f64>().is_ok();
    let boolean = matches!(value, "true" | "false");
    let plain = match typed {
        // Written back only in a form that reads as the same number or boolean.
        Some(true) => boolean || integer || number,
        Some(false) => false,
        None => boolean || integer,
    };
    (key.to_owned(), value.to_owned(), plain)
}

/// The workflow files for `plan`.
pub fn generate(plan: &Plan, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    // Staging deploys follow green checks: the staging jobs join the CI workflow of the
    // project they deploy (the only one, or in a monorepo the service's) and need every
    // job of it. Production (version tags) stays in a delivery workflow of its own, behind
    // the environment's approval: a CI workflow that tag pushes run would publish from
    // what the dependency caches hold (cache poisoning). A staging deploy with no such
    // CI workflow (a root build context in a monorepo) is in the delivery workflow too:
    // another workflow's checks cannot be waited on without running them twice.
    let (into_ci, own_file) = split_delivery(plan);
    let mut files = Vec::new();
    for wf in &plan.workflows {
        let (tags, paths, paths_ignore, mut branches) = match &wf.trigger {
            Trigger::Tags { patterns } => (patterns.clone(), Vec::new(), Vec::new(), Vec::new()),
            Trigger::Deploy { .. } => {
                let staging = own_file
                    .iter()
                    .any(|j| is_trigger(j, DeployTrigger::DefaultBranch));
                let production = own_file
                    .iter()
                    .any(|j| is_trigger(j, DeployTrigger::VersionTags));
                (
                    if production {
                        vec!["v*".to_owned()]
                    } else {
                        Vec::new()
                    },
                    Vec::new(),
                    Vec::new(),
                    if staging {
                        vec![target.default_branch.clone()]
                    } else {
                        Vec::new()
                    },
                )
            }
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
        let deploy = matches!(wf.trigger, Trigger::Deploy { .. });
        let mut jobs: Vec<Job> = if deploy {
            // Deploys run on GitHub's hosted runners, whose images carry the clouds' CLIs
            // (aws, az, gcloud) and Docker with BuildKit; an org's own labels may not.
            own_file.iter().map(|j| job(j, target)).collect()
        } else {
            wf.jobs
                .iter()
                .map(|j| {
                    let mut out = job(j, target);
                    out.runs_on.clone_from(&target.runs_on);
                    out
                })
                .collect()
        };
        if deploy && jobs.is_empty() {
            continue;
        }
        let into_this: Vec<&plan::Job> = into_ci
            .iter()
            .filter(|(file, _)| *file == wf.file)
            .map(|(_, j)| *j)
            .collect();
        if matches!(wf.trigger, Trigger::Ci { .. }) && !into_this.is_empty() {
            let checks: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
            if !branches.contains(&target.default_branch) {
                branches.push(target.default_branch.clone());
            }
            for j in &into_this {
                let mut out = job(j, target);
                let mut needs = checks.clone();
                needs.append(&mut out.needs);
                out.needs = needs;
                jobs.push(out);
            }
        }
        let out = Workflow {
            summary: wf.summary.clone(),
            name: wf.name.clone(),
            tags,
            deploy,
            branches,
            paths,
            paths_ignore,
            jobs,
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

fn is_trigger(j: &plan::Job, t: DeployTrigger) -> bool {
    j.deploy.as_ref().is_some_and(|d| d.gate.trigger == t)
}

/// The delivery jobs that join a CI workflow — staging jobs, into the one CI workflow, or
/// in a monorepo into the workflow of the project they deploy (its path filters then
/// decide, as they do for its checks) — with that workflow's file stem, and those of the
/// delivery workflow's own file. The image job goes with the deploys that need it (to
/// every place that has one).
fn split_delivery(plan: &Plan) -> (Vec<(String, &plan::Job)>, Vec<&plan::Job>) {
    let Some(w) = plan.deploy_workflow() else {
        return (Vec::new(), Vec::new());
    };
    let ci: Vec<&plan::Workflow> = plan.ci_workflows().collect();
    let home = |j: &plan::Job| -> Option<String> {
        if !is_trigger(j, DeployTrigger::DefaultBranch) {
            return None;
        }
        if let [only] = ci.as_slice() {
            return Some(only.file.clone());
        }
        let dir = j.service.as_deref().filter(|d| *d != ".")?;
        ci.iter()
            .find(|wf| {
                wf.jobs
                    .iter()
                    .any(|p| p.kind == JobKind::Project && p.dir == dir)
            })
            .map(|wf| wf.file.clone())
    };
    let mut merged: Vec<(String, &plan::Job)> = Vec::new();
    let mut own: Vec<&plan::Job> = Vec::new();
    for j in w.jobs.iter().filter(|j| j.kind == JobKind::Deploy) {
        match home(j) {
            Some(file) => merged.push((file, j)),
            None => own.push(j),
        }
    }
    if let Some(img) = w.jobs.iter().find(|j| j.kind == JobKind::DeployImage) {
        let mut files: Vec<String> = merged
            .iter()
            .filter(|(_, j)| j.needs.contains(&img.id))
            .map(|(f, _)| f.clone())
            .collect();
        files.dedup();
        for f in files.into_iter().rev() {
            merged.insert(0, (f, img));
        }
        if own.iter().any(|j| j.needs.contains(&img.id)) {
            own.insert(0, img);
        }
    }
    (merged, own)
}

#[cfg(test)]
mod tests {
    use super::input;
    use crate::plan::slug;

    #[test]
    fn reusable_inputs_keep_the_type_the_siblings_wrote() {
        // A quoted "2" stays a string; an unquoted 2 or 0.5 stays a number.
        assert!(!input("shards", "2", Some(false)).2);
        assert!(input("shards", "2", Some(true)).2);
        assert!(input("ratio", "0.5", Some(true)).2);
        assert!(input("coverage", "true", Some(true)).2);
        // Never unquoted when the text would not read back as that type.
        assert!(!input("x", "1; rm -rf /", Some(true)).2);
        // Recorded without types: integers and booleans by their look, never `3.10`.
        assert!(input("shards", "2", None).2);
        assert!(!input("python", "3.10", None).2);
    }

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
