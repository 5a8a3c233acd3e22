//! Learned detection's numbers: embedding latency per fingerprint at batch 1 and 32 and
//! peak RSS with the model loaded — beside sentence-transformers (PyTorch, CPU) on the
//! same texts in the same run when `PIPEWRIGHT_BENCH_PYTHON` names a Python with
//! sentence-transformers — then usearch query latency at 100,000 vectors with a filter,
//! and start-up of the sibling index with and without its cached file.
//!
//! `PIPEWRIGHT_MODEL_DIR=DIR PIPEWRIGHT_BENCH_PYTHON=/path/to/python cargo bench --bench embed`
//! (`EMBED_BENCH_ROUNDS`, default 5; `EMBED_BENCH_VECTORS`, default 100000).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pipewright::analyze::fingerprint::fingerprint;
use pipewright::analyze::tree::load_local_learned;
use pipewright::analyze::Limits;
use pipewright::db::installations::{self, InstallationState, RepoState};
use pipewright::db::learn::{self as store, NewConventions};
use pipewright::forge::event::Repo;
use pipewright::forge::{Forge, RepoId};
use pipewright::learn::index::VectorIndex;
use pipewright::learn::{Corpus, Embedder, Siblings};
use pipewright::Db;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn texts() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<String> = Corpus::builtin()
        .unwrap()
        .exemplars()
        .iter()
        .map(|(_, _, t)| (*t).to_owned())
        .collect();
    for kind in ["repos", "learned"] {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for d in dirs {
            if let Some(fp) = load_local_learned(&d, &Limits::default())
                .ok()
                .and_then(|t| fingerprint(&t, "."))
            {
                out.push(fp.text);
            }
        }
    }
    out
}

fn per_text_ms(model: &Embedder, texts: &[&str], batch: usize, rounds: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for chunk in texts.chunks(batch) {
            model.embed(chunk).unwrap();
        }
        best = best.min(start.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64);
    }
    best
}

fn unit(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // As the pipewright binary does, before any thread starts.
    pipewright::learn::model::fix_thread_count();
    let rounds: usize = std::env::var("EMBED_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let n_vectors: usize = std::env::var("EMBED_BENCH_VECTORS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    let model_dir = std::env::var("PIPEWRIGHT_MODEL_DIR")
        .ok()
        .filter(|d| !d.is_empty());
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    if let Some(dir) = &model_dir {
        let rss_before = peak_rss_mib();
        let start = Instant::now();
        let model = Embedder::load(Path::new(dir)).unwrap();
        let load_ms = start.elapsed().as_secs_f64() * 1000.0;
        model.embed(&refs[..4]).unwrap();
        let b1 = per_text_ms(&model, &refs, 1, rounds);
        let b32 = per_text_ms(&model, &refs, 32, rounds);
        let rss = peak_rss_mib();
        let tokens: usize = refs
            .iter()
            .map(|t| t.split_whitespace().count())
            .sum::<usize>()
            / refs.len();
        println!(
            "embedding: {} fingerprints (≈{tokens} words each), best of {rounds} rounds",
            refs.len()
        );
        println!(
            "  candle f32   load {load_ms:>7.0} ms  batch 1 {b1:>6.2} ms/fp  batch 32 {b32:>6.2} ms/fp  peak RSS {rss:>6.0} MiB (before the model: {rss_before:.0} MiB)"
        );
        match std::env::var("PIPEWRIGHT_BENCH_PYTHON").ok().filter(|p| !p.is_empty()) {
            Some(py) => {
                let tmp = std::env::temp_dir().join(format!("embed-bench-{}.json", std::process::id()));
                std::fs::write(&tmp, serde_json::to_vec(&texts).unwrap()).unwrap();
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/embed_pytorch.py");
                let out = std::process::Command::new(py)
                    .arg(script)
                    .arg(dir)
                    .arg(&tmp)
                    .arg(rounds.to_string())
                    .output()
                    .expect("the Python benchmark runs");
                let _ = std::fs::remove_file(&tmp);
                let line = String::from_utf8_lossy(&out.stdout);
                match serde_json::from_str::<HashMap<String, serde_json::Value>>(line.trim()) {
                    Ok(r) => {
                        let f = |k: &str| r.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
                        println!(
                            "  pytorch {}  load {:>7.0} ms  batch 1 {:>6.2} ms/fp  batch 32 {:>6.2} ms/fp  peak RSS {:>6.0} MiB ({} threads)",
                            r.get("torch").and_then(|v| v.as_str()).unwrap_or("?"),
                            f("load_ms"),
                            f("batch1_ms_per_text"),
                            f("batch32_ms_per_text"),
                            f("peak_rss_mib"),
                            r.get("threads").map(|v| v.to_string()).unwrap_or_default()
                        );
                        println!(
                            "  candle / pytorch: batch 1 {:.2}×, batch 32 {:.2}× the time; RSS {:.2}× ",
                            b1 / f("batch1_ms_per_text"),
                            b32 / f("batch32_ms_per_text"),
                            rss / f("peak_rss_mib")
                        );
                    }
                    Err(e) => println!(
                        "  pytorch: no result ({e}); stderr: {}",
                        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                    ),
                }
            }
            None => println!("  pytorch: skipped (set PIPEWRIGHT_BENCH_PYTHON to a Python with sentence-transformers)"),
        }
    } else {
        println!("embedding: skipped (set PIPEWRIGHT_MODEL_DIR)");
    }

    // usearch at scale: one index of n_vectors, queried with a filter that passes one key
    // in ten (a stack or an installation among ten).
    let start = Instant::now();
    let index = VectorIndex::new(384).unwrap();
    for k in 0..n_vectors as u64 {
        index.add(k, &unit(k)).unwrap();
    }
    let build_s = start.elapsed().as_secs_f64();
    let mut filtered = Vec::new();
    let mut plain = Vec::new();
    for q in 0..1000u64 {
        let query = unit(1_000_000 + q);
        let t = Instant::now();
        let hits = index.search(&query, 5, |k| k % 10 == q % 10).unwrap();
        filtered.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(hits.iter().all(|h| h.key % 10 == q % 10));
        let t = Instant::now();
        index.search(&query, 5, |_| true).unwrap();
        plain.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "usearch: {n_vectors} vectors built in {build_s:.1} s ({:.0} MiB); query k=5 with a 1-in-10 filter p50 {:.0} µs p99 {:.0} µs; unfiltered p50 {:.0} µs p99 {:.0} µs",
        index.memory_usage() as f64 / 1048576.0,
        percentile(filtered.clone(), 0.5),
        percentile(filtered, 0.99),
        percentile(plain.clone(), 0.5),
        percentile(plain, 0.99),
    );
    drop(index);

    // Start-up of one installation's sibling index: from the database vs from its file.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect_and_migrate(&format!("sqlite://{}", dir.path().join("b.db").display())).await.unwrap();
        let repos = (n_vectors / 5).max(1000);
        let inst = installations::upsert_installation(&db, Forge::Github, "1", Some("bench"), InstallationState::Active, 1).await.unwrap();
        let model = "benchmodel000000";
        let start = Instant::now();
        for i in 0..repos {
            let id = installations::upsert_repo(&db, Some(inst), Forge::Github, &Repo {
                id: RepoId(i.to_string()),
                full_name: format!("bench/r{i}"),
                default_branch: None, private: None, archived: None, fork: None,
            }, RepoState::Active, 1).await.unwrap();
            let hash = format!("h{i}");
            store::put_embeddings(&db, model, &[(hash.clone(), unit(i as u64))], 1).await.unwrap();
            store::upsert_conventions(&db, &NewConventions {
                repository_id: id, installation_id: inst, language: "python", fingerprint_hash: &hash,
                fingerprint: "files: x", has_ci: true, conventions: "{}",
            // Recorded a minute apart, as analyses arrive over time.
            }, i as i64 * 60_000).await.unwrap();
        }
        let fill_s = start.elapsed().as_secs_f64();
        let data = tempfile::tempdir().unwrap();
        let s = Siblings::new(model, Some(data.path()));
        let t = Instant::now();
        s.warm(&db).await.unwrap();
        let cold = t.elapsed().as_secs_f64() * 1000.0;
        let s2 = Arc::new(Siblings::new(model, Some(data.path())));
        let t = Instant::now();
        s2.warm(&db).await.unwrap();
        let warm = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "sibling index start-up, {repos} repositories (SQLite, filled in {fill_s:.0} s): rebuilt from the database {cold:.0} ms; from the cached file {warm:.0} ms"
        );
    });
}
