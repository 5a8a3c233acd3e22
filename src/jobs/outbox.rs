//! `serve --dry-run`: a [`ForgeClient`] that reads from the real forge but never writes
//! to it. Every would-be write (the branch's files, the PR title and body, comments) is
//! recorded under `OUTBOX/<forge>/<owner>__<repo>/` and logged, so a team can point
//! pipewright at a real organisation and read exactly what it would do.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::forge::client::{
    ApiError, BranchWrite, ForgeClient, NewPullRequest, Permission, PrState, PullRequest,
    PullRequestUpdate, Reaction, RemoteRepo, RemoteTree, RepoHandle,
};
use crate::forge::event::{Actor, CiJobRef, CiRun, CommentTarget};
use crate::forge::Forge;

/// Reads through `inner`, records writes under `dir`.
pub struct DryRun {
    inner: Box<dyn ForgeClient>,
    dir: PathBuf,
}

impl DryRun {
    /// Wraps a real client.
    pub fn new(inner: Box<dyn ForgeClient>, dir: PathBuf) -> Self {
        DryRun { inner, dir }
    }

    fn repo_dir(&self, repo: &RepoHandle) -> PathBuf {
        let name: String = repo
            .full_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir
            .join(self.inner.forge().as_str())
            .join(name.replace("..", "__"))
    }

    fn write(&self, path: &Path, content: &str) -> Result<(), ApiError> {
        let fail = |e: std::io::Error| {
            ApiError::Config(format!("dry run: cannot write {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(path, content).map_err(fail)
    }
}

/// A repository path that stays inside the outbox (no absolute paths, no `..`).
fn safe_relative(path: &str) -> Option<&str> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then_some(path)
}

#[async_trait]
impl ForgeClient for DryRun {
    fn forge(&self) -> Forge {
        self.inner.forge()
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }

    fn rate_reading(&self) -> Option<crate::forge::client::RateReading> {
        self.inner.rate_reading()
    }

    async fn list_repositories(&self) -> Result<Vec<RemoteRepo>, ApiError> {
        self.inner.list_repositories().await
    }

    async fn repository(&self, repo: &RepoHandle) -> Result<RemoteRepo, ApiError> {
        self.inner.repository(repo).await
    }

    async fn branch_head(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<String>, ApiError> {
        self.inner.branch_head(repo, branch).await
    }

    async fn tree(&self, repo: &RepoHandle, commit: &str) -> Result<RemoteTree, ApiError> {
        self.inner.tree(repo, commit).await
    }

    async fn read_files(
        &self,
        repo: &RepoHandle,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
        self.inner.read_files(repo, commit, paths).await
    }

    async fn find_pull_request(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<PullRequest>, ApiError> {
        self.inner.find_pull_request(repo, branch).await
    }

    async fn write_branch(
        &self,
        repo: &RepoHandle,
        write: &BranchWrite,
    ) -> Result<String, ApiError> {
        let dir = self.repo_dir(repo).join("files");
        let mut h = Sha256::new();
        for f in &write.files {
            let Some(rel) = safe_relative(&f.path) else {
                return Err(ApiError::Config(format!(
                    "dry run: refusing to record the unsafe path `{}`",
                    f.path
                )));
            };
            h.update(f.path.as_bytes());
            match &f.content {
                Some(c) => {
                    h.update(c.as_bytes());
                    self.write(&dir.join(rel), c)?;
                }
                None => {
                    let _ = std::fs::remove_file(dir.join(rel));
                }
            }
        }
        self.write(
            &self.repo_dir(repo).join("commit-message.txt"),
            &write.message,
        )?;
        info!(repo = %repo.full_name, branch = %write.branch, files = write.files.len(), dir = %dir.display(), "dry run: would commit");
        Ok(hex::encode(&h.finalize()[..20]))
    }

    async fn open_pull_request(
        &self,
        repo: &RepoHandle,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, ApiError> {
        let path = self.repo_dir(repo).join("pull-request.md");
        self.write(
            &path,
            &format!(
                "# {}\n\n{} → {}\n\n{}\n",
                pr.title, pr.head, pr.base, pr.body
            ),
        )?;
        info!(repo = %repo.full_name, title = %pr.title, file = %path.display(), "dry run: would open a pull request");
        Ok(PullRequest {
            number: 0,
            state: PrState::Open,
            head_branch: pr.head.clone(),
            head_sha: None,
            body: pr.body.clone(),
            url: format!("file://{}", path.display()),
        })
    }

    async fn update_pull_request(
        &self,
        repo: &RepoHandle,
        number: u64,
        update: &PullRequestUpdate,
    ) -> Result<(), ApiError> {
        let path = self
            .repo_dir(repo)
            .join(format!("pull-request-{number}-update.md"));
        self.write(
            &path,
            &format!(
                "title: {}\nclose: {}\n\n{}\n",
                update.title.as_deref().unwrap_or("(unchanged)"),
                update.close,
                update.body.as_deref().unwrap_or("(body unchanged)")
            ),
        )?;
        info!(repo = %repo.full_name, pr = number, "dry run: would update the pull request");
        Ok(())
    }

    async fn comment(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        body: &str,
    ) -> Result<String, ApiError> {
        let n = match target {
            CommentTarget::PullRequest(n) | CommentTarget::Issue(n) => *n,
        };
        let path = self.repo_dir(repo).join(format!("comment-on-{n}.md"));
        self.write(&path, body)?;
        info!(repo = %repo.full_name, thread = n, "dry run: would comment");
        Ok("0".into())
    }

    async fn write_ci_secrets(
        &self,
        repo: &RepoHandle,
        environments: &[&str],
        secrets: &[crate::forge::client::CiSecret],
    ) -> Result<Vec<crate::forge::client::SecretWrite>, ApiError> {
        // The outbox records names only: a dry run must not leave secrets on disk.
        let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
        let path = self.repo_dir(repo).join("ci-secrets.txt");
        self.write(
            &path,
            &format!(
                "would write (values not recorded): {}\nenvironments: {}\n",
                names.join(", "),
                environments.join(", ")
            ),
        )?;
        info!(repo = %repo.full_name, ?names, "dry run: would write CI secrets");
        Ok(secrets
            .iter()
            .map(|s| crate::forge::client::SecretWrite {
                name: s.name.clone(),
                scope: "dry-run".into(),
                masked: s.secret,
            })
            .collect())
    }

    async fn react(
        &self,
        repo: &RepoHandle,
        _target: &CommentTarget,
        comment_id: &str,
        reaction: Reaction,
    ) -> Result<(), ApiError> {
        info!(repo = %repo.full_name, comment = comment_id, ?reaction, "dry run: would react");
        Ok(())
    }

    async fn permission(&self, repo: &RepoHandle, user: &Actor) -> Result<Permission, ApiError> {
        self.inner.permission(repo, user).await
    }

    async fn failed_ci_jobs(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
    ) -> Result<Vec<CiJobRef>, ApiError> {
        self.inner.failed_ci_jobs(repo, run).await
    }

    async fn ci_job_log(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        job: &CiJobRef,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ApiError> {
        self.inner.ci_job_log(repo, run, job, max_bytes).await
    }

    async fn rerun_ci(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        _jobs: &[CiJobRef],
    ) -> Result<(), ApiError> {
        info!(repo = %repo.full_name, run = %run.run_id, "dry run: would re-run the failed jobs");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_paths_are_recorded() {
        assert_eq!(
            safe_relative(".github/workflows/ci.yml"),
            Some(".github/workflows/ci.yml")
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a"] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }
}
