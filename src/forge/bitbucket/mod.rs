//! Bitbucket Cloud: webhook payloads.

pub(crate) mod payload;
