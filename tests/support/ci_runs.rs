//! "Run CI" in end-to-end tests: a run recorded on the fake forge (`fake_forge/ci.rs`)
//! becomes the signed webhook delivery the forge would send for it, built from our own
//! payloads under `tests/data/webhooks/<forge>/` (shaped like the real ones). Logs come
//! from the classifier's real-format excerpts under `tests/data/logs/<forge>/`.
//!
//! Include after `harness` (`#[path = "support/ci_runs.rs"] mod ci_runs;`).
#![allow(dead_code)]

use actix_web::http::StatusCode;
use actix_web::{test, App};
use pipewright::forge::Forge;
use serde_json::{json, Value};

use crate::fake_forge::{CiRun, JobState};
use crate::harness::{bb_uuid, set, Harness, GROUP, WORKSPACE_UUID};

/// One of our webhook payloads (`tests/data/webhooks/<path>`).
pub fn our_payload(path: &str) -> Value {
    let file = format!("{}/tests/data/webhooks/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A real-format log excerpt (`tests/data/logs/<forge>/<class>/<file>`).
pub fn log(forge: Forge, class: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/logs/{forge}/{class}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The webhook event a finished run is announced by, per forge.
pub fn ci_event(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "workflow_run",
        Forge::Gitlab => "Pipeline Hook",
        Forge::Bitbucket => "repo:commit_status_updated",
    }
}

impl Harness {
    /// The delivery that announces `run` of repository `repo_id` / `name`. On GitLab,
    /// `mr` makes it a merge request pipeline (ref `refs/merge-requests/N/head`).
    pub fn ci_payload(&self, repo_id: u64, name: &str, run: &CiRun, mr: Option<u64>) -> Value {
        let full = self.full(name);
        let passed = run.passed();
        assert!(run.finished(), "the run has not finished: {run:?}");
        match self.forge {
            Forge::Github => {
                let mut p = our_payload(if passed {
                    "github/workflow_run.completed.success.json"
                } else {
                    "github/workflow_run.completed.failure.json"
                });
                set(&mut p, "/installation/id", json!(957387));
                for r in [
                    "/repository",
                    "/workflow_run/repository",
                    "/workflow_run/head_repository",
                ] {
                    set(&mut p, &format!("{r}/id"), json!(repo_id));
                    set(&mut p, &format!("{r}/name"), json!(name));
                    set(&mut p, &format!("{r}/full_name"), json!(full));
                }
                let html = format!("https://github.com/{full}/actions/runs/{}", run.id);
                set(&mut p, "/workflow_run/id", json!(run.id));
                set(&mut p, "/workflow_run/name", json!(run.name));
                set(&mut p, "/workflow_run/head_branch", json!(run.branch));
                set(&mut p, "/workflow_run/head_sha", json!(run.sha));
                set(&mut p, "/workflow_run/head_commit/id", json!(run.sha));
                set(&mut p, "/workflow_run/run_attempt", json!(run.attempt));
                set(&mut p, "/workflow_run/html_url", json!(html));
                set(
                    &mut p,
                    "/workflow_run/conclusion",
                    json!(if passed { "success" } else { "failure" }),
                );
                let previous = (run.attempt > 1).then(|| {
                    format!(
                        "https://api.github.com/repos/{full}/actions/runs/{}/attempts/{}",
                        run.id,
                        run.attempt - 1
                    )
                });
                set(
                    &mut p,
                    "/workflow_run/previous_attempt_url",
                    json!(previous),
                );
                p
            }
            Forge::Gitlab => {
                let mut p = our_payload(match (passed, mr) {
                    (true, _) => "gitlab/pipeline.success.json",
                    (false, Some(_)) => "gitlab/pipeline.merge_request.failed.json",
                    (false, None) => "gitlab/pipeline.failed.json",
                });
                set(&mut p, "/project/id", json!(repo_id));
                set(&mut p, "/project/name", json!(name));
                set(&mut p, "/project/path_with_namespace", json!(full));
                set(&mut p, "/project/namespace", json!(GROUP));
                set(&mut p, "/project/default_branch", json!("main"));
                set(&mut p, "/object_attributes/id", json!(run.id));
                set(&mut p, "/object_attributes/sha", json!(run.sha));
                set(&mut p, "/commit/id", json!(run.sha));
                set(
                    &mut p,
                    "/object_attributes/status",
                    json!(if passed { "success" } else { "failed" }),
                );
                set(
                    &mut p,
                    "/object_attributes/url",
                    json!(format!("https://gitlab.com/{full}/-/pipelines/{}", run.id)),
                );
                match mr {
                    Some(n) => {
                        set(
                            &mut p,
                            "/object_attributes/ref",
                            json!(format!("refs/merge-requests/{n}/head")),
                        );
                        set(
                            &mut p,
                            "/object_attributes/source",
                            json!("merge_request_event"),
                        );
                        p["merge_request"] = json!({
                            "id": 301776543, "iid": n, "title": "Add CI with GitLab CI",
                            "source_branch": run.branch, "source_project_id": repo_id,
                            "target_branch": "main", "target_project_id": repo_id,
                            "state": "opened", "merge_status": "can_be_merged",
                            "detailed_merge_status": "mergeable",
                            "url": format!("https://gitlab.com/{full}/-/merge_requests/{n}"),
                        });
                    }
                    None => {
                        set(&mut p, "/object_attributes/ref", json!(run.branch));
                        set(&mut p, "/merge_request", Value::Null);
                    }
                }
                // The hook lists the pipeline's latest jobs (retried ones are left out).
                let template = p["builds"][0].clone();
                let builds: Vec<Value> = run
                    .current_jobs()
                    .map(|j| {
                        let mut b = template.clone();
                        b["id"] = json!(j.id);
                        b["name"] = json!(j.name);
                        b["stage"] = json!("test");
                        b["allow_failure"] = json!(false);
                        let (status, reason) = match j.state {
                            JobState::Passed => ("success", Value::Null),
                            JobState::Failed => ("failed", json!("script_failure")),
                            JobState::Pending => ("pending", Value::Null),
                        };
                        b["status"] = json!(status);
                        b["failure_reason"] = reason;
                        b
                    })
                    .collect();
                p["builds"] = Value::Array(builds);
                p
            }
            Forge::Bitbucket => {
                let mut p = our_payload(if passed {
                    "bitbucket/repo_commit_status_updated.successful.json"
                } else {
                    "bitbucket/repo_commit_status_updated.failed.json"
                });
                set(&mut p, "/repository/uuid", json!(bb_uuid(repo_id)));
                set(&mut p, "/repository/full_name", json!(full));
                set(&mut p, "/repository/name", json!(name));
                p["repository"]["workspace"] = json!({"type": "workspace", "slug": GROUP,
                    "name": GROUP, "uuid": WORKSPACE_UUID});
                let st = &mut p["commit_status"];
                set(st, "/repository/uuid", json!(bb_uuid(repo_id)));
                set(st, "/repository/full_name", json!(full));
                set(
                    st,
                    "/state",
                    json!(if passed { "SUCCESSFUL" } else { "FAILED" }),
                );
                set(st, "/name", json!(run.name));
                set(st, "/refname", json!(run.branch));
                set(st, "/commit/hash", json!(run.sha));
                set(
                    st,
                    "/url",
                    json!(format!(
                        "https://bitbucket.org/{full}/addon/pipelines/home#!/results/{}",
                        run.id
                    )),
                );
                p
            }
        }
    }

    /// Delivers the webhook for `run`, signed, through the real intake. On GitLab it is
    /// a merge request pipeline of the repository's latest merge request (pipewright's
    /// `.gitlab-ci.yml` runs merge request pipelines, not branch pipelines, for its MR).
    pub async fn deliver_ci(&self, repo_id: u64, name: &str, run: &CiRun) -> StatusCode {
        let mr = match self.forge {
            Forge::Gitlab => self.prs(name).last().map(|p| p.number),
            _ => None,
        };
        let p = self.ci_payload(repo_id, name, run, mr);
        self.deliver(ci_event(self.forge), &p).await
    }

    /// `GET /metrics` through the real HTTP surface.
    pub async fn metrics_text(&self) -> String {
        let app = test::init_service(
            App::new().configure(pipewright::server::configure(self.state.clone())),
        )
        .await;
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        String::from_utf8(test::read_body(resp).await.to_vec()).expect("metrics are text")
    }
}
