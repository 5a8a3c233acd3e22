//! `Forges`: the process-wide forge connections (built once from the configuration) and
//! the only way to get a [`ForgeClient`] for a tenant. It enforces the operator's
//! allowlists, so a GitLab or Bitbucket token that can see more than the configured
//! groups/workspaces never makes the bot act there, and it knows the bot's own accounts.

use std::sync::Arc;

use super::bitbucket::client::{BitbucketApi, BitbucketClient};
use super::client::{ApiCallTotals, ApiError, CallCounter, ForgeClient};
use super::github::auth::{AppCredentials, TokenCache};
use super::github::client::{GithubApi, GithubClient};
use super::gitlab::client::{GitlabApi, GitlabClient};
use super::Forge;
use crate::clock::Clock;
use crate::config::BotConfig;

/// Connections to every configured forge.
#[derive(Debug)]
pub struct Forges {
    github: Option<Arc<GithubApi>>,
    github_bot_login: String,
    gitlab: Option<GitlabApi>,
    gitlab_groups: Vec<String>,
    bitbucket: Option<BitbucketApi>,
    bitbucket_workspaces: Vec<String>,
    totals: Arc<ApiCallTotals>,
}

impl Forges {
    /// Builds the connections the configuration has credentials for.
    pub fn from_config(cfg: &BotConfig, clock: Clock) -> anyhow::Result<Forges> {
        let github = match &cfg.github_app {
            Some(app) => {
                let creds = AppCredentials::new(app.app_id, &app.private_key)?;
                let tokens = TokenCache::new(&cfg.github_api_url, creds, clock.clone())?;
                Some(Arc::new(GithubApi::new(
                    &cfg.github_api_url,
                    tokens,
                    clock.clone(),
                )?))
            }
            None => None,
        };
        let gitlab = match &cfg.gitlab_token {
            Some(t) => Some(GitlabApi::new(&cfg.gitlab_url, t.clone(), clock.clone())?),
            None => None,
        };
        let bitbucket = match &cfg.bitbucket_token {
            Some(t) => Some(BitbucketApi::new(
                &cfg.bitbucket_api_url,
                t.clone(),
                cfg.bitbucket_email.clone(),
                clock.clone(),
            )?),
            None => None,
        };
        Ok(Forges {
            github,
            github_bot_login: format!("{}[bot]", cfg.github_app_slug),
            gitlab,
            gitlab_groups: cfg.gitlab_groups.clone(),
            bitbucket,
            bitbucket_workspaces: cfg.bitbucket_workspaces.clone(),
            totals: Arc::new(ApiCallTotals::default()),
        })
    }

    /// No forge configured (analysis-only deployments, most tests).
    pub fn none() -> Forges {
        Forges {
            github: None,
            github_bot_login: "pipewright[bot]".into(),
            gitlab: None,
            gitlab_groups: Vec::new(),
            bitbucket: None,
            bitbucket_workspaces: Vec::new(),
            totals: Arc::new(ApiCallTotals::default()),
        }
    }

    /// Is any forge configured with credentials?
    pub fn any_configured(&self) -> bool {
        !self.configured().is_empty()
    }

    /// The forges with credentials.
    pub fn configured(&self) -> Vec<Forge> {
        let mut v = Vec::new();
        if self.github.is_some() {
            v.push(Forge::Github);
        }
        if self.gitlab.is_some() {
            v.push(Forge::Gitlab);
        }
        if self.bitbucket.is_some() {
            v.push(Forge::Bitbucket);
        }
        v
    }

    /// Process-wide API call counters (for `/metrics`).
    pub fn totals(&self) -> Arc<ApiCallTotals> {
        self.totals.clone()
    }

    /// Whether the bot may act for this tenant at all. GitHub: any installation of the
    /// App. GitLab / Bitbucket: only allowlisted groups / workspaces (by slug or id).
    pub fn allows(&self, forge: Forge, tenant: &str, account: Option<&str>) -> bool {
        let listed = |list: &[String]| {
            let t = tenant.to_ascii_lowercase();
            let a = account.map(str::to_ascii_lowercase);
            list.iter()
                .any(|x| *x == t || a.as_deref() == Some(x.as_str()))
        };
        match forge {
            Forge::Github => true,
            Forge::Gitlab => listed(&self.gitlab_groups),
            Forge::Bitbucket => listed(&self.bitbucket_workspaces),
        }
    }

    /// Is `login` one of pipewright's own accounts on `forge`?
    pub fn is_own_account(&self, forge: Forge, login: &str) -> bool {
        match forge {
            Forge::Github => login.eq_ignore_ascii_case(&self.github_bot_login),
            Forge::Gitlab | Forge::Bitbucket => false,
        }
    }

    /// A client for one job acting for `tenant` (GitHub installation id, GitLab top-level
    /// group, Bitbucket workspace uuid; `account` is the group/workspace slug).
    pub fn client(
        &self,
        forge: Forge,
        tenant: &str,
        account: Option<&str>,
    ) -> Result<Box<dyn ForgeClient>, ApiError> {
        if !self.allows(forge, tenant, account) {
            return Err(ApiError::Config(format!(
                "{forge} tenant `{}` is not in pipewright's allowlist",
                account.unwrap_or(tenant)
            )));
        }
        let counter = CallCounter::new(Some(self.totals.clone()));
        let missing = |what: &str| {
            ApiError::Config(format!("no {forge} credentials are configured ({what})"))
        };
        Ok(match forge {
            Forge::Github => {
                let api = self.github.clone().ok_or_else(|| {
                    missing("PIPEWRIGHT_GITHUB_APP_ID and PIPEWRIGHT_GITHUB_PRIVATE_KEY")
                })?;
                let id = tenant.parse::<u64>().map_err(|_| {
                    ApiError::Config(format!("GitHub installation id `{tenant}` is not a number"))
                })?;
                Box::new(GithubClient::new(api, id, counter))
            }
            Forge::Gitlab => {
                let api = self
                    .gitlab
                    .clone()
                    .ok_or_else(|| missing("PIPEWRIGHT_GITLAB_TOKEN"))?;
                Box::new(GitlabClient::new(
                    api,
                    account.unwrap_or(tenant).to_owned(),
                    counter,
                ))
            }
            Forge::Bitbucket => {
                let api = self
                    .bitbucket
                    .clone()
                    .ok_or_else(|| missing("PIPEWRIGHT_BITBUCKET_TOKEN"))?;
                Box::new(BitbucketClient::new(
                    api,
                    account.unwrap_or(tenant).to_owned(),
                    counter,
                ))
            }
        })
    }

    /// The typed GitLab client (for `gitlab connect`).
    pub fn gitlab_client(&self, group: &str) -> Result<GitlabClient, ApiError> {
        if !self.allows(Forge::Gitlab, group, None) {
            return Err(ApiError::Config(format!(
                "GitLab group `{group}` is not in PIPEWRIGHT_GITLAB_GROUPS"
            )));
        }
        let api = self
            .gitlab
            .clone()
            .ok_or_else(|| ApiError::Config("PIPEWRIGHT_GITLAB_TOKEN is not set".into()))?;
        Ok(GitlabClient::new(
            api,
            group.to_owned(),
            CallCounter::new(Some(self.totals.clone())),
        ))
    }

    /// The typed Bitbucket client (for `bitbucket connect`).
    pub fn bitbucket_client(&self, workspace: &str) -> Result<BitbucketClient, ApiError> {
        if !self.allows(Forge::Bitbucket, workspace, None) {
            return Err(ApiError::Config(format!(
                "Bitbucket workspace `{workspace}` is not in PIPEWRIGHT_BITBUCKET_WORKSPACES"
            )));
        }
        let api = self
            .bitbucket
            .clone()
            .ok_or_else(|| ApiError::Config("PIPEWRIGHT_BITBUCKET_TOKEN is not set".into()))?;
        Ok(BitbucketClient::new(
            api,
            workspace.to_owned(),
            CallCounter::new(Some(self.totals.clone())),
        ))
    }

    /// Drops what the process holds for a removed installation (its token).
    pub fn forget(&self, forge: Forge, tenant: &str) {
        if let (Forge::Github, Some(api), Ok(id)) = (forge, &self.github, tenant.parse::<u64>()) {
            api.tokens().forget(id);
        }
    }
}
