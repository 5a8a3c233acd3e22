//! What GitLab CI and Bitbucket Pipelines share: a plan job laid out as a container
//! job — an image (one per matrix value), variables, caches, services, and one script
//! of the steps that apply to container providers. Each provider's file only arranges
//! these in its own syntax.

use crate::plan::{self, Action, Job, JobKind};

/// One container job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerJob {
    /// Job id (letters, digits, `-`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Image when there is no matrix.
    pub image: String,
    /// Images to run on, when more than one version is declared.
    pub matrix: Option<Vec<String>>,
    /// Reset the image's entrypoint.
    pub reset_entrypoint: bool,
    /// Variables (values may use `${CI_PROJECT_DIR}`, translated per provider).
    pub variables: Vec<(String, String)>,
    /// Service containers the tests need.
    pub services: Vec<plan::Service>,
    /// Cache directories, relative to the repository root.
    pub cache_paths: Vec<String>,
    /// Lockfiles keying the cache (at most two: GitLab's limit).
    pub cache_key_files: Vec<String>,
    /// Paths whose changes trigger the job (monorepos only).
    pub changes: Vec<String>,
    /// Commands, including `cd <dir>` for sub-projects.
    pub script: Vec<String>,
    /// Coverage report (repository path) and its format, when coverage is on.
    pub coverage: Option<(String, &'static str)>,
    /// The job builds images (needs a Docker daemon).
    pub docker: bool,
}

/// A script line for a plan step (a non-blocking step reports instead of failing).
fn line(s: &plan::Step) -> Option<String> {
    let Action::Run(cmd) = &s.action else {
        return None;
    };
    let mut cmd = cmd.clone();
    if !s.env.is_empty() {
        let assigns: Vec<String> = s
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", super::render::shell_quote(v)))
            .collect();
        cmd = format!("export {} && {cmd}", assigns.join(" "));
    }
    Some(if s.blocking {
        cmd
    } else {
        format!(
            "{cmd} || echo \"pipewright: non-blocking step failed: {}\"",
            s.name.replace(['"', '\\', '$', '`'], "")
        )
    })
}

/// The container layout of plan job `j`.
pub fn container_job(j: &Job) -> ContainerJob {
    let prefix = |path: &str| {
        if j.dir == "." {
            path.to_owned()
        } else {
            format!("{}/{path}", j.dir)
        }
    };
    let mut script = Vec::new();
    if j.dir != "." {
        script.push(format!("cd {}", super::render::shell_quote(&j.dir)));
    }
    let (images, reset_entrypoint, mut variables, cache_paths, cache_key_files) = match &j.toolchain
    {
        Some(t) => {
            script.extend(
                t.steps
                    .iter()
                    .filter(|s| s.on_containers())
                    .filter_map(line),
            );
            (
                t.images.clone(),
                t.reset_entrypoint,
                t.variables
                    .iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            v.replace(
                                "${CI_PROJECT_DIR}",
                                &format!(
                                    "${{CI_PROJECT_DIR}}{}",
                                    if j.dir == "." {
                                        String::new()
                                    } else {
                                        format!("/{}", j.dir)
                                    }
                                ),
                            ),
                        )
                    })
                    .collect::<Vec<_>>(),
                t.cache_paths.iter().map(|c| prefix(c)).collect(),
                t.cache_key_files.iter().take(2).cloned().collect(),
            )
        }
        None => (
            vec![j
                .image
                .clone()
                .unwrap_or_else(|| "debian:stable-slim".to_owned())],
            false,
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
    };
    script.extend(
        j.steps
            .iter()
            .filter(|s| s.on_containers())
            .filter_map(line),
    );
    for s in &j.services {
        variables.extend(
            s.env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }
    variables.extend(j.env.iter().cloned());
    ContainerJob {
        id: j.id.clone(),
        name: if j.kind == JobKind::DockerBuild {
            "Docker build".to_owned()
        } else {
            j.name.clone()
        },
        image: images.first().cloned().unwrap_or_default(),
        matrix: (images.len() > 1).then(|| images.clone()),
        reset_entrypoint,
        variables,
        services: j.services.clone(),
        cache_paths,
        cache_key_files,
        changes: j.changes.clone(),
        script,
        coverage: j.coverage_report.clone(),
        docker: matches!(j.kind, JobKind::DockerBuild | JobKind::ImagePublish),
    }
}
