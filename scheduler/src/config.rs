//! The scheduler's command line: every flag also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dotjob_shared::config::RedisArgs;
use dotjob_worker::config::WorkerArgs;

/// Fires due jobs into Redis streams and serves the admin API and console.
#[derive(Parser, Debug, Clone)]
#[command(name = "dotjob-scheduler", version)]
pub struct Cli {
    /// Address of the admin API and console.
    #[arg(long, env = "DOTJOB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Group of the in-process worker with the stock handlers; `off` for none.
    #[arg(long, env = "DOTJOB_EMBEDDED_WORKER", default_value = "default")]
    pub embedded_worker: String,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Runs kept per job.
    #[arg(long, env = "DOTJOB_RUNS_KEEP", default_value_t = 1_000)]
    pub runs_keep: u64,
    /// Oldest run kept (e.g. `7d`, `12h`).
    #[arg(long, env = "DOTJOB_RUNS_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub runs_max_age: Duration,
    /// How often housekeeping runs (run retention, stream trimming, executor reaping).
    #[arg(long, env = "DOTJOB_HOUSEKEEPING_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub housekeeping_interval: Duration,
    /// An executor whose heartbeat stopped this long ago is forgotten.
    #[arg(long, env = "DOTJOB_EXECUTOR_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub executor_timeout: Duration,
    /// Time-to-live of this replica's group leases; a dead replica's groups move to the
    /// others after about this long.
    #[arg(long, env = "DOTJOB_SCHEDULER_LEASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub scheduler_lease_ms: u64,
    /// Start a private redis-server when REDIS_URL is unset and nothing answers locally:
    /// `auto` or `never`.
    #[arg(long, env = "DOTJOB_START_REDIS", default_value = "auto", value_parser = ["auto", "never"])]
    pub start_redis: String,
    /// Port the all-in-one start checks for a local Redis, and starts its private one on.
    #[arg(long, env = "DOTJOB_LOCAL_REDIS_PORT", default_value_t = 6379)]
    pub local_redis_port: u16,
    /// Folder of the private redis-server's data.
    #[arg(long, env = "DOTJOB_DATA_DIR", default_value = ".dotjob")]
    pub data_dir: PathBuf,
}

impl Cli {
    /// The embedded worker's group, if any.
    pub fn embedded_group(&self) -> Option<&str> {
        match self.embedded_worker.trim() {
            "" | "off" | "none" | "false" => None,
            g => Some(g),
        }
    }
}
