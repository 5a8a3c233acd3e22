//! Every real webhook payload in `../shared/fixtures/webhooks/` parses into the right
//! typed events (or is deliberately ignored): one snapshot per fixture, plus assertions
//! on the cases that matter most, and hostile bodies that must fail cleanly.

#[path = "support/shared.rs"]
mod shared;

use pipewright::forge::event::{
    CiConclusion, CiRun, CommentAction, CommentTarget, EventKind, GitRef,
};
use pipewright::forge::payload::{is_known_event, parse};
use pipewright::forge::{Forge, ForgeEvent};

struct Fixture {
    file: String,
    forge: Forge,
    event: String,
    body: Vec<u8>,
}

fn fixtures() -> Option<Vec<Fixture>> {
    let dir = shared::shared_dir()?.join("fixtures/webhooks");
    let index: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    Some(
        index
            .iter()
            .map(|e| {
                let file = e["file"].as_str().unwrap().to_owned();
                let forge = match e["forge"].as_str().unwrap() {
                    "github" => Forge::Github,
                    "gitlab" => Forge::Gitlab,
                    f if f.starts_with("bitbucket") => Forge::Bitbucket,
                    other => panic!("unknown forge {other}"),
                };
                let headers = e["headers"].as_object().unwrap();
                let event = headers
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned();
                let body = std::fs::read(dir.join(&file)).unwrap();
                Fixture {
                    file,
                    forge,
                    event,
                    body,
                }
            })
            .collect(),
    )
}

fn parsed(fixtures: &[Fixture], file: &str) -> Vec<ForgeEvent> {
    let f = fixtures
        .iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("no fixture {file}"));
    parse(f.forge, &f.event, &f.body).unwrap()
}

#[test]
fn every_real_payload_parses_and_matches_its_snapshot() {
    let Some(fixtures) = fixtures() else {
        return;
    };
    assert!(
        fixtures.len() >= 80,
        "the shared set has shrunk: {}",
        fixtures.len()
    );
    for f in &fixtures {
        let result = if is_known_event(f.forge, &f.event) {
            parse(f.forge, &f.event, &f.body).unwrap_or_else(|e| panic!("{}: {e}", f.file))
        } else {
            Vec::new()
        };
        let name = f
            .file
            .replace('/', "__")
            .trim_end_matches(".json")
            .to_owned();
        insta::assert_json_snapshot!(name, result);
    }
}

#[test]
fn key_payloads_mean_what_they_should() {
    let Some(fx) = fixtures() else {
        return;
    };
    // GitHub: an ordinary push to the default branch.
    let e = parsed(&fx, "github/push.default-branch.app.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!("{e:?}")
    };
    assert!(p.to_default_branch && !p.created && !p.deleted && p.after.is_some());
    assert!(e[0].installation.is_some());
    // A tag push is not a branch push.
    let e = parsed(&fx, "github/push.tag-created.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!()
    };
    assert!(matches!(p.git_ref, GitRef::Tag(_)) && !p.to_default_branch);
    // Branch deletion has no `after`.
    let e = parsed(&fx, "github/push.feature-branch-deleted.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!()
    };
    assert!(p.deleted && p.after.is_none());
    // Comments: on a PR vs a plain issue; edits carry the old body.
    let e = parsed(&fx, "github/issue_comment.created.on-pull-request.json");
    let EventKind::Comment(c) = &e[0].kind else {
        panic!()
    };
    assert!(matches!(c.target, CommentTarget::PullRequest(_)));
    let e = parsed(&fx, "github/issue_comment.created.json");
    let EventKind::Comment(c) = &e[0].kind else {
        panic!()
    };
    assert!(matches!(c.target, CommentTarget::Issue(_)));
    let e = parsed(&fx, "github/issue_comment.edited.json");
    let EventKind::Comment(c) = &e[0].kind else {
        panic!()
    };
    assert!(matches!(
        c.action,
        CommentAction::Edited {
            previous_body: Some(_)
        }
    ));
    assert!(parsed(&fx, "github/ping.json").is_empty());
    assert!(parsed(&fx, "github/pull_request.opened.json").is_empty());
    let e = parsed(&fx, "github/pull_request.closed.merged.json");
    assert!(matches!(
        e[0].kind,
        EventKind::PullRequestClosed { merged: true, .. }
    ));
    let e = parsed(&fx, "github/installation_repositories.added.json");
    assert!(matches!(&e[0].kind, EventKind::ReposAdded { repos } if !repos.is_empty()));

    // GitLab: notes on MRs and issues; MR merge/close; system hooks.
    let e = parsed(&fx, "gitlab/note.merge_request.json");
    let EventKind::Comment(c) = &e[0].kind else {
        panic!()
    };
    assert!(matches!(c.target, CommentTarget::PullRequest(_)));
    assert!(parsed(&fx, "gitlab/note.commit.json").is_empty());
    let e = parsed(&fx, "gitlab/push.branch-deleted.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!()
    };
    assert!(p.deleted);
    let e = parsed(&fx, "gitlab/push.subgroup.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!()
    };
    assert_eq!(
        e[0].installation.as_ref().unwrap().id.as_str(),
        p.repo.full_name.split('/').next().unwrap()
    );
    assert!(matches!(
        parsed(&fx, "gitlab/merge_request.merge.json")[0].kind,
        EventKind::PullRequestClosed { merged: true, .. }
    ));
    assert!(matches!(
        parsed(&fx, "gitlab/merge_request.close.json")[0].kind,
        EventKind::PullRequestClosed { merged: false, .. }
    ));
    assert!(parsed(&fx, "gitlab/merge_request.open.json").is_empty());
    assert!(matches!(
        parsed(&fx, "gitlab/system.project_create.json")[0].kind,
        EventKind::RepoCreated { .. }
    ));
    assert!(matches!(
        parsed(&fx, "gitlab/system.project_destroy.json")[0].kind,
        EventKind::RepoDeleted { .. }
    ));
    assert!(matches!(
        parsed(&fx, "gitlab/system.push.json")[0].kind,
        EventKind::Push(_)
    ));

    // Bitbucket: one event per ref change.
    assert_eq!(
        parsed(&fx, "bitbucket/repo_push.multiple-changes.json").len(),
        3
    );
    let e = parsed(&fx, "bitbucket/repo_push.branch-created.json");
    let EventKind::Push(p) = &e[0].kind else {
        panic!()
    };
    assert!(p.created && p.before.is_none());
    assert!(matches!(
        parsed(&fx, "bitbucket/pullrequest_fulfilled.json")[0].kind,
        EventKind::PullRequestClosed { merged: true, .. }
    ));
    assert!(matches!(
        parsed(&fx, "bitbucket/pullrequest_rejected.json")[0].kind,
        EventKind::PullRequestClosed { merged: false, .. }
    ));
    let e = parsed(&fx, "bitbucket/pullrequest_comment_created.go-scm.json");
    let EventKind::Comment(c) = &e[0].kind else {
        panic!()
    };
    assert_eq!(c.body, "test comment");
}

/// Our own CI payloads (`tests/data/webhooks/index.json`): the shared set has none, so
/// these are shaped like the real ones (octokit/webhooks' `workflow_run` examples,
/// GitLab's "Pipeline events" documentation, a captured Bitbucket Pipelines
/// `repo:commit_status_updated`).
fn our_payloads() -> Vec<Fixture> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/webhooks");
    let index: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    index
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap().to_owned();
            let forge = match e["forge"].as_str().unwrap() {
                "github" => Forge::Github,
                "gitlab" => Forge::Gitlab,
                "bitbucket" => Forge::Bitbucket,
                other => panic!("unknown forge {other}"),
            };
            Fixture {
                body: std::fs::read(dir.join(&file)).unwrap(),
                event: e["event"].as_str().unwrap().to_owned(),
                file,
                forge,
            }
        })
        .collect()
}

fn ci_run(fixtures: &[Fixture], file: &str) -> Option<CiRun> {
    match parsed(fixtures, file).pop().map(|e| e.kind) {
        Some(EventKind::CiRunCompleted(run)) => Some(run),
        None => None,
        Some(other) => panic!("{file}: {other:?}"),
    }
}

#[test]
fn our_ci_payloads_parse_and_match_their_snapshots() {
    let fx = our_payloads();
    let listed: std::collections::BTreeSet<&str> = fx.iter().map(|f| f.file.as_str()).collect();
    for forge in ["github", "gitlab", "bitbucket"] {
        let dir = format!("{}/tests/data/webhooks/{forge}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = format!("{forge}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(
                listed.contains(name.as_str()),
                "{name} is not in index.json"
            );
        }
    }
    for f in &fx {
        assert!(is_known_event(f.forge, &f.event), "{}", f.file);
        let result =
            parse(f.forge, &f.event, &f.body).unwrap_or_else(|e| panic!("{}: {e}", f.file));
        let name = format!(
            "ours__{}",
            f.file.replace('/', "__").trim_end_matches(".json")
        );
        insta::assert_json_snapshot!(name, result);
    }

    // GitHub: the run, its attempt, the App installation.
    let run = ci_run(&fx, "github/workflow_run.completed.failure.json").unwrap();
    assert_eq!(run.conclusion, CiConclusion::Failure);
    assert_eq!(run.branch, "pipewright/ci");
    assert_eq!(
        (run.run_id.as_str(), run.key().as_str()),
        ("8901234567", "8901234567#1")
    );
    assert!(run.failed_jobs.is_empty(), "GitHub's payload names no jobs");
    let e = parsed(&fx, "github/workflow_run.completed.failure.json");
    assert_eq!(e[0].installation.as_ref().unwrap().id.as_str(), "957387");
    assert!(e[0].sender.as_ref().unwrap().is_bot);
    // A re-run's result is the same run, another attempt: not a redelivery.
    let again = ci_run(&fx, "github/workflow_run.completed.rerun-attempt-2.json").unwrap();
    assert_eq!(again.run_id, run.run_id);
    assert_ne!(again.key(), run.key());
    assert_eq!(
        ci_run(&fx, "github/workflow_run.completed.timed_out.json")
            .unwrap()
            .conclusion,
        CiConclusion::Failure
    );
    assert_eq!(
        ci_run(&fx, "github/workflow_run.completed.cancelled.json")
            .unwrap()
            .conclusion,
        CiConclusion::Cancelled
    );
    assert!(ci_run(&fx, "github/workflow_run.requested.json").is_none());
    assert!(ci_run(&fx, "github/workflow_run.in_progress.json").is_none());

    // GitLab: the failed builds are named (not those allowed to fail); a merge request
    // pipeline's branch is the merge request's source branch.
    let run = ci_run(&fx, "gitlab/pipeline.failed.json").unwrap();
    assert_eq!(run.branch, "pipewright/ci");
    let names: Vec<&str> = run.failed_jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["test"]);
    let mr = ci_run(&fx, "gitlab/pipeline.merge_request.failed.json").unwrap();
    assert_eq!(mr.branch, "pipewright/ci");
    let allowed = ci_run(&fx, "gitlab/pipeline.failed.allowed-failure.json").unwrap();
    let names: Vec<&str> = allowed
        .failed_jobs
        .iter()
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(names, ["test"], "a job allowed to fail is not a failure");
    // A retried job is a new job: the pipeline's result after it is a new outcome.
    let retried = ci_run(&fx, "gitlab/pipeline.success.after-retry.json").unwrap();
    assert_eq!(retried.run_id, run.run_id);
    assert_ne!(retried.key(), run.key());
    assert_eq!(
        ci_run(&fx, "gitlab/pipeline.canceled.json")
            .unwrap()
            .conclusion,
        CiConclusion::Cancelled
    );
    assert!(ci_run(&fx, "gitlab/pipeline.running.json").is_none());
    let e = parsed(&fx, "gitlab/pipeline.failed.json");
    assert_eq!(e[0].installation.as_ref().unwrap().id.as_str(), "acme");

    // Bitbucket: the Pipelines build number is the run; a re-run is a new build.
    let run = ci_run(&fx, "bitbucket/repo_commit_status_updated.failed.json").unwrap();
    assert_eq!((run.run_id.as_str(), run.key().as_str()), ("12", "12"));
    assert_eq!(run.branch, "pipewright/ci");
    assert_eq!(run.conclusion, CiConclusion::Failure);
    assert_eq!(
        ci_run(&fx, "bitbucket/repo_commit_status_updated.stopped.json")
            .unwrap()
            .conclusion,
        CiConclusion::Cancelled
    );
    assert!(ci_run(&fx, "bitbucket/repo_commit_status_updated.inprogress.json").is_none());
    let other = ci_run(&fx, "bitbucket/repo_commit_status_updated.external-ci.json").unwrap();
    assert_eq!(other.run_id, "JENKINS-orders-pr");
}

const EVENTS: &[(Forge, &str)] = &[
    (Forge::Github, "installation"),
    (Forge::Github, "installation_repositories"),
    (Forge::Github, "repository"),
    (Forge::Github, "push"),
    (Forge::Github, "issue_comment"),
    (Forge::Github, "pull_request_review_comment"),
    (Forge::Github, "pull_request"),
    (Forge::Gitlab, "Push Hook"),
    (Forge::Gitlab, "Tag Push Hook"),
    (Forge::Gitlab, "Note Hook"),
    (Forge::Gitlab, "Merge Request Hook"),
    (Forge::Gitlab, "System Hook"),
    (Forge::Gitlab, "Project Hook"),
    (Forge::Bitbucket, "repo:push"),
    (Forge::Bitbucket, "pullrequest:comment_created"),
    (Forge::Bitbucket, "pullrequest:comment_updated"),
    (Forge::Bitbucket, "issue:comment_created"),
    (Forge::Bitbucket, "pullrequest:fulfilled"),
    (Forge::Bitbucket, "pullrequest:rejected"),
    (Forge::Github, "workflow_run"),
    (Forge::Gitlab, "Pipeline Hook"),
    (Forge::Bitbucket, "repo:commit_status_updated"),
];

#[test]
fn hostile_bodies_fail_cleanly() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!("{{\"ref\": \"{}\"}}", "x".repeat(1 << 20));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{}".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"{\"action\": 5}".to_vec(),
        b"{\"ref\":\"refs/heads/main\"} trailing".to_vec(),
        deep.into_bytes(),
        huge.into_bytes(),
    ];
    for (forge, event) in EVENTS {
        assert!(is_known_event(*forge, event));
        for body in &bodies {
            let r = parse(*forge, event, body);
            // System and group hooks carry many event types: an object that names none
            // of ours is ignored, not an error.
            let multiplexed =
                matches!(*event, "System Hook" | "Project Hook") && body.starts_with(b"{");
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            match r {
                Err(_) => {}
                Ok(events) if multiplexed => assert!(events.is_empty(), "{forge} {event}: {shown}"),
                Ok(e) => panic!("{forge} {event} accepted {shown}: {e:?}"),
            }
        }
    }
    assert!(!is_known_event(Forge::Github, "star"));
    assert!(!is_known_event(Forge::Gitlab, "push"));
}

#[test]
fn errors_name_the_json_path() {
    let body = br#"{"ref":"refs/heads/main","before":"a","after":"b","repository":{"id":"not-a-number","full_name":"x/y"}}"#;
    let err = parse(Forge::Github, "push", body).unwrap_err().to_string();
    assert!(
        err.starts_with("push payload is malformed at `repository.id`: invalid type"),
        "{err}"
    );
    let err = parse(Forge::Github, "push", b"{").unwrap_err().to_string();
    assert!(err.starts_with("push payload is not valid JSON"), "{err}");
    let weird_ref = br#"{"ref":"refs/notes/x","before":"a","after":"b","repository":{"id":1,"full_name":"x/y"}}"#;
    let err = parse(Forge::Github, "push", weird_ref)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "push payload is invalid: ref `refs/notes/x` is neither a branch nor a tag"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), i in 0..EVENTS.len()) {
        let (forge, event) = EVENTS[i];
        let _ = parse(forge, event, &body);
    }

    #[test]
    fn arbitrary_json_objects_never_panic(s in "\\{(\"[a-z_]{1,12}\":(\"[a-z/0-9]{0,20}\"|[0-9]{1,5}|null|true|\\{\\}|\\[\\]),){0,8}\"x\":1\\}", i in 0..EVENTS.len()) {
        let (forge, event) = EVENTS[i];
        let _ = parse(forge, event, s.as_bytes());
    }
}
