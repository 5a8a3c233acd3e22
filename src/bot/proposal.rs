//! What pipewright proposes for one repository snapshot: the decision (propose, or why
//! not), the files, and the PR body region with its state. Pure: the `analyze_repo` job
//! fetches the snapshot and writes the result to the forge; tests run it on fixtures.

use crate::analyze::{analyze, Analysis, RepoTree};
use crate::generate::{generate, GenerateError, GeneratedFile, Provider, Target};
use crate::repo_config::{self, RepoConfigError};

use super::pr_body;

/// Why no pull request is proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The repository already has CI; CD gaps are another feature's business.
    HasCi {
        /// The CI files found.
        files: Vec<String>,
    },
    /// Nothing buildable was found (empty or unsupported repository).
    NothingToBuild,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::HasCi { files } => {
                write!(f, "the repository already has CI ({})", files.join(", "))
            }
            Skip::NothingToBuild => f.write_str("no buildable project or Dockerfile was found"),
        }
    }
}

/// A proposal for a pull request.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// What detection concluded.
    pub analysis: Analysis,
    /// The files to commit.
    pub files: Vec<GeneratedFile>,
    /// The bot's region of the PR body (with its state block).
    pub body_region: String,
    /// [`pr_body::files_hash`] of `files`: unchanged hash, untouched PR.
    pub hash: String,
}

/// What to do for a repository.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Open or update the pull request.
    Propose(Box<Proposal>),
    /// Do nothing, for this reason.
    Skip(Skip),
}

/// Why a proposal could not be made (reported to people, not retried).
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    /// The repository's `.pipewright.yml` is invalid: say where, build nothing.
    #[error("{0}")]
    Config(#[from] RepoConfigError),
    /// Generation refused (an unsafe branch name, a broken template override).
    #[error("{0}")]
    Generate(#[from] GenerateError),
}

/// Decides and builds the proposal for `tree`. `forge_provider` is the forge's own CI
/// system, used unless the repository's configuration names another.
pub fn propose(
    tree: &RepoTree,
    forge_provider: Provider,
    default_branch: &str,
    command_word: &str,
) -> Result<Decision, ProposalError> {
    let config = repo_config::load(tree)?.map(|(_, c)| c);
    let analysis = analyze(tree);
    let ci: Vec<String> = analysis
        .existing_ci
        .iter()
        .filter(|c| c.kind == "ci")
        .map(|c| c.path.clone())
        .collect();
    if !ci.is_empty() {
        return Ok(Decision::Skip(Skip::HasCi { files: ci }));
    }
    let mut target = Target {
        provider: forge_provider,
        default_branch: default_branch.to_owned(),
        ..Target::github()
    };
    if let Some(c) = &config {
        target = target.with_repo_config(c);
    }
    let files = generate(&analysis, &target)?;
    if files.is_empty() {
        return Ok(Decision::Skip(Skip::NothingToBuild));
    }
    let body_region = pr_body::render(&analysis, &files, target.provider, command_word);
    let hash = pr_body::files_hash(&files);
    Ok(Decision::Propose(Box::new(Proposal {
        analysis,
        files,
        body_region,
        hash,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> RepoTree {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            t.insert_content(p, c.as_bytes());
        }
        t
    }

    #[test]
    fn a_repository_without_ci_gets_a_proposal_whose_state_matches() {
        let t = tree(&[("go.mod", "module x\n\ngo 1.22\n")]);
        let Decision::Propose(p) = propose(&t, Provider::Gitlab, "main", "pipewright").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.files[0].path, ".gitlab-ci.yml");
        let state = pr_body::parse_state(&p.body_region).unwrap();
        assert_eq!(
            (state.provider, state.hash),
            (Provider::Gitlab, p.hash.clone())
        );
    }

    #[test]
    fn existing_ci_or_nothing_to_build_means_no_pr() {
        let t = tree(&[
            ("go.mod", "module x\n"),
            (
                ".github/workflows/test.yml",
                "on: push\njobs:\n  t:\n    steps:\n      - run: go test ./...\n",
            ),
        ]);
        assert!(matches!(
            propose(&t, Provider::Github, "main", "pipewright").unwrap(),
            Decision::Skip(Skip::HasCi { .. })
        ));
        let empty = tree(&[("README.md", "# hi\n")]);
        assert!(matches!(
            propose(&empty, Provider::Github, "main", "pipewright").unwrap(),
            Decision::Skip(Skip::NothingToBuild)
        ));
    }

    #[test]
    fn the_repository_config_wins_and_a_bad_one_builds_nothing() {
        let t = tree(&[
            ("go.mod", "module x\n"),
            (
                ".pipewright.yml",
                "provider: bitbucket\nfeatures:\n  security: true\n",
            ),
        ]);
        let Decision::Propose(p) = propose(&t, Provider::Github, "main", "pipewright").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.files[0].path, "bitbucket-pipelines.yml");
        assert!(p.files[0].content.contains("govulncheck"));
        let bad = tree(&[
            ("go.mod", "module x\n"),
            (".github/pipewright.yml", "featurs: {}\n"),
        ]);
        let err = propose(&bad, Provider::Github, "main", "pipewright")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".github/pipewright.yml:1:1: unknown field `featurs`"),
            "{err}"
        );
    }
}
