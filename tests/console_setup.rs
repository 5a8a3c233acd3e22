//! One-click GitHub App against the fake GitHub, on SQLite and PostgreSQL: the manifest
//! posted to GitHub carries this deployment's URLs; the callback exchanges the code
//! (`POST /app-manifests/{code}/conversions`) and stores the App with its private key
//! sealed under `PIPEWRIGHT_CREDENTIALS_KEY`; the bot then authenticates as that App (a
//! real installation-token request with a JWT signed by the stored key) and the webhook
//! intake verifies deliveries with the stored secret. Environment variables still win.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/db.rs"]
mod testdb;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use hmac::{Hmac, Mac};
use pipewright::clock::Clock;
use pipewright::config::{Config, GithubAppConfig, Secret};
use pipewright::console::{self, setup::GithubAppSlot, ConsoleState};
use pipewright::crypto::Keyring;
use pipewright::forge::{Forge, Forges};
use pipewright::metrics::Metrics;
use pipewright::server::{self, AppState, Intake};
use sha2::Sha256;
use testdb::TestDb;

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + key.len();
    unescape(&html[i..i + html[i..].find('"').unwrap()])
}

#[actix_web::test]
async fn manifest_flow_stores_the_app_encrypted_and_the_bot_acts_as_it() {
    for t in TestDb::all().await {
        let fake = fake_forge::FakeForge::github().await;
        fake.world().oauth.signed_in = Some("ada".into());
        fake.world().installations.insert("101".into(), true);
        let (keyring, _) = Keyring::generate("k1");
        let mut cfg = Config::for_database(&t.url);
        cfg.credentials_key = Some(keyring.clone());
        cfg.bot.github_api_url = fake.url.clone();
        cfg.bot.public_url = Some("http://localhost".into());
        cfg.console.github_web_url = fake.world().base_url.clone();
        let cfg = Arc::new(cfg);
        let slot = Arc::new(GithubAppSlot::from_config(&cfg));
        let state = web::Data::new(
            ConsoleState::new(cfg.clone(), t.db.clone(), Clock::System, slot.clone()).unwrap(),
        );
        let (intake, _writers) = Intake::start(
            t.db.clone(),
            Clock::System,
            Arc::new(tokio::sync::Notify::new()),
        );
        let hooks = web::Data::new(AppState {
            config: cfg.clone(),
            db: t.db.clone(),
            intake,
            metrics: Arc::new(Metrics::new()),
            clock: Clock::System,
            github_app: slot.clone(),
        });
        let svc = test::init_service(
            App::new()
                .configure(server::configure(hooks))
                .configure(console::configure(state)),
        )
        .await;

        // Without an App, GitHub deliveries are not accepted at all.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri("/webhooks/github")
                .insert_header(("X-GitHub-Event", "ping"))
                .set_payload("{}")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // A fresh deployment (no App, no operator token): the setup page is open.
        let r = test::call_service(
            &svc,
            test::TestRequest::get().uri("/setup/github").to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", t.name);
        let cookie = r
            .response()
            .cookies()
            .find(|c| c.name() == console::setup::SETUP_STATE_COOKIE)
            .unwrap()
            .value()
            .to_owned();
        let html = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&attr(&html, "manifest")).unwrap();
        assert_eq!(
            manifest["hook_attributes"]["url"],
            "http://localhost/webhooks/github"
        );
        assert_eq!(
            manifest["redirect_url"],
            "http://localhost/setup/github/callback"
        );
        assert_eq!(manifest["default_permissions"]["workflows"], "write");

        // The browser posts it to GitHub, which creates the App and sends it back.
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = fake.world().base_url.clone();
        let created = browser
            .post(format!(
                "{base}/organizations/acme/settings/apps/new?state={cookie}"
            ))
            .form(&[("manifest", manifest.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 302);
        let back = created.headers()["location"].to_str().unwrap().to_owned();
        let path = back.strip_prefix("http://localhost").unwrap().to_owned();

        // A callback from another browser (no state cookie) is refused.
        let r = test::call_service(&svc, test::TestRequest::get().uri(&path).to_request()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        let r = test::call_service(
            &svc,
            test::TestRequest::get()
                .uri(&path)
                .cookie(actix_web::cookie::Cookie::new(
                    console::setup::SETUP_STATE_COOKIE,
                    cookie.clone(),
                ))
                .to_request(),
        )
        .await;
        let status = r.status();
        let html = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains("pipewright") && html.contains("created and stored encrypted"),
            "{html}"
        );

        // Stored sealed: no key material in the row, and it opens only with the keyring.
        let row = pipewright::db::github_apps::latest(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.app_id, fake_forge::APP_ID as i64);
        assert_eq!(row.key_id, "k1");
        assert_eq!(row.owner.as_deref(), Some("acme"));
        for leak in ["PRIVATE KEY", "MII", "whsec"] {
            assert!(!row.ciphertext.contains(leak), "{leak} in the stored row");
        }
        let raw = match &t.db {
            pipewright::Db::Sqlite(p) => {
                sqlx::query_scalar::<_, String>("SELECT ciphertext FROM github_apps")
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            pipewright::Db::Postgres(p) => {
                sqlx::query_scalar::<_, String>("SELECT ciphertext FROM github_apps")
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        };
        assert!(!raw.contains("PRIVATE KEY"));

        // The process acts as the App now.
        let app = slot.current().expect("an App in force");
        assert!(!app.from_env);
        assert_eq!(app.app_id, fake_forge::APP_ID);
        assert_eq!(
            app.private_key.expose().trim(),
            fake_forge::app_private_key().trim()
        );
        let bot = slot.bot_config(&cfg.bot);
        assert_eq!(bot.github_app_slug, "pipewright");
        let forges = Forges::from_config(&bot, Clock::System).unwrap();
        let client = forges.client(Forge::Github, "101", Some("acme")).unwrap();
        fake.world().clear_requests();
        client
            .list_repositories()
            .await
            .expect("authenticated as the stored App");
        let reqs = fake.world().requests();
        assert!(
            reqs.iter()
                .any(|r| r.contains("/app/installations/101/access_tokens")),
            "a real installation token request: {reqs:?}"
        );

        // Deliveries signed with the stored webhook secret are accepted.
        let secret = app.webhook_secret.clone().expect("a webhook secret");
        let body = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri("/webhooks/github")
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("X-GitHub-Event", "ping"))
                .insert_header(("X-GitHub-Delivery", "d-1"))
                .insert_header(("X-Hub-Signature-256", sig))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri("/webhooks/github")
                .insert_header(("X-GitHub-Event", "ping"))
                .insert_header(("X-GitHub-Delivery", "d-2"))
                .insert_header(("X-Hub-Signature-256", "sha256=00"))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        // Now that an App exists, the setup page is the operator's only.
        let r = test::call_service(
            &svc,
            test::TestRequest::get().uri("/setup/github").to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // Another replica loads it with the keyring, and not without it or with another.
        let other = GithubAppSlot::from_config(&Config::for_database(&t.url));
        assert!(other.load_stored(&t.db, Some(&keyring)).await.unwrap());
        assert_eq!(other.current().unwrap().slug, "pipewright");
        let e = GithubAppSlot::from_config(&Config::for_database(&t.url))
            .load_stored(&t.db, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("PIPEWRIGHT_CREDENTIALS_KEY"), "{e}");
        let (wrong, _) = Keyring::generate("k1");
        assert!(GithubAppSlot::from_config(&Config::for_database(&t.url))
            .load_stored(&t.db, Some(&wrong))
            .await
            .is_err());

        // Environment variables win over the stored App.
        let mut env_cfg = Config::for_database(&t.url);
        env_cfg.bot.github_app = Some(GithubAppConfig {
            app_id: 99,
            private_key: Secret::new(fake_forge::app_private_key()),
        });
        env_cfg.github_webhook_secrets = vec![Secret::new("env-secret")];
        let env_slot = GithubAppSlot::from_config(&env_cfg);
        assert!(!env_slot.load_stored(&t.db, Some(&keyring)).await.unwrap());
        assert_eq!(env_slot.current().unwrap().app_id, 99);
        assert_eq!(env_slot.webhook_secrets()[0].expose(), "env-secret");
        // The code was used once: a replay is refused by GitHub.
        assert!(fake.world().oauth.manifests.is_empty());
    }
}

#[actix_web::test]
async fn setup_needs_the_credentials_key_and_the_operator_once_one_is_set() {
    let t = TestDb::sqlite().await;
    let mut cfg = Config::for_database(&t.url);
    cfg.console.admin_token = Some(Secret::new("operator-token-0123456789"));
    let cfg = Arc::new(cfg);
    let slot = Arc::new(GithubAppSlot::from_config(&cfg));
    let state = web::Data::new(ConsoleState::new(cfg, t.db.clone(), Clock::System, slot).unwrap());
    let svc = test::init_service(App::new().configure(console::configure(state))).await;
    // With an operator token configured, strangers are sent to sign in.
    let r = test::call_service(
        &svc,
        test::TestRequest::get().uri("/setup/github").to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The operator without PIPEWRIGHT_CREDENTIALS_KEY is told to set it.
    let r = test::call_service(
        &svc,
        test::TestRequest::get()
            .uri("/setup/github")
            .insert_header(("Authorization", "Bearer operator-token-0123456789"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(html.contains("PIPEWRIGHT_CREDENTIALS_KEY"));
}
