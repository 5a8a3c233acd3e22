//! The forges' sign-in side, as the console (`src/console/oauth.rs`, `setup.rs`) uses it:
//! - GitHub: `GET /login/oauth/authorize`, `POST /login/oauth/access_token` (errors as
//!   200 + `error`, like GitHub), `GET /user`, `GET /user/installations`,
//!   `GET /user/memberships/orgs/{org}`, and the App manifest flow (`POST
//!   /settings/apps/new` or `/organizations/{org}/settings/apps/new` → 302 to the
//!   manifest's `redirect_url` with a one-use code; `POST
//!   /app-manifests/{code}/conversions` → 201 with the App and its key).
//! - GitLab: `GET /oauth/authorize`, `POST /oauth/token` (400 `invalid_grant`),
//!   `GET /api/v4/user`, `GET /api/v4/groups?min_access_level=N` with a Bearer user token.
//! - Bitbucket: `GET /site/oauth2/authorize` (302 to the consumer's registered callback),
//!   `POST /site/oauth2/access_token` (HTTP Basic client auth), `GET /2.0/user`,
//!   `GET /2.0/workspaces/{slug}/permissions?q=user.uuid="…"` with a Bearer user token.
//!
//! The person "signed in at the forge" in the browser is [`OAuthWorld::signed_in`].

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};

use super::{Kind, Req, Resp, World, APP_ID};

/// Sign-in state of a fake forge.
#[derive(Debug, Default)]
pub struct OAuthWorld {
    /// OAuth clients: id → (secret, registered callback URL (Bitbucket)).
    pub clients: BTreeMap<String, (String, Option<String>)>,
    /// Who is signed in to the forge's web pages (the browser's forge session).
    pub signed_in: Option<String>,
    /// Issued codes: code → (client id, login, redirect URI).
    pub codes: BTreeMap<String, (String, String, Option<String>)>,
    /// Issued user tokens: token → login.
    pub user_tokens: BTreeMap<String, String>,
    /// Roles: (org / group / workspace, login) → GitHub `admin`|`member`, GitLab
    /// `owner`|`maintainer`|`developer`, Bitbucket `owner`|`collaborator`|`member`.
    pub roles: BTreeMap<(String, String), String>,
    /// GitHub installations' accounts: installation id → (login, `Organization`|`User`).
    pub accounts: BTreeMap<String, (String, String)>,
    /// Manifest flow codes: code → the manifest posted.
    pub manifests: BTreeMap<String, Value>,
    /// Apps created through the manifest flow.
    pub apps_created: Vec<Value>,
    next: u64,
}

impl OAuthWorld {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!(
            "{prefix}{}",
            &super::hex40(format!("{prefix}{}", self.next).as_bytes())[..30]
        )
    }

    /// Registers an OAuth client.
    pub fn add_client(&mut self, id: &str, secret: &str, callback: Option<&str>) {
        self.clients.insert(
            id.to_owned(),
            (secret.to_owned(), callback.map(str::to_owned)),
        );
    }

    /// Gives `login` a role in an org / group / workspace.
    pub fn set_role(&mut self, tenant: &str, login: &str, role: &str) {
        self.roles.insert(
            (tenant.to_ascii_lowercase(), login.to_owned()),
            role.to_owned(),
        );
    }

    fn role(&self, tenant: &str, login: &str) -> Option<&str> {
        self.roles
            .get(&(tenant.to_ascii_lowercase(), login.to_owned()))
            .map(String::as_str)
    }
}

fn user_id(login: &str) -> u64 {
    u64::from_str_radix(&super::hex40(login.as_bytes())[..8], 16).unwrap_or(1) % 10_000_000 + 1
}

fn bb_uuid(seed: &str) -> String {
    let h = super::hex40(format!("user:{seed}").as_bytes());
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Resp {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let sep = if to.contains('?') { '&' } else { '?' };
    Resp::text(302, "").header("location", format!("{to}{sep}{}", q.finish()))
}

fn user_token<'a>(w: &'a World, r: &Req) -> Option<&'a String> {
    let h = r.header("authorization")?;
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .or_else(|| h.strip_prefix("token "))?;
    w.oauth.user_tokens.get(t.trim())
}

/// Answers sign-in requests; `None` for everything else (the forge module's business).
pub(super) fn handle(w: &mut World, r: &Req) -> Option<Resp> {
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    match w.kind {
        Kind::Github => github(w, r, &segs),
        Kind::Gitlab => gitlab(w, r, &segs),
        Kind::Bitbucket => bitbucket(w, r, &segs),
    }
}

/// The consent step shared by the three forges: the signed-in person authorises
/// `client_id`; a code comes back to `redirect_uri`.
fn authorize(w: &mut World, r: &Req, redirect_uri: Option<String>) -> Resp {
    let Some(client) = r.q("client_id").map(str::to_owned) else {
        return Resp::text(400, "client_id is required");
    };
    if !w.oauth.clients.contains_key(&client) {
        return Resp::text(404, "The OAuth application was not found.");
    }
    let Some(login) = w.oauth.signed_in.clone() else {
        return Resp::text(200, "<html><body>Sign in to continue.</body></html>")
            .header("content-type", "text/html");
    };
    let Some(to) = redirect_uri else {
        return Resp::text(400, "redirect_uri is required");
    };
    let code = w.oauth.fresh("code");
    w.oauth
        .codes
        .insert(code.clone(), (client, login, Some(to.clone())));
    redirect(
        &to,
        &[("code", &code), ("state", r.q("state").unwrap_or(""))],
    )
}

/// Trades a code for a user token (one use).
fn exchange(
    w: &mut World,
    client: &str,
    secret: &str,
    code: &str,
    redirect_uri: Option<&str>,
) -> Result<String, (&'static str, &'static str)> {
    match w.oauth.clients.get(client) {
        Some((s, _)) if s == secret => {}
        _ => {
            return Err((
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            ))
        }
    }
    let Some((c, login, uri)) = w.oauth.codes.remove(code) else {
        return Err((
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        ));
    };
    if c != client {
        return Err((
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        ));
    }
    if let (Some(given), Some(expected)) = (redirect_uri, uri.as_deref()) {
        if given != expected {
            return Err((
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            ));
        }
    }
    let token = w.oauth.fresh(match w.kind {
        Kind::Github => "ghu_",
        Kind::Gitlab => "gloas-",
        Kind::Bitbucket => "bbo-",
    });
    w.oauth.user_tokens.insert(token.clone(), login);
    Ok(token)
}

fn form_value(form: &[(String, String)], k: &str) -> Option<String> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn github(w: &mut World, r: &Req, segs: &[&str]) -> Option<Resp> {
    let gh_err = |status: u16, message: &str| {
        Resp::json(
            status,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        )
    };
    Some(match (r.method.as_str(), segs) {
        ("GET", ["login", "oauth", "authorize"]) => {
            let to = r.q("redirect_uri").map(str::to_owned);
            authorize(w, r, to)
        }
        ("POST", ["login", "oauth", "access_token"]) => {
            let f = r.form();
            let get = |k| form_value(&f, k).unwrap_or_default();
            match exchange(
                w,
                &get("client_id"),
                &get("client_secret"),
                &get("code"),
                form_value(&f, "redirect_uri").as_deref(),
            ) {
                // GitHub answers errors with 200 too.
                Ok(t) => Resp::json(
                    200,
                    json!({"access_token": t, "token_type": "bearer", "scope": ""}),
                ),
                Err((e, d)) => Resp::json(
                    200,
                    json!({"error": e, "error_description": d, "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"}),
                ),
            }
        }
        ("POST", ["settings", "apps", "new"])
        | ("POST", ["organizations", _, "settings", "apps", "new"]) => {
            let f = r.form();
            let Some(manifest) =
                form_value(&f, "manifest").and_then(|m| serde_json::from_str::<Value>(&m).ok())
            else {
                return Some(Resp::text(422, "Invalid manifest"));
            };
            let Some(to) = manifest
                .get("redirect_url")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Some(Resp::text(422, "redirect_url is required"));
            };
            if w.oauth.signed_in.is_none() {
                return Some(Resp::text(200, "Sign in to continue."));
            }
            let mut manifest = manifest;
            if let ["organizations", org, ..] = segs {
                manifest["__owner"] = json!(org);
            }
            let code = w.oauth.fresh("");
            w.oauth.manifests.insert(code.clone(), manifest);
            redirect(
                &to,
                &[("code", &code), ("state", r.q("state").unwrap_or(""))],
            )
        }
        ("POST", ["app-manifests", code, "conversions"]) => {
            let Some(m) = w.oauth.manifests.remove(*code) else {
                return Some(gh_err(404, "Not Found"));
            };
            let name = m.get("name").and_then(Value::as_str).unwrap_or("app");
            let slug: String = name
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let owner = m
                .get("__owner")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| w.oauth.signed_in.clone())
                .unwrap_or_default();
            let client_id = format!("Iv23li{}", &super::hex40(slug.as_bytes())[..14]);
            let client_secret = super::hex40(format!("secret:{slug}").as_bytes());
            let webhook_secret = super::hex40(format!("whsec:{slug}").as_bytes());
            w.oauth.add_client(&client_id, &client_secret, None);
            let base = w.base_url.clone();
            let app = json!({
                "id": APP_ID,
                "slug": slug,
                "node_id": "A_kwDOfake",
                "name": name,
                "owner": {"login": owner, "id": user_id(&owner), "type": "Organization"},
                "description": m.get("description"),
                "external_url": m.get("url"),
                "html_url": format!("{base}/apps/{slug}"),
                "created_at": "2023-11-14T22:13:20Z",
                "updated_at": "2023-11-14T22:13:20Z",
                "permissions": m.get("default_permissions"),
                "events": m.get("default_events"),
                "client_id": client_id,
                "client_secret": client_secret,
                "webhook_secret": webhook_secret,
                "pem": super::app_private_key(),
            });
            w.oauth.apps_created.push(m);
            Resp::json(201, app)
        }
        ("GET", ["user"]) => {
            let login = user_token(w, r)?.clone();
            Resp::json(
                200,
                json!({"login": login, "id": user_id(&login), "type": "User"}),
            )
        }
        ("GET", ["user", "installations"]) => {
            let login = user_token(w, r)?.clone();
            let page: usize = r.q("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
            let per: usize = r
                .q("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let all: Vec<Value> = w
                .oauth
                .accounts
                .iter()
                .filter(|(_, (acct, kind))| {
                    (kind == "User" && acct.eq_ignore_ascii_case(&login))
                        || (kind == "Organization" && w.oauth.role(acct, &login).is_some())
                })
                .map(|(id, (acct, kind))| {
                    json!({
                        "id": id.parse::<u64>().unwrap_or_default(),
                        "account": {"login": acct, "id": user_id(acct), "type": kind},
                        "app_id": APP_ID,
                        "target_type": kind,
                        "permissions": {"contents": "write", "metadata": "read"},
                    })
                })
                .collect();
            let total = all.len();
            let items: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
            Resp::json(200, json!({"total_count": total, "installations": items}))
        }
        ("GET", ["user", "memberships", "orgs", org]) => {
            let login = user_token(w, r)?.clone();
            match w.oauth.role(org, &login) {
                Some(role) => Resp::json(
                    200,
                    json!({
                        "state": "active",
                        "role": role,
                        "organization": {"login": org},
                        "user": {"login": login},
                    }),
                ),
                None => gh_err(404, "Not Found"),
            }
        }
        _ => return None,
    })
}

fn gitlab(w: &mut World, r: &Req, segs: &[&str]) -> Option<Resp> {
    Some(match (r.method.as_str(), segs) {
        ("GET", ["oauth", "authorize"]) => {
            if r.q("response_type") != Some("code") {
                return Some(Resp::json(
                    400,
                    json!({"error": "unsupported_response_type", "error_description": "The authorization server does not support this response type."}),
                ));
            }
            let to = r.q("redirect_uri").map(str::to_owned);
            authorize(w, r, to)
        }
        ("POST", ["oauth", "token"]) => {
            let f = r.form();
            let get = |k| form_value(&f, k).unwrap_or_default();
            if get("grant_type") != "authorization_code" {
                return Some(Resp::json(
                    400,
                    json!({"error": "unsupported_grant_type", "error_description": "The authorization grant type is not supported by the authorization server."}),
                ));
            }
            match exchange(
                w,
                &get("client_id"),
                &get("client_secret"),
                &get("code"),
                form_value(&f, "redirect_uri").as_deref(),
            ) {
                Ok(t) => Resp::json(
                    200,
                    json!({"access_token": t, "token_type": "Bearer", "expires_in": 7200, "scope": "read_api", "created_at": super::T0_SECS}),
                ),
                Err(("incorrect_client_credentials", _)) => Resp::json(
                    401,
                    json!({"error": "invalid_client", "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}),
                ),
                Err(_) => Resp::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."}),
                ),
            }
        }
        ("GET", ["api", "v4", "user"]) if r.header("private-token").is_none() => {
            let Some(login) = user_token(w, r).cloned() else {
                return Some(Resp::json(401, json!({"message": "401 Unauthorized"})));
            };
            Resp::json(
                200,
                json!({"id": user_id(&login), "username": login, "name": login, "state": "active"}),
            )
        }
        ("GET", ["api", "v4", "groups"]) if r.header("private-token").is_none() => {
            let Some(login) = user_token(w, r).cloned() else {
                return Some(Resp::json(401, json!({"message": "401 Unauthorized"})));
            };
            let min: u32 = r
                .q("min_access_level")
                .and_then(|m| m.parse().ok())
                .unwrap_or(10);
            let level = |role: &str| match role {
                "owner" => 50,
                "maintainer" => 40,
                "developer" => 30,
                "reporter" => 20,
                _ => 10,
            };
            let groups: Vec<Value> = w
                .oauth
                .roles
                .iter()
                .filter(|((_, l), role)| *l == login && level(role) >= min)
                .map(|((g, _), _)| {
                    json!({"id": user_id(&format!("group:{g}")), "name": g, "path": g, "full_path": g})
                })
                .collect();
            Resp::json(200, Value::Array(groups))
                .header("x-next-page", "")
                .header("x-page", "1")
                .header("x-total-pages", "1")
        }
        _ => return None,
    })
}

fn bitbucket(w: &mut World, r: &Req, segs: &[&str]) -> Option<Resp> {
    let bb_err = |status: u16, message: &str| {
        Resp::json(
            status,
            json!({"type": "error", "error": {"message": message}}),
        )
    };
    Some(match (r.method.as_str(), segs) {
        ("GET", ["site", "oauth2", "authorize"]) => {
            // Bitbucket sends the browser to the consumer's registered callback URL.
            let to = r
                .q("client_id")
                .and_then(|c| w.oauth.clients.get(c))
                .and_then(|(_, cb)| cb.clone());
            authorize(w, r, to)
        }
        ("POST", ["site", "oauth2", "access_token"]) => {
            let (client, secret) = r
                .header("authorization")
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())))
                .unwrap_or_default();
            let f = r.form();
            if form_value(&f, "grant_type").as_deref() != Some("authorization_code") {
                return Some(Resp::json(
                    400,
                    json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}),
                ));
            }
            match exchange(
                w,
                &client,
                &secret,
                &form_value(&f, "code").unwrap_or_default(),
                None,
            ) {
                Ok(t) => Resp::json(
                    200,
                    json!({"access_token": t, "token_type": "bearer", "expires_in": 7200, "scopes": "account repository", "refresh_token": "r"}),
                ),
                Err(("incorrect_client_credentials", _)) => Resp::json(
                    400,
                    json!({"error": "invalid_client", "error_description": "Invalid OAuth client credentials"}),
                ),
                Err(_) => Resp::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": "The specified code is not valid."}),
                ),
            }
        }
        ("GET", ["2.0", "user"]) => {
            let login = user_token(w, r)?.clone();
            Resp::json(
                200,
                json!({"type": "user", "uuid": bb_uuid(&login), "username": login, "nickname": login, "display_name": login, "account_id": format!("5f{}", user_id(&login))}),
            )
        }
        ("GET", ["2.0", "workspaces", ws, "permissions"]) => {
            let login = user_token(w, r)?.clone();
            if w.oauth.role(ws, &login).is_none() {
                return Some(bb_err(403, "You do not have access to this workspace."));
            }
            // Only the `user.uuid="…"` filter the console sends is understood.
            let wanted = r.q("q").and_then(|q| {
                q.strip_prefix("user.uuid=\"")
                    .and_then(|s| s.strip_suffix('"'))
                    .map(str::to_owned)
            });
            let ws_l = ws.to_ascii_lowercase();
            let values: Vec<Value> = w
                .oauth
                .roles
                .iter()
                .filter(|((t, _), _)| *t == ws_l)
                .filter(|((_, l), _)| wanted.as_deref().is_none_or(|u| u == bb_uuid(l)))
                .map(|((_, l), role)| {
                    json!({
                        "type": "workspace_membership",
                        "permission": role,
                        "user": {"type": "user", "uuid": bb_uuid(l), "nickname": l, "display_name": l},
                        "workspace": {"type": "workspace", "slug": ws},
                    })
                })
                .collect();
            Resp::json(
                200,
                json!({"pagelen": 10, "size": values.len(), "page": 1, "values": values}),
            )
        }
        _ => return None,
    })
}
