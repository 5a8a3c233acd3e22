//! What the operator console reads and writes: server-side sessions, the overview's
//! aggregates, the installation page's repository list (keyset pagination on
//! `repositories_by_name` / `repositories_by_outcome`, so page 200 of 10,000 costs what
//! page 1 costs), the repository page (snapshot, pull request history, jobs), the jobs
//! list, and per-installation API usage. Every query that returns tenant data takes a
//! [`Scope`]: what the signed-in person may see is decided once, here, in SQL.

use serde::Serialize;

use crate::clock::Millis;
use crate::db::{with_pool, Db};
use crate::queue::store::{JobRow, JobState};

/// Which installations a query may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (the admin token).
    All,
    /// Only these installation row ids (a person signed in with a forge).
    Installations(Vec<i64>),
}

impl Scope {
    /// May this scope see installation row `id`?
    pub fn allows(&self, id: i64) -> bool {
        match self {
            Scope::All => true,
            Scope::Installations(ids) => ids.contains(&id),
        }
    }
}

/// The outcome classes of a repository (`repositories.outcome`), in display order.
pub const OUTCOMES: &[&str] = &[
    "pr_open", "merged", "closed", "ignored", "skipped", "failed", "pending",
];

// ---------------------------------------------------------------------------------------
// Sessions

/// A stored console session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie's token.
    pub id_hash: String,
    /// `admin`, `github`, `gitlab` or `bitbucket`.
    pub principal: String,
    /// Login shown in the console.
    pub login: String,
    /// The forge's user id.
    pub user_id: Option<String>,
    /// JSON array of installation row ids (None: all).
    pub installations: Option<String>,
    /// When the forge last confirmed `installations`.
    pub access_checked_at: i64,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Created.
    pub created_at: i64,
    /// Expires.
    pub expires_at: i64,
}

impl SessionRow {
    /// The scope this session grants.
    pub fn scope(&self) -> Scope {
        match &self.installations {
            None => Scope::All,
            Some(json) => Scope::Installations(serde_json::from_str(json).unwrap_or_default()),
        }
    }
}

/// Stores a new session.
pub async fn create_session(db: &Db, s: &SessionRow, now: Millis) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, principal, login, user_id, installations, \
               access_checked_at, csrf_token, created_at, expires_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.id_hash)
        .bind(&s.principal)
        .bind(&s.login)
        .bind(&s.user_id)
        .bind(&s.installations)
        .bind(s.access_checked_at)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// A live (unexpired) session by its token hash.
pub async fn get_session(
    db: &Db,
    id_hash: &str,
    now: Millis,
) -> Result<Option<SessionRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id_hash, principal, login, user_id, installations, access_checked_at, \
               csrf_token, created_at, expires_at FROM console_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(pool)
        .await
    })
}

/// Replaces a session's installations after the forge confirmed them again.
pub async fn refresh_session_access(
    db: &Db,
    id_hash: &str,
    installations: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE console_sessions SET installations = $1, access_checked_at = $2, \
               last_seen_at = $2 WHERE id_hash = $3",
        )
        .bind(installations)
        .bind(now)
        .bind(id_hash)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Ends a session.
pub async fn delete_session(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Deletes expired sessions; returns how many.
pub async fn purge_sessions(db: &Db, now: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

// ---------------------------------------------------------------------------------------
// Overview

/// One installation with its repositories counted by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallationSummary {
    /// Row id (console URLs).
    pub id: i64,
    /// Forge.
    pub forge: String,
    /// The forge's id.
    pub external_id: String,
    /// Org / group / workspace name.
    pub account: Option<String>,
    /// active, suspended or deleted.
    pub state: String,
    /// Active repositories.
    pub repositories: i64,
    /// Active repositories by outcome class ([`OUTCOMES`] order, zeros included).
    pub outcomes: Vec<(String, i64)>,
    /// Pull requests opened in the last hour (the hourly budget used).
    pub prs_last_hour: i64,
    /// Forge API calls in the current hour.
    pub api_calls_this_hour: i64,
    /// Forge API calls in the last 24 hours.
    pub api_calls_last_day: i64,
    /// Lowest rate-limit headroom reported in the current hour (remaining, limit, reset).
    pub rate_limit: Option<(i64, Option<i64>, Option<i64>)>,
}

/// Every installation the scope may see, with its counts.
pub async fn installation_summaries(
    db: &Db,
    scope: &Scope,
    now: Millis,
) -> Result<Vec<InstallationSummary>, sqlx::Error> {
    type Inst = (i64, String, String, Option<String>, String);
    let insts: Vec<Inst> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, external_id, account, state FROM installations ORDER BY forge, account, id",
        )
        .fetch_all(pool)
        .await
    })?;
    let counts: Vec<(Option<i64>, Option<String>, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT installation_id, outcome, COUNT(*) FROM repositories WHERE state = 'active' \
             GROUP BY installation_id, outcome",
        )
        .fetch_all(pool)
        .await
    })?;
    let budget: Vec<(i64, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT installation_id, COUNT(*) FROM pr_openings WHERE opened_at > $1 \
             GROUP BY installation_id",
        )
        .bind(now - crate::db::pull_requests::BUDGET_WINDOW_MS)
        .fetch_all(pool)
        .await
    })?;
    let hour = hour_of(now);
    type Usage = (i64, i64, i64, Option<i64>, Option<i64>, Option<i64>);
    let usage: Vec<Usage> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT installation_id, hour, calls, rate_remaining, rate_limit, rate_reset \
             FROM installation_api_usage WHERE hour > $1",
        )
        .bind(hour - 24 * HOUR_MS)
        .fetch_all(pool)
        .await
    })?;
    Ok(insts
        .into_iter()
        .filter(|(id, ..)| scope.allows(*id))
        .map(|(id, forge, external_id, account, state)| {
            let mut outcomes: Vec<(String, i64)> =
                OUTCOMES.iter().map(|o| ((*o).to_owned(), 0)).collect();
            let mut repositories = 0;
            for (inst, outcome, n) in &counts {
                if *inst == Some(id) {
                    repositories += n;
                    let class = outcome.as_deref().unwrap_or("pending");
                    if let Some(slot) = outcomes.iter_mut().find(|(o, _)| o == class) {
                        slot.1 += n;
                    }
                }
            }
            let mine = usage.iter().filter(|u| u.0 == id);
            let this_hour = usage.iter().find(|u| u.0 == id && u.1 == hour);
            InstallationSummary {
                id,
                forge,
                external_id,
                account,
                state,
                repositories,
                outcomes,
                prs_last_hour: budget.iter().find(|(i, _)| *i == id).map_or(0, |(_, n)| *n),
                api_calls_this_hour: this_hour.map_or(0, |u| u.2),
                api_calls_last_day: mine.map(|u| u.2).sum(),
                rate_limit: this_hour.and_then(|u| u.3.map(|r| (r, u.4, u.5))),
            }
        })
        .collect())
}

/// The queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// Jobs due now and waiting for a worker.
    pub due: i64,
    /// Jobs waiting for a later time (backoff, budget, schedule).
    pub scheduled: i64,
    /// Jobs running.
    pub running: i64,
    /// Dead jobs (tries exhausted).
    pub dead: i64,
    /// Age of the oldest due job, in milliseconds (0 when none is due).
    pub oldest_due_age_ms: i64,
}

/// Queue depth, oldest due job and dead jobs. Each count walks a partial index.
pub async fn queue_summary(db: &Db, now: Millis) -> Result<QueueSummary, sqlx::Error> {
    with_pool!(db, pool => {
        let (due, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(run_at) FROM jobs WHERE state IN ('queued', 'failed') AND run_at <= $1",
        )
        .bind(now)
        .fetch_one(pool)
        .await?;
        let scheduled: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'failed') AND run_at > $1",
        )
        .bind(now)
        .fetch_one(pool)
        .await?;
        let running: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
                .fetch_one(pool)
                .await?;
        let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
            .fetch_one(pool)
            .await?;
        Ok(QueueSummary {
            due,
            scheduled,
            running,
            dead,
            oldest_due_age_ms: oldest.map_or(0, |t| (now - t).max(0)),
        })
    })
}

// ---------------------------------------------------------------------------------------
// Installation page

/// One line of the installation page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RepoListRow {
    /// Row id (console URLs).
    pub id: i64,
    /// Display name.
    pub full_name: String,
    /// The forge's id.
    pub external_id: String,
    /// Outcome class (None: not analysed yet).
    pub outcome: Option<String>,
    /// What the last analysis concluded, in words.
    pub last_outcome: Option<String>,
    /// The commit it read.
    pub last_analyzed_sha: Option<String>,
    /// When.
    pub last_analyzed_at: Option<i64>,
    /// Detected stack summary.
    pub stack: Option<String>,
    /// Newest pipewright pull request: number and address.
    pub pr_number: Option<i64>,
    /// Its address.
    pub pr_url: Option<String>,
}

/// Filters of the installation page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoFilter {
    /// Outcome class (`pending` = not analysed).
    pub outcome: Option<String>,
    /// Substring of the name (case-insensitive on ASCII).
    pub name: Option<String>,
    /// Substring of the stack summary (`rust`, `pnpm`).
    pub stack: Option<String>,
}

/// A keyset position: the (name, id) of the row next to the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCursor {
    /// Name of the boundary row.
    pub name: String,
    /// Id of the boundary row.
    pub id: i64,
}

/// Which way a page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rows after the cursor (next page).
    After,
    /// Rows before the cursor (previous page).
    Before,
}

/// A page of repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoPage {
    /// The rows, by name.
    pub rows: Vec<RepoListRow>,
    /// More rows follow the last one.
    pub has_next: bool,
    /// Rows precede the first one.
    pub has_prev: bool,
    /// Rows matching the filter, all pages together.
    pub total: i64,
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A page of an installation's active repositories, by name, filtered. Predicates are
/// added only when set, so each query is one the planner can answer from an index.
pub async fn list_repositories(
    db: &Db,
    installation: i64,
    filter: &RepoFilter,
    cursor: Option<(&RepoCursor, Direction)>,
    limit: i64,
) -> Result<RepoPage, sqlx::Error> {
    enum Arg {
        Int(i64),
        Text(String),
    }
    let mut args = vec![Arg::Int(installation)];
    let mut wh = String::from("r.installation_id = $1 AND r.state = 'active'");
    match filter.outcome.as_deref() {
        Some("pending") => wh.push_str(" AND r.outcome IS NULL"),
        Some(o) => {
            args.push(Arg::Text(o.to_owned()));
            wh.push_str(&format!(" AND r.outcome = ${}", args.len()));
        }
        None => {}
    }
    if let Some(n) = filter.name.as_deref().filter(|n| !n.is_empty()) {
        args.push(Arg::Text(like_pattern(n)));
        wh.push_str(&format!(
            " AND LOWER(r.full_name) LIKE ${} ESCAPE '\\'",
            args.len()
        ));
    }
    let join_snapshot = filter.stack.as_deref().is_some_and(|s| !s.is_empty());
    if let Some(s) = filter.stack.as_deref().filter(|s| !s.is_empty()) {
        args.push(Arg::Text(like_pattern(s)));
        wh.push_str(&format!(
            " AND LOWER(s.stack) LIKE ${} ESCAPE '\\'",
            args.len()
        ));
    }
    let from = if join_snapshot {
        "repositories r JOIN repo_snapshots s ON s.repository_id = r.id"
    } else {
        "repositories r"
    };
    let count_sql = format!("SELECT COUNT(*) FROM {from} WHERE {wh}");
    let mut page_wh = wh.clone();
    let (order, dir) = match cursor {
        Some((c, d)) => {
            args.push(Arg::Text(c.name.clone()));
            args.push(Arg::Int(c.id));
            let op = if d == Direction::After { ">" } else { "<" };
            page_wh.push_str(&format!(
                " AND (r.full_name {op} ${n} OR (r.full_name = ${n} AND r.id {op} ${m}))",
                n = args.len() - 1,
                m = args.len()
            ));
            (
                if d == Direction::After {
                    "r.full_name, r.id"
                } else {
                    "r.full_name DESC, r.id DESC"
                },
                d,
            )
        }
        None => ("r.full_name, r.id", Direction::After),
    };
    args.push(Arg::Int(limit + 1));
    let page_sql = format!(
        "SELECT r.id, r.full_name, r.external_id, r.outcome, r.last_outcome, r.last_analyzed_sha, \
           r.last_analyzed_at, s.stack, \
           (SELECT p.number FROM pull_requests p WHERE p.repository_id = r.id \
             ORDER BY p.opened_at DESC, p.number DESC LIMIT 1) AS pr_number, \
           (SELECT p.url FROM pull_requests p WHERE p.repository_id = r.id \
             ORDER BY p.opened_at DESC, p.number DESC LIMIT 1) AS pr_url \
         FROM repositories r LEFT JOIN repo_snapshots s ON s.repository_id = r.id \
         WHERE {page_wh} ORDER BY {order} LIMIT ${}",
        args.len()
    );
    let count_args = args.len() - if cursor.is_some() { 3 } else { 1 };
    let (total, mut rows): (i64, Vec<RepoListRow>) = with_pool!(db, pool => {
        let mut q = sqlx::query_scalar(&count_sql);
        for a in &args[..count_args] {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(t) => q.bind(t.clone()),
            };
        }
        let total: i64 = q.fetch_one(pool).await?;
        let mut q = sqlx::query_as(&page_sql);
        for a in &args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(t) => q.bind(t.clone()),
            };
        }
        let rows: Vec<RepoListRow> = q.fetch_all(pool).await?;
        Ok::<_, sqlx::Error>((total, rows))
    })?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    if dir == Direction::Before {
        rows.reverse();
    }
    let (has_next, has_prev) = match cursor {
        None => (more, false),
        Some((_, Direction::After)) => (more, true),
        Some((_, Direction::Before)) => (true, more),
    };
    Ok(RepoPage {
        rows,
        has_next,
        has_prev,
        total,
    })
}

/// An installation by row id.
pub async fn installation(
    db: &Db,
    id: i64,
) -> Result<Option<crate::db::installations::InstallationRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, external_id, account, state FROM installations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })
}

/// Installation row ids whose (forge, external id or account) is in `keys`. Used to map
/// what a forge says a person administers onto installations pipewright knows.
pub async fn installations_matching(
    db: &Db,
    forge: &str,
    keys: &[String],
) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(i64, String, Option<String>)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT id, external_id, account FROM installations WHERE forge = $1")
            .bind(forge)
            .fetch_all(pool)
            .await
    })?;
    let wanted: std::collections::BTreeSet<String> =
        keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    Ok(rows
        .into_iter()
        .filter(|(_, ext, acct)| {
            wanted.contains(&ext.to_ascii_lowercase())
                || acct
                    .as_deref()
                    .is_some_and(|a| wanted.contains(&a.to_ascii_lowercase()))
        })
        .map(|(id, ..)| id)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Repository page

/// A repository with everything its page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RepoDetail {
    /// Row id.
    pub id: i64,
    /// Owning installation row.
    pub installation_id: Option<i64>,
    /// Forge.
    pub forge: String,
    /// The forge's id.
    pub external_id: String,
    /// Display name.
    pub full_name: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// active, removed or deleted.
    pub state: String,
    /// `ignore` was asked.
    pub ignored: bool,
    /// Slash-command settings (JSON).
    pub settings: Option<String>,
    /// Outcome class.
    pub outcome: Option<String>,
    /// Last outcome in words.
    pub last_outcome: Option<String>,
    /// Last analysed commit.
    pub last_analyzed_sha: Option<String>,
    /// When.
    pub last_analyzed_at: Option<i64>,
    /// Last default-branch commit seen in a push.
    pub last_push_sha: Option<String>,
}

/// A repository by row id.
pub async fn repository(db: &Db, id: i64) -> Result<Option<RepoDetail>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, installation_id, forge, external_id, full_name, default_branch, state, \
               ignored, settings, outcome, last_outcome, last_analyzed_sha, last_analyzed_at, \
               last_push_sha FROM repositories WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })
}

/// What the last analysis of a repository saw and proposed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Snapshot {
    /// Commit analysed.
    pub sha: Option<String>,
    /// Stack summary.
    pub stack: Option<String>,
    /// Analysis JSON.
    pub analysis: Option<String>,
    /// `analyze --explain` text.
    pub explain: Option<String>,
    /// `.pipewright.yml` as read: JSON `{path, text}`.
    pub repo_config: Option<String>,
    /// The decision in words.
    pub decision: Option<String>,
    /// Hash of the proposed files.
    pub proposal_hash: Option<String>,
    /// JSON [{path, content}] proposed.
    pub proposal: Option<String>,
    /// JSON [{path, content}] last written to the PR branch.
    pub pushed: Option<String>,
    /// The commit that carried them.
    pub pushed_sha: Option<String>,
    /// When the analysis ran.
    pub analyzed_at: i64,
}

/// Stores what an analysis saw and proposed (`pushed` is kept: see [`record_pushed`]).
pub async fn save_snapshot(db: &Db, repository_id: i64, s: &Snapshot) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO repo_snapshots (repository_id, sha, stack, analysis, explain, repo_config, \
               decision, proposal_hash, proposal, analyzed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (repository_id) DO UPDATE SET sha = EXCLUDED.sha, stack = EXCLUDED.stack, \
               analysis = EXCLUDED.analysis, explain = EXCLUDED.explain, \
               repo_config = EXCLUDED.repo_config, decision = EXCLUDED.decision, \
               proposal_hash = EXCLUDED.proposal_hash, proposal = EXCLUDED.proposal, \
               analyzed_at = EXCLUDED.analyzed_at",
        )
        .bind(repository_id)
        .bind(&s.sha)
        .bind(&s.stack)
        .bind(&s.analysis)
        .bind(&s.explain)
        .bind(&s.repo_config)
        .bind(&s.decision)
        .bind(&s.proposal_hash)
        .bind(&s.proposal)
        .bind(s.analyzed_at)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Records the files pipewright wrote to its pull request branch, and the commit.
pub async fn record_pushed(
    db: &Db,
    repository_id: i64,
    files_json: &str,
    sha: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO repo_snapshots (repository_id, pushed, pushed_sha, analyzed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id) DO UPDATE SET \
               pushed = EXCLUDED.pushed, pushed_sha = EXCLUDED.pushed_sha",
        )
        .bind(repository_id)
        .bind(files_json)
        .bind(sha)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// A repository's snapshot, if it was ever analysed.
pub async fn snapshot(db: &Db, repository_id: i64) -> Result<Option<Snapshot>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT sha, stack, analysis, explain, repo_config, decision, proposal_hash, proposal, \
               pushed, pushed_sha, analyzed_at FROM repo_snapshots WHERE repository_id = $1",
        )
        .bind(repository_id)
        .fetch_optional(pool)
        .await
    })
}

/// One pull request of a repository's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PrHistoryRow {
    /// Number.
    pub number: i64,
    /// open, closed or merged.
    pub state: String,
    /// Closed by pipewright (`ignore`).
    pub closed_by_bot: bool,
    /// Address.
    pub url: Option<String>,
    /// Hash of its proposal.
    pub proposal_hash: String,
    /// Last commit pipewright wrote.
    pub head_sha: Option<String>,
    /// Opened.
    pub opened_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Every pipewright pull request of a repository, newest first.
pub async fn pr_history(db: &Db, repository_id: i64) -> Result<Vec<PrHistoryRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT number, state, closed_by_bot, url, proposal_hash, head_sha, opened_at, updated_at \
             FROM pull_requests WHERE repository_id = $1 ORDER BY opened_at DESC, number DESC",
        )
        .bind(repository_id)
        .fetch_all(pool)
        .await
    })
}

// ---------------------------------------------------------------------------------------
// Jobs

/// Filters of the jobs page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this concurrency key (a repository's jobs).
    pub concurrency_key: Option<String>,
    /// Only jobs older than this id (keyset: the next page).
    pub before_id: Option<i64>,
}

/// The tenant keys of an installation in the jobs table: its payload's forge and
/// installation, and the concurrency keys of its event and reconcile jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// Forge name.
    pub forge: String,
    /// The installation's forge id.
    pub external_id: String,
}

const JOB_LIST_COLUMNS: &str = "id, kind, payload, dedupe_key, concurrency_key, priority, state, \
     run_at, attempts, max_attempts, locked_by, locked_until, last_error, created_at, updated_at, \
     started_at, finished_at";

/// Jobs, newest first, at most `limit`, restricted to `tenants` unless it is `None`.
/// Returns the rows and whether more follow.
pub async fn list_jobs(
    db: &Db,
    filter: &JobFilter,
    tenants: Option<&[TenantKey]>,
    limit: i64,
) -> Result<(Vec<JobRow>, bool), sqlx::Error> {
    enum Arg {
        Int(i64),
        Text(String),
    }
    let mut args: Vec<Arg> = Vec::new();
    let mut wh: Vec<String> = Vec::new();
    if let Some(state) = filter.state {
        // A literal (from the enum), so the `jobs_dead` partial index applies.
        wh.push(format!("state = '{}'", state.as_str()));
    }
    if let Some(kind) = &filter.kind {
        args.push(Arg::Text(kind.clone()));
        wh.push(format!("kind = ${}", args.len()));
    }
    if let Some(key) = &filter.concurrency_key {
        args.push(Arg::Text(key.clone()));
        wh.push(format!("concurrency_key = ${}", args.len()));
    }
    if let Some(before) = filter.before_id {
        args.push(Arg::Int(before));
        wh.push(format!("id < ${}", args.len()));
    }
    if let Some(tenants) = tenants {
        if tenants.is_empty() {
            return Ok((Vec::new(), false));
        }
        let (forge_expr, inst_expr) = payload_tenant_exprs(db);
        let mut ors = Vec::new();
        for t in tenants {
            let n = args.len();
            ors.push(format!(
                "({forge_expr} = ${} AND {inst_expr} = ${}) OR concurrency_key IN (${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            ));
            args.push(Arg::Text(t.forge.clone()));
            args.push(Arg::Text(t.external_id.clone()));
            args.push(Arg::Text(format!(
                "installation:{}:{}",
                t.forge, t.external_id
            )));
            args.push(Arg::Text(format!(
                "reconcile:{}:{}",
                t.forge, t.external_id
            )));
        }
        wh.push(format!("({})", ors.join(" OR ")));
    }
    let where_sql = if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    };
    let sql = format!(
        "SELECT {JOB_LIST_COLUMNS} FROM jobs {where_sql} ORDER BY id DESC LIMIT {}",
        limit.max(0) + 1
    );
    let mut rows: Vec<JobRow> = with_pool!(db, pool => {
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(t) => q.bind(t.clone()),
            };
        }
        let fetched = q.fetch_all(pool).await?;
        fetched
            .iter()
            .map(crate::queue::store::job_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()
    })?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    Ok((rows, more))
}

/// The JSON paths of a job payload's forge and installation, per backend.
fn payload_tenant_exprs(db: &Db) -> (&'static str, &'static str) {
    match db {
        Db::Sqlite(_) => (
            "json_extract(payload, '$.forge')",
            "json_extract(payload, '$.installation')",
        ),
        Db::Postgres(_) => (
            "(payload::jsonb ->> 'forge')",
            "(payload::jsonb ->> 'installation')",
        ),
    }
}

/// Does a job belong to one of `tenants`? (The job page of a person who is not admin.)
pub fn job_belongs_to(job: &JobRow, tenants: &[TenantKey]) -> bool {
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or_default();
    let forge = payload.get("forge").and_then(|v| v.as_str());
    let inst = payload.get("installation").and_then(|v| v.as_str());
    tenants.iter().any(|t| {
        (forge == Some(t.forge.as_str()) && inst == Some(t.external_id.as_str()))
            || job.concurrency_key.as_deref()
                == Some(&format!("installation:{}:{}", t.forge, t.external_id))
            || job.concurrency_key.as_deref()
                == Some(&format!("reconcile:{}:{}", t.forge, t.external_id))
    })
}

// ---------------------------------------------------------------------------------------
// API usage

/// One hour, in milliseconds.
pub const HOUR_MS: Millis = 60 * 60 * 1000;

fn hour_of(t: Millis) -> Millis {
    t - t.rem_euclid(HOUR_MS)
}

pub use crate::forge::client::RateReading;

/// Adds a job's API calls to its installation's hour, keeping the lowest headroom seen.
pub async fn record_api_usage(
    db: &Db,
    installation_id: i64,
    calls: u64,
    rate: Option<RateReading>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let (remaining, limit, reset) = match rate {
        Some(r) => (Some(r.remaining), r.limit, r.reset_at),
        None => (None, None, None),
    };
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO installation_api_usage (installation_id, hour, calls, rate_remaining, \
               rate_limit, rate_reset, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (installation_id, hour) DO UPDATE SET \
               calls = installation_api_usage.calls + EXCLUDED.calls, \
               rate_remaining = CASE WHEN EXCLUDED.rate_remaining IS NULL \
                 THEN installation_api_usage.rate_remaining \
                 WHEN installation_api_usage.rate_remaining IS NULL \
                   OR EXCLUDED.rate_remaining < installation_api_usage.rate_remaining \
                 THEN EXCLUDED.rate_remaining ELSE installation_api_usage.rate_remaining END, \
               rate_limit = COALESCE(EXCLUDED.rate_limit, installation_api_usage.rate_limit), \
               rate_reset = COALESCE(EXCLUDED.rate_reset, installation_api_usage.rate_reset), \
               updated_at = EXCLUDED.updated_at",
        )
        .bind(installation_id)
        .bind(hour_of(now))
        .bind(calls as i64)
        .bind(remaining)
        .bind(limit)
        .bind(reset)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Deletes API usage older than `before`.
pub async fn purge_api_usage(db: &Db, before: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM installation_api_usage WHERE hour < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

// ---------------------------------------------------------------------------------------
// First-run outcomes (issue 11)

/// First CI runs of pipewright's pull requests by outcome class (`passed` or the failure
/// class), counting each PR's first run once, most frequent first.
pub async fn first_run_classes(db: &Db, scope: &Scope) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows: Vec<(String, Option<i64>, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT f.class, r.installation_id, COUNT(*) FROM first_run_outcomes f \
             JOIN repositories r ON r.id = f.repository_id \
             WHERE f.id IN (SELECT MIN(id) FROM first_run_outcomes GROUP BY repository_id, pr_number) \
             GROUP BY f.class, r.installation_id",
        )
        .fetch_all(pool)
        .await
    })?;
    let mut by_class: std::collections::BTreeMap<String, i64> = Default::default();
    for (class, inst, n) in rows {
        if inst.is_some_and(|i| scope.allows(i)) {
            *by_class.entry(class).or_default() += n;
        }
    }
    let mut v: Vec<(String, i64)> = by_class.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Reconcile progress (`pipewright reconcile --wait`)

/// Analyses queued for an installation since `since`: (total, finished, dead).
pub async fn analysis_progress(
    db: &Db,
    forge: &str,
    installation: &str,
    since: Millis,
) -> Result<(i64, i64, i64), sqlx::Error> {
    let (forge_expr, inst_expr) = payload_tenant_exprs(db);
    let sql = format!(
        "SELECT COUNT(*), \
           COALESCE(SUM(CASE WHEN state IN ('succeeded', 'dead') THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) \
         FROM jobs WHERE kind = 'analyze_repo' AND created_at >= $1 \
           AND {forge_expr} = $2 AND {inst_expr} = $3"
    );
    with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(since)
            .bind(forge)
            .bind(installation)
            .fetch_one(pool)
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Acme"), "%acme%");
        assert_eq!(like_pattern("100%_x\\"), "%100\\%\\_x\\\\%");
    }

    #[test]
    fn hours_are_floored() {
        assert_eq!(hour_of(HOUR_MS * 5 + 17), HOUR_MS * 5);
        assert_eq!(hour_of(0), 0);
    }

    #[test]
    fn scopes() {
        assert!(Scope::All.allows(7));
        assert!(Scope::Installations(vec![1, 7]).allows(7));
        assert!(!Scope::Installations(vec![1]).allows(7));
    }
}
