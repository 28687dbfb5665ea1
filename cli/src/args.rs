//! The command line: global options (server, token, output format) and every command, as
//! clap derive types. `main` parses these and hands them to [`crate::run`]; nothing here
//! talks to the server.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

/// Exit codes, as `--help` shows them.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (diff: no differences)
  1  the operation failed (trigger --wait: a run did not succeed; diff: differences found;
     a conflict such as a run that is already final)
  2  usage or bad input, including the API refusing a request as invalid (4xx)
  3  not found
  4  not authorised (401/403): check DOTJOB_TOKEN
  5  server or connection error (5xx, unreachable, timeout)

JOB arguments take a job id or `group/name`.";

/// `dotjob`: the admin API of a dotjob scheduler from a terminal, and jobs as code.
#[derive(Debug, Parser)]
#[command(name = "dotjob", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Base URL of a dotjob scheduler's admin API.
    #[arg(
        long,
        global = true,
        env = "DOTJOB_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Bearer token (admin token for writes, read token for reads). Prefer the environment
    /// variable: flags show in `ps`.
    #[arg(long, global = true, env = "DOTJOB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output: tables for people, or one JSON document for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, read, create, change, delete, pause and resume jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Run a job now.
    Trigger(TriggerArgs),
    /// List, read and cancel runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Print a run's log lines (`-f` follows a live run until it ends; `--attempt N` prints
    /// one attempt's).
    Logs(LogsArgs),
    /// List the executor groups with their queue figures.
    Groups,
    /// List a group's executors, or disable / enable one.
    Executors(ExecutorsArgs),
    /// List a group's dead letters, or requeue them.
    Dead(DeadArgs),
    /// Show the next fire instants of a schedule.
    Preview(PreviewArgs),
    /// Make the server match a file (or folder) of jobs, keyed by group + name.
    Apply(ApplyArgs),
    /// Show what `apply` would do, changing nothing (exit 0: no differences, 1: differences).
    Diff(ApplyArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `dotjob jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// List jobs (every page), in creation order.
    List {
        /// Only jobs of this group.
        #[arg(long)]
        group: Option<String>,
        /// Only jobs whose name contains this (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// Only enabled (`true`) or only paused (`false`) jobs.
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Show one job.
    Get {
        /// Job id or `group/name`.
        job: String,
    },
    /// Create a job from a JSON or YAML file (`-` reads standard input).
    Create {
        /// The file.
        #[arg(short, long)]
        file: String,
    },
    /// Change a job: send the fields of a file, and/or `--set field=value`.
    Edit {
        /// Job id or `group/name`.
        job: String,
        /// JSON or YAML file with the fields to change (`-` reads standard input).
        #[arg(short, long)]
        file: Option<String>,
        /// `field=value` (value as JSON, else as a string; dotted fields such as
        /// `labels.team=ops` change one entry). Repeatable.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
    },
    /// Delete a job with its runs.
    Delete {
        /// Job id or `group/name`.
        job: String,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Stop a job's scheduled firing.
    Pause {
        /// Job id or `group/name`.
        job: String,
    },
    /// Restart a paused job's scheduled firing.
    Resume {
        /// Job id or `group/name`.
        job: String,
    },
}

/// `dotjob trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Job id or `group/name`.
    pub job: String,
    /// Params for this run instead of the job's (JSON).
    #[arg(long)]
    pub params: Option<String>,
    /// Idempotency key (1-200 characters): running the same command again with the same
    /// key within the server's window (default 24 h) answers the first run and enqueues
    /// nothing, so a retry after a timeout is safe.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait until the run (every shard of it) is final; exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait (e.g. `30s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m", requires = "wait")]
    pub timeout: Duration,
}

/// `dotjob runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// Newest runs first: of one job, or of every job (of a group).
    List {
        /// Only runs of this job (id or `group/name`).
        #[arg(long)]
        job: Option<String>,
        /// Without `--job`: only jobs of this group.
        #[arg(long, conflicts_with = "job")]
        group: Option<String>,
        /// Only runs in this status (queued, running, succeeded, failed, timed_out, dead,
        /// skipped, cancelled, lost).
        #[arg(long)]
        status: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show one run.
    Get {
        /// Run id.
        run: String,
    },
    /// Cancel a queued or running run.
    Cancel {
        /// Run id.
        run: String,
    },
}

/// `dotjob logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Run id.
    pub run: String,
    /// Follow a live run: print lines as they come, end when the run ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the lines of this attempt (1 is the first); without it, every attempt's lines,
    /// each retry's after a `--- attempt N ---` line.
    #[arg(long, conflicts_with = "follow", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
}

/// What to do to an executor.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExecutorAction {
    /// It finishes what it holds and claims nothing new.
    Disable,
    /// It claims runs again.
    Enable,
}

/// `dotjob executors`.
#[derive(Debug, Args)]
pub struct ExecutorsArgs {
    /// Group name.
    pub group: String,
    /// Optional action on one executor.
    #[arg(value_enum, requires = "id")]
    pub action: Option<ExecutorAction>,
    /// Executor id (with an action).
    pub id: Option<String>,
}

/// What to do to dead letters.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeadAction {
    /// Run again (and remove the dead letter).
    Requeue,
}

/// `dotjob dead`.
#[derive(Debug, Args)]
pub struct DeadArgs {
    /// Group name.
    pub group: String,
    /// Optional action.
    #[arg(value_enum)]
    pub action: Option<DeadAction>,
    /// Dead-letter entry id (with `requeue`).
    #[arg(conflicts_with = "all")]
    pub entry: Option<String>,
    /// With `requeue`: every dead letter of the group.
    #[arg(long, requires = "action")]
    pub all: bool,
}

/// `dotjob preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Any schedule a job accepts (quote it).
    pub schedule: String,
    /// IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// How many instants (1-100).
    #[arg(short = 'n', long = "count", default_value_t = 5)]
    pub count: u32,
}

/// `dotjob apply` and `dotjob diff`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML/JSON file of jobs, a folder of them, or `-` for standard input.
    #[arg(short, long)]
    pub file: PathBuf,
    /// Also delete server jobs that carry the selector's labels and that the files do not
    /// name.
    #[arg(long, requires = "selector")]
    pub prune: bool,
    /// Labels `key=value[,key=value]` that scope `--prune` (jobs without them are never
    /// deleted).
    #[arg(long, short = 'l', requires = "prune")]
    pub selector: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn prune_needs_a_selector() {
        let e = Cli::try_parse_from(["dotjob", "apply", "-f", "x.yaml", "--prune"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--selector"), "{e}");
        let ok = Cli::try_parse_from([
            "dotjob",
            "apply",
            "-f",
            "x.yaml",
            "--prune",
            "--selector",
            "team=ops",
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn executor_actions_need_an_id() {
        assert!(Cli::try_parse_from(["dotjob", "executors", "g"]).is_ok());
        assert!(Cli::try_parse_from(["dotjob", "executors", "g", "disable"]).is_err());
        let c = Cli::try_parse_from(["dotjob", "executors", "g", "disable", "w-1"]).unwrap();
        match c.command {
            Command::Executors(a) => {
                assert!(matches!(a.action, Some(ExecutorAction::Disable)));
                assert_eq!(a.id.as_deref(), Some("w-1"));
            }
            other => panic!("{other:?}"),
        }
    }
}
