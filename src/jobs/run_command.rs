//! `run_command`: the slash commands of one comment.
//!
//! In order: parse (only lines an edit added), drop bots, find the installation and the
//! repository, claim the comment so it is answered once, check that the author may
//! write to the repository, acknowledge (a reaction; a short comment on Bitbucket, which
//! has none), run every command, then post ONE reply with every command's answer and
//! react 👍 (or 😕 when a command failed).
//!
//! Commands that change the pull request (`add`, `remove`, `regenerate`) share one
//! re-analysis at the end, so a comment with several of them makes one commit, not one
//! per line. Forge errors propagate as [`JobError`]s so rate limits defer the job and
//! transient faults retry it; every step before the reply is idempotent (settings are
//! set, not toggled; the analysis compares hashes; queued jobs are de-duplicated), so a
//! retried run converges on the same reply.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::analyze_repo::{forge_provider, read_snapshot, sync_repository, Outcome, Snapshot};
use super::follow_up::{AnalyzeReason, AnalyzeRepo, RunCommand};
use super::JobsContext;
use crate::analyze::{analyze, render_text, RepoTree};
use crate::bot::commands::{parse_comment, Command, ParsedLine, ParserConfig};
use crate::bot::proposal::{self, Decision, RepoSettings, Skip};
use crate::bot::replies::{self, BotPrRef, ConfigFile, ConfigView, Section, Verdict};
use crate::db::installations::{self, InstallationRow, RepoRow};
use crate::db::pull_requests;
use crate::db::Db;
use crate::forge::client::{
    ForgeClient, Permission, PrState, PullRequestUpdate, Reaction, RepoHandle,
};
use crate::forge::event::{Comment, CommentAction, CommentTarget};
use crate::forge::Forge;
use crate::generate::Feature;
use crate::queue::registry::JobRun;
use crate::queue::{store, JobError, NewJob};
use crate::repo_config;

/// Why an empty repository is not analysed (the words `analyze_repo` uses).
const EMPTY: &str = "empty (waiting for the first push)";

/// Runs the commands of one comment (the `run_command` job).
pub(super) async fn run(ctx: &JobsContext, run: &JobRun, job: RunCommand) -> Result<(), JobError> {
    let db = &run.db;
    let comment = &job.comment;
    let lines = new_command_lines(comment, &parser_config(&ctx.command_word));
    if lines.is_empty() {
        debug!(comment = %comment.comment_id, "no new command lines: nothing to do");
        return Ok(());
    }
    // `handle_event` filters bots already; checked again because a bot answering a bot is
    // how reply loops start.
    if comment.author.is_bot || ctx.forges.is_own_account(job.forge, &comment.author.login) {
        debug!(author = %comment.author.login, "comment by a bot: ignored");
        return Ok(());
    }
    let Some(inst_ext) = &job.installation else {
        info!("no installation in the event: nothing to act as");
        return Ok(());
    };
    let inst = installations::get_installation(db, job.forge, inst_ext.as_str())
        .await
        .context("cannot read the installation")?;
    let Some(inst) = inst.filter(|i| i.state == "active") else {
        info!(installation = %inst_ext, "installation is not active: commands ignored");
        return Ok(());
    };
    let repo_row = installations::get_repo(db, job.forge, comment.repo.id.as_str())
        .await
        .context("cannot read the repository")?;
    let Some(repo_row) = repo_row.filter(|r| r.state == "active") else {
        info!(repo = %comment.repo.full_name, "repository unknown or not active: commands ignored");
        return Ok(());
    };
    if repo_row.installation_id.is_some_and(|id| id != inst.id) {
        // Acting with another tenant's credentials on this repository would be wrong.
        warn!(repo = %repo_row.full_name, "repository belongs to another installation: commands ignored");
        return Ok(());
    }
    let body_hash = hex::encode(Sha256::digest(comment.body.as_bytes()));
    if !claim(
        db,
        job.forge,
        &comment.comment_id,
        &body_hash,
        run.id,
        ctx.clock.now(),
    )
    .await?
    {
        info!(comment = %comment.comment_id, "commands of this comment already answered");
        return Ok(());
    }
    let client = ctx
        .forge_client(job.forge, inst_ext.as_str(), inst.account.as_deref())
        .map_err(JobError::from)?;
    let handle = RepoHandle {
        id: comment.repo.id.as_str().to_owned(),
        full_name: comment.repo.full_name.clone(),
    };
    let mut session = Session {
        ctx,
        run,
        db,
        client: client.as_ref(),
        inst: &inst,
        repo_row: &repo_row,
        handle: &handle,
        job: &job,
        bot_pr: None,
        repo: None,
    };
    let result = session.answer(&lines).await;
    ctx.forges
        .totals()
        .observe_job(job.forge, "run_command", client.calls());
    match &result {
        Ok(()) => {
            info!(repo = %handle.full_name, comment = %comment.comment_id, commands = lines.len(), api_calls = client.calls(), "commands answered")
        }
        Err(e) => {
            info!(repo = %handle.full_name, comment = %comment.comment_id, api_calls = client.calls(), error = %e, "commands stopped")
        }
    }
    result
}

/// What counts as a command in this deployment: `/<word>`, `@<word>`, `@<word>[bot]`.
fn parser_config(command_word: &str) -> ParserConfig {
    ParserConfig {
        command_word: command_word.to_owned(),
        mentions: vec![command_word.to_owned(), format!("{command_word}[bot]")],
    }
}

/// The command lines to run: all of them for a new comment; for an edit, only lines the
/// previous body did not have, so fixing a typo in one command does not re-run the
/// others. (An edit without the previous body, as GitLab sends, runs them all: the
/// author is most likely fixing a command.)
fn new_command_lines(comment: &Comment, cfg: &ParserConfig) -> Vec<ParsedLine> {
    let lines = parse_comment(&comment.body, cfg);
    match &comment.action {
        CommentAction::Edited {
            previous_body: Some(previous),
        } => {
            let before: std::collections::HashSet<String> = parse_comment(previous, cfg)
                .into_iter()
                .map(|l| l.raw.trim().to_owned())
                .collect();
            lines
                .into_iter()
                .filter(|l| !before.contains(l.raw.trim()))
                .collect()
        }
        CommentAction::Created | CommentAction::Edited { .. } => lines,
    }
}

/// Whether this job answers the comment: the first job to see this body, or a retry of
/// that job (after a rate limit or a transient error it must carry on, not go quiet).
/// A redelivered or re-queued comment is another job and finds the body claimed.
///
/// `mark_command_executed` can only insert-if-absent, so the claimer also records a
/// second row keyed by its job id, and a job that finds the body claimed asks "is that
/// row mine?" by trying to insert it. Failures between the writes err towards silence,
/// not a second reply: a claimer whose second write fails is not recognised on retry
/// and stays quiet. (A duplicate needs a write that commits and then reports an error;
/// a `job_id` column read back after the insert would close that gap too.)
async fn claim(
    db: &Db,
    forge: Forge,
    comment_id: &str,
    body_hash: &str,
    job_id: i64,
    now: crate::clock::Millis,
) -> Result<bool, JobError> {
    let owner_key = format!("{body_hash}:job:{job_id}");
    let claimed = pull_requests::mark_command_executed(db, forge, comment_id, body_hash, now)
        .await
        .context("cannot record the command")?;
    let owner_row_is_new =
        pull_requests::mark_command_executed(db, forge, comment_id, &owner_key, now)
            .await
            .context("cannot record the command's job")?;
    // Claimed now, or claimed by this job in an earlier attempt (its row existed).
    Ok(claimed || !owner_row_is_new)
}

/// pipewright's pull request as far as this comment is concerned.
#[derive(Debug, Clone)]
struct BotPr {
    number: u64,
    url: Option<String>,
    state: PrState,
}

/// Where the comment stands relative to pipewright's pull request.
#[derive(Debug, Clone)]
struct BotPrCheck {
    /// The comment is on pipewright's pull request.
    here: bool,
    /// pipewright's pull request, when it has one.
    pr: Option<BotPr>,
}

/// The default branch, read once per comment and only by commands that need it.
#[derive(Debug, Clone)]
enum RepoRead {
    /// The default branch's snapshot.
    Ready {
        default_branch: String,
        head: String,
        /// Read on first use (`config` needs only the configuration file).
        snapshot: Option<Snapshot>,
    },
    /// Not analysed, and why (archived, a fork, empty).
    Unavailable(String),
}

/// The answer to one command line before it becomes a reply section.
#[derive(Debug)]
struct Step {
    ok: bool,
    body: String,
    /// The command changed what pipewright proposes: re-analyse after all commands.
    sync: bool,
}

impl Step {
    fn done(body: String) -> Step {
        Step {
            ok: true,
            body,
            sync: false,
        }
    }

    fn failed(body: String) -> Step {
        Step {
            ok: false,
            body,
            sync: false,
        }
    }
}

/// One comment being answered, with what its commands read, cached, so `explain` and
/// `analyze` in one comment read the repository once.
struct Session<'a> {
    ctx: &'a JobsContext,
    run: &'a JobRun,
    db: &'a Db,
    client: &'a dyn ForgeClient,
    inst: &'a InstallationRow,
    repo_row: &'a RepoRow,
    handle: &'a RepoHandle,
    job: &'a RunCommand,
    bot_pr: Option<BotPrCheck>,
    repo: Option<RepoRead>,
}

impl Session<'_> {
    fn comment(&self) -> &Comment {
        &self.job.comment
    }

    fn forge(&self) -> Forge {
        self.client.forge()
    }

    /// Authorises, acknowledges, runs every command and posts the one reply.
    async fn answer(&mut self, lines: &[ParsedLine]) -> Result<(), JobError> {
        let comment = self.comment().clone();
        let permission = self.client.permission(self.handle, &comment.author).await?;
        if permission < Permission::Write {
            info!(author = %comment.author.login, ?permission, "commands refused: no write access");
            self.client
                .comment(
                    self.handle,
                    &comment.target,
                    &replies::signed(&replies::not_authorized(&comment.author.login)),
                )
                .await?;
            self.react_at_last(Reaction::Confused).await;
            return Ok(());
        }
        self.acknowledge(lines).await?;

        let mut sections = Vec::with_capacity(lines.len());
        let mut last_sync = None;
        for line in lines {
            let step = match &line.result {
                Ok(cmd) => {
                    let r = self.command(cmd).await;
                    settle(self.run, r)?
                }
                Err(e) => Step::failed(replies::parse_error(&self.ctx.command_word, e)),
            };
            if step.sync {
                last_sync = Some(sections.len());
            }
            sections.push(Section {
                command: line.raw.trim().to_owned(),
                ok: step.ok,
                body: step.body,
            });
        }
        if let Some(i) = last_sync {
            let step = match self.sync().await {
                Ok(outcome) => {
                    let failed = matches!(
                        outcome,
                        Outcome::ConfigError(_) | Outcome::NoWorkflowsPermission
                    );
                    Step {
                        ok: !failed,
                        body: replies::synced(&outcome.describe(self.forge())),
                        sync: false,
                    }
                }
                Err(e) => settle(self.run, Err(e))?,
            };
            let sec = &mut sections[i];
            sec.ok &= step.ok;
            sec.body = if sec.body.is_empty() {
                step.body
            } else {
                format!("{}\n\n{}", sec.body, step.body)
            };
        }

        let all_ok = sections.iter().all(|s| s.ok);
        // The reply is the one write that must not repeat, so it is the last fallible
        // step; the reaction after it is cosmetic.
        self.client
            .comment(
                self.handle,
                &comment.target,
                &replies::signed(&replies::results(&sections)),
            )
            .await?;
        self.react_at_last(if all_ok {
            Reaction::ThumbsUp
        } else {
            Reaction::Confused
        })
        .await;
        Ok(())
    }

    /// Tells the author the comment was seen: a reaction, or on Bitbucket (no reactions)
    /// a short comment, but only when some command takes a while; `help` and parse
    /// errors are answered at once anyway.
    async fn acknowledge(&self, lines: &[ParsedLine]) -> Result<(), JobError> {
        let comment = self.comment();
        if self.forge() != Forge::Bitbucket {
            return Ok(self
                .client
                .react(
                    self.handle,
                    &comment.target,
                    &comment.comment_id,
                    Reaction::Eyes,
                )
                .await?);
        }
        let slow: Vec<&str> = lines
            .iter()
            .filter(|l| matches!(&l.result, Ok(c) if *c != Command::Help))
            .map(|l| l.raw.as_str())
            .collect();
        if !slow.is_empty() {
            self.client
                .comment(
                    self.handle,
                    &comment.target,
                    &replies::signed(&replies::working_on(&slow)),
                )
                .await?;
        }
        Ok(())
    }

    /// A last reaction: its failure is logged, not retried, because retrying would post
    /// the reply again for a cosmetic detail.
    async fn react_at_last(&self, reaction: Reaction) {
        let comment = self.comment();
        if let Err(e) = self
            .client
            .react(self.handle, &comment.target, &comment.comment_id, reaction)
            .await
        {
            warn!(error = %e, ?reaction, "cannot react to the comment");
        }
    }

    /// Runs one parsed command.
    async fn command(&mut self, cmd: &Command) -> Result<Step, JobError> {
        if cmd.requires_bot_pr() {
            let (ctx, forge) = (self.ctx, self.forge());
            let check = self.bot_pr().await?;
            if !check.here {
                let pr = check.pr.as_ref().map(|p| pr_ref(forge, p));
                return Ok(Step::failed(replies::needs_bot_pr(
                    &ctx.command_word,
                    forge,
                    cmd.name(),
                    pr.as_ref(),
                )));
            }
        }
        match cmd {
            Command::Help => Ok(Step::done(replies::help(
                &self.ctx.command_word,
                self.forge(),
            ))),
            Command::Analyze => self.analyze().await,
            Command::Explain => self.explain().await,
            Command::Regenerate => Ok(Step {
                ok: true,
                body: String::new(),
                sync: true,
            }),
            Command::Add { feature, options } => self.switch(feature, options, true).await,
            Command::Remove { feature, options } => self.switch(feature, options, false).await,
            Command::Ignore => self.ignore().await,
            Command::Unignore => self.unignore().await,
            Command::Config => self.config().await,
        }
    }

    /// Whether the comment is on pipewright's pull request: the one the database
    /// remembers, or else the newest on pipewright's branch (a lost database, a PR
    /// adopted by a later run).
    async fn bot_pr(&mut self) -> Result<&BotPrCheck, JobError> {
        if self.bot_pr.is_none() {
            let target = match self.comment().target {
                CommentTarget::PullRequest(n) => Some(n),
                CommentTarget::Issue(_) => None,
            };
            let remembered = pull_requests::latest(self.db, self.repo_row.id)
                .await
                .context("cannot read the remembered pull request")?
                .and_then(|r| {
                    Some(BotPr {
                        number: u64::try_from(r.number).ok()?,
                        state: match r.state.as_str() {
                            "open" => PrState::Open,
                            "merged" => PrState::Merged,
                            _ => PrState::Closed,
                        },
                        url: r.url,
                    })
                });
            let check = match remembered {
                Some(pr) if target == Some(pr.number) => BotPrCheck {
                    here: true,
                    pr: Some(pr),
                },
                remembered => {
                    let found = self
                        .client
                        .find_pull_request(self.handle, &self.ctx.pr_branch)
                        .await?
                        .map(|p| BotPr {
                            number: p.number,
                            state: p.state,
                            url: Some(p.url),
                        });
                    BotPrCheck {
                        here: target.is_some() && found.as_ref().map(|p| p.number) == target,
                        pr: found.or(remembered),
                    }
                }
            };
            self.bot_pr = Some(check);
        }
        Ok(self.bot_pr.as_ref().expect("set above"))
    }

    /// The default branch's head, read once.
    async fn repo_read(&mut self) -> Result<&mut RepoRead, JobError> {
        if self.repo.is_none() {
            let remote = self.client.repository(self.handle).await?;
            let read = match remote.skip_reason() {
                Some(why) => RepoRead::Unavailable(why.to_owned()),
                None => {
                    let branch = remote.default_branch.unwrap_or_else(|| "main".into());
                    match self.client.branch_head(self.handle, &branch).await? {
                        Some(head) => RepoRead::Ready {
                            default_branch: branch,
                            head,
                            snapshot: None,
                        },
                        None => RepoRead::Unavailable(EMPTY.into()),
                    }
                }
            };
            self.repo = Some(read);
        }
        Ok(self.repo.as_mut().expect("set above"))
    }

    /// The default branch's name and snapshot, read once; `Err(reason)` when the
    /// repository is not analysed (archived, a fork, empty).
    async fn snapshot(&mut self) -> Result<Result<(&str, &Snapshot), String>, JobError> {
        let (client, handle) = (self.client, self.handle);
        let read = self.repo_read().await?;
        if let RepoRead::Ready {
            head,
            snapshot: snapshot @ None,
            ..
        } = read
        {
            match read_snapshot(client, handle, head).await? {
                Some(s) => *snapshot = Some(s),
                None => *read = RepoRead::Unavailable(EMPTY.into()),
            }
        }
        Ok(match read {
            RepoRead::Ready {
                default_branch,
                snapshot: Some(s),
                ..
            } => Ok((default_branch.as_str(), &*s)),
            RepoRead::Ready { snapshot: None, .. } => Err(EMPTY.into()),
            RepoRead::Unavailable(why) => Err(why.clone()),
        })
    }

    /// The repository's stored state (read each time: an earlier command of the same
    /// comment may have changed it).
    async fn bot_state(&self) -> Result<pull_requests::RepoBotState, JobError> {
        Ok(pull_requests::repo_state(self.db, self.repo_row.id)
            .await
            .context("cannot read the repository's bot state")?)
    }

    /// `analyze`: the detected stack and what would be proposed.
    async fn analyze(&mut self) -> Result<Step, JobError> {
        let state = self.bot_state().await?;
        let settings = RepoSettings::from_json(state.settings.as_deref());
        let (ctx, forge) = (self.ctx, self.forge());
        let body = match self.snapshot().await? {
            Ok((branch, snap)) => replies::analysis(
                &ctx.command_word,
                forge,
                &judged(&snap.tree, forge),
                &verdict(ctx, forge, &snap.tree, branch, &settings),
                state.ignored,
            ),
            Err(why) => replies::analysis(
                &ctx.command_word,
                forge,
                &judged(&RepoTree::default(), forge),
                &Verdict::NotAnalysed(why),
                state.ignored,
            ),
        };
        Ok(Step::done(body))
    }

    /// `explain`: the evidence behind detection and what each file does.
    async fn explain(&mut self) -> Result<Step, JobError> {
        let state = self.bot_state().await?;
        let settings = RepoSettings::from_json(state.settings.as_deref());
        let (ctx, forge) = (self.ctx, self.forge());
        let body = match self.snapshot().await? {
            Ok((branch, snap)) => {
                let report = render_text(&judged(&snap.tree, forge), true);
                // An invalid file shows as the verdict; there is no target then.
                let target = repo_config::load(&snap.tree).ok().map(|c| {
                    proposal::effective_target(
                        forge_provider(forge),
                        branch,
                        c.as_ref().map(|(_, c)| c),
                        &settings,
                    )
                });
                let verdict = verdict(ctx, forge, &snap.tree, branch, &settings);
                replies::explain(&report, forge, &verdict, target.as_ref())
            }
            Err(why) => replies::explain("", forge, &Verdict::NotAnalysed(why), None),
        };
        let runs = self.first_runs().await?;
        let history = crate::bot::first_run::history(
            forge,
            &runs.iter().map(|r| r.view()).collect::<Vec<_>>(),
        );
        if history.is_empty() {
            return Ok(Step::done(body));
        }
        Ok(Step::done(format!("{body}\n\n{history}")))
    }

    /// The first CI runs recorded for the repository's pull request (the latest one).
    async fn first_runs(&self) -> Result<Vec<crate::db::first_runs::FirstRun>, JobError> {
        let Some(pr) = crate::db::pull_requests::latest(self.db, self.repo_row.id)
            .await
            .context("cannot read the pull request")?
        else {
            return Ok(Vec::new());
        };
        Ok(
            crate::db::first_runs::for_pr(self.db, self.repo_row.id, pr.number as u64)
                .await
                .context("cannot read first-run outcomes")?,
        )
    }

    /// `add` / `remove`: store the choice; the re-analysis runs after all commands.
    async fn switch(&self, name: &str, options: &[String], on: bool) -> Result<Step, JobError> {
        if name.eq_ignore_ascii_case("deploy") {
            return self.switch_deploy(options, on).await;
        }
        let Some(feature) = replies::parse_feature(name) else {
            return Ok(Step::failed(replies::unknown_feature(name)));
        };
        if !options.is_empty() {
            return Ok(Step::failed(replies::unexpected_options(feature, options)));
        }
        let state = self.bot_state().await?;
        let mut settings = RepoSettings::from_json(state.settings.as_deref());
        let previous = stored_choice(&settings, feature);
        if previous != Some(on) {
            settings.set(feature, on);
            pull_requests::set_settings(self.db, self.repo_row.id, &settings.to_json())
                .await
                .context("cannot store the settings")?;
        }
        Ok(Step {
            ok: true,
            body: replies::feature_switched(feature, on, previous),
            sync: true,
        })
    }

    /// `add deploy <target> [--env E]… [--strategy S] [--region R]` / `remove deploy
    /// <target>`: store the choice (the re-analysis adds or drops the deploy files), and
    /// on `add` write the stored credentials to the forge as CI secrets, audited.
    async fn switch_deploy(&self, options: &[String], on: bool) -> Result<Step, JobError> {
        let choice = match replies::parse_deploy_options(options, on) {
            Ok(c) => c,
            Err(msg) => return Ok(Step::failed(msg)),
        };
        let target: crate::deploy::DeployTarget = match choice.target.parse() {
            Ok(t) => t,
            Err(e) => return Ok(Step::failed(replies::deploy_error(&e))),
        };
        let state = self.bot_state().await?;
        let mut settings = RepoSettings::from_json(state.settings.as_deref());
        let mut choice = choice;
        choice.target = target.as_str().to_owned();
        settings.set_deploy(choice.clone());
        pull_requests::set_settings(self.db, self.repo_row.id, &settings.to_json())
            .await
            .context("cannot store the settings")?;
        if !on {
            return Ok(Step {
                ok: true,
                body: replies::deploy_removed(target),
                sync: true,
            });
        }
        let written = self.write_deploy_secrets(target, &choice).await?;
        Ok(Step {
            ok: true,
            body: replies::deploy_added(self.forge(), target, &choice, &written),
            sync: true,
        })
    }

    /// Writes the repository's stored credentials of `target` to the forge (names in the
    /// audit trail, never values). Returns what was written and what is missing.
    async fn write_deploy_secrets(
        &self,
        target: crate::deploy::DeployTarget,
        choice: &proposal::DeployChoice,
    ) -> Result<replies::SecretsOutcome, JobError> {
        use crate::credentials::{self, CredentialError};
        let resolved = match credentials::resolve_for_repo(
            self.db,
            self.ctx.credentials_key.as_ref(),
            self.repo_row.id,
            target,
        )
        .await
        {
            Ok(r) => r,
            Err(CredentialError::NoKey) => {
                return Ok(replies::SecretsOutcome::NoKey {
                    missing: target
                        .spec()
                        .credentials
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name)
                        .collect(),
                })
            }
            // A wrong key or a tampered row is an operator's problem: say so in the
            // log (no value is in the error) and in the reply, change nothing.
            Err(e @ CredentialError::Crypto(_)) => {
                tracing::error!(repo = %self.handle.full_name, error = %e, "stored deploy credentials cannot be opened");
                return Ok(replies::SecretsOutcome::Unreadable);
            }
            Err(e) => return Err(JobError::Retry(anyhow::Error::new(e))),
        };
        let missing = credentials::missing(target, &resolved);
        if resolved.is_empty() {
            return Ok(replies::SecretsOutcome::Written {
                names: Vec::new(),
                unmasked: Vec::new(),
                missing,
            });
        }
        let secrets: Vec<crate::forge::client::CiSecret> = resolved
            .iter()
            .map(|r| crate::forge::client::CiSecret {
                name: r.field.name.to_owned(),
                value: r.wire_value(),
                secret: r.field.secret,
            })
            .collect();
        let envs: Vec<&str> = if choice.environments.is_empty() {
            crate::deploy::Environment::ALL
                .iter()
                .map(|e| e.as_str())
                .collect()
        } else {
            choice.environments.iter().map(|e| e.as_str()).collect()
        };
        let writes = match self
            .client
            .write_ci_secrets(self.handle, &envs, &secrets)
            .await
        {
            Ok(w) => w,
            // The forge refused (the App lacks `secrets: write`, the token lacks the
            // scope): a person must fix the installation; retrying changes nothing.
            Err(
                e @ crate::forge::client::ApiError::Rejected {
                    status: 401 | 403 | 404,
                    ..
                },
            ) => {
                tracing::warn!(repo = %self.handle.full_name, error = %e, "the forge refused the deploy secrets");
                return Ok(replies::SecretsOutcome::Refused {
                    status: e.status().unwrap_or_default(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let names: Vec<String> = secrets.iter().map(|s| s.name.clone()).collect();
        let unmasked: Vec<String> = writes
            .iter()
            .filter(|w| !w.masked && secrets.iter().any(|s| s.secret && s.name == w.name))
            .map(|w| w.name.clone())
            .collect();
        let mut audit = crate::db::audit::AuditEntry::new(
            crate::db::audit::Actor::forge(self.comment().author.login.clone()),
            "deploy.secrets_written",
        );
        audit.forge = Some(self.forge().as_str().to_owned());
        audit.installation = Some(self.inst.external_id.clone());
        audit.repository = Some(self.repo_row.external_id.clone());
        audit.repository_name = Some(self.repo_row.full_name.clone());
        audit.target = Some(target.as_str().to_owned());
        audit.details = serde_json::json!({
            "names": names,
            "scopes": writes.iter().map(|w| w.scope.clone()).collect::<std::collections::BTreeSet<_>>(),
            "unmasked": unmasked,
        });
        crate::db::audit::record(self.db, &audit, self.ctx.clock.now())
            .await
            .context("cannot record the audit entry")?;
        tracing::info!(repo = %self.handle.full_name, target = %target, count = names.len(), "deploy secrets written to the forge");
        Ok(replies::SecretsOutcome::Written {
            names,
            unmasked,
            missing,
        })
    }

    /// The re-analysis that `add`, `remove` and `regenerate` ask for (once per comment).
    async fn sync(&mut self) -> Result<Outcome, JobError> {
        let outcome = sync_repository(
            self.ctx,
            self.db,
            self.client,
            self.inst,
            self.repo_row,
            self.handle,
            None,
        )
        .await?;
        pull_requests::record_outcome(
            self.db,
            self.repo_row.id,
            &outcome.describe(self.forge()),
            None,
            self.ctx.clock.now(),
        )
        .await
        .context("cannot record the outcome")?;
        // What was read before the sync may be stale now.
        self.bot_pr = None;
        Ok(outcome)
    }

    /// `ignore`: never propose here again, and close pipewright's pull request.
    async fn ignore(&mut self) -> Result<Step, JobError> {
        pull_requests::set_ignored(self.db, self.repo_row.id, true)
            .await
            .context("cannot store `ignore`")?;
        let open = self.bot_pr().await?.pr.clone().filter(|p| {
            p.state == PrState::Open
                && self.comment().target == CommentTarget::PullRequest(p.number)
        });
        if let Some(pr) = &open {
            self.client
                .update_pull_request(
                    self.handle,
                    pr.number,
                    &PullRequestUpdate {
                        close: true,
                        ..PullRequestUpdate::default()
                    },
                )
                .await?;
            pull_requests::mark_closed_by_bot(
                self.db,
                self.repo_row.id,
                pr.number,
                self.ctx.clock.now(),
            )
            .await
            .context("cannot remember the closed pull request")?;
            if let Some(p) = self.bot_pr.as_mut().and_then(|c| c.pr.as_mut()) {
                p.state = PrState::Closed;
            }
        }
        let closed = open.map(|p| BotPr {
            state: PrState::Closed,
            ..p
        });
        let closed = closed.as_ref().map(|p| pr_ref(self.forge(), p));
        Ok(Step::done(replies::ignored(
            &self.ctx.command_word,
            closed.as_ref(),
        )))
    }

    /// `unignore`: propose again, starting with a fresh analysis.
    async fn unignore(&mut self) -> Result<Step, JobError> {
        pull_requests::set_ignored(self.db, self.repo_row.id, false)
            .await
            .context("cannot clear `ignore`")?;
        let job = &self.job;
        let queued = store::enqueue(
            self.db,
            &NewJob::of(&AnalyzeRepo {
                forge: job.forge,
                installation: job.installation.clone(),
                repo: job.comment.repo.clone(),
                reason: AnalyzeReason::Command,
                sha: None,
            }),
            self.ctx.clock.now(),
        )
        .await
        .context("cannot queue the analysis")?
        .is_some();
        let closed = self
            .bot_pr()
            .await?
            .pr
            .clone()
            .filter(|p| p.state == PrState::Closed);
        let closed = closed.as_ref().map(|p| pr_ref(self.forge(), p));
        Ok(Step::done(replies::unignored(queued, closed.as_ref())))
    }

    /// `config`: the repository file, the stored choices, and what generation uses.
    async fn config(&mut self) -> Result<Step, JobError> {
        let state = self.bot_state().await?;
        let settings = RepoSettings::from_json(state.settings.as_deref());
        let (ctx, client, handle) = (self.ctx, self.client, self.handle);
        let provider = forge_provider(self.forge());
        let stored_branch = self.repo_row.default_branch.clone();
        let fetched: RepoTree;
        // Only the configuration file is read, unless the tree is at hand already.
        let (branch, tree) = match self.repo_read().await? {
            RepoRead::Unavailable(why) => (
                stored_branch.unwrap_or_else(|| "main".into()),
                Err(why.clone()),
            ),
            RepoRead::Ready {
                default_branch,
                snapshot: Some(s),
                ..
            } => (default_branch.clone(), Ok(&s.tree)),
            RepoRead::Ready {
                default_branch,
                head,
                snapshot: None,
            } => {
                let paths: Vec<String> = repo_config::CONFIG_PATHS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect();
                let blobs = client.read_files(handle, head, &paths).await?;
                let mut tree = RepoTree::from_paths(blobs.iter().map(|(p, _)| p.clone()));
                for (path, bytes) in &blobs {
                    tree.insert_content(path, bytes);
                }
                fetched = tree;
                (default_branch.clone(), Ok(&fetched))
            }
        };
        let loaded = tree.map(|t| repo_config::load(t).map_err(|e| e.to_string()));
        let file = match &loaded {
            Err(why) => ConfigFile::Unread(why),
            Ok(Ok(None)) => ConfigFile::Absent,
            Ok(Ok(Some((path, config)))) => ConfigFile::Found { path, config },
            Ok(Err(e)) => ConfigFile::Invalid(e),
        };
        let target = match &loaded {
            // An invalid file builds nothing, so there is no target to show.
            Ok(Err(_)) => None,
            Ok(Ok(c)) => Some(proposal::effective_target(
                provider,
                &branch,
                c.as_ref().map(|(_, c)| c),
                &settings,
            )),
            Err(_) => Some(proposal::effective_target(
                provider, &branch, None, &settings,
            )),
        };
        Ok(Step::done(replies::config(&ConfigView {
            command_word: &ctx.command_word,
            file,
            settings: &settings,
            ignored: state.ignored,
            forge: self.forge(),
            forge_provider: provider,
            target: target.as_ref(),
            pr_branch: &ctx.pr_branch,
        })))
    }
}

/// The analysis of `tree` as it stands on `forge` (which CI runs there).
fn judged(tree: &RepoTree, forge: Forge) -> crate::analyze::Analysis {
    let mut a = analyze(tree);
    a.judge_for(forge);
    a
}

/// What pipewright would propose for `tree` with `settings`.
fn verdict(
    ctx: &JobsContext,
    forge: Forge,
    tree: &RepoTree,
    default_branch: &str,
    settings: &RepoSettings,
) -> Verdict {
    match proposal::propose(tree, forge, default_branch, &ctx.command_word, settings) {
        Ok(Decision::Propose(p)) => Verdict::Propose {
            provider: p.provider,
            files: p.files.iter().map(|f| f.path.clone()).collect(),
        },
        Ok(Decision::Skip(Skip::HasCi { files })) => Verdict::HasCi { files },
        Ok(Decision::Skip(Skip::NothingToBuild)) => Verdict::NothingToBuild,
        Err(e) => Verdict::ConfigError(e.to_string()),
    }
}

/// How replies refer to pipewright's pull request.
fn pr_ref(forge: Forge, pr: &BotPr) -> BotPrRef<'_> {
    BotPrRef {
        forge,
        number: pr.number,
        url: pr.url.as_deref(),
        state: pr.state,
    }
}

/// The choice an earlier `add` / `remove` stored for `feature`.
fn stored_choice(settings: &RepoSettings, feature: Feature) -> Option<bool> {
    settings
        .features
        .iter()
        .find(|(f, _)| *f == feature)
        .map(|(_, on)| *on)
}

/// Turns errors that retrying cannot fix into a failed command the reply reports, so
/// the person is told rather than left with 👀 forever; rate limits and transient errors
/// propagate (the queue defers or retries the job) until the last attempt.
fn settle(run: &JobRun, result: Result<Step, JobError>) -> Result<Step, JobError> {
    match result {
        Ok(step) => Ok(step),
        Err(JobError::Permanent(e)) => {
            warn!(error = %format!("{e:#}"), "command failed");
            Ok(Step::failed(replies::failed(Some(&format!("{e:#}")))))
        }
        Err(JobError::Retry(e)) if run.attempt >= run.max_attempts => {
            warn!(error = %format!("{e:#}"), "command failed on the last attempt");
            Ok(Step::failed(replies::failed(None)))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::event::{Actor, Repo};
    use crate::forge::RepoId;

    fn comment(body: &str, action: CommentAction) -> Comment {
        Comment {
            repo: Repo {
                id: RepoId("1".into()),
                full_name: "o/r".into(),
                default_branch: None,
                private: None,
                archived: None,
                fork: None,
            },
            target: CommentTarget::PullRequest(3),
            comment_id: "9".into(),
            body: body.into(),
            author: Actor {
                login: "octo".into(),
                id: None,
                is_bot: false,
            },
            action,
        }
    }

    fn names(lines: &[ParsedLine]) -> Vec<String> {
        lines.iter().map(|l| l.raw.trim().to_owned()).collect()
    }

    #[test]
    fn edits_run_only_new_command_lines() {
        let cfg = parser_config("pipewright");
        let c = comment(
            "/pipewright help\n@pipewright[bot] add security\n",
            CommentAction::Created,
        );
        assert_eq!(
            names(&new_command_lines(&c, &cfg)),
            ["/pipewright help", "@pipewright[bot] add security"]
        );
        let c = comment(
            "/pipewright help\n/pipewright regenerate\n",
            CommentAction::Edited {
                previous_body: Some("/pipewright help\n/pipewright regenrate".into()),
            },
        );
        assert_eq!(
            names(&new_command_lines(&c, &cfg)),
            ["/pipewright regenerate"]
        );
        let c = comment(
            "/pipewright help\nthanks",
            CommentAction::Edited {
                previous_body: Some("  /pipewright help".into()),
            },
        );
        assert!(new_command_lines(&c, &cfg).is_empty());
        let c = comment(
            "/pipewright help",
            CommentAction::Edited {
                previous_body: None,
            },
        );
        assert_eq!(new_command_lines(&c, &cfg).len(), 1);
    }

    #[test]
    fn stored_choices_are_found() {
        let mut s = RepoSettings::default();
        assert_eq!(stored_choice(&s, Feature::Lint), None);
        s.set(Feature::Lint, false);
        assert_eq!(stored_choice(&s, Feature::Lint), Some(false));
    }

    fn job_run(attempt: i64) -> JobRun {
        JobRun {
            id: 1,
            attempt,
            max_attempts: 3,
            db: crate::db::Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .connect_lazy("sqlite::memory:")
                    .unwrap(),
            ),
        }
    }

    #[tokio::test]
    async fn a_comment_is_answered_by_one_job_and_its_retries() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect_and_migrate(&url).await.unwrap();
        let gh = Forge::Github;
        assert!(
            claim(&db, gh, "c1", "h1", 10, 1).await.unwrap(),
            "first job"
        );
        assert!(
            claim(&db, gh, "c1", "h1", 10, 2).await.unwrap(),
            "its retry"
        );
        assert!(
            !claim(&db, gh, "c1", "h1", 11, 3).await.unwrap(),
            "a redelivery"
        );
        assert!(!claim(&db, gh, "c1", "h1", 12, 4).await.unwrap(), "another");
        assert!(
            claim(&db, gh, "c1", "h1", 10, 5).await.unwrap(),
            "owner again"
        );
        assert!(claim(&db, gh, "c1", "h2", 11, 6).await.unwrap(), "an edit");
        assert!(
            claim(&db, Forge::Gitlab, "c1", "h1", 13, 7).await.unwrap(),
            "another forge"
        );
    }

    #[tokio::test]
    async fn permanent_errors_become_replies_and_others_propagate() {
        let r = settle(
            &job_run(1),
            Err(JobError::Permanent(anyhow::anyhow!("HTTP 403: <no>"))),
        )
        .unwrap();
        assert!(
            !r.ok && r.body.contains("HTTP 403: &lt;no&gt;"),
            "{}",
            r.body
        );
        assert!(settle(&job_run(1), Err(JobError::Retry(anyhow::anyhow!("502")))).is_err());
        let r = settle(&job_run(3), Err(JobError::Retry(anyhow::anyhow!("502")))).unwrap();
        assert!(!r.ok && r.body.contains("try again later"));
        assert!(matches!(
            settle(
                &job_run(3),
                Err(JobError::Defer {
                    until: 5,
                    reason: "rate".into()
                })
            ),
            Err(JobError::Defer { .. })
        ));
    }
}
