//! The audit trail (`audit_log`): who did what, on what, when. Written by the commands
//! and pages that change state on a person's behalf (credentials, deploy setup, console
//! retries and re-analyses); read by `pipewright audit list` and the console.
//!
//! It must never hold secret values: [`AuditEntry::details`] takes names and counts, and
//! callers pass the names of credentials, never their values.

use serde::Serialize;

use crate::clock::Millis;
use crate::db::{with_pool, Db};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person on the server's shell (`pipewright credentials …`).
    Cli,
    /// A person on the forge, through a slash command.
    Forge,
    /// An operator signed in to the web console.
    Console,
    /// pipewright on its own (a reconcile pass, a scheduled job).
    Bot,
}

impl ActorKind {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Cli => "cli",
            ActorKind::Forge => "forge",
            ActorKind::Console => "console",
            ActorKind::Bot => "bot",
        }
    }

    fn parse(s: &str) -> ActorKind {
        match s {
            "cli" => ActorKind::Cli,
            "forge" => ActorKind::Forge,
            "console" => ActorKind::Console,
            _ => ActorKind::Bot,
        }
    }
}

/// A person (or pipewright itself) as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// Their name: the shell user, the forge login, the console operator's login.
    pub name: String,
}

impl Actor {
    /// A person on the server's shell.
    pub fn cli(name: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Cli,
            name: name.into(),
        }
    }

    /// A forge user acting through a slash command.
    pub fn forge(login: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Forge,
            name: login.into(),
        }
    }

    /// An operator of the web console.
    pub fn console(login: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Console,
            name: login.into(),
        }
    }

    /// pipewright itself.
    pub fn bot() -> Actor {
        Actor {
            kind: ActorKind::Bot,
            name: "pipewright".into(),
        }
    }
}

/// One thing that happened, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Who.
    pub actor: Actor,
    /// What: a stable dotted id such as `credentials.set`, `credentials.delete`,
    /// `credentials.rotate_key`, `deploy.secret_written`, `job.retry`, `repo.reanalyse`.
    pub action: String,
    /// Forge (`github`, `gitlab`, `bitbucket`), when the action concerns one.
    pub forge: Option<String>,
    /// Installation's external id (GitHub installation id, GitLab group, Bitbucket workspace).
    pub installation: Option<String>,
    /// Repository's stable external id.
    pub repository: Option<String>,
    /// Repository's name at the time, for people reading the trail.
    pub repository_name: Option<String>,
    /// Deploy target (`fly`, `aws`, …), when relevant.
    pub target: Option<String>,
    /// More facts as a JSON object: names, counts, ids. Never secret values.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An entry with only actor and action set.
    pub fn new(actor: Actor, action: impl Into<String>) -> AuditEntry {
        AuditEntry {
            actor,
            action: action.into(),
            forge: None,
            installation: None,
            repository: None,
            repository_name: None,
            target: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }
}

/// One recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Row id (increasing).
    pub id: i64,
    /// When, in application-clock milliseconds.
    pub at: Millis,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// Forge.
    pub forge: Option<String>,
    /// Installation's external id.
    pub installation: Option<String>,
    /// Repository's external id.
    pub repository: Option<String>,
    /// Repository's name at the time.
    pub repository_name: Option<String>,
    /// Deploy target.
    pub target: Option<String>,
    /// Details (JSON object).
    pub details: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct RawRow {
    id: i64,
    at: i64,
    actor_kind: String,
    actor: String,
    action: String,
    forge: Option<String>,
    installation: Option<String>,
    repository: Option<String>,
    repository_name: Option<String>,
    target: Option<String>,
    details: String,
}

impl From<RawRow> for AuditRow {
    fn from(r: RawRow) -> AuditRow {
        AuditRow {
            id: r.id,
            at: r.at,
            actor: Actor {
                kind: ActorKind::parse(&r.actor_kind),
                name: r.actor,
            },
            action: r.action,
            forge: r.forge,
            installation: r.installation,
            repository: r.repository,
            repository_name: r.repository_name,
            target: r.target,
            details: serde_json::from_str(&r.details)
                .unwrap_or(serde_json::Value::String(r.details)),
        }
    }
}

/// The INSERT, shared with `db/credentials.rs`, which records inside its own transaction.
pub(crate) const INSERT_SQL: &str = "INSERT INTO audit_log (at, actor_kind, actor, action, forge, \
     installation, repository, repository_name, target, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

/// Binds an entry to [`INSERT_SQL`] and runs it on `$exec` (a pool or a transaction).
macro_rules! insert_audit {
    ($exec:expr, $entry:expr, $now:expr) => {{
        let e: &$crate::db::audit::AuditEntry = $entry;
        sqlx::query_scalar::<_, i64>($crate::db::audit::INSERT_SQL)
            .bind($now)
            .bind(e.actor.kind.as_str())
            .bind(e.actor.name.as_str())
            .bind(e.action.as_str())
            .bind(e.forge.as_deref())
            .bind(e.installation.as_deref())
            .bind(e.repository.as_deref())
            .bind(e.repository_name.as_deref())
            .bind(e.target.as_deref())
            .bind(e.details.to_string())
            .fetch_one($exec)
            .await
    }};
}
pub(crate) use insert_audit;

/// Records an entry; returns its id.
pub async fn record(db: &Db, entry: &AuditEntry, now: Millis) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => insert_audit!(pool, entry, now))
}

/// What `list` returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this forge.
    pub forge: Option<String>,
    /// Only this installation (external id).
    pub installation: Option<String>,
    /// Only this repository (external id).
    pub repository: Option<String>,
    /// Only actions starting with this prefix (`credentials.` …).
    pub action_prefix: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Millis>,
    /// At most this many, newest first (capped at 10,000).
    pub limit: i64,
}

/// Entries matching `filter`, newest first.
pub async fn list(db: &Db, filter: &AuditFilter) -> Result<Vec<AuditRow>, sqlx::Error> {
    let limit = filter.limit.clamp(1, 10_000);
    // Prefix match with LIKE needs its wildcards escaped; `||` concatenation works on both.
    let prefix = filter.action_prefix.as_ref().map(|p| {
        p.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    });
    let rows: Vec<RawRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, at, actor_kind, actor, action, forge, installation, repository, \
               repository_name, target, details FROM audit_log \
             WHERE ($1 IS NULL OR forge = $1) AND ($2 IS NULL OR installation = $2) \
               AND ($3 IS NULL OR repository = $3) \
               AND ($4 IS NULL OR action LIKE $4 || '%' ESCAPE '\\') \
               AND ($5 IS NULL OR at >= $5) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(filter.forge.as_deref())
        .bind(filter.installation.as_deref())
        .bind(filter.repository.as_deref())
        .bind(prefix.as_deref())
        .bind(filter.since)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(AuditRow::from).collect())
}
