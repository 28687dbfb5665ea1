//! `dotjob`, the command-line client of a dotjob scheduler's admin HTTP API.
//!
//! [`args`] defines the command line; [`run`] builds a [`client::Client`] and dispatches to
//! the command modules ([`commands`] per area, [`apply`] for jobs as code), which print
//! their answers through [`output`] and return an [`error::Exit`] code. The binary
//! (`src/main.rs`) only parses the arguments, runs this on a tokio runtime and turns an
//! error into `error: …` and its exit code.

pub mod apply;
pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod input;
pub mod output;

use anyhow::Result;
use clap::CommandFactory;

use args::{Cli, Command};
use client::Client;
use commands::{groups, jobs, logs, runs, schedule};
use error::Exit;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<Exit> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "dotjob", &mut script);
        output::write_raw(&script);
        return Ok(Exit::Ok);
    }
    let client = Client::new(&cli.server, cli.token)?;
    let fmt = cli.output;
    match cli.command {
        Command::Jobs(cmd) => jobs::run(&client, fmt, cmd).await,
        Command::Trigger(a) => runs::trigger(&client, fmt, a).await,
        Command::Runs(cmd) => runs::run(&client, fmt, cmd).await,
        Command::Logs(a) => logs::run(&client, fmt, a).await,
        Command::Groups => groups::groups(&client, fmt).await,
        Command::Executors(a) => groups::executors(&client, fmt, a).await,
        Command::Dead(a) => groups::dead(&client, fmt, a).await,
        Command::Preview(a) => schedule::preview(&client, fmt, a).await,
        Command::Apply(a) => apply::run(&client, fmt, a, false).await,
        Command::Diff(a) => apply::run(&client, fmt, a, true).await,
        Command::Completions { .. } => Ok(Exit::Ok),
    }
}
