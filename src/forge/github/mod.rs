//! GitHub: webhook payloads (App and repository hooks).

pub(crate) mod payload;
