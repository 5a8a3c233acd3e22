//! The console in a real browser (Debian's `chromium` driven by `chromedriver` over
//! WebDriver): sign in with the operator token, open the overview, follow an
//! installation to a repository, see its proposal and diff, retry a dead job; a POST
//! without the CSRF token is refused. Every page is screenshotted into
//! `$CARGO_TARGET_TMPDIR/console-screenshots/` (not committed).
//!
//! Skipped with a notice when `chromedriver` is missing, unless
//! `PIPEWRIGHT_REQUIRE_BROWSER=1` (CI, which installs `chromium` and `chromium-driver`).

#[path = "support/console_seed.rs"]
mod seed;
#[path = "support/db.rs"]
mod testdb;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use fantoccini::{ClientBuilder, Locator};
use pipewright::clock::Clock;
use pipewright::config::{Config, Secret};
use pipewright::console::{self, setup::GithubAppSlot, ConsoleState};
use pipewright::forge::Forge;
use pipewright::queue::store;
use testdb::TestDb;

const ADMIN: &str = "operator-token-0123456789";
const NOW: i64 = 1_700_000_000_000;
/// Longest wait for chromedriver to listen and for a page element.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_driver() -> Option<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("chromedriver");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn start_driver() -> Option<(Driver, u16)> {
    let Some(path) = find_driver() else {
        if std::env::var("PIPEWRIGHT_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("PIPEWRIGHT_REQUIRE_BROWSER=1 but chromedriver is not installed");
        }
        eprintln!("skipped: browser test (install chromium and chromium-driver)");
        return None;
    };
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((driver, port))
}

fn chromium() -> String {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .unwrap_or("/usr/bin/chromium")
    .to_owned()
}

async fn shot(c: &fantoccini::Client, dir: &std::path::Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn wait_for(c: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(BROWSER_TIMEOUT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Waits until the current URL's query contains `part` (a GET form was submitted and
/// its page has replaced the previous one).
async fn wait_for_query(c: &fantoccini::Client, part: &str) {
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        let url = c.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains(part)) {
            return;
        }
        assert!(Instant::now() < deadline, "{part} never appeared in {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn operator_walks_the_console_in_a_real_browser() {
    let Some((_driver, port)) = start_driver() else {
        return;
    };
    let t = TestDb::sqlite().await;
    let db = t.db.clone();
    let inst = seed::installation(&db, Forge::Github, "101", "acme", NOW).await;
    seed::bulk_repositories(&db, Forge::Github, inst, "acme", 1_000_000, 120, NOW).await;
    let repo = seed::detailed_repository(&db, Forge::Github, inst, "5001", "acme/api", NOW).await;
    let dead = seed::dead_job(&db, Forge::Github, "101", "5001", NOW).await;

    let mut cfg = Config::for_database(&t.url);
    cfg.console.admin_token = Some(Secret::new(ADMIN));
    let cfg = Arc::new(cfg);
    let slot = Arc::new(GithubAppSlot::from_config(&cfg));
    let state =
        web::Data::new(ConsoleState::new(cfg, db.clone(), Clock::manual(NOW), slot).unwrap());
    let server = HttpServer::new(move || App::new().configure(console::configure(state.clone())))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1400,1000"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");

    // Not signed in: the sign-in page.
    c.goto(&format!("{base}/console/")).await.unwrap();
    wait_for(&c, "#token").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/console/login"));
    shot(&c, &dir, "01-sign-in").await;

    // Sign in with the operator token: back to the overview.
    wait_for(&c, "#token").await.send_keys(ADMIN).await.unwrap();
    wait_for(&c, "#signin").await.click().await.unwrap();
    wait_for(&c, "#installations").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/console/");
    let src = c.source().await.unwrap();
    assert!(src.contains("acme") && src.contains("admin (admin)"));
    shot(&c, &dir, "02-overview").await;

    // Follow the installation, filter, and open the repository.
    wait_for(&c, "a.installation").await.click().await.unwrap();
    wait_for(&c, "#repositories").await;
    assert!(c.source().await.unwrap().contains("121 repositories match"));
    shot(&c, &dir, "03-installation").await;
    let name = wait_for(&c, "#filters input[name=name]").await;
    name.send_keys("acme/api").await.unwrap();
    wait_for(&c, "#filters button").await.click().await.unwrap();
    // The filtered page is a new document: wait for its URL, so no element of the old
    // page (about to be replaced) is picked up and clicked.
    wait_for_query(&c, "name=acme").await;
    wait_for(&c, "#total").await;
    assert!(c.source().await.unwrap().contains("1 repositories match"));
    wait_for(&c, "a.repository").await.click().await.unwrap();
    wait_for(&c, "#diff").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/console/repositories/{repo}")
    );
    let src = c.source().await.unwrap();
    assert!(src.contains(".github/workflows/ci.yml"), "the proposal");
    assert!(src.contains("cargo test --locked"), "the proposed file");
    assert!(src.contains("rust.cargo: Cargo.toml"), "the evidence");
    shot(&c, &dir, "04-repository").await;

    // A POST without the CSRF token, from the signed-in page itself: refused.
    let status = c
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 fetch('/console/jobs/{dead}/retry', {{method: 'POST',
                   headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
                   body: 'csrf='}}).then(r => done(r.status), e => done(String(e)));"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));
    assert_eq!(
        store::get(&db, dead).await.unwrap().unwrap().state,
        store::JobState::Dead
    );

    // The dead job: its error, then Retry.
    c.goto(&format!("{base}/console/jobs?state=dead"))
        .await
        .unwrap();
    wait_for(&c, "#jobs").await;
    shot(&c, &dir, "05-jobs").await;
    wait_for(&c, &format!("a[href='/console/jobs/{dead}']"))
        .await
        .click()
        .await
        .unwrap();
    let last_error = wait_for(&c, "#last-error").await.text().await.unwrap();
    assert!(last_error.contains("HTTP 502"), "{last_error}");
    shot(&c, &dir, "06-dead-job").await;
    wait_for(&c, "#retry").await.click().await.unwrap();
    wait_for(&c, "#flash").await;
    assert_eq!(wait_for(&c, "#state").await.text().await.unwrap(), "queued");
    shot(&c, &dir, "07-job-retried").await;
    let job = store::get(&db, dead).await.unwrap().unwrap();
    assert_eq!(job.state, store::JobState::Queued);
    assert_eq!(job.attempts, 0);

    c.close().await.unwrap();
    handle.stop(true).await;
    for name in [
        "01-sign-in",
        "02-overview",
        "03-installation",
        "04-repository",
        "05-jobs",
        "06-dead-job",
        "07-job-retried",
    ] {
        let size = std::fs::metadata(dir.join(format!("{name}.png")))
            .unwrap()
            .len();
        assert!(size > 1_000, "{name}.png is {size} bytes");
    }
    eprintln!("screenshots in {}", dir.display());
}
