//! GitLab: webhook payloads (project, group and system hooks).

pub(crate) mod payload;
