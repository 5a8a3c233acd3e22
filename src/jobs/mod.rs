//! The job kinds pipewright runs, one file per kind, and the registry that wires each
//! stored kind to its handler.
//!
//! To add a kind: a struct + `impl Job` in its own file, a line in [`ALL_KINDS`], and a
//! `.register` line in [`registry`] once its handler exists. Kinds without a handler in
//! this binary stay queued (visible in `pipewright jobs list`) until a binary that has
//! one claims them.

pub mod analyze_repo;
pub mod first_run;
pub mod follow_up;
pub mod handle_event;
pub mod outbox;
pub mod reconcile;
pub mod run_command;

use std::path::PathBuf;
use std::sync::Arc;

use crate::forge::client::ApiError;
use crate::forge::{Forge, ForgeClient, Forges};
use crate::queue::{Job, Registry};

pub use follow_up::{
    AnalyzeReason, AnalyzeRepo, CiRunCompleted, PullRequestClosed, ReconcileInstallation,
    RunCommand,
};
pub use handle_event::HandleEvent;

/// Every job kind this version knows, handled or not (kinds are stored: never rename).
pub const ALL_KINDS: &[&str] = &[
    HandleEvent::KIND,
    AnalyzeRepo::KIND,
    RunCommand::KIND,
    PullRequestClosed::KIND,
    ReconcileInstallation::KIND,
    CiRunCompleted::KIND,
];

/// What handlers need from the process, beyond the job's payload.
#[derive(Debug, Clone)]
pub struct JobsContext {
    /// Slash-command word (comments that do not mention it queue nothing).
    pub command_word: String,
    /// Clock for timestamps.
    pub clock: crate::clock::Clock,
    /// Forge connections.
    pub forges: Arc<Forges>,
    /// Branch of the bot's pull request.
    pub pr_branch: String,
    /// PRs opened per installation per hour.
    pub prs_per_hour: u32,
    /// Dry run: record would-be writes under this directory instead of sending them.
    pub outbox: Option<PathBuf>,
    /// Webhook to register on GitLab projects the reconcile pass discovers (URL, token).
    pub gitlab_hook: Option<(String, crate::config::Secret)>,
    /// Webhook to register on Bitbucket repositories the reconcile pass discovers, when
    /// the token may not manage workspace webhooks (URL, secret).
    pub bitbucket_hook: Option<(String, crate::config::Secret)>,
    /// Keys of the stored deploy credentials (written to the forge by `add deploy`).
    pub credentials_key: Option<crate::crypto::Keyring>,
    /// Deploy targets proposed to repositories that have CI but no CD
    /// (`PIPEWRIGHT_PROPOSE_CD`); none by default.
    pub propose_cd: Vec<crate::deploy::DeployTarget>,
    /// Learned detection (`None`: rules only). Shared by every worker of the process.
    pub learner: Option<Arc<crate::learn::Learner>>,
}

impl JobsContext {
    /// A context with no forge configured (forge jobs are left to other processes).
    pub fn new(command_word: &str, clock: crate::clock::Clock) -> Self {
        JobsContext {
            command_word: command_word.to_owned(),
            clock,
            forges: Arc::new(Forges::none()),
            pr_branch: crate::config::DEFAULT_PR_BRANCH.into(),
            prs_per_hour: crate::config::DEFAULT_PRS_PER_HOUR,
            outbox: None,
            gitlab_hook: None,
            bitbucket_hook: None,
            credentials_key: None,
            propose_cd: Vec::new(),
            learner: None,
        }
    }

    /// The context of a configured process.
    pub fn from_config(
        config: &crate::config::Config,
        clock: crate::clock::Clock,
        forges: Arc<Forges>,
    ) -> Self {
        JobsContext {
            command_word: config.command_word.clone(),
            clock,
            forges,
            pr_branch: config.bot.pr_branch.clone(),
            prs_per_hour: config.bot.prs_per_hour,
            outbox: config.bot.dry_run.then(|| config.bot.outbox.clone()),
            gitlab_hook: match (&config.bot.public_url, config.gitlab_webhook_secrets.last()) {
                (Some(url), Some(secret)) if !config.bot.dry_run => {
                    Some((format!("{url}/webhooks/gitlab"), secret.clone()))
                }
                _ => None,
            },
            bitbucket_hook: match (
                &config.bot.public_url,
                config.bitbucket_webhook_secrets.last(),
            ) {
                (Some(url), Some(secret)) if !config.bot.dry_run => {
                    Some((format!("{url}/webhooks/bitbucket"), secret.clone()))
                }
                _ => None,
            },
            credentials_key: config.credentials_key.clone(),
            propose_cd: config.bot.propose_cd.clone(),
            learner: None,
        }
    }

    /// A client for a job, wrapped in the dry-run outbox when one is set.
    pub fn forge_client(
        &self,
        forge: Forge,
        tenant: &str,
        account: Option<&str>,
    ) -> Result<Box<dyn ForgeClient>, ApiError> {
        let client = self.forges.client(forge, tenant, account)?;
        Ok(match &self.outbox {
            Some(dir) => Box::new(outbox::DryRun::new(client, dir.clone())),
            None => client,
        })
    }
}

/// The handlers this binary runs. Forge work (analysis, reconcile, PR bookkeeping) is
/// registered only when some forge has credentials, so an intake-only or unconfigured
/// process leaves those jobs queued for a process that can do them.
pub fn registry(ctx: JobsContext) -> Registry {
    let c = ctx.clone();
    let reg = Registry::new().register::<HandleEvent, _, _>(move |run, job| {
        let ctx = c.clone();
        async move { handle_event::run(&ctx, &run, job).await }
    });
    if !ctx.forges.any_configured() {
        return reg;
    }
    let (c1, c2, c3, c4, c5) = (ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone(), ctx);
    reg.register::<AnalyzeRepo, _, _>(move |run, job| {
        let ctx = c1.clone();
        async move { analyze_repo::run(&ctx, &run, job).await }
    })
    .register::<ReconcileInstallation, _, _>(move |run, job| {
        let ctx = c2.clone();
        async move { reconcile::reconcile(&ctx, &run, job).await }
    })
    .register::<PullRequestClosed, _, _>(move |run, job| {
        let ctx = c3.clone();
        async move { reconcile::pull_request_closed(&ctx, &run, job).await }
    })
    .register::<RunCommand, _, _>(move |run, job| {
        let ctx = c4.clone();
        async move { run_command::run(&ctx, &run, job).await }
    })
    .register::<CiRunCompleted, _, _>(move |run, job| {
        let ctx = c5.clone();
        async move { first_run::run(&ctx, &run, job).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_registered_ones_are_known() {
        let mut kinds = ALL_KINDS.to_vec();
        kinds.sort_unstable();
        let n = kinds.len();
        kinds.dedup();
        assert_eq!(kinds.len(), n, "duplicate job kind");
        let reg = registry(JobsContext::new("pipewright", crate::clock::Clock::System));
        for k in reg.kinds() {
            assert!(
                ALL_KINDS.contains(&k.as_str()),
                "{k} missing from ALL_KINDS"
            );
        }
    }
}
