//! Bitbucket Pipelines: one `bitbucket-pipelines.yml` with a step per project (parallel
//! steps per image when several versions are declared), custom caches keyed on
//! lockfiles, service containers, `changesets` conditions for monorepo projects, and a
//! Docker build check. Pipelines run for pull requests and the default branch.

use serde::Serialize;

use super::images::{container_jobs, SERVICES};
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::analyze::Analysis;

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

/// The `bitbucket-pipelines.yml` for `analysis`.
pub fn generate(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut caches = Vec::new();
    let mut services: Vec<Svc> = Vec::new();
    let mut steps = Vec::new();
    for j in container_jobs(analysis, target) {
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
            if !services.iter().any(|x| x.name == *s) {
                if let Some((name, image, env)) = SERVICES.iter().find(|(n, _, _)| n == s) {
                    services.push(Svc {
                        name,
                        image,
                        env: env.to_vec(),
                    });
                }
            }
        }
        // Bitbucket has no per-step variables: export them first.
        let mut script: Vec<String> = j
            .variables
            .iter()
            .filter(|(k, _)| {
                !SERVICES
                    .iter()
                    .any(|(_, _, env)| env.iter().any(|(ek, _)| ek == k))
            })
            .map(|(k, v)| {
                format!(
                    "export {k}=\"{}\"",
                    v.replace("${CI_PROJECT_DIR}", "${BITBUCKET_CLONE_DIR}")
                )
            })
            .collect();
        script.extend(j.script.iter().cloned());
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
                services: j.services.clone(),
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
    if analysis.dockerfile {
        let script = super::images::docker_build_commands(&analysis.dockerfiles);
        steps.push(Step {
            name: "Docker build".to_owned(),
            image: "atlassian/default-image:4".to_owned(),
            max_time: STEP_MAX_MINUTES,
            caches: Vec::new(),
            services: vec!["docker"],
            paths: Vec::new(),
            script,
            artifacts: Vec::new(),
        });
    }
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let branches = target.push_branches();
    let mut release = Vec::new();
    if target.features.release {
        for r in super::images::release_jobs(analysis) {
            release.push(Step {
                name: r.id.clone(),
                image: r.image,
                max_time: STEP_MAX_MINUTES,
                caches: Vec::new(),
                services: Vec::new(),
                paths: Vec::new(),
                script: r.script,
                artifacts: Vec::new(),
            });
        }
        if analysis.dockerfile {
            let mut script = vec!["echo \"$DOCKER_PASSWORD\" | docker login --username \"$DOCKER_USERNAME\" --password-stdin".to_owned()];
            script.extend(super::images::docker_push_commands(
                &analysis.dockerfiles,
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
    }
    let content = render(
        "bitbucket/bitbucket-pipelines.yml.j2",
        target.template_dir.as_deref(),
        &Pipelines {
            summary: super::github::summary_of(analysis),
            release,
            runs_on: target.runs_on.clone(),
            caches,
            services,
            branches,
            steps,
        },
    )?;
    Ok(vec![GeneratedFile {
        path: "bitbucket-pipelines.yml".to_owned(),
        content,
    }])
}
