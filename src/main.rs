//! The `pipewright` binary: parse the command line and hand off to the library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Before any thread exists: it sets an environment variable.
    pipewright::learn::model::fix_thread_count();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pipewright: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = pipewright::cli::Cli::parse();
    match pipewright::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipewright: {e:#}");
            ExitCode::FAILURE
        }
    }
}
