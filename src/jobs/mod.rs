//! The job kinds pipewright runs, one file per kind, and the registry that wires each
//! stored kind to its handler.
//!
//! To add a kind: a struct + `impl Job` in its own file, a line in [`ALL_KINDS`], and a
//! `.register` line in [`registry`] once its handler exists. Kinds without a handler in
//! this binary stay queued (visible in `pipewright jobs list`) until a binary that has
//! one claims them.

pub mod follow_up;
pub mod handle_event;

use crate::queue::{Job, Registry};

pub use follow_up::{AnalyzeReason, AnalyzeRepo, PullRequestClosed, RunCommand};
pub use handle_event::HandleEvent;

/// Every job kind this version knows, handled or not (kinds are stored: never rename).
pub const ALL_KINDS: &[&str] = &[
    HandleEvent::KIND,
    AnalyzeRepo::KIND,
    RunCommand::KIND,
    PullRequestClosed::KIND,
];

/// What handlers need from the process, beyond the job's payload.
#[derive(Debug, Clone)]
pub struct JobsContext {
    /// Slash-command word (comments that do not mention it queue nothing).
    pub command_word: String,
    /// Clock for timestamps.
    pub clock: crate::clock::Clock,
}

/// The handlers this binary runs.
pub fn registry(ctx: JobsContext) -> Registry {
    Registry::new().register::<HandleEvent, _, _>(move |run, job| {
        let ctx = ctx.clone();
        async move { handle_event::run(&ctx, &run, job).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_registered_ones_are_known() {
        let mut kinds = ALL_KINDS.to_vec();
        kinds.sort_unstable();
        let n = kinds.len();
        kinds.dedup();
        assert_eq!(kinds.len(), n, "duplicate job kind");
        let reg = registry(JobsContext {
            command_word: "pipewright".into(),
            clock: crate::clock::Clock::System,
        });
        for k in reg.kinds() {
            assert!(
                ALL_KINDS.contains(&k.as_str()),
                "{k} missing from ALL_KINDS"
            );
        }
    }
}
