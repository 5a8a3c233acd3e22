//! GitHub App authentication against a fake API: the App JWT is RS256, signed by the
//! App's key and verifiable with its public key (iss = App id, at most 10 minutes);
//! installation tokens are cached until five minutes before they expire, then renewed;
//! a refusal is an error carrying GitHub's answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use pipewright::clock::Clock;
use pipewright::config::Secret;
use pipewright::forge::github::auth::{AppCredentials, TokenCache};

const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

fn key(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

async fn fake(
    calls: Arc<AtomicUsize>,
    expires_at: &'static str,
) -> (String, actix_web::dev::ServerHandle) {
    let public = key("test-app.pub.pem");
    let server = HttpServer::new(move || {
        let (calls, public) = (calls.clone(), public.clone());
        App::new().route(
            "/app/installations/{id}/access_tokens",
            web::post().to(move |req: HttpRequest, id: web::Path<u64>| {
                let (calls, public) = (calls.clone(), public.clone());
                async move {
                    let Some(jwt) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
                        return HttpResponse::Unauthorized().json(serde_json::json!({"message": "Requires authentication"}));
                    };
                    let mut v = Validation::new(Algorithm::RS256);
                    v.validate_exp = false; // the test clock is in the past
                    let Ok(data) = decode::<Claims>(jwt, &DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(), &v) else {
                        return HttpResponse::Unauthorized().json(serde_json::json!({"message": "A JSON web token could not be decoded"}));
                    };
                    assert_eq!(data.claims.iss, "4242");
                    assert!(data.claims.exp - data.claims.iat <= 600, "GitHub refuses JWTs over 10 minutes");
                    if *id == 404 {
                        return HttpResponse::NotFound().json(serde_json::json!({"message": "Not Found"}));
                    }
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    HttpResponse::Created().json(serde_json::json!({"token": format!("ghs_token{n}"), "expires_at": expires_at}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}"), handle)
}

#[actix_web::test]
async fn installation_tokens_are_cached_then_renewed_and_refusals_are_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    // Expires one hour after T0.
    let (url, handle) = fake(calls.clone(), "2023-11-14T23:13:20Z").await;
    let clock = Clock::manual(T0);
    let app = AppCredentials::new(4242, &Secret::new(key("test-app.pem"))).unwrap();
    let cache = TokenCache::new(&url, app, clock.clone()).unwrap();

    let t1 = cache.token(7).await.unwrap();
    let t2 = cache.token(7).await.unwrap();
    assert_eq!((t1.expose(), t2.expose()), ("ghs_token1", "ghs_token1"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second call used the cache"
    );
    // 54 minutes later, 6 minutes left: still cached. 56 minutes: renewed.
    clock.advance(54 * 60 * 1000);
    assert_eq!(cache.token(7).await.unwrap().expose(), "ghs_token1");
    clock.advance(2 * 60 * 1000);
    assert_eq!(cache.token(7).await.unwrap().expose(), "ghs_token2");
    // Another installation has its own token; forgetting drops it.
    assert_eq!(cache.token(8).await.unwrap().expose(), "ghs_token3");
    cache.forget(8);
    assert_eq!(cache.token(8).await.unwrap().expose(), "ghs_token4");

    let err = format!("{:#}", cache.token(404).await.unwrap_err());
    assert_eq!(
        err,
        "github create installation token: HTTP 404: installation 404: {\"message\":\"Not Found\"}"
    );
    // A token never shows in Debug output.
    assert_eq!(format!("{t1:?}"), "[redacted]");
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_wrong_key_is_refused_by_github() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (url, handle) = fake(calls, "2023-11-14T23:13:20Z").await;
    let other = String::from_utf8(
        std::process::Command::new("openssl")
            .args(["genrsa", "2048"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap();
    if other.contains("PRIVATE KEY") {
        let cache = TokenCache::new(
            &url,
            AppCredentials::new(4242, &Secret::new(other)).unwrap(),
            Clock::manual(T0),
        )
        .unwrap();
        let err = format!("{:#}", cache.token(7).await.unwrap_err());
        assert!(err.contains("HTTP 401"), "{err}");
    } else {
        eprintln!("skipped: openssl not available to make a second key");
    }
    handle.stop(false).await;
}
