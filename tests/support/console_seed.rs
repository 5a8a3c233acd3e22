//! Console test data: installations, repositories with snapshots and pull requests in
//! every outcome class, and jobs in every state, written straight to the database (the
//! large sets in a few multi-row statements, so 10,000 repositories and 100,000 jobs take
//! seconds). Shared by `tests/console*.rs` and `benches/console.rs`.
#![allow(dead_code)]

use pipewright::db::console::{self, Snapshot};
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::db::pull_requests;
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, RepoId};
use pipewright::Db;

/// The outcome class seeded for repository `i` (a fixed, known mix).
pub fn outcome_for(i: usize) -> Option<&'static str> {
    match i % 10 {
        0..=2 => Some("pr_open"),
        3 => Some("merged"),
        4 => Some("closed"),
        5 => Some("ignored"),
        6 | 7 => Some("skipped"),
        8 => Some("failed"),
        _ => None,
    }
}

/// Stack summary seeded for repository `i`.
pub fn stack_for(i: usize) -> &'static str {
    match i % 4 {
        0 => "rust/cargo",
        1 => "typescript/pnpm docker",
        2 => "python/uv",
        _ => "go/go",
    }
}

/// Name of repository `i` of an account.
pub fn repo_name(account: &str, i: usize) -> String {
    format!("{account}/service-{i:05}")
}

async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.expect("seed statement");
        }
        Db::Postgres(p) => {
            sqlx::query(sql).execute(p).await.expect("seed statement");
        }
    }
}

/// An installation; returns its row id.
pub async fn installation(
    db: &Db,
    forge: Forge,
    external_id: &str,
    account: &str,
    now: i64,
) -> i64 {
    installations::upsert_installation(
        db,
        forge,
        external_id,
        Some(account),
        InstallationState::Active,
        now,
    )
    .await
    .unwrap()
}

/// `n` repositories for installation row `inst` in bulk, with outcome, stack (snapshot),
/// last analysis and, for PR outcomes, a pull request. Repository forge ids start at
/// `first_id`. Returns nothing: read them back through the console queries.
pub async fn bulk_repositories(
    db: &Db,
    forge: Forge,
    inst: i64,
    account: &str,
    first_id: u64,
    n: usize,
    now: i64,
) {
    const CHUNK: usize = 500;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let mut repos = Vec::new();
        for i in start..end {
            let outcome = outcome_for(i).map_or("NULL".to_owned(), |o| format!("'{o}'"));
            let last = match outcome_for(i) {
                None => "NULL".to_owned(),
                Some("failed") => "'failed: HTTP 500 from the forge'".to_owned(),
                Some("skipped") => "'skipped: the repository already has CI'".to_owned(),
                Some(o) => format!("'{o}'"),
            };
            let analysed = if outcome_for(i).is_some() {
                (format!("'{:040x}'", i), (now - i as i64).to_string())
            } else {
                ("NULL".to_owned(), "NULL".to_owned())
            };
            repos.push(format!(
                "({inst}, '{}', '{}', '{}', 'main', 'active', {}, {outcome}, {last}, {}, {}, {now}, {now})",
                forge.as_str(),
                first_id + i as u64,
                repo_name(account, i),
                if outcome_for(i) == Some("ignored") { "TRUE" } else { "FALSE" },
                analysed.0,
                analysed.1,
            ));
        }
        exec(
            db,
            &format!(
                "INSERT INTO repositories (installation_id, forge, external_id, full_name, \
                 default_branch, state, ignored, outcome, last_outcome, last_analyzed_sha, \
                 last_analyzed_at, created_at, updated_at) VALUES {}",
                repos.join(", ")
            ),
        )
        .await;
        let ids = (first_id + start as u64, first_id + end as u64);
        exec(
            db,
            &format!(
                "INSERT INTO repo_snapshots (repository_id, sha, stack, decision, analyzed_at) \
                 SELECT id, last_analyzed_sha, CASE (CAST(external_id AS BIGINT) - {first_id}) % 4 \
                   WHEN 0 THEN '{}' WHEN 1 THEN '{}' WHEN 2 THEN '{}' ELSE '{}' END, \
                   'propose', {now} FROM repositories \
                 WHERE installation_id = {inst} AND outcome IS NOT NULL \
                   AND CAST(external_id AS BIGINT) >= {} AND CAST(external_id AS BIGINT) < {}",
                stack_for(0),
                stack_for(1),
                stack_for(2),
                stack_for(3),
                ids.0,
                ids.1
            ),
        )
        .await;
        exec(
            db,
            &format!(
                "INSERT INTO pull_requests (repository_id, number, branch, state, proposal_hash, \
                 closed_by_bot, url, opened_at, updated_at) \
                 SELECT id, 1, 'pipewright/ci', CASE outcome WHEN 'pr_open' THEN 'open' \
                   WHEN 'merged' THEN 'merged' ELSE 'closed' END, 'h', FALSE, \
                   'https://forge.example/' || full_name || '/pull/1', {now}, {now} \
                 FROM repositories WHERE installation_id = {inst} \
                   AND outcome IN ('pr_open', 'merged', 'closed') \
                   AND CAST(external_id AS BIGINT) >= {} AND CAST(external_id AS BIGINT) < {}",
                ids.0, ids.1
            ),
        )
        .await;
    }
}

/// `n` jobs spread over the states and kinds (1 in 100 dead), in bulk; repository jobs
/// point at the first `repos` repositories of `account` (forge ids from `first_id`).
#[allow(clippy::too_many_arguments)]
pub async fn bulk_jobs(
    db: &Db,
    forge: Forge,
    installation: &str,
    first_id: u64,
    repos: usize,
    n: usize,
    now: i64,
) {
    const CHUNK: usize = 1000;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let mut rows = Vec::new();
        for i in start..end {
            let repo = first_id + (i % repos.max(1)) as u64;
            let state = match i % 100 {
                0 => "dead",
                1..=3 => "queued",
                4 => "failed",
                _ => "succeeded",
            };
            let (kind, payload, ckey) = if i % 5 == 0 {
                (
                    "handle_event",
                    format!(
                        r#"{{"forge":"{}","delivery_id":"d{i}","event_name":"push","events":[]}}"#,
                        forge.as_str()
                    ),
                    format!("installation:{}:{installation}", forge.as_str()),
                )
            } else {
                (
                    "analyze_repo",
                    format!(
                        r#"{{"forge":"{f}","installation":"{installation}","repo":{{"id":"{repo}","full_name":"x/{repo}","default_branch":"main","private":null,"archived":null,"fork":null}},"reason":"reconcile","sha":null}}"#,
                        f = forge.as_str()
                    ),
                    format!("repo:{}:{repo}", forge.as_str()),
                )
            };
            let err = if state == "dead" || state == "failed" {
                "'HTTP 502 from the forge'"
            } else {
                "NULL"
            };
            let finished = if state == "dead" || state == "succeeded" {
                now.to_string()
            } else {
                "NULL".into()
            };
            rows.push(format!(
                "('{kind}', '{payload}', '{ckey}', '{state}', {now}, {}, 5, {err}, {}, {now}, {finished})",
                if state == "dead" { 5 } else { 1 },
                now - (n - i) as i64,
            ));
        }
        exec(
            db,
            &format!(
                "INSERT INTO jobs (kind, payload, concurrency_key, state, run_at, attempts, \
                 max_attempts, last_error, created_at, updated_at, finished_at) VALUES {}",
                rows.join(", ")
            ),
        )
        .await;
    }
}

/// One fully described repository (snapshot with explain text, proposal, pushed files,
/// PR, settings) through the same functions the bot uses; returns its row id.
pub async fn detailed_repository(
    db: &Db,
    forge: Forge,
    inst: i64,
    external_id: &str,
    full_name: &str,
    now: i64,
) -> i64 {
    let id = installations::upsert_repo(
        db,
        Some(inst),
        forge,
        &Repo {
            id: RepoId(external_id.to_owned()),
            full_name: full_name.to_owned(),
            default_branch: Some("main".into()),
            private: Some(true),
            archived: Some(false),
            fork: Some(false),
        },
        RepoState::Active,
        now,
    )
    .await
    .unwrap();
    let analysis = serde_json::json!({"projects": [{"path": ".", "language": "rust",
        "package_manager": "cargo", "evidence": ["Cargo.toml"]}], "missing": ["ci"]});
    console::save_snapshot(
        db,
        id,
        &Snapshot {
            sha: Some("c0ffee0000000000000000000000000000000000".into()),
            stack: Some("rust/cargo".into()),
            analysis: Some(analysis.to_string()),
            explain: Some(
                ". — rust (97% sure)\n  package manager  cargo   [rust.cargo: Cargo.toml]\n".into(),
            ),
            repo_config: Some(
                serde_json::json!({"path": ".pipewright.yml", "text": "features:\n  coverage: true\n"})
                    .to_string(),
            ),
            decision: Some("propose".into()),
            proposal_hash: Some("h2".into()),
            proposal: Some(
                serde_json::json!([{"path": ".github/workflows/ci.yml",
                    "content": "name: CI\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: cargo test --locked\n"}])
                .to_string(),
            ),
            pushed: None,
            pushed_sha: None,
            analyzed_at: now,
        },
    )
    .await
    .unwrap();
    console::record_pushed(
        db,
        id,
        &serde_json::json!([{"path": ".github/workflows/ci.yml",
            "content": "name: CI\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: cargo test\n"}])
        .to_string(),
        "beef000000000000000000000000000000000000",
        now,
    )
    .await
    .unwrap();
    pull_requests::upsert(
        db,
        id,
        7,
        "pipewright/ci",
        "open",
        "h1",
        Some("beef000000000000000000000000000000000000"),
        Some(&format!("https://forge.example/{full_name}/pull/7")),
        now,
    )
    .await
    .unwrap();
    pull_requests::record_outcome(db, id, "updated #7", Some("c0ffee0"), now)
        .await
        .unwrap();
    pull_requests::set_settings(db, id, r#"{"features":[["coverage",true]]}"#)
        .await
        .unwrap();
    id
}

/// A dead `analyze_repo` job for a repository; returns its id.
pub async fn dead_job(db: &Db, forge: Forge, installation: &str, repo_id: &str, now: i64) -> i64 {
    let job = pipewright::jobs::AnalyzeRepo {
        forge,
        installation: Some(pipewright::forge::InstallationId(installation.to_owned())),
        repo: Repo {
            id: RepoId(repo_id.to_owned()),
            full_name: format!("x/{repo_id}"),
            default_branch: None,
            private: None,
            archived: None,
            fork: None,
        },
        reason: pipewright::jobs::AnalyzeReason::Push,
        sha: Some(pipewright::forge::CommitSha(format!("{:040}", now))),
    };
    let id = pipewright::queue::store::enqueue(db, &pipewright::queue::NewJob::of(&job), now)
        .await
        .unwrap()
        .expect("not a duplicate");
    exec(
        db,
        &format!(
            "UPDATE jobs SET state = 'dead', attempts = 5, finished_at = {now}, \
             last_error = 'HTTP 502 Bad Gateway from the forge' WHERE id = {id}"
        ),
    )
    .await;
    id
}
