//! GitLab: webhook payloads (project, group and system hooks).

pub mod client;
pub(crate) mod payload;
