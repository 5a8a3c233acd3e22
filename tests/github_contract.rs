//! The requests our GitHub client sends, held against GitHub's OpenAPI description: every
//! `ForgeClient` call goes to `../shared/tools/fake-github` (Prism validating requests
//! against `../shared/fixtures/openapi/api.github.com.json`) and must not be refused as
//! invalid. Runs when `PIPEWRIGHT_FAKE_GITHUB_URL` points at a running fake-github;
//! `.ci/run` starts one and sets `PIPEWRIGHT_REQUIRE_CONTRACT=1`, which turns the skip into
//! a failure. GraphQL (blob reads) is not in the REST description and is not checked here.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;

use pipewright::clock::Clock;
use pipewright::config::{BotConfig, GithubAppConfig, Secret};
use pipewright::forge::client::{
    ApiError, BranchWrite, FileWrite, NewPullRequest, Parent, PullRequestUpdate, Reaction,
    RepoHandle,
};
use pipewright::forge::event::{CiConclusion, CiJobRef, CiRun, CommentTarget, Repo};
use pipewright::forge::{CommitSha, Forge, Forges, RepoId};

#[tokio::test(flavor = "multi_thread")]
async fn github_requests_conform_to_the_openapi_description() {
    let Some(url) = std::env::var("PIPEWRIGHT_FAKE_GITHUB_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("PIPEWRIGHT_REQUIRE_CONTRACT").as_deref() != Ok("1"),
            "PIPEWRIGHT_REQUIRE_CONTRACT=1 but PIPEWRIGHT_FAKE_GITHUB_URL is not set"
        );
        eprintln!("skipped: PIPEWRIGHT_FAKE_GITHUB_URL is not set (see .ci/run)");
        return;
    };
    let cfg = BotConfig {
        github_app: Some(GithubAppConfig {
            app_id: 1,
            private_key: Secret::new(fake_forge::app_private_key()),
        }),
        github_api_url: url,
        ..BotConfig::default()
    };
    let forges = Forges::from_config(&cfg, Clock::System).unwrap();
    let c = forges.client(Forge::Github, "1", None).unwrap();
    let repo = RepoHandle {
        id: "1296269".into(),
        full_name: "octocat/Hello-World".into(),
    };
    let sha = "7638417db6d59f3c431d3e1f261cc637155684cd".to_owned();
    let pr = CommentTarget::PullRequest(1347);
    let mut outcomes: Vec<(&str, Result<(), ApiError>)> = Vec::new();
    outcomes.push(("list_repositories", c.list_repositories().await.map(|_| ())));
    outcomes.push(("repository", c.repository(&repo).await.map(|_| ())));
    outcomes.push((
        "branch_head",
        c.branch_head(&repo, "pipewright/ci").await.map(|_| ()),
    ));
    outcomes.push(("tree", c.tree(&repo, &sha).await.map(|_| ())));
    outcomes.push((
        "find_pull_request",
        c.find_pull_request(&repo, "pipewright/ci")
            .await
            .map(|_| ()),
    ));
    for parent in [
        Parent::Fresh { base: sha.clone() },
        Parent::OnTop { head: sha.clone() },
    ] {
        let w = BranchWrite {
            branch: "pipewright/ci".into(),
            parent,
            files: vec![
                FileWrite {
                    path: ".github/workflows/ci.yml".into(),
                    content: Some("on: push\n".into()),
                    exists: false,
                },
                FileWrite {
                    path: "old.yml".into(),
                    content: None,
                    exists: true,
                },
            ],
            message: "Add CI".into(),
        };
        outcomes.push(("write_branch", c.write_branch(&repo, &w).await.map(|_| ())));
    }
    outcomes.push((
        "open_pull_request",
        c.open_pull_request(
            &repo,
            &NewPullRequest {
                head: "pipewright/ci".into(),
                base: "main".into(),
                title: "Add CI".into(),
                body: "body".into(),
            },
        )
        .await
        .map(|_| ()),
    ));
    outcomes.push((
        "update_pull_request",
        c.update_pull_request(
            &repo,
            1347,
            &PullRequestUpdate {
                title: Some("t".into()),
                body: Some("b".into()),
                close: true,
            },
        )
        .await,
    ));
    outcomes.push(("comment", c.comment(&repo, &pr, "hello").await.map(|_| ())));
    outcomes.push(("react", c.react(&repo, &pr, "1", Reaction::Eyes).await));
    outcomes.push((
        "permission",
        c.permission(
            &repo,
            &pipewright::forge::event::Actor {
                login: "octocat".into(),
                id: Some("1".into()),
                is_bot: false,
            },
        )
        .await
        .map(|_| ()),
    ));
    // The first CI run: the failed jobs (of an attempt, and of the latest attempt when
    // the event names none), a job's log, re-running the failed jobs.
    let run = CiRun {
        repo: Repo {
            id: RepoId("1296269".into()),
            full_name: "octocat/Hello-World".into(),
            default_branch: Some("main".into()),
            private: Some(false),
            archived: Some(false),
            fork: Some(false),
        },
        branch: "pipewright/ci".into(),
        sha: CommitSha(sha.clone()),
        run_id: "30433642".into(),
        attempt: "1".into(),
        name: "CI".into(),
        conclusion: CiConclusion::Failure,
        url: None,
        failed_jobs: Vec::new(),
    };
    let latest = CiRun {
        attempt: String::new(),
        ..run.clone()
    };
    outcomes.push((
        "failed_ci_jobs",
        c.failed_ci_jobs(&repo, &run).await.map(|_| ()),
    ));
    outcomes.push((
        "failed_ci_jobs (latest attempt)",
        c.failed_ci_jobs(&repo, &latest).await.map(|_| ()),
    ));
    let job = CiJobRef {
        id: "399444496".into(),
        name: "test".into(),
    };
    let log = c.ci_job_log(&repo, &run, &job, 1 << 20).await;
    outcomes.push((
        "ci_job_log",
        match log {
            // Prism answers the documented 302 with the description's example
            // `Location`, a signed URL on GitHub's log storage: following it leaves the
            // mock (no such host here), which is not what is checked. A request Prism
            // refused would be `Rejected` (422), never a transport error.
            Err(ApiError::Transient { .. }) => Ok(()),
            other => other.map(|_| ()),
        },
    ));
    outcomes.push((
        "rerun_ci",
        c.rerun_ci(&repo, &run, std::slice::from_ref(&job)).await,
    ));
    // Actions secrets: the client's own call reads the key and fails on the
    // description's example key (33 bytes, not an X25519 key), which is not a refusal;
    // the PUT is then held against the description with a value sealed to a real key.
    outcomes.push((
        "write_ci_secrets",
        c.write_ci_secrets(
            &repo,
            &[],
            &[pipewright::forge::client::CiSecret {
                name: "FLY_API_TOKEN".into(),
                value: Secret::new("fo1_contract"),
                secret: true,
            }],
        )
        .await
        .map(|_| ()),
    ));
    let gh = {
        use pipewright::forge::github::auth::{AppCredentials, TokenCache};
        use pipewright::forge::github::client::{GithubApi, GithubClient};
        let creds = AppCredentials::new(1, &Secret::new(fake_forge::app_private_key())).unwrap();
        let tokens = TokenCache::new(&cfg.github_api_url, creds, Clock::System).unwrap();
        let api = GithubApi::new(&cfg.github_api_url, tokens, Clock::System).unwrap();
        GithubClient::new(std::sync::Arc::new(api), 1, Default::default())
    };
    let (_, pk) = pipewright::crypto::generate_box_keypair();
    let sealed = pipewright::crypto::seal_for_public_key(&pk, b"fo1_contract").unwrap();
    outcomes.push((
        "put_actions_secret",
        gh.put_actions_secret(&repo, "FLY_API_TOKEN", &sealed, "012345678912345678")
            .await,
    ));
    let mut refused = Vec::new();
    for (what, r) in &outcomes {
        match r {
            // The description's examples do not always match their own schemas; an answer
            // we cannot read is not a request the API refused.
            Ok(()) | Err(ApiError::Decode { .. }) => {}
            Err(e) => refused.push(format!("{what}: {e}")),
        }
    }
    assert!(
        refused.is_empty(),
        "refused by the OpenAPI description:\n{}",
        refused.join("\n")
    );
    // Every call went out (token requests included).
    assert!(c.calls() >= outcomes.len() as u64);
}
