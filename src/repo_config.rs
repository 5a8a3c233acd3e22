//! A repository's own configuration: `.pipewright.yml` (also `.github/pipewright.yml`
//! or `.gitlab/pipewright.yml`). Typed, kebab-case, unknown keys rejected: a typo is an
//! error naming the file, line and key, never a silent fallback, and no PR is built on
//! a guess.

use serde::Deserialize;

use crate::analyze::RepoTree;
use crate::generate::Provider;

/// Where the file may live, in the order they are looked for.
pub const CONFIG_PATHS: &[&str] = &[
    ".pipewright.yml",
    ".github/pipewright.yml",
    ".gitlab/pipewright.yml",
];

/// `.pipewright.yml`. Every field is optional; the defaults are documented per field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepoConfig {
    /// CI system to generate for. Default: the forge's own (GitHub Actions on GitHub, …).
    pub provider: Option<ProviderName>,
    /// Branches whose pushes run CI (pull requests always do). Default: the default branch.
    pub branches: Option<Vec<String>>,
    /// Features to switch on or off. Default: lint, matrix and docker on; the rest off.
    #[serde(default)]
    pub features: FeatureSwitches,
    /// Commands run after the tests in every project's job. Default: none.
    #[serde(default)]
    pub extra_steps: Vec<ExtraStep>,
    /// Paths whose changes alone do not run CI (GitHub). Default: none.
    #[serde(default)]
    pub paths_ignore: Vec<String>,
    /// Runner labels (GitHub `runs-on`, GitLab `tags`, Bitbucket `runs-on`). Default: the
    /// provider's hosted Linux runner.
    #[serde(default)]
    pub runs_on: Vec<String>,
    /// Continuous delivery targets, each with its environments (default staging and
    /// production), strategy, region and health path. Default: none.
    #[serde(default)]
    pub deploy: Vec<DeployEntry>,
}

/// One deploy target in `.pipewright.yml`:
///
/// ```yaml
/// deploy:
///   - target: fly              # fly | aws | gcp | azure | digitalocean | ssh
///     environments: [staging, production]   # default: both
///     strategy: bluegreen      # default: the target's (Fly: rolling)
///     region: fra              # default: the target's
///     health-path: /healthz    # default: the framework's, else none
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeployEntry {
    /// The target.
    pub target: crate::deploy::DeployTarget,
    /// Environments. Default: staging and production.
    #[serde(default)]
    pub environments: Vec<crate::deploy::Environment>,
    /// Strategy. Default: the target's first.
    pub strategy: Option<crate::deploy::Strategy>,
    /// Region. Default: the target's.
    pub region: Option<String>,
    /// Health path. Default: the framework's, else none.
    pub health_path: Option<String>,
}

impl DeployEntry {
    /// The settings this entry asks for.
    pub fn settings(&self) -> crate::deploy::DeploySettings {
        let mut s = crate::deploy::DeploySettings::new(self.target);
        if !self.environments.is_empty() {
            s.environments = self.environments.clone();
        }
        s.strategy = self.strategy;
        s.region = self.region.clone();
        s.health_path = self.health_path.clone();
        s
    }
}

/// A provider name as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// GitHub Actions.
    Github,
    /// GitLab CI.
    Gitlab,
    /// Bitbucket Pipelines.
    Bitbucket,
}

impl From<ProviderName> for Provider {
    fn from(p: ProviderName) -> Provider {
        match p {
            ProviderName::Github => Provider::Github,
            ProviderName::Gitlab => Provider::Gitlab,
            ProviderName::Bitbucket => Provider::Bitbucket,
        }
    }
}

/// `features:` — each `true`/`false`; absent means the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeatureSwitches {
    /// Lint and format checks (default on).
    pub lint: Option<bool>,
    /// A matrix over every declared runtime version (default on; off = newest only).
    pub matrix: Option<bool>,
    /// Docker build checks (default on).
    pub docker: Option<bool>,
    /// Dependency vulnerability scan (default off).
    pub security: Option<bool>,
    /// Coverage upload (default off).
    pub coverage: Option<bool>,
    /// Release workflow (default off).
    pub release: Option<bool>,
    /// Lints gate as strictly as their tools allow (default off).
    pub strict_lint: Option<bool>,
}

/// An extra step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraStep {
    /// Step name.
    pub name: String,
    /// Shell command.
    pub run: String,
}

/// An invalid configuration file (posted as a comment; no PR is built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RepoConfigError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Parses the text of a configuration file.
pub fn parse(file: &str, text: &str) -> Result<RepoConfig, RepoConfigError> {
    if text.trim().is_empty() {
        return Ok(RepoConfig::default());
    }
    serde_yaml_ng::from_str::<RepoConfig>(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = e.to_string();
        // serde_yaml appends " at line X column Y"; the prefix already says where.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        RepoConfigError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// Finds and parses the repository's configuration (`None`: there is none).
pub fn load(tree: &RepoTree) -> Result<Option<(String, RepoConfig)>, RepoConfigError> {
    for path in CONFIG_PATHS {
        if let Some(text) = tree.text(path) {
            return parse(path, text).map(|c| Some(((*path).to_owned(), c)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        "provider: gitlab\nbranches: [main, release]\nfeatures:\n  security: true\n  matrix: false\n\
extra-steps:\n  - name: Docs\n    run: make docs\npaths-ignore: [\"docs/**\"]\nruns-on: [self-hosted, linux]\n"
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse(".pipewright.yml", sample()).unwrap();
        assert_eq!(c.provider, Some(ProviderName::Gitlab));
        assert_eq!(
            c.branches.as_deref(),
            Some(&["main".to_owned(), "release".to_owned()][..])
        );
        assert_eq!(c.features.security, Some(true));
        assert_eq!(c.features.lint, None);
        assert_eq!(c.extra_steps[0].run, "make docs");
        assert_eq!(c.runs_on, ["self-hosted", "linux"]);
        assert_eq!(parse(".pipewright.yml", "").unwrap(), RepoConfig::default());
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e = parse(
            ".pipewright.yml",
            "branches: [main]\nfeatures:\n  lnit: false\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            ".pipewright.yml:3:3: features: unknown field `lnit`, expected one of `lint`, `matrix`, `docker`, `security`, `coverage`, `release`, `strict-lint`"
        );
        let e = parse(".github/pipewright.yml", "provider: jenkins\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unknown variant `jenkins`"), "{e}");
        let e = parse(".pipewright.yml", "features:\n  docker: maybe\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(".pipewright.yml:2:11: features.docker: invalid type"),
            "{e}"
        );
        let e = parse(
            ".pipewright.yml",
            "deploy:\n  - target: fly\n    strategy: sideways\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown variant `sideways`"), "{e}");
        let e = parse(".pipewright.yml", "deploy:\n  - target: heroku\n").unwrap_err();
        assert!(e.message.contains("unknown deploy target `heroku`"), "{e}");
        let e = parse(
            ".pipewright.yml",
            "deploy:\n  - target: ssh\n    regoin: x\n",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `regoin`"), "{e}");
        let c = parse(
            ".pipewright.yml",
            "deploy:\n  - target: fly\n    environments: [production]\n    strategy: canary\n    health-path: /up\n",
        )
        .unwrap();
        let s = c.deploy[0].settings();
        assert_eq!(s.target, crate::deploy::DeployTarget::Fly);
        assert_eq!(s.environments, [crate::deploy::Environment::Production]);
        assert_eq!(s.strategy, Some(crate::deploy::Strategy::Canary));
        assert_eq!(s.health_path.as_deref(), Some("/up"));
        let e = parse(".pipewright.yml", "branches: [unclosed\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
    }
}
