//! The real embedding model for tests: from `PIPEWRIGHT_MODEL_DIR` (made by
//! `deploy/provision-model`), loaded once per test binary. Without it a test that needs the
//! model is skipped with a printed notice, unless `PIPEWRIGHT_REQUIRE_MODEL=1` (CI), which
//! turns the skip into a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pipewright::learn::Embedder;

/// The model folder, or `None` (with a notice) when none is configured.
pub fn model_dir() -> Option<PathBuf> {
    match std::env::var("PIPEWRIGHT_MODEL_DIR") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            if std::env::var("PIPEWRIGHT_REQUIRE_MODEL").as_deref() == Ok("1") {
                panic!("PIPEWRIGHT_REQUIRE_MODEL=1 but PIPEWRIGHT_MODEL_DIR is not set");
            }
            eprintln!(
                "skipped: needs the embedding model (run deploy/provision-model DIR and set PIPEWRIGHT_MODEL_DIR=DIR)"
            );
            None
        }
    }
}

/// The model, loaded once per test binary.
pub fn embedder() -> Option<Arc<Embedder>> {
    static MODEL: OnceLock<Arc<Embedder>> = OnceLock::new();
    let dir = model_dir()?;
    Some(
        MODEL
            .get_or_init(|| {
                Arc::new(Embedder::load(&dir).expect("the model in PIPEWRIGHT_MODEL_DIR loads"))
            })
            .clone(),
    )
}
