//! pipewright: a CI/CD bot for GitHub, GitLab and Bitbucket Cloud. It receives webhooks,
//! verifies and queues them durably, keeps track of installations and repositories, and
//! (in the capabilities built on this foundation) detects each repository's stack and
//! opens one fix-up pull request with the CI it is missing.
//!
//! Map: `server` (HTTP intake) → `db` + `queue` (durable jobs) → `jobs` (what each job
//! does) ; `forge` (wire formats → typed events) ; `diagnose` (why a CI job failed,
//! from its log) ; `config`, `telemetry`, `metrics`.

pub mod analyze;
pub mod app;
pub mod bot;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod deploy;
pub mod diagnose;
pub mod forge;
pub mod generate;
pub mod jobs;
pub mod learn;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod repo_config;
pub mod server;
pub mod telemetry;

pub use clock::Clock;
pub use config::Config;
pub use db::Db;
