//! The `embeddings` and `repo_conventions` tables: vectors cached by fingerprint hash (per
//! model, so a new model never reads an old model's vectors), and per analysed repository
//! its fingerprint, primary stack and CI conventions — the database truth from which each
//! installation's sibling index is built. Every read of `repo_conventions` names one
//! installation: there is no query that mixes tenants.

use std::collections::HashMap;

use base64::Engine as _;

use crate::clock::Millis;
use crate::db::{with_pool, Db};

/// Encodes a vector for storage (little-endian f32, base64).
pub fn encode_vector(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes a stored vector; `None` when the text is not a whole number of f32 values.
pub fn decode_vector(text: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() % 4 != 0 || bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Cached vectors of `hashes` for `model` (hashes without a usable row are absent).
pub async fn get_embeddings(
    db: &Db,
    model: &str,
    hashes: &[String],
) -> Result<HashMap<String, Vec<f32>>, sqlx::Error> {
    let mut out = HashMap::new();
    // One statement per few hundred keys keeps the parameter list within both backends'
    // limits.
    for chunk in hashes.chunks(200) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT fingerprint_hash, vector FROM embeddings WHERE model_hash = $1 \
             AND fingerprint_hash IN ({})",
            placeholders.join(", ")
        );
        let rows: Vec<(String, String)> = with_pool!(db, pool => {
            let mut q = sqlx::query_as(&sql).bind(model);
            for h in chunk {
                q = q.bind(h);
            }
            q.fetch_all(pool).await
        })?;
        for (h, v) in rows {
            if let Some(v) = decode_vector(&v) {
                out.insert(h, v);
            }
        }
    }
    Ok(out)
}

/// Stores vectors (a vector already stored for the same model and hash is kept: the same
/// model on the same text gives the same vector).
pub async fn put_embeddings(
    db: &Db,
    model: &str,
    vectors: &[(String, Vec<f32>)],
    now: Millis,
) -> Result<(), sqlx::Error> {
    for (hash, v) in vectors {
        with_pool!(db, pool => {
            sqlx::query(
                "INSERT INTO embeddings (model_hash, fingerprint_hash, vector, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (model_hash, fingerprint_hash) DO NOTHING",
            )
            .bind(model)
            .bind(hash)
            .bind(encode_vector(v))
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
    }
    Ok(())
}

/// Forgets cached vectors stored before `before` that no repository's conventions refer
/// to (the repository changed, or was removed): the cache would otherwise grow with
/// every manifest edit of every repository. Returns how many were removed. Vectors still
/// referred to stay, whatever their age; a forgotten one is recomputed if its text
/// returns.
pub async fn purge_embeddings(db: &Db, before: Millis) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "DELETE FROM embeddings WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM repo_conventions c WHERE c.fingerprint_hash = embeddings.fingerprint_hash)",
        )
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Number of cached vectors per model.
pub async fn embedding_counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT model_hash, COUNT(*) FROM embeddings GROUP BY model_hash ORDER BY model_hash",
        )
        .fetch_all(pool)
        .await
    })
}

/// What one analysis recorded about a repository.
#[derive(Debug, Clone)]
pub struct NewConventions<'a> {
    /// Repository row.
    pub repository_id: i64,
    /// Its installation row.
    pub installation_id: i64,
    /// Primary stack (`""` when none).
    pub language: &'a str,
    /// Fingerprint hash (the key of its cached vector).
    pub fingerprint_hash: &'a str,
    /// Fingerprint text.
    pub fingerprint: &'a str,
    /// Does the repository have CI?
    pub has_ci: bool,
    /// JSON of its conventions.
    pub conventions: &'a str,
}

/// Records (or replaces) a repository's fingerprint and conventions.
pub async fn upsert_conventions(
    db: &Db,
    c: &NewConventions<'_>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO repo_conventions (repository_id, installation_id, language, \
               fingerprint_hash, fingerprint, has_ci, conventions, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (repository_id) DO UPDATE SET \
               installation_id = EXCLUDED.installation_id, language = EXCLUDED.language, \
               fingerprint_hash = EXCLUDED.fingerprint_hash, fingerprint = EXCLUDED.fingerprint, \
               has_ci = EXCLUDED.has_ci, conventions = EXCLUDED.conventions, \
               updated_at = EXCLUDED.updated_at",
        )
        .bind(c.repository_id)
        .bind(c.installation_id)
        .bind(c.language)
        .bind(c.fingerprint_hash)
        .bind(c.fingerprint)
        .bind(c.has_ci)
        .bind(c.conventions)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// One repository of an installation's index, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConventionsRow {
    /// Repository row (the index key).
    pub repository_id: i64,
    /// Display name.
    pub full_name: String,
    /// Repository state (only `active` ones are siblings).
    pub state: String,
    /// Primary stack.
    pub language: String,
    /// Does it have CI?
    pub has_ci: bool,
    /// JSON of its conventions.
    pub conventions: String,
    /// When it was recorded.
    pub updated_at: i64,
    /// Its vector under the asked model (`None` when not cached, or not asked for).
    pub vector: Option<String>,
}

/// Repositories of one installation recorded at or after `since`, oldest first, with
/// their vectors under `model` when `with_vectors`.
pub async fn installation_conventions(
    db: &Db,
    installation: i64,
    since: Millis,
    model: &str,
    with_vectors: bool,
) -> Result<Vec<ConventionsRow>, sqlx::Error> {
    let vector = if with_vectors {
        "e.vector"
    } else {
        "CAST(NULL AS TEXT)"
    };
    let sql = format!(
        "SELECT c.repository_id, r.full_name, r.state, c.language, c.has_ci, c.conventions, \
           c.updated_at, {vector} AS vector \
         FROM repo_conventions c JOIN repositories r ON r.id = c.repository_id \
         LEFT JOIN embeddings e ON e.model_hash = $2 AND e.fingerprint_hash = c.fingerprint_hash \
         WHERE c.installation_id = $1 AND c.updated_at >= $3 \
         ORDER BY c.updated_at, c.repository_id"
    );
    with_pool!(db, pool => {
        sqlx::query_as(&sql)
            .bind(installation)
            .bind(model)
            .bind(since)
            .fetch_all(pool)
            .await
    })
}

/// Repositories recorded for one installation.
pub async fn installation_count(db: &Db, installation: i64) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM repo_conventions WHERE installation_id = $1")
            .bind(installation)
            .fetch_one(pool)
            .await
    })
}

/// The rows of `ids` that are still recorded for `installation` (no vectors): a search
/// hit is re-read before it informs a proposal, so a replica whose index lags behind
/// an uninstall or a change never uses what the database no longer holds.
pub async fn conventions_of(
    db: &Db,
    installation: i64,
    ids: &[i64],
) -> Result<Vec<ConventionsRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT c.repository_id, r.full_name, r.state, c.language, c.has_ci, c.conventions, \
           c.updated_at, CAST(NULL AS TEXT) AS vector \
         FROM repo_conventions c JOIN repositories r ON r.id = c.repository_id \
         WHERE c.installation_id = $1 AND c.repository_id IN ({})",
        placeholders.join(", ")
    );
    with_pool!(db, pool => {
        let mut q = sqlx::query_as(&sql).bind(installation);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
}

/// Forgets everything learned from an installation's repositories (it was uninstalled);
/// returns the rows removed.
pub async fn forget_installation(db: &Db, installation: i64) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM repo_conventions WHERE installation_id = $1")
            .bind(installation)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// Per installation: (row id, forge, external id, account, state, repositories recorded).
pub async fn installation_counts(
    db: &Db,
) -> Result<Vec<(i64, String, String, Option<String>, String, i64)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT i.id, i.forge, i.external_id, i.account, i.state, \
               (SELECT COUNT(*) FROM repo_conventions c WHERE c.installation_id = i.id) \
             FROM installations i ORDER BY i.id",
        )
        .fetch_all(pool)
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_junk_is_refused() {
        let v = vec![0.5f32, -1.25, 3.0e-8, f32::MAX];
        assert_eq!(decode_vector(&encode_vector(&v)).unwrap(), v);
        assert!(decode_vector("not base64!").is_none());
        assert!(decode_vector("AAA=").is_none(), "2 bytes is no f32");
        assert!(decode_vector("").is_none());
    }
}
