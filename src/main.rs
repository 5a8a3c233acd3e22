//! The `pipewright` binary: parse the command line and hand off to the library.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = pipewright::cli::Cli::parse();
    match pipewright::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipewright: {e:#}");
            ExitCode::FAILURE
        }
    }
}
