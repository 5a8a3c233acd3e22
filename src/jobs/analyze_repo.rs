//! `analyze_repo`: read a repository's default branch through the forge API (one tree
//! listing plus only the manifests detection asks for), decide what to propose, and open
//! or update the one pipewright pull request, found again by its branch.
//!
//! Rules, in the order they are checked:
//! - a deleted/suspended installation, a removed or ignored repository: nothing;
//! - archived, disabled, fork, empty repositories: skipped with a reason;
//! - existing CI or nothing buildable: no PR;
//! - an open PR whose state hash matches: nothing (redeliveries cost 5 reads);
//! - an open PR whose branch tip is not the commit pipewright wrote: people committed to
//!   it, so comment once and never push over them;
//! - a PR a person closed with this same proposal: never reopened;
//! - otherwise update the open PR (a fast-forward commit) or open one, within the
//!   installation's hourly budget (deferred, silently, when it is spent).

use std::collections::BTreeSet;

use anyhow::Context as _;
use tracing::{info, warn};

use super::follow_up::AnalyzeRepo;
use super::JobsContext;
use crate::analyze::tree::{MAX_FILES_READ, MAX_FILE_BYTES};
use crate::analyze::{files_to_read, RepoTree};
use crate::bot::pr_body::{self, PrState as BodyState};
use crate::bot::proposal::{self, Decision, Proposal};
use crate::bot::wording::Words;
use crate::db::installations::{self, InstallationRow, RepoRow, RepoState};
use crate::db::pull_requests;
use crate::db::Db;
use crate::forge::client::{
    ApiError, BranchWrite, FileWrite, ForgeClient, NewPullRequest, Parent, PrState,
    PullRequestUpdate, RepoHandle,
};
use crate::forge::event::{CommentTarget, Repo};
use crate::forge::Forge;
use crate::queue::registry::JobRun;
use crate::queue::JobError;

/// What an analysis concluded (stored as the repository's `last_outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do, and why.
    Skipped(String),
    /// The open PR already carries this proposal.
    Unchanged(u64),
    /// A PR was opened.
    Opened(u64),
    /// The open PR was updated.
    Updated(u64),
    /// People committed to the branch: commented instead of pushing.
    HumanCommits(u64),
    /// A person closed a PR with this proposal: not reopened.
    ClosedByPerson(u64),
    /// The repository's `.pipewright.yml` is invalid.
    ConfigError(String),
    /// The GitHub App cannot write workflow files.
    NoWorkflowsPermission,
}

impl Outcome {
    /// The outcome in `forge`'s words (`!12` and "merge request" on GitLab): stored as
    /// the repository's `last_outcome` and quoted in replies.
    pub fn describe(&self, forge: Forge) -> String {
        let w = Words(forge);
        match self {
            Outcome::Skipped(r) => format!("skipped: {r}"),
            Outcome::Unchanged(n) => {
                format!("unchanged: {} already carries this proposal", w.pr_ref(*n))
            }
            Outcome::Opened(n) => format!("opened {} {}", w.pr(), w.pr_ref(*n)),
            Outcome::Updated(n) => format!("updated {} {}", w.pr(), w.pr_ref(*n)),
            Outcome::HumanCommits(n) => format!(
                "{} has commits by people: commented instead of pushing",
                w.pr_ref(*n)
            ),
            Outcome::ClosedByPerson(n) => format!(
                "{} was closed with this proposal: not reopened",
                w.pr_ref(*n)
            ),
            Outcome::ConfigError(e) => format!("invalid repository config: {e}"),
            Outcome::NoWorkflowsPermission => {
                "the GitHub App lacks `workflows: write`; grant it in the App settings".to_owned()
            }
        }
    }
}

pub use crate::bot::proposal::forge_provider;

pub(super) async fn run(ctx: &JobsContext, run: &JobRun, job: AnalyzeRepo) -> Result<(), JobError> {
    let db = &run.db;
    let Some(inst_ext) = &job.installation else {
        info!("no installation in the event: nothing to act as");
        return Ok(());
    };
    let inst = installations::get_installation(db, job.forge, inst_ext.as_str())
        .await
        .context("cannot read the installation")?;
    let Some(inst) = inst.filter(|i| i.state == "active") else {
        info!(installation = %inst_ext, "installation is not active: nothing to do");
        return Ok(());
    };
    let repo_row = match installations::get_repo(db, job.forge, job.repo.id.as_str())
        .await
        .context("cannot read the repository")?
    {
        Some(r) => r,
        None => {
            let id = installations::upsert_repo(
                db,
                Some(inst.id),
                job.forge,
                &job.repo,
                RepoState::Active,
                ctx.clock.now(),
            )
            .await
            .context("cannot record the repository")?;
            installations::get_repo(db, job.forge, job.repo.id.as_str())
                .await
                .context("cannot read the repository")?
                .with_context(|| format!("repository row {id} vanished"))?
        }
    };
    if repo_row.state != "active" {
        info!(repo = %repo_row.full_name, state = %repo_row.state, "repository is not active: nothing to do");
        return Ok(());
    }
    let client = ctx
        .forge_client(job.forge, inst_ext.as_str(), inst.account.as_deref())
        .map_err(JobError::from)?;
    let handle = RepoHandle {
        id: job.repo.id.as_str().to_owned(),
        full_name: job.repo.full_name.clone(),
    };
    let result = sync_repository(
        ctx,
        db,
        client.as_ref(),
        &inst,
        &repo_row,
        &handle,
        job.sha.as_ref().map(|s| s.as_str()),
    )
    .await;
    ctx.forges
        .totals()
        .observe_job(job.forge, "analyze_repo", client.calls());
    if let Err(e) = crate::db::console::record_api_usage(
        db,
        inst.id,
        client.calls(),
        client.rate_reading(),
        ctx.clock.now(),
    )
    .await
    {
        warn!(error = %e, "cannot record API usage");
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            info!(repo = %handle.full_name, api_calls = client.calls(), error = %e, "analysis stopped");
            // Deferrals (rate limits, the PR budget) are waiting, not failing.
            if !matches!(e, JobError::Defer { .. }) {
                let text: String = format!("failed: {e}").chars().take(2_000).collect();
                if let Err(db_err) =
                    pull_requests::record_outcome(db, repo_row.id, &text, None, ctx.clock.now())
                        .await
                {
                    warn!(error = %db_err, "cannot record the failure");
                }
            }
            return Err(e);
        }
    };
    let outcome = outcome.describe(job.forge);
    info!(repo = %handle.full_name, api_calls = client.calls(), outcome = %outcome, "analysis done");
    pull_requests::record_outcome(db, repo_row.id, &outcome, None, ctx.clock.now())
        .await
        .context("cannot record the outcome")?;
    Ok(())
}

/// Analyses one repository and brings its pull request in line with the proposal.
/// Shared by the `analyze_repo` job and the `regenerate` command.
pub async fn sync_repository(
    ctx: &JobsContext,
    db: &Db,
    client: &dyn ForgeClient,
    inst: &InstallationRow,
    repo_row: &RepoRow,
    handle: &RepoHandle,
    sha: Option<&str>,
) -> Result<Outcome, JobError> {
    let now = ctx.clock.now();
    let bot_state = pull_requests::repo_state(db, repo_row.id)
        .await
        .context("cannot read the repository's bot state")?;
    if bot_state.ignored {
        return Ok(Outcome::Skipped("ignored with the `ignore` command".into()));
    }
    let remote = client.repository(handle).await?;
    // Keep names and flags fresh (renames, archiving) for operators and the reconcile job.
    installations::upsert_repo(
        db,
        Some(inst.id),
        client.forge(),
        &Repo {
            id: crate::forge::RepoId(remote.handle.id.clone()),
            full_name: remote.handle.full_name.clone(),
            default_branch: remote.default_branch.clone(),
            private: Some(remote.private),
            archived: Some(remote.archived),
            fork: Some(remote.fork),
        },
        RepoState::Active,
        now,
    )
    .await
    .context("cannot update the repository")?;
    if let Some(reason) = remote.skip_reason() {
        return Ok(Outcome::Skipped(reason.into()));
    }
    let handle = &remote.handle;
    let default_branch = remote
        .default_branch
        .clone()
        .unwrap_or_else(|| "main".into());
    let head = match sha {
        Some(s) => s.to_owned(),
        None => match client.branch_head(handle, &default_branch).await? {
            Some(h) => h,
            None => {
                return Ok(Outcome::Skipped(
                    "empty (waiting for the first push)".into(),
                ))
            }
        },
    };
    pull_requests::record_analyzed_sha(db, repo_row.id, &head)
        .await
        .context("cannot record the analysed commit")?;
    let Some(snapshot) = read_snapshot_with(client, handle, &head, ctx.learner.is_some()).await?
    else {
        return Ok(Outcome::Skipped(
            "empty (waiting for the first push)".into(),
        ));
    };
    let tree = &snapshot.tree;
    let at = SnapshotAt {
        repository_id: repo_row.id,
        head: &head,
        forge: client.forge(),
        now,
    };
    let cd = proposal::CdOptions {
        repo_name: handle.full_name.clone(),
        propose_cd: ctx.propose_cd.clone(),
        stored: crate::credentials::stored_names(db, repo_row.id)
            .await
            .context("cannot read the stored credential names")?,
    };
    // Learning never blocks a proposal: without it (no model, or an error) the rules'
    // proposal goes out as before.
    let mut learned = match &ctx.learner {
        Some(learner) => match learner
            .learn_repository(
                db,
                crate::learn::RepoRef {
                    id: repo_row.id,
                    installation_id: inst.id,
                    full_name: &handle.full_name,
                },
                tree,
                now,
            )
            .await
        {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(repo = %handle.full_name, error = %format!("{e:#}"), "learned detection failed; proposing with rules only");
                None
            }
        },
        None => None,
    };
    if let Some(l) = learned.as_mut() {
        pin_reusable_workflow(client, &mut l.adoption).await;
    }
    let decision = match proposal::propose_full(
        tree,
        client.forge(),
        &default_branch,
        &ctx.command_word,
        &proposal::RepoSettings::from_json(bot_state.settings.as_deref()),
        &cd,
        ctx.learner.as_deref().zip(learned.as_ref()),
    ) {
        Ok(d) => d,
        Err(e) => {
            let outcome = Outcome::ConfigError(e.to_string());
            save_console_snapshot(db, &at, tree, &outcome.describe(client.forge()), None).await?;
            return Ok(outcome);
        }
    };
    let proposal = match decision {
        Decision::Skip(s) => {
            let outcome = Outcome::Skipped(s.to_string());
            save_console_snapshot(db, &at, tree, &outcome.describe(client.forge()), None).await?;
            return Ok(outcome);
        }
        Decision::Propose(p) => p,
    };
    save_console_snapshot(db, &at, tree, "propose", Some(&proposal)).await?;
    let existing = client.find_pull_request(handle, &ctx.pr_branch).await?;
    let remembered_pr = pull_requests::latest(db, repo_row.id)
        .await
        .context("cannot read the remembered pull request")?;
    let in_tree: BTreeSet<&str> = snapshot.paths.iter().map(String::as_str).collect();
    match existing {
        Some(pr) if pr.state == PrState::Open => {
            let remembered = pull_requests::latest(db, repo_row.id)
                .await
                .context("cannot read the remembered pull request")?
                .filter(|r| r.number == pr.number as i64);
            let state = pr_body::parse_state(&pr.body);
            let known_hash = state
                .as_ref()
                .map(|s| s.hash.clone())
                .or_else(|| remembered.as_ref().map(|r| r.proposal_hash.clone()));
            let our_head = state
                .as_ref()
                .and_then(|s| s.head.clone())
                .or_else(|| remembered.as_ref().and_then(|r| r.head_sha.clone()));
            if known_hash.as_deref() == Some(proposal.hash.as_str()) {
                pull_requests::upsert(
                    db,
                    repo_row.id,
                    pr.number,
                    &ctx.pr_branch,
                    "open",
                    &proposal.hash,
                    our_head.as_deref(),
                    Some(&pr.url),
                    now,
                )
                .await
                .context("cannot remember the pull request")?;
                return Ok(Outcome::Unchanged(pr.number));
            }
            let tip = pr.head_sha.clone();
            let ours = match (&tip, &our_head) {
                (Some(t), Some(o)) => same_commit(t, o),
                _ => false,
            };
            if !ours {
                return notify_human_commits(ctx, db, client, repo_row, handle, &pr, state).await;
            }
            let tip = tip.expect("checked above");
            let previous: BTreeSet<String> = state
                .map(|s| s.files.into_iter().collect())
                .unwrap_or_default();
            let mut files = file_writes(&proposal, |p| in_tree.contains(p) || previous.contains(p));
            for old in &previous {
                if !proposal.files.iter().any(|f| &f.path == old) {
                    files.push(FileWrite {
                        path: old.clone(),
                        content: None,
                        exists: true,
                    });
                }
            }
            let write = BranchWrite {
                branch: ctx.pr_branch.clone(),
                parent: Parent::OnTop { head: tip },
                files,
                message: proposal.commit_message(),
            };
            let new_head = match client.write_branch(handle, &write).await {
                Ok(h) => h,
                Err(ApiError::WorkflowsPermission { detail }) => {
                    warn!(repo = %handle.full_name, %detail, "cannot write workflow files");
                    return Ok(Outcome::NoWorkflowsPermission);
                }
                Err(e) => return Err(e.into()),
            };
            record_pushed(db, repo_row.id, &proposal, &new_head, now).await?;
            let body = pr_body::merge(Some(&pr.body), &proposal.body_region(Some(&new_head)));
            client
                .update_pull_request(
                    handle,
                    pr.number,
                    &PullRequestUpdate {
                        title: None,
                        body: Some(body),
                        close: false,
                    },
                )
                .await?;
            pull_requests::upsert(
                db,
                repo_row.id,
                pr.number,
                &ctx.pr_branch,
                "open",
                &proposal.hash,
                Some(&new_head),
                Some(&pr.url),
                now,
            )
            .await
            .context("cannot remember the pull request")?;
            Ok(Outcome::Updated(pr.number))
        }
        Some(pr)
            if pr.state == PrState::Closed
                && pr_body::parse_state(&pr.body).is_some_and(|s| s.hash == proposal.hash)
                && !closed_by_bot(&remembered_pr, pr.number) =>
        {
            pull_requests::upsert(
                db,
                repo_row.id,
                pr.number,
                &ctx.pr_branch,
                "closed",
                &proposal.hash,
                None,
                Some(&pr.url),
                now,
            )
            .await
            .context("cannot remember the pull request")?;
            Ok(Outcome::ClosedByPerson(pr.number))
        }
        Some(pr)
            if pr.state == PrState::Merged
                && pr_body::parse_state(&pr.body).is_some_and(|s| s.hash == proposal.hash) =>
        {
            Ok(Outcome::Unchanged(pr.number))
        }
        _ => {
            // Also covers a lost body: the database remembers closed proposals too.
            if let Some(r) = pull_requests::latest(db, repo_row.id)
                .await
                .context("cannot read the remembered pull request")?
            {
                if r.state == "closed" && r.proposal_hash == proposal.hash && !r.closed_by_bot {
                    return Ok(Outcome::ClosedByPerson(r.number as u64));
                }
            }
            open_pull_request(
                ctx,
                db,
                client,
                inst,
                repo_row,
                handle,
                &default_branch,
                &head,
                &proposal,
                &in_tree,
            )
            .await
        }
    }
}

/// A commit's files as detection sees them.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every path of the listing as the forge spelled it (for "does this file exist"
    /// when writing, which must not depend on what detection skips).
    pub paths: Vec<String>,
    /// The listing plus the contents of the files detection reads.
    pub tree: RepoTree,
}

/// Lists `head`'s files and reads only those detection needs (one listing plus the
/// manifests, within the read limits). `None` when the commit has no files. Shared by
/// [`sync_repository`] and the `explain` / `analyze` commands.
pub async fn read_snapshot(
    client: &dyn ForgeClient,
    handle: &RepoHandle,
    head: &str,
) -> Result<Option<Snapshot>, JobError> {
    read_snapshot_with(client, handle, head, false).await
}

/// [`read_snapshot`], plus (with `learned`) the READMEs the fingerprints use, in the same
/// batched read.
pub async fn read_snapshot_with(
    client: &dyn ForgeClient,
    handle: &RepoHandle,
    head: &str,
    learned: bool,
) -> Result<Option<Snapshot>, JobError> {
    let listing = client.tree(handle, head).await?;
    if listing.files.is_empty() {
        return Ok(None);
    }
    if listing.truncated {
        warn!(repo = %handle.full_name, "the forge truncated the tree listing; analysing what it returned");
    }
    let paths: Vec<String> = listing.files.iter().map(|f| f.path.clone()).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let too_big: BTreeSet<&str> = listing
        .files
        .iter()
        .filter(|f| f.size.is_some_and(|s| s > MAX_FILE_BYTES))
        .map(|f| f.path.as_str())
        .collect();
    let mut wanted = files_to_read(&refs);
    if learned {
        // After the manifests: if the read cap is hit, the READMEs are what is dropped.
        wanted.extend(crate::analyze::fingerprint::learned_files_to_read(&refs));
    }
    let wanted: Vec<String> = wanted
        .into_iter()
        .filter(|p| !too_big.contains(p.as_str()))
        .take(MAX_FILES_READ)
        .collect();
    let blobs = client.read_files(handle, head, &wanted).await?;
    let mut tree = RepoTree::from_paths(refs.iter().copied());
    for (path, bytes) in &blobs {
        tree.insert_content(path, bytes);
    }
    Ok(Some(Snapshot { paths, tree }))
}

#[allow(clippy::too_many_arguments)]
async fn open_pull_request(
    ctx: &JobsContext,
    db: &Db,
    client: &dyn ForgeClient,
    inst: &InstallationRow,
    repo_row: &RepoRow,
    handle: &RepoHandle,
    default_branch: &str,
    head: &str,
    proposal: &Proposal,
    in_tree: &BTreeSet<&str>,
) -> Result<Outcome, JobError> {
    let now = ctx.clock.now();
    match pull_requests::take_budget_slot(db, inst.id, repo_row.id, ctx.prs_per_hour, now)
        .await
        .context("cannot read the PR budget")?
    {
        Ok(()) => {}
        Err(until) => {
            return Err(JobError::Defer {
                until,
                reason: format!(
                    "this installation opened {} pull requests in the last hour",
                    ctx.prs_per_hour
                ),
            })
        }
    }
    let write = BranchWrite {
        branch: ctx.pr_branch.clone(),
        parent: Parent::Fresh {
            base: head.to_owned(),
        },
        files: file_writes(proposal, |p| in_tree.contains(p)),
        message: proposal.commit_message(),
    };
    let new_head = match client.write_branch(handle, &write).await {
        Ok(h) => h,
        Err(ApiError::WorkflowsPermission { detail }) => {
            warn!(repo = %handle.full_name, %detail, "cannot write workflow files");
            return Ok(Outcome::NoWorkflowsPermission);
        }
        Err(e) => return Err(e.into()),
    };
    record_pushed(db, repo_row.id, proposal, &new_head, now).await?;
    let pr = client
        .open_pull_request(
            handle,
            &NewPullRequest {
                head: ctx.pr_branch.clone(),
                base: default_branch.to_owned(),
                title: proposal.title(),
                body: proposal.body_region(Some(&new_head)),
            },
        )
        .await?;
    // An adopted PR (created by an attempt whose answer was lost) may carry older state.
    if pr_body::parse_state(&pr.body)
        .and_then(|s| s.head)
        .as_deref()
        != Some(new_head.as_str())
    {
        client
            .update_pull_request(
                handle,
                pr.number,
                &PullRequestUpdate {
                    title: None,
                    body: Some(pr_body::merge(
                        Some(&pr.body),
                        &proposal.body_region(Some(&new_head)),
                    )),
                    close: false,
                },
            )
            .await?;
    }
    pull_requests::upsert(
        db,
        repo_row.id,
        pr.number,
        &ctx.pr_branch,
        "open",
        &proposal.hash,
        Some(&new_head),
        Some(&pr.url),
        now,
    )
    .await
    .context("cannot remember the pull request")?;
    info!(repo = %handle.full_name, pr = pr.number, url = %pr.url, "opened pull request");
    Ok(Outcome::Opened(pr.number))
}

#[allow(clippy::too_many_arguments)]
async fn notify_human_commits(
    ctx: &JobsContext,
    db: &Db,
    client: &dyn ForgeClient,
    repo_row: &RepoRow,
    handle: &RepoHandle,
    pr: &crate::forge::client::PullRequest,
    state: Option<BodyState>,
) -> Result<Outcome, JobError> {
    let remembered = pull_requests::latest(db, repo_row.id)
        .await
        .context("cannot read the remembered pull request")?
        .filter(|r| r.number == pr.number as i64);
    // Told once per takeover: the marker is the last commit pipewright wrote, so later
    // pushes to the default branch do not repeat the comment while people own the branch.
    let our_head = state
        .as_ref()
        .and_then(|s| s.head.clone())
        .or_else(|| remembered.as_ref().and_then(|r| r.head_sha.clone()))
        .unwrap_or_default();
    let told = state.as_ref().and_then(|s| s.notified.as_deref()) == Some(our_head.as_str())
        || remembered.as_ref().and_then(|r| r.notified_hash.as_deref()) == Some(our_head.as_str());
    if !told {
        let word = Words(client.forge()).pr();
        let body = format!(
            "The default branch changed and pipewright has an updated proposal for this {word}, \
             but the `{}` branch has commits pipewright did not write, so it will not \
             overwrite them.\n\nTo take the update, merge or close this {word} (pipewright \
             then proposes afresh), or drop the extra commits.",
            ctx.pr_branch
        );
        client
            .comment(
                handle,
                &CommentTarget::PullRequest(pr.number),
                &crate::bot::replies::signed(&body),
            )
            .await?;
        // Remember it in the PR body too, so a lost database does not repeat the comment.
        if let Some(mut st) = state {
            st.notified = Some(our_head.clone());
            if let Some(new_body) = pr_body::replace_state(&pr.body, &st) {
                client
                    .update_pull_request(
                        handle,
                        pr.number,
                        &PullRequestUpdate {
                            title: None,
                            body: Some(new_body),
                            close: false,
                        },
                    )
                    .await?;
            }
        }
        let now = ctx.clock.now();
        if remembered.is_none() {
            pull_requests::upsert(
                db,
                repo_row.id,
                pr.number,
                &ctx.pr_branch,
                "open",
                "",
                None,
                Some(&pr.url),
                now,
            )
            .await
            .context("cannot remember the pull request")?;
        }
        pull_requests::set_notified(db, repo_row.id, pr.number, &our_head, now)
            .await
            .context("cannot remember the notice")?;
    }
    Ok(Outcome::HumanCommits(pr.number))
}

/// The files of a proposal as the console stores them: `[{path, content}]`.
fn files_json(files: &[crate::generate::GeneratedFile]) -> String {
    let v: Vec<serde_json::Value> = files
        .iter()
        .map(|f| serde_json::json!({ "path": f.path, "content": f.content }))
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// A one-line summary of the detected stack, for lists and filters.
pub fn stack_summary(analysis: &crate::analyze::Analysis) -> String {
    let mut parts: Vec<String> = analysis
        .projects
        .iter()
        .map(|p| match p.package_manager {
            Some(pm) => format!("{}/{pm}", p.language),
            None => p.language.to_string(),
        })
        .collect();
    parts.dedup();
    if analysis.dockerfile {
        parts.push("docker".into());
    }
    parts.join(" ")
}

/// Which analysis a console snapshot records: the repository, the commit, its forge, when.
#[derive(Clone, Copy)]
struct SnapshotAt<'a> {
    repository_id: i64,
    head: &'a str,
    forge: Forge,
    now: crate::clock::Millis,
}

/// Stores what this analysis saw and decided, for the console's repository page.
async fn save_console_snapshot(
    db: &Db,
    at: &SnapshotAt<'_>,
    tree: &RepoTree,
    decision: &str,
    proposal: Option<&Proposal>,
) -> Result<(), JobError> {
    let SnapshotAt {
        repository_id,
        head,
        forge,
        now,
    } = *at;
    let analysis = match proposal {
        Some(p) => p.analysis.clone(),
        None => {
            // As the proposal judged it: CI counts only where it runs on this forge.
            let mut a = crate::analyze::analyze(tree);
            a.judge_for(forge);
            a
        }
    };
    let repo_config = crate::repo_config::CONFIG_PATHS
        .iter()
        .find_map(|p| {
            tree.text(p)
                .map(|t| serde_json::json!({ "path": p, "text": t }))
        })
        .map(|v| v.to_string());
    let snapshot = crate::db::console::Snapshot {
        sha: Some(head.to_owned()),
        stack: Some(stack_summary(&analysis)),
        analysis: Some(serde_json::to_string(&analysis).context("cannot serialise the analysis")?),
        explain: Some(crate::analyze::render_text(&analysis, true)),
        repo_config,
        decision: Some(decision.to_owned()),
        proposal_hash: proposal.map(|p| p.hash.clone()),
        proposal: proposal.map(|p| files_json(&p.files)),
        pushed: None,
        pushed_sha: None,
        analyzed_at: now,
    };
    crate::db::console::save_snapshot(db, repository_id, &snapshot)
        .await
        .context("cannot store the analysis snapshot")?;
    Ok(())
}

/// Remembers the files just written to pipewright's branch (the console diffs against them).
async fn record_pushed(
    db: &Db,
    repository_id: i64,
    proposal: &Proposal,
    head: &str,
    now: crate::clock::Millis,
) -> Result<(), JobError> {
    crate::db::console::record_pushed(db, repository_id, &files_json(&proposal.files), head, now)
        .await
        .context("cannot record the pushed files")?;
    Ok(())
}

fn file_writes(proposal: &Proposal, exists: impl Fn(&str) -> bool) -> Vec<FileWrite> {
    proposal
        .files
        .iter()
        .map(|f| FileWrite {
            path: f.path.clone(),
            content: Some(f.content.clone()),
            exists: exists(&f.path),
        })
        .collect()
}

/// Did pipewright itself close this PR (`ignore`)? Then `unignore` may propose again.
fn closed_by_bot(remembered: &Option<pull_requests::PrRow>, number: u64) -> bool {
    remembered
        .as_ref()
        .is_some_and(|r| r.number == number as i64 && r.closed_by_bot)
}

/// Bitbucket abbreviates commit hashes in some answers: compare on the common prefix.
pub fn same_commit(a: &str, b: &str) -> bool {
    let n = a.len().min(b.len());
    n >= 7 && a[..n].eq_ignore_ascii_case(&b[..n])
}

/// Resolves the org's reusable workflow the siblings call (`…@v3`) to the commit it names
/// now, so the proposal calls it pinned, like every action pipewright writes. A ref that
/// cannot be resolved (the installation cannot read that repository, or the ref is gone)
/// leaves the call unpinned, and the plan then writes the job out instead of calling it.
async fn pin_reusable_workflow(client: &dyn ForgeClient, adoption: &mut crate::learn::Adoption) {
    let Some(call) = adoption.reusable_workflow.as_mut() else {
        return;
    };
    if call.is_pinned() || call.pinned.is_some() {
        return;
    }
    match client
        .resolve_commit(&call.repository(), call.reference())
        .await
    {
        Ok(Some(sha)) => call.pinned = Some(sha),
        Ok(None) => {
            warn!(workflow = %call.uses, "the org's reusable workflow cannot be resolved to a commit; not calling it");
        }
        Err(e) => {
            warn!(workflow = %call.uses, error = %e, "resolving the org's reusable workflow failed; not calling it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviated_hashes_match_their_full_form() {
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert!(same_commit(full, "0123456789ab"));
        assert!(same_commit(full, full));
        assert!(!same_commit(full, "1123456789ab"));
        assert!(!same_commit(full, "012"));
    }

    #[test]
    fn every_outcome_has_its_console_class() {
        use crate::db::pull_requests::outcome_class;
        let class = |o: Outcome| outcome_class(false, None, Some(&o.describe(Forge::Github)));
        assert_eq!(class(Outcome::Skipped("archived".into())), Some("skipped"));
        assert_eq!(class(Outcome::ConfigError("x".into())), Some("skipped"));
        assert_eq!(class(Outcome::NoWorkflowsPermission), Some("failed"));
        assert_eq!(
            outcome_class(false, None, Some("failed: HTTP 500")),
            Some("failed")
        );
        assert_eq!(
            outcome_class(
                false,
                Some(("open", false)),
                Some(&Outcome::Opened(3).describe(Forge::Gitlab))
            ),
            Some("pr_open")
        );
        assert_eq!(
            outcome_class(
                false,
                Some(("closed", false)),
                Some(&Outcome::ClosedByPerson(3).describe(Forge::Gitlab))
            ),
            Some("closed")
        );
        assert_eq!(
            outcome_class(false, Some(("merged", false)), Some("skipped: has CI")),
            Some("merged")
        );
        assert_eq!(
            outcome_class(true, Some(("open", false)), None),
            Some("ignored")
        );
        assert_eq!(outcome_class(false, None, None), None);
    }

    #[test]
    fn outcomes_read_plainly_in_each_forges_words() {
        assert_eq!(
            Outcome::Opened(3).describe(Forge::Github),
            "opened pull request #3"
        );
        assert_eq!(
            Outcome::Opened(3).describe(Forge::Gitlab),
            "opened merge request !3"
        );
        assert_eq!(
            Outcome::ClosedByPerson(3).describe(Forge::Gitlab),
            "!3 was closed with this proposal: not reopened"
        );
        assert!(Outcome::NoWorkflowsPermission
            .describe(Forge::Github)
            .contains("workflows: write"));
    }
}
