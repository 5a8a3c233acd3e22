//! Deploy credentials: operators store them through the CLI (never through comments);
//! they are checked against the target's typed schema, sealed with the configured
//! [`Keyring`] and bound to their owner, kept per installation (the default) or per
//! repository (an override), and opened only to be written to that repository's forge.
//! Every change is audited. No function here returns a value to a person: `list` shows
//! names, and [`resolve_for_repo`] is for the forge writer alone.

use crate::clock::Millis;
use crate::config::Secret;
use crate::crypto::{CryptoError, Keyring, Owner};
use crate::db::audit::{Actor, AuditEntry};
use crate::db::credentials::{self as store, CredentialInfo, CredentialOwner, SealedRow};
use crate::db::Db;
use crate::deploy::{CredentialField, DeployTarget, Wire};
use crate::forge::Forge;

/// Largest credential value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Rows re-sealed per batch by [`rotate_key`].
pub const ROTATE_BATCH: i64 = 200;

/// What went wrong; none of the variants carries a credential value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No keyring configured.
    #[error(
        "PIPEWRIGHT_CREDENTIALS_KEY (or _FILE) is not set: credentials are stored encrypted \
         and need a key (make one with `openssl rand -base64 32`)"
    )]
    NoKey,
    /// The installation is not known to pipewright.
    #[error("pipewright does not know the {forge} installation `{installation}` (see `reconcile`, `gitlab connect`, `bitbucket connect`)")]
    UnknownInstallation {
        /// Forge.
        forge: Forge,
        /// What was given.
        installation: String,
    },
    /// The repository is not one of the installation's.
    #[error("the installation `{installation}` has no repository `{repo}`")]
    UnknownRepository {
        /// Installation.
        installation: String,
        /// What was given.
        repo: String,
    },
    /// The name is not in the target's schema.
    #[error("{target} has no credential `{name}` (it reads: {expected})")]
    UnknownName {
        /// Target.
        target: DeployTarget,
        /// What was given.
        name: String,
        /// The schema's names.
        expected: String,
    },
    /// No name given and the target has several.
    #[error("{target} reads several credentials ({expected}): say which with --name")]
    NameNeeded {
        /// Target.
        target: DeployTarget,
        /// The schema's names.
        expected: String,
    },
    /// The value fails its check.
    #[error("{name} {reason}")]
    Invalid {
        /// Field name.
        name: &'static str,
        /// Why (never the value).
        reason: String,
    },
    /// Encryption failed (wrong or missing key, altered row).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Where a credential belongs, as an operator names it.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Forge.
    pub forge: Forge,
    /// Installation's external id (GitHub installation id, GitLab group, Bitbucket
    /// workspace slug or UUID).
    pub installation: String,
    /// A repository of it (full name or external id), for an override.
    pub repo: Option<String>,
}

/// The owner binding of a stored row (forge, installation, repository, target, name).
pub fn owner_of(o: &CredentialOwner, target: &str, name: &str) -> Owner {
    Owner::new([
        "deploy-credential",
        o.forge.as_str(),
        o.installation.as_str(),
        o.repository.as_deref().unwrap_or(""),
        target,
        name,
    ])
}

fn row_owner(r: &SealedRow) -> Owner {
    owner_of(
        &CredentialOwner {
            forge: r.forge.clone(),
            installation: r.installation.clone(),
            repository: (!r.repository.is_empty()).then(|| r.repository.clone()),
        },
        &r.target,
        &r.name,
    )
}

/// Resolves an operator's scope to stored ids: the installation must be known, and the
/// repository must be one of its own (tenant isolation starts here).
async fn resolve_scope(
    db: &Db,
    scope: &Scope,
) -> Result<(CredentialOwner, Option<String>), CredentialError> {
    let inst = store::find_installation(db, scope.forge.as_str(), &scope.installation)
        .await?
        .ok_or_else(|| CredentialError::UnknownInstallation {
            forge: scope.forge,
            installation: scope.installation.clone(),
        })?;
    let (repository, name) = match &scope.repo {
        None => (None, None),
        Some(r) => {
            let (ext, full_name) =
                store::find_repository(db, inst.0, r)
                    .await?
                    .ok_or_else(|| CredentialError::UnknownRepository {
                        installation: scope.installation.clone(),
                        repo: r.clone(),
                    })?;
            (Some(ext), Some(full_name))
        }
    };
    Ok((
        CredentialOwner {
            forge: scope.forge.as_str().to_owned(),
            installation: inst.1,
            repository,
        },
        name,
    ))
}

fn names(target: DeployTarget) -> String {
    target
        .spec()
        .credentials
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema field `name` of `target` (or its only secret one when `name` is `None`).
pub fn field(
    target: DeployTarget,
    name: Option<&str>,
) -> Result<&'static CredentialField, CredentialError> {
    let spec = target.spec();
    match name {
        Some(n) => {
            spec.field(&n.to_ascii_uppercase())
                .ok_or_else(|| CredentialError::UnknownName {
                    target,
                    name: n.chars().take(64).collect(),
                    expected: names(target),
                })
        }
        None => spec
            .default_field()
            .ok_or_else(|| CredentialError::NameNeeded {
                target,
                expected: names(target),
            }),
    }
}

/// Normalises and checks a value read from a file or stdin: surrounding blank space
/// goes, a multi-line value (a key) keeps one final newline.
pub fn normalise(field: &CredentialField, raw: &str) -> Result<Secret, CredentialError> {
    if raw.len() > MAX_VALUE_BYTES {
        return Err(CredentialError::Invalid {
            name: field.name,
            reason: format!("is larger than {MAX_VALUE_BYTES} bytes"),
        });
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(CredentialError::Invalid {
            name: field.name,
            reason: "is empty".into(),
        });
    }
    (field.check)(trimmed).map_err(|reason| CredentialError::Invalid {
        name: field.name,
        reason,
    })?;
    Ok(Secret::new(if trimmed.contains('\n') {
        format!("{trimmed}\n")
    } else {
        trimmed.to_owned()
    }))
}

/// Stores one value (replacing any), sealed, and audits it.
#[allow(clippy::too_many_arguments)]
pub async fn set(
    db: &Db,
    keyring: Option<&Keyring>,
    scope: &Scope,
    target: DeployTarget,
    name: Option<&str>,
    raw_value: &Secret,
    actor: &Actor,
    now: Millis,
) -> Result<&'static str, CredentialError> {
    let keyring = keyring.ok_or(CredentialError::NoKey)?;
    let field = field(target, name)?;
    let value = normalise(field, raw_value.expose())?;
    let (owner, repo_name) = resolve_scope(db, scope).await?;
    let sealed = keyring.seal(
        &owner_of(&owner, target.as_str(), field.name),
        value.expose().as_bytes(),
    )?;
    let mut audit = AuditEntry::new(actor.clone(), "credentials.set");
    audit.forge = Some(owner.forge.clone());
    audit.installation = Some(owner.installation.clone());
    audit.repository = owner.repository.clone();
    audit.repository_name = repo_name.clone();
    audit.target = Some(target.as_str().into());
    audit.details = serde_json::json!({
        "name": field.name,
        "scope": if owner.repository.is_some() { "repository" } else { "installation" },
        "key_id": sealed.key_id,
    });
    store::upsert(
        db,
        &owner,
        repo_name.as_deref(),
        target.as_str(),
        field.name,
        &sealed,
        &audit,
        now,
    )
    .await?;
    Ok(field.name)
}

/// Deletes a scope's values of `target` (one `name`, or all), audited. Needs no key.
pub async fn delete(
    db: &Db,
    scope: &Scope,
    target: DeployTarget,
    name: Option<&str>,
    actor: &Actor,
    now: Millis,
) -> Result<u64, CredentialError> {
    let name = match name {
        Some(n) => Some(field(target, Some(n))?.name),
        None => None,
    };
    let (owner, repo_name) = resolve_scope(db, scope).await?;
    let mut audit = AuditEntry::new(actor.clone(), "credentials.delete");
    audit.forge = Some(owner.forge.clone());
    audit.installation = Some(owner.installation.clone());
    audit.repository = owner.repository.clone();
    audit.repository_name = repo_name;
    audit.target = Some(target.as_str().into());
    audit.details = serde_json::json!({ "name": name.unwrap_or("*") });
    Ok(store::delete(db, &owner, target.as_str(), name, &audit, now).await?)
}

/// Metadata of an installation's credentials (no values).
pub async fn list(
    db: &Db,
    forge: Forge,
    installation: Option<&str>,
) -> Result<Vec<CredentialInfo>, CredentialError> {
    let installation = match installation {
        Some(i) => Some(
            store::find_installation(db, forge.as_str(), i)
                .await?
                .ok_or_else(|| CredentialError::UnknownInstallation {
                    forge,
                    installation: i.to_owned(),
                })?
                .1,
        ),
        None => None,
    };
    Ok(store::list(db, forge.as_str(), installation.as_deref()).await?)
}

/// A credential ready to be written to a forge: its schema field and its value.
#[derive(Debug)]
pub struct Resolved {
    /// The schema field (name, secret or not, how it is written).
    pub field: &'static CredentialField,
    /// The value.
    pub value: Secret,
}

impl Resolved {
    /// The value as the forge should hold it ([`Wire`]).
    pub fn wire_value(&self) -> Secret {
        use base64::Engine as _;
        match self.field.wire {
            Wire::Plain => self.value.clone(),
            Wire::Base64 => {
                Secret::new(base64::engine::general_purpose::STANDARD.encode(self.value.expose()))
            }
        }
    }
}

/// The values of `target` for one repository (its row id): its overrides, else its
/// installation's defaults. The installation is read from the repository's own row, so
/// a credential of another installation can never be returned; a row copied between
/// owners fails to open (its associated data names its owner).
pub async fn resolve_for_repo(
    db: &Db,
    keyring: Option<&Keyring>,
    repository_row: i64,
    target: DeployTarget,
) -> Result<Vec<Resolved>, CredentialError> {
    let keyring = keyring.ok_or(CredentialError::NoKey)?;
    let Some((forge, installation, repo_ext)) = store::repository_owner(db, repository_row).await?
    else {
        return Ok(Vec::new());
    };
    let rows = store::for_repository(db, &forge, &installation, &repo_ext, target.as_str()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(field) = target.spec().field(&r.name) else {
            continue;
        };
        let value = keyring.open_text(&row_owner(&r), &r.sealed())?;
        out.push(Resolved { field, value });
    }
    Ok(out)
}

/// The names stored for a repository (its overrides and its installation's defaults),
/// per target, without opening anything: what the PR body shows as "stored".
pub async fn stored_names(
    db: &Db,
    repository_row: i64,
) -> Result<Vec<(DeployTarget, String)>, sqlx::Error> {
    let Some((forge, installation, repo_ext)) = store::repository_owner(db, repository_row).await?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for target in crate::deploy::TARGETS {
        for r in
            store::for_repository(db, &forge, &installation, &repo_ext, target.as_str()).await?
        {
            out.push((target, r.name));
        }
    }
    Ok(out)
}

/// Names of required fields of `target` that `resolved` lacks.
pub fn missing(target: DeployTarget, resolved: &[Resolved]) -> Vec<&'static str> {
    target
        .spec()
        .credentials
        .iter()
        .filter(|f| f.required && !resolved.iter().any(|r| r.field.name == f.name))
        .map(|f| f.name)
        .collect()
}

/// What [`rotate_key`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Rows re-sealed under the primary key.
    pub resealed: u64,
    /// Rows changed by someone else meanwhile (already current).
    pub raced: u64,
}

/// Re-seals every value not under the keyring's first key. All-or-nothing per value:
/// a value that cannot be opened (its key is missing) stops the run with that error and
/// leaves every remaining row as it was, so it can be run again once the key is back.
pub async fn rotate_key(
    db: &Db,
    keyring: Option<&Keyring>,
    actor: &Actor,
    now: Millis,
) -> Result<RotateReport, CredentialError> {
    let keyring = keyring.ok_or(CredentialError::NoKey)?;
    // Open the whole batch before writing any of it: a wrong key changes nothing.
    let mut report = RotateReport::default();
    let mut from_keys = std::collections::BTreeSet::new();
    loop {
        let rows = store::sealed_with_other_keys(db, keyring.primary_id(), ROTATE_BATCH).await?;
        if rows.is_empty() {
            break;
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for r in &rows {
            let owner = row_owner(r);
            let plain = keyring.open(&owner, &r.sealed())?;
            resealed.push(keyring.seal(&owner, &plain)?);
        }
        for (r, s) in rows.iter().zip(&resealed) {
            if store::reseal(db, r.id, &r.key_id, &r.nonce, s).await? {
                report.resealed += 1;
                from_keys.insert(r.key_id.clone());
            } else {
                report.raced += 1;
            }
        }
    }
    let mut audit = AuditEntry::new(actor.clone(), "credentials.rotate_key");
    audit.details = serde_json::json!({
        "to_key": keyring.primary_id(),
        "from_keys": from_keys,
        "resealed": report.resealed,
    });
    crate::db::audit::record(db, &audit, now).await?;
    Ok(report)
}
