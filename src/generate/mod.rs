//! Workflow generation: from an [`Analysis`] to the files pipewright proposes, for
//! exactly the detected stack. Pure, like detection: no forge, database or clock.
//!
//! Rust decides (which setup, which cache, which matrix, which commands, in `github.rs`);
//! templates in `templates/` only lay the decided data out as YAML (`render.rs`). Every
//! file is parsed and checked against the safety rules before it is returned
//! (`validate.rs`): an invalid file is an error, never output.
//!

pub mod bitbucket;
pub mod github;
pub mod gitlab;
pub mod images;
pub mod pins;
pub mod render;
pub mod validate;

use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

use crate::analyze::Analysis;

/// Where the CI runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub Actions (`.github/workflows/*.yml`).
    Github,
    /// GitLab CI (`.gitlab-ci.yml`).
    Gitlab,
    /// Bitbucket Pipelines (`bitbucket-pipelines.yml`).
    Bitbucket,
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Provider::Github),
            "gitlab" => Ok(Provider::Gitlab),
            "bitbucket" => Ok(Provider::Bitbucket),
            other => Err(format!(
                "unknown provider `{other}` (github, gitlab or bitbucket)"
            )),
        }
    }
}

/// What to generate for.
#[derive(Debug, Clone)]
pub struct Target {
    /// CI provider.
    pub provider: Provider,
    /// Branch whose pushes run CI (pull requests always do).
    pub default_branch: String,
    /// A directory whose templates override the built-in ones.
    pub template_dir: Option<PathBuf>,
}

impl Target {
    /// GitHub Actions on `main`, built-in templates.
    pub fn github() -> Target {
        Target {
            provider: Provider::Github,
            default_branch: "main".to_owned(),
            template_dir: None,
        }
    }
}

/// A file of the proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedFile {
    /// Repository path (`.github/workflows/ci.yml`).
    pub path: String,
    /// Content.
    pub content: String,
}

/// Why nothing could be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A template failed to render (a bad override, usually).
    #[error("template {name}: {message}")]
    Template {
        /// Template name.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// A generated file broke a safety or structure rule; it is not emitted.
    #[error("generated {path} is invalid: {}", problems.join("; "))]
    Invalid {
        /// File path.
        path: String,
        /// What is wrong.
        problems: Vec<String>,
    },
}

/// The files pipewright would put in its pull request.
pub fn generate(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    let files = match target.provider {
        Provider::Github => github::generate(analysis, target)?,
        Provider::Gitlab => gitlab::generate(analysis, target)?,
        Provider::Bitbucket => bitbucket::generate(analysis, target)?,
    };
    for f in &files {
        let problems = validate::check(target.provider, &f.content);
        if !problems.is_empty() {
            return Err(GenerateError::Invalid {
                path: f.path.clone(),
                problems,
            });
        }
    }
    Ok(files)
}
