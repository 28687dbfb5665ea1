//! Worker settings as flags and environment variables (used by `dotjob-worker` and by the
//! scheduler's embedded worker).

use std::net::SocketAddr;
use std::time::Duration;

use crate::Settings;

/// Worker flags; each also reads an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// Runs executed at once.
    #[arg(long, env = "DOTJOB_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// A dead worker's runs are reclaimed after this long without its heartbeat.
    #[arg(long, env = "DOTJOB_LEASE_MS", default_value_t = 10_000)]
    pub lease_ms: u64,
    /// On SIGTERM / Ctrl-C, how long in-flight runs may take to finish before being handed back.
    #[arg(long, env = "DOTJOB_SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// Programs the `shell` handler may run (comma-separated; empty = shell disabled).
    #[arg(long, env = "DOTJOB_SHELL_ALLOW", value_delimiter = ',')]
    pub shell_allow: Vec<String>,
}

impl WorkerArgs {
    /// The engine settings these flags describe.
    pub fn settings(&self) -> Settings {
        Settings {
            concurrency: self.concurrency,
            lease: Duration::from_millis(self.lease_ms),
            grace: Duration::from_millis(self.shutdown_grace_ms),
            ..Settings::default()
        }
    }
}

/// Where `/metrics` and `/healthz` are served (`DOTJOB_METRICS_LISTEN`).
#[derive(clap::Args, Clone, Debug)]
pub struct MetricsArgs {
    /// Address for `/metrics` and `/healthz` (off when unset).
    #[arg(long, env = "DOTJOB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}
