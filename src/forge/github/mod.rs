//! GitHub: webhook payloads (App and repository hooks) and App authentication.

pub mod auth;
pub mod client;
pub(crate) mod payload;
