//! The scheduler's command line: every flag also reads an environment variable. Tokens are
//! [`Secret`]s (redacted in `Debug`, hidden from `--help`), so printing the config never
//! shows them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dotjob_shared::config::RedisArgs;
use dotjob_worker::config::WorkerArgs;

use crate::api::ApiOptions;
use crate::api::auth::Secret;
use crate::api::idempotency::IdempotencyWindow;

/// Fires due jobs into Redis streams and serves the admin API and console.
#[derive(Parser, Debug, Clone)]
#[command(name = "dotjob-scheduler", version)]
pub struct Cli {
    /// Address of the admin API and console.
    #[arg(long, env = "DOTJOB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer token for every admin API operation; required on a non-loopback address.
    /// Prefer the environment variable: flags show in `ps`. Empty = unset.
    #[arg(long, env = "DOTJOB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Bearer token for the admin API operations that change nothing.
    #[arg(long, env = "DOTJOB_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<Secret>,
    /// File of named tokens (`name role token` lines, or a JSON array of {name, role,
    /// token}); re-read when it changes.
    #[arg(long, env = "DOTJOB_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// The audit trail (`<prefix>:audit`) is trimmed to about this many entries.
    #[arg(long, env = "DOTJOB_AUDIT_MAXLEN", default_value_t = crate::api::limits::AUDIT_MAXLEN, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub audit_maxlen: u64,
    /// Most log-follow streams open at once on this server.
    #[arg(long, env = "DOTJOB_FOLLOW_MAX", default_value_t = crate::api::limits::FOLLOW_MAX)]
    pub follow_max: usize,
    /// Most log-follow streams open at once per token.
    #[arg(long, env = "DOTJOB_FOLLOW_MAX_PER_TOKEN", default_value_t = crate::api::limits::FOLLOW_MAX_PER_TOKEN)]
    pub follow_max_per_token: usize,
    /// Browser origins allowed to call the admin API (comma-separated, `*` for any); off
    /// when empty.
    #[arg(long, env = "DOTJOB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Group of the in-process worker with the stock handlers; `off` for none.
    #[arg(long, env = "DOTJOB_EMBEDDED_WORKER", default_value = "default")]
    pub embedded_worker: String,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// How long a trigger's idempotency key answers its first run (1s to 30days).
    #[arg(long, env = "DOTJOB_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,
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
    /// How early ticks of jobs that allow overlapping runs are enqueued (workers hold them and
    /// start each at its instant on the Redis clock); 0 to enqueue at the instant.
    #[arg(long, env = "DOTJOB_FIRE_AHEAD_MS", default_value_t = 2_500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub fire_ahead_ms: u64,
    /// Delays before the 2nd, 3rd, ... attempt of an alert delivery (comma-separated);
    /// a delivery is tried once more than there are delays.
    #[arg(long, env = "DOTJOB_ALERT_RETRY_DELAYS", default_value = "1s,5s,30s", value_delimiter = ',', value_parser = humantime::parse_duration)]
    pub alert_retry_delays: Vec<Duration>,
    /// Time limit of one alert delivery attempt.
    #[arg(long, env = "DOTJOB_ALERT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub alert_timeout: Duration,
    /// How often the alert state checks run (long-running runs, groups without a live
    /// executor or a lease holder).
    #[arg(long, env = "DOTJOB_ALERT_CHECK_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub alert_check_interval: Duration,
    /// How often the earliest score of every held group is read again (one command per
    /// group), so a job change whose wake-up message was lost fires at most this late.
    #[arg(long, env = "DOTJOB_SCHEDULE_REREAD", default_value = "30s", value_parser = humantime::parse_duration)]
    pub schedule_reread: Duration,
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
    /// The admin API's exposure settings, checked against the listen address.
    pub fn api_options(&self) -> Result<ApiOptions, String> {
        let token = |name: &str, t: &Option<Secret>| -> Result<Option<Secret>, String> {
            match t {
                Some(t) if !t.is_empty() => t
                    .check()
                    .map(|()| Some(t.clone()))
                    .map_err(|e| format!("{name}: {e}")),
                _ => Ok(None),
            }
        };
        let opts = ApiOptions {
            admin_token: token("DOTJOB_ADMIN_TOKEN", &self.admin_token)?,
            read_token: token("DOTJOB_READ_TOKEN", &self.read_token)?,
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            security: crate::api::limits::SecurityOptions {
                tokens_file: self
                    .tokens_file
                    .clone()
                    .filter(|p| !p.as_os_str().is_empty()),
                audit_maxlen: self.audit_maxlen,
                follow_max: self.follow_max,
                follow_max_per_token: self.follow_max_per_token,
            },
            idempotency_window: IdempotencyWindow(self.idempotency_window),
        };
        opts.idempotency_window.check()?;
        opts.check(self.listen)?;
        Ok(opts)
    }

    /// The embedded worker's group, if any.
    pub fn embedded_group(&self) -> Option<&str> {
        match self.embedded_worker.trim() {
            "" | "off" | "none" | "false" => None,
            g => Some(g),
        }
    }
}
