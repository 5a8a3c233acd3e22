//! The first CI runs of pipewright's proposals (`first_run_outcomes`): how each ended,
//! the failure class, and what the bot did — the history healing reads (at most two
//! fixes per proposal, never the same fix twice) and what `explain` and operators see.

use serde::Serialize;

use crate::clock::Millis;
use crate::db::{with_pool, Db};

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FirstRun {
    /// PR / MR number.
    pub pr_number: i64,
    /// The commit that ran.
    pub head_sha: String,
    /// The forge's run id, with the attempt when the forge re-runs in place
    /// (`CiRun::key`: `1234#2`).
    pub run_id: String,
    /// `passed` or the failure class.
    pub class: String,
    /// What the class pointed at.
    pub subject: Option<String>,
    /// none, commit, rerun, explain, blocked.
    pub action: String,
    /// Proposal hash + class, for fixes.
    pub fix_key: Option<String>,
    /// The adjustment (JSON) or a reason.
    pub detail: Option<String>,
    /// When it was recorded (ms).
    pub created_at: i64,
}

impl FirstRun {
    /// The row as `explain` shows it.
    pub fn view(&self) -> crate::bot::first_run::Recorded<'_> {
        crate::bot::first_run::Recorded {
            run: &self.run_id,
            sha: &self.head_sha,
            class: &self.class,
            subject: self.subject.as_deref(),
            action: &self.action,
            detail: self.detail.as_deref(),
        }
    }
}

/// A new row (see [`FirstRun`] for the fields).
#[derive(Debug, Clone)]
pub struct NewFirstRun<'a> {
    /// Repository row.
    pub repository_id: i64,
    /// PR number.
    pub pr_number: u64,
    /// Commit.
    pub head_sha: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Class.
    pub class: &'a str,
    /// Subject.
    pub subject: Option<&'a str>,
    /// Action.
    pub action: &'a str,
    /// Fix key.
    pub fix_key: Option<&'a str>,
    /// Detail.
    pub detail: Option<&'a str>,
}

/// Records a run once: `false` when this run of this commit was already recorded
/// (a redelivered event), so its action is not taken twice.
pub async fn record(db: &Db, row: &NewFirstRun<'_>, now: Millis) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO first_run_outcomes (repository_id, pr_number, head_sha, run_id, class, \
               subject, action, fix_key, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (repository_id, run_id, head_sha) DO NOTHING",
        )
        .bind(row.repository_id)
        .bind(row.pr_number as i64)
        .bind(row.head_sha)
        .bind(row.run_id)
        .bind(row.class)
        .bind(row.subject)
        .bind(row.action)
        .bind(row.fix_key)
        .bind(row.detail)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// Changes the recorded action of a run (a decided fix that could not be pushed becomes
/// `blocked`).
pub async fn set_action(
    db: &Db,
    repository_id: i64,
    run_id: &str,
    head_sha: &str,
    action: &str,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE first_run_outcomes SET action = $1 \
             WHERE repository_id = $2 AND run_id = $3 AND head_sha = $4",
        )
        .bind(action)
        .bind(repository_id)
        .bind(run_id)
        .bind(head_sha)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Was this run of this commit recorded already?
pub async fn seen(
    db: &Db,
    repository_id: i64,
    run_id: &str,
    head_sha: &str,
) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM first_run_outcomes \
             WHERE repository_id = $1 AND run_id = $2 AND head_sha = $3",
        )
        .bind(repository_id)
        .bind(run_id)
        .bind(head_sha)
        .fetch_one(pool)
        .await
        .map(|n| n > 0)
    })
}

/// Every run recorded for a pull request, oldest first.
pub async fn for_pr(
    db: &Db,
    repository_id: i64,
    pr_number: u64,
) -> Result<Vec<FirstRun>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as::<_, FirstRun>(
            "SELECT pr_number, head_sha, run_id, class, subject, action, fix_key, detail, \
               created_at FROM first_run_outcomes \
             WHERE repository_id = $1 AND pr_number = $2 ORDER BY created_at, id",
        )
        .bind(repository_id)
        .bind(pr_number as i64)
        .fetch_all(pool)
        .await
    })
}

/// Outcomes by forge, class and action across every repository (metrics, console).
pub async fn counts(db: &Db) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT r.forge, f.class, f.action, COUNT(*) FROM first_run_outcomes f \
             JOIN repositories r ON r.id = f.repository_id \
             GROUP BY r.forge, f.class, f.action ORDER BY r.forge, f.class, f.action",
        )
        .fetch_all(pool)
        .await
    })
}
