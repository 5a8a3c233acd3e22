//! Locates `../shared` (the real webhook payloads and signature vectors). Tests that need
//! it skip with a printed notice when it is absent, unless `PIPEWRIGHT_REQUIRE_SHARED=1`
//! (CI), which turns the skip into a failure.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared folder, or `None` (after printing why) when it is absent and not required.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PIPEWRIGHT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")));
    if dir.join("fixtures/webhooks").is_dir() {
        return Some(dir);
    }
    if std::env::var("PIPEWRIGHT_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!(
            "PIPEWRIGHT_REQUIRE_SHARED=1 but {} has no fixtures/webhooks",
            dir.display()
        );
    }
    eprintln!("skipped: shared fixtures not found at {}", dir.display());
    None
}
