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
use crate::deploy::DeployTrigger;
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

/// A delivery job: image publish or deploy.
#[derive(Serialize)]
struct DeliveryJob {
    id: String,
    image: String,
    /// Needs docker-in-docker.
    docker: bool,
    needs: Vec<String>,
    variables: Vec<(String, String)>,
    /// `id_tokens: OIDC_TOKEN: aud:` (OIDC targets).
    id_token_aud: Option<String>,
    /// Environment name and URL (deploys).
    environment: Option<(&'static str, Option<String>)>,
    /// One deploy per environment at a time.
    resource_group: Option<String>,
    /// `rules: - if:` conditions; each with `when: manual` when `manual`.
    rules: Vec<&'static str>,
    manual: bool,
    script: Vec<String>,
}

/// The default branch, protected (forks' and unprotected branches' pipelines never hold
/// the protected deploy variables, and never deploy).
const RULE_DEFAULT_BRANCH: &str =
    "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_COMMIT_REF_PROTECTED == \"true\"";
/// A protected version tag.
const RULE_VERSION_TAG: &str = "$CI_COMMIT_TAG =~ /^v/ && $CI_COMMIT_REF_PROTECTED == \"true\"";

fn delivery(plan: &Plan) -> (Vec<DeliveryJob>, bool, bool) {
    let Some(w) = plan.deploy_workflow() else {
        return (Vec::new(), false, false);
    };
    let Trigger::Deploy { branch, tags } = w.trigger else {
        return (Vec::new(), false, false);
    };
    let mut rules = Vec::new();
    if branch {
        rules.push(RULE_DEFAULT_BRANCH);
    }
    if tags {
        rules.push(RULE_VERSION_TAG);
    }
    let mut out = Vec::new();
    for j in &w.jobs {
        match (j.kind, &j.deploy) {
            (JobKind::DeployImage, _) => {
                let mut script = vec![
                    "echo \"$CI_REGISTRY_PASSWORD\" | docker login --username \"$CI_REGISTRY_USER\" --password-stdin \"$CI_REGISTRY\"".to_owned(),
                ];
                for f in &j.dockerfiles {
                    script.extend(crate::plan::release::deploy_image_commands(
                        f,
                        "$CI_REGISTRY_IMAGE",
                        "$CI_COMMIT_SHA",
                        true,
                    ));
                }
                out.push(DeliveryJob {
                    id: j.id.clone(),
                    image: "docker:27".to_owned(),
                    docker: true,
                    needs: Vec::new(),
                    variables: Vec::new(),
                    id_token_aud: None,
                    environment: None,
                    resource_group: None,
                    rules: rules.clone(),
                    manual: false,
                    script,
                });
            }
            (JobKind::Deploy, Some(d)) => {
                let mut variables = vec![("IMAGE_TAG".to_owned(), "$CI_COMMIT_SHA".to_owned())];
                if let Some(f) = j.dockerfiles.first() {
                    variables.push((
                        "IMAGE".to_owned(),
                        crate::plan::release::image_ref(f, "$CI_REGISTRY_IMAGE", "$CI_COMMIT_SHA"),
                    ));
                }
                variables.extend(d.env.iter().cloned());
                let production = d.gate.trigger == DeployTrigger::VersionTags;
                out.push(DeliveryJob {
                    id: j.id.clone(),
                    image: d.image.to_owned(),
                    docker: d.needs_docker,
                    needs: j.needs.clone(),
                    variables,
                    id_token_aud: d
                        .oidc
                        .then(|| d.audience.unwrap_or("pipewright").to_owned()),
                    environment: Some((d.environment.as_str(), d.url.clone())),
                    resource_group: Some(format!(
                        "{}-{}",
                        d.gate.concurrency_group,
                        d.target.as_str()
                    )),
                    rules: vec![if production {
                        RULE_VERSION_TAG
                    } else {
                        RULE_DEFAULT_BRANCH
                    }],
                    manual: d.gate.approval,
                    script: d.commands.clone(),
                });
            }
            _ => {}
        }
    }
    (out, branch, tags)
}

#[derive(Serialize)]
struct Pipeline {
    /// Delivery jobs (publish the image, deploy), stage `deploy`.
    deploy: Vec<DeliveryJob>,
    /// Pipelines must run for the default branch (staging deploys).
    deploy_branch: bool,
    /// Pipelines must run for version tags (production deploys).
    deploy_tags: bool,
    /// Only the delivery jobs, in a file the repository's own `.gitlab-ci.yml` includes:
    /// no `workflow`, `default` or `stages` of its own (they would override the
    /// repository's).
    include_only: bool,
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

/// Where the delivery jobs go when the repository has its own `.gitlab-ci.yml` (which
/// pipewright never edits): a file that pipeline includes (`include: local:`).
pub const INCLUDE_PATH: &str = ".gitlab/pipewright-deploy.yml";

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
    let (deploy, deploy_branch, deploy_tags) = delivery(plan);
    if jobs.is_empty() && deploy.is_empty() {
        return Ok(Vec::new());
    }
    let include_only = jobs.is_empty();
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
            deploy,
            deploy_branch,
            deploy_tags,
            include_only,
            timeout: "30 minutes",
            release,
            docker_push,
            branches: target.branches.clone().unwrap_or_default(),
            tags: target.runs_on.clone(),
            jobs,
        },
    )?;
    Ok(vec![GeneratedFile {
        path: if include_only {
            INCLUDE_PATH.to_owned()
        } else {
            ".gitlab-ci.yml".to_owned()
        },
        content,
    }])
}
