//! The first CI run of pipewright's pull request, end to end on each forge: signed
//! deliveries announcing CI results go through the HTTP intake and the queue to the
//! worker, which reads the failed job's log from the fake forge (in the forge's real log
//! format), classifies it, and heals (a fast-forward commit on its branch), re-runs, or
//! explains — once per run, at most twice per proposal, never over people's commits.
//! Outcomes are recorded and exported as `pipewright_first_run_outcomes`.

#[path = "support/ci_runs.rs"]
mod ci_runs;
#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/shared.rs"]
mod shared;
#[path = "support/db.rs"]
mod testdb;

use actix_web::http::StatusCode;
use ci_runs::log;
use fake_forge::JobSpec;
use harness::*;
use pipewright::db::first_runs::{self, FirstRun};
use pipewright::db::installations;
use pipewright::forge::Forge;
use pipewright::queue::store::JobState;
use testdb::TestDb;

/// A Python project managed with uv, with ruff and pytest configured.
const PYPROJECT_UV: &str = "[project]\nname = \"orders\"\nversion = \"0.1.0\"\nrequires-python = \">=3.12\"\ndependencies = []\n\n[dependency-groups]\ndev = [\"pytest>=8\", \"ruff>=0.6\"]\n\n[tool.ruff]\nline-length = 100\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n";
const UV_LOCK: &str = "version = 1\nrequires-python = \">=3.12\"\n\n[[package]]\nname = \"orders\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n";

const REPO_ID: u64 = 301;
const NAME: &str = "orders";

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("pyproject.toml", PYPROJECT_UV),
        ("uv.lock", UV_LOCK),
        (
            "src/orders/__init__.py",
            "def total(xs):\n    return sum(xs)\n",
        ),
        (
            "tests/test_orders.py",
            "from orders import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n",
        ),
    ]
}

/// The log excerpts each scenario replays, per forge (all in that forge's format).
struct Logs {
    ruff_missing: Vec<u8>,
    ruff_findings: Vec<u8>,
    tests_failing: Vec<u8>,
    transient: Vec<u8>,
    /// Another missing tool pipewright knows how to install.
    other_missing: Vec<u8>,
}

fn logs(forge: Forge) -> Logs {
    let m = "missing-executable";
    match forge {
        Forge::Github => Logs {
            ruff_missing: log(forge, m, "ruff-not-installed.log"),
            ruff_findings: log(forge, "lint-findings", "ruff-check.log"),
            tests_failing: log(forge, "tests-failing", "pytest-time-zone.log"),
            transient: log(forge, "transient", "runner-shutdown.log"),
            other_missing: log(forge, m, "tox-after-uv-sync.log"),
        },
        Forge::Gitlab => Logs {
            ruff_missing: log(forge, m, "ruff-not-installed.log"),
            ruff_findings: log(forge, "lint-findings", "pre-commit-ruff.log"),
            tests_failing: log(forge, "tests-failing", "pytest-time-zone.log"),
            transient: log(forge, "transient", "pip-read-timeout.log"),
            other_missing: log(forge, m, "python-m-pytest.log"),
        },
        Forge::Bitbucket => Logs {
            ruff_missing: log(forge, m, "ruff-uv-run-spawn-failed.log"),
            ruff_findings: log(forge, "lint-findings", "ruff-check.log"),
            tests_failing: log(forge, "tests-failing", "pytest-assertion.log"),
            transient: log(forge, "transient", "uv-install-dns.log"),
            other_missing: log(forge, m, "tox-after-uv-sync.log"),
        },
    }
}

/// The file pipewright's proposal puts its CI in, per forge.
fn ci_file(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => ".github/workflows/ci.yml",
        Forge::Gitlab => ".gitlab-ci.yml",
        Forge::Bitbucket => "bitbucket-pipelines.yml",
    }
}

/// A harness with the repository installed and pipewright's pull request open; returns
/// the PR number and the commit pipewright wrote.
async fn with_open_pr(t: TestDb, forge: Forge) -> (Harness, u64, String) {
    let h = Harness::new(t, forge, 10).await;
    h.add_repo(REPO_ID, NAME, &files());
    h.install().await;
    h.drain().await;
    let pr = assert_bot_pr(&h, NAME).number;
    let head = h.fake.world().branch_head(&h.full(NAME), BRANCH).unwrap();
    (h, pr, head)
}

/// The bot's comments on the pull request, oldest first.
fn bot_comments(h: &Harness, pr: u64) -> Vec<String> {
    let bot = h.fake.world().bot_login.clone();
    h.fake
        .world()
        .comments_on(&h.full(NAME), pr, true)
        .into_iter()
        .filter(|c| c.author == bot)
        .map(|c| c.body)
        .collect()
}

async fn recorded(h: &Harness, pr: u64) -> Vec<FirstRun> {
    let repo = installations::get_repo(&h.t.db, h.forge, &repo_external_id(h))
        .await
        .unwrap()
        .expect("the repository is known");
    first_runs::for_pr(&h.t.db, repo.id, pr).await.unwrap()
}

fn repo_external_id(h: &Harness) -> String {
    match h.forge {
        Forge::Bitbucket => bb_uuid(REPO_ID),
        _ => REPO_ID.to_string(),
    }
}

fn outcomes(runs: &[FirstRun]) -> Vec<(String, String)> {
    runs.iter()
        .map(|r| (r.class.clone(), r.action.clone()))
        .collect()
}

fn pair(class: &str, action: &str) -> (String, String) {
    (class.to_owned(), action.to_owned())
}

async fn assert_no_dead_jobs(h: &Harness) {
    let dead: Vec<_> = all_jobs(&h.t.db)
        .await
        .into_iter()
        .filter(|j| j.state == JobState::Dead)
        // The installation payload also names the fixture's `Hello-World`, which this
        // fake forge does not have: its analysis fails, as it would on the forge.
        .filter(|j| !j.payload.contains("/Hello-World\""))
        .collect();
    assert!(dead.is_empty(), "{}: dead jobs {dead:?}", h.forge);
}

/// The metric line for `forge`, `class`, `action`.
fn metric(forge: Forge, class: &str, action: &str, n: u64) -> String {
    format!(
        "pipewright_first_run_outcomes{{forge=\"{forge}\",class=\"{class}\",action=\"{action}\"}} {n}"
    )
}

/// (a) A red first run with a missing tool → one healing commit that installs it, one
/// comment quoting the log and naming the change → the next run is green, `passed`.
/// (d) The failure delivered again (a new delivery id, as a retried hook sends) acts
/// once. (e) A run of a commit people added to the branch is ignored.
async fn heal_flow(forge: Forge, t: TestDb) {
    let (h, pr, head0) = with_open_pr(t, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    let before = h.fake.world().file(&full, BRANCH, ci_file(forge)).unwrap();
    assert!(bot_comments(&h, pr).is_empty());

    let run1 = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head0,
        &[
            JobSpec::failed("lint", &l.ruff_missing),
            JobSpec::passed("test", b"ok\n"),
        ],
    );
    let payload = h.ci_payload(REPO_ID, NAME, &run1, None);
    assert_eq!(
        h.deliver(ci_runs::ci_event(forge), &payload).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;

    // Exactly one healing commit: a fast-forward on pipewright's branch, by the bot.
    let commits = h.fake.world().commits(&full, BRANCH);
    let head1 = commits[0].sha.clone();
    assert_ne!(head1, head0, "{forge}: a fix was pushed");
    assert_eq!(
        commits[0].parents,
        std::slice::from_ref(&head0),
        "{forge}: a fast-forward"
    );
    assert_eq!(commits[1].sha, head0);
    let after = h.fake.world().file(&full, BRANCH, ci_file(forge)).unwrap();
    assert_ne!(before, after);
    let install = match forge {
        Forge::Github => "uv tool install ruff",
        _ => "pip install ruff",
    };
    assert!(
        after.contains(install) && !before.contains(install),
        "{forge}: the fix installs ruff:\n{after}"
    );
    // The pull request's state follows the new commit.
    assert_bot_pr(&h, NAME);
    // One comment: what failed (the log lines), what changed and why.
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 1, "{forge}: {comments:#?}");
    let c = &comments[0];
    assert!(
        c.contains("**missing-executable**") && c.contains("`ruff`"),
        "{c}"
    );
    let quoted = match forge {
        Forge::Bitbucket => "Failed to spawn: `ruff`",
        _ => "ruff: command not found",
    };
    assert!(c.contains(quoted), "{forge}: quotes the log:\n{c}");
    assert!(c.contains("install `ruff` before it is used"), "{c}");
    let (say, never) = forge_words(forge);
    assert!(c.contains(say) && !c.contains(never), "{forge}: {c}");
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("missing-executable", "commit")]
    );

    // (d) The same failure delivered again (a new delivery id): nothing more happens.
    h.fake.world().clear_requests();
    assert_eq!(
        h.deliver(ci_runs::ci_event(forge), &payload).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;
    assert_eq!(h.fake.world().branch_head(&full, BRANCH).unwrap(), head1);
    assert_eq!(bot_comments(&h, pr).len(), 1);
    assert_eq!(recorded(&h, pr).await.len(), 1);
    let writes: Vec<String> = h
        .fake
        .world()
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .filter(|r| !r.contains("access_tokens"))
        .collect();
    assert!(writes.is_empty(), "{forge}: a redelivery wrote {writes:?}");

    // The next run, of the fixed commit, is green: recorded as `passed`, nothing said.
    let run2 = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head1,
        &[
            JobSpec::passed("lint", b"All checks passed!\n"),
            JobSpec::passed("test", b"ok\n"),
        ],
    );
    assert_eq!(
        h.deliver_ci(REPO_ID, NAME, &run2).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;
    assert_eq!(h.fake.world().branch_head(&full, BRANCH).unwrap(), head1);
    assert_eq!(bot_comments(&h, pr).len(), 1);
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("missing-executable", "commit"), pair("passed", "none")]
    );

    // (e) A person commits to the branch; the run of their commit is theirs.
    let theirs = h.fake.world().push(
        &full,
        BRANCH,
        &[("src/orders/extra.py", Some("X = 1\n"))],
        "alice",
    );
    let run3 = h.fake.world().run_ci(
        &full,
        BRANCH,
        &theirs,
        &[JobSpec::failed("test", &l.tests_failing)],
    );
    assert_eq!(
        h.deliver_ci(REPO_ID, NAME, &run3).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;
    assert_eq!(h.fake.world().branch_head(&full, BRANCH).unwrap(), theirs);
    assert_eq!(bot_comments(&h, pr).len(), 1, "{forge}: nothing said");
    assert_eq!(recorded(&h, pr).await.len(), 2, "{forge}: nothing recorded");

    let text = h.metrics_text().await;
    for line in [
        metric(forge, "missing-executable", "commit", 1),
        metric(forge, "passed", "none", 1),
    ] {
        assert!(text.contains(&line), "{forge}: missing {line} in\n{text}");
    }
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

/// (b) The project's own tests fail: one comment that explains and changes nothing.
/// On GitLab the run is a merge request pipeline (`refs/merge-requests/N/head`).
async fn own_failure_flow(forge: Forge) {
    let (h, pr, head0) = with_open_pr(TestDb::sqlite().await, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    let run = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head0,
        &[
            JobSpec::passed("lint", b"All checks passed!\n"),
            JobSpec::failed("test", &l.tests_failing),
        ],
    );
    let mr = (forge == Forge::Gitlab).then_some(pr);
    let p = h.ci_payload(REPO_ID, NAME, &run, mr);
    assert_eq!(
        h.deliver(ci_runs::ci_event(forge), &p).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;
    assert_eq!(
        h.fake.world().branch_head(&full, BRANCH).unwrap(),
        head0,
        "{forge}: no commit"
    );
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 1, "{forge}: {comments:#?}");
    let c = &comments[0];
    assert!(c.contains("pipewright changed nothing"), "{c}");
    assert!(c.contains("**tests-failing**"), "{c}");
    assert!(c.contains("The job `test` failed"), "{c}");
    assert!(c.contains("own tests fail"), "{c}");
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("tests-failing", "explain")]
    );
    let text = h.metrics_text().await;
    let line = metric(forge, "tests-failing", "explain", 1);
    assert!(text.contains(&line), "missing {line} in\n{text}");

    // `explain` shows the recorded outcome of the pull request.
    let write = if forge == Forge::Gitlab {
        "30"
    } else {
        "write"
    };
    h.fake.world().set_permission(&full, "maria", write);
    let id = h
        .fake
        .world()
        .add_comment(&full, pr, "/pipewright explain", "maria");
    let (event, payload) = comment_payload(
        &h,
        REPO_ID,
        NAME,
        pr,
        true,
        &id,
        "/pipewright explain",
        "maria",
        false,
    )
    .unwrap();
    assert_eq!(h.deliver(event, &payload).await, StatusCode::ACCEPTED);
    h.drain().await;
    let comments = bot_comments(&h, pr);
    let answer = comments
        .iter()
        .find(|c| c.contains("What pipewright detected"))
        .unwrap_or_else(|| panic!("{forge}: explain answered: {comments:#?}"));
    let (say, _) = forge_words(forge);
    assert!(
        answer.contains(&format!("### The first CI runs of this {say}")),
        "{answer}"
    );
    assert!(answer.contains("**`tests-failing`**"), "{answer}");
    assert!(
        answer.contains("changed nothing: the project's own tests fail"),
        "{answer}"
    );
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

/// (c) At most two fixes per proposal, never the same fix twice: a fix that did not
/// help is not repeated; after two fixes a third failure is only explained.
async fn limits_flow(forge: Forge) {
    let (h, pr, head0) = with_open_pr(TestDb::sqlite().await, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    let tip = |h: &Harness| h.fake.world().branch_head(&h.full(NAME), BRANCH).unwrap();
    let fail = |log: &[u8]| vec![JobSpec::failed("lint", log)];

    // Fix 1: install ruff.
    let run = h
        .fake
        .world()
        .run_ci(&full, BRANCH, &head0, &fail(&l.ruff_missing));
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    let head1 = tip(&h);
    assert_ne!(head1, head0);

    // The same failure again on the fixed commit: that change was made; not repeated.
    let run = h
        .fake
        .world()
        .run_ci(&full, BRANCH, &head1, &fail(&l.ruff_missing));
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    assert_eq!(tip(&h), head1, "{forge}: the same fix is not made twice");
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 2);
    assert!(
        comments[1].contains("already made this change"),
        "{}",
        comments[1]
    );

    // Fix 2: ruff's findings in code the pull request did not touch → non-blocking.
    let run = h
        .fake
        .world()
        .run_ci(&full, BRANCH, &head1, &fail(&l.ruff_findings));
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    let head2 = tip(&h);
    assert_ne!(head2, head1, "{forge}: the second fix was pushed");
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 3);
    assert!(
        comments[2].contains("run `ruff` without failing the job"),
        "{}",
        comments[2]
    );

    // A third failure that a fix could address: no third fix.
    let run = h
        .fake
        .world()
        .run_ci(&full, BRANCH, &head2, &fail(&l.other_missing));
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    assert_eq!(tip(&h), head2, "{forge}: no third fix");
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 4);
    assert!(
        comments[3].contains("already changed this proposal 2 times"),
        "{}",
        comments[3]
    );
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [
            pair("missing-executable", "commit"),
            pair("missing-executable", "explain"),
            pair("lint-findings", "commit"),
            pair("missing-executable", "explain"),
        ]
    );
    let text = h.metrics_text().await;
    for line in [
        metric(forge, "missing-executable", "commit", 1),
        metric(forge, "missing-executable", "explain", 2),
        metric(forge, "lint-findings", "commit", 1),
    ] {
        assert!(text.contains(&line), "{forge}: missing {line} in\n{text}");
    }
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

/// (f) A transient failure is re-run once (GitHub re-runs the failed jobs, GitLab
/// retries the job, Bitbucket runs a new pipeline); a second one is only explained.
async fn transient_flow(forge: Forge) {
    let (h, pr, head0) = with_open_pr(TestDb::sqlite().await, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    let run = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head0,
        &[
            JobSpec::passed("lint", b"ok\n"),
            JobSpec::failed("test", &l.transient),
        ],
    );
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 1, "{forge}: {:?}", recorded(&h, pr).await);
    assert!(
        comments[0].contains("re-ran the failed jobs once")
            && comments[0].contains("**transient**"),
        "{}",
        comments[0]
    );
    let rerun_request = match forge {
        Forge::Github => format!(
            "POST /repos/{full}/actions/runs/{}/rerun-failed-jobs",
            run.id
        ),
        Forge::Gitlab => {
            let failed = run.jobs.iter().find(|j| j.name == "test").unwrap();
            format!("POST /api/v4/projects/{REPO_ID}/jobs/{}/retry", failed.id)
        }
        Forge::Bitbucket => format!("POST /2.0/repositories/{full}/pipelines/"),
    };
    assert!(
        h.fake.world().requests().contains(&rerun_request),
        "{forge}: {rerun_request} in {:?}",
        h.fake.world().requests()
    );
    assert_eq!(h.fake.world().branch_head(&full, BRANCH).unwrap(), head0);

    // The re-run fails the same way: no second re-run, an explanation.
    h.fake.world().clear_requests();
    let rerun = h
        .fake
        .world()
        .finish_rerun(&full, &[JobSpec::failed("test", &l.transient)])
        .expect("a re-run was started");
    assert_eq!(rerun.sha, head0);
    h.deliver_ci(REPO_ID, NAME, &rerun).await;
    h.drain().await;
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 2, "{forge}: {comments:#?}");
    assert!(
        comments[1].contains("happened again after a re-run"),
        "{}",
        comments[1]
    );
    assert!(
        !h.fake.world().requests().iter().any(|r| r.contains("rerun")
            || r.contains("retry")
            || r.ends_with("/pipelines/") && r.starts_with("POST")),
        "{forge}: no second re-run"
    );
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("transient", "rerun"), pair("transient", "explain")]
    );
    let text = h.metrics_text().await;
    for line in [
        metric(forge, "transient", "rerun", 1),
        metric(forge, "transient", "explain", 1),
    ] {
        assert!(text.contains(&line), "{forge}: missing {line} in\n{text}");
    }
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

/// A re-run that passes is recorded as `passed`: the re-run's result is a new event (a
/// new attempt, a new job, a new pipeline), not a redelivery of the first.
async fn transient_then_green_flow(forge: Forge) {
    let (h, pr, head0) = with_open_pr(TestDb::sqlite().await, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    let run = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head0,
        &[JobSpec::failed("test", &l.transient)],
    );
    h.deliver_ci(REPO_ID, NAME, &run).await;
    h.drain().await;
    let rerun = h
        .fake
        .world()
        .finish_rerun(&full, &[JobSpec::passed("test", b"12 passed\n")])
        .expect("a re-run was started");
    assert!(rerun.passed());
    h.deliver_ci(REPO_ID, NAME, &rerun).await;
    h.drain().await;
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("transient", "rerun"), pair("passed", "none")]
    );
    assert_eq!(bot_comments(&h, pr).len(), 1);
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

#[actix_web::test]
async fn github_first_run_healed_to_green() {
    if !have_fixtures() {
        return;
    }
    for t in TestDb::all().await {
        heal_flow(Forge::Github, t).await;
    }
}

#[actix_web::test]
async fn gitlab_first_run_healed_to_green() {
    if !have_fixtures() {
        return;
    }
    heal_flow(Forge::Gitlab, TestDb::sqlite().await).await;
}

#[actix_web::test]
async fn bitbucket_first_run_healed_to_green() {
    if !have_fixtures() {
        return;
    }
    heal_flow(Forge::Bitbucket, TestDb::sqlite().await).await;
}

#[actix_web::test]
async fn the_projects_own_failure_is_explained_on_every_forge() {
    if !have_fixtures() {
        return;
    }
    for forge in [Forge::Github, Forge::Gitlab, Forge::Bitbucket] {
        own_failure_flow(forge).await;
    }
}

#[actix_web::test]
async fn two_fixes_at_most_and_never_the_same_twice_on_every_forge() {
    if !have_fixtures() {
        return;
    }
    for forge in [Forge::Github, Forge::Gitlab, Forge::Bitbucket] {
        limits_flow(forge).await;
    }
}

#[actix_web::test]
async fn a_transient_failure_is_rerun_once_on_every_forge() {
    if !have_fixtures() {
        return;
    }
    for forge in [Forge::Github, Forge::Gitlab, Forge::Bitbucket] {
        transient_flow(forge).await;
        transient_then_green_flow(forge).await;
    }
}

/// A fix decided while people's commits sit on pipewright's branch is not pushed: the
/// outcome is recorded as `blocked` (not a fix: it does not count towards the two), and
/// the one comment says what pipewright would have changed.
async fn blocked_flow(forge: Forge, t: TestDb) {
    let (h, pr, head0) = with_open_pr(t, forge).await;
    let full = h.full(NAME);
    let l = logs(forge);
    // Alice pushes before pipewright hears about the failed run of its own commit.
    let theirs = h.fake.world().push(
        &full,
        BRANCH,
        &[("src/orders/extra.py", Some("X = 1\n"))],
        "alice",
    );
    let run = h.fake.world().run_ci(
        &full,
        BRANCH,
        &head0,
        &[JobSpec::failed("lint", &l.ruff_missing)],
    );
    assert_eq!(
        h.deliver_ci(REPO_ID, NAME, &run).await,
        StatusCode::ACCEPTED
    );
    h.drain().await;
    assert_eq!(
        h.fake.world().branch_head(&full, BRANCH).unwrap(),
        theirs,
        "{forge}: people's commit left alone"
    );
    let comments = bot_comments(&h, pr);
    assert_eq!(comments.len(), 1, "{forge}: {comments:#?}");
    assert!(
        comments[0].contains("pipewright would install `ruff` before it is used, but did not push"),
        "{forge}: {}",
        comments[0]
    );
    assert_eq!(
        outcomes(&recorded(&h, pr).await),
        [pair("missing-executable", "blocked")]
    );
    let text = h.metrics_text().await;
    let line = metric(forge, "missing-executable", "blocked", 1);
    assert!(text.contains(&line), "{forge}: missing {line} in\n{text}");
    assert!(!text.contains(&metric(forge, "missing-executable", "commit", 1)));
    assert_no_dead_jobs(&h).await;
    h.fake.stop();
}

#[actix_web::test]
async fn a_fix_over_peoples_commits_is_blocked_on_every_forge() {
    if !have_fixtures() {
        return;
    }
    for t in TestDb::all().await {
        blocked_flow(Forge::Github, t).await;
    }
    for forge in [Forge::Gitlab, Forge::Bitbucket] {
        blocked_flow(forge, TestDb::sqlite().await).await;
    }
}
