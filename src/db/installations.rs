//! The `installations` and `repositories` tables: where pipewright is installed and which
//! repositories it may act on, keyed by the forge's stable ids.

use serde::Serialize;

use crate::clock::Millis;
use crate::db::{with_pool, Db};
use crate::forge::event::Repo;
use crate::forge::Forge;

/// State of an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallationState {
    /// Working.
    Active,
    /// Suspended by the account owner: do nothing until unsuspended.
    Suspended,
    /// Uninstalled.
    Deleted,
}

impl InstallationState {
    fn as_str(self) -> &'static str {
        match self {
            InstallationState::Active => "active",
            InstallationState::Suspended => "suspended",
            InstallationState::Deleted => "deleted",
        }
    }
}

/// State of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoState {
    /// Visible to the installation.
    Active,
    /// Removed from the installation (may come back).
    Removed,
    /// Deleted on the forge.
    Deleted,
}

impl RepoState {
    fn as_str(self) -> &'static str {
        match self {
            RepoState::Active => "active",
            RepoState::Removed => "removed",
            RepoState::Deleted => "deleted",
        }
    }
}

/// Creates or updates an installation; returns its row id.
pub async fn upsert_installation(
    db: &Db,
    forge: Forge,
    external_id: &str,
    account: Option<&str>,
    state: InstallationState,
    now: Millis,
) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO installations (forge, external_id, account, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (forge, external_id) DO UPDATE SET \
               account = COALESCE(EXCLUDED.account, installations.account), \
               state = EXCLUDED.state, updated_at = EXCLUDED.updated_at \
             RETURNING id",
        )
        .bind(forge.as_str())
        .bind(external_id)
        .bind(account)
        .bind(state.as_str())
        .bind(now)
        .fetch_one(pool)
        .await
    })
}

/// Records that an installation exists without changing its state (a delivery from a
/// tenant we had not seen, e.g. a GitLab group); returns its row id.
pub async fn ensure_installation(
    db: &Db,
    forge: Forge,
    external_id: &str,
    account: Option<&str>,
    now: Millis,
) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO installations (forge, external_id, account, state, created_at, updated_at) \
             VALUES ($1, $2, $3, 'active', $4, $4) \
             ON CONFLICT (forge, external_id) DO UPDATE SET \
               account = COALESCE(EXCLUDED.account, installations.account) \
             RETURNING id",
        )
        .bind(forge.as_str())
        .bind(external_id)
        .bind(account)
        .bind(now)
        .fetch_one(pool)
        .await
    })
}

/// Creates or updates a repository (fields the payload does not know are kept).
pub async fn upsert_repo(
    db: &Db,
    installation: Option<i64>,
    forge: Forge,
    repo: &Repo,
    state: RepoState,
    now: Millis,
) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO repositories (installation_id, forge, external_id, full_name, \
               default_branch, private, archived, fork, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (forge, external_id) DO UPDATE SET \
               installation_id = COALESCE(EXCLUDED.installation_id, repositories.installation_id), \
               full_name = EXCLUDED.full_name, \
               default_branch = COALESCE(EXCLUDED.default_branch, repositories.default_branch), \
               private = COALESCE(EXCLUDED.private, repositories.private), \
               archived = COALESCE(EXCLUDED.archived, repositories.archived), \
               fork = COALESCE(EXCLUDED.fork, repositories.fork), \
               state = EXCLUDED.state, updated_at = EXCLUDED.updated_at \
             RETURNING id",
        )
        .bind(installation)
        .bind(forge.as_str())
        .bind(repo.id.as_str())
        .bind(&repo.full_name)
        .bind(&repo.default_branch)
        .bind(repo.private)
        .bind(repo.archived)
        .bind(repo.fork)
        .bind(state.as_str())
        .bind(now)
        .fetch_one(pool)
        .await
    })
}

/// Marks repositories removed or deleted.
pub async fn set_repo_state(
    db: &Db,
    forge: Forge,
    external_id: &str,
    state: RepoState,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE repositories SET state = $1, updated_at = $2 WHERE forge = $3 AND external_id = $4",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(forge.as_str())
        .bind(external_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Remembers the latest default-branch commit seen for a repository.
pub async fn record_push(
    db: &Db,
    forge: Forge,
    external_id: &str,
    sha: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE repositories SET last_push_sha = $1, updated_at = $2 \
             WHERE forge = $3 AND external_id = $4",
        )
        .bind(sha)
        .bind(now)
        .bind(forge.as_str())
        .bind(external_id)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// An installation as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InstallationRow {
    /// Row id.
    pub id: i64,
    /// Forge name.
    pub forge: String,
    /// Forge id.
    pub external_id: String,
    /// Account / group / workspace name.
    pub account: Option<String>,
    /// active, suspended or deleted.
    pub state: String,
}

/// A repository as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RepoRow {
    /// Row id.
    pub id: i64,
    /// Owning installation row.
    pub installation_id: Option<i64>,
    /// Forge name.
    pub forge: String,
    /// Forge id.
    pub external_id: String,
    /// Display name.
    pub full_name: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Archived.
    pub archived: Option<bool>,
    /// Fork.
    pub fork: Option<bool>,
    /// active, removed or deleted.
    pub state: String,
    /// Last default-branch commit seen.
    pub last_push_sha: Option<String>,
}

/// Looks up an installation.
pub async fn get_installation(
    db: &Db,
    forge: Forge,
    external_id: &str,
) -> Result<Option<InstallationRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, external_id, account, state FROM installations \
             WHERE forge = $1 AND external_id = $2",
        )
        .bind(forge.as_str())
        .bind(external_id)
        .fetch_optional(pool)
        .await
    })
}

/// Installations of a forge.
pub async fn list_installations(
    db: &Db,
    forge: Forge,
) -> Result<Vec<InstallationRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, external_id, account, state FROM installations \
             WHERE forge = $1 ORDER BY id",
        )
        .bind(forge.as_str())
        .fetch_all(pool)
        .await
    })
}

/// Repositories of an installation, by name.
pub async fn list_repos(db: &Db, installation: i64) -> Result<Vec<RepoRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, installation_id, forge, external_id, full_name, default_branch, archived, \
               fork, state, last_push_sha FROM repositories WHERE installation_id = $1 \
             ORDER BY full_name",
        )
        .bind(installation)
        .fetch_all(pool)
        .await
    })
}

/// Looks up a repository.
pub async fn get_repo(
    db: &Db,
    forge: Forge,
    external_id: &str,
) -> Result<Option<RepoRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, installation_id, forge, external_id, full_name, default_branch, archived, \
               fork, state, last_push_sha FROM repositories WHERE forge = $1 AND external_id = $2",
        )
        .bind(forge.as_str())
        .bind(external_id)
        .fetch_optional(pool)
        .await
    })
}
