//! Workflow generation: from an [`Analysis`] to the files pipewright proposes, for
//! exactly the detected stack. Pure, like detection: no forge, database or clock.
//!
//! The plan (`crate::plan`) decides every step; the renderers here (`github.rs`,
//! `gitlab.rs`, `bitbucket.rs`, with `containers.rs` for what the last two share) only
//! lay it out, and templates in `templates/` turn the laid-out data into YAML
//! (`render.rs`). Every file is parsed and checked against the safety rules before it
//! is returned (`validate.rs`): an invalid file is an error, never output.
//!

pub mod bitbucket;
pub mod containers;
pub mod github;
pub mod gitlab;
pub mod pins;
pub mod render;
pub mod validate;

use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

use crate::analyze::Analysis;

/// Where the CI runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// Optional parts of a generated CI.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    /// Lint and format checks (default on).
    Lint,
    /// A matrix over every declared runtime version (default on).
    Matrix,
    /// Docker build checks (default on).
    Docker,
    /// Dependency vulnerability scan (default off).
    Security,
    /// Coverage upload (default off; not available yet).
    Coverage,
    /// Release workflow (default off; not available yet).
    Release,
    /// Lints gate as strictly as their tools allow (default off): warnings fail
    /// (`clippy -D warnings`, `sphinx-build -W`, `mkdocs --strict`), and lints the first
    /// run made non-blocking gate again.
    #[serde(rename = "strict-lint")]
    #[value(name = "strict-lint")]
    StrictLint,
}

/// Which features are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// See [`Feature::Lint`].
    pub lint: bool,
    /// See [`Feature::Matrix`].
    pub matrix: bool,
    /// See [`Feature::Docker`].
    pub docker: bool,
    /// See [`Feature::Security`].
    pub security: bool,
    /// See [`Feature::Coverage`].
    pub coverage: bool,
    /// See [`Feature::Release`].
    pub release: bool,
    /// See [`Feature::StrictLint`].
    pub strict_lint: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            lint: true,
            matrix: true,
            docker: true,
            security: false,
            coverage: false,
            release: false,
            strict_lint: false,
        }
    }
}

impl Features {
    /// Switches one feature.
    pub fn set(&mut self, f: Feature, on: bool) {
        match f {
            Feature::Lint => self.lint = on,
            Feature::Matrix => self.matrix = on,
            Feature::Docker => self.docker = on,
            Feature::Security => self.security = on,
            Feature::Coverage => self.coverage = on,
            Feature::Release => self.release = on,
            Feature::StrictLint => self.strict_lint = on,
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
    /// Branches whose pushes run CI, overriding `default_branch` (`.pipewright.yml`).
    pub branches: Option<Vec<String>>,
    /// A directory whose templates override the built-in ones.
    pub template_dir: Option<PathBuf>,
    /// Optional parts on or off.
    pub features: Features,
    /// Commands run after the tests in every project's job.
    pub extra_steps: Vec<crate::repo_config::ExtraStep>,
    /// Paths whose changes alone do not run CI (GitHub).
    pub paths_ignore: Vec<String>,
    /// Runner labels; empty = the provider's hosted Linux runner.
    pub runs_on: Vec<String>,
    /// Changes learned from CI runs or asked for by people, applied to the plan.
    pub adjustments: Vec<crate::plan::Adjustment>,
    /// GitHub: the org's reusable workflow the primary project's job calls (adopted from
    /// sibling repositories that call it).
    pub reusable_workflow: Option<crate::analyze::conventions::ReusableCall>,
    /// Deploy targets with their settings decided ([`crate::deploy::context`]): the plan
    /// gains a delivery workflow for them.
    pub deploy: Vec<(crate::deploy::DeployTarget, crate::deploy::DeployContext)>,
}

impl Target {
    /// GitHub Actions on `main`, built-in templates, default features.
    pub fn github() -> Target {
        Target {
            provider: Provider::Github,
            default_branch: "main".to_owned(),
            branches: None,
            template_dir: None,
            features: Features::default(),
            extra_steps: Vec::new(),
            paths_ignore: Vec::new(),
            runs_on: Vec::new(),
            adjustments: Vec::new(),
            reusable_workflow: None,
            deploy: Vec::new(),
        }
    }

    /// Applies a repository's `.pipewright.yml` (its provider wins over the forge's).
    pub fn with_repo_config(mut self, c: &crate::repo_config::RepoConfig) -> Target {
        if let Some(p) = c.provider {
            self.provider = p.into();
        }
        if c.branches.is_some() {
            self.branches = c.branches.clone();
        }
        let f = c.features;
        for (feature, value) in [
            (Feature::Lint, f.lint),
            (Feature::Matrix, f.matrix),
            (Feature::Docker, f.docker),
            (Feature::Security, f.security),
            (Feature::Coverage, f.coverage),
            (Feature::Release, f.release),
            (Feature::StrictLint, f.strict_lint),
        ] {
            if let Some(on) = value {
                self.features.set(feature, on);
            }
        }
        self.extra_steps = c.extra_steps.clone();
        self.paths_ignore = c.paths_ignore.clone();
        self.runs_on = c.runs_on.clone();
        self
    }

    /// Branches whose pushes run CI.
    pub fn push_branches(&self) -> Vec<String> {
        self.branches
            .clone()
            .unwrap_or_else(|| vec![self.default_branch.clone()])
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
    /// A branch name that cannot be written safely into every provider's syntax.
    #[error("branch `{0}` has characters pipewright will not put in a CI file (allowed: letters, digits, . _ / * -)")]
    BadBranch(String),
    /// A generated file broke a safety or structure rule; it is not emitted.
    #[error("generated {path} is invalid: {}", problems.join("; "))]
    Invalid {
        /// File path.
        path: String,
        /// What is wrong.
        problems: Vec<String>,
    },
}

/// A branch name pipewright writes to (its PR branch): git-valid, no globs, nothing a
/// URL or YAML could misread.
pub fn is_safe_branch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 200
        && !b.starts_with(['/', '.', '-'])
        && !b.ends_with(['/', '.'])
        && !b.contains("..")
        && !b.contains("//")
        && !b.ends_with(".lock")
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
}

/// The files pipewright would put in its pull request: the plan for `analysis`, laid
/// out for `target`'s provider, each file checked against the safety rules.
pub fn generate(analysis: &Analysis, target: &Target) -> Result<Vec<GeneratedFile>, GenerateError> {
    check_branches(target)?;
    let plan = crate::plan::build(analysis, target);
    render_plan(&plan, target)
}

/// Refuses branch names that cannot be written safely into every provider's syntax.
pub fn check_branches(target: &Target) -> Result<(), GenerateError> {
    if let Some(b) = target.push_branches().into_iter().find(|b| {
        b.is_empty()
            || !b
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '*' | '-'))
    }) {
        return Err(GenerateError::BadBranch(b));
    }
    Ok(())
}

/// Lays `plan` out for `target`'s provider and validates every file.
pub fn render_plan(
    plan: &crate::plan::Plan,
    target: &Target,
) -> Result<Vec<GeneratedFile>, GenerateError> {
    let files = match target.provider {
        Provider::Github => github::generate(plan, target)?,
        Provider::Gitlab => gitlab::generate(plan, target)?,
        Provider::Bitbucket => bitbucket::generate(plan, target)?,
    };
    for f in &files {
        let problems = validate::check_file(target.provider, &f.path, &f.content);
        if !problems.is_empty() {
            return Err(GenerateError::Invalid {
                path: f.path.clone(),
                problems,
            });
        }
    }
    Ok(files)
}
