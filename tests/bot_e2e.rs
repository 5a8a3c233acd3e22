//! End to end, for each forge: a signed real webhook payload goes through the HTTP
//! intake, the queue and the workers to the forge's (fake, stateful) API, and the right
//! pull request comes out. The payloads are the real ones from
//! `../shared/fixtures/webhooks/`, with ids and names pointed at the fake's repositories.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use actix_web::http::StatusCode;
use fake_forge::RepoSpec;
use harness::*;
use pipewright::bot::pr_body;
use pipewright::db::installations;
use pipewright::forge::Forge;
use pipewright::queue::store::{JobRow, JobState};
use serde_json::json;
use testdb::TestDb;

async fn install_flow(forge: Forge, t: TestDb) {
    let h = Harness::new(t, forge, 2).await;
    let hello_id = if forge == Forge::Github {
        186853002
    } else {
        101
    };
    h.add_repo(
        hello_id,
        "Hello-World",
        &[("Cargo.toml", CARGO), ("src/main.rs", "fn main() {}\n")],
    );
    h.add_repo(102, "web", &[("package.json", PACKAGE_JSON)]);
    h.add_repo(103, "svc", &[("pyproject.toml", PYPROJECT)]);
    // CI that runs on this forge: its own (a `.github/workflows/` on GitLab or Bitbucket
    // would run nowhere, and gets a proposal: `tests/forge_fixes.rs`).
    let own_ci = match forge {
        Forge::Github => (".github/workflows/ci.yml", WORKFLOW),
        Forge::Gitlab => (".gitlab-ci.yml", "test:\n  script: go test ./...\n"),
        Forge::Bitbucket => (
            "bitbucket-pipelines.yml",
            "pipelines:\n  default:\n    - step:\n        script:\n          - go test ./...\n",
        ),
    };
    h.add_repo(
        104,
        "has-ci",
        &[("go.mod", "module x\n\ngo 1.22\n"), own_ci],
    );
    let mut archived = RepoSpec::new(105, &h.full("old"), h.tenant()).file("go.mod", "module y\n");
    archived.archived = true;
    // Bitbucket Cloud has no archived repositories: the fork flag skips it there.
    archived.fork = true;
    h.fake.world().add_repo(archived);
    let names = ["Hello-World", "web", "svc", "has-ci", "old"];

    h.install().await;
    h.drain().await;
    // Budget of 2 per hour: two PRs now, the third analysis waits, silently.
    assert_eq!(h.all_prs(&names), 2, "{forge}: PRs within the budget");
    assert!(h.prs("has-ci").is_empty() && h.prs("old").is_empty());
    let waiting: Vec<JobRow> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
        .collect();
    assert_eq!(waiting.len(), 1, "{forge}: one analysis deferred");
    assert!(waiting[0].run_at > h.clock.now() + 50 * 60 * 1000);
    assert!(waiting[0]
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("pull requests in the last hour"));

    h.clock.advance(61 * 60 * 1000);
    h.drain().await;
    assert_eq!(h.all_prs(&names), 3, "{forge}: the rest after an hour");
    for n in ["Hello-World", "web", "svc"] {
        let pr = assert_bot_pr(&h, n);
        // One commit on top of the default branch carries every file.
        let commits = h.fake.world().commits(&h.full(n), BRANCH);
        let main = h.fake.world().branch_head(&h.full(n), "main").unwrap();
        assert_eq!(
            commits[1].sha, main,
            "{forge}: {n} branch is one commit on main"
        );
        assert!(pr.title.starts_with("Add CI with"), "{}", pr.title);
    }
    let ci_path = match forge {
        Forge::Github => ".github/workflows/ci.yml",
        Forge::Gitlab => ".gitlab-ci.yml",
        Forge::Bitbucket => "bitbucket-pipelines.yml",
    };
    let ci = h
        .fake
        .world()
        .file(&h.full("Hello-World"), BRANCH, ci_path)
        .expect("CI file");
    assert!(ci.contains("cargo"), "{forge}: {ci}");
    // Nothing failed on the way.
    let dead: Vec<JobRow> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.state == JobState::Dead)
        .collect();
    assert!(dead.is_empty(), "{forge}: dead jobs {dead:?}");

    // Redelivering the install changes nothing: no second PR, no new commit.
    let tips: Vec<String> = ["Hello-World", "web", "svc"]
        .iter()
        .map(|n| h.fake.world().branch_head(&h.full(n), BRANCH).unwrap())
        .collect();
    h.install().await;
    h.clock.advance(1000);
    h.drain().await;
    assert_eq!(h.all_prs(&names), 3);
    for (n, tip) in ["Hello-World", "web", "svc"].iter().zip(&tips) {
        assert_eq!(
            &h.fake.world().branch_head(&h.full(n), BRANCH).unwrap(),
            tip
        );
    }

    // A manifest change on main updates the open PR in place (a new commit on its branch).
    let before = h.prs("web")[0].clone();
    let old_tip = h.fake.world().branch_head(&h.full("web"), BRANCH).unwrap();
    h.push_main(
        102,
        "web",
        &[("Dockerfile", Some("FROM node:22\nCOPY . .\n"))],
    )
    .await;
    h.drain().await;
    let after = assert_bot_pr(&h, "web");
    assert_eq!(after.number, before.number);
    assert_ne!(
        pr_body::parse_state(&after.body).unwrap().hash,
        pr_body::parse_state(&before.body).unwrap().hash,
        "{forge}: proposal changed"
    );
    // A fast-forward on top of the previous bot commit, never a rewrite.
    let commits = h.fake.world().commits(&h.full("web"), BRANCH);
    assert_eq!(commits[1].sha, old_tip, "{forge}: update is a fast-forward");
    // The branch is not rebased (no force-push): main's Dockerfile is not on it, but the
    // proposal now builds it.
    let ci = h
        .fake
        .world()
        .file(&h.full("web"), BRANCH, ci_path)
        .unwrap();
    assert!(ci.to_lowercase().contains("docker"), "{forge}: {ci}");

    // A person commits to the bot's branch: the next change is not pushed over it.
    let human = h.fake.world().push(
        &h.full("svc"),
        BRANCH,
        &[("notes.txt", Some("mine\n"))],
        "alice",
    );
    h.push_main(103, "svc", &[("Dockerfile", Some("FROM python:3.12\n"))])
        .await;
    h.drain().await;
    assert_eq!(
        h.fake.world().branch_head(&h.full("svc"), BRANCH).unwrap(),
        human
    );
    let svc_pr = h.prs("svc")[0].number;
    let comments = h.fake.world().comments(&h.full("svc"), svc_pr);
    assert_eq!(comments.len(), 1, "{forge}: one comment instead of a push");
    assert!(
        comments[0].body.contains("will not"),
        "{}",
        comments[0].body
    );
    let (say, never) = forge_words(forge);
    assert!(
        comments[0].body.contains(say) && !comments[0].body.contains(never),
        "{forge}: {}",
        comments[0].body
    );
    // And it says so once, not on every push.
    h.push_main(103, "svc", &[("Makefile", Some("test:\n\tpytest\n"))])
        .await;
    h.drain().await;
    assert_eq!(h.fake.world().comments(&h.full("svc"), svc_pr).len(), 1);

    // A person closes the PR: the same proposal is never reopened.
    let hello_pr = h.prs("Hello-World")[0].number;
    h.close_pr(hello_id, "Hello-World", hello_pr).await;
    h.drain().await;
    h.push_main(
        hello_id,
        "Hello-World",
        &[
            ("README.md", Some("# changed\n")),
            ("Cargo.toml", Some(CARGO)),
        ],
    )
    .await;
    h.drain().await;
    let prs = h.prs("Hello-World");
    assert_eq!(prs.len(), 1, "{forge}: not reopened");
    assert_ne!(prs[0].state, fake_forge::PrState::Open);
    h.fake.stop();
}

#[actix_web::test]
async fn github_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    for t in TestDb::all().await {
        install_flow(Forge::Github, t).await;
    }
}

#[actix_web::test]
async fn gitlab_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    install_flow(Forge::Gitlab, TestDb::sqlite().await).await;
}

#[actix_web::test]
async fn bitbucket_install_budget_updates_and_people() {
    if !have_fixtures() {
        return;
    }
    install_flow(Forge::Bitbucket, TestDb::sqlite().await).await;
}

/// First push to a new (empty) repository → PR; a rate limit defers the job and it
/// completes later; a failure after the branch was written (a crashed attempt) still
/// ends with exactly one PR; the bot's own events are ignored.
async fn faults_flow(forge: Forge) {
    let h = Harness::new(TestDb::sqlite().await, forge, 50).await;
    h.fake
        .world()
        .add_repo(RepoSpec::new(201, &h.full("fresh"), h.tenant()).empty());
    h.add_repo(202, "limited", &[("go.mod", "module l\n\ngo 1.22\n")]);
    let (tree_path, pr_path) = match forge {
        Forge::Github => ("/git/trees/", "/pulls"),
        Forge::Gitlab => ("/repository/tree", "/merge_requests"),
        Forge::Bitbucket => ("/src/", "/pullrequests"),
    };
    // Rate limit on the tree listing: deferred to the reset, not failed; then completes.
    let now_s = h.clock.now() / 1000;
    h.fake
        .world()
        .rate_limit_next("GET", tree_path, now_s + 600, now_s);
    // And the PR creation fails once after the branch is written (a crashed attempt).
    h.fake.world().fail_next(
        "POST",
        pr_path,
        502,
        vec![],
        "{\"message\":\"Server Error\"}",
    );
    h.install().await;
    h.drain().await;
    // The empty repository waits for its first push.
    assert!(h.prs("fresh").is_empty());
    let job = all_jobs(&h.t.db)
        .await
        .into_iter()
        .find(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
        .expect("the analysis is deferred");
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("rate limit"),
        "{job:?}"
    );
    assert_eq!(job.attempts, 0, "a deferral does not count as an attempt");
    assert!(h.prs("limited").is_empty());
    h.clock.advance(601 * 1000);
    h.drain().await;
    // The 502 made it retry (backoff), the branch write is redone, one PR in the end.
    assert!(h.prs("limited").is_empty());
    h.clock.advance(10 * 60 * 1000);
    h.drain().await;
    assert_bot_pr(&h, "limited");
    let commits = h.fake.world().commits(&h.full("limited"), BRANCH);
    let main = h
        .fake
        .world()
        .branch_head(&h.full("limited"), "main")
        .unwrap();
    assert_eq!(
        commits[1].sha, main,
        "{forge}: the retried write left one commit"
    );

    // First push to the new repository → PR.
    let full = h.full("fresh");
    h.fake.world().push(
        &full,
        "main",
        &[("go.mod", Some("module f\n\ngo 1.22\n"))],
        "alice",
    );
    let after = h.fake.world().branch_head(&full, "main").unwrap();
    let zero = "0000000000000000000000000000000000000000";
    if let Some(body) = h.push_payload(201, "fresh", "main", zero, &after, &["go.mod"], "alice") {
        let event = match forge {
            Forge::Github => "push",
            Forge::Gitlab => "Push Hook",
            Forge::Bitbucket => "repo:push",
        };
        assert_eq!(h.deliver(event, &body).await, StatusCode::ACCEPTED);
    }
    h.drain().await;
    assert_bot_pr(&h, "fresh");

    // The bot's own comment and its own push to its branch queue nothing.
    let jobs_before = all_jobs(&h.t.db).await.len();
    let pr = h.prs("limited")[0].number;
    let bot = h.fake.world().bot_login.clone();
    let tip = h
        .fake
        .world()
        .branch_head(&h.full("limited"), BRANCH)
        .unwrap();
    if let Some(body) = h.push_payload(202, "limited", BRANCH, &tip, &tip, &["x"], &bot) {
        let event = match forge {
            Forge::Github => "push",
            Forge::Gitlab => "Push Hook",
            Forge::Bitbucket => "repo:push",
        };
        assert_eq!(h.deliver(event, &body).await, StatusCode::ACCEPTED);
    }
    if forge == Forge::Github {
        if let Some(mut c) = fixture("github/issue_comment.created.on-pull-request.app.json") {
            set(&mut c, "/installation/id", json!(957387));
            set(&mut c, "/repository/id", json!(202));
            set(&mut c, "/repository/full_name", json!(h.full("limited")));
            set(&mut c, "/issue/number", json!(pr));
            set(&mut c, "/comment/body", json!("/pipewright help"));
            set(&mut c, "/comment/user/login", json!("pipewright[bot]"));
            set(&mut c, "/comment/user/type", json!("Bot"));
            set(&mut c, "/sender/login", json!("pipewright[bot]"));
            set(&mut c, "/sender/type", json!("Bot"));
            assert_eq!(h.deliver("issue_comment", &c).await, StatusCode::ACCEPTED);
        }
    }
    h.drain().await;
    let jobs_after = all_jobs(&h.t.db).await;
    let follow_ups: Vec<&JobRow> = jobs_after[..jobs_after.len() - jobs_before]
        .iter()
        .filter(|j| j.kind != "handle_event")
        .collect();
    assert!(
        follow_ups.is_empty(),
        "{forge}: own events queued {follow_ups:?}"
    );
    h.fake.stop();
}

#[actix_web::test]
async fn github_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Github).await;
    }
}

#[actix_web::test]
async fn gitlab_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Gitlab).await;
    }
}

#[actix_web::test]
async fn bitbucket_first_push_rate_limits_crashes_and_own_events() {
    if have_fixtures() {
        faults_flow(Forge::Bitbucket).await;
    }
}

/// Without `workflows: write`, GitHub refuses the commit: the job ends with a clear
/// outcome, no PR, no retry loop.
#[actix_web::test]
async fn github_without_workflows_permission_stops_cleanly() {
    if !have_fixtures() {
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Github, 10).await;
    h.fake
        .world()
        .set_workflows_permission(GITHUB_INSTALLATION, false);
    h.add_repo(186853002, "Hello-World", &[("Cargo.toml", CARGO)]);
    h.install().await;
    h.drain().await;
    assert!(h.prs("Hello-World").is_empty());
    let jobs = all_jobs(&h.t.db).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    let repo = installations::get_repo(&h.t.db, Forge::Github, "186853002")
        .await
        .unwrap()
        .unwrap();
    let st = pipewright::db::pull_requests::repo_state(&h.t.db, repo.id)
        .await
        .unwrap();
    assert!(st.last_outcome.unwrap().contains("workflows: write"));
    let main = h.fake.world().branch_head(&h.full("Hello-World"), "main");
    assert_eq!(
        st.last_analyzed_sha, main,
        "the analysed commit is recorded"
    );
    h.fake.stop();
}

/// `serve --dry-run`: everything runs against the real (here: fake) forge's read API, but
/// the would-be branch, PR and comments land in the outbox; the forge is not written to.
#[actix_web::test]
async fn dry_run_records_the_pull_request_in_the_outbox() {
    if !have_fixtures() {
        return;
    }
    let mut h = Harness::new(TestDb::sqlite().await, Forge::Github, 10).await;
    let outbox = tempfile::tempdir().unwrap();
    h.ctx.outbox = Some(outbox.path().to_owned());
    h.add_repo(186853002, "Hello-World", &[("Cargo.toml", CARGO)]);
    h.install().await;
    h.drain().await;
    assert!(h.prs("Hello-World").is_empty());
    assert!(h
        .fake
        .world()
        .branch_head(&h.full("Hello-World"), BRANCH)
        .is_none());
    let dir = outbox.path().join("github/Codertocat_Hello-World");
    let pr = std::fs::read_to_string(dir.join("pull-request.md")).unwrap();
    assert!(pr.starts_with("# Add CI with GitHub Actions"), "{pr}");
    assert!(pr.contains(pr_body::BEGIN));
    let ci = std::fs::read_to_string(dir.join("files/.github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("cargo"));
    // Every request the dry run made was a read.
    let writes: Vec<String> = h
        .fake
        .world()
        .requests()
        .into_iter()
        .filter(|r| {
            !r.starts_with("GET ") && !r.contains("/access_tokens") && !r.contains("/graphql")
        })
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    h.fake.stop();
}

/// Uninstalling stops the bot: queued work for the installation is dropped.
#[actix_web::test]
async fn uninstall_drops_queued_work() {
    if !have_fixtures() {
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Github, 1).await;
    for i in 0..3 {
        h.add_repo(300 + i, &format!("r{i}"), &[("Cargo.toml", CARGO)]);
    }
    h.install().await;
    h.drain().await;
    let waiting = |jobs: &[JobRow]| {
        jobs.iter()
            .filter(|j| j.kind == "analyze_repo" && j.state == JobState::Queued)
            .count()
    };
    assert_eq!(
        waiting(&all_jobs(&h.t.db).await),
        2,
        "two wait for the budget"
    );
    let Some(mut p) = fixture("github/installation.deleted.json") else {
        return;
    };
    set(&mut p, "/installation/id", json!(957387));
    assert_eq!(h.deliver("installation", &p).await, StatusCode::ACCEPTED);
    h.drain().await;
    assert_eq!(waiting(&all_jobs(&h.t.db).await), 0);
    let inst = installations::get_installation(&h.t.db, Forge::Github, GITHUB_INSTALLATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, "deleted");
    h.fake.stop();
}

/// GitLab and Bitbucket act only inside the allowlisted group / workspace: a delivery
/// from elsewhere (a token that can see more, a hook someone else pointed here) queues
/// nothing.
#[actix_web::test]
async fn events_outside_the_allowlist_are_ignored() {
    if !have_fixtures() {
        return;
    }
    for forge in [Forge::Gitlab, Forge::Bitbucket] {
        let h = Harness::new(TestDb::sqlite().await, forge, 10).await;
        let mut p = h
            .push_payload(
                7,
                "tool",
                "main",
                "1111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222",
                &["Cargo.toml"],
                "mallory",
            )
            .unwrap();
        let event = match forge {
            Forge::Gitlab => {
                p["project"]["path_with_namespace"] = json!("elsewhere/tool");
                "Push Hook"
            }
            _ => {
                p["repository"]["full_name"] = json!("elsewhere/tool");
                p["repository"]["workspace"] = json!({"type": "workspace", "slug": "elsewhere",
                    "name": "elsewhere", "uuid": "{00000000-0000-4000-8000-0000000e15e0}"});
                "repo:push"
            }
        };
        assert_eq!(h.deliver(event, &p).await, StatusCode::ACCEPTED);
        h.drain().await;
        let jobs = all_jobs(&h.t.db).await;
        assert!(
            jobs.iter().all(|j| j.kind == "handle_event"),
            "{forge}: {jobs:?}"
        );
        assert!(h.fake.world().requests().is_empty(), "{forge}: no API call");
        let known = installations::list_installations(&h.t.db, forge)
            .await
            .unwrap();
        assert!(known.is_empty(), "{forge}: nothing recorded for {known:?}");
        h.fake.stop();
    }
}

/// Every forge API call is counted and exported: by operation and outcome, and per job.
#[actix_web::test]
async fn api_calls_are_exported_as_metrics() {
    if !have_fixtures() {
        return;
    }
    let h = Harness::new(TestDb::sqlite().await, Forge::Github, 10).await;
    h.add_repo(186853002, "Hello-World", &[("Cargo.toml", CARGO)]);
    h.install().await;
    h.drain().await;
    let metrics = pipewright::metrics::Metrics::new();
    metrics.attach_api_calls(h.ctx.forges.totals());
    let text = metrics.render(&h.t.db, h.clock.now()).await.unwrap();
    for line in [
        "pipewright_forge_api_calls_total{forge=\"github\",operation=\"get tree\",outcome=\"ok\"} 1",
        "pipewright_forge_api_calls_total{forge=\"github\",operation=\"open pull request\",outcome=\"ok\"} 1",
        "pipewright_forge_api_jobs_total{forge=\"github\",kind=\"analyze_repo\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    let calls: u64 = text
        .lines()
        .find(|l| {
            l.starts_with(
                "pipewright_forge_api_job_calls_total{forge=\"github\",kind=\"analyze_repo\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((5..=12).contains(&calls), "{calls} calls for one analysis");
    h.fake.stop();
}
