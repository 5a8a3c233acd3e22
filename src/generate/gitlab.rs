//! GitLab CI layout of a [`Plan`]: one `.gitlab-ci.yml`, a job per plan job (a
//! `parallel: matrix` over images when several versions are declared), caches keyed on
//! lockfiles, `rules: changes` for monorepo projects, services, and a Docker build
//! check (docker-in-docker, never pushed). Pipelines run for merge requests and the
//! default branch; release jobs for `v*` tags push to the GitLab container registry and
//! create the GitLab release.

use serde::Serialize;

use super::containers::{container_job, ContainerJob};
use super::render::render;
use super::{GenerateError, GeneratedFile, Target};
use crate::plan::{JobKind, Plan, Trigger};

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
    variables: Vec<(String, String)>,
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
struct ReleaseJob {
    id: String,
    image: String,
    script: Vec<String>,
}

#[derive(Serialize)]
struct Pipeline {
    /// Publish jobs and the release entry, run for `v*` tags (`release` feature).
    release: Option<Vec<ReleaseJob>>,
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
    let mut services: Vec<Svc> = j
        .services
        .iter()
        .map(|s| Svc {
            name: s.name,
            image: s.image,
        })
        .collect();
    let mut variables = j.variables;
    let mut image = j.image;
    if j.docker {
        image = "docker:27".to_owned();
        variables.push(("DOCKER_TLS_CERTDIR".to_owned(), "/certs".to_owned()));
        services.push(Svc {
            name: "docker",
            image: "docker:27-dind",
        });
    }
    Job {
        services,
        id: if j.docker {
            "docker-build".to_owned()
        } else {
            j.id
        },
        image,
        matrix: j.matrix,
        reset_entrypoint: j.reset_entrypoint,
        variables,
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

/// The `.gitlab-ci.yml` for `plan`.
pub fn generate(plan: &Plan, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut jobs: Vec<Job> = plan
        .ci_workflows()
        .flat_map(|w| w.jobs.iter())
        .map(|j| job(container_job(j)))
        .collect();
    // One file: ids must be unique (a monorepo has a docker job per project).
    let mut seen: Vec<String> = Vec::new();
    for j in &mut jobs {
        let base = j.id.clone();
        let mut n = 2;
        while seen.contains(&j.id) {
            j.id = format!("{base}-{n}");
            n += 1;
        }
        seen.push(j.id.clone());
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut release = None;
    let mut docker_push = Vec::new();
    for w in plan
        .workflows
        .iter()
        .filter(|w| matches!(w.trigger, Trigger::Tags { .. }))
    {
        let mut rel = Vec::new();
        for j in &w.jobs {
            match j.kind {
                JobKind::ImagePublish => {
                    docker_push = crate::plan::release::docker_push_commands(
                        &j.dockerfiles,
                        "$CI_REGISTRY_IMAGE",
                        "$CI_COMMIT_TAG",
                    )
                }
                // The template writes the release entry itself (release-cli).
                JobKind::ForgeRelease => {}
                _ => {
                    let c = container_job(j);
                    rel.push(ReleaseJob {
                        id: c.id,
                        image: c.image,
                        script: c.script,
                    });
                }
            }
        }
        release = Some(rel);
    }
    let content = render(
        "gitlab/gitlab-ci.yml.j2",
        target.template_dir.as_deref(),
        &Pipeline {
            summary: plan.summary.clone(),
            timeout: "30 minutes",
            release,
            docker_push,
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
