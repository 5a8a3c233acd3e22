//! Webhook payload parsing entry point: `(forge, event header, raw body)` → typed events.
//! Each forge's parser lives in `<forge>/payload.rs` and models only the fields we use;
//! errors name the JSON path that was wrong (`serde_path_to_error`).

use serde::de::DeserializeOwned;

use super::{bitbucket, github, gitlab, Forge, ForgeEvent};

/// A body that is not the JSON the event promises (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all (or truncated, or trailing garbage).
    #[error("{event} payload is not valid JSON: {message}")]
    NotJson {
        /// Event header value.
        event: String,
        /// The JSON parser's message.
        message: String,
    },
    /// JSON, but a field is missing or has the wrong type.
    #[error("{event} payload is malformed at `{path}`: {message}")]
    Malformed {
        /// Event header value.
        event: String,
        /// JSON path of the offending value (`.` for the root).
        path: String,
        /// What was wrong.
        message: String,
    },
    /// JSON of the right shape whose values make no sense (e.g. an unknown ref kind).
    #[error("{event} payload is invalid: {message}")]
    Invalid {
        /// Event header value.
        event: String,
        /// What was wrong.
        message: String,
    },
}

/// Whether pipewright parses this event at all. Others are answered 202 and ignored
/// without reading the body.
pub fn is_known_event(forge: Forge, event_name: &str) -> bool {
    match forge {
        Forge::Github => github::payload::EVENTS.contains(&event_name),
        Forge::Gitlab => gitlab::payload::EVENTS.contains(&event_name),
        Forge::Bitbucket => bitbucket::payload::EVENTS.contains(&event_name),
    }
}

/// Parses a delivery. An empty list means "nothing for pipewright" (202, no job).
pub fn parse(forge: Forge, event_name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    match forge {
        Forge::Github => github::payload::parse(event_name, body),
        Forge::Gitlab => gitlab::payload::parse(event_name, body),
        Forge::Bitbucket => bitbucket::payload::parse(event_name, body),
    }
}

/// Deserializes `body` as `T`, naming the JSON path of the first error.
pub(crate) fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            PayloadError::NotJson {
                event: event.to_owned(),
                message: inner.to_string(),
            }
        } else {
            PayloadError::Malformed {
                event: event.to_owned(),
                path,
                message: inner.to_string(),
            }
        }
    })?;
    de.end().map_err(|e| PayloadError::NotJson {
        event: event.to_owned(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// A forge id that some payloads send as a number and others as a string.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum AnyId {
    /// Numeric id.
    Num(u64),
    /// Textual id (UUIDs, or numbers sent as strings).
    Text(String),
}

impl AnyId {
    /// The id as text.
    pub(crate) fn into_string(self) -> String {
        match self {
            AnyId::Num(n) => n.to_string(),
            AnyId::Text(s) => s,
        }
    }
}

/// `None` for the all-zero SHA forges use for "no commit" (created or deleted refs).
pub(crate) fn non_zero_sha(sha: &str) -> Option<super::CommitSha> {
    if sha.is_empty() || sha.bytes().all(|b| b == b'0') {
        None
    } else {
        Some(super::CommitSha(sha.to_owned()))
    }
}

/// Splits `refs/heads/x` / `refs/tags/x` into a typed ref.
pub(crate) fn git_ref(event: &str, full: &str) -> Result<super::event::GitRef, PayloadError> {
    use super::event::GitRef;
    if let Some(b) = full.strip_prefix("refs/heads/") {
        Ok(GitRef::Branch(b.to_owned()))
    } else if let Some(t) = full.strip_prefix("refs/tags/") {
        Ok(GitRef::Tag(t.to_owned()))
    } else {
        Err(PayloadError::Invalid {
            event: event.to_owned(),
            message: format!(
                "ref `{}` is neither a branch nor a tag",
                full.chars().take(200).collect::<String>()
            ),
        })
    }
}

/// The files a pushed commit touched (GitHub and GitLab share this shape).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CommitFiles {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

/// Sorted, de-duplicated union of the files touched by `commits`.
pub(crate) fn changed_paths(commits: &[CommitFiles]) -> Vec<String> {
    let mut all: Vec<String> = commits
        .iter()
        .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    all
}
