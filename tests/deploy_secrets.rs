//! Deploy credentials written to each forge by the real clients, against the stateful
//! fakes: GitHub Actions secrets sealed to the repository's key (the fake opens them as
//! GitHub's runners would), GitLab protected CI/CD variables (masked when GitLab can mask
//! the value), Bitbucket secured variables of the staging and production deployment
//! environments. Writing twice replaces, never duplicates.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;

use fake_forge::{FakeForge, Kind, RepoSpec, APP_ID};
use pipewright::clock::Clock;
use pipewright::config::{BotConfig, GithubAppConfig, Secret};
use pipewright::forge::client::{ApiError, CiSecret, ForgeClient, RepoHandle};
use pipewright::forge::{Forge, Forges};

const TOKEN: &str = "FlyV1 fm2_lJPECAAAAAAAAAAAAAAAAAAAAAAA";
const KEY_B64: &str = "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K";

async fn setup(kind: Kind) -> (FakeForge, Box<dyn ForgeClient>, RepoHandle) {
    let forge = match kind {
        Kind::Github => FakeForge::github().await,
        Kind::Gitlab => FakeForge::gitlab().await,
        Kind::Bitbucket => FakeForge::bitbucket().await,
    };
    let tenant = if kind == Kind::Github { "42" } else { "acme" };
    forge.world().add_repo(
        RepoSpec::new(7, "acme/api", tenant).file("package.json", "{\"name\":\"api\"}\n"),
    );
    let mut cfg = BotConfig::default();
    match kind {
        Kind::Github => {
            cfg.github_app = Some(GithubAppConfig {
                app_id: APP_ID,
                private_key: Secret::new(fake_forge::app_private_key()),
            });
            cfg.github_api_url = forge.url.clone();
        }
        Kind::Gitlab => {
            cfg.gitlab_url = forge.url.clone();
            cfg.gitlab_token = Some(Secret::new(forge.token()));
            cfg.gitlab_groups = vec!["acme".into()];
        }
        Kind::Bitbucket => {
            cfg.bitbucket_api_url = forge.url.clone();
            cfg.bitbucket_token = Some(Secret::new(forge.token()));
            cfg.bitbucket_workspaces = vec!["acme".into()];
        }
    }
    let forges = Forges::from_config(&cfg, Clock::System).unwrap();
    let client = match kind {
        Kind::Github => forges.client(Forge::Github, "42", None),
        Kind::Gitlab => forges.client(Forge::Gitlab, "acme", None),
        Kind::Bitbucket => forges.client(Forge::Bitbucket, "{acme-uuid}", Some("acme")),
    }
    .unwrap();
    let handle = RepoHandle {
        id: "7".into(),
        full_name: "acme/api".into(),
    };
    (forge, client, handle)
}

fn secrets(token: &str) -> Vec<CiSecret> {
    vec![
        CiSecret {
            name: "FLY_API_TOKEN".into(),
            value: Secret::new(token),
            secret: true,
        },
        CiSecret {
            name: "SSH_PRIVATE_KEY".into(),
            value: Secret::new(KEY_B64),
            secret: true,
        },
        CiSecret {
            name: "SSH_HOST".into(),
            value: Secret::new("deploy.example.com"),
            secret: false,
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn github_secrets_are_sealed_to_the_repository_key() {
    let (forge, c, repo) = setup(Kind::Github).await;
    let written = c
        .write_ci_secrets(&repo, &["staging", "production"], &secrets(TOKEN))
        .await
        .unwrap();
    assert_eq!(written.len(), 3);
    assert!(written.iter().all(|w| w.masked && w.scope == "repository"));
    {
        let w = forge.world();
        let r = w.repo("acme/api").unwrap();
        let v = &r.ci_vars[&("repository".to_owned(), "FLY_API_TOKEN".to_owned())];
        assert_eq!(v.value, TOKEN);
        assert_eq!(r.ci_vars.len(), 3);
    }
    // Again, with a new value: replaced (204), still three.
    c.write_ci_secrets(&repo, &[], &secrets("FlyV1 fm2_rotated-token-value-0000"))
        .await
        .unwrap();
    {
        let w = forge.world();
        let r = w.repo("acme/api").unwrap();
        assert_eq!(r.ci_vars.len(), 3);
        assert_eq!(
            r.ci_vars[&("repository".to_owned(), "FLY_API_TOKEN".to_owned())].value,
            "FlyV1 fm2_rotated-token-value-0000"
        );
    }
    // A name GitHub refuses comes back as a refusal, not a retry.
    let bad = [CiSecret {
        name: "GITHUB_TOKEN".into(),
        value: Secret::new("x"),
        secret: true,
    }];
    let e = c.write_ci_secrets(&repo, &[], &bad).await.unwrap_err();
    assert!(matches!(e, ApiError::Rejected { status: 422, .. }), "{e}");
    // The fake stores only what opens with the repository's secret key, so the values
    // above travelled sealed; the key was read once per write.
    let log = forge.world().requests();
    assert_eq!(
        log.iter()
            .filter(|r| r.ends_with("/actions/secrets/public-key"))
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_variables_are_protected_and_masked_when_possible() {
    let (forge, c, repo) = setup(Kind::Gitlab).await;
    let written = c
        .write_ci_secrets(&repo, &["staging", "production"], &secrets(TOKEN))
        .await
        .unwrap();
    // A Fly token has a space: GitLab cannot mask it, so it is protected but unmasked,
    // and the result says so. The base64 key masks; the host is no secret.
    let masked: Vec<(&str, bool)> = written
        .iter()
        .map(|w| (w.name.as_str(), w.masked))
        .collect();
    assert_eq!(
        masked,
        [
            ("FLY_API_TOKEN", false),
            ("SSH_PRIVATE_KEY", true),
            ("SSH_HOST", false)
        ]
    );
    {
        let w = forge.world();
        let r = w.repo("acme/api").unwrap();
        let v = &r.ci_vars[&("*".to_owned(), "SSH_PRIVATE_KEY".to_owned())];
        assert!(v.protected && v.masked);
        assert_eq!(v.value, KEY_B64);
        assert!(r.ci_vars[&("*".to_owned(), "SSH_HOST".to_owned())].protected);
    }
    // Second write updates in place.
    c.write_ci_secrets(&repo, &[], &secrets("fm2_masked-token-value"))
        .await
        .unwrap();
    let w = forge.world();
    let r = w.repo("acme/api").unwrap();
    assert_eq!(r.ci_vars.len(), 3);
    let v = &r.ci_vars[&("*".to_owned(), "FLY_API_TOKEN".to_owned())];
    assert!(v.masked && v.value == "fm2_masked-token-value");
}

#[tokio::test(flavor = "multi_thread")]
async fn bitbucket_secured_deployment_variables_per_environment() {
    let (forge, c, repo) = setup(Kind::Bitbucket).await;
    let written = c
        .write_ci_secrets(&repo, &["staging", "production"], &secrets(TOKEN))
        .await
        .unwrap();
    assert_eq!(written.len(), 6);
    assert!(written
        .iter()
        .filter(|w| w.name != "SSH_HOST")
        .all(|w| w.masked));
    let count = |f: &FakeForge| {
        f.world()
            .repo("acme/api")
            .unwrap()
            .ci_vars
            .iter()
            .filter(|((_, k), v)| k == "FLY_API_TOKEN" && v.masked && v.value == TOKEN)
            .count()
    };
    assert_eq!(count(&forge), 2, "one secured variable in each environment");
    // An environment that does not exist yet is created; a second write updates.
    c.write_ci_secrets(&repo, &["canary"], &secrets(TOKEN))
        .await
        .unwrap();
    c.write_ci_secrets(&repo, &["staging", "production", "canary"], &secrets(TOKEN))
        .await
        .unwrap();
    assert_eq!(count(&forge), 3);
    let log = forge.world().requests();
    assert!(log
        .iter()
        .any(|r| r.starts_with("PUT ") && r.contains("/deployments_config/environments/")));
    assert!(log
        .iter()
        .any(|r| r.starts_with("POST ") && r.ends_with("/environments")));
}
