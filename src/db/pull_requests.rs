//! The bot's memory of its pull requests (`pull_requests`), the per-installation PR budget
//! (`pr_openings`) and per-repository bot state (ignored, settings, last outcome). The PR
//! body carries the same state, so losing this table loses nothing the forge cannot tell.

use serde::Serialize;

use crate::clock::Millis;
use crate::db::{with_pool, Db};

/// One of the bot's pull requests as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PrRow {
    /// Repository row.
    pub repository_id: i64,
    /// PR / MR number.
    pub number: i64,
    /// Its branch.
    pub branch: String,
    /// open, closed or merged.
    pub state: String,
    /// Hash of the proposal it carries.
    pub proposal_hash: String,
    /// Last commit the bot wrote to the branch.
    pub head_sha: Option<String>,
    /// Marker of the notice posted instead of pushing over people's commits.
    pub notified_hash: Option<String>,
    /// Closed by pipewright itself (`ignore`), not by a person.
    pub closed_by_bot: bool,
    /// Web address.
    pub url: Option<String>,
}

/// Records (or refreshes) a pull request.
#[allow(clippy::too_many_arguments)]
pub async fn upsert(
    db: &Db,
    repository_id: i64,
    number: u64,
    branch: &str,
    state: &str,
    proposal_hash: &str,
    head_sha: Option<&str>,
    url: Option<&str>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO pull_requests (repository_id, number, branch, state, proposal_hash, \
               head_sha, url, opened_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (repository_id, number) DO UPDATE SET state = EXCLUDED.state, \
               proposal_hash = EXCLUDED.proposal_hash, \
               head_sha = COALESCE(EXCLUDED.head_sha, pull_requests.head_sha), \
               url = COALESCE(EXCLUDED.url, pull_requests.url), updated_at = EXCLUDED.updated_at",
        )
        .bind(repository_id)
        .bind(number as i64)
        .bind(branch)
        .bind(state)
        .bind(proposal_hash)
        .bind(head_sha)
        .bind(url)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    refresh_outcome(db, repository_id).await
}

/// The newest pull request remembered for a repository.
pub async fn latest(db: &Db, repository_id: i64) -> Result<Option<PrRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT repository_id, number, branch, state, proposal_hash, head_sha, notified_hash, \
               closed_by_bot, url \
             FROM pull_requests WHERE repository_id = $1 ORDER BY opened_at DESC, number DESC LIMIT 1",
        )
        .bind(repository_id)
        .fetch_optional(pool)
        .await
    })
}

/// A pull request was closed or merged.
pub async fn set_state(
    db: &Db,
    repository_id: i64,
    number: u64,
    state: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let result = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE pull_requests SET state = $1, updated_at = $2 \
             WHERE repository_id = $3 AND number = $4",
        )
        .bind(state)
        .bind(now)
        .bind(repository_id)
        .bind(number as i64)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0)
    });
    refresh_outcome(db, repository_id).await?;
    result
}

/// pipewright closed its own pull request (`ignore`): not a person's refusal.
pub async fn mark_closed_by_bot(
    db: &Db,
    repository_id: i64,
    number: u64,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE pull_requests SET state = 'closed', closed_by_bot = TRUE, updated_at = $1 \
             WHERE repository_id = $2 AND number = $3",
        )
        .bind(now)
        .bind(repository_id)
        .bind(number as i64)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    refresh_outcome(db, repository_id).await
}

/// Remembers that people were told about `hash` instead of it being pushed.
pub async fn set_notified(
    db: &Db,
    repository_id: i64,
    number: u64,
    hash: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE pull_requests SET notified_hash = $1, updated_at = $2 \
             WHERE repository_id = $3 AND number = $4",
        )
        .bind(hash)
        .bind(now)
        .bind(repository_id)
        .bind(number as i64)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Length of the PR budget window.
pub const BUDGET_WINDOW_MS: Millis = 60 * 60 * 1000;

/// Takes one slot of the installation's hourly PR budget for `repository_id`, or says
/// when the next slot frees up. A repository that already holds a slot in the window (a
/// retried job) reuses it. Serialised per installation by locking its row first, so
/// concurrent workers cannot overdraw the budget.
pub async fn take_budget_slot(
    db: &Db,
    installation_id: i64,
    repository_id: i64,
    per_hour: u32,
    now: Millis,
) -> Result<Result<(), Millis>, sqlx::Error> {
    let since = now - BUDGET_WINDOW_MS;
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        // The write takes the row lock (PostgreSQL) or the database lock (SQLite).
        sqlx::query("UPDATE installations SET updated_at = updated_at WHERE id = $1")
            .bind(installation_id)
            .execute(&mut *tx)
            .await?;
        let mine: Option<i64> = sqlx::query_scalar(
            "SELECT opened_at FROM pr_openings WHERE installation_id = $1 AND repository_id = $2 \
             AND opened_at > $3 LIMIT 1",
        )
        .bind(installation_id)
        .bind(repository_id)
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        if mine.is_some() {
            tx.commit().await?;
            return Ok(Ok(()));
        }
        let used: Vec<i64> = sqlx::query_scalar(
            "SELECT opened_at FROM pr_openings WHERE installation_id = $1 AND opened_at > $2 \
             ORDER BY opened_at",
        )
        .bind(installation_id)
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        if used.len() >= per_hour as usize {
            tx.commit().await?;
            // The slot of the oldest opening in the window frees up an hour after it.
            let frees = used[used.len() - per_hour as usize] + BUDGET_WINDOW_MS + 1;
            return Ok(Err(frees));
        }
        sqlx::query(
            "INSERT INTO pr_openings (installation_id, repository_id, opened_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(installation_id)
        .bind(repository_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pr_openings WHERE installation_id = $1 AND opened_at < $2")
            .bind(installation_id)
            .bind(since - BUDGET_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    })
}

/// Per-repository bot state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RepoBotState {
    /// `ignore` was asked: never propose.
    pub ignored: bool,
    /// JSON settings from slash commands.
    pub settings: Option<String>,
    /// Outcome of the last analysis.
    pub last_outcome: Option<String>,
    /// Commit of the last analysis.
    pub last_analyzed_sha: Option<String>,
    /// When.
    pub last_analyzed_at: Option<i64>,
}

/// Reads a repository's bot state.
pub async fn repo_state(db: &Db, repository_id: i64) -> Result<RepoBotState, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT ignored, settings, last_outcome, last_analyzed_sha, last_analyzed_at \
             FROM repositories WHERE id = $1",
        )
        .bind(repository_id)
        .fetch_optional(pool)
        .await
        .map(Option::unwrap_or_default)
    })
}

/// Records what the last analysis concluded.
pub async fn record_outcome(
    db: &Db,
    repository_id: i64,
    outcome: &str,
    sha: Option<&str>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE repositories SET last_outcome = $1, \
               last_analyzed_sha = COALESCE($2, last_analyzed_sha), last_analyzed_at = $3 \
             WHERE id = $4",
        )
        .bind(outcome)
        .bind(sha)
        .bind(now)
        .bind(repository_id)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    refresh_outcome(db, repository_id).await
}

/// The default-branch commit an analysis is reading (for operators and `config`).
pub async fn record_analyzed_sha(
    db: &Db,
    repository_id: i64,
    sha: &str,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE repositories SET last_analyzed_sha = $1 WHERE id = $2")
            .bind(sha)
            .bind(repository_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Sets or clears `ignore` for a repository.
pub async fn set_ignored(db: &Db, repository_id: i64, ignored: bool) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE repositories SET ignored = $1 WHERE id = $2")
            .bind(ignored)
            .bind(repository_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    refresh_outcome(db, repository_id).await
}

/// Stores a repository's slash-command settings (JSON).
pub async fn set_settings(db: &Db, repository_id: i64, settings: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("UPDATE repositories SET settings = $1 WHERE id = $2")
            .bind(settings)
            .bind(repository_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Records that the commands of a comment (identified by its body hash, so an edit with
/// new commands runs again) were executed. `true` the first time, `false` after.
pub async fn mark_command_executed(
    db: &Db,
    forge: crate::forge::Forge,
    comment_id: &str,
    body_hash: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO executed_commands (forge, comment_id, body_hash, executed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(forge.as_str())
        .bind(comment_id)
        .bind(body_hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// The outcome class of a repository (`repositories.outcome`, see
/// [`crate::db::console::OUTCOMES`]) from what decides it: `ignore` first, then the state
/// of the newest pull request (open or merged is what happened), then a failed analysis,
/// then a PR a person closed, then any other analysis result (skipped, with its reason).
/// `None`: never analysed.
pub fn outcome_class(
    ignored: bool,
    latest_pr: Option<(&str, bool)>,
    last_outcome: Option<&str>,
) -> Option<&'static str> {
    if ignored {
        return Some("ignored");
    }
    match latest_pr {
        Some(("open", _)) => return Some("pr_open"),
        Some(("merged", _)) => return Some("merged"),
        _ => {}
    }
    // Keep in sync with `jobs::analyze_repo::Outcome::describe` (tested there).
    if let Some(o) = last_outcome {
        if o.starts_with("failed:") || o.starts_with("the GitHub App lacks") {
            return Some("failed");
        }
    }
    if let Some(("closed", false)) = latest_pr {
        return Some("closed");
    }
    last_outcome.map(|_| "skipped")
}

/// Recomputes a repository's stored outcome class after one of its inputs changed.
pub async fn refresh_outcome(db: &Db, repository_id: i64) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        let row: Option<(bool, Option<String>)> = sqlx::query_as(
            "SELECT ignored, last_outcome FROM repositories WHERE id = $1",
        )
        .bind(repository_id)
        .fetch_optional(pool)
        .await?;
        let Some((ignored, last_outcome)) = row else {
            return Ok(());
        };
        let pr: Option<(String, bool)> = sqlx::query_as(
            "SELECT state, closed_by_bot FROM pull_requests WHERE repository_id = $1 \
             ORDER BY opened_at DESC, number DESC LIMIT 1",
        )
        .bind(repository_id)
        .fetch_optional(pool)
        .await?;
        let class = outcome_class(
            ignored,
            pr.as_ref().map(|(s, b)| (s.as_str(), *b)),
            last_outcome.as_deref(),
        );
        sqlx::query("UPDATE repositories SET outcome = $1 WHERE id = $2")
            .bind(class)
            .bind(repository_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}
