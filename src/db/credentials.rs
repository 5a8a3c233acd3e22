//! The `deploy_credentials` table: deploy credentials sealed at rest (see `crypto`), one
//! row per named value, owned by an installation (its default) or one repository of it
//! (an override). Every change is recorded in `audit_log` in the same transaction.
//!
//! This module stores and returns [`Sealed`] envelopes only; it never sees a plaintext
//! value. Sealing, opening and validation are `credentials::` work.

use serde::Serialize;

use crate::clock::Millis;
use crate::crypto::Sealed;
use crate::db::audit::{insert_audit, AuditEntry};
use crate::db::{with_pool, Db};

/// Whose credential a row is: an installation's default, or one repository's override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialOwner {
    /// Forge (`github`, `gitlab`, `bitbucket`).
    pub forge: String,
    /// Installation's external id.
    pub installation: String,
    /// Repository's external id; `None` for the installation's default.
    pub repository: Option<String>,
}

impl CredentialOwner {
    fn repository_key(&self) -> &str {
        self.repository.as_deref().unwrap_or("")
    }
}

/// A credential's metadata (never its value), as `credentials list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CredentialInfo {
    /// Forge.
    pub forge: String,
    /// Installation's external id.
    pub installation: String,
    /// Repository's external id; empty for the installation default.
    pub repository: String,
    /// Repository's name when it was set.
    pub repository_name: Option<String>,
    /// Deploy target.
    pub target: String,
    /// Value name (e.g. `FLY_API_TOKEN`).
    pub name: String,
    /// Id of the key that sealed it.
    pub key_id: String,
    /// First stored.
    pub created_at: Millis,
    /// Last changed.
    pub updated_at: Millis,
}

/// One sealed row with everything needed to rebuild its owner binding.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedRow {
    /// Row id.
    pub id: i64,
    /// Forge.
    pub forge: String,
    /// Installation's external id.
    pub installation: String,
    /// Repository's external id; empty for the installation default.
    pub repository: String,
    /// Deploy target.
    pub target: String,
    /// Value name.
    pub name: String,
    /// Key id.
    pub key_id: String,
    /// Base64 nonce.
    pub nonce: String,
    /// Base64 ciphertext.
    pub ciphertext: String,
}

impl SealedRow {
    /// The stored envelope.
    pub fn sealed(&self) -> Sealed {
        Sealed {
            key_id: self.key_id.clone(),
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

/// Stores (or replaces) one sealed value and records `audit` in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn upsert(
    db: &Db,
    owner: &CredentialOwner,
    repository_name: Option<&str>,
    target: &str,
    name: &str,
    sealed: &Sealed,
    audit: &AuditEntry,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO deploy_credentials (forge, installation, repository, repository_name, \
               target, name, key_id, nonce, ciphertext, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (forge, installation, repository, target, name) DO UPDATE SET \
               repository_name = EXCLUDED.repository_name, key_id = EXCLUDED.key_id, \
               nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, \
               updated_at = EXCLUDED.updated_at",
        )
        .bind(&owner.forge)
        .bind(&owner.installation)
        .bind(owner.repository_key())
        .bind(repository_name)
        .bind(target)
        .bind(name)
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_audit!(&mut *tx, audit, now)?;
        tx.commit().await
    })
}

/// Deletes an owner's values of `target` (only `name` when given) and records `audit`
/// in the same transaction when anything was deleted. Returns how many rows went.
pub async fn delete(
    db: &Db,
    owner: &CredentialOwner,
    target: &str,
    name: Option<&str>,
    audit: &AuditEntry,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let n = sqlx::query(
            "DELETE FROM deploy_credentials WHERE forge = $1 AND installation = $2 \
               AND repository = $3 AND target = $4 AND ($5 IS NULL OR name = $5)",
        )
        .bind(&owner.forge)
        .bind(&owner.installation)
        .bind(owner.repository_key())
        .bind(target)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            insert_audit!(&mut *tx, audit, now)?;
        }
        tx.commit().await?;
        Ok(n)
    })
}

/// Metadata of an installation's credentials (defaults and every override), or of every
/// installation of a forge when `installation` is `None`.
pub async fn list(
    db: &Db,
    forge: &str,
    installation: Option<&str>,
) -> Result<Vec<CredentialInfo>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT forge, installation, repository, repository_name, target, name, key_id, \
               created_at, updated_at FROM deploy_credentials \
             WHERE forge = $1 AND ($2 IS NULL OR installation = $2) \
             ORDER BY installation, target, repository, name",
        )
        .bind(forge)
        .bind(installation)
        .fetch_all(pool)
        .await
    })
}

/// The sealed values of `target` that apply to one repository of one installation: its
/// overrides, and the installation's defaults for names it does not override. Rows of
/// any other installation are never returned, whatever the repository id.
pub async fn for_repository(
    db: &Db,
    forge: &str,
    installation: &str,
    repository: &str,
    target: &str,
) -> Result<Vec<SealedRow>, sqlx::Error> {
    let rows: Vec<SealedRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, installation, repository, target, name, key_id, nonce, ciphertext \
             FROM deploy_credentials \
             WHERE forge = $1 AND installation = $2 AND target = $3 \
               AND (repository = $4 OR repository = '') \
             ORDER BY name, repository DESC",
        )
        .bind(forge)
        .bind(installation)
        .bind(target)
        .bind(repository)
        .fetch_all(pool)
        .await
    })?;
    // Ordered by name, override ('' sorts last under DESC) first: keep the first per name.
    let mut out: Vec<SealedRow> = Vec::with_capacity(rows.len());
    for r in rows {
        if out.last().is_none_or(|l| l.name != r.name) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Rows not sealed with `current_key`, at most `limit` of them (key rotation works in
/// batches so a large table never holds one long transaction).
pub async fn sealed_with_other_keys(
    db: &Db,
    current_key: &str,
    limit: i64,
) -> Result<Vec<SealedRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, forge, installation, repository, target, name, key_id, nonce, ciphertext \
             FROM deploy_credentials WHERE key_id <> $1 ORDER BY id LIMIT $2",
        )
        .bind(current_key)
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// Replaces a row's envelope if it still holds the one that was read (`old_key_id`,
/// `old_nonce`): a concurrent `credentials set` is never overwritten with the old value.
/// Returns whether the row was updated.
pub async fn reseal(
    db: &Db,
    id: i64,
    old_key_id: &str,
    old_nonce: &str,
    sealed: &Sealed,
) -> Result<bool, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE deploy_credentials SET key_id = $1, nonce = $2, ciphertext = $3 \
             WHERE id = $4 AND key_id = $5 AND nonce = $6",
        )
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(id)
        .bind(old_key_id)
        .bind(old_nonce)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// An installation by its external id, or by its account name (a Bitbucket workspace's
/// slug, a GitHub organisation's login): `(row id, external id)`.
pub async fn find_installation(
    db: &Db,
    forge: &str,
    id_or_account: &str,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, external_id FROM installations WHERE forge = $1 \
               AND (external_id = $2 OR LOWER(account) = LOWER($2)) \
             ORDER BY CASE WHEN external_id = $2 THEN 0 ELSE 1 END, id LIMIT 1",
        )
        .bind(forge)
        .bind(id_or_account)
        .fetch_optional(pool)
        .await
    })
}

/// A repository of one installation (its row id), by full name (any case) or external
/// id: `(external id, full name)`. Repositories of other installations are not found.
pub async fn find_repository(
    db: &Db,
    installation_row: i64,
    name_or_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT external_id, full_name FROM repositories WHERE installation_id = $1 \
               AND (external_id = $2 OR LOWER(full_name) = LOWER($2)) \
             ORDER BY CASE WHEN external_id = $2 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(installation_row)
        .bind(name_or_id)
        .fetch_optional(pool)
        .await
    })
}

/// The owner of a repository row, from the database's own link between the repository
/// and its installation: `(forge, installation external id, repository external id)`.
pub async fn repository_owner(
    db: &Db,
    repository_row: i64,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT i.forge, i.external_id, r.external_id FROM repositories r \
             JOIN installations i ON i.id = r.installation_id \
             WHERE r.id = $1 AND i.forge = r.forge",
        )
        .bind(repository_row)
        .fetch_optional(pool)
        .await
    })
}
