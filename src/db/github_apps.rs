//! The `github_apps` table: GitHub Apps created by the one-click setup, their secrets
//! sealed (see `console::setup`). This module stores and reads rows; it never sees a
//! secret in the clear.

use crate::clock::Millis;
use crate::db::{with_pool, Db};

/// One stored App.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredApp {
    /// GitHub's App id.
    pub app_id: i64,
    /// Slug.
    pub slug: String,
    /// Account that owns it.
    pub owner: Option<String>,
    /// Its settings page.
    pub html_url: Option<String>,
    /// OAuth client id (public).
    pub client_id: Option<String>,
    /// Id of the keyring key that sealed the secrets.
    pub key_id: String,
    /// Base64 nonce.
    pub nonce: String,
    /// Base64 ciphertext and tag of the secret document.
    pub ciphertext: String,
    /// When it was stored.
    pub created_at: Millis,
}

/// Stores an App (replacing an earlier row for the same App id).
pub async fn store(db: &Db, app: &StoredApp) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO github_apps (app_id, slug, owner, html_url, client_id, key_id, nonce, \
               ciphertext, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (app_id) DO UPDATE SET slug = EXCLUDED.slug, owner = EXCLUDED.owner, \
               html_url = EXCLUDED.html_url, client_id = EXCLUDED.client_id, \
               key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, \
               ciphertext = EXCLUDED.ciphertext, created_at = EXCLUDED.created_at",
        )
        .bind(app.app_id)
        .bind(&app.slug)
        .bind(&app.owner)
        .bind(&app.html_url)
        .bind(&app.client_id)
        .bind(&app.key_id)
        .bind(&app.nonce)
        .bind(&app.ciphertext)
        .bind(app.created_at)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// The most recently stored App.
pub async fn latest(db: &Db) -> Result<Option<StoredApp>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT app_id, slug, owner, html_url, client_id, key_id, nonce, ciphertext, created_at \
             FROM github_apps ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
    })
}
