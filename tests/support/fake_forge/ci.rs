//! CI on the fake forges: runs with jobs and logs, as each forge's API shows them, and
//! the re-runs the bot may ask for.
//!
//! - GitHub Actions: `GET …/actions/runs/{id}/jobs` (`filter=latest|all`),
//!   `GET …/actions/runs/{id}/attempts/{n}/jobs`, `GET …/actions/jobs/{id}/logs` (302 to a
//!   short-lived download URL on this same fake, which needs no credentials, as GitHub's
//!   signed log URLs need none), `POST …/actions/runs/{id}/rerun-failed-jobs` (a new
//!   attempt of the same run: the failed jobs get new ids, the passed ones are carried
//!   over). The installation token must carry `actions: read` (`write` to re-run), else
//!   403 "Resource not accessible by integration".
//! - GitLab CI: `GET /projects/:id/pipelines/:pid/jobs` (`scope[]`, `include_retried`),
//!   `GET /projects/:id/jobs/:job/trace` (the raw log), `POST /projects/:id/jobs/:job/retry`
//!   (a new job with a new id in the same pipeline; the old one becomes `retried`).
//! - Bitbucket Pipelines: `GET …/pipelines/` (`sort=-created_on`), `GET …/pipelines/{uuid}/steps/`,
//!   `GET …/pipelines/{uuid}/steps/{uuid}/log`, `POST …/pipelines/` (a re-run is a new
//!   pipeline with the next build number). Scopes: `pipeline` to read, `pipeline:write` to
//!   run (checked in `bitbucket.rs` with the other endpoints).
//!
//! Tests drive it with [`World::run_ci`] (a run of a commit finished with these jobs and
//! logs) and [`World::finish_rerun`] (the re-run the bot asked for finished); the
//! harness turns the returned [`CiRun`] into the signed webhook the forge would send.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{iso, iso_ms, page_of, Kind, Req, Resp, World};

/// How a job ended, as a test describes it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job (GitHub, GitLab) or step (Bitbucket) name.
    pub name: String,
    /// Passed or failed.
    pub passed: bool,
    /// Its log, in the forge's own format.
    pub log: Vec<u8>,
}

impl JobSpec {
    /// A job that passed.
    pub fn passed(name: &str, log: &[u8]) -> JobSpec {
        JobSpec {
            name: name.to_owned(),
            passed: true,
            log: log.to_vec(),
        }
    }

    /// A job that failed.
    pub fn failed(name: &str, log: &[u8]) -> JobSpec {
        JobSpec {
            name: name.to_owned(),
            passed: false,
            log: log.to_vec(),
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to run (a re-run the bot asked for, not finished yet).
    Pending,
    /// Finished and passed.
    Passed,
    /// Finished and failed.
    Failed,
}

/// One job (GitHub job, GitLab job, Bitbucket step) of a run.
#[derive(Debug, Clone)]
pub struct CiJob {
    /// GitHub / GitLab job id (unique on the forge).
    pub id: u64,
    /// Bitbucket step `{uuid}`.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// GitHub: the run attempt this job belongs to.
    pub attempt: u32,
    /// State.
    pub state: JobState,
    /// The log.
    pub log: Vec<u8>,
    /// GitLab: a retry replaced it.
    pub retried: bool,
    /// Started, seconds.
    pub started: i64,
    /// Finished, seconds.
    pub finished: Option<i64>,
}

/// One run: a GitHub workflow run, a GitLab pipeline, a Bitbucket pipeline.
#[derive(Debug, Clone)]
pub struct CiRun {
    /// Repository (`owner/name`).
    pub repo: String,
    /// GitHub run id, GitLab pipeline id, Bitbucket build number.
    pub id: u64,
    /// Bitbucket pipeline `{uuid}`.
    pub uuid: String,
    /// Branch.
    pub branch: String,
    /// Commit.
    pub sha: String,
    /// Workflow / pipeline name.
    pub name: String,
    /// GitHub `run_attempt` (1 + re-runs).
    pub attempt: u32,
    /// Every job of every attempt, in creation order.
    pub jobs: Vec<CiJob>,
    /// Created, seconds.
    pub created: i64,
    /// Started by the API (a Bitbucket re-run) rather than a push.
    pub manual: bool,
}

impl CiRun {
    /// The jobs that count now: GitHub's latest attempt, GitLab's jobs not retried.
    pub fn current_jobs(&self) -> impl Iterator<Item = &CiJob> {
        let attempt = self.attempt;
        self.jobs
            .iter()
            .filter(move |j| j.attempt == attempt && !j.retried)
    }

    /// Every current job has finished.
    pub fn finished(&self) -> bool {
        self.current_jobs().all(|j| j.state != JobState::Pending)
    }

    /// Finished and every current job passed.
    pub fn passed(&self) -> bool {
        self.finished() && self.current_jobs().all(|j| j.state == JobState::Passed)
    }

    /// When the last current job finished.
    pub fn finished_at(&self) -> i64 {
        self.current_jobs()
            .filter_map(|j| j.finished)
            .max()
            .unwrap_or(self.created)
    }
}

/// CI state of one fake forge.
#[derive(Debug, Default)]
pub struct Ci {
    /// Every run, in creation order.
    pub runs: Vec<CiRun>,
    /// GitHub: installation → `actions` permission of its tokens (`write` when unset,
    /// as pipewright's App manifest asks; `read` or `none` to test refusals).
    pub actions: BTreeMap<String, String>,
    /// GitHub: log download tokens → (repository, job id, expiry in seconds).
    downloads: BTreeMap<String, (String, u64, i64)>,
    next_id: u64,
}

/// Seconds a GitHub log download URL stays valid (GitHub says "expires after 1 minute").
const DOWNLOAD_TTL: i64 = 60;

impl World {
    fn ci_id(&mut self) -> u64 {
        self.ci.next_id += 1;
        // Ids in the range real forges use today, distinct per fake.
        6_000_000_000 + self.ci.next_id * 7
    }

    fn step_uuid(&mut self) -> String {
        let n = self.ci_id();
        format!("{{{:08x}-5e2f-4c1a-9d3b-{n:012x}}}", n % 0xffff_ffff)
    }

    /// CI ran on `sha` of `branch` and finished with `jobs` (each with its log in the
    /// forge's format); the run is what the forge's API now shows, and what its webhook
    /// describes.
    pub fn run_ci(&mut self, full_name: &str, branch: &str, sha: &str, jobs: &[JobSpec]) -> CiRun {
        assert!(
            self.repo(full_name)
                .is_some_and(|r| r.commits.contains_key(sha)),
            "fake forge: {full_name} has no commit {sha}"
        );
        let kind = self.kind;
        let created = self.tick();
        let number = self
            .ci
            .runs
            .iter()
            .filter(|r| r.repo.eq_ignore_ascii_case(full_name))
            .count() as u64
            + 1;
        let id = match kind {
            // Bitbucket numbers a repository's pipelines 1, 2, …
            Kind::Bitbucket => number,
            Kind::Github | Kind::Gitlab => self.ci_id(),
        };
        let uuid = self.step_uuid();
        let mut run = CiRun {
            repo: full_name.to_owned(),
            id,
            uuid,
            branch: branch.to_owned(),
            sha: sha.to_owned(),
            name: match kind {
                Kind::Github => "CI".to_owned(),
                Kind::Gitlab => String::new(),
                Kind::Bitbucket => format!("Pipeline #{number} for {branch}"),
            },
            attempt: 1,
            jobs: Vec::new(),
            created,
            manual: false,
        };
        for spec in jobs {
            let job = self.finished_job(spec, 1);
            run.jobs.push(job);
        }
        self.ci.runs.push(run.clone());
        run
    }

    fn finished_job(&mut self, spec: &JobSpec, attempt: u32) -> CiJob {
        let started = self.tick();
        let finished = self.tick();
        CiJob {
            id: self.ci_id(),
            uuid: self.step_uuid(),
            name: spec.name.clone(),
            attempt,
            state: if spec.passed {
                JobState::Passed
            } else {
                JobState::Failed
            },
            log: spec.log.clone(),
            retried: false,
            started,
            finished: Some(finished),
        }
    }

    /// The re-run pipewright asked for finished: its pending jobs (GitHub's new attempt,
    /// GitLab's retried jobs, Bitbucket's new pipeline) end as `jobs` say, by name; a
    /// pending job `jobs` does not name passes with an empty log. `None` when nothing
    /// was re-run.
    pub fn finish_rerun(&mut self, full_name: &str, jobs: &[JobSpec]) -> Option<CiRun> {
        let i = self.ci.runs.iter().rposition(|r| {
            r.repo.eq_ignore_ascii_case(full_name)
                && r.current_jobs().any(|j| j.state == JobState::Pending)
        })?;
        let now = self.tick();
        let run = &mut self.ci.runs[i];
        let attempt = run.attempt;
        for job in run
            .jobs
            .iter_mut()
            .filter(|j| j.attempt == attempt && !j.retried && j.state == JobState::Pending)
        {
            let spec = jobs.iter().find(|s| s.name == job.name);
            job.state = match spec {
                Some(s) if !s.passed => JobState::Failed,
                _ => JobState::Passed,
            };
            job.log = spec.map(|s| s.log.clone()).unwrap_or_default();
            job.started = now;
            job.finished = Some(now + 1);
        }
        self.clock += 1;
        Some(self.ci.runs[i].clone())
    }

    /// The runs of a repository, oldest first.
    pub fn ci_runs(&self, full_name: &str) -> Vec<CiRun> {
        self.ci
            .runs
            .iter()
            .filter(|r| r.repo.eq_ignore_ascii_case(full_name))
            .cloned()
            .collect()
    }

    /// Sets the `actions` permission of a GitHub installation's tokens (`write`, `read`,
    /// `none`).
    pub fn set_actions_permission(&mut self, installation: &str, level: &str) {
        self.ci
            .actions
            .insert(installation.to_owned(), level.to_owned());
    }

    fn actions_level(&self, installation: &str) -> &str {
        self.ci
            .actions
            .get(installation)
            .map(String::as_str)
            .unwrap_or("write")
    }

    fn run_index(&self, full_name: &str, id: u64) -> Option<usize> {
        self.ci
            .runs
            .iter()
            .position(|r| r.repo.eq_ignore_ascii_case(full_name) && r.id == id)
    }
}

/// The permissions a GitHub installation token carries for CI (added to the token
/// answer by `github.rs`).
pub(super) fn github_token_permissions(w: &World, installation: &str, permissions: &mut Value) {
    match w.actions_level(installation) {
        "none" => {}
        level => {
            permissions["actions"] = json!(level);
            permissions["checks"] = json!("read");
        }
    }
}

// --- GitHub ------------------------------------------------------------------------------

fn gh_err(status: u16, message: &str) -> Resp {
    Resp::json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest/actions", "status": status.to_string()}),
    )
}

fn gh_job_json(w: &World, run: &CiRun, j: &CiJob) -> Value {
    let api = format!("{}/repos/{}", w.base_url, run.repo);
    let conclusion = match j.state {
        JobState::Pending => Value::Null,
        JobState::Passed => json!("success"),
        JobState::Failed => json!("failure"),
    };
    json!({
        "id": j.id,
        "run_id": run.id,
        "run_url": format!("{api}/actions/runs/{}", run.id),
        "run_attempt": j.attempt,
        "node_id": format!("CR_kwDO{:x}", j.id),
        "head_sha": run.sha,
        "head_branch": run.branch,
        "url": format!("{api}/actions/jobs/{}", j.id),
        "html_url": format!("{}/{}/actions/runs/{}/job/{}", w.base_url, run.repo, run.id, j.id),
        "status": if j.state == JobState::Pending { "queued" } else { "completed" },
        "conclusion": conclusion,
        "created_at": iso(j.started),
        "started_at": iso(j.started),
        "completed_at": j.finished.map(iso),
        "name": j.name,
        "steps": [],
        "check_run_url": format!("{api}/check-runs/{}", j.id),
        "labels": ["ubuntu-latest"],
        "runner_id": 7,
        "runner_name": "GitHub Actions 7",
        "runner_group_id": 2,
        "runner_group_name": "GitHub Actions",
        "workflow_name": run.name,
    })
}

/// `…/actions/…` of repository `idx` (the rest of the path after `repos/{o}/{r}`).
pub(super) fn github(w: &mut World, r: &Req, idx: usize, rest: &[&str]) -> Resp {
    let full = w.repos[idx].full_name.clone();
    let level = w.actions_level(&w.repos[idx].tenant).to_owned();
    let write = r.method != "GET";
    if level == "none" || (write && level != "write") {
        return gh_err(403, "Resource not accessible by integration");
    }
    let num = |s: &str| s.parse::<u64>().ok();
    match (r.method.as_str(), rest) {
        ("GET", ["actions", "runs", id, "jobs"]) => {
            let Some(i) = num(id).and_then(|id| w.run_index(&full, id)) else {
                return gh_err(404, "Not Found");
            };
            let all = match r.q("filter") {
                None | Some("latest") => false,
                Some("all") => true,
                Some(other) => {
                    return Resp::json(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "WorkflowJob", "field": "filter", "code": "invalid", "value": other}], "documentation_url": "https://docs.github.com/rest/actions/workflow-jobs", "status": "422"}),
                    )
                }
            };
            let run = &w.ci.runs[i];
            let jobs: Vec<Value> = run
                .jobs
                .iter()
                .filter(|j| all || j.attempt == run.attempt)
                .map(|j| gh_job_json(w, run, j))
                .collect();
            gh_jobs_page(w, r, jobs)
        }
        ("GET", ["actions", "runs", id, "attempts", n, "jobs"]) => {
            let Some(i) = num(id).and_then(|id| w.run_index(&full, id)) else {
                return gh_err(404, "Not Found");
            };
            let run = &w.ci.runs[i];
            let Some(n) = num(n).filter(|n| (1..=u64::from(run.attempt)).contains(n)) else {
                return gh_err(404, "Not Found");
            };
            let jobs: Vec<Value> = run
                .jobs
                .iter()
                .filter(|j| u64::from(j.attempt) == n)
                .map(|j| gh_job_json(w, run, j))
                .collect();
            gh_jobs_page(w, r, jobs)
        }
        ("GET", ["actions", "jobs", id, "logs"]) => {
            let Some(job) = num(id) else {
                return gh_err(404, "Not Found");
            };
            let known = w.ci.runs.iter().any(|run| {
                run.repo.eq_ignore_ascii_case(&full)
                    && run
                        .jobs
                        .iter()
                        .any(|j| j.id == job && j.state != JobState::Pending)
            });
            if !known {
                return gh_err(404, "Not Found");
            }
            let now = w.now();
            let token = super::hex40(format!("log\0{full}\0{job}\0{now}").as_bytes());
            w.ci.downloads
                .insert(token.clone(), (full.clone(), job, now + DOWNLOAD_TTL));
            Resp::empty(302).header(
                "location",
                format!(
                    "{}/_fake/actions-logs/{token}?expires={}",
                    w.base_url,
                    now + DOWNLOAD_TTL
                ),
            )
        }
        ("POST", ["actions", "runs", id, "rerun-failed-jobs"]) => {
            if !r.body.is_empty() {
                match r.json() {
                    Ok(Value::Object(o)) => {
                        if o.get("enable_debug_logging")
                            .is_some_and(|v| !v.is_boolean() && !v.is_null())
                        {
                            return gh_err(422, "Invalid request.\n\nFor 'properties/enable_debug_logging', value is not a boolean.");
                        }
                    }
                    Ok(Value::Null) => {}
                    _ => return gh_err(400, "Problems parsing JSON"),
                }
            }
            let Some(i) = num(id).and_then(|id| w.run_index(&full, id)) else {
                return gh_err(404, "Not Found");
            };
            if !w.ci.runs[i].finished() || w.ci.runs[i].passed() {
                // GitHub refuses to re-run a run that is still going or has nothing failed.
                return gh_err(403, "This workflow run cannot be retried");
            }
            let attempt = w.ci.runs[i].attempt + 1;
            let previous: Vec<CiJob> = w.ci.runs[i].current_jobs().cloned().collect();
            let mut next = Vec::new();
            for j in previous {
                let id = w.ci_id();
                let mut copy = CiJob {
                    id,
                    attempt,
                    ..j.clone()
                };
                if j.state == JobState::Failed {
                    copy.state = JobState::Pending;
                    copy.finished = None;
                    copy.log.clear();
                }
                next.push(copy);
            }
            let run = &mut w.ci.runs[i];
            run.attempt = attempt;
            run.jobs.extend(next);
            Resp::json(201, json!({}))
        }
        _ => gh_err(404, "Not Found"),
    }
}

fn gh_jobs_page(w: &World, r: &Req, jobs: Vec<Value>) -> Resp {
    let per_page = super::int_param(r.q("per_page"), 30, 100);
    let page = super::int_param(r.q("page"), 1, usize::MAX);
    let total = jobs.len();
    let last = total.div_ceil(per_page).max(1);
    let mut resp = Resp::json(
        200,
        json!({"total_count": total, "jobs": page_of(&jobs, page, per_page)}),
    );
    if page < last {
        resp = resp.header(
            "link",
            format!(
                "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                super::with_param(
                    &w.base_url,
                    &r.path,
                    &r.query,
                    "page",
                    &(page + 1).to_string()
                ),
                super::with_param(&w.base_url, &r.path, &r.query, "page", &last.to_string())
            ),
        );
    }
    resp
}

/// `GET /_fake/actions-logs/{token}`: the signed download URL GitHub redirects to. It
/// needs no credentials and expires.
pub(super) fn github_download(w: &World, token: &str) -> Resp {
    let Some((repo, job, expires)) = w.ci.downloads.get(token) else {
        return Resp::text(404, "The specified blob does not exist.");
    };
    if w.now() > *expires {
        return Resp::text(403, "Server failed to authenticate the request.");
    }
    let log =
        w.ci.runs
            .iter()
            .filter(|r| r.repo.eq_ignore_ascii_case(repo))
            .flat_map(|r| r.jobs.iter())
            .find(|j| j.id == *job)
            .map(|j| j.log.clone())
            .unwrap_or_default();
    Resp {
        status: 200,
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: log,
    }
}

// --- GitLab ------------------------------------------------------------------------------

fn gl_msg(status: u16, m: &str) -> Resp {
    Resp::json(status, json!({ "message": m }))
}

fn gl_job_json(w: &World, run: &CiRun, j: &CiJob) -> Value {
    let (status, reason) = match j.state {
        JobState::Pending => ("pending", Value::Null),
        JobState::Passed => ("success", Value::Null),
        JobState::Failed => ("failed", json!("script_failure")),
    };
    let web = format!("{}/{}", w.base_url, run.repo);
    let project_id = w.repo(&run.repo).map(|r| r.id).unwrap_or_default();
    json!({
        "id": j.id,
        "status": status,
        "stage": "test",
        "name": j.name,
        "ref": run.branch,
        "tag": false,
        "coverage": null,
        "allow_failure": false,
        "created_at": iso_ms(j.started),
        "started_at": iso_ms(j.started),
        "finished_at": j.finished.map(iso_ms),
        "erased_at": null,
        "duration": j.finished.map(|f| (f - j.started) as f64),
        "queued_duration": 1.0,
        "user": {"id": 17, "username": w.bot_login, "name": w.bot_login, "state": "active"},
        "commit": {"id": run.sha, "short_id": &run.sha[..8.min(run.sha.len())], "title": "Add CI"},
        "pipeline": {"id": run.id, "iid": run.id % 1000, "project_id": project_id, "ref": run.branch,
                     "sha": run.sha, "status": if run.passed() { "success" } else if run.finished() { "failed" } else { "running" },
                     "source": "push", "web_url": format!("{web}/-/pipelines/{}", run.id)},
        "web_url": format!("{web}/-/jobs/{}", j.id),
        "failure_reason": reason,
        "retried": j.retried,
        "archived": false,
        "tag_list": [],
        "runner": null,
        "artifacts": [],
    })
}

/// `pipelines/…` and `jobs/…` of project `idx` (the rest after `projects/:id`).
pub(super) fn gitlab(w: &mut World, r: &Req, idx: usize, rest: &[&str]) -> Resp {
    let full = w.repos[idx].full_name.clone();
    let num = |s: &str| s.parse::<u64>().ok();
    match (r.method.as_str(), rest) {
        ("GET", ["pipelines", pid, "jobs"]) => {
            let Some(i) = num(pid).and_then(|id| w.run_index(&full, id)) else {
                return gl_msg(404, "404 Not found");
            };
            const SCOPES: &[&str] = &[
                "created",
                "pending",
                "running",
                "failed",
                "success",
                "canceled",
                "skipped",
                "waiting_for_resource",
                "manual",
            ];
            let scopes: Vec<&str> = r
                .query
                .iter()
                .filter(|(k, _)| k == "scope" || k == "scope[]")
                .map(|(_, v)| v.as_str())
                .collect();
            if scopes.iter().any(|s| !SCOPES.contains(s)) {
                return Resp::json(400, json!({"error": "scope does not have a valid value"}));
            }
            let include_retried = match r.q("include_retried") {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Resp::json(400, json!({"error": "include_retried is invalid"})),
            };
            let run = &w.ci.runs[i];
            // Newest first, as GitLab lists them.
            let jobs: Vec<Value> = run
                .jobs
                .iter()
                .rev()
                .filter(|j| include_retried || !j.retried)
                .filter(|j| {
                    let status = match j.state {
                        JobState::Pending => "pending",
                        JobState::Passed => "success",
                        JobState::Failed => "failed",
                    };
                    scopes.is_empty() || scopes.contains(&status)
                })
                .map(|j| gl_job_json(w, run, j))
                .collect();
            gl_page(w, r, jobs)
        }
        ("GET", ["jobs", id, "trace"]) => {
            let job = num(id).and_then(|id| {
                w.ci.runs
                    .iter()
                    .filter(|run| run.repo.eq_ignore_ascii_case(&full))
                    .flat_map(|run| run.jobs.iter())
                    .find(|j| j.id == id)
            });
            match job {
                Some(j) => Resp {
                    status: 200,
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body: j.log.clone(),
                },
                None => gl_msg(404, "404 Not found"),
            }
        }
        ("POST", ["jobs", id, "retry"]) => {
            let Some(id) = num(id) else {
                return gl_msg(404, "404 Not found");
            };
            let Some((i, k)) = w.ci.runs.iter().enumerate().find_map(|(i, run)| {
                if !run.repo.eq_ignore_ascii_case(&full) {
                    return None;
                }
                run.jobs.iter().position(|j| j.id == id).map(|k| (i, k))
            }) else {
                return gl_msg(404, "404 Not found");
            };
            let old = w.ci.runs[i].jobs[k].clone();
            if old.state == JobState::Pending {
                // Only a finished job can be retried.
                return gl_msg(403, "403 Forbidden - Job is not retryable");
            }
            let new_id = w.ci_id();
            let now = w.tick();
            let job = CiJob {
                id: new_id,
                state: JobState::Pending,
                log: Vec::new(),
                retried: false,
                started: now,
                finished: None,
                ..old
            };
            let run = &mut w.ci.runs[i];
            run.jobs[k].retried = true;
            run.jobs.push(job.clone());
            let run = w.ci.runs[i].clone();
            Resp::json(201, gl_job_json(w, &run, &job))
        }
        _ => gl_msg(404, "404 Not Found"),
    }
}

fn gl_page(w: &World, r: &Req, items: Vec<Value>) -> Resp {
    let per_page = super::int_param(r.q("per_page"), 20, 100);
    let page = super::int_param(r.q("page"), 1, usize::MAX);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let mut resp = Resp::json(200, Value::Array(page_of(&items, page, per_page)))
        .header("x-page", page.to_string())
        .header("x-per-page", per_page.to_string())
        .header("x-total", total.to_string())
        .header("x-total-pages", pages.to_string())
        .header("x-next-page", next);
    if page < pages {
        resp = resp.header(
            "link",
            format!(
                "<{}>; rel=\"next\"",
                super::with_param(
                    &w.base_url,
                    &r.path,
                    &r.query,
                    "page",
                    &(page + 1).to_string()
                )
            ),
        );
    }
    resp
}

// --- Bitbucket ---------------------------------------------------------------------------

fn bb_err(status: u16, m: &str) -> Resp {
    Resp::json(status, json!({"type": "error", "error": {"message": m}}))
}

fn bb_state(run: &CiRun) -> Value {
    if !run.finished() {
        return json!({"name": "PENDING", "type": "pipeline_state_pending"});
    }
    let (name, ty) = if run.passed() {
        ("SUCCESSFUL", "pipeline_state_completed_successful")
    } else {
        ("FAILED", "pipeline_state_completed_failed")
    };
    json!({"name": "COMPLETED", "type": "pipeline_state_completed",
           "result": {"name": name, "type": ty}})
}

fn bb_pipeline_json(w: &World, run: &CiRun) -> Value {
    let repo = w.repo(&run.repo);
    json!({
        "type": "pipeline",
        "uuid": run.uuid,
        "build_number": run.id,
        "creator": {"type": "user", "nickname": w.bot_login, "display_name": w.bot_login},
        "repository": {"type": "repository", "full_name": run.repo,
                       "uuid": repo.map(|r| format!("{{00000000-0000-4000-8000-{:012x}}}", r.id))},
        "target": {
            "type": "pipeline_ref_target",
            "ref_type": "branch",
            "ref_name": run.branch,
            "commit": {"type": "commit", "hash": run.sha},
            "selector": {"type": "branches", "pattern": run.branch},
        },
        "trigger": {"name": if run.manual { "MANUAL" } else { "PUSH" },
                    "type": if run.manual { "pipeline_trigger_manual" } else { "pipeline_trigger_push" }},
        "state": bb_state(run),
        "created_on": iso_ms(run.created),
        "completed_on": run.finished().then(|| iso_ms(run.finished_at())),
        "build_seconds_used": 64,
        "links": {"self": {"href": format!("{}/2.0/repositories/{}/pipelines/{}", w.base_url, run.repo, super::pct_encode(&run.uuid))}},
    })
}

fn bb_step_json(run: &CiRun, j: &CiJob) -> Value {
    let state = match j.state {
        JobState::Pending => json!({"name": "PENDING", "type": "pipeline_step_state_pending"}),
        JobState::Passed => json!({"name": "COMPLETED", "type": "pipeline_step_state_completed",
            "result": {"name": "SUCCESSFUL", "type": "pipeline_step_state_completed_successful"}}),
        JobState::Failed => json!({"name": "COMPLETED", "type": "pipeline_step_state_completed",
            "result": {"name": "FAILED", "type": "pipeline_step_state_completed_failed"}}),
    };
    json!({
        "type": "pipeline_step",
        "uuid": j.uuid,
        "name": j.name,
        "pipeline": {"type": "pipeline", "uuid": run.uuid},
        "state": state,
        "started_on": iso_ms(j.started),
        "completed_on": j.finished.map(iso_ms),
        "duration_in_seconds": j.finished.map(|f| f - j.started),
        "image": {"name": "atlassian/default-image:4"},
        "setup_commands": [],
        "script_commands": [],
    })
}

/// `pipelines/…` of repository `idx` (the rest after `repositories/{ws}/{slug}`). A
/// trailing `/` is optional, as on Bitbucket.
pub(super) fn bitbucket(w: &mut World, r: &Req, idx: usize, rest: &[&str]) -> Resp {
    let full = w.repos[idx].full_name.clone();
    let rest: Vec<&str> = match rest.split_last() {
        Some((&"", init)) => init.to_vec(),
        _ => rest.to_vec(),
    };
    let find = |w: &World, uuid: &str| {
        w.ci.runs
            .iter()
            .position(|run| run.repo.eq_ignore_ascii_case(&full) && run.uuid == uuid)
    };
    match (r.method.as_str(), rest.as_slice()) {
        ("GET", ["pipelines"]) => {
            let mut runs: Vec<&CiRun> =
                w.ci.runs
                    .iter()
                    .filter(|run| run.repo.eq_ignore_ascii_case(&full))
                    .collect();
            match r.q("sort") {
                None | Some("created_on") => {}
                Some("-created_on") => runs.reverse(),
                Some(other) => {
                    return bb_err(400, &format!("Invalid sort field: {other}"));
                }
            }
            let values: Vec<Value> = runs.iter().map(|run| bb_pipeline_json(w, run)).collect();
            bb_page(w, r, values)
        }
        ("GET", ["pipelines", uuid]) => match find(w, uuid) {
            Some(i) => Resp::json(200, bb_pipeline_json(w, &w.ci.runs[i])),
            None => bb_err(404, "Pipeline not found"),
        },
        ("GET", ["pipelines", uuid, "steps"]) => {
            let Some(i) = find(w, uuid) else {
                return bb_err(404, "Pipeline not found");
            };
            let run = &w.ci.runs[i];
            let values: Vec<Value> = run.jobs.iter().map(|j| bb_step_json(run, j)).collect();
            bb_page(w, r, values)
        }
        ("GET", ["pipelines", uuid, "steps", step, "log"]) => {
            let Some(i) = find(w, uuid) else {
                return bb_err(404, "Pipeline not found");
            };
            match w.ci.runs[i].jobs.iter().find(|j| j.uuid == *step) {
                Some(j) if j.state != JobState::Pending => Resp {
                    status: 200,
                    headers: vec![("content-type".into(), "application/octet-stream".into())],
                    body: j.log.clone(),
                },
                Some(_) => bb_err(404, "Log not found"),
                None => bb_err(404, "Step not found"),
            }
        }
        ("POST", ["pipelines"]) => bb_run_pipeline(w, r, idx),
        _ => bb_err(404, "Resource not found"),
    }
}

fn bb_page(w: &World, r: &Req, values: Vec<Value>) -> Resp {
    let pagelen = super::int_param(r.q("pagelen"), 10, 100);
    let page = super::int_param(r.q("page"), 1, usize::MAX);
    let total = values.len();
    let mut v = json!({"pagelen": pagelen, "size": total, "page": page,
                       "values": page_of(&values, page, pagelen)});
    if page * pagelen < total {
        v["next"] = json!(super::with_param(
            &w.base_url,
            &r.path,
            &r.query,
            "page",
            &(page + 1).to_string()
        ));
    }
    Resp::json(200, v)
}

/// `POST …/pipelines/`: a new pipeline for a branch (and a commit of it).
fn bb_run_pipeline(w: &mut World, r: &Req, idx: usize) -> Resp {
    let body = match r.json() {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bb_err(400, "Bad request: expected an object"),
        Err(e) => return bb_err(400, &format!("Bad request: malformed JSON: {e}")),
    };
    let Some(target) = body.get("target").and_then(Value::as_object) else {
        return bb_err(400, "target: This field is required.");
    };
    if target.get("type").and_then(Value::as_str) != Some("pipeline_ref_target") {
        return bb_err(400, "target.type: unsupported target type");
    }
    if target.get("ref_type").and_then(Value::as_str) != Some("branch") {
        return bb_err(400, "target.ref_type: only branch targets are modelled");
    }
    let Some(branch) = target.get("ref_name").and_then(Value::as_str) else {
        return bb_err(400, "target.ref_name: This field is required.");
    };
    let repo = &w.repos[idx];
    let Some(tip) = repo.branches.get(branch).cloned() else {
        return bb_err(400, &format!("Branch \"{branch}\" not found"));
    };
    let sha = match target
        .get("commit")
        .and_then(|c| c.get("hash"))
        .and_then(Value::as_str)
    {
        Some(h) => match repo.resolve(h) {
            Some(full) if repo.is_ancestor(&full, &tip) => full,
            _ => return bb_err(400, &format!("Commit {h} not found on {branch}")),
        },
        None => tip,
    };
    let full = repo.full_name.clone();
    // The same steps as the last pipeline of that commit, pending.
    let steps: Vec<String> =
        w.ci.runs
            .iter()
            .rev()
            .find(|run| run.repo.eq_ignore_ascii_case(&full) && run.sha == sha)
            .map(|run| run.jobs.iter().map(|j| j.name.clone()).collect())
            .unwrap_or_default();
    let created = w.tick();
    let number = w.ci_runs(&full).len() as u64 + 1;
    let uuid = w.step_uuid();
    let mut run = CiRun {
        repo: full,
        id: number,
        uuid,
        branch: branch.to_owned(),
        sha,
        name: format!("Pipeline #{number} for {branch}"),
        attempt: 1,
        jobs: Vec::new(),
        created,
        manual: true,
    };
    for name in steps {
        let id = w.ci_id();
        let uuid = w.step_uuid();
        run.jobs.push(CiJob {
            id,
            uuid,
            name,
            attempt: 1,
            state: JobState::Pending,
            log: Vec::new(),
            retried: false,
            started: created,
            finished: None,
        });
    }
    let json = bb_pipeline_json(w, &run);
    w.ci.runs.push(run);
    Resp::json(201, json)
}
