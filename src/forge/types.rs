//! Identifiers shared by every forge. Repositories and installations are identified by
//! the forge's stable id (renames and transfers happen); names are for display only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The code hosts pipewright talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    /// github.com or GitHub Enterprise Server, as a GitHub App.
    Github,
    /// gitlab.com or a self-managed GitLab.
    Gitlab,
    /// Bitbucket Cloud.
    Bitbucket,
}

impl Forge {
    /// Every forge, in a stable order (for metrics and docs).
    pub const ALL: [Forge; 3] = [Forge::Github, Forge::Gitlab, Forge::Bitbucket];

    /// The lowercase name used in URLs, metrics, the database and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Bitbucket => "bitbucket",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Forge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Forge::Github),
            "gitlab" => Ok(Forge::Gitlab),
            "bitbucket" => Ok(Forge::Bitbucket),
            other => Err(format!(
                "unknown forge `{other}` (expected github, gitlab or bitbucket)"
            )),
        }
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl $name {
            /// The id as text, as stored in the database.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Stable id of an installation: the GitHub App installation id, the GitLab top-level
    /// group's full path, or the Bitbucket workspace UUID (with braces).
    InstallationId
);
string_id!(
    /// Stable id of a repository: GitHub repository id, GitLab project id, or Bitbucket
    /// repository UUID (with braces).
    RepoId
);
string_id!(
    /// A full commit SHA (40 hex digits for SHA-1 repositories).
    CommitSha
);
