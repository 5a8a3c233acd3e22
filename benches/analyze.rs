//! Detection benchmark: analysis time per fixture repository (median and p95 over
//! repeated runs, listing + reading + rules, as `pipewright analyze` does it), files read
//! per repository (the proxy for forge API calls), and a generated 50,000-file tree.
//! Also: generation time per repository and provider. Run: `cargo bench --bench analyze`.

use std::path::Path;
use std::time::{Duration, Instant};

use pipewright::analyze::{analyze, analyze_path, load_local, Limits};
use pipewright::generate::{generate, Provider, Target};

const RUNS: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut medians = Vec::new();
    let mut all = Vec::new();
    let mut reads = Vec::new();
    println!(
        "{:<30} {:>10} {:>10} {:>6} {:>6}",
        "fixture", "median", "p95", "files", "read"
    );
    for name in &names {
        let dir = root.join(name);
        let mut times = Vec::with_capacity(RUNS);
        let mut last = None;
        for _ in 0..RUNS {
            let t = Instant::now();
            let a = analyze_path(&dir).unwrap();
            times.push(t.elapsed());
            last = Some(a);
        }
        times.sort();
        let a = last.unwrap();
        let listed = load_local(&dir, &Limits::default()).unwrap().files().len();
        println!(
            "{name:<30} {:>8.3}ms {:>8.3}ms {listed:>6} {:>6}",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            a.files_read
        );
        medians.push(percentile(&times, 0.5));
        all.extend(times);
        reads.push(a.files_read);
    }
    medians.sort();
    all.sort();
    reads.sort();
    println!(
        "all fixtures: median {:.3} ms, p95 {:.3} ms; files read per repository: median {}, max {}",
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.95).as_secs_f64() * 1e3,
        reads[reads.len() / 2],
        reads[reads.len() - 1]
    );

    // Generation: per fixture and provider, from an analysis already made.
    for provider in [Provider::Github, Provider::Gitlab, Provider::Bitbucket] {
        let target = Target {
            provider,
            ..Target::github()
        };
        let mut per_repo = Vec::new();
        for name in &names {
            let a = analyze_path(&root.join(name)).unwrap();
            let mut times = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let t = Instant::now();
                let files = generate(&a, &target).unwrap();
                times.push(t.elapsed());
                std::hint::black_box(files);
            }
            times.sort();
            per_repo.push(percentile(&times, 0.5));
        }
        per_repo.sort();
        println!(
            "generate {provider:?}: median {:.3} ms, max {:.3} ms per repository (render + validate)",
            percentile(&per_repo, 0.5).as_secs_f64() * 1e3,
            per_repo[per_repo.len() - 1].as_secs_f64() * 1e3
        );
    }

    // A generated 50,000-file tree (500 directories x 100 files) with one manifest.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"big\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    for i in 0..500 {
        let d = dir.path().join(format!("src/m{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for j in 0..100 {
            std::fs::write(d.join(format!("f{j}.rs")), "").unwrap();
        }
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let tree = load_local(dir.path(), &Limits::default()).unwrap();
        let a = analyze(&tree);
        times.push(t.elapsed());
        assert_eq!(a.projects.len(), 1);
    }
    times.sort();
    println!(
        "50,000-file tree: median {:.1} ms, max {:.1} ms (listing + analysis)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
