//! Bitbucket Pipelines layout of a [`Plan`]: one `bitbucket-pipelines.yml` with a step
//! per plan job (parallel steps per image when several versions are declared), custom
//! caches keyed on lockfiles, service containers, `changesets` conditions for monorepo
//! projects, and a Docker build check. Pipelines run for pull requests and the default
//! branch; `v*` tags publish (images to the registry named by variables).

use serde::Serialize;

use super::containers::container_job;
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
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

#[derive(Serialize)]
struct Step {
    name: String,
    image: String,
    max_time: u32,
    caches: Vec<String>,
    services: Vec<&'static str>,
    paths: Vec<String>,
    script: Vec<String>,
    artifacts: Vec<String>,
}

#[derive(Serialize)]
struct Pipelines {
    summary: String,
    /// Publish steps for `v*` tags (`release` feature).
    release: Vec<Step>,
    runs_on: Vec<String>,
    caches: Vec<Cache>,
    services: Vec<Svc>,
    branches: Vec<String>,
    steps: Vec<Step>,
}

/// The `bitbucket-pipelines.yml` for `plan`.
pub fn generate(plan: &Plan, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut caches = Vec::new();
    let mut services: Vec<Svc> = Vec::new();
    let mut steps = Vec::new();
    for pj in plan.ci_workflows().flat_map(|w| w.jobs.iter()) {
        let j = container_job(pj);
        if j.docker {
            steps.push(Step {
                name: "Docker build".to_owned(),
                image: "atlassian/default-image:4".to_owned(),
                max_time: STEP_MAX_MINUTES,
                caches: Vec::new(),
                services: vec!["docker"],
                paths: j
                    .changes
                    .iter()
                    .map(|c| c.trim_end_matches("/*").to_owned())
                    .collect(),
                script: j.script,
                artifacts: Vec::new(),
            });
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
            });
        }
    }
    if steps.is_empty() {
        return Ok(Vec::new());
    }
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
                    release.push(Step {
                        name: "publish-docker".to_owned(),
                        image: "atlassian/default-image:4".to_owned(),
                        max_time: STEP_MAX_MINUTES,
                        caches: Vec::new(),
                        services: vec!["docker"],
                        paths: Vec::new(),
                        script,
                        artifacts: Vec::new(),
                    });
                }
                // Bitbucket has no release entity: the tag is the release.
                JobKind::ForgeRelease => {}
                _ => {
                    let c = container_job(pj);
                    release.push(Step {
                        name: c.id,
                        image: c.image,
                        max_time: STEP_MAX_MINUTES,
                        caches: Vec::new(),
                        services: Vec::new(),
                        paths: Vec::new(),
                        script: c.script,
                        artifacts: Vec::new(),
                    });
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
            branches: target.push_branches(),
            steps,
        },
    )?;
    Ok(vec![GeneratedFile {
        path: "bitbucket-pipelines.yml".to_owned(),
        content,
    }])
}
