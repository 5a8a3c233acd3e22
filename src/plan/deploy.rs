//! The delivery workflow: for each deploy target and environment, one deploy job of the
//! target's provider-neutral [`DeployJob`], and — when a target runs the image the forge's
//! registry holds (SSH) — one job before them that builds and pushes that image, tagged
//! with the commit SHA. `staging` deploys pushes to the default branch, `production`
//! version tags behind an approval; renderers map the [`DeployGate`] of each job to the
//! forge's environments, manual jobs and concurrency. Like the release workflow, no
//! caches and only the permissions each job needs.
//!
//! [`DeployJob`]: crate::deploy::DeployJob
//! [`DeployGate`]: crate::deploy::DeployGate

use super::{Job, JobKind, Trigger, Workflow};
use crate::deploy::{DeployContext, DeployTarget, Environment};

/// Id of the job that builds and pushes the image deploys run.
pub const IMAGE_JOB: &str = "publish-image";

fn job(id: String, name: String, kind: JobKind, image: &str) -> Job {
    Job {
        id,
        name,
        kind,
        dir: ".".to_owned(),
        toolchain: None,
        image: Some(image.to_owned()),
        services: Vec::new(),
        steps: Vec::new(),
        permissions: Vec::new(),
        timeout_minutes: super::JOB_TIMEOUT_MINUTES,
        env: Vec::new(),
        coverage_report: None,
        dockerfiles: Vec::new(),
        changes: Vec::new(),
        reusable: None,
        needs: Vec::new(),
        deploy: None,
        service: None,
    }
}

/// The targets `provider` can run: Bitbucket allows one step per deployment environment
/// in a pipeline, so there the first target of each environment deploys it and the
/// others are left out, with a note.
pub fn for_provider(
    targets: &[(DeployTarget, DeployContext)],
    provider: crate::generate::Provider,
    notes: &mut Vec<String>,
) -> Vec<(DeployTarget, DeployContext)> {
    if provider != crate::generate::Provider::Bitbucket {
        return targets.to_vec();
    }
    let mut taken: Vec<(Environment, DeployTarget)> = Vec::new();
    let mut out = Vec::new();
    for (target, ctx) in targets {
        let mut ctx = ctx.clone();
        ctx.environments
            .retain(|env| match taken.iter().find(|(e, _)| e == env) {
                Some((_, first)) => {
                    notes.push(format!(
                        "Bitbucket runs one deployment step per environment in a pipeline: {} \
                     deploys {}, {} does not",
                        first.spec().name,
                        env.as_str(),
                        target.spec().name
                    ));
                    false
                }
                None => {
                    taken.push((*env, *target));
                    true
                }
            });
        if !ctx.environments.is_empty() {
            out.push((*target, ctx));
        }
    }
    out
}

/// The delivery workflow for `targets` (none when there is nothing to deploy).
pub fn workflow(targets: &[(DeployTarget, DeployContext)], summary: &str) -> Option<Workflow> {
    if targets.is_empty() {
        return None;
    }
    let mut jobs = Vec::new();
    let mut image: Option<Job> = None;
    let mut branch = false;
    let mut tags = false;
    for (target, ctx) in targets {
        for env in &ctx.environments {
            let d = target.deploy_job(ctx, *env);
            branch |= *env == Environment::Staging;
            tags |= *env == Environment::Production;
            let mut j = job(
                format!("deploy-{}-{}", target.as_str(), env.as_str()),
                format!("Deploy to {} ({})", target.spec().name, env.as_str()),
                JobKind::Deploy,
                d.image,
            );
            if d.needs_published_image {
                let publish = image.get_or_insert_with(|| {
                    let mut p = job(
                        IMAGE_JOB.to_owned(),
                        "Publish the image to deploy".to_owned(),
                        JobKind::DeployImage,
                        "docker:27",
                    );
                    p.permissions = vec![("packages", "write")];
                    p.service = Some(ctx.context_dir.clone());
                    p
                });
                if !publish.dockerfiles.contains(&ctx.dockerfile) {
                    publish.dockerfiles.push(ctx.dockerfile.clone());
                }
                j.needs.push(IMAGE_JOB.to_owned());
                j.dockerfiles = vec![ctx.dockerfile.clone()];
            }
            if d.oidc {
                j.permissions = vec![("id-token", "write")];
            }
            j.service = Some(ctx.context_dir.clone());
            j.deploy = Some(Box::new(d));
            jobs.push(j);
        }
    }
    if let Some(p) = image {
        jobs.insert(0, p);
    }
    Some(Workflow {
        file: "deploy".to_owned(),
        name: "Deploy".to_owned(),
        trigger: Trigger::Deploy { branch, tags },
        summary: summary.to_owned(),
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{DeploySettings, DeployTrigger};

    fn ctx(target: DeployTarget, envs: &[Environment]) -> (DeployTarget, DeployContext) {
        let a =
            crate::analyze::analyze(&crate::analyze::tree::RepoTree::from_paths(["Dockerfile"]));
        assert_eq!(a.dockerfiles, ["Dockerfile"]);
        let mut s = DeploySettings::new(target);
        s.environments = envs.to_vec();
        (target, crate::deploy::context(&a, "acme/shop", &s).unwrap())
    }

    #[test]
    fn one_job_per_target_and_environment_gated_by_its_environment() {
        let w = workflow(
            &[
                ctx(DeployTarget::Fly, &Environment::ALL),
                ctx(DeployTarget::Ssh, &[Environment::Production]),
            ],
            "node",
        )
        .unwrap();
        assert_eq!(
            w.trigger,
            Trigger::Deploy {
                branch: true,
                tags: true
            }
        );
        let ids: Vec<&str> = w.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                IMAGE_JOB,
                "deploy-fly-staging",
                "deploy-fly-production",
                "deploy-ssh-production"
            ]
        );
        let ssh = &w.jobs[3];
        assert_eq!(ssh.needs, [IMAGE_JOB]);
        let gate = &ssh.deploy.as_ref().unwrap().gate;
        assert_eq!(gate.trigger, DeployTrigger::VersionTags);
        assert!(gate.approval && !gate.cancel_in_progress);
        // Only the image job may write packages; no deploy job without OIDC gets a token.
        assert_eq!(w.jobs[0].permissions, [("packages", "write")]);
        assert!(w.jobs[1..].iter().all(|j| j.permissions.is_empty()));
        assert!(w.jobs[1].needs.is_empty());
    }

    #[test]
    fn oidc_targets_and_only_them_get_an_identity_token() {
        let w = workflow(&[ctx(DeployTarget::Aws, &[Environment::Staging])], "x").unwrap();
        assert_eq!(
            w.trigger,
            Trigger::Deploy {
                branch: true,
                tags: false
            }
        );
        assert_eq!(w.jobs.len(), 1);
        assert_eq!(w.jobs[0].permissions, [("id-token", "write")]);
        assert!(workflow(&[], "x").is_none());
    }
}
