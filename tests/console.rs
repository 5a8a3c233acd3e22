//! The operator console over HTTP, on SQLite and PostgreSQL: nothing answers without a
//! session or the operator token; sign-in with the token; CSRF on every state change;
//! retry and re-analyse (queued, audited); the repository page's proposal and diff;
//! pagination and filters over 10,000 repositories; and sign-in with each forge's OAuth
//! against the fakes, where an org / group / workspace admin sees their installation and
//! not another's, and a plain member is refused.

#[path = "support/fake_forge/mod.rs"]
mod fake_forge;
#[path = "support/console_seed.rs"]
mod seed;
#[path = "support/db.rs"]
mod testdb;

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use pipewright::clock::Clock;
use pipewright::config::{Config, OAuthClient, Secret};
use pipewright::console::{self, setup::GithubAppSlot, ConsoleState};
use pipewright::forge::Forge;
use pipewright::queue::store;
use serde_json::Value;
use testdb::TestDb;

const ADMIN: &str = "operator-token-0123456789";
const NOW: i64 = 1_700_000_000_000;

fn config(t: &TestDb) -> Config {
    let mut c = Config::for_database(&t.url);
    c.console.admin_token = Some(Secret::new(ADMIN));
    c
}

fn console_state(t: &TestDb, cfg: Config, clock: Clock) -> web::Data<ConsoleState> {
    let cfg = Arc::new(cfg);
    let slot = Arc::new(GithubAppSlot::from_config(&cfg));
    web::Data::new(ConsoleState::new(cfg, t.db.clone(), clock, slot).unwrap())
}

async fn app(
    state: web::Data<ConsoleState>,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    test::init_service(App::new().configure(console::configure(state))).await
}

fn session_cookie(resp: &ServiceResponse) -> Option<String> {
    resp.response()
        .cookies()
        .find(|c| c.name() == console::auth::SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

fn location(resp: &ServiceResponse) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn body_text(resp: ServiceResponse) -> String {
    String::from_utf8(test::read_body(resp).await.to_vec()).unwrap()
}

/// Signs in with the operator token; returns the session cookie value.
async fn sign_in<S>(svc: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let resp = test::call_service(
        svc,
        test::TestRequest::post()
            .uri("/console/login")
            .set_form([("token", ADMIN), ("next", "/console/jobs")])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/console/jobs");
    let c = resp
        .response()
        .cookies()
        .find(|c| c.name() == console::auth::SESSION_COOKIE)
        .unwrap();
    assert!(c.http_only().unwrap_or(false));
    assert_eq!(c.same_site(), Some(actix_web::cookie::SameSite::Lax));
    c.value().to_owned()
}

fn get(uri: &str, cookie: &str) -> actix_http::Request {
    test::TestRequest::get()
        .uri(uri)
        .cookie(actix_web::cookie::Cookie::new(
            console::auth::SESSION_COOKIE,
            cookie.to_owned(),
        ))
        .to_request()
}

fn csrf_of(html: &str) -> String {
    let i = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a CSRF field")
        + 19;
    html[i..i + html[i..].find('"').unwrap()].to_owned()
}

struct World {
    inst_a: i64,
    inst_b: i64,
    repo_a: i64,
    repo_b: i64,
    dead_a: i64,
    dead_b: i64,
}

async fn world(db: &pipewright::Db) -> World {
    let inst_a = seed::installation(db, Forge::Github, "101", "acme", NOW).await;
    let inst_b = seed::installation(db, Forge::Github, "202", "globex", NOW).await;
    let repo_a =
        seed::detailed_repository(db, Forge::Github, inst_a, "5001", "acme/api", NOW).await;
    let repo_b = seed::detailed_repository(
        db,
        Forge::Github,
        inst_b,
        "6001",
        "globex/secret-plans",
        NOW,
    )
    .await;
    let dead_a = seed::dead_job(db, Forge::Github, "101", "5001", NOW).await;
    let dead_b = seed::dead_job(db, Forge::Github, "202", "6001", NOW).await;
    World {
        inst_a,
        inst_b,
        repo_a,
        repo_b,
        dead_a,
        dead_b,
    }
}

#[actix_web::test]
async fn nothing_answers_without_a_session_or_the_token() {
    for t in TestDb::all().await {
        let w = world(&t.db).await;
        let svc = app(console_state(&t, config(&t), Clock::manual(NOW))).await;
        let pages = [
            "/console/".to_owned(),
            format!("/console/installations/{}", w.inst_a),
            format!("/console/repositories/{}", w.repo_a),
            "/console/jobs".to_owned(),
            format!("/console/jobs/{}", w.dead_a),
        ];
        for p in &pages {
            let r = test::call_service(&svc, test::TestRequest::get().uri(p).to_request()).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{p} on {}", t.name);
            assert!(location(&r).starts_with("/console/login?next="), "{p}");
            // A forged cookie is no session.
            let r = test::call_service(&svc, get(p, "forged-session-value")).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{p}");
        }
        let apis = [
            "/api/v1/overview".to_owned(),
            format!("/api/v1/installations/{}/repositories", w.inst_a),
            format!("/api/v1/repositories/{}", w.repo_a),
            "/api/v1/jobs".to_owned(),
            format!("/api/v1/jobs/{}", w.dead_a),
        ];
        for a in &apis {
            let r = test::call_service(&svc, test::TestRequest::get().uri(a).to_request()).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{a}");
            let r = test::call_service(
                &svc,
                test::TestRequest::get()
                    .uri(a)
                    .insert_header(("Authorization", "Bearer operator-token-012345678"))
                    .to_request(),
            )
            .await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{a} with a wrong token"
            );
            let r = test::call_service(
                &svc,
                test::TestRequest::get()
                    .uri(a)
                    .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::OK, "{a} with the token");
        }
        for (uri, body) in [
            (format!("/api/v1/jobs/{}/retry", w.dead_a), ""),
            (format!("/api/v1/repositories/{}/reanalyse", w.repo_a), ""),
        ] {
            let r = test::call_service(
                &svc,
                test::TestRequest::post()
                    .uri(&uri)
                    .set_payload(body)
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{uri}");
        }
        // A wrong token at the sign-in form.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri("/console/login")
                .set_form([("token", "not-the-operator-token")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(session_cookie(&r).is_none());
        let job = store::get(&t.db, w.dead_a).await.unwrap().unwrap();
        assert_eq!(job.state, store::JobState::Dead, "nothing changed");
    }
}

#[actix_web::test]
async fn operator_pages_csrf_retry_and_reanalyse() {
    for t in TestDb::all().await {
        let w = world(&t.db).await;
        let svc = app(console_state(&t, config(&t), Clock::manual(NOW))).await;
        let s = sign_in(&svc).await;

        let r = test::call_service(&svc, get("/console/", &s)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        assert!(r.headers().get("content-security-policy").is_some());
        let html = body_text(r).await;
        assert!(html.contains("acme") && html.contains("globex"), "{html}");
        assert!(html.contains("id=\"first-run-outcomes\""));

        let r = test::call_service(
            &svc,
            get(&format!("/console/installations/{}", w.inst_a), &s),
        )
        .await;
        let html = body_text(r).await;
        // minijinja's HTML escaping writes `/` as `&#x2f;`.
        assert!(
            html.contains("acme&#x2f;api") && !html.contains("secret-plans"),
            "{html}"
        );

        let r = test::call_service(
            &svc,
            get(&format!("/console/repositories/{}", w.repo_a), &s),
        )
        .await;
        let html = body_text(r).await;
        assert!(
            html.contains("rust.cargo: Cargo.toml"),
            "explain shown: {html}"
        );
        assert!(
            html.contains(".github&#x2f;workflows&#x2f;ci.yml"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"del\">-      - run: cargo test</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"add\">+      - run: cargo test --locked</span>"));
        assert!(
            html.contains("features:\n  coverage: true"),
            "repo config shown"
        );
        assert!(html.contains("add coverage"), "settings shown");
        assert!(
            html.contains(&format!("/console/jobs/{}", w.dead_a)),
            "the repo's jobs"
        );
        assert!(!html.contains(&format!("/console/jobs/{}\"", w.dead_b)));

        // Retry without the CSRF token: refused, nothing changes.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/console/jobs/{}/retry", w.dead_a))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .set_form([("csrf", "")])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            store::get(&t.db, w.dead_a).await.unwrap().unwrap().state,
            store::JobState::Dead
        );
        // The API with the cookie but without X-CSRF-Token: refused too.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/api/v1/jobs/{}/retry", w.dead_a))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        // With the token from the page: queued again, attempts reset, audited.
        let r = test::call_service(&svc, get(&format!("/console/jobs/{}", w.dead_a), &s)).await;
        let html = body_text(r).await;
        assert!(
            html.contains("HTTP 502 Bad Gateway from the forge"),
            "last error shown"
        );
        let csrf = csrf_of(&html);
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/console/jobs/{}/retry", w.dead_a))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .set_form([("csrf", csrf.as_str())])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", t.name);
        let job = store::get(&t.db, w.dead_a).await.unwrap().unwrap();
        assert_eq!(job.state, store::JobState::Queued);
        assert_eq!(job.attempts, 0);
        let trail = pipewright::db::audit::list(
            &t.db,
            &pipewright::db::audit::AuditFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(
            trail
                .iter()
                .any(|e| e.action == "job.retry" && e.actor.name == "admin:admin"),
            "{trail:?}"
        );

        // Re-analyse with the page's token: an analyze_repo job for that repository.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/console/repositories/{}/reanalyse", w.repo_a))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .set_form([("csrf", csrf.as_str())])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let queued = store::list(
            &t.db,
            &store::ListFilter {
                state: Some(store::JobState::Queued),
                kind: Some("analyze_repo".into()),
                limit: 10,
            },
        )
        .await
        .unwrap();
        assert!(
            queued
                .iter()
                .any(|j| j.payload.contains("\"5001\"") && j.payload.contains("\"101\"")),
            "{queued:?}"
        );

        // Bearer requests need no CSRF token (no ambient credential).
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/api/v1/jobs/{}/retry", w.dead_b))
                .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);

        // Retrying a job that is not dead says why.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/api/v1/jobs/{}/retry", w.dead_b))
                .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);

        // Sign out ends the session.
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri("/console/logout")
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .set_form([("csrf", csrf.as_str())])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = test::call_service(&svc, get("/console/", &s)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
}

#[actix_web::test]
async fn pagination_and_filters_over_10000_repositories() {
    const N: usize = 10_000;
    for t in TestDb::all().await {
        let inst = seed::installation(&t.db, Forge::Github, "77", "bigcorp", NOW).await;
        seed::bulk_repositories(&t.db, Forge::Github, inst, "bigcorp", 1_000_000, N, NOW).await;
        let svc = app(console_state(&t, config(&t), Clock::manual(NOW))).await;
        let api = |uri: String| {
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                .to_request()
        };
        // Walk every page: each repository exactly once, in name order.
        let mut seen = Vec::new();
        let mut uri = format!("/api/v1/installations/{inst}/repositories?limit=500");
        let mut pages = 0;
        loop {
            let v: Value = test::call_and_read_body_json(&svc, api(uri.clone())).await;
            assert_eq!(v["page"]["total"], N as i64, "{}", t.name);
            for r in v["page"]["rows"].as_array().unwrap() {
                seen.push(r["full_name"].as_str().unwrap().to_owned());
            }
            pages += 1;
            match v["next_url"].as_str() {
                Some(next) => uri = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(pages, N / 500);
        assert_eq!(seen.len(), N);
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), N);

        // Each outcome filter returns exactly its class.
        for outcome in [
            "pr_open", "merged", "closed", "ignored", "skipped", "failed", "pending",
        ] {
            let expected = (0..N)
                .filter(|i| seed::outcome_for(*i).unwrap_or("pending") == outcome)
                .count();
            let v: Value = test::call_and_read_body_json(
                &svc,
                api(format!(
                    "/api/v1/installations/{inst}/repositories?outcome={outcome}&limit=100"
                )),
            )
            .await;
            assert_eq!(
                v["page"]["total"], expected as i64,
                "{outcome} on {}",
                t.name
            );
            for r in v["page"]["rows"].as_array().unwrap() {
                assert_eq!(r["outcome"].as_str().unwrap_or("pending"), outcome);
            }
        }
        // Name and stack filters, combined with an outcome, paged backwards too.
        let v: Value = test::call_and_read_body_json(
            &svc,
            api(format!(
                "/api/v1/installations/{inst}/repositories?name=SERVICE-012&stack=pnpm"
            )),
        )
        .await;
        let expected: Vec<String> = (0..N)
            // Never-analysed repositories have no detected stack.
            .filter(|i| {
                seed::repo_name("bigcorp", *i).contains("service-012")
                    && seed::stack_for(*i).contains("pnpm")
                    && seed::outcome_for(*i).is_some()
            })
            .map(|i| seed::repo_name("bigcorp", i))
            .collect();
        assert_eq!(v["page"]["total"], expected.len() as i64);
        let got: Vec<&str> = v["page"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["full_name"].as_str().unwrap())
            .collect();
        assert_eq!(got, expected.iter().map(String::as_str).collect::<Vec<_>>());

        let first: Value = test::call_and_read_body_json(
            &svc,
            api(format!(
                "/api/v1/installations/{inst}/repositories?outcome=failed&limit=50"
            )),
        )
        .await;
        let second: Value = test::call_and_read_body_json(
            &svc,
            api(first["next_url"].as_str().unwrap().to_owned()),
        )
        .await;
        assert_ne!(first["page"]["rows"][0], second["page"]["rows"][0]);
        let back: Value = test::call_and_read_body_json(
            &svc,
            api(second["prev_url"].as_str().unwrap().to_owned()),
        )
        .await;
        assert_eq!(
            back["page"]["rows"], first["page"]["rows"],
            "previous page is the first"
        );
        assert!(back["prev_url"].is_null());

        // A bad cursor or outcome is a 400, not a 500.
        for bad in ["after=%%%", "outcome=nonsense"] {
            let r = test::call_service(
                &svc,
                api(format!("/api/v1/installations/{inst}/repositories?{bad}")),
            )
            .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        // Jobs: keyset pages by id, state and kind filters.
        seed::bulk_jobs(&t.db, Forge::Github, "77", 1_000_000, N, 3_000, NOW).await;
        let v: Value =
            test::call_and_read_body_json(&svc, api("/api/v1/jobs?state=dead&limit=500".into()))
                .await;
        assert_eq!(v["jobs"].as_array().unwrap().len(), 30);
        assert!(v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "dead"));
        let v: Value = test::call_and_read_body_json(
            &svc,
            api("/api/v1/jobs?kind=handle_event&limit=100".into()),
        )
        .await;
        assert_eq!(v["jobs"].as_array().unwrap().len(), 100);
        let next = v["next_url"].as_str().unwrap().to_owned();
        let v2: Value = test::call_and_read_body_json(&svc, api(next)).await;
        let last_id = v["jobs"][99]["id"].as_i64().unwrap();
        assert!(v2["jobs"][0]["id"].as_i64().unwrap() < last_id);
        assert!(v2["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["kind"] == "handle_event"));
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in with the forges

struct OAuthCase {
    forge: Forge,
    fake: fake_forge::FakeForge,
}

async fn oauth_case(forge: Forge) -> OAuthCase {
    let fake = match forge {
        Forge::Github => fake_forge::FakeForge::github().await,
        Forge::Gitlab => fake_forge::FakeForge::gitlab().await,
        Forge::Bitbucket => fake_forge::FakeForge::bitbucket().await,
    };
    {
        let mut w = fake.world();
        w.oauth.add_client(
            "console-client",
            "console-secret",
            Some("http://localhost/console/auth/bitbucket/callback"),
        );
        // Ada owns org/group/workspace "acme"; Bob is a plain member of it; Eve owns
        // "globex" only.
        w.oauth.set_role(
            "acme",
            "ada",
            if forge == Forge::Github {
                "admin"
            } else {
                "owner"
            },
        );
        w.oauth.set_role(
            "acme",
            "bob",
            if forge == Forge::Gitlab {
                "developer"
            } else {
                "member"
            },
        );
        w.oauth.set_role(
            "globex",
            "eve",
            if forge == Forge::Github {
                "admin"
            } else {
                "owner"
            },
        );
        w.oauth
            .accounts
            .insert("101".into(), ("acme".into(), "Organization".into()));
        w.oauth
            .accounts
            .insert("202".into(), ("globex".into(), "Organization".into()));
    }
    OAuthCase { forge, fake }
}

fn oauth_config(t: &TestDb, case: &OAuthCase) -> Config {
    let mut c = config(t);
    c.bot.public_url = Some("http://localhost".into());
    let client = Some(OAuthClient {
        client_id: "console-client".into(),
        client_secret: Secret::new("console-secret"),
    });
    let base = case.fake.world().base_url.clone();
    match case.forge {
        Forge::Github => {
            c.console.github = client;
            c.bot.github_api_url = case.fake.url.clone();
            c.console.github_web_url = base;
        }
        Forge::Gitlab => {
            c.console.gitlab = client;
            c.bot.gitlab_url = case.fake.url.clone();
        }
        Forge::Bitbucket => {
            c.console.bitbucket = client;
            c.bot.bitbucket_api_url = case.fake.url.clone();
            c.console.bitbucket_web_url = base;
        }
    }
    c
}

/// Installations keyed the way each forge's intake keys them.
async fn forge_world(db: &pipewright::Db, forge: Forge) -> World {
    let (a, b) = match forge {
        Forge::Github => ("101", "202"),
        Forge::Gitlab => ("acme", "globex"),
        Forge::Bitbucket => (
            "{aaaaaaaa-0000-0000-0000-000000000001}",
            "{bbbbbbbb-0000-0000-0000-000000000002}",
        ),
    };
    let inst_a = seed::installation(db, forge, a, "acme", NOW).await;
    let inst_b = seed::installation(db, forge, b, "globex", NOW).await;
    let repo_a = seed::detailed_repository(db, forge, inst_a, "5001", "acme/api", NOW).await;
    let repo_b =
        seed::detailed_repository(db, forge, inst_b, "6001", "globex/secret-plans", NOW).await;
    let dead_a = seed::dead_job(db, forge, a, "5001", NOW).await;
    let dead_b = seed::dead_job(db, forge, b, "6001", NOW).await;
    World {
        inst_a,
        inst_b,
        repo_a,
        repo_b,
        dead_a,
        dead_b,
    }
}

/// Runs the browser's side of a sign-in as `login`: start → the forge's consent → the
/// callback. Returns the callback's answer.
async fn oauth_sign_in<S>(svc: &S, case: &OAuthCase, login: &str) -> ServiceResponse
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    case.fake.world().oauth.signed_in = Some(login.to_owned());
    let forge = case.forge.as_str();
    let r = test::call_service(
        svc,
        test::TestRequest::get()
            .uri(&format!("/console/auth/{forge}/start?next=/console/"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to_forge = location(&r);
    assert!(
        !to_forge.contains("console-secret"),
        "the secret never travels in a URL"
    );
    let state_cookie = r
        .response()
        .cookies()
        .find(|c| c.name() == console::auth::OAUTH_STATE_COOKIE)
        .unwrap()
        .value()
        .to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = browser.get(&to_forge).send().await.unwrap();
    assert_eq!(consent.status().as_u16(), 302, "{forge} consent");
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    let path = back
        .strip_prefix("http://localhost")
        .expect("back to pipewright");
    test::call_service(
        svc,
        test::TestRequest::get()
            .uri(path)
            .cookie(actix_web::cookie::Cookie::new(
                console::auth::OAUTH_STATE_COOKIE,
                state_cookie,
            ))
            .to_request(),
    )
    .await
}

async fn oauth_isolation(forge: Forge) {
    for t in TestDb::all().await {
        let case = oauth_case(forge).await;
        let w = forge_world(&t.db, forge).await;
        let svc = app(console_state(
            &t,
            oauth_config(&t, &case),
            Clock::manual(NOW),
        ))
        .await;

        // The admin of acme: a session that sees acme only.
        let r = oauth_sign_in(&svc, &case, "ada").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{forge} on {}", t.name);
        assert_eq!(location(&r), "/console/");
        let s = session_cookie(&r).expect("a session");
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/overview", &s)).await;
        let names: Vec<&str> = v["installations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["account"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["acme"], "{forge}");
        assert!(v["queue"].is_null(), "queue totals are for operators");
        let html = body_text(test::call_service(&svc, get("/console/", &s)).await).await;
        assert!(html.contains("acme") && !html.contains("globex"), "{html}");
        for uri in [
            format!("/console/installations/{}", w.inst_b),
            format!("/console/repositories/{}", w.repo_b),
            format!("/console/jobs/{}", w.dead_b),
            format!("/api/v1/installations/{}/repositories", w.inst_b),
            format!("/api/v1/repositories/{}", w.repo_b),
            format!("/api/v1/jobs/{}", w.dead_b),
        ] {
            let r = test::call_service(&svc, get(&uri, &s)).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri} ({forge})");
            assert!(!body_text(r).await.contains("secret-plans"));
        }
        for uri in [
            format!("/console/installations/{}", w.inst_a),
            format!("/console/repositories/{}", w.repo_a),
            format!("/console/jobs/{}", w.dead_a),
        ] {
            let r = test::call_service(&svc, get(&uri, &s)).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri} ({forge})");
        }
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/jobs", &s)).await;
        let ids: Vec<i64> = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [w.dead_a], "only acme's jobs ({forge})");
        // Another tenant's job cannot be retried either, even with a valid CSRF token.
        let html = body_text(
            test::call_service(&svc, get(&format!("/console/jobs/{}", w.dead_a), &s)).await,
        )
        .await;
        let csrf = csrf_of(&html);
        let r = test::call_service(
            &svc,
            test::TestRequest::post()
                .uri(&format!("/console/jobs/{}/retry", w.dead_b))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::SESSION_COOKIE,
                    s.clone(),
                ))
                .set_form([("csrf", csrf.as_str())])
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            store::get(&t.db, w.dead_b).await.unwrap().unwrap().state,
            store::JobState::Dead
        );

        // The admin of globex sees globex and not acme.
        let r = oauth_sign_in(&svc, &case, "eve").await;
        let s2 = session_cookie(&r).expect("a session");
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/overview", &s2)).await;
        let names: Vec<&str> = v["installations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["account"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["globex"], "{forge}");

        // A plain member is refused: no session.
        let r = oauth_sign_in(&svc, &case, "bob").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{forge}");
        assert!(session_cookie(&r).is_none());
        assert!(body_text(r).await.contains("not an owner or admin"));

        // A callback with a state that is not this browser's is refused.
        let r = test::call_service(
            &svc,
            test::TestRequest::get()
                .uri(&format!(
                    "/console/auth/{}/callback?code=x&state=forged",
                    forge.as_str()
                ))
                .cookie(actix_web::cookie::Cookie::new(
                    console::auth::OAUTH_STATE_COOKIE,
                    "other.L2NvbnNvbGUv",
                ))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(session_cookie(&r).is_none());
    }
}

#[actix_web::test]
async fn github_sign_in_sees_only_the_orgs_one_owns() {
    oauth_isolation(Forge::Github).await;
}

#[actix_web::test]
async fn gitlab_sign_in_sees_only_the_groups_one_owns() {
    oauth_isolation(Forge::Gitlab).await;
}

#[actix_web::test]
async fn bitbucket_sign_in_sees_only_the_workspaces_one_administers() {
    oauth_isolation(Forge::Bitbucket).await;
}

#[actix_web::test]
async fn forge_access_is_confirmed_again_after_a_while() {
    let t = TestDb::sqlite().await;
    let case = oauth_case(Forge::Github).await;
    let w = forge_world(&t.db, Forge::Github).await;
    let clock = Clock::manual(NOW);
    let svc = app(console_state(&t, oauth_config(&t, &case), clock.clone())).await;
    let r = oauth_sign_in(&svc, &case, "ada").await;
    let s = session_cookie(&r).unwrap();
    let uri = format!("/console/installations/{}", w.inst_a);
    assert_eq!(
        test::call_service(&svc, get(&uri, &s)).await.status(),
        StatusCode::OK
    );
    clock.advance(console::auth::ACCESS_TTL_MS + 1);
    let r = test::call_service(&svc, get(&uri, &s)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&r).starts_with("/console/auth/github/start?next="),
        "{}",
        location(&r)
    );
    let r = test::call_service(&svc, get("/api/v1/overview", &s)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Ada lost ownership meanwhile: the re-check refuses her.
    case.fake.world().oauth.set_role("acme", "ada", "member");
    let r = oauth_sign_in(&svc, &case, "ada").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn first_run_outcomes_by_class_appear_once_recorded() {
    for t in TestDb::all().await {
        let w = world(&t.db).await;
        let svc = app(console_state(&t, config(&t), Clock::manual(NOW))).await;
        let s = sign_in(&svc).await;
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/overview", &s)).await;
        // Nothing recorded yet: an empty table, not an error.
        assert_eq!(v["first_runs"], serde_json::json!([]), "{}", t.name);
        let rows = format!(
            "INSERT INTO first_run_outcomes (repository_id, pr_number, head_sha, run_id, class, action, created_at) VALUES
             ({a}, 7, 'h', 'r1', 'missing-executable', 'commit', 1),
             ({a}, 7, 'h2', 'r2', 'passed', 'none', 2),
             ({b}, 7, 'h', 'r3', 'passed', 'none', 3)",
            a = w.repo_a,
            b = w.repo_b
        );
        exec(&t.db, &rows).await;
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/overview", &s)).await;
        // Each PR's first run counts once: acme's PR first failed, globex's passed.
        assert_eq!(
            v["first_runs"],
            serde_json::json!([["missing-executable", 1], ["passed", 1]]),
            "{}",
            t.name
        );
        let html = body_text(test::call_service(&svc, get("/console/", &s)).await).await;
        assert!(
            html.contains("<td>missing-executable</td><td>1</td>"),
            "{html}"
        );
    }
}

async fn exec(db: &pipewright::Db, sql: &str) {
    match db {
        pipewright::Db::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        pipewright::Db::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

#[actix_web::test]
async fn reconcile_wait_follows_the_pass_and_its_analyses() {
    for t in TestDb::all().await {
        let started = NOW;
        let job = pipewright::jobs::ReconcileInstallation {
            forge: Forge::Github,
            installation: pipewright::forge::InstallationId("101".into()),
            period: -started,
        };
        let id = store::enqueue(&t.db, &pipewright::queue::NewJob::of(&job), started)
            .await
            .unwrap()
            .unwrap();
        // A worker elsewhere: the pass queues two analyses and ends, then they run.
        let db = t.db.clone();
        let worker = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let a = seed::dead_job(&db, Forge::Github, "101", "1", NOW + 1).await;
            let b = seed::dead_job(&db, Forge::Github, "101", "2", NOW + 2).await;
            exec(
                &db,
                &format!("UPDATE jobs SET state = 'queued' WHERE id IN ({a}, {b})"),
            )
            .await;
            exec(
                &db,
                &format!("UPDATE jobs SET state = 'succeeded' WHERE id = {id}"),
            )
            .await;
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            exec(
                &db,
                &format!("UPDATE jobs SET state = 'succeeded' WHERE id = {a}"),
            )
            .await;
            exec(
                &db,
                &format!("UPDATE jobs SET state = 'dead' WHERE id = {b}"),
            )
            .await;
        });
        let code = pipewright::app::wait_for_reconcile(&t.db, id, Forge::Github, "101", started)
            .await
            .unwrap();
        worker.await.unwrap();
        // One analysis died: the command says so with its exit code.
        assert_eq!(
            format!("{code:?}"),
            format!("{:?}", std::process::ExitCode::FAILURE),
            "{}",
            t.name
        );
        let (total, finished, dead) =
            pipewright::db::console::analysis_progress(&t.db, "github", "101", started)
                .await
                .unwrap();
        assert_eq!((total, finished, dead), (2, 2, 1));
    }
}

#[actix_web::test]
async fn api_calls_and_rate_limit_headroom_per_installation() {
    use pipewright::db::console::{record_api_usage, RateReading, HOUR_MS};
    for t in TestDb::all().await {
        let w = world(&t.db).await;
        let reading = |remaining, reset_at| RateReading {
            remaining,
            limit: Some(5000),
            reset_at: Some(reset_at),
        };
        // An hour ago (counts for the day only), then two jobs this hour.
        record_api_usage(&t.db, w.inst_a, 40, Some(reading(100, NOW)), NOW - HOUR_MS)
            .await
            .unwrap();
        record_api_usage(&t.db, w.inst_a, 9, Some(reading(4000, NOW + 1)), NOW)
            .await
            .unwrap();
        record_api_usage(&t.db, w.inst_a, 5, Some(reading(3000, NOW + 2)), NOW)
            .await
            .unwrap();
        record_api_usage(&t.db, w.inst_a, 2, None, NOW)
            .await
            .unwrap();
        let svc = app(console_state(&t, config(&t), Clock::manual(NOW))).await;
        let s = sign_in(&svc).await;
        let v: Value = test::call_and_read_body_json(&svc, get("/api/v1/overview", &s)).await;
        let acme = v["installations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["account"] == "acme")
            .unwrap()
            .clone();
        assert_eq!(acme["api_calls_this_hour"], 16, "{}", t.name);
        assert_eq!(acme["api_calls_last_day"], 56);
        assert_eq!(acme["rate_limit"], serde_json::json!([3000, 5000, NOW + 2]));
        let globex = v["installations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["account"] == "globex")
            .unwrap()
            .clone();
        assert_eq!(globex["api_calls_this_hour"], 0);
        assert!(globex["rate_limit"].is_null());
    }
}
