//! Worker settings as flags and environment variables (used by `dotjob-worker` and by the
//! scheduler's embedded worker).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Settings;
use crate::stock::{ShellConfig, StockConfig};

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
    /// Programs the `shell` handler may run (comma-separated; empty = shell disabled): plain
    /// names, resolved on this process's PATH at start, or absolute paths.
    #[arg(long, env = "DOTJOB_SHELL_ALLOW", value_delimiter = ',')]
    pub shell_allow: Vec<String>,
    /// When set, the only environment variables `shell` jobs may set (comma-separated;
    /// `PREFIX_*` for a prefix). Loader variables (PATH, LD_*, ...) are refused regardless.
    #[arg(long, env = "DOTJOB_SHELL_ENV_ALLOW", value_delimiter = ',')]
    pub shell_env_allow: Vec<String>,
    /// When set, folders a `shell` job's `cwd` must lie inside (comma-separated).
    #[arg(long, env = "DOTJOB_SHELL_CWD_ALLOW", value_delimiter = ',')]
    pub shell_cwd_allow: Vec<PathBuf>,
    /// Where the `http` handler may connect (comma-separated host names, `*.domain`
    /// suffixes, IPs, CIDR ranges, `public`); empty = any public address.
    #[arg(long, env = "DOTJOB_HTTP_ALLOW", value_delimiter = ',')]
    pub http_allow: Vec<String>,
    /// File of secret values (`NAME=value` lines or a JSON object) for params'
    /// `{"$secret": "NAME"}` references; `DOTJOB_SECRET_<NAME>` variables work without it.
    #[arg(long, env = "DOTJOB_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
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

    /// The stock handlers' settings these flags describe.
    pub fn stock(&self) -> StockConfig {
        StockConfig {
            shell: ShellConfig {
                allow: self.shell_allow.clone(),
                env_allow: self.shell_env_allow.clone(),
                cwd_allow: self
                    .shell_cwd_allow
                    .iter()
                    .filter(|p| !p.as_os_str().is_empty())
                    .cloned()
                    .collect(),
            },
            http_allow: self.http_allow.clone(),
            secrets_file: self
                .secrets_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
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
