//! Bitbucket Cloud REST 2.0 as `src/forge/bitbucket/client.rs` uses it: repositories,
//! branches, the `src` endpoint (listing with `max_depth`, raw files, multipart commits
//! answered by 201 + `Location: …/commit/<hash>`), pull requests (BBQL `q`, several
//! `state`s, `sort`), comments, workspace repository permissions, and workspace and
//! repository webhooks. Listings paginate with `pagelen`/`page` and an absolute `next`.
//!
//! Credentials are held to Bitbucket's rules: every endpoint needs the scopes its OpenAPI
//! description lists (`security` for access tokens, `x-atlassian-oauth2-scopes` for
//! Atlassian API tokens), a webhook needs the `webhook` scope *and* the scope of every
//! event it subscribes to ("Create a webhook for a workspace"; the 2019-12-15
//! webhook-scope change notice), and a missing scope is answered with 403 "Your
//! credentials lack one or more required privilege scopes." and the required and granted
//! scopes. Only workspace owners (workspace access tokens, an owner's API token) manage
//! workspace webhooks; the admin-only endpoints (repository permissions, repository
//! webhooks) need `repository:admin` from an access token.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{
    dirs_of, int_param, iso_ms, page_of, pct_decode, valid_repo_path, with_param, BbCredential,
    CommentRec, HookRec, Pr, PrState, Repo, Req, Resp, World, BITBUCKET_EMAIL,
};

fn err(status: u16, m: &str) -> Resp {
    Resp::json(status, json!({"type": "error", "error": {"message": m}}))
}

fn field_err(field: &str, m: &str) -> Resp {
    Resp::json(
        400,
        json!({"type": "error", "error": {"message": format!("{field}: {m}"), "fields": {field: [m]}}}),
    )
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// The `{uuid}` Bitbucket gives an account (users by login, workspaces by slug).
pub fn uuid_of(seed: &str) -> String {
    let h = super::hex40(seed.as_bytes());
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The Atlassian `account_id` of a user.
pub fn account_id(login: &str) -> String {
    format!("557058:{}", &super::hex40(login.as_bytes())[..12])
}

fn repo_uuid(repo: &Repo) -> String {
    format!("{{00000000-0000-4000-8000-{:012x}}}", repo.id)
}

pub(super) fn handle(w: &mut World, r: &Req) -> Resp {
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let ["2.0", rest @ ..] = segs.as_slice() else {
        return err(404, "Resource not found");
    };
    let expected = match w.bb_credential {
        BbCredential::ApiToken => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{BITBUCKET_EMAIL}:{}", w.token))
        ),
        _ => format!("Bearer {}", w.token),
    };
    if r.header("authorization") != Some(expected.as_str()) {
        return err(
            401,
            "Token is invalid, expired, or not supported for this endpoint.",
        );
    }
    let need = endpoint_scopes(r.method.as_str(), rest);
    if let Some(refusal) = lacks(w, need.classic, need.granular) {
        return refusal;
    }
    if need.admin && !is_admin(w) {
        return err(
            403,
            "Only repository administrators may access this resource.",
        );
    }
    match (r.method.as_str(), rest) {
        ("GET", ["repositories", ws]) => list_repos(w, r, ws),
        (_, ["repositories", ws, slug, tail @ ..]) => {
            let full = format!("{ws}/{slug}");
            let Some(idx) = w
                .repos
                .iter()
                .position(|x| x.full_name.eq_ignore_ascii_case(&full))
            else {
                return err(404, &format!("Repository {full} not found"));
            };
            repo_route(w, r, idx, tail)
        }
        ("GET", ["workspaces", ws]) => {
            if !w.repos.iter().any(|x| x.owner().eq_ignore_ascii_case(ws)) {
                return err(404, &format!("No workspace with identifier '{ws}'."));
            }
            Resp::json(
                200,
                json!({"type": "workspace", "slug": ws, "name": ws, "uuid": uuid_of(ws)}),
            )
        }
        (_, ["workspaces", ws, "hooks", tail @ ..]) => {
            if !matches!(
                w.bb_credential,
                BbCredential::Workspace | BbCredential::ApiToken
            ) {
                // Bitbucket: "Only workspace owners can install webhooks on workspaces."
                // (The message text below is the fake's; clients must not depend on it.)
                return err(
                    403,
                    "Only workspace owners can manage the webhooks of a workspace.",
                );
            }
            if !w.repos.iter().any(|x| x.owner().eq_ignore_ascii_case(ws)) {
                return err(404, &format!("No workspace with identifier '{ws}'."));
            }
            hooks(w, r, ws.to_ascii_lowercase(), tail)
        }
        ("GET", ["workspaces", ws, "permissions", "repositories", slug]) => {
            permissions(w, r, ws, slug)
        }
        _ => err(404, "Resource not found"),
    }
}

fn repo_route(w: &mut World, r: &Req, idx: usize, tail: &[&str]) -> Resp {
    let num = |s: &str| s.parse::<u64>().ok();
    match (r.method.as_str(), tail) {
        ("GET", []) => Resp::json(200, repo_json(w, &w.repos[idx])),
        ("GET", ["refs", "branches", b @ ..]) if !b.is_empty() => {
            let name = b.join("/");
            let repo = &w.repos[idx];
            match repo.branches.get(&name) {
                Some(sha) => Resp::json(
                    200,
                    json!({
                        "type": "branch",
                        "name": name,
                        "target": commit_json(w, repo, sha),
                        "merge_strategies": ["merge_commit", "squash", "fast_forward"],
                        "default_merge_strategy": "merge_commit",
                        "links": {"html": {"href": format!("{}/{}/branch/{name}", w.base_url, repo.full_name)}},
                    }),
                ),
                None => err(404, &format!("Branch \"{name}\" not found")),
            }
        }
        ("DELETE", ["refs", "branches", b @ ..]) if !b.is_empty() => {
            let name = b.join("/");
            let repo = &mut w.repos[idx];
            if repo.default_branch.as_deref() == Some(name.as_str()) {
                return err(400, "You can't delete the main branch.");
            }
            match repo.branches.remove(&name) {
                Some(_) => Resp::empty(204),
                None => err(404, &format!("Branch \"{name}\" not found")),
            }
        }
        ("GET", ["commit", sha]) => {
            let repo = &w.repos[idx];
            match repo.resolve(sha) {
                Some(full) => Resp::json(200, commit_json(w, repo, &full)),
                None => err(404, &format!("Commit not found: {sha}")),
            }
        }
        ("GET", ["src", rev, path @ ..]) => src(w, r, idx, rev, path),
        ("POST", ["src"]) => commit(w, r, idx),
        ("GET", ["pullrequests"]) => list_prs(w, r, idx),
        ("POST", ["pullrequests"]) => create_pr(w, r, idx),
        ("GET", ["pullrequests", id]) => match num(id).and_then(|n| w.repos[idx].pr(n)) {
            Some(pr) => Resp::json(200, pr_json(w, &w.repos[idx], pr)),
            None => err(404, "Pull request not found"),
        },
        ("PUT", ["pullrequests", id]) => match num(id) {
            Some(n) => update_pr(w, r, idx, n),
            None => err(404, "Pull request not found"),
        },
        ("POST", ["pullrequests", id, "decline"]) => match num(id) {
            Some(n) => decline(w, idx, n),
            None => err(404, "Pull request not found"),
        },
        ("GET", ["environments"]) => {
            let envs: Vec<Value> = environments(&w.repos[idx])
                .into_iter()
                .map(|(uuid, name)| env_json(&uuid, &name))
                .collect();
            paged(w, r, envs, 10, 100)
        }
        ("POST", ["environments"]) => create_environment(w, r, idx),
        ("GET", ["deployments_config", "environments", env, "variables"]) => {
            let env = pct_decode(env);
            if !environments(&w.repos[idx]).iter().any(|(u, _)| *u == env) {
                return err(404, "Environment not found");
            }
            let vars: Vec<Value> = w.repos[idx]
                .ci_vars
                .iter()
                .filter(|((scope, _), _)| *scope == env)
                .map(|((_, key), v)| var_json(key, v))
                .collect();
            paged(w, r, vars, 10, 100)
        }
        ("POST", ["deployments_config", "environments", env, "variables"]) => {
            write_variable(w, r, idx, &pct_decode(env), None)
        }
        ("PUT", ["deployments_config", "environments", env, "variables", var]) => {
            write_variable(w, r, idx, &pct_decode(env), Some(&pct_decode(var)))
        }
        ("POST", [kind @ ("pullrequests" | "issues"), id, "comments"]) => match num(id) {
            Some(n) => comment(w, r, idx, *kind == "pullrequests", n),
            None => err(404, "Resource not found"),
        },
        (_, ["pipelines", ..]) => super::ci::bitbucket(w, r, idx, tail),
        (_, ["hooks", rest @ ..]) => {
            let key = w.repos[idx].full_name.to_ascii_lowercase();
            hooks(w, r, key, rest)
        }
        _ => err(404, "Resource not found"),
    }
}

// --- credentials -------------------------------------------------------------------------

/// What an endpoint needs.
struct Need {
    /// Access-token (classic) scopes.
    classic: &'static [&'static str],
    /// API-token (granular) scopes.
    granular: &'static [&'static str],
    /// Only repository administrators may call it.
    admin: bool,
}

const fn need(classic: &'static [&'static str], granular: &'static [&'static str]) -> Need {
    Need {
        classic,
        granular,
        admin: false,
    }
}

/// The scopes of each endpoint the fake serves, from Bitbucket's OpenAPI description.
fn endpoint_scopes(method: &str, rest: &[&str]) -> Need {
    const READ: Need = need(&["repository"], &["read:repository:bitbucket"]);
    const WRITE: Need = need(&["repository:write"], &["write:repository:bitbucket"]);
    const PR_READ: Need = need(&["pullrequest"], &["read:pullrequest:bitbucket"]);
    const PR_WRITE: Need = need(
        &["pullrequest:write"],
        &["read:pullrequest:bitbucket", "write:pullrequest:bitbucket"],
    );
    const HOOK_READ: Need = need(&["webhook"], &["read:webhook:bitbucket"]);
    const HOOK_WRITE: Need = need(
        &["webhook"],
        &["read:webhook:bitbucket", "write:webhook:bitbucket"],
    );
    const NONE: Need = need(&[], &[]);
    match (method, rest) {
        ("GET", ["repositories", _]) => READ,
        (_, ["repositories", _, _, tail @ ..]) => match (method, tail) {
            ("DELETE", ["refs", ..]) | ("POST", ["src"]) => WRITE,
            ("GET", ["pullrequests", ..]) | ("POST", ["pullrequests", _, "comments"]) => PR_READ,
            (_, ["pullrequests", ..]) => PR_WRITE,
            ("POST", ["issues", _, "comments"]) => {
                need(&["issue:write"], &["write:issue:bitbucket"])
            }
            // Pipelines: "Pipelines: Read" / "Write" on access tokens.
            ("POST", ["pipelines", ..]) => need(&["pipeline:write"], &["write:pipeline:bitbucket"]),
            (_, ["pipelines", ..]) => need(&["pipeline"], &["read:pipeline:bitbucket"]),
            ("GET", ["hooks", ..]) => Need {
                admin: true,
                ..HOOK_READ
            },
            (_, ["hooks", ..]) => Need {
                admin: true,
                ..HOOK_WRITE
            },
            _ => READ,
        },
        ("GET", ["workspaces", _]) => need(&[], &["read:workspace:bitbucket"]),
        ("GET", ["workspaces", _, "hooks", ..]) => HOOK_READ,
        (_, ["workspaces", _, "hooks", ..]) => HOOK_WRITE,
        ("GET", ["workspaces", _, "permissions", ..]) => Need {
            classic: &["repository"],
            granular: &["read:repository:bitbucket", "read:user:bitbucket"],
            admin: true,
        },
        _ => NONE,
    }
}

/// Classic scopes another implies (Bitbucket's scope reference: `pullrequest` implies
/// `repository`, `pullrequest:write` implies `repository:write`, a write scope its read
/// scope). Granular API-token scopes imply nothing.
fn implied(scope: &str) -> &'static [&'static str] {
    match scope {
        "repository:write" => &["repository"],
        "pullrequest" => &["repository"],
        "pullrequest:write" => &["pullrequest", "repository", "repository:write"],
        "issue:write" => &["issue"],
        "project" => &["repository"],
        "pipeline:write" => &["pipeline"],
        "runner:write" => &["runner"],
        _ => &[],
    }
}

/// The token's scopes with what they imply; `None`: every scope.
fn granted(w: &World) -> Option<BTreeSet<String>> {
    let scopes = w.token_scopes.as_ref()?;
    let mut out = scopes.clone();
    if w.bb_credential != BbCredential::ApiToken {
        for s in scopes {
            out.extend(implied(s).iter().map(|x| (*x).to_owned()));
        }
    }
    Some(out)
}

/// Bitbucket's refusal when the token lacks some of `classic` (access tokens) or
/// `granular` (API tokens).
fn lacks(w: &World, classic: &[&str], granular: &[&str]) -> Option<Resp> {
    let have = granted(w)?;
    let wanted = if w.bb_credential == BbCredential::ApiToken {
        granular
    } else {
        classic
    };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|s| !have.contains(*s))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let shown: Vec<&String> = w.token_scopes.iter().flatten().collect();
    Some(Resp::json(
        403,
        json!({"type": "error", "error": {
            "message": "Your credentials lack one or more required privilege scopes.",
            "detail": {"required": missing, "granted": shown},
        }}),
    ))
}

/// Admin permission on repositories: an access token has it with `repository:admin`; the
/// fake's API token belongs to a workspace owner.
fn is_admin(w: &World) -> bool {
    match (&w.bb_credential, granted(w)) {
        (BbCredential::ApiToken, _) | (_, None) => true,
        (_, Some(have)) => have.contains("repository:admin"),
    }
}

/// The scope a webhook event needs: (access token, API token).
fn event_scope(event: &str) -> Option<(&'static str, &'static str)> {
    Some(match event.split(':').next()? {
        "repo" => ("repository", "read:repository:bitbucket"),
        "pullrequest" => ("pullrequest", "read:pullrequest:bitbucket"),
        "issue" => ("issue", "read:issue:bitbucket"),
        "project" => ("project", "read:project:bitbucket"),
        _ => return None,
    })
}

/// Events a webhook may subscribe to (`GET /hook_events/workspace`), those pipewright
/// uses among them.
const KNOWN_EVENTS: &[&str] = &[
    "repo:push",
    "repo:commit_status_created",
    "repo:commit_status_updated",
    "repo:updated",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
    "pullrequest:comment_deleted",
    "issue:created",
    "issue:updated",
    "issue:comment_created",
    "project:updated",
];

fn hook_json(h: &HookRec) -> Value {
    json!({"type": "webhook_subscription", "uuid": format!("{{{}}}", h.id), "url": h.url,
           "description": "pipewright", "events": h.events, "active": true,
           "secret_set": !h.secret.is_empty()})
}

/// Workspace (`key` = slug) or repository (`key` = `workspace/slug`) webhooks:
/// list, create, update.
fn hooks(w: &mut World, r: &Req, key: String, tail: &[&str]) -> Resp {
    match (r.method.as_str(), tail) {
        ("GET", []) => {
            let values: Vec<Value> = w
                .hooks
                .get(&key)
                .into_iter()
                .flatten()
                .map(hook_json)
                .collect();
            paged(w, r, values, 10, 100)
        }
        ("POST", []) | ("PUT", [_]) => {
            let body = match body_obj(r) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(url) = body
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("http"))
            else {
                return field_err("url", "This field is required.");
            };
            let events: Vec<String> = body
                .get("events")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if events.is_empty() {
                return field_err("events", "This field is required.");
            }
            if let Some(bad) = events.iter().find(|e| !KNOWN_EVENTS.contains(&e.as_str())) {
                return field_err("events", &format!("Invalid event: {bad}"));
            }
            // The webhook scope was checked for the endpoint; each event needs its own.
            let (classic, granular): (Vec<&str>, Vec<&str>) =
                events.iter().filter_map(|e| event_scope(e)).unzip();
            if let Some(refusal) = lacks(w, &classic, &granular) {
                return refusal;
            }
            let secret = body
                .get("secret")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let new_id = w.tick() as u64;
            let list = w.hooks.entry(key).or_default();
            let rec = if let [uid] = tail {
                let id = uid.trim_matches(|c| c == '{' || c == '}');
                let Some(h) = list.iter_mut().find(|h| h.id.to_string() == id) else {
                    return err(404, "Webhook not found");
                };
                h.url = url.to_owned();
                h.events = events;
                if body.contains_key("secret") {
                    h.secret = secret;
                }
                h.clone()
            } else {
                let rec = HookRec {
                    id: new_id,
                    url: url.to_owned(),
                    secret,
                    events,
                };
                list.push(rec.clone());
                rec
            };
            Resp::json(if tail.is_empty() { 201 } else { 200 }, hook_json(&rec))
        }
        _ => err(404, "Resource not found"),
    }
}

// --- JSON shapes -------------------------------------------------------------------------

fn html(w: &World, repo: &Repo) -> String {
    format!("{}/{}", w.base_url, repo.full_name)
}

fn api(w: &World, repo: &Repo) -> String {
    format!("{}/2.0/repositories/{}", w.base_url, repo.full_name)
}

fn user_json(login: &str) -> Value {
    json!({"type": "user", "nickname": login, "display_name": login, "uuid": uuid_of(login),
           "account_id": account_id(login)})
}

fn repo_json(w: &World, repo: &Repo) -> Value {
    let ws = repo.owner();
    let mut v = json!({
        "type": "repository",
        "uuid": repo_uuid(repo),
        "full_name": repo.full_name,
        "name": repo.name(),
        "slug": repo.name().to_ascii_lowercase(),
        "is_private": repo.private,
        "scm": "git",
        "has_issues": true,
        "fork_policy": "allow_forks",
        "mainbranch": repo.default_branch.as_ref().map(|b| json!({"type": "branch", "name": b})),
        "created_on": iso_ms(repo.created),
        "updated_on": iso_ms(repo.pushed.unwrap_or(repo.created)),
        "workspace": {"type": "workspace", "slug": ws, "uuid": uuid_of(ws)},
        "links": {"html": {"href": html(w, repo)}, "self": {"href": api(w, repo)}},
    });
    if repo.fork {
        v["parent"] = json!({"type": "repository", "full_name": "upstream/repo", "uuid": uuid_of("upstream")});
    }
    v
}

fn commit_json(w: &World, repo: &Repo, sha: &str) -> Value {
    let c = &repo.commits[sha];
    json!({
        "type": "commit",
        "hash": c.sha,
        "date": iso_ms(c.time),
        "message": c.message,
        "author": {"type": "author", "raw": format!("{} <{}@example.com>", c.author, c.author)},
        "parents": c.parents.iter().map(|p| json!({"type": "commit", "hash": p,
            "links": {"self": {"href": format!("{}/commit/{p}", api(w, repo))}}})).collect::<Vec<_>>(),
        "repository": {"type": "repository", "full_name": repo.full_name, "uuid": repo_uuid(repo)},
        "links": {"self": {"href": format!("{}/commit/{}", api(w, repo), c.sha)},
                  "html": {"href": format!("{}/commits/{}", html(w, repo), c.sha)}},
    })
}

fn pr_json(w: &World, repo: &Repo, pr: &Pr) -> Value {
    let state = match pr.state {
        PrState::Open => "OPEN",
        PrState::Closed => "DECLINED",
        PrState::Merged => "MERGED",
    };
    let end = |branch: &str, sha: &str| {
        json!({
            "branch": {"name": branch},
            "commit": {"type": "commit", "hash": short(sha)},
            "repository": {"type": "repository", "full_name": repo.full_name, "uuid": repo_uuid(repo)},
        })
    };
    let base_sha = repo.branches.get(&pr.base).cloned().unwrap_or_default();
    json!({
        "type": "pullrequest",
        "id": pr.number,
        "title": pr.title,
        "description": pr.body,
        "summary": {"raw": pr.body, "markup": "markdown"},
        "state": state,
        "author": user_json(&pr.author),
        "source": end(&pr.head, &pr.head_sha),
        "destination": end(&pr.base, &base_sha),
        "merge_commit": null,
        "close_source_branch": pr.remove_source_branch,
        "comment_count": repo.comments.iter().filter(|c| c.on_pr && c.number == pr.number).count(),
        "task_count": 0,
        "reason": "",
        "created_on": iso_ms(pr.created),
        "updated_on": iso_ms(pr.updated),
        "links": {
            "self": {"href": format!("{}/pullrequests/{}", api(w, repo), pr.number)},
            "html": {"href": format!("{}/pull-requests/{}", html(w, repo), pr.number)},
        },
    })
}

// --- helpers -----------------------------------------------------------------------------

fn paged(w: &World, r: &Req, values: Vec<Value>, default_len: usize, max_len: usize) -> Resp {
    let pagelen = int_param(r.q("pagelen"), default_len, max_len);
    let page = int_param(r.q("page"), 1, usize::MAX);
    let total = values.len();
    let mut v = json!({
        "pagelen": pagelen,
        "size": total,
        "page": page,
        "values": page_of(&values, page, pagelen),
    });
    if page * pagelen < total {
        v["next"] = json!(with_param(
            &w.base_url,
            &r.path,
            &r.query,
            "page",
            &(page + 1).to_string()
        ));
    }
    if page > 1 {
        v["previous"] = json!(with_param(
            &w.base_url,
            &r.path,
            &r.query,
            "page",
            &(page - 1).to_string()
        ));
    }
    Resp::json(200, v)
}

fn body_obj(r: &Req) -> Result<Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(err(400, "Bad request: expected an object")),
        Err(e) => Err(err(400, &format!("Bad request: malformed JSON: {e}"))),
    }
}

/// `field = "value"` (the only BBQL shape the fake understands), unescaped.
fn bbql(q: &str) -> Result<(String, String), Resp> {
    let Some((field, value)) = q.split_once('=') else {
        return Err(err(400, &format!("Invalid query: {q}")));
    };
    let value = value.trim();
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Err(err(400, &format!("Invalid query: {q}")));
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return Err(err(400, &format!("Invalid query: {q}"))),
            },
            '"' => return Err(err(400, &format!("Invalid query: {q}"))),
            c => out.push(c),
        }
    }
    Ok((field.trim().to_owned(), out))
}

/// One field of a commit form.
struct Field {
    name: String,
    value: String,
    /// A file part: its `Content-Disposition` has a `filename` (Bitbucket tells a file
    /// at a path named `message` from the commit message by that parameter alone).
    file: bool,
}

/// Parses `multipart/form-data` (or a urlencoded form) into fields.
fn form_fields(w: &mut World, r: &Req) -> Result<Vec<Field>, Resp> {
    let ct = r.header("content-type").unwrap_or_default().to_owned();
    if r.content_type() == "application/x-www-form-urlencoded" {
        // No filenames in a urlencoded form: a leading `/` marks a file whose path
        // clashes with a metadata field.
        return Ok(r
            .form()
            .into_iter()
            .map(|(name, value)| Field {
                file: name.starts_with('/'),
                name,
                value,
            })
            .collect());
    }
    if r.content_type() != "multipart/form-data" {
        return Err(err(400, "Expected multipart/form-data"));
    }
    let Some(boundary) = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_owned())
    else {
        return Err(err(400, "multipart body without boundary"));
    };
    let delim = format!("--{boundary}").into_bytes();
    let body = &r.body;
    let mut out = Vec::new();
    let mut pos = find(body, &delim, 0).ok_or_else(|| err(400, "malformed multipart body"))?;
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        let start = pos + 2; // CRLF after the delimiter
        let Some(next) = find(body, &delim, start) else {
            return Err(err(400, "malformed multipart body"));
        };
        let part = &body[start..next.saturating_sub(2).max(start)];
        let Some(split) = find(part, b"\r\n\r\n", 0) else {
            return Err(err(400, "malformed multipart part"));
        };
        let headers = String::from_utf8_lossy(&part[..split]).into_owned();
        let value = String::from_utf8_lossy(&part[split + 4..]).into_owned();
        let mut name = None;
        let mut file = false;
        for line in headers.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in v.split(';').map(str::trim) {
                if param.starts_with("filename=") || param.starts_with("filename*=") {
                    file = true;
                } else if let Some(n) = param.strip_prefix("name=") {
                    name = Some(n.trim_matches('"').to_owned());
                } else if let Some(n) = param.strip_prefix("name*=") {
                    // RFC 5987 form: `utf-8''percent-encoded`. RFC 7578 §4.2 says form
                    // field names must not use it; reqwest emits it for names it would
                    // percent-encode (e.g. paths containing `/`).
                    let enc = n.split_once("''").map(|(_, e)| e).unwrap_or(n);
                    let decoded = pct_decode(enc);
                    w.quirks.push(format!(
                        "multipart field name sent as RFC 5987 `name*=` ({decoded})"
                    ));
                    name = Some(decoded);
                }
            }
        }
        let Some(name) = name else {
            return Err(err(400, "multipart part without a name"));
        };
        out.push(Field { name, value, file });
        pos = next;
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|win| win == needle)
        .map(|i| i + from)
}

// --- handlers ----------------------------------------------------------------------------

fn list_repos(w: &World, r: &Req, ws: &str) -> Resp {
    let prefix = format!("{}/", ws.to_ascii_lowercase());
    let items: Vec<Value> = w
        .repos
        .iter()
        .filter(|x| x.full_name.to_ascii_lowercase().starts_with(&prefix))
        .map(|x| repo_json(w, x))
        .collect();
    if items.is_empty() && !w.repos.iter().any(|x| x.tenant.eq_ignore_ascii_case(ws)) {
        return err(404, &format!("No workspace with identifier '{ws}'."));
    }
    paged(w, r, items, 10, 100)
}

fn src(w: &World, r: &Req, idx: usize, rev: &str, path: &[&str]) -> Resp {
    let repo = &w.repos[idx];
    let Some(sha) = repo.resolve(rev) else {
        return err(404, &format!("Commit not found: {rev}"));
    };
    let tree = &repo.commits[&sha].tree;
    let joined = path.join("/");
    let dir_wanted = joined.is_empty() || joined.ends_with('/');
    let dir = joined.trim_end_matches('/').to_owned();
    if !dir_wanted {
        if let Some(content) = tree.get(&dir) {
            return Resp::text(200, content);
        }
    }
    let dirs = dirs_of(tree.keys());
    if !dir.is_empty() && !dirs.contains(&dir) {
        return err(404, &format!("No such file or directory: {dir}"));
    }
    let max_depth = int_param(r.q("max_depth"), 1, 1000);
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut entries: Vec<(usize, String, bool)> = tree
        .keys()
        .map(|f| (f.clone(), false))
        .chain(dirs.iter().map(|d| (d.clone(), true)))
        .filter_map(|(p, is_dir)| {
            let rest = p.strip_prefix(&prefix)?;
            let depth = rest.matches('/').count() + 1;
            (!rest.is_empty() && depth <= max_depth).then_some((depth, p, is_dir))
        })
        .collect();
    // Breadth first, as Bitbucket walks the tree.
    entries.sort();
    let commit = json!({"type": "commit", "hash": sha});
    let values = entries
        .into_iter()
        .map(|(_, p, is_dir)| {
            if is_dir {
                json!({"type": "commit_directory", "path": p, "commit": commit})
            } else {
                json!({"type": "commit_file", "path": p, "size": tree[&p].len(), "commit": commit,
                       "mimetype": null, "attributes": [], "escaped_path": p})
            }
        })
        .collect();
    paged(w, r, values, 10, 100)
}

fn commit(w: &mut World, r: &Req, idx: usize) -> Resp {
    let fields = match form_fields(w, r) {
        Ok(f) => f,
        Err(e) => return e,
    };
    // Metadata fields: never file parts, and named exactly so.
    const META: [&str; 5] = ["message", "author", "parents", "files", "branch"];
    let is_meta = |f: &Field| !f.file && META.contains(&f.name.as_str());
    let meta = |k: &'static str| fields.iter().filter(move |f| is_meta(f) && f.name == k);
    let message = meta("message")
        .next()
        .map(|f| f.value.clone())
        .unwrap_or_else(|| "Edited online with Bitbucket".into());
    let parents: Vec<String> = meta("parents")
        .flat_map(|f| f.value.split(',').map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .collect();
    let deletes: Vec<String> = meta("files")
        .map(|f| f.value.trim_start_matches('/').to_owned())
        .collect();
    let writes: Vec<(String, String)> = fields
        .iter()
        .filter(|f| !is_meta(f))
        .map(|f| (f.name.trim_start_matches('/').to_owned(), f.value.clone()))
        .collect();
    let branch_field = meta("branch").next().map(|f| f.value.clone());
    for p in writes.iter().map(|(p, _)| p).chain(deletes.iter()) {
        if !valid_repo_path(p) {
            return err(400, &format!("Invalid path: {p}"));
        }
    }
    let repo = &w.repos[idx];
    let branch = branch_field
        .or_else(|| repo.default_branch.clone())
        .unwrap_or_else(|| "main".into());
    let mut resolved = Vec::new();
    for p in &parents {
        match repo.resolve(p) {
            Some(s) => resolved.push(s),
            None => return err(400, &format!("parents: commit {p} not found")),
        }
    }
    let base = match repo.branches.get(&branch) {
        Some(tip) => {
            if let Some(first) = resolved.first() {
                if first != tip {
                    return err(
                        409,
                        &format!(
                            "Commit rejected: parents ({}) is not the tip of branch '{branch}'",
                            parents[0]
                        ),
                    );
                }
            }
            Some(tip.clone())
        }
        None => resolved.first().cloned().or_else(|| {
            repo.default_branch
                .as_ref()
                .and_then(|d| repo.branches.get(d).cloned())
        }),
    };
    let mut tree = base
        .as_ref()
        .map(|b| repo.commits[b].tree.clone())
        .unwrap_or_default();
    for d in &deletes {
        let prefix = format!("{d}/");
        tree.retain(|p, _| p != d && !p.starts_with(&prefix));
    }
    for (p, c) in writes {
        tree.insert(p, c);
    }
    let now = w.tick();
    let author = w.bot_login.clone();
    let repo = &mut w.repos[idx];
    let sha = repo.make_commit(tree, base.into_iter().collect(), &author, &message, now);
    repo.set_branch(&branch, &sha);
    repo.pushed = Some(now);
    let location = format!("{}/commit/{sha}", api(w, &w.repos[idx]));
    Resp::empty(201).header("location", location)
}

fn list_prs(w: &World, r: &Req, idx: usize) -> Resp {
    let repo = &w.repos[idx];
    let mut states: Vec<&str> = r.qs("state");
    if states.is_empty() {
        states.push("OPEN");
    }
    for s in &states {
        if !["OPEN", "MERGED", "DECLINED", "SUPERSEDED"].contains(s) {
            return err(400, &format!("Invalid state: {s}"));
        }
    }
    let filter = match r.q("q") {
        None => None,
        Some(q) => match bbql(q) {
            Ok((field, value)) => {
                if ![
                    "source.branch.name",
                    "destination.branch.name",
                    "state",
                    "title",
                ]
                .contains(&field.as_str())
                {
                    return err(400, &format!("Invalid field name: {field}"));
                }
                Some((field, value))
            }
            Err(e) => return e,
        },
    };
    let mut prs: Vec<&Pr> = repo
        .prs
        .iter()
        .filter(|p| {
            let s = match p.state {
                PrState::Open => "OPEN",
                PrState::Closed => "DECLINED",
                PrState::Merged => "MERGED",
            };
            states.contains(&s)
        })
        .filter(|p| match &filter {
            Some((f, v)) => match f.as_str() {
                "source.branch.name" => p.head == *v,
                "destination.branch.name" => p.base == *v,
                "title" => p.title == *v,
                _ => true,
            },
            None => true,
        })
        .collect();
    let sort = r.q("sort").unwrap_or("id");
    let (desc, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort),
    };
    match key {
        "created_on" => prs.sort_by_key(|p| (p.created, p.number)),
        "updated_on" => prs.sort_by_key(|p| (p.updated, p.number)),
        "id" => prs.sort_by_key(|p| p.number),
        other => return err(400, &format!("Invalid sort field: {other}")),
    }
    if desc {
        prs.reverse();
    }
    let values = prs.iter().map(|p| pr_json(w, repo, p)).collect();
    paged(w, r, values, 10, 50)
}

fn create_pr(w: &mut World, r: &Req, idx: usize) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let title = match o.get("title") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return field_err("title", "This field is required.")
        }
        Some(_) => return field_err("title", "Expected a string."),
    };
    let description = match o.get("description") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return field_err("description", "Expected a string."),
    };
    let close = match o.get("close_source_branch") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => false,
        Some(_) => return field_err("close_source_branch", "Expected a boolean."),
    };
    let Some(source) = o
        .get("source")
        .and_then(|s| s.pointer("/branch/name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return field_err("source", "This field is required.");
    };
    let repo = &w.repos[idx];
    let dest = match o.get("destination") {
        None | Some(Value::Null) => repo.default_branch.clone().unwrap_or_default(),
        Some(d) => match d.pointer("/branch/name").and_then(Value::as_str) {
            Some(b) => b.to_owned(),
            None => return field_err("destination", "Expected a branch name."),
        },
    };
    let Some(head_sha) = repo.branches.get(&source).cloned() else {
        return field_err("source", &format!("Branch not found: {source}"));
    };
    if !repo.branches.contains_key(&dest) {
        return field_err("destination", &format!("Branch not found: {dest}"));
    }
    if source == dest {
        return field_err(
            "source",
            "Source and destination branches must be different.",
        );
    }
    if repo
        .prs
        .iter()
        .any(|p| p.state == PrState::Open && p.head == source && p.base == dest)
    {
        return err(
            400,
            &format!("There is already an open pull request from {source} to {dest}."),
        );
    }
    let now = w.tick();
    let gid = w.next_id();
    let kind = w.kind;
    let author = w.bot_login.clone();
    let repo = &mut w.repos[idx];
    let number = repo.take_pr_number(kind);
    repo.prs.push(Pr {
        number,
        global_id: gid,
        head: source,
        base: dest,
        title,
        body: description,
        state: PrState::Open,
        head_sha,
        author,
        created: now,
        updated: now,
        closed: None,
        remove_source_branch: close,
    });
    let repo = &w.repos[idx];
    Resp::json(201, pr_json(w, repo, repo.pr(number).expect("just pushed")))
}

fn update_pr(w: &mut World, r: &Req, idx: usize, number: u64) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut title = None;
    let mut description = None;
    for (k, slot) in [("title", &mut title), ("description", &mut description)] {
        match o.get(k) {
            Some(Value::String(s)) => *slot = Some(s.clone()),
            None | Some(Value::Null) => {}
            Some(_) => return field_err(k, "Expected a string."),
        }
    }
    if title.as_deref() == Some("") {
        return field_err("title", "This field may not be blank.");
    }
    let now = w.tick();
    let Some(pr) = w.repos[idx].pr_mut(number) else {
        return err(404, "Pull request not found");
    };
    if let Some(t) = title {
        pr.title = t;
    }
    if let Some(d) = description {
        pr.body = d;
    }
    pr.updated = now;
    let repo = &w.repos[idx];
    Resp::json(200, pr_json(w, repo, repo.pr(number).expect("exists")))
}

fn decline(w: &mut World, idx: usize, number: u64) -> Resp {
    let now = w.tick();
    let Some(pr) = w.repos[idx].pr_mut(number) else {
        return err(404, "Pull request not found");
    };
    match pr.state {
        PrState::Merged => return err(400, "You can't decline a merged pull request."),
        PrState::Closed => {}
        PrState::Open => {
            pr.state = PrState::Closed;
            pr.closed = Some(now);
            pr.updated = now;
        }
    }
    let repo = &w.repos[idx];
    Resp::json(200, pr_json(w, repo, repo.pr(number).expect("exists")))
}

fn comment(w: &mut World, r: &Req, idx: usize, on_pr: bool, number: u64) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let Some(raw) = o
        .get("content")
        .and_then(|c| c.get("raw"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return field_err("content", "This field is required.");
    };
    let repo = &w.repos[idx];
    let found = if on_pr {
        repo.pr(number).is_some()
    } else {
        repo.issues.iter().any(|i| i.number == number)
    };
    if !found {
        return err(
            404,
            if on_pr {
                "Pull request not found"
            } else {
                "Issue not found"
            },
        );
    }
    let now = w.tick();
    let id = w.next_id();
    let author = w.bot_login.clone();
    w.repos[idx].comments.push(CommentRec {
        id,
        number,
        on_pr,
        body: raw.clone(),
        author: author.clone(),
        created: now,
    });
    let repo = &w.repos[idx];
    let (kind, parent, path) = if on_pr {
        (
            "pullrequest_comment",
            json!({"type": "pullrequest", "id": number}),
            "pullrequests",
        )
    } else {
        (
            "issue_comment",
            json!({"type": "issue", "id": number}),
            "issues",
        )
    };
    let mut v = json!({
        "type": kind,
        "id": id,
        "content": {"type": "rendered", "raw": raw, "markup": "markdown", "html": format!("<p>{raw}</p>")},
        "user": user_json(&author),
        "created_on": iso_ms(now),
        "updated_on": null,
        "deleted": false,
        "links": {"self": {"href": format!("{}/{path}/{number}/comments/{id}", api(w, repo))}},
    });
    v[if on_pr { "pullrequest" } else { "issue" }] = parent;
    Resp::json(201, v)
}

fn permissions(w: &World, r: &Req, ws: &str, slug: &str) -> Resp {
    let full = format!("{ws}/{slug}");
    let Some(repo) = w
        .repos
        .iter()
        .find(|x| x.full_name.eq_ignore_ascii_case(&full))
    else {
        return err(404, &format!("Repository {full} not found"));
    };
    let filter = match r.q("q") {
        None => None,
        Some(q) => match bbql(q) {
            Ok((f, v))
                if [
                    "user.nickname",
                    "user.uuid",
                    "user.account_id",
                    "permission",
                ]
                .contains(&f.as_str()) =>
            {
                Some((f, v))
            }
            Ok((f, _)) => return err(400, &format!("Invalid field name: {f}")),
            Err(e) => return e,
        },
    };
    let values = repo
        .permissions
        .iter()
        .filter(|(user, level)| match &filter {
            Some((f, v)) => match f.as_str() {
                "user.nickname" => user.eq_ignore_ascii_case(v),
                "user.uuid" => uuid_of(user) == *v,
                "user.account_id" => account_id(user) == *v,
                "permission" => *level == v,
                _ => false,
            },
            None => true,
        })
        .map(|(user, level)| {
            json!({
                "type": "repository_permission",
                "permission": level,
                "user": user_json(user),
                "repository": {"type": "repository", "full_name": repo.full_name, "uuid": repo_uuid(repo)},
            })
        })
        .collect();
    paged(w, r, values, 10, 100)
}

/// Scope under which created deployment environments are kept in `Repo::ci_vars`.
const ENV_SCOPE: &str = "__environments__";

/// A repository's deployment environments, `(uuid, name)`: Bitbucket's default three
/// (Test, Staging, Production) and any created since.
fn environments(repo: &Repo) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ["Test", "Staging", "Production"]
        .into_iter()
        .map(|n| {
            (
                uuid_of(&format!("{}/env/{n}", repo.full_name)),
                n.to_owned(),
            )
        })
        .collect();
    out.extend(
        repo.ci_vars
            .iter()
            .filter(|((scope, _), _)| scope == ENV_SCOPE)
            .map(|((_, name), v)| (v.uuid.clone(), name.clone())),
    );
    out
}

fn env_json(uuid: &str, name: &str) -> Value {
    let kind = match name.to_ascii_lowercase().as_str() {
        "production" => ("Production", 2),
        "staging" => ("Staging", 1),
        _ => ("Test", 0),
    };
    json!({
        "type": "deployment_environment",
        "uuid": uuid,
        "name": name,
        "slug": name.to_ascii_lowercase(),
        "environment_type": {"type": "deployment_environment_type", "name": kind.0, "rank": kind.1},
        "lock": {"type": "deployment_environment_lock_open", "name": "OPEN"},
        "restrictions": {"type": "deployment_restrictions_configuration", "admin_only": false},
        "hidden": false,
    })
}

fn create_environment(w: &mut World, r: &Req, idx: usize) -> Resp {
    let Ok(Value::Object(o)) = r.json() else {
        return err(400, "Bad request");
    };
    let Some(name) = o
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return field_err("name", "This field is required.");
    };
    if environments(&w.repos[idx])
        .iter()
        .any(|(_, n)| n.eq_ignore_ascii_case(name))
    {
        return field_err("name", "Environment with this name already exists.");
    }
    let uuid = uuid_of(&format!("{}/env/{name}", w.repos[idx].full_name));
    w.repos[idx].ci_vars.insert(
        (ENV_SCOPE.to_owned(), name.to_owned()),
        super::CiVar {
            value: String::new(),
            protected: false,
            masked: false,
            uuid: uuid.clone(),
        },
    );
    Resp::json(201, env_json(&uuid, name))
}

/// A secured variable's value is never returned.
fn var_json(key: &str, v: &super::CiVar) -> Value {
    let mut j =
        json!({"type": "pipeline_variable", "uuid": v.uuid, "key": key, "secured": v.masked});
    if !v.masked {
        j["value"] = json!(v.value);
    }
    j
}

fn write_variable(w: &mut World, r: &Req, idx: usize, env: &str, var: Option<&str>) -> Resp {
    if !environments(&w.repos[idx]).iter().any(|(u, _)| u == env) {
        return err(404, "Environment not found");
    }
    let Ok(Value::Object(o)) = r.json() else {
        return err(400, "Bad request");
    };
    let key = match o.get("key").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            k.to_owned()
        }
        _ => return field_err("key", "Enter a valid value."),
    };
    let Some(value) = o.get("value").and_then(Value::as_str) else {
        return field_err("value", "This field is required.");
    };
    let secured = o.get("secured").and_then(Value::as_bool).unwrap_or(false);
    let repo = &mut w.repos[idx];
    let slot = (env.to_owned(), key.clone());
    let uuid = match (var, repo.ci_vars.get(&slot)) {
        (Some(u), Some(v)) if v.uuid == u => u.to_owned(),
        (Some(_), _) => return err(404, "Variable not found"),
        (None, Some(_)) => {
            return field_err(
                "key",
                "A variable with this key already exists in this environment.",
            )
        }
        (None, None) => uuid_of(&format!("{}/{env}/{key}", repo.full_name)),
    };
    let rec = super::CiVar {
        value: value.to_owned(),
        protected: false,
        masked: secured,
        uuid,
    };
    let body = var_json(&key, &rec);
    repo.ci_vars.insert(slot, rec);
    Resp::json(if var.is_some() { 200 } else { 201 }, body)
}
