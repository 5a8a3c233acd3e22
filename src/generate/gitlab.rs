//! GitLab CI: one `.gitlab-ci.yml`, a job per project (a `parallel: matrix` over images
//! when several versions are declared), caches keyed on lockfiles, `rules: changes` for
//! monorepo projects, services from compose files, and a Docker build check (docker-in-
//! docker, never pushed). Pipelines run for merge requests and the default branch.

use serde::Serialize;

use super::images::{container_jobs, ContainerJob, SERVICES};
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::analyze::Analysis;

#[derive(Serialize)]
struct Svc {
    name: &'static str,
    image: &'static str,
}

#[derive(Serialize)]
struct Job {
    id: String,
    image: String,
    matrix: Option<Vec<String>>,
    reset_entrypoint: bool,
    variables: Vec<(&'static str, String)>,
    services: Vec<Svc>,
    cache_paths: Vec<String>,
    cache_key_files: Vec<String>,
    changes: Vec<String>,
    script: Vec<String>,
    /// Cobertura report GitLab shows in merge requests.
    coverage_cobertura: Option<String>,
    /// Other reports, kept as artifacts.
    coverage_file: Option<String>,
}

#[derive(Serialize)]
struct Pipeline {
    /// Publish jobs and the release entry, run for `v*` tags (`release` feature).
    release: Option<Vec<super::images::ReleaseJob>>,
    /// Image build + push lines for the release (empty without Dockerfiles).
    docker_push: Vec<String>,
    summary: String,
    timeout: &'static str,
    /// Explicit branches (`.pipewright.yml`); none = the default branch.
    branches: Vec<String>,
    tags: Vec<String>,
    jobs: Vec<Job>,
}

fn job(j: ContainerJob) -> Job {
    Job {
        services: j
            .services
            .iter()
            .filter_map(|s| {
                SERVICES
                    .iter()
                    .find(|(n, _, _)| n == s)
                    .map(|(name, image, _)| Svc { name, image })
            })
            .collect(),
        id: j.id,
        image: j.image,
        matrix: j.matrix,
        reset_entrypoint: j.reset_entrypoint,
        variables: j.variables,
        cache_paths: j.cache_paths,
        cache_key_files: j.cache_key_files,
        changes: j.changes,
        script: j.script,
        coverage_cobertura: j
            .coverage
            .as_ref()
            .filter(|(_, f)| *f == "cobertura")
            .map(|(p, _)| p.clone()),
        coverage_file: j
            .coverage
            .as_ref()
            .filter(|(_, f)| *f != "cobertura")
            .map(|(p, _)| p.clone()),
    }
}

/// The `.gitlab-ci.yml` for `analysis`.
pub fn generate(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut jobs: Vec<Job> = container_jobs(analysis, target)
        .into_iter()
        .map(job)
        .collect();
    if analysis.dockerfile {
        let script = super::images::docker_build_commands(&analysis.dockerfiles);
        jobs.push(Job {
            id: "docker-build".to_owned(),
            image: "docker:27".to_owned(),
            matrix: None,
            reset_entrypoint: false,
            variables: vec![("DOCKER_TLS_CERTDIR", "/certs".to_owned())],
            services: vec![Svc {
                name: "docker",
                image: "docker:27-dind",
            }],
            cache_paths: Vec::new(),
            cache_key_files: Vec::new(),
            changes: Vec::new(),
            script,
            coverage_cobertura: None,
            coverage_file: None,
        });
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let summary = super::github::summary_of(analysis);
    let content = render(
        "gitlab/gitlab-ci.yml.j2",
        target.template_dir.as_deref(),
        &Pipeline {
            summary,
            timeout: "30 minutes",
            release: target
                .features
                .release
                .then(|| super::images::release_jobs(analysis)),
            docker_push: if target.features.release {
                super::images::docker_push_commands(
                    &analysis.dockerfiles,
                    "$CI_REGISTRY_IMAGE",
                    "$CI_COMMIT_TAG",
                )
            } else {
                Vec::new()
            },
            branches: target.branches.clone().unwrap_or_default(),
            tags: target.runs_on.clone(),
            jobs,
        },
    )?;
    Ok(vec![GeneratedFile {
        path: ".gitlab-ci.yml".to_owned(),
        content,
    }])
}
