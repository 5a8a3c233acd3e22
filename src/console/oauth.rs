//! Sign-in with a forge (authorization-code flow) and what the person administers there:
//! - GitHub: the App's user-to-server flow; `GET /user/installations` lists the App's
//!   installations the person can reach, and only those on their own account or on an
//!   organisation where `GET /user/memberships/orgs/{org}` says `role: admin` count.
//! - GitLab: an OAuth application (scope `read_api`); groups where the person's access
//!   level is Owner (`GET /groups?min_access_level=50`).
//! - Bitbucket Cloud: an OAuth consumer; for each workspace pipewright knows,
//!   `GET /workspaces/{slug}/permissions?q=user.uuid="…"` must say `owner` (Bitbucket no
//!   longer lists a user's workspaces across the board).
//!
//! The access token is used for these reads only and then dropped; it is never stored
//! nor logged. Each answer is checked for shape; a forge error becomes a clear refusal.

use serde::Deserialize;
use serde_json::Value;

use crate::config::{OAuthClient, Secret};
use crate::forge::Forge;

/// Most pages read from a forge listing during a sign-in (100 items each).
pub const MAX_PAGES: usize = 20;

/// A forge's sign-in endpoints for this deployment.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Which forge.
    pub forge: Forge,
    /// The OAuth client.
    pub client: OAuthClient,
    /// Web root (authorize and token endpoints).
    pub web_url: String,
    /// API root.
    pub api_url: String,
}

/// Who signed in and what they administer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Login / username.
    pub login: String,
    /// The forge's user id.
    pub user_id: String,
    /// Ids or names of the tenants (GitHub installation ids, GitLab group paths and ids,
    /// Bitbucket workspace slugs) the person administers.
    pub admin_of: Vec<String>,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The forge refused (bad code, revoked consent, …).
    #[error("{forge} refused the sign-in: {detail}")]
    Refused {
        /// Forge.
        forge: Forge,
        /// Its words.
        detail: String,
    },
    /// The forge could not be reached or answered nonsense.
    #[error("cannot talk to {forge}: {detail}")]
    Unreachable {
        /// Forge.
        forge: Forge,
        /// What happened.
        detail: String,
    },
}

impl Provider {
    /// The page the browser is sent to.
    pub fn authorize_url(&self, state: &str, redirect_uri: &str) -> String {
        let mut u = match self.forge {
            Forge::Github => format!("{}/login/oauth/authorize", self.web_url),
            Forge::Gitlab => format!("{}/oauth/authorize", self.web_url),
            Forge::Bitbucket => format!("{}/site/oauth2/authorize", self.web_url),
        };
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.client.client_id)
            .append_pair("response_type", "code")
            .append_pair("state", state);
        match self.forge {
            Forge::Github => {
                q.append_pair("redirect_uri", redirect_uri);
            }
            Forge::Gitlab => {
                q.append_pair("redirect_uri", redirect_uri)
                    .append_pair("scope", "read_api");
            }
            // Bitbucket uses the consumer's registered callback URL.
            Forge::Bitbucket => {}
        }
        u.push('?');
        u.push_str(&q.finish());
        u
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> OAuthError {
        OAuthError::Unreachable {
            forge: self.forge,
            detail: detail.to_string(),
        }
    }

    fn refused(&self, detail: impl std::fmt::Display) -> OAuthError {
        OAuthError::Refused {
            forge: self.forge,
            detail: detail.to_string(),
        }
    }

    /// Trades the callback's code for an access token.
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Secret, OAuthError> {
        let req = match self.forge {
            Forge::Github => http
                .post(format!("{}/login/oauth/access_token", self.web_url))
                .header("Accept", "application/json")
                .form(&[
                    ("client_id", self.client.client_id.as_str()),
                    ("client_secret", self.client.client_secret.expose()),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                ]),
            Forge::Gitlab => http
                .post(format!("{}/oauth/token", self.web_url))
                .header("Accept", "application/json")
                .form(&[
                    ("client_id", self.client.client_id.as_str()),
                    ("client_secret", self.client.client_secret.expose()),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                    ("redirect_uri", redirect_uri),
                ]),
            Forge::Bitbucket => http
                .post(format!("{}/site/oauth2/access_token", self.web_url))
                .basic_auth(
                    &self.client.client_id,
                    Some(self.client.client_secret.expose()),
                )
                .header("Accept", "application/json")
                .form(&[("grant_type", "authorization_code"), ("code", code)]),
        };
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| self.unreachable(format!("token answer is not JSON: {e}")))?;
        // GitHub answers errors with 200 and an `error` field.
        if let Some(err) = body.get("error").and_then(Value::as_str) {
            let detail = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or(err);
            return Err(self.refused(detail));
        }
        if !status.is_success() {
            return Err(self.refused(format!("HTTP {status}")));
        }
        body.get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(t.to_owned()))
            .ok_or_else(|| self.unreachable("the token answer has no access_token"))
    }

    async fn get_json(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        url: &str,
    ) -> Result<(u16, Value, reqwest::header::HeaderMap), OAuthError> {
        let mut req = http.get(url).bearer_auth(token.expose());
        if self.forge == Forge::Github {
            req = req
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, v, headers))
    }

    async fn get_ok(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        url: &str,
    ) -> Result<(Value, reqwest::header::HeaderMap), OAuthError> {
        let (status, v, h) = self.get_json(http, token, url).await?;
        if !(200..300).contains(&status) {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| v.pointer("/error/message").and_then(Value::as_str))
                .unwrap_or("");
            return Err(self.refused(format!("GET {url} answered HTTP {status} {msg}")));
        }
        Ok((v, h))
    }

    /// Who the token belongs to and what they administer. `known` lists the tenants
    /// pipewright has for this forge as (external id, account name): Bitbucket can only
    /// be asked workspace by workspace.
    pub async fn identify(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        known: &[(String, Option<String>)],
    ) -> Result<Identity, OAuthError> {
        match self.forge {
            Forge::Github => self.identify_github(http, token).await,
            Forge::Gitlab => self.identify_gitlab(http, token).await,
            Forge::Bitbucket => self.identify_bitbucket(http, token, known).await,
        }
    }

    async fn identify_github(
        &self,
        http: &reqwest::Client,
        token: &Secret,
    ) -> Result<Identity, OAuthError> {
        #[derive(Deserialize)]
        struct User {
            login: String,
            id: u64,
        }
        #[derive(Deserialize)]
        struct Account {
            login: String,
            #[serde(rename = "type", default)]
            kind: String,
        }
        #[derive(Deserialize)]
        struct Installation {
            id: u64,
            account: Option<Account>,
        }
        #[derive(Deserialize)]
        struct Page {
            installations: Vec<Installation>,
        }
        let (v, _) = self
            .get_ok(http, token, &format!("{}/user", self.api_url))
            .await?;
        let user: User = serde_json::from_value(v).map_err(|e| self.unreachable(e))?;
        let mut admin_of = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!(
                "{}/user/installations?per_page=100&page={page}",
                self.api_url
            );
            let (v, _) = self.get_ok(http, token, &url).await?;
            let p: Page = serde_json::from_value(v).map_err(|e| self.unreachable(e))?;
            let n = p.installations.len();
            for inst in p.installations {
                let Some(account) = inst.account else {
                    continue;
                };
                let owner = if account.kind == "Organization" {
                    let url = format!(
                        "{}/user/memberships/orgs/{}",
                        self.api_url,
                        urlencode(&account.login)
                    );
                    let (status, m, _) = self.get_json(http, token, &url).await?;
                    status == 200
                        && m.get("role").and_then(Value::as_str) == Some("admin")
                        && m.get("state").and_then(Value::as_str) == Some("active")
                } else {
                    account.login.eq_ignore_ascii_case(&user.login)
                };
                if owner {
                    admin_of.push(inst.id.to_string());
                }
            }
            if n < 100 {
                break;
            }
        }
        Ok(Identity {
            login: user.login,
            user_id: user.id.to_string(),
            admin_of,
        })
    }

    async fn identify_gitlab(
        &self,
        http: &reqwest::Client,
        token: &Secret,
    ) -> Result<Identity, OAuthError> {
        #[derive(Deserialize)]
        struct User {
            username: String,
            id: u64,
        }
        #[derive(Deserialize)]
        struct Group {
            id: u64,
            full_path: String,
        }
        let api = format!("{}/api/v4", self.web_url);
        let (v, _) = self.get_ok(http, token, &format!("{api}/user")).await?;
        let user: User = serde_json::from_value(v).map_err(|e| self.unreachable(e))?;
        let mut admin_of = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_PAGES {
            let url = format!("{api}/groups?min_access_level=50&per_page=100&page={page}");
            let (v, headers) = self.get_ok(http, token, &url).await?;
            let groups: Vec<Group> = serde_json::from_value(v).map_err(|e| self.unreachable(e))?;
            for g in groups {
                admin_of.push(g.full_path);
                admin_of.push(g.id.to_string());
            }
            match headers
                .get("x-next-page")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        Ok(Identity {
            login: user.username,
            user_id: user.id.to_string(),
            admin_of,
        })
    }

    async fn identify_bitbucket(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        known: &[(String, Option<String>)],
    ) -> Result<Identity, OAuthError> {
        let (v, _) = self
            .get_ok(http, token, &format!("{}/user", self.api_url))
            .await?;
        let uuid = v
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| self.unreachable("the user answer has no uuid"))?
            .to_owned();
        let login = v
            .get("username")
            .or_else(|| v.get("nickname"))
            .or_else(|| v.get("display_name"))
            .and_then(Value::as_str)
            .unwrap_or(&uuid)
            .to_owned();
        let mut admin_of = Vec::new();
        for (external_id, account) in known {
            // Installations are keyed by workspace uuid; the API wants the slug.
            let slug = account.as_deref().unwrap_or(external_id);
            let q = format!("user.uuid=\"{uuid}\"");
            let url = format!(
                "{}/workspaces/{}/permissions?q={}",
                self.api_url,
                urlencode(slug),
                urlencode(&q)
            );
            let (status, v, _) = self.get_json(http, token, &url).await?;
            if status != 200 {
                continue;
            }
            let owner = v
                .get("values")
                .and_then(Value::as_array)
                .is_some_and(|vals| {
                    vals.iter().any(|m| {
                        m.pointer("/user/uuid").and_then(Value::as_str) == Some(uuid.as_str())
                            && m.get("permission").and_then(Value::as_str) == Some("owner")
                    })
                });
            if owner {
                admin_of.push(external_id.clone());
                admin_of.push(slug.to_owned());
            }
        }
        Ok(Identity {
            login,
            user_id: uuid,
            admin_of,
        })
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(forge: Forge) -> Provider {
        Provider {
            forge,
            client: OAuthClient {
                client_id: "cid".into(),
                client_secret: Secret::new("shh"),
            },
            web_url: "https://forge.example".into(),
            api_url: "https://api.forge.example".into(),
        }
    }

    #[test]
    fn authorize_urls_carry_the_state_and_never_the_secret() {
        let u = provider(Forge::Github).authorize_url("st&te", "https://pw.example/cb");
        assert_eq!(
            u,
            "https://forge.example/login/oauth/authorize?client_id=cid&response_type=code&\
             state=st%26te&redirect_uri=https%3A%2F%2Fpw.example%2Fcb"
        );
        let u = provider(Forge::Gitlab).authorize_url("s", "https://pw.example/cb");
        assert!(u.starts_with("https://forge.example/oauth/authorize?"));
        assert!(u.contains("scope=read_api"));
        let u = provider(Forge::Bitbucket).authorize_url("s", "https://pw.example/cb");
        assert!(u.starts_with("https://forge.example/site/oauth2/authorize?"));
        for f in [Forge::Github, Forge::Gitlab, Forge::Bitbucket] {
            assert!(!provider(f).authorize_url("s", "r").contains("shh"));
        }
    }
}
