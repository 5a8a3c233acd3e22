//! Bitbucket Cloud: webhook payloads.

pub mod client;
pub(crate) mod payload;
