//! Policy: what pipewright proposes and says, independent of any forge's API. This
//! module grows with the PR flow; today it holds the pull request body, the bot's own
//! state kept inside it, and the GitHub App manifest.

pub mod manifest;
pub mod pr_body;
