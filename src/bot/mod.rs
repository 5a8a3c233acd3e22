//! Policy: what pipewright proposes and says, independent of any forge's API. It grows
//! with the PR flow; today it holds the proposal decision (`proposal`), the pull request
//! body with the bot's state inside it (`pr_body`), the replies to commands (`replies`),
//! each forge's words for what the bot talks about (`wording`), and the GitHub App
//! manifest.

pub mod commands;
pub mod first_run;
pub mod manifest;
pub mod pr_body;
pub mod proposal;
pub mod replies;
pub mod wording;
