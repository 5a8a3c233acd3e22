//! GitHub: webhook payloads (App and repository hooks) and App authentication.

pub mod auth;
pub(crate) mod payload;
