//! Bitbucket Pipelines layout of a [`Plan`]: one `bitbucket-pipelines.yml` with a step
//! per plan job (parallel steps per image when several versions are declared), custom
//! caches keyed on lockfiles, service containers, `changesets` conditions for monorepo
//! projects, and a Docker build check. Pipelines run for pull requests and the default
//! branch; `v*` tags publish (images to the registry named by variables).

use serde::Serialize;

use super::containers::container_job;
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::deploy::DeployTrigger;
use crate::plan::{JobKind, Plan, Trigger};

/// Minutes a step may run.
const STEP_MAX_MINUTES: u32 = 30;

#[derive(Serialize)]
struct Cache {
    name: String,
    files: Vec<String>,
    path: String,
}

#[derive(Serialize)]
struct Svc {
    name: &'static str,
    image: &'static str,
    env: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Serialize)]
struct Step {
    name: String,
    image: String,
    max_time: u32,
    caches: Vec<String>,
    services: Vec<&'static str>,
    paths: Vec<String>,
    script: Vec<String>,
    artifacts: Vec<String>,
    /// Deployment environment (deploy steps).
    deployment: Option<&'static str>,
    /// Waits for a person to start it (production).
    manual: bool,
    /// Gets an OIDC token (`BITBUCKET_STEP_OIDC_TOKEN`).
    oidc: bool,
}

#[derive(Serialize)]
struct Pipelines {
    summary: String,
    /// Publish steps for `v*` tags (`release` feature).
    release: Vec<Step>,
    runs_on: Vec<String>,
    caches: Vec<Cache>,
    services: Vec<Svc>,
    /// Branch pipelines: the branch, and whether it deploys staging (the default branch).
    branches: Vec<(String, bool)>,
    steps: Vec<Step>,
    /// Delivery steps after the CI steps of the default branch's pipeline.
    deploy_branch: Vec<Step>,
    /// Delivery steps after the CI (and release) steps of the `v*` tag pipeline.
    deploy_tags: Vec<Step>,
}

fn plain_step(name: String, image: String, script: Vec<String>) -> Step {
    Step {
        name,
        image,
        max_time: STEP_MAX_MINUTES,
        caches: Vec::new(),
        services: Vec::new(),
        paths: Vec::new(),
        script,
        artifacts: Vec::new(),
        deployment: None,
        manual: false,
        oidc: false,
    }
}

/// The delivery steps: for the default branch's pipeline and for the `v*` tags'. Each
/// pipeline publishes the image first when a deploy runs it. Bitbucket allows one step
/// per deployment environment in a pipeline (the plan keeps one target per environment
/// on Bitbucket), and runs one deployment per environment at a time itself.
fn delivery(plan: &Plan) -> (Vec<Step>, Vec<Step>) {
    let Some(w) = plan.deploy_workflow() else {
        return (Vec::new(), Vec::new());
    };
    let mut publish = None;
    let mut branch = Vec::new();
    let mut tags = Vec::new();
    for j in &w.jobs {
        match (j.kind, &j.deploy) {
            (JobKind::DeployImage, _) => {
                let mut script = vec!["echo \"$DOCKER_PASSWORD\" | docker login --username \"$DOCKER_USERNAME\" --password-stdin".to_owned()];
                for f in &j.dockerfiles {
                    // Bitbucket's Docker service refuses the BuildKit container builder that
                    // attestations need: a plain build and push.
                    script.extend(crate::plan::release::deploy_image_commands(
                        f,
                        "$DOCKER_IMAGE",
                        "$BITBUCKET_COMMIT",
                        false,
                    ));
                }
                let mut step =
                    plain_step(j.id.clone(), "atlassian/default-image:4".to_owned(), script);
                step.services = vec!["docker"];
                publish = Some(step);
            }
            (JobKind::Deploy, Some(d)) => {
                let mut script = vec!["export IMAGE_TAG=\"$BITBUCKET_COMMIT\"".to_owned()];
                if d.oidc {
                    script.push("export OIDC_TOKEN=\"$BITBUCKET_STEP_OIDC_TOKEN\"".to_owned());
                }
                if let Some(f) = j.dockerfiles.first() {
                    script.push(format!(
                        "export IMAGE=\"{}\"",
                        crate::plan::release::image_ref(f, "$DOCKER_IMAGE", "$BITBUCKET_COMMIT")
                    ));
                }
                script.extend(
                    d.env
                        .iter()
                        .map(|(k, v)| format!("export {k}={}", super::render::shell_quote(v))),
                );
                script.extend(d.commands.iter().cloned());
                let mut step = plain_step(j.name.clone(), d.image.to_owned(), script);
                step.deployment = Some(d.environment.as_str());
                step.manual = d.gate.approval;
                step.oidc = d.oidc;
                if d.needs_docker {
                    step.services = vec!["docker"];
                }
                let list = match d.gate.trigger {
                    DeployTrigger::DefaultBranch => &mut branch,
                    DeployTrigger::VersionTags => &mut tags,
                };
                // The image is published once per pipeline, before the first deploy
                // that runs it.
                if !j.needs.is_empty() && !list.iter().any(|s: &Step| s.deployment.is_none()) {
                    list.extend(publish.clone());
                }
                list.push(step);
            }
            _ => {}
        }
    }
    (branch, tags)
}

/// The `bitbucket-pipelines.yml` for `plan`.
pub fn generate(plan: &Plan, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut caches = Vec::new();
    let mut services: Vec<Svc> = Vec::new();
    let mut steps = Vec::new();
    for pj in plan.ci_workflows().flat_map(|w| w.jobs.iter()) {
        let j = container_job(pj);
        if j.docker {
            let mut step = plain_step(
                "Docker build".to_owned(),
                "atlassian/default-image:4".to_owned(),
                j.script,
            );
            step.services = vec!["docker"];
            step.paths = j
                .changes
                .iter()
                .map(|c| c.trim_end_matches("/*").to_owned())
                .collect();
            steps.push(step);
            continue;
        }
        let mut names = Vec::new();
        for (i, path) in j.cache_paths.iter().enumerate() {
            let name = format!("{}-{}", j.id, i + 1);
            caches.push(Cache {
                name: name.clone(),
                files: j.cache_key_files.clone(),
                path: path.clone(),
            });
            names.push(name);
        }
        for s in &j.services {
            if !services.iter().any(|x| x.name == s.name) {
                services.push(Svc {
                    name: s.name,
                    image: s.image,
                    env: s.env.clone(),
                });
            }
        }
        // Bitbucket has no per-step variables: export them first (the services' own
        // variables are defined with the services).
        let mut script: Vec<String> = j
            .variables
            .iter()
            .filter(|(k, _)| {
                !j.services
                    .iter()
                    .any(|s| s.env.iter().any(|(ek, _)| ek == k))
            })
            .map(|(k, v)| {
                format!(
                    "export {k}=\"{}\"",
                    v.replace("${CI_PROJECT_DIR}", "${BITBUCKET_CLONE_DIR}")
                )
            })
            .collect();
        script.extend(j.script.iter().cloned());
        let service_names: Vec<&'static str> = j.services.iter().map(|s| s.name).collect();
        for image in j.matrix.clone().unwrap_or_else(|| vec![j.image.clone()]) {
            steps.push(Step {
                name: if j.matrix.is_some() {
                    format!("{} on {image}", j.name)
                } else {
                    j.name.clone()
                },
                image,
                max_time: STEP_MAX_MINUTES,
                caches: names.clone(),
                services: service_names.clone(),
                paths: j
                    .changes
                    .iter()
                    .map(|c| c.trim_end_matches("/*").to_owned())
                    .collect(),
                script: script.clone(),
                artifacts: j.coverage.iter().map(|(p, _)| p.clone()).collect(),
                deployment: None,
                manual: false,
                oidc: false,
            });
        }
    }
    // Without CI steps of pipewright's own (the repository has its CI in this one file,
    // which pipewright never edits) there is no pipeline to add deploys to.
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let (deploy_branch, deploy_tags) = delivery(plan);
    let mut release = Vec::new();
    for w in plan
        .workflows
        .iter()
        .filter(|w| matches!(w.trigger, Trigger::Tags { .. }))
    {
        for pj in &w.jobs {
            match pj.kind {
                JobKind::ImagePublish => {
                    let mut script = vec!["echo \"$DOCKER_PASSWORD\" | docker login --username \"$DOCKER_USERNAME\" --password-stdin".to_owned()];
                    script.extend(crate::plan::release::docker_push_commands(
                        &pj.dockerfiles,
                        "$DOCKER_IMAGE",
                        "$BITBUCKET_TAG",
                    ));
                    let mut step = plain_step(
                        "publish-docker".to_owned(),
                        "atlassian/default-image:4".to_owned(),
                        script,
                    );
                    step.services = vec!["docker"];
                    release.push(step);
                }
                // Bitbucket has no release entity: the tag is the release.
                JobKind::ForgeRelease => {}
                _ => {
                    let c = container_job(pj);
                    release.push(plain_step(c.id, c.image, c.script));
                }
            }
        }
    }
    let content = render(
        "bitbucket/bitbucket-pipelines.yml.j2",
        target.template_dir.as_deref(),
        &Pipelines {
            summary: plan.summary.clone(),
            release,
            runs_on: target.runs_on.clone(),
            caches,
            services,
            branches: {
                let mut b: Vec<(String, bool)> = target
                    .push_branches()
                    .into_iter()
                    .map(|b| {
                        let d = b == target.default_branch && !deploy_branch.is_empty();
                        (b, d)
                    })
                    .collect();
                if !deploy_branch.is_empty() && !b.iter().any(|(_, d)| *d) {
                    b.push((target.default_branch.clone(), true));
                }
                b
            },
            steps,
            deploy_branch,
            deploy_tags,
        },
    )?;
    Ok(vec![GeneratedFile {
        path: "bitbucket-pipelines.yml".to_owned(),
        content,
    }])
}
