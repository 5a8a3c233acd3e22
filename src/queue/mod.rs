//! The durable job queue: typed jobs stored in the `jobs` table, claimed with a lease by
//! workers in any number of processes, retried with backoff, dead-lettered after
//! `max_attempts`. At-least-once: every job must be safe to run twice.
//!
//! - `store.rs` holds all SQL (claim / heartbeat / complete / fail / admin).
//! - `registry.rs` maps a stored `kind` to its handler.
//! - `worker.rs` runs the claim loop, leases, heartbeats, shutdown.

pub mod registry;
pub mod store;
pub mod worker;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::Millis;

pub use registry::{JobRun, Registry};
pub use store::{JobRow, JobState};
pub use worker::{WorkerHandle, WorkerOptions, WorkerPool};

/// Default attempts before a job is dead.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 8;
/// First retry delay, in milliseconds; doubles with every attempt.
pub const BACKOFF_BASE_MS: Millis = 5_000;
/// Longest retry delay, in milliseconds (one hour).
pub const BACKOFF_MAX_MS: Millis = 60 * 60 * 1000;

/// A kind of background work. The struct is the payload (stored as JSON).
///
/// `KIND` is stored in the database: never rename it. To add a job kind: write the
/// struct and `impl Job`, register its handler in `jobs::registry()`, and list it in
/// `jobs::ALL_KINDS` (a test checks the kinds are unique).
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stored identifier of this kind.
    const KIND: &'static str;
    /// Attempts before the job is dead.
    const MAX_ATTEMPTS: i64 = DEFAULT_MAX_ATTEMPTS;
    /// Higher runs first.
    const PRIORITY: i64 = 0;

    /// Enqueueing a job whose dedupe key is already queued or running is a no-op.
    fn dedupe_key(&self) -> Option<String> {
        None
    }

    /// Two jobs with the same concurrency key never run at the same time.
    fn concurrency_key(&self) -> Option<String> {
        None
    }
}

/// A job ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Stored kind.
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// See [`Job::dedupe_key`].
    pub dedupe_key: Option<String>,
    /// See [`Job::concurrency_key`].
    pub concurrency_key: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Not before this time; `None` = now.
    pub run_at: Option<Millis>,
    /// Attempts before dead.
    pub max_attempts: i64,
}

impl NewJob {
    /// Builds the row for a typed job.
    pub fn of<J: Job>(job: &J) -> NewJob {
        NewJob {
            kind: J::KIND.to_owned(),
            // Serializing our own derive(Serialize) structs to a String cannot fail.
            payload: serde_json::to_string(job).expect("job payloads serialize to JSON"),
            dedupe_key: job.dedupe_key(),
            concurrency_key: job.concurrency_key(),
            priority: J::PRIORITY,
            run_at: None,
            max_attempts: J::MAX_ATTEMPTS,
        }
    }

    /// Defers the job until `at`.
    pub fn run_at(mut self, at: Millis) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// How a job run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network, 5xx, timeouts): retried with backoff.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (bad payload, 4xx): dead at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
    /// Not now (rate limit): run again at `until`; the attempt is not counted.
    #[error("deferred until {until}: {reason}")]
    Defer {
        /// When to run again, milliseconds since the epoch.
        until: Millis,
        /// Why (logged and kept as `last_error`).
        reason: String,
    },
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Retry(e)
    }
}

/// Delay before the next attempt after `attempts` failed ones: exponential, capped, with
/// "equal jitter" (half fixed, half random) so a burst of failures does not retry in step.
pub fn backoff_delay(attempts: i64, random_unit: f64) -> Millis {
    let exp = attempts.clamp(1, 32) - 1;
    let full = BACKOFF_BASE_MS
        .saturating_mul(1_i64 << exp)
        .min(BACKOFF_MAX_MS);
    let half = full / 2;
    half + (half as f64 * random_unit.clamp(0.0, 1.0)) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        assert_eq!(backoff_delay(1, 0.0), 2_500);
        assert_eq!(backoff_delay(1, 1.0), 5_000);
        assert_eq!(backoff_delay(2, 0.0), 5_000);
        assert_eq!(backoff_delay(3, 1.0), 20_000);
        assert_eq!(backoff_delay(4, 0.5), 30_000);
        assert_eq!(backoff_delay(30, 1.0), BACKOFF_MAX_MS);
        assert_eq!(backoff_delay(i64::MAX, 0.0), BACKOFF_MAX_MS / 2);
        assert_eq!(backoff_delay(0, 0.0), 2_500);
        for attempt in 1..20 {
            let lo = backoff_delay(attempt, 0.0);
            let hi = backoff_delay(attempt, 1.0);
            assert!(lo <= hi && hi <= BACKOFF_MAX_MS && lo * 2 == hi);
        }
    }
}
