//! Webhook intake benchmark: signed GitHub push deliveries over loopback HTTP/1.1 into a
//! real server (durable enqueue: delivery + job committed before the 202), on SQLite and,
//! when `PIPEWRIGHT_TEST_DATABASE_URL` is set, PostgreSQL; next to a plain 200-OK route
//! served by the same binary, as the ceiling.
//!
//! Two phases per target: saturation (64 connections back to back: accepted/s, p50/p99)
//! and a paced open-loop load of 2,000 requests/s (p50/p99 measured from the intended
//! send time, so a stall is not hidden). Run: `cargo bench --bench intake`.
//! `PW_BENCH_REQUESTS` sets the saturation request count (default 30,000).

#[path = "../tests/support/db.rs"]
mod testdb;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use pipewright::clock::Clock;
use pipewright::config::{Config, Secret};
use pipewright::metrics::Metrics;
use pipewright::server::{self, AppState, Intake};
use sha2::Sha256;
use testdb::TestDb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const SECRET: &str = "bench-secret";
const CONNECTIONS: usize = 64;
const PACED_RATE: u64 = 2_000;
const PACED_SECS: u64 = 5;

fn push_body(i: usize) -> String {
    format!(
        r#"{{"ref":"refs/heads/main","before":"1111111111111111111111111111111111111111","after":"{:040x}","created":false,"deleted":false,"forced":false,"commits":[{{"added":["src/lib.rs"],"modified":["Cargo.toml"],"removed":[]}}],"repository":{{"id":{},"full_name":"acme/repo-{}","default_branch":"main","private":false,"archived":false,"fork":false,"owner":{{"login":"acme"}}}},"installation":{{"id":7}},"sender":{{"login":"alice","id":1,"type":"User"}}}}"#,
        i + 1,
        1000 + i % 500,
        i % 500
    )
}

fn signed_request(i: usize, run: &str) -> Vec<u8> {
    let body = push_body(i);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: {run}-{i}\r\nX-Hub-Signature-256: sha256={sig}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ok_request() -> Vec<u8> {
    b"GET /bench/ok HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec()
}

async fn roundtrip(reader: &mut BufReader<TcpStream>, req: &[u8]) -> u16 {
    reader.get_mut().write_all(req).await.expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut len = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.expect("body");
    status
}

struct Outcome {
    rate: f64,
    p50: Duration,
    p99: Duration,
    ok: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Saturation: every connection sends its share back to back.
async fn saturate(addr: std::net::SocketAddr, requests: Arc<Vec<Vec<u8>>>) -> Outcome {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
            let (mut lat, mut ok) = (Vec::new(), 0);
            for req in requests.iter().skip(c).step_by(CONNECTIONS) {
                let t = Instant::now();
                let status = roundtrip(&mut reader, req).await;
                lat.push(t.elapsed());
                ok += usize::from(status == 202 || status == 200);
            }
            (lat, ok)
        }));
    }
    let (mut lat, mut ok) = (Vec::new(), 0);
    for t in tasks {
        let (l, o) = t.await.unwrap();
        lat.extend(l);
        ok += o;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    Outcome {
        rate: lat.len() as f64 / secs,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        ok,
    }
}

/// Open loop at `PACED_RATE`: request i is due at start + i/rate; latency counts from then.
async fn paced(addr: std::net::SocketAddr, requests: Arc<Vec<Vec<u8>>>) -> Outcome {
    let total = (PACED_RATE * PACED_SECS) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
            let (mut lat, mut ok) = (Vec::new(), 0);
            for i in (c..total).step_by(CONNECTIONS) {
                let due = start + Duration::from_nanos(i as u64 * 1_000_000_000 / PACED_RATE);
                tokio::time::sleep_until(due.into()).await;
                let status = roundtrip(&mut reader, &requests[i % requests.len()]).await;
                lat.push(due.elapsed());
                ok += usize::from(status == 202 || status == 200);
            }
            (lat, ok)
        }));
    }
    let (mut lat, mut ok) = (Vec::new(), 0);
    for t in tasks {
        let (l, o) = t.await.unwrap();
        lat.extend(l);
        ok += o;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    Outcome {
        rate: lat.len() as f64 / secs,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        ok,
    }
}

async fn start_server(t: &TestDb) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let mut config = Config::for_database(&t.url);
    config.github_webhook_secrets = vec![Secret::new(SECRET)];
    let clock = Clock::System;
    let (intake, _writers) = Intake::start(t.db.clone(), clock.clone(), Arc::new(Notify::new()));
    let state = web::Data::new(AppState {
        github_app: Arc::new(pipewright::console::setup::GithubAppSlot::from_config(
            &config,
        )),
        config: Arc::new(config),
        db: t.db.clone(),
        intake,
        metrics: Arc::new(Metrics::new()),
        clock,
    });
    let server = HttpServer::new(move || {
        App::new()
            .configure(server::configure(state.clone()))
            .route(
                "/bench/ok",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    (addr, handle)
}

fn row(name: &str, o: &Outcome, ceiling: Option<f64>) {
    let ratio = ceiling
        .map(|c| format!("ratio to plain route {:.2}", o.rate / c))
        .unwrap_or_default();
    println!(
        "{name:<44} {:>10.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ok {:>6}  {ratio}",
        o.rate,
        o.p50.as_secs_f64() * 1000.0,
        o.p99.as_secs_f64() * 1000.0,
        o.ok
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n: usize = std::env::var("PW_BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
        println!("intake benchmark: {n} signed GitHub push deliveries, {CONNECTIONS} keep-alive connections, loopback");
        let mut targets = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres().await {
            targets.push(pg);
        }
        let ok_reqs = Arc::new(vec![ok_request()]);
        let mut ceiling = None;
        for (ti, t) in targets.iter().enumerate() {
            let (addr, handle) = start_server(t).await;
            if ti == 0 {
                let ok_many = Arc::new(vec![ok_request(); n]);
                let o = saturate(addr, ok_many).await;
                row("plain 200 route, saturation", &o, None);
                ceiling = Some(o.rate);
                let o = paced(addr, ok_reqs.clone()).await;
                row(&format!("plain 200 route, paced {PACED_RATE}/s"), &o, None);
            }
            let reqs: Arc<Vec<Vec<u8>>> = Arc::new((0..n).map(|i| signed_request(i, &format!("sat{ti}"))).collect());
            let o = saturate(addr, reqs).await;
            assert_eq!(o.ok, n, "every delivery must be accepted");
            row(&format!("{} webhook intake, saturation", t.name), &o, ceiling);
            let paced_reqs: Arc<Vec<Vec<u8>>> = Arc::new(
                (0..(PACED_RATE * PACED_SECS) as usize).map(|i| signed_request(i, &format!("pace{ti}"))).collect(),
            );
            let o = paced(addr, paced_reqs).await;
            row(&format!("{} webhook intake, paced {PACED_RATE}/s", t.name), &o, None);
            handle.stop(false).await;
        }
    });
}
