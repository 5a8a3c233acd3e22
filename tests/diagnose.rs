//! The failure classifier over real-format job logs: every file under
//! `tests/data/logs/<format>/<class>/` (GitHub, GitLab and Bitbucket job logs with their
//! decorations, and plain output) is normalised and classified; the class must be its
//! folder, and the subject and failing step what `tests/data/logs/expected.toml` says.
//! Each format has at least three logs of every class.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pipewright::diagnose::{classify, normalise, FailureClass, LogFormat, MAX_EXCERPT_LINES};

/// Logs each class needs per format.
const MIN_PER_CLASS: usize = 3;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    subject: Option<String>,
    step: Option<String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs")
}

#[test]
fn every_log_is_classified_as_its_folder_says() {
    let root = data_dir();
    let expected: BTreeMap<String, Expected> =
        toml::from_str(&std::fs::read_to_string(root.join("expected.toml")).unwrap()).unwrap();
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    let mut counts: BTreeMap<(LogFormat, FailureClass), usize> = BTreeMap::new();
    let mut slowest = (0.0f64, String::new());
    for format in LogFormat::ALL {
        for class in FailureClass::ALL {
            let dir = root.join(format.as_str()).join(class.id());
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            files.sort();
            *counts.entry((format, class)).or_default() = files.len();
            for path in files {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                seen.push(rel.clone());
                let raw = std::fs::read(&path).unwrap();
                let start = Instant::now();
                let d = classify(&normalise(&raw, format));
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                if ms > slowest.0 {
                    slowest = (ms, rel.clone());
                }
                let mut wrong = Vec::new();
                if d.class != class {
                    wrong.push(format!("class {} (rule {})", d.class, d.rule));
                }
                match expected.get(&rel) {
                    None => wrong.push("no entry in expected.toml".into()),
                    Some(e) => {
                        if e.subject.is_some() && d.subject != e.subject {
                            wrong.push(format!("subject {:?}, want {:?}", d.subject, e.subject));
                        }
                        if e.step.is_some() && d.step != e.step {
                            wrong.push(format!("step {:?}, want {:?}", d.step, e.step));
                        }
                    }
                }
                if d.excerpt.is_empty() || d.excerpt.len() > MAX_EXCERPT_LINES {
                    wrong.push(format!("{} excerpt lines", d.excerpt.len()));
                }
                if !wrong.is_empty() {
                    failures.push(format!(
                        "{rel}: {}\n  excerpt: {:#?}",
                        wrong.join("; "),
                        d.excerpt
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} logs:\n{}",
        failures.len(),
        seen.len(),
        failures.join("\n")
    );
    let stale: Vec<&String> = expected.keys().filter(|k| !seen.contains(k)).collect();
    assert!(
        stale.is_empty(),
        "expected.toml names missing logs: {stale:?}"
    );
    let thin: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n < MIN_PER_CLASS)
        .map(|((f, c), n)| format!("{}/{}: {n}", f.as_str(), c.id()))
        .collect();
    assert!(thin.is_empty(), "fewer than {MIN_PER_CLASS} logs: {thin:?}");
    eprintln!(
        "{} logs classified; slowest {:.2} ms ({})",
        seen.len(),
        slowest.0,
        slowest.1
    );
}

/// The excerpt quotes the lines that matter, not the decorations.
#[test]
fn excerpts_are_clean_and_to_the_point() {
    let raw = std::fs::read(data_dir().join("github/tests-failing/pytest-time-zone.log")).unwrap();
    let d = classify(&normalise(&raw, LogFormat::Github));
    let text = d.excerpt.join("\n");
    assert!(text.contains("1 failed, 12 passed"), "{text}");
    assert!(
        text.contains("FAILED tests/test_api.py::test_timestamp"),
        "{text}"
    );
    assert!(!text.contains("##[") && !text.contains('\u{1b}'), "{text}");
    assert!(
        d.excerpt.iter().all(|l| !l.starts_with("2024-05-01T")),
        "no timestamps: {text}"
    );
    assert!(
        !text.contains("Post job cleanup") && !text.contains("Process completed"),
        "no runner bookkeeping: {text}"
    );
    let raw = std::fs::read(data_dir().join("gitlab/lint-findings/mypy-errors.log")).unwrap();
    let d = classify(&normalise(&raw, LogFormat::Gitlab));
    assert!(
        d.excerpt.iter().any(|l| l.contains("[return-value]")),
        "{:?}",
        d.excerpt
    );
    assert!(d.excerpt.iter().all(|l| !l.contains("section_")));
}

/// A hundred-megabyte log is read from its tail in bounded time.
#[test]
fn a_huge_log_is_bounded() {
    let tail =
        std::fs::read(data_dir().join("gitlab/missing-executable/just-not-installed.log")).unwrap();
    let mut raw = Vec::with_capacity(100 << 20);
    let noise = b"\x1b[32;1m   Compiling noise v0.1.0 (/builds/acme/app)\x1b[0;m\r\n";
    while raw.len() < 100 << 20 {
        raw.extend_from_slice(noise);
    }
    raw.extend_from_slice(&tail);
    let start = Instant::now();
    let log = normalise(&raw, LogFormat::Gitlab);
    let d = classify(&log);
    let elapsed = start.elapsed();
    assert!(log.len() <= pipewright::diagnose::MAX_LOG_BYTES);
    assert_eq!(d.class, FailureClass::MissingExecutable);
    assert_eq!(d.subject.as_deref(), Some("just"));
    eprintln!("100 MiB log: {elapsed:?}");
}
