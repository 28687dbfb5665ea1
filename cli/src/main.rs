//! The `dotjob` binary: parses the command line, runs it on a tokio runtime, and prints an
//! error as one `error: …` line with its exit code (see `dotjob --help`).

use std::process::ExitCode;

use clap::Parser;
use dotjob_cli::args::Cli;
use dotjob_cli::error::{Exit, exit_code};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(dotjob_cli::run(cli)) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e).into()
        }
    }
}
