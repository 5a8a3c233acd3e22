//! GitHub REST v3 (plus the GraphQL blob query) as `src/forge/github/{client,auth}.rs`
//! use it: App JWT → installation tokens scoped to their installation's repositories,
//! the Git Data API (refs, trees, commits), pulls, issue comments, reactions and
//! collaborator permissions.
//!
//! Modelled quirks: an empty repository answers 409 "Git Repository is empty." on the Git
//! Data API and still reports `default_branch: "main"` with `size: 0` and `pushed_at` =
//! `created_at`; `permission` in the collaborator answer is the legacy level (maintain →
//! `write`, triage → `read`) while `role_name` carries the role.

use std::collections::BTreeMap;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

use super::{
    dirs_of, int_param, iso, page_of, read_key, tree_sha, valid_repo_path, with_param, PrState,
    Repo, Req, Resp, World,
};

const DOCS: &str = "https://docs.github.com/rest";
const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

fn err(status: u16, message: &str) -> Resp {
    Resp::json(
        status,
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

fn not_found() -> Resp {
    err(404, "Not Found")
}

fn invalid(detail: &str) -> Resp {
    err(422, &format!("Invalid request.\n\n{detail}"))
}

fn validation(errors: Value) -> Resp {
    Resp::json(
        422,
        json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOCS, "status": "422"}),
    )
}

fn custom(resource: &str, message: &str) -> Resp {
    validation(json!([{"resource": resource, "code": "custom", "message": message}]))
}

fn system_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn bearer(r: &Req) -> Option<&str> {
    let h = r.header("authorization")?;
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .or_else(|| h.strip_prefix("token "))
        .map(str::trim)
}

pub(super) fn handle(w: &mut World, r: &Req) -> Resp {
    // GitHub accepts a ref's slashes encoded (`git/ref/heads%2Fmain`, the form its OpenAPI
    // description implies) or not: route both the same.
    let segs: Vec<&str> = r.segs.iter().flat_map(|s| s.split('/')).collect();
    // The signed log download URL `actions/jobs/{id}/logs` redirects to (no credentials).
    if let (true, ["_fake", "actions-logs", token]) = (r.method == "GET", segs.as_slice()) {
        return super::ci::github_download(w, token);
    }
    if let ["app", "installations", id, "access_tokens"] = segs.as_slice() {
        if r.method != "POST" {
            return not_found();
        }
        return access_token(w, r, id);
    }
    let Some(inst) = bearer(r).and_then(|t| w.tokens.get(t)).cloned() else {
        return err(401, "Bad credentials");
    };
    let mut resp = route(w, r, &segs, &inst);
    let reset = system_secs() + 3600;
    resp.headers.extend([
        ("x-ratelimit-limit".to_owned(), "5000".to_owned()),
        ("x-ratelimit-remaining".to_owned(), "4999".to_owned()),
        ("x-ratelimit-used".to_owned(), "1".to_owned()),
        ("x-ratelimit-reset".to_owned(), reset.to_string()),
        ("x-ratelimit-resource".to_owned(), "core".to_owned()),
    ]);
    resp
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: Value,
}

fn access_token(w: &mut World, r: &Req, id: &str) -> Resp {
    let Some(jwt) = bearer(r) else {
        return err(
            401,
            "You must authenticate with a JSON web token (JWT) to access this endpoint.",
        );
    };
    let key = match DecodingKey::from_rsa_pem(read_key("test-app.pub.pem").as_bytes()) {
        Ok(k) => k,
        Err(e) => return err(500, &format!("fake forge: bad public key: {e}")),
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false; // tests run manual clocks; exp - iat is checked below
    v.required_spec_claims.clear();
    let Ok(data) = decode::<Claims>(jwt, &key, &v) else {
        return err(401, "A JSON web token could not be decoded");
    };
    let iss = match &data.claims.iss {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if iss != w.app_id.to_string() {
        return err(
            401,
            "'Issuer' claim ('iss') must be an Integer or the App's client ID",
        );
    }
    if data.claims.exp <= data.claims.iat || data.claims.exp - data.claims.iat > 660 {
        return err(
            401,
            "'Expiration time' claim ('exp') is too far in the future",
        );
    }
    let Some(&workflows) = w.installations.get(id) else {
        return not_found();
    };
    let n = w.tokens.len();
    let token = format!(
        "ghs_{}",
        &super::hex40(format!("token{id}:{n}").as_bytes())[..36]
    );
    w.tokens.insert(token.clone(), id.to_owned());
    let mut permissions = json!({
        "contents": "write",
        "issues": "write",
        "metadata": "read",
        "pull_requests": "write",
    });
    if workflows {
        permissions["workflows"] = json!("write");
    }
    super::ci::github_token_permissions(w, id, &mut permissions);
    Resp::json(
        201,
        json!({
            "token": token,
            "expires_at": iso(system_secs() + 3600),
            "permissions": permissions,
            "repository_selection": "selected",
        }),
    )
}

fn route(w: &mut World, r: &Req, segs: &[&str], inst: &str) -> Resp {
    match (r.method.as_str(), segs) {
        ("POST", ["graphql"]) => graphql(w, r, inst),
        ("GET", ["installation", "repositories"]) => list_repos(w, r, inst),
        ("GET", ["repositories", id]) => {
            match w
                .repos
                .iter()
                .find(|x| x.id.to_string() == *id && x.tenant == inst)
            {
                Some(repo) => Resp::json(200, repo_json(w, repo)),
                None => not_found(),
            }
        }
        (_, ["repos", owner, name, rest @ ..]) => {
            let full = format!("{owner}/{name}");
            let Some(idx) = w
                .repos
                .iter()
                .position(|x| x.full_name.eq_ignore_ascii_case(&full) && x.tenant == inst)
            else {
                return not_found();
            };
            repo_route(w, r, idx, rest)
        }
        _ => not_found(),
    }
}

fn repo_route(w: &mut World, r: &Req, idx: usize, rest: &[&str]) -> Resp {
    let joined = |b: &[&str]| b.join("/");
    match (r.method.as_str(), rest) {
        ("GET", []) => Resp::json(200, repo_json(w, &w.repos[idx])),
        ("GET", ["git", "ref", "heads", b @ ..]) if !b.is_empty() => {
            let repo = &w.repos[idx];
            if repo.is_empty() {
                return err(409, "Git Repository is empty.");
            }
            match repo.branches.get(&joined(b)) {
                Some(sha) => Resp::json(200, ref_json(w, repo, &joined(b), sha)),
                None => not_found(),
            }
        }
        ("GET", ["git", "trees", sha]) => get_tree(w, r, idx, sha),
        // `GET /repos/{owner}/{repo}/commits/{ref}`: a SHA, branch or tag (also
        // `heads/…`, `tags/…`); GitHub answers 422 for a ref that names no commit.
        ("GET", ["commits", reference @ ..]) if !reference.is_empty() => {
            let repo = &w.repos[idx];
            let reference = joined(reference);
            let sha = if repo.commits.contains_key(&reference) {
                Some(reference.clone())
            } else if let Some(b) = reference.strip_prefix("heads/") {
                repo.branches.get(b).cloned()
            } else if let Some(t) = reference.strip_prefix("tags/") {
                repo.tags.get(t).cloned()
            } else {
                repo.branches
                    .get(&reference)
                    .or_else(|| repo.tags.get(&reference))
                    .cloned()
            };
            match sha {
                Some(sha) => Resp::json(200, rest_commit_json(w, repo, &sha)),
                None => err(422, &format!("No commit found for SHA: {reference}")),
            }
        }
        ("GET", ["git", "commits", sha]) => {
            let repo = &w.repos[idx];
            if repo.is_empty() {
                return err(409, "Git Repository is empty.");
            }
            match repo.commits.get(*sha) {
                Some(_) => Resp::json(200, commit_json(w, repo, sha)),
                None => not_found(),
            }
        }
        ("POST", ["git", "trees"]) => create_tree(w, r, idx),
        ("POST", ["git", "commits"]) => create_commit(w, r, idx),
        ("POST", ["git", "refs"]) => create_ref(w, r, idx),
        ("PATCH", ["git", "refs", "heads", b @ ..]) if !b.is_empty() => {
            update_ref(w, r, idx, &joined(b))
        }
        ("DELETE", ["git", "refs", "heads", b @ ..]) if !b.is_empty() => {
            let name = joined(b);
            if w.repos[idx].branches.remove(&name).is_none() {
                return err(422, "Reference does not exist");
            }
            Resp::empty(204)
        }
        ("GET", ["pulls"]) => list_pulls(w, r, idx),
        ("POST", ["pulls"]) => create_pull(w, r, idx),
        ("GET", ["pulls", n]) => match n.parse().ok().and_then(|n| w.repos[idx].pr(n)) {
            Some(pr) => Resp::json(200, pull_json(w, &w.repos[idx], pr)),
            None => not_found(),
        },
        ("PATCH", ["pulls", n]) => match n.parse::<u64>() {
            Ok(n) => update_pull(w, r, idx, n),
            Err(_) => not_found(),
        },
        ("POST", ["issues", "comments", id, "reactions"]) => react(w, r, idx, id),
        ("POST", ["issues", n, "comments"]) => match n.parse::<u64>() {
            Ok(n) => comment(w, r, idx, n),
            Err(_) => not_found(),
        },
        ("GET", ["collaborators", user, "permission"]) => permission(w, idx, user),
        ("GET", ["actions", "secrets", "public-key"]) => {
            let (id, _, key) = &w.repos[idx].secrets_key;
            Resp::json(200, json!({"key_id": id, "key": key}))
        }
        ("PUT", ["actions", "secrets", name]) => put_secret(w, r, idx, name),
        (_, ["actions", ..]) => super::ci::github(w, r, idx, rest),
        _ => not_found(),
    }
}

// --- JSON shapes -------------------------------------------------------------------------

fn api(w: &World, repo: &Repo) -> String {
    format!("{}/repos/{}", w.base_url, repo.full_name)
}

fn repo_json(w: &World, repo: &Repo) -> Value {
    let bytes: usize = repo
        .default_branch
        .as_deref()
        .and_then(|b| repo.tree_of(b))
        .map(|t| t.values().map(String::len).sum())
        .unwrap_or(0);
    let size = if repo.is_empty() {
        0
    } else {
        bytes.div_ceil(1024).max(1)
    };
    json!({
        "id": repo.id,
        "node_id": format!("R_fake{}", repo.id),
        "name": repo.name(),
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": {"login": repo.owner(), "type": "Organization"},
        "html_url": format!("{}/{}", w.base_url, repo.full_name),
        "url": api(w, repo),
        "fork": repo.fork,
        "archived": repo.archived,
        "disabled": false,
        "visibility": if repo.private { "private" } else { "public" },
        // GitHub names a default branch even before the first push.
        "default_branch": repo.default_branch.clone().unwrap_or_else(|| "main".into()),
        "size": size,
        "created_at": iso(repo.created),
        "updated_at": iso(repo.pushed.unwrap_or(repo.created)),
        // Set at creation, so an empty repository has one too.
        "pushed_at": iso(repo.pushed.unwrap_or(repo.created)),
    })
}

fn ref_json(w: &World, repo: &Repo, branch: &str, sha: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": format!("REF_{sha}"),
        "url": format!("{}/git/refs/heads/{branch}", api(w, repo)),
        "object": {"type": "commit", "sha": sha, "url": format!("{}/git/commits/{sha}", api(w, repo))},
    })
}

/// The REST API's commit (`GET /repos/{owner}/{repo}/commits/{ref}`): the git commit
/// under `commit`, with the SHA, links and parents at the top.
fn rest_commit_json(w: &World, repo: &Repo, sha: &str) -> Value {
    let git = commit_json(w, repo, sha);
    json!({
        "sha": sha,
        "node_id": git["node_id"],
        "url": format!("{}/commits/{sha}", api(w, repo)),
        "html_url": git["html_url"],
        "comments_url": format!("{}/commits/{sha}/comments", api(w, repo)),
        "commit": {
            "url": git["url"],
            "author": git["author"],
            "committer": git["committer"],
            "message": git["message"],
            "tree": git["tree"],
            "comment_count": 0,
            "verification": git["verification"],
        },
        "author": null,
        "committer": null,
        "parents": git["parents"],
        "files": [],
    })
}

fn commit_json(w: &World, repo: &Repo, sha: &str) -> Value {
    let c = &repo.commits[sha];
    let person = json!({"name": c.author, "email": format!("{}@users.noreply.example", c.author), "date": iso(c.time)});
    json!({
        "sha": c.sha,
        "node_id": format!("C_{}", c.sha),
        "url": format!("{}/git/commits/{}", api(w, repo), c.sha),
        "html_url": format!("{}/{}/commit/{}", w.base_url, repo.full_name, c.sha),
        "author": person,
        "committer": person,
        "message": c.message,
        "tree": {"sha": c.tree_sha, "url": format!("{}/git/trees/{}", api(w, repo), c.tree_sha)},
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{}/git/commits/{p}", api(w, repo)),
            "html_url": format!("{}/{}/commit/{p}", w.base_url, repo.full_name),
        })).collect::<Vec<_>>(),
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null},
    })
}

fn tree_entries(
    w: &World,
    repo: &Repo,
    tree: &BTreeMap<String, String>,
    recursive: bool,
) -> Vec<Value> {
    let mut out = Vec::new();
    let dirs = dirs_of(tree.keys());
    let mut all: Vec<(&String, bool)> = tree
        .keys()
        .map(|p| (p, false))
        .chain(dirs.iter().map(|d| (d, true)))
        .collect();
    all.sort();
    for (path, is_dir) in all {
        if !recursive && path.contains('/') {
            continue;
        }
        if is_dir {
            let prefix = format!("{path}/");
            let sub: BTreeMap<String, String> = tree
                .iter()
                .filter_map(|(p, c)| p.strip_prefix(&prefix).map(|s| (s.to_owned(), c.clone())))
                .collect();
            let sha = tree_sha(&sub);
            out.push(
                json!({"path": path, "mode": "040000", "type": "tree", "sha": sha,
                "url": format!("{}/git/trees/{sha}", api(w, repo))}),
            );
        } else {
            let content = &tree[path];
            let sha = super::blob_sha(content);
            out.push(
                json!({"path": path, "mode": "100644", "type": "blob", "sha": sha,
                "size": content.len(), "url": format!("{}/git/blobs/{sha}", api(w, repo))}),
            );
        }
    }
    out
}

fn pull_json(w: &World, repo: &Repo, pr: &super::Pr) -> Value {
    let end = |branch: &str, sha: &str| {
        json!({
            "label": format!("{}:{branch}", repo.owner()),
            "ref": branch,
            "sha": sha,
            "user": {"login": repo.owner(), "type": "Organization"},
            "repo": {"id": repo.id, "name": repo.name(), "full_name": repo.full_name},
        })
    };
    let base_sha = repo.branches.get(&pr.base).cloned().unwrap_or_default();
    json!({
        "url": format!("{}/pulls/{}", api(w, repo), pr.number),
        "id": pr.global_id,
        "node_id": format!("PR_{}", pr.global_id),
        "html_url": format!("{}/{}/pull/{}", w.base_url, repo.full_name, pr.number),
        "number": pr.number,
        "state": if pr.state == PrState::Open { "open" } else { "closed" },
        "locked": false,
        "title": pr.title,
        "user": {"login": pr.author, "type": if pr.author.ends_with("[bot]") { "Bot" } else { "User" }},
        "body": if pr.body.is_empty() { Value::Null } else { json!(pr.body) },
        "created_at": iso(pr.created),
        "updated_at": iso(pr.updated),
        "closed_at": pr.closed.map(iso),
        "merged_at": if pr.state == PrState::Merged { pr.closed.map(iso) } else { None },
        "merged": pr.state == PrState::Merged,
        "merge_commit_sha": null,
        "draft": false,
        "head": end(&pr.head, &pr.head_sha),
        "base": end(&pr.base, &base_sha),
    })
}

// --- body helpers ------------------------------------------------------------------------

fn body_obj(r: &Req) -> Result<Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid("Body should be a JSON object")),
        Err(_) => Err(err(400, "Problems parsing JSON")),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, Resp> {
    match o.get(k) {
        Some(Value::String(s)) => Ok(s),
        None => Err(invalid(&format!("\"{k}\" wasn't supplied."))),
        Some(v) => Err(invalid(&format!(
            "For 'properties/{k}', {v} is not a string."
        ))),
    }
}

fn opt_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, Resp> {
    match o.get(k) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(v) => Err(invalid(&format!(
            "For 'properties/{k}', {v} is not a string."
        ))),
    }
}

fn opt_bool(o: &Map<String, Value>, k: &str) -> Result<Option<bool>, Resp> {
    match o.get(k) {
        Some(Value::Bool(b)) => Ok(Some(*b)),
        None | Some(Value::Null) => Ok(None),
        Some(v) => Err(invalid(&format!(
            "For 'properties/{k}', {v} is not a boolean."
        ))),
    }
}

// --- handlers ----------------------------------------------------------------------------

fn link_header(w: &World, r: &Req, page: usize, last: usize) -> Option<String> {
    let mut links = Vec::new();
    let url = |p: usize| with_param(&w.base_url, &r.path, &r.query, "page", &p.to_string());
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
        links.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

fn paged(w: &World, r: &Req, items: Vec<Value>) -> (Vec<Value>, Option<String>) {
    let per_page = int_param(r.q("per_page"), 30, 100);
    let page = int_param(r.q("page"), 1, usize::MAX);
    let last = items.len().div_ceil(per_page).max(1);
    (
        page_of(&items, page, per_page),
        link_header(w, r, page, last),
    )
}

fn list_repos(w: &World, r: &Req, inst: &str) -> Resp {
    let all: Vec<Value> = w
        .repos
        .iter()
        .filter(|x| x.tenant == inst)
        .map(|x| repo_json(w, x))
        .collect();
    let total = all.len();
    let (page, link) = paged(w, r, all);
    let mut resp = Resp::json(
        200,
        json!({"total_count": total, "repository_selection": "selected", "repositories": page}),
    );
    if let Some(l) = link {
        resp = resp.header("link", l);
    }
    resp
}

fn get_tree(w: &World, r: &Req, idx: usize, sha: &str) -> Resp {
    let repo = &w.repos[idx];
    if repo.is_empty() {
        return err(409, "Git Repository is empty.");
    }
    let (tsha, tree) = match repo.trees.get(sha) {
        Some(t) => (sha.to_owned(), t),
        None => match repo.resolve(sha).and_then(|c| repo.commits.get(&c)) {
            Some(c) => (c.tree_sha.clone(), &c.tree),
            None => return not_found(),
        },
    };
    let recursive = r
        .q("recursive")
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    Resp::json(
        200,
        json!({
            "sha": tsha,
            "url": format!("{}/git/trees/{tsha}", api(w, repo)),
            "tree": tree_entries(w, repo, tree, recursive),
            "truncated": false,
        }),
    )
}

fn create_tree(w: &mut World, r: &Req, idx: usize) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let entries = match o.get("tree") {
        Some(Value::Array(a)) => a,
        None => return invalid("\"tree\" wasn't supplied."),
        Some(v) => return invalid(&format!("For 'properties/tree', {v} is not an array.")),
    };
    let repo = &w.repos[idx];
    if repo.is_empty() {
        return err(409, "Git Repository is empty.");
    }
    let mut tree = match o.get("base_tree") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::String(s)) => match repo.trees.get(s) {
            Some(t) => t.clone(),
            None => return err(422, "base_tree is not a valid tree oid"),
        },
        Some(v) => return invalid(&format!("For 'properties/base_tree', {v} is not a string.")),
    };
    for e in entries {
        let Some(e) = e.as_object() else {
            return invalid("For 'items', tree entries must be objects.");
        };
        let path = match req_str(e, "path") {
            Ok(p) => p,
            Err(x) => return x,
        };
        if !valid_repo_path(path) || path.ends_with('/') {
            return err(422, "tree.path contains a malformed path component");
        }
        let mode = match opt_str(e, "mode") {
            Ok(m) => m,
            Err(x) => return x,
        };
        if let Some(m) = mode {
            if !["100644", "100755", "040000", "160000", "120000"].contains(&m) {
                return invalid(&format!(
                    "For 'properties/mode', \"{m}\" is not one of [\"100644\", \"100755\", \"040000\", \"160000\", \"120000\"]."
                ));
            }
        }
        let kind = match opt_str(e, "type") {
            Ok(t) => t.unwrap_or("blob"),
            Err(x) => return x,
        };
        if !["blob", "tree", "commit"].contains(&kind) {
            return invalid(&format!(
                "For 'properties/type', \"{kind}\" is not one of [\"blob\", \"tree\", \"commit\"]."
            ));
        }
        let content = e.get("content");
        let sha = e.get("sha");
        match (content, sha) {
            (Some(_), Some(_)) => {
                return err(
                    422,
                    "Must supply either tree.sha or tree.content. Request will fail if both are supplied.",
                )
            }
            (Some(Value::String(c)), None) => {
                if kind != "blob" {
                    return err(422, "tree.content can only be used with a blob");
                }
                tree.insert(path.to_owned(), c.clone());
            }
            (Some(v), None) => {
                return invalid(&format!("For 'properties/content', {v} is not a string."))
            }
            (None, Some(Value::Null)) => {
                let prefix = format!("{path}/");
                let before = tree.len();
                tree.retain(|p, _| p != path && !p.starts_with(&prefix));
                if tree.len() == before {
                    return err(422, "GitRPC::BadObjectState");
                }
            }
            (None, Some(Value::String(s))) => match repo.blobs.get(s) {
                Some(c) if kind == "blob" => {
                    tree.insert(path.to_owned(), c.clone());
                }
                _ => return err(422, &format!("tree.sha {s} is not a valid {kind}")),
            },
            (None, Some(v)) => {
                return invalid(&format!("For 'properties/sha', {v} is not a string or null."))
            }
            (None, None) => return err(422, "Must supply either tree.sha or tree.content."),
        }
    }
    let repo = &mut w.repos[idx];
    let sha = repo.store_tree(tree.clone());
    let repo = &w.repos[idx];
    Resp::json(
        201,
        json!({
            "sha": sha,
            "url": format!("{}/git/trees/{sha}", api(w, repo)),
            "tree": tree_entries(w, repo, &tree, false),
            "truncated": false,
        }),
    )
}

fn create_commit(w: &mut World, r: &Req, idx: usize) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (message, tree_sha) = match (req_str(&o, "message"), req_str(&o, "tree")) {
        (Ok(m), Ok(t)) => (m.to_owned(), t.to_owned()),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let parents: Vec<String> = match o.get("parents") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut v = Vec::new();
            for p in a {
                match p.as_str() {
                    Some(s) => v.push(s.to_owned()),
                    None => {
                        return invalid(&format!("For 'items', {p} is not a string."));
                    }
                }
            }
            v
        }
        Some(v) => return invalid(&format!("For 'properties/parents', {v} is not an array.")),
    };
    if w.repos[idx].is_empty() {
        return err(409, "Git Repository is empty.");
    }
    let Some(tree) = w.repos[idx].trees.get(&tree_sha).cloned() else {
        return err(422, "Tree SHA does not exist");
    };
    if parents
        .iter()
        .any(|p| !w.repos[idx].commits.contains_key(p))
    {
        return err(422, "Parent SHA does not exist or is not a commit object");
    }
    let now = w.tick();
    let bot = w.bot_login.clone();
    let sha = w.repos[idx].make_commit(tree, parents, &bot, &message, now);
    Resp::json(201, commit_json(w, &w.repos[idx], &sha))
}

fn workflow_refusal(w: &World, idx: usize, sha: &str) -> Option<Resp> {
    let repo = &w.repos[idx];
    if w.installations.get(&repo.tenant).copied().unwrap_or(false) {
        return None;
    }
    let path = repo
        .new_changes(sha)
        .into_iter()
        .find(|p| p.starts_with(".github/workflows/"))?;
    Some(err(
        422,
        &format!(
            "refusing to allow a GitHub App to create or update workflow `{path}` without `workflows` permission"
        ),
    ))
}

fn create_ref(w: &mut World, r: &Req, idx: usize) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (name, sha) = match (req_str(&o, "ref"), req_str(&o, "sha")) {
        (Ok(n), Ok(s)) => (n.to_owned(), s.to_owned()),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if !name.starts_with("refs/") || name.matches('/').count() < 2 {
        return err(
            422,
            "Reference name must start with 'refs/' and have at least two slashes.",
        );
    }
    let Some(branch) = name.strip_prefix("refs/heads/") else {
        return err(422, "Reference update failed");
    };
    if branch.is_empty()
        || branch.ends_with('/')
        || branch.contains("..")
        || branch.contains(' ')
        || branch.ends_with(".lock")
    {
        return err(422, "Reference name is invalid");
    }
    if !w.repos[idx].commits.contains_key(&sha) {
        return err(422, "Object does not exist");
    }
    if w.repos[idx].branches.contains_key(branch) {
        return err(422, "Reference already exists");
    }
    if let Some(refusal) = workflow_refusal(w, idx, &sha) {
        return refusal;
    }
    let now = w.tick();
    let repo = &mut w.repos[idx];
    repo.set_branch(branch, &sha);
    repo.pushed = Some(now);
    Resp::json(201, ref_json(w, &w.repos[idx], branch, &sha))
}

fn update_ref(w: &mut World, r: &Req, idx: usize, branch: &str) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let sha = match req_str(&o, "sha") {
        Ok(s) => s.to_owned(),
        Err(e) => return e,
    };
    let force = match opt_bool(&o, "force") {
        Ok(f) => f.unwrap_or(false),
        Err(e) => return e,
    };
    let Some(current) = w.repos[idx].branches.get(branch).cloned() else {
        return err(422, "Reference does not exist");
    };
    if !w.repos[idx].commits.contains_key(&sha) {
        return err(422, "Object does not exist");
    }
    if !force && !w.repos[idx].is_ancestor(&current, &sha) {
        return err(422, "Update is not a fast forward");
    }
    if let Some(refusal) = workflow_refusal(w, idx, &sha) {
        return refusal;
    }
    let now = w.tick();
    let repo = &mut w.repos[idx];
    repo.set_branch(branch, &sha);
    repo.pushed = Some(now);
    Resp::json(200, ref_json(w, &w.repos[idx], branch, &sha))
}

fn list_pulls(w: &World, r: &Req, idx: usize) -> Resp {
    let repo = &w.repos[idx];
    let state = r.q("state").unwrap_or("open");
    if !["open", "closed", "all"].contains(&state) {
        return invalid(&format!(
            "For 'state', \"{state}\" is not one of [\"open\", \"closed\", \"all\"]."
        ));
    }
    let sort = r.q("sort").unwrap_or("created");
    if !["created", "updated", "popularity", "long-running"].contains(&sort) {
        return invalid(&format!("For 'sort', \"{sort}\" is not a valid value."));
    }
    let direction = r
        .q("direction")
        .unwrap_or(if sort == "created" { "desc" } else { "asc" });
    if !["asc", "desc"].contains(&direction) {
        return invalid(&format!(
            "For 'direction', \"{direction}\" is not a valid value."
        ));
    }
    let head = r.q("head").map(|h| match h.split_once(':') {
        Some((owner, b)) => (owner.to_owned(), b.to_owned()),
        None => (repo.owner().to_owned(), h.to_owned()),
    });
    let mut prs: Vec<&super::Pr> = repo
        .prs
        .iter()
        .filter(|p| match state {
            "open" => p.state == PrState::Open,
            "closed" => p.state != PrState::Open,
            _ => true,
        })
        .filter(|p| match &head {
            Some((owner, b)) => owner.eq_ignore_ascii_case(repo.owner()) && p.head == *b,
            None => true,
        })
        .filter(|p| r.q("base").is_none_or(|b| p.base == b))
        .collect();
    match sort {
        "updated" => prs.sort_by_key(|p| (p.updated, p.number)),
        _ => prs.sort_by_key(|p| (p.created, p.number)),
    }
    if direction == "desc" {
        prs.reverse();
    }
    let items: Vec<Value> = prs.iter().map(|p| pull_json(w, repo, p)).collect();
    let (page, link) = paged(w, r, items);
    let mut resp = Resp::json(200, Value::Array(page));
    if let Some(l) = link {
        resp = resp.header("link", l);
    }
    resp
}

fn create_pull(w: &mut World, r: &Req, idx: usize) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut missing = Vec::new();
    for k in ["title", "head", "base"] {
        match o.get(k) {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => missing.push(k),
            Some(v) => return invalid(&format!("For 'properties/{k}', {v} is not a string.")),
        }
    }
    if !missing.is_empty() {
        return validation(Value::Array(
            missing
                .iter()
                .map(|f| json!({"resource": "PullRequest", "code": "missing_field", "field": f}))
                .collect(),
        ));
    }
    let title = o["title"].as_str().unwrap_or_default().to_owned();
    let head_raw = o["head"].as_str().unwrap_or_default().to_owned();
    let base = o["base"].as_str().unwrap_or_default().to_owned();
    let body = match opt_str(&o, "body") {
        Ok(b) => b.unwrap_or_default().to_owned(),
        Err(e) => return e,
    };
    if let Err(e) = opt_bool(&o, "draft") {
        return e;
    }
    let repo = &w.repos[idx];
    let head = match head_raw.split_once(':') {
        Some((owner, b)) if owner.eq_ignore_ascii_case(repo.owner()) => b.to_owned(),
        Some(_) => {
            return validation(
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            )
        }
        None => head_raw.clone(),
    };
    let Some(base_tip) = repo.branches.get(&base).cloned() else {
        return validation(
            json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
        );
    };
    let Some(head_tip) = repo.branches.get(&head).cloned() else {
        return validation(
            json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
        );
    };
    if repo
        .prs
        .iter()
        .any(|p| p.state == PrState::Open && p.head == head)
    {
        return custom(
            "PullRequest",
            &format!("A pull request already exists for {}:{head}.", repo.owner()),
        );
    }
    if repo.is_ancestor(&head_tip, &base_tip) {
        return custom(
            "PullRequest",
            &format!("No commits between {base} and {head}"),
        );
    }
    let now = w.tick();
    let gid = w.next_id();
    let kind = w.kind;
    let author = w.bot_login.clone();
    let repo = &mut w.repos[idx];
    let number = repo.take_pr_number(kind);
    repo.prs.push(super::Pr {
        number,
        global_id: gid,
        head,
        base,
        title,
        body,
        state: PrState::Open,
        head_sha: head_tip,
        author,
        created: now,
        updated: now,
        closed: None,
        remove_source_branch: false,
    });
    let repo = &w.repos[idx];
    Resp::json(
        201,
        pull_json(w, repo, repo.pr(number).expect("just pushed")),
    )
}

fn update_pull(w: &mut World, r: &Req, idx: usize, number: u64) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (title, body, state, base) = match (
        opt_str(&o, "title"),
        o.get("body"),
        opt_str(&o, "state"),
        opt_str(&o, "base"),
    ) {
        (Ok(t), b, Ok(s), Ok(ba)) => (
            t.map(str::to_owned),
            b.cloned(),
            s.map(str::to_owned),
            ba.map(str::to_owned),
        ),
        (Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    let body = match body {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s),
        Some(v) => {
            return invalid(&format!(
                "For 'properties/body', {v} is not a string or null."
            ))
        }
    };
    let now = w.tick();
    let repo = &mut w.repos[idx];
    let Some(pr) = repo.pr(number).cloned() else {
        return not_found();
    };
    if let Some(s) = &state {
        if s != "open" && s != "closed" {
            return validation(
                json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
            );
        }
        if s == "open" && pr.state != PrState::Open {
            if pr.state == PrState::Merged {
                return custom(
                    "PullRequest",
                    "state cannot be changed. The pull request has been merged.",
                );
            }
            let Some(tip) = repo.branches.get(&pr.head).cloned() else {
                return custom(
                    "PullRequest",
                    "state cannot be changed. The head branch was deleted.",
                );
            };
            if repo
                .prs
                .iter()
                .any(|p| p.state == PrState::Open && p.head == pr.head)
            {
                return custom(
                    "PullRequest",
                    &format!(
                        "A pull request already exists for {}:{}.",
                        repo.owner(),
                        pr.head
                    ),
                );
            }
            let p = repo.pr_mut(number).expect("exists");
            p.head_sha = tip;
        }
    }
    if let Some(b) = &base {
        if !repo.branches.contains_key(b) {
            return validation(
                json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
            );
        }
    }
    let p = repo.pr_mut(number).expect("exists");
    if let Some(t) = title {
        p.title = t;
    }
    if let Some(b) = body {
        p.body = b;
    }
    if let Some(b) = base {
        p.base = b;
    }
    match state.as_deref() {
        Some("closed") if p.state == PrState::Open => {
            p.state = PrState::Closed;
            p.closed = Some(now);
        }
        Some("open") if p.state == PrState::Closed => {
            p.state = PrState::Open;
            p.closed = None;
        }
        _ => {}
    }
    p.updated = now;
    let repo = &w.repos[idx];
    Resp::json(200, pull_json(w, repo, repo.pr(number).expect("exists")))
}

fn comment(w: &mut World, r: &Req, idx: usize, number: u64) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let body = match req_str(&o, "body") {
        Ok(b) => b.to_owned(),
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    let on_pr = repo.pr(number).is_some();
    if !on_pr && !repo.issues.iter().any(|i| i.number == number) {
        return not_found();
    }
    let now = w.tick();
    let id = w.next_id();
    let author = w.bot_login.clone();
    let repo = &mut w.repos[idx];
    repo.comments.push(super::CommentRec {
        id,
        number,
        on_pr,
        body: body.clone(),
        author: author.clone(),
        created: now,
    });
    let repo = &w.repos[idx];
    let kind = if on_pr { "pull" } else { "issues" };
    Resp::json(
        201,
        json!({
            "id": id,
            "node_id": format!("IC_{id}"),
            "url": format!("{}/issues/comments/{id}", api(w, repo)),
            "html_url": format!("{}/{}/{kind}/{number}#issuecomment-{id}", w.base_url, repo.full_name),
            "issue_url": format!("{}/issues/{number}", api(w, repo)),
            "body": body,
            "user": {"login": author, "type": "Bot"},
            "created_at": iso(now),
            "updated_at": iso(now),
            "author_association": "NONE",
        }),
    )
}

fn react(w: &mut World, r: &Req, idx: usize, comment_id: &str) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let content = match req_str(&o, "content") {
        Ok(c) => c.to_owned(),
        Err(e) => return e,
    };
    if !REACTIONS.contains(&content.as_str()) {
        return validation(
            json!([{"resource": "Reaction", "code": "invalid", "field": "content"}]),
        );
    }
    let Ok(id) = comment_id.parse::<u64>() else {
        return not_found();
    };
    if !w.repos[idx].comments.iter().any(|c| c.id == id) {
        return not_found();
    }
    let user = w.bot_login.clone();
    let now = w.tick();
    let rid = w.next_id();
    let list = w.repos[idx].reactions.entry(id).or_default();
    let status = if list.iter().any(|(u, c)| *u == user && *c == content) {
        200
    } else {
        list.push((user.clone(), content.clone()));
        201
    };
    Resp::json(
        status,
        json!({"id": rid, "node_id": format!("REA_{rid}"), "user": {"login": user, "type": "Bot"},
               "content": content, "created_at": iso(now)}),
    )
}

fn permission(w: &World, idx: usize, user: &str) -> Resp {
    let repo = &w.repos[idx];
    let role = match repo
        .permissions
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(user))
    {
        Some((_, level)) => level.clone(),
        None if w.users.iter().any(|u| u.eq_ignore_ascii_case(user)) => {
            (if repo.private { "none" } else { "read" }).to_owned()
        }
        None => return not_found(),
    };
    // The legacy `permission` field knows admin/write/read/none only.
    let legacy = match role.as_str() {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    };
    let rank = ["none", "read", "triage", "write", "maintain", "admin"]
        .iter()
        .position(|x| *x == role)
        .unwrap_or(0);
    Resp::json(
        200,
        json!({
            "permission": legacy,
            "role_name": role,
            "user": {
                "login": user,
                "type": "User",
                "permissions": {"admin": rank >= 5, "maintain": rank >= 4, "push": rank >= 3, "triage": rank >= 2, "pull": rank >= 1},
            },
        }),
    )
}

// --- GraphQL -----------------------------------------------------------------------------

fn gql_errors(messages: &[String]) -> Resp {
    Resp::json(
        200,
        json!({"errors": messages.iter().map(|m| json!({"message": m})).collect::<Vec<_>>()}),
    )
}

/// The argument after `name:` inside `args` (`$var` or a `"literal"`), resolved.
fn gql_arg(args: &str, name: &str, vars: &Map<String, Value>) -> Result<String, String> {
    for part in args.split(',') {
        let Some((k, v)) = part.split_once(':') else {
            continue;
        };
        if k.trim() != name {
            continue;
        }
        let v = v.trim();
        if let Some(var) = v.strip_prefix('$') {
            return match vars.get(var) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(format!(
                    "Variable ${var} of type String! was provided invalid value"
                )),
            };
        }
        return Ok(v.trim_matches('"').to_owned());
    }
    Err(format!(
        "Field 'repository' is missing required arguments: {name}"
    ))
}

fn graphql(w: &World, r: &Req, inst: &str) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let Some(query) = o.get("query").and_then(Value::as_str) else {
        return gql_errors(&["A query attribute must be specified and must be a string.".into()]);
    };
    let vars = match o.get("variables") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return gql_errors(&["Variables must be an object".into()]),
    };
    // Declared variables: `query($a: String!, $b: String!)`.
    let declared: Vec<String> = query
        .split_once('(')
        .filter(|(head, _)| head.trim_start().starts_with("query"))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(decl, _)| {
            decl.split(',')
                .filter_map(|d| d.trim().strip_prefix('$'))
                .filter_map(|d| d.split(':').next())
                .map(|d| d.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let used: Vec<String> = query
        .split('$')
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .collect();
    let mut errors = Vec::new();
    for u in &used {
        if !declared.contains(u) {
            errors.push(format!(
                "Variable ${u} is used by anonymous query but not declared"
            ));
        } else if !matches!(vars.get(u), Some(Value::String(_))) {
            errors.push(format!(
                "Variable ${u} of type String! was provided invalid value"
            ));
        }
    }
    if !errors.is_empty() {
        return gql_errors(&errors);
    }
    let Some((_, after)) = query.split_once("repository(") else {
        return gql_errors(&["Only `repository { object(expression:) }` queries are faked".into()]);
    };
    let Some((args, fields)) = after.split_once(')') else {
        return gql_errors(&["Parse error".into()]);
    };
    let (owner, name) = match (gql_arg(args, "owner", &vars), gql_arg(args, "name", &vars)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return gql_errors(&[e]),
    };
    let full = format!("{owner}/{name}");
    let Some(repo) = w
        .repos
        .iter()
        .find(|x| x.full_name.eq_ignore_ascii_case(&full) && x.tenant == inst)
    else {
        return Resp::json(
            200,
            json!({
                "data": {"repository": null},
                "errors": [{"type": "NOT_FOUND", "path": ["repository"],
                            "message": format!("Could not resolve to a Repository with the name '{full}'.")}],
            }),
        );
    };
    let mut out = Map::new();
    let pieces: Vec<&str> = fields.split("object(expression:").collect();
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        // Alias: the identifier before the trailing `:` of the previous piece.
        let before = pieces[i - 1].trim_end();
        let before = before.strip_suffix(':').unwrap_or(before).trim_end();
        let alias: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let arg = piece.split(')').next().unwrap_or_default().trim();
        let expr = match arg.strip_prefix('$') {
            Some(var) => vars
                .get(var)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            None => arg.trim_matches('"').to_owned(),
        };
        let key = if alias.is_empty() {
            "object".to_owned()
        } else {
            alias
        };
        let value = match expr.split_once(':') {
            Some((rev, path)) => match repo.tree_of(rev) {
                Some(tree) => match tree.get(path) {
                    Some(text) => json!({"text": text, "isBinary": false}),
                    None if tree.keys().any(|p| p.starts_with(&format!("{path}/"))) => json!({}),
                    None => Value::Null,
                },
                None => Value::Null,
            },
            None => match repo.resolve(&expr) {
                Some(_) => json!({}),
                None => Value::Null,
            },
        };
        out.insert(key, value);
    }
    Resp::json(200, json!({"data": {"repository": Value::Object(out)}}))
}

/// `PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}`: the value must be a sealed
/// box for the repository's current key (GitHub can only store what its runners can
/// open); 201 when created, 204 when updated.
fn put_secret(w: &mut World, r: &Req, idx: usize, name: &str) -> Resp {
    let o = match body_obj(r) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    // Names: letters, digits, underscores; not starting with a digit or GITHUB_.
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.to_ascii_uppercase().starts_with("GITHUB_");
    if !valid_name {
        return invalid("Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_).");
    }
    let (Ok(value), Ok(key_id)) = (req_str(&o, "encrypted_value"), req_str(&o, "key_id")) else {
        return invalid("encrypted_value and key_id are required");
    };
    let (id, sk, _) = w.repos[idx].secrets_key.clone();
    if key_id != id {
        return custom(
            "Secret",
            "key_id does not match the repository's public key",
        );
    }
    let Ok(plain) = pipewright::crypto::open_sealed_box(&sk, value) else {
        return invalid("encrypted_value is not a sealed box for this repository's key");
    };
    let value = String::from_utf8_lossy(&plain).into_owned();
    let key = ("repository".to_owned(), name.to_ascii_uppercase());
    let existed = w.repos[idx]
        .ci_vars
        .insert(
            key,
            super::CiVar {
                value,
                protected: false,
                masked: true,
                uuid: String::new(),
            },
        )
        .is_some();
    if existed {
        Resp::empty(204)
    } else {
        Resp::json(201, json!({}))
    }
}
