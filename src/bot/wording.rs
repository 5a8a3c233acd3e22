//! How each forge names what pipewright talks about, so every text the bot posts or
//! writes (pull/merge request bodies, titles, replies, comments) reads in that forge's
//! own words: GitLab has merge requests (`MR`, `!12`; there `#12` names an issue),
//! GitHub and Bitbucket have pull requests (`PR`, `#12`). Pure.

use crate::forge::Forge;

/// The words of one forge. Every text that names pipewright's change request takes
/// them from here, never from a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words(pub Forge);

impl Words {
    /// `pull request` / `merge request`.
    pub fn pr(self) -> &'static str {
        match self.0 {
            Forge::Gitlab => "merge request",
            Forge::Github | Forge::Bitbucket => "pull request",
        }
    }

    /// `pull requests` / `merge requests`.
    pub fn prs(self) -> &'static str {
        match self.0 {
            Forge::Gitlab => "merge requests",
            Forge::Github | Forge::Bitbucket => "pull requests",
        }
    }

    /// `Pull request` / `Merge request`, to start a sentence or a label.
    pub fn pr_capitalised(self) -> &'static str {
        match self.0 {
            Forge::Gitlab => "Merge request",
            Forge::Github | Forge::Bitbucket => "Pull request",
        }
    }

    /// `PR` / `MR`.
    pub fn pr_short(self) -> &'static str {
        match self.0 {
            Forge::Gitlab => "MR",
            Forge::Github | Forge::Bitbucket => "PR",
        }
    }

    /// `#12` / `!12`.
    pub fn pr_ref(self, number: u64) -> String {
        match self.0 {
            Forge::Gitlab => format!("!{number}"),
            Forge::Github | Forge::Bitbucket => format!("#{number}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_says_merge_request_and_the_others_pull_request() {
        let gl = Words(Forge::Gitlab);
        assert_eq!(
            (
                gl.pr(),
                gl.prs(),
                gl.pr_capitalised(),
                gl.pr_short(),
                gl.pr_ref(3)
            ),
            (
                "merge request",
                "merge requests",
                "Merge request",
                "MR",
                "!3".into()
            )
        );
        for f in [Forge::Github, Forge::Bitbucket] {
            let w = Words(f);
            assert_eq!(
                (
                    w.pr(),
                    w.prs(),
                    w.pr_capitalised(),
                    w.pr_short(),
                    w.pr_ref(3)
                ),
                (
                    "pull request",
                    "pull requests",
                    "Pull request",
                    "PR",
                    "#3".into()
                )
            );
        }
    }
}
