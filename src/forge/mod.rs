//! Everything that knows a forge's wire formats: ids, typed events, and one payload
//! parser per forge (webhook JSON → [`ForgeEvent`]). Policy lives in the bot, not here.

pub mod bitbucket;
pub mod client;
pub mod event;
pub mod github;
pub mod gitlab;
pub mod payload;
pub mod registry;
pub mod types;

pub use client::ForgeClient;
pub use event::ForgeEvent;
pub use payload::PayloadError;
pub use registry::Forges;
pub use types::{CommitSha, Forge, InstallationId, RepoId};
