//! GitLab REST v4 as `src/forge/gitlab/client.rs` uses it through the `gitlab` crate:
//! parameters come from the query string and, on writes, form-encoded or JSON bodies (a
//! GET with a body is refused before it gets here: see `serve` in `mod.rs`),
//! `actions[][…]` are decoded the way Rack does, listings paginate with `page`/`per_page`
//! (+ `X-*` and `Link` headers) or `pagination=keyset` (+ an absolute
//! `Link: <…>; rel="next"`).

use base64::Engine as _;
use serde_json::{json, Value};

use super::{
    dirs_of, int_param, iso_ms, page_of, valid_repo_path, with_param, CommentRec, Issue, Pr,
    PrState, Repo, Req, Resp, World,
};

fn msg(status: u16, m: &str) -> Resp {
    Resp::json(status, json!({ "message": m }))
}

/// Grape's parameter errors.
fn param_error(m: &str) -> Resp {
    Resp::json(400, json!({ "error": m }))
}

/// Request parameters: query string, then form body (later values win, as in Rack).
struct Params(Vec<(String, String)>);

impl Params {
    fn of(r: &Req) -> Params {
        let mut v = r.query.clone();
        v.extend(r.form());
        if r.content_type() == "application/json" {
            if let Ok(Value::Object(o)) = r.json() {
                for (k, val) in o {
                    let s = match val {
                        Value::String(s) => s,
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    v.push((k, s));
                }
            }
        }
        Params(v)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> Result<Option<bool>, Resp> {
        match self.get(k) {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(_) => Err(param_error(&format!("{k} is invalid"))),
        }
    }

    /// `actions[][key]=…` pairs → one map per action (Rack: a key already present in the
    /// last element starts a new element).
    fn actions(&self) -> Vec<Vec<(String, String)>> {
        let mut out: Vec<Vec<(String, String)>> = Vec::new();
        for (k, v) in &self.0 {
            let Some(key) = k
                .strip_prefix("actions[][")
                .and_then(|s| s.strip_suffix(']'))
            else {
                continue;
            };
            match out.last_mut() {
                Some(last) if !last.iter().any(|(n, _)| n == key) => {
                    last.push((key.to_owned(), v.clone()))
                }
                _ => out.push(vec![(key.to_owned(), v.clone())]),
            }
        }
        out
    }
}

pub(super) fn handle(w: &mut World, r: &Req) -> Resp {
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let ["api", "v4", rest @ ..] = segs.as_slice() else {
        return msg(404, "404 Not Found");
    };
    if r.header("private-token") != Some(w.token.as_str()) {
        return msg(401, "401 Unauthorized");
    }
    let p = Params::of(r);
    match (r.method.as_str(), rest) {
        ("GET", ["groups", group, "projects"]) => list_projects(w, r, &p, group),
        (_, ["projects", id, tail @ ..]) => {
            let idx = match id.parse::<u64>() {
                Ok(n) => w.repos.iter().position(|x| x.id == n),
                Err(_) => w
                    .repos
                    .iter()
                    .position(|x| x.full_name.eq_ignore_ascii_case(id)),
            };
            let Some(idx) = idx else {
                return msg(404, "404 Project Not Found");
            };
            project_route(w, r, &p, idx, tail)
        }
        _ => msg(404, "404 Not Found"),
    }
}

fn project_route(w: &mut World, r: &Req, p: &Params, idx: usize, tail: &[&str]) -> Resp {
    let num = |s: &str| s.parse::<u64>().ok();
    match (r.method.as_str(), tail) {
        ("GET", []) => Resp::json(200, project_json(w, &w.repos[idx])),
        ("GET", ["repository", "branches", b @ ..]) if !b.is_empty() => {
            let repo = &w.repos[idx];
            match repo.branches.get(&b.join("/")) {
                Some(sha) => Resp::json(200, branch_json(w, repo, &b.join("/"), sha)),
                None => msg(404, "404 Branch Not Found"),
            }
        }
        ("GET", ["repository", "tree"]) => tree(w, r, p, idx),
        ("GET", ["repository", "files", f, "raw"]) => raw_file(w, p, idx, f),
        ("GET", ["repository", "files", f]) => file_json(w, p, idx, f),
        ("POST", ["repository", "commits"]) => create_commit(w, p, idx),
        ("GET", ["hooks"]) => {
            let key = w.repos[idx].id.to_string();
            let hooks: Vec<Value> = w
                .hooks
                .get(&key)
                .into_iter()
                .flatten()
                .map(|h| {
                    json!({"id": h.id, "url": h.url, "project_id": w.repos[idx].id,
                    "push_events": h.events.iter().any(|e| e == "push"),
                    "merge_requests_events": h.events.iter().any(|e| e == "merge_requests"),
                    "note_events": h.events.iter().any(|e| e == "note"),
                    "pipeline_events": h.events.iter().any(|e| e == "pipeline")})
                })
                .collect();
            Resp::json(200, Value::Array(hooks))
        }
        ("POST", ["hooks"]) => {
            let Some(url) = p.get("url").filter(|u| u.starts_with("http")) else {
                return msg(400, "url is missing or invalid");
            };
            let mut events = Vec::new();
            for (param, name) in HOOK_EVENT_PARAMS {
                match p.flag(param) {
                    Ok(Some(true)) => events.push(name.to_owned()),
                    Ok(_) => {}
                    Err(e) => return e,
                }
            }
            let id = w.tick() as u64;
            let rec = super::HookRec {
                id,
                url: url.to_owned(),
                secret: p.get("token").unwrap_or_default().to_owned(),
                events,
            };
            let key = w.repos[idx].id.to_string();
            w.hooks.entry(key).or_default().push(rec);
            Resp::json(
                201,
                json!({"id": id, "url": url, "project_id": w.repos[idx].id}),
            )
        }
        ("PUT", ["hooks", id]) => edit_hook(w, p, idx, id),
        ("POST", ["variables"]) => write_variable(w, p, idx, None),
        ("PUT", ["variables", key]) => write_variable(w, p, idx, Some(key)),
        ("GET", ["merge_requests"]) => list_mrs(w, r, p, idx),
        ("POST", ["merge_requests"]) => create_mr(w, p, idx),
        ("GET", ["merge_requests", n]) => match num(n).and_then(|n| w.repos[idx].pr(n)) {
            Some(mr) => Resp::json(200, mr_json(w, &w.repos[idx], mr)),
            None => msg(404, "404 Not found"),
        },
        ("PUT", ["merge_requests", n]) => match num(n) {
            Some(n) => edit_mr(w, p, idx, n),
            None => msg(404, "404 Not found"),
        },
        ("POST", [kind @ ("merge_requests" | "issues"), n, "notes"]) => match num(n) {
            Some(n) => create_note(w, p, idx, *kind == "merge_requests", n),
            None => msg(404, "404 Not found"),
        },
        ("POST", [kind @ ("merge_requests" | "issues"), n, "notes", note, "award_emoji"]) => {
            match (num(n), num(note)) {
                (Some(n), Some(note)) => award(w, p, idx, *kind == "merge_requests", n, note),
                _ => msg(404, "404 Not found"),
            }
        }
        ("GET", ["members", "all"]) => members(w, r, p, idx),
        (_, ["pipelines", ..] | ["jobs", ..]) => super::ci::gitlab(w, r, idx, tail),
        _ => msg(404, "404 Not Found"),
    }
}

/// Hook event parameters (`push_events=true`) and the names the fake records.
const HOOK_EVENT_PARAMS: [(&str, &str); 4] = [
    ("push_events", "push"),
    ("merge_requests_events", "merge_requests"),
    ("note_events", "note"),
    ("pipeline_events", "pipeline"),
];

/// `PUT /projects/:id/hooks/:hook_id`: `url` is required; events given are set, the
/// others keep their value; a `token` given replaces the secret.
fn edit_hook(w: &mut World, p: &Params, idx: usize, id: &str) -> Resp {
    let Some(url) = p.get("url").filter(|u| u.starts_with("http")) else {
        return param_error("url is missing");
    };
    let key = w.repos[idx].id.to_string();
    let project_id = w.repos[idx].id;
    let Some(h) = w
        .hooks
        .get_mut(&key)
        .and_then(|l| l.iter_mut().find(|h| h.id.to_string() == id))
    else {
        return msg(404, "404 Not found");
    };
    for (param, name) in HOOK_EVENT_PARAMS {
        match p.flag(param) {
            Ok(Some(true)) if !h.events.iter().any(|e| e == name) => h.events.push(name.to_owned()),
            Ok(Some(false)) => h.events.retain(|e| e != name),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    h.url = url.to_owned();
    if let Some(t) = p.get("token") {
        h.secret = t.to_owned();
    }
    Resp::json(
        200,
        json!({"id": h.id, "url": h.url, "project_id": project_id}),
    )
}

// --- JSON shapes -------------------------------------------------------------------------

fn web(w: &World, repo: &Repo) -> String {
    format!("{}/{}", w.base_url, repo.full_name)
}

fn project_json(w: &World, repo: &Repo) -> Value {
    let ns = repo
        .full_name
        .rsplit_once('/')
        .map(|(n, _)| n)
        .unwrap_or_default();
    let mut v = json!({
        "id": repo.id,
        "description": null,
        "name": repo.name(),
        "name_with_namespace": repo.full_name.replace('/', " / "),
        "path": repo.name(),
        "path_with_namespace": repo.full_name,
        "created_at": iso_ms(repo.created),
        "default_branch": repo.default_branch,
        "web_url": web(w, repo),
        "http_url_to_repo": format!("{}.git", web(w, repo)),
        "namespace": {"id": 1, "name": ns.rsplit('/').next(), "path": ns.rsplit('/').next(), "kind": "group", "full_path": ns},
        "archived": repo.archived,
        "empty_repo": repo.is_empty(),
        "visibility": if repo.private { "private" } else { "public" },
        "repository_access_level": "enabled",
        "merge_requests_access_level": "enabled",
        "last_activity_at": iso_ms(repo.pushed.unwrap_or(repo.created)),
    });
    if repo.fork {
        v["forked_from_project"] = json!({"id": 1, "path_with_namespace": "upstream/project"});
    }
    v
}

fn commit_json(w: &World, repo: &Repo, sha: &str) -> Value {
    let c = &repo.commits[sha];
    let title = c.message.lines().next().unwrap_or_default();
    let (add, del) = c
        .parents
        .first()
        .and_then(|p| repo.commits.get(p))
        .map(|p| super::diff_paths(&p.tree, &c.tree).len())
        .map(|n| (n, 0))
        .unwrap_or((c.tree.len(), 0));
    json!({
        "id": c.sha,
        "short_id": &c.sha[..8],
        "created_at": iso_ms(c.time),
        "parent_ids": c.parents,
        "title": title,
        "message": c.message,
        "author_name": c.author,
        "author_email": format!("{}@example.com", c.author),
        "authored_date": iso_ms(c.time),
        "committer_name": c.author,
        "committer_email": format!("{}@example.com", c.author),
        "committed_date": iso_ms(c.time),
        "web_url": format!("{}/-/commit/{}", web(w, repo), c.sha),
        "stats": {"additions": add, "deletions": del, "total": add + del},
        "status": null,
        "project_id": repo.id,
    })
}

fn branch_json(w: &World, repo: &Repo, name: &str, sha: &str) -> Value {
    let default = repo.default_branch.as_deref() == Some(name);
    json!({
        "name": name,
        "merged": false,
        "protected": default,
        "default": default,
        "developers_can_push": false,
        "developers_can_merge": false,
        "can_push": true,
        "web_url": format!("{}/-/tree/{name}", web(w, repo)),
        "commit": commit_json(w, repo, sha),
    })
}

fn user_json(w: &World, login: &str) -> Value {
    json!({"id": login.bytes().map(u64::from).sum::<u64>(), "username": login, "name": login, "state": "active",
           "web_url": format!("{}/{login}", w.base_url)})
}

fn mr_json(w: &World, repo: &Repo, mr: &Pr) -> Value {
    let state = match mr.state {
        PrState::Open => "opened",
        PrState::Closed => "closed",
        PrState::Merged => "merged",
    };
    json!({
        "id": mr.global_id,
        "iid": mr.number,
        "project_id": repo.id,
        "title": mr.title,
        "description": mr.body,
        "state": state,
        "created_at": iso_ms(mr.created),
        "updated_at": iso_ms(mr.updated),
        "merged_at": if mr.state == PrState::Merged { mr.closed.map(iso_ms) } else { None },
        "closed_at": if mr.state == PrState::Closed { mr.closed.map(iso_ms) } else { None },
        "target_branch": mr.base,
        "source_branch": mr.head,
        "author": user_json(w, &mr.author),
        "source_project_id": repo.id,
        "target_project_id": repo.id,
        "draft": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "sha": mr.head_sha,
        "merge_commit_sha": null,
        "force_remove_source_branch": mr.remove_source_branch,
        "references": {"short": format!("!{}", mr.number), "full": format!("{}!{}", repo.full_name, mr.number)},
        "web_url": format!("{}/-/merge_requests/{}", web(w, repo), mr.number),
    })
}

fn note_json(w: &World, repo: &Repo, c: &CommentRec) -> Value {
    json!({
        "id": c.id,
        "type": null,
        "body": c.body,
        "author": user_json(w, &c.author),
        "created_at": iso_ms(c.created),
        "updated_at": iso_ms(c.created),
        "system": false,
        "noteable_id": c.number,
        "noteable_type": if c.on_pr { "MergeRequest" } else { "Issue" },
        "noteable_iid": c.number,
        "project_id": repo.id,
        "resolvable": false,
        "confidential": false,
        "internal": false,
    })
}

// --- pagination --------------------------------------------------------------------------

fn offset_page(w: &World, r: &Req, p: &Params, items: Vec<Value>) -> Resp {
    let per_page = int_param(p.get("per_page"), 20, 100);
    let page = int_param(p.get("page"), 1, usize::MAX);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let url = |n: usize| with_param(&w.base_url, &r.path, &r.query, "page", &n.to_string());
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", url(1)));
    links.push(format!("<{}>; rel=\"last\"", url(pages)));
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    Resp::json(200, Value::Array(page_of(&items, page, per_page)))
        .header("x-page", page.to_string())
        .header("x-per-page", per_page.to_string())
        .header("x-total", total.to_string())
        .header("x-total-pages", pages.to_string())
        .header("x-next-page", next)
        .header("x-prev-page", prev)
        .header("link", links.join(", "))
}

// --- handlers ----------------------------------------------------------------------------

fn list_projects(w: &World, r: &Req, p: &Params, group: &str) -> Resp {
    let prefix = format!("{}/", group.to_ascii_lowercase());
    let subgroups = p.flag("include_subgroups").ok().flatten().unwrap_or(false);
    let known = w
        .repos
        .iter()
        .any(|x| x.full_name.to_ascii_lowercase().starts_with(&prefix));
    if !known && !w.repos.iter().any(|x| x.tenant.eq_ignore_ascii_case(group)) {
        return msg(404, "404 Group Not Found");
    }
    let mut items: Vec<&Repo> = w
        .repos
        .iter()
        .filter(|x| {
            let lower = x.full_name.to_ascii_lowercase();
            lower.starts_with(&prefix) && (subgroups || !lower[prefix.len()..].contains('/'))
        })
        .filter(|x| match p.flag("archived").ok().flatten() {
            Some(a) => x.archived == a,
            None => true,
        })
        .collect();
    // Default order: created_at desc.
    items.sort_by_key(|x| std::cmp::Reverse((x.created, x.id)));
    let values = items.iter().map(|x| project_json(w, x)).collect();
    offset_page(w, r, p, values)
}

fn tree(w: &World, r: &Req, p: &Params, idx: usize) -> Resp {
    let repo = &w.repos[idx];
    let rev = p
        .get("ref")
        .map(str::to_owned)
        .or_else(|| repo.default_branch.clone())
        .unwrap_or_default();
    let Some(files) = repo.tree_of(&rev) else {
        return msg(404, "404 Tree Not Found");
    };
    let recursive = match p.flag("recursive") {
        Ok(v) => v.unwrap_or(false),
        Err(e) => return e,
    };
    let base = p
        .get("path")
        .map(|s| s.trim_matches('/').to_owned())
        .unwrap_or_default();
    let dirs = dirs_of(files.keys());
    if !base.is_empty() && !dirs.contains(&base) {
        return msg(404, "404 Tree Not Found");
    }
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    let mut entries: Vec<(String, bool)> = files
        .keys()
        .map(|f| (f.clone(), false))
        .chain(dirs.iter().map(|d| (d.clone(), true)))
        .filter(|(path, _)| {
            path.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
        })
        .collect();
    entries.sort();
    let values: Vec<(String, Value)> = entries
        .into_iter()
        .map(|(path, is_dir)| {
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            let (id, kind, mode) = if is_dir {
                let sub = format!("{path}/");
                let t = files
                    .iter()
                    .filter_map(|(f, c)| f.strip_prefix(&sub).map(|s| (s.to_owned(), c.clone())))
                    .collect();
                (super::tree_sha(&t), "tree", "040000")
            } else {
                (super::blob_sha(&files[&path]), "blob", "100644")
            };
            (
                path.clone(),
                json!({"id": id, "name": name, "type": kind, "path": path, "mode": mode}),
            )
        })
        .collect();
    if p.get("pagination") != Some("keyset") {
        return offset_page(w, r, p, values.into_iter().map(|(_, v)| v).collect());
    }
    let per_page = int_param(p.get("per_page"), 20, 100);
    let start = match p.get("page_token") {
        None => 0,
        Some(tok) => match values.iter().position(|(path, _)| path == tok) {
            Some(i) => i + 1,
            None => return msg(400, "Invalid page token"),
        },
    };
    let page: Vec<Value> = values
        .iter()
        .skip(start)
        .take(per_page)
        .map(|(_, v)| v.clone())
        .collect();
    let mut resp = Resp::json(200, Value::Array(page));
    if start + per_page < values.len() {
        let last = &values[start + per_page - 1].0;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in &p.0 {
            if k != "page_token" && !pairs.iter().any(|(n, _)| n == k) {
                pairs.push((k.clone(), p.get(k).unwrap_or(v).to_owned()));
            }
        }
        let next = with_param(&w.base_url, &r.path, &pairs, "page_token", last);
        resp = resp.header("link", format!("<{next}>; rel=\"next\""));
    }
    resp
}

fn raw_file(w: &World, p: &Params, idx: usize, path: &str) -> Resp {
    let repo = &w.repos[idx];
    let rev = p
        .get("ref")
        .map(str::to_owned)
        .or_else(|| repo.default_branch.clone())
        .unwrap_or_default();
    let Some(sha) = repo.resolve(&rev) else {
        return msg(404, "404 Commit Not Found");
    };
    match repo.commits[&sha].tree.get(path) {
        Some(content) => Resp::text(200, content)
            .header("x-gitlab-file-path", path)
            .header("x-gitlab-ref", rev)
            .header("x-gitlab-commit-id", sha)
            .header("x-gitlab-blob-id", super::blob_sha(content))
            .header("x-gitlab-size", content.len().to_string()),
        None => msg(404, "404 File Not Found"),
    }
}

fn file_json(w: &World, p: &Params, idx: usize, path: &str) -> Resp {
    let repo = &w.repos[idx];
    let Some(rev) = p.get("ref") else {
        return param_error("ref is missing");
    };
    let Some(sha) = repo.resolve(rev) else {
        return msg(404, "404 Commit Not Found");
    };
    match repo.commits[&sha].tree.get(path) {
        Some(content) => Resp::json(
            200,
            json!({
                "file_name": path.rsplit('/').next(),
                "file_path": path,
                "size": content.len(),
                "encoding": "base64",
                "content": base64::engine::general_purpose::STANDARD.encode(content),
                "ref": rev,
                "blob_id": super::blob_sha(content),
                "commit_id": sha,
                "last_commit_id": sha,
            }),
        ),
        None => msg(404, "404 File Not Found"),
    }
}

/// The newest commit on the first-parent chain from `from` that changed `path`.
fn last_commit_touching(repo: &Repo, from: &str, path: &str) -> Option<String> {
    let mut cur = Some(from.to_owned());
    while let Some(sha) = cur {
        let c = repo.commits.get(&sha)?;
        let parent = c.parents.first().and_then(|p| repo.commits.get(p));
        let before = parent.and_then(|p| p.tree.get(path));
        if before != c.tree.get(path) {
            return Some(sha);
        }
        cur = parent.map(|p| p.sha.clone());
    }
    None
}

fn create_commit(w: &mut World, p: &Params, idx: usize) -> Resp {
    let mut missing = Vec::new();
    for k in ["branch", "commit_message"] {
        if p.get(k).is_none() {
            missing.push(format!("{k} is missing"));
        }
    }
    let actions = p.actions();
    if actions.is_empty() {
        missing.push("actions is missing".into());
    }
    if !missing.is_empty() {
        return param_error(&missing.join(", "));
    }
    let branch = p.get("branch").unwrap_or_default().to_owned();
    let message = p.get("commit_message").unwrap_or_default().to_owned();
    if p.get("start_branch").is_some() && p.get("start_sha").is_some() {
        return param_error("start_branch, start_sha are mutually exclusive");
    }
    let force = match p.flag("force") {
        Ok(f) => f.unwrap_or(false),
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    if repo.archived {
        return msg(403, "403 Forbidden");
    }
    let exists = repo.branches.contains_key(&branch);
    let start = match (p.get("start_sha"), p.get("start_branch")) {
        (Some(sha), _) => match repo.commits.get(sha) {
            Some(_) => Some(Some(sha.to_owned())),
            None => return msg(400, &format!("Invalid start_sha: {sha}")),
        },
        (None, Some(b)) => match repo.branches.get(b) {
            Some(sha) => Some(Some(sha.clone())),
            None => {
                return msg(
                    400,
                    "You can only create or edit files when you are on a branch",
                )
            }
        },
        (None, None) => None,
    };
    let base: Option<String> = match start {
        Some(s) => {
            if exists && !force {
                return msg(
                    400,
                    &format!(
                        "A branch called '{branch}' already exists. Switch to that branch in order to make changes"
                    ),
                );
            }
            s
        }
        None if exists => repo.branches.get(&branch).cloned(),
        None if repo.is_empty() => None,
        None => {
            return msg(
                400,
                "You can only create or edit files when you are on a branch",
            )
        }
    };
    let mut tree = base
        .as_ref()
        .map(|b| repo.commits[b].tree.clone())
        .unwrap_or_default();
    for (i, a) in actions.iter().enumerate() {
        let get = |k: &str| a.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(action) = get("action") else {
            return param_error(&format!("actions[{i}][action] is missing"));
        };
        if !["create", "delete", "move", "update", "chmod"].contains(&action) {
            return param_error(&format!("actions[{i}][action] does not have a valid value"));
        }
        let Some(path) = get("file_path") else {
            return param_error(&format!("actions[{i}][file_path] is missing"));
        };
        if !valid_repo_path(path) {
            return msg(
                400,
                "Your changes could not be committed, because the file path is invalid",
            );
        }
        let content = match (get("content"), get("encoding").unwrap_or("text")) {
            (None, _) => None,
            (Some(c), "text") => Some(c.to_owned()),
            (Some(c), "base64") => match base64::engine::general_purpose::STANDARD.decode(c) {
                Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => return msg(400, "Invalid base64 content"),
            },
            (Some(_), _) => {
                return param_error(&format!(
                    "actions[{i}][encoding] does not have a valid value"
                ))
            }
        };
        if let (Some(last), Some(b)) = (get("last_commit_id"), &base) {
            if last_commit_touching(repo, b, path).as_deref() != Some(last) {
                return msg(
                    400,
                    "You are attempting to update a file that has changed since you started editing it.",
                );
            }
        }
        match action {
            "create" => {
                if tree.contains_key(path) {
                    return msg(400, "A file with this name already exists");
                }
                tree.insert(path.to_owned(), content.unwrap_or_default());
            }
            "update" => {
                if !tree.contains_key(path) {
                    return msg(400, "A file with this name doesn't exist");
                }
                tree.insert(path.to_owned(), content.unwrap_or_default());
            }
            "delete" => {
                if tree.remove(path).is_none() {
                    return msg(400, "A file with this name doesn't exist");
                }
            }
            "move" => {
                let Some(prev) = get("previous_path") else {
                    return param_error(&format!("actions[{i}][previous_path] is missing"));
                };
                let Some(old) = tree.remove(prev) else {
                    return msg(400, "A file with this name doesn't exist");
                };
                if tree.contains_key(path) {
                    return msg(400, "A file with this name already exists");
                }
                tree.insert(path.to_owned(), content.unwrap_or(old));
            }
            _ => {
                if !tree.contains_key(path) {
                    return msg(400, "A file with this name doesn't exist");
                }
            }
        }
    }
    let now = w.tick();
    let author = w.bot_login.clone();
    let repo = &mut w.repos[idx];
    let sha = repo.make_commit(tree, base.into_iter().collect(), &author, &message, now);
    repo.set_branch(&branch, &sha);
    repo.pushed = Some(now);
    Resp::json(201, commit_json(w, &w.repos[idx], &sha))
}

fn list_mrs(w: &World, r: &Req, p: &Params, idx: usize) -> Resp {
    let repo = &w.repos[idx];
    let state = p.get("state").unwrap_or("all");
    if !["opened", "closed", "locked", "merged", "all"].contains(&state) {
        return param_error("state does not have a valid value");
    }
    let order_by = p.get("order_by").unwrap_or("created_at");
    if !["created_at", "updated_at", "merged_at", "title"].contains(&order_by) {
        return param_error("order_by does not have a valid value");
    }
    let sort = p.get("sort").unwrap_or("desc");
    if !["asc", "desc"].contains(&sort) {
        return param_error("sort does not have a valid value");
    }
    let mut mrs: Vec<&Pr> = repo
        .prs
        .iter()
        .filter(|m| match state {
            "opened" => m.state == PrState::Open,
            "closed" => m.state == PrState::Closed,
            "merged" => m.state == PrState::Merged,
            "locked" => false,
            _ => true,
        })
        .filter(|m| p.get("source_branch").is_none_or(|b| m.head == b))
        .filter(|m| p.get("target_branch").is_none_or(|b| m.base == b))
        .collect();
    match order_by {
        "updated_at" => mrs.sort_by_key(|m| (m.updated, m.number)),
        "title" => mrs.sort_by(|a, b| a.title.cmp(&b.title)),
        _ => mrs.sort_by_key(|m| (m.created, m.number)),
    }
    if sort == "desc" {
        mrs.reverse();
    }
    let values = mrs.iter().map(|m| mr_json(w, repo, m)).collect();
    offset_page(w, r, p, values)
}

fn create_mr(w: &mut World, p: &Params, idx: usize) -> Resp {
    let missing: Vec<String> = ["source_branch", "target_branch", "title"]
        .iter()
        .filter(|k| p.get(k).is_none())
        .map(|k| format!("{k} is missing"))
        .collect();
    if !missing.is_empty() {
        return param_error(&missing.join(", "));
    }
    let source = p.get("source_branch").unwrap_or_default().to_owned();
    let target = p.get("target_branch").unwrap_or_default().to_owned();
    let title = p.get("title").unwrap_or_default().to_owned();
    let description = p.get("description").unwrap_or_default().to_owned();
    let remove = match p.flag("remove_source_branch") {
        Ok(f) => f.unwrap_or(false),
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    if source == target {
        return Resp::json(
            422,
            json!({"message": ["You can't use same project/branch for source and target"]}),
        );
    }
    let Some(head_sha) = repo.branches.get(&source).cloned() else {
        return Resp::json(
            422,
            json!({"message": [format!("Source branch \"{source}\" does not exist")]}),
        );
    };
    if !repo.branches.contains_key(&target) {
        return Resp::json(
            422,
            json!({"message": [format!("Target branch \"{target}\" does not exist")]}),
        );
    }
    if let Some(other) = repo
        .prs
        .iter()
        .find(|m| m.state == PrState::Open && m.head == source && m.base == target)
    {
        return Resp::json(
            409,
            json!({"message": [format!("Another open merge request already exists for this source branch: !{}", other.number)]}),
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
        base: target,
        title,
        body: description,
        state: PrState::Open,
        head_sha,
        author,
        created: now,
        updated: now,
        closed: None,
        remove_source_branch: remove,
    });
    let repo = &w.repos[idx];
    Resp::json(201, mr_json(w, repo, repo.pr(number).expect("just pushed")))
}

fn edit_mr(w: &mut World, p: &Params, idx: usize, number: u64) -> Resp {
    const KNOWN: [&str; 8] = [
        "title",
        "description",
        "state_event",
        "target_branch",
        "remove_source_branch",
        "labels",
        "squash",
        "discussion_locked",
    ];
    if !KNOWN.iter().any(|k| p.get(k).is_some()) {
        return param_error(
            "assignee_id, assignee_ids, reviewer_ids, description, labels, add_labels, remove_labels, milestone_id, remove_source_branch, allow_collaboration, allow_maintainer_to_push, squash, state_event, target_branch, title, discussion_locked are missing, at least one parameter must be provided",
        );
    }
    let state_event = p.get("state_event");
    if let Some(s) = state_event {
        if s != "close" && s != "reopen" {
            return param_error("state_event does not have a valid value");
        }
    }
    let remove = match p.flag("remove_source_branch") {
        Ok(f) => f,
        Err(e) => return e,
    };
    let now = w.tick();
    let repo = &mut w.repos[idx];
    let Some(mr) = repo.pr(number).cloned() else {
        return msg(404, "404 Not found");
    };
    if let Some(t) = p.get("target_branch") {
        if !repo.branches.contains_key(t) {
            return Resp::json(
                422,
                json!({"message": [format!("Target branch \"{t}\" does not exist")]}),
            );
        }
    }
    if state_event == Some("reopen") && mr.state == PrState::Closed {
        let Some(tip) = repo.branches.get(&mr.head).cloned() else {
            return Resp::json(
                422,
                json!({"message": [format!("Source branch \"{}\" does not exist", mr.head)]}),
            );
        };
        if let Some(other) = repo
            .prs
            .iter()
            .find(|m| m.state == PrState::Open && m.head == mr.head && m.base == mr.base)
        {
            return Resp::json(
                409,
                json!({"message": [format!("Another open merge request already exists for this source branch: !{}", other.number)]}),
            );
        }
        let m = repo.pr_mut(number).expect("exists");
        m.state = PrState::Open;
        m.closed = None;
        m.head_sha = tip;
    }
    let m = repo.pr_mut(number).expect("exists");
    if let Some(t) = p.get("title") {
        m.title = t.to_owned();
    }
    if let Some(d) = p.get("description") {
        m.body = d.to_owned();
    }
    if let Some(t) = p.get("target_branch") {
        m.base = t.to_owned();
    }
    if let Some(r) = remove {
        m.remove_source_branch = r;
    }
    if state_event == Some("close") && m.state == PrState::Open {
        m.state = PrState::Closed;
        m.closed = Some(now);
    }
    m.updated = now;
    let repo = &w.repos[idx];
    Resp::json(200, mr_json(w, repo, repo.pr(number).expect("exists")))
}

fn create_note(w: &mut World, p: &Params, idx: usize, on_mr: bool, number: u64) -> Resp {
    let Some(body) = p.get("body").map(str::to_owned) else {
        return param_error("body is missing");
    };
    let repo = &w.repos[idx];
    let found = if on_mr {
        repo.pr(number).is_some()
    } else {
        repo.issues.iter().any(|i: &Issue| i.number == number)
    };
    if !found {
        return msg(
            404,
            if on_mr {
                "404 Merge Request Not Found"
            } else {
                "404 Issue Not Found"
            },
        );
    }
    let now = w.tick();
    let id = w.next_id();
    let author = w.bot_login.clone();
    let rec = CommentRec {
        id,
        number,
        on_pr: on_mr,
        body,
        author,
        created: now,
    };
    w.repos[idx].comments.push(rec.clone());
    Resp::json(201, note_json(w, &w.repos[idx], &rec))
}

const EMOJI: [&str; 14] = [
    "thumbsup",
    "thumbsdown",
    "eyes",
    "confused",
    "smile",
    "tada",
    "heart",
    "rocket",
    "laughing",
    "white_check_mark",
    "x",
    "hourglass",
    "warning",
    "+1",
];

fn award(w: &mut World, p: &Params, idx: usize, on_mr: bool, number: u64, note: u64) -> Resp {
    let Some(name) = p.get("name").map(str::to_owned) else {
        return param_error("name is missing");
    };
    let repo = &w.repos[idx];
    let target_exists = if on_mr {
        repo.pr(number).is_some()
    } else {
        repo.issues.iter().any(|i| i.number == number)
    };
    if !target_exists {
        return msg(404, "404 Not found");
    }
    if !repo
        .comments
        .iter()
        .any(|c| c.id == note && c.number == number && c.on_pr == on_mr)
    {
        return msg(404, "404 Note Not Found");
    }
    if !EMOJI.contains(&name.as_str()) {
        return Resp::json(
            400,
            json!({"message": {"name": ["is not a valid emoji name"]}}),
        );
    }
    let user = w.bot_login.clone();
    if w.repos[idx]
        .reactions
        .get(&note)
        .is_some_and(|l| l.iter().any(|(u, n)| *u == user && *n == name))
    {
        return Resp::json(
            400,
            json!({"message": {"name": ["has already been taken"]}}),
        );
    }
    let now = w.tick();
    let id = w.next_id();
    w.repos[idx]
        .reactions
        .entry(note)
        .or_default()
        .push((user.clone(), name.clone()));
    Resp::json(
        201,
        json!({"id": id, "name": name, "user": user_json(w, &user), "created_at": iso_ms(now),
               "updated_at": iso_ms(now), "awardable_id": note, "awardable_type": "Note"}),
    )
}

fn members(w: &World, r: &Req, p: &Params, idx: usize) -> Resp {
    let repo = &w.repos[idx];
    let query = p.get("query").map(str::to_ascii_lowercase);
    let values = repo
        .permissions
        .iter()
        .filter(|(u, _)| {
            query
                .as_deref()
                .is_none_or(|q| u.to_ascii_lowercase().contains(q))
        })
        .map(|(u, level)| {
            let mut v = user_json(w, u);
            v["access_level"] = json!(level.parse::<u64>().unwrap_or(0));
            v
        })
        .collect();
    offset_page(w, r, p, values)
}

/// `POST /projects/:id/variables` and `PUT /projects/:id/variables/:key`: a masked value
/// must be maskable (400 `value is invalid`), a key is unique per environment scope (400
/// `has already been taken`), and an update of a missing key is 404.
fn write_variable(w: &mut World, p: &Params, idx: usize, path_key: Option<&str>) -> Resp {
    let key = match path_key.or(p.get("key")) {
        Some(k)
            if !k.is_empty()
                && k.len() <= 255
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            k.to_owned()
        }
        Some(_) => {
            return Resp::json(
                400,
                json!({"message": {"key": ["can contain only letters, digits and '_'."]}}),
            )
        }
        None => return param_error("key is missing"),
    };
    let Some(value) = p.get("value").map(str::to_owned) else {
        return param_error("value is missing");
    };
    let (protected, masked) = match (p.flag("protected"), p.flag("masked")) {
        (Ok(a), Ok(b)) => (a.unwrap_or(false), b.unwrap_or(false)),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let scope = if path_key.is_some() {
        p.get("filter[environment_scope]").unwrap_or("*").to_owned()
    } else {
        p.get("environment_scope").unwrap_or("*").to_owned()
    };
    if masked && !pipewright::forge::client::gitlab_maskable(&value) {
        return Resp::json(400, json!({"message": {"value": ["is invalid"]}}));
    }
    let slot = (scope.clone(), key.clone());
    let exists = w.repos[idx].ci_vars.contains_key(&slot);
    match (path_key.is_some(), exists) {
        (true, false) => return msg(404, "404 Variable Not Found"),
        (false, true) => {
            return Resp::json(
                400,
                json!({"message": {"key": [format!("({key}) has already been taken")]}}),
            )
        }
        _ => {}
    }
    w.repos[idx].ci_vars.insert(
        slot,
        super::CiVar {
            value: value.clone(),
            protected,
            masked,
            uuid: String::new(),
        },
    );
    Resp::json(
        if path_key.is_some() { 200 } else { 201 },
        json!({"variable_type": "env_var", "key": key, "value": value, "protected": protected,
               "masked": masked, "hidden": false, "raw": p.get("raw") == Some("true"),
               "environment_scope": scope, "description": null}),
    )
}
