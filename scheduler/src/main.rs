//! `dotjob-scheduler`: parses flags, starts a private Redis if asked to, refuses a Redis
//! whose `maxmemory-policy` may evict keys (exit code 2 unless `DOTJOB_ALLOW_EVICTION`; at
//! start and after a reconnect), and calls [`dotjob_scheduler::run_until`]: the first
//! SIGTERM / Ctrl-C stops gracefully, a second stops now.

use std::process::ExitCode;

use dotjob_scheduler::config::Cli;
use dotjob_scheduler::local_redis::{self, LocalRedis};
use dotjob_scheduler::{EngineSettings, Options};
use dotjob_shared::{Redis, eviction, secure};
use dotjob_worker::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli: Cli = match dotjob_shared::config::parse_args("dotjob-scheduler") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match telemetry::LogFormat::from_env() {
        Ok(f) => telemetry::init_logs(f),
        Err(e) => {
            eprintln!("dotjob-scheduler: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = cli.redis.validate() {
        eprintln!("dotjob-scheduler: {e}");
        return ExitCode::from(2);
    }
    let api_opts = match cli.api_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dotjob-scheduler: {e}");
            return ExitCode::from(2);
        }
    };
    let mut local = None;
    let port = cli.local_redis_port;
    let local_url = format!("redis://127.0.0.1:{port}");
    let explicit = cli.redis.redis_url.is_some() || !cli.redis.redis_cluster_urls.is_empty();
    if !explicit {
        cli.redis.redis_url = Some(local_url.clone());
    }
    if !explicit && cli.start_redis == "auto" && !local_redis::answers(&local_url).await {
        match LocalRedis::start(port, &cli.data_dir).await {
            Ok(r) => {
                say(&format!(
                    "nothing answered on 127.0.0.1:{port}, so a private redis-server was started \
                     there (AOF on, data in {}); it stops when dotjob stops.",
                    cli.data_dir.display()
                ));
                cli.redis.redis_url = Some(r.url().to_owned());
                local = Some(r);
            }
            Err(e) => {
                eprintln!("dotjob-scheduler: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    let code = match start(cli, api_opts).await {
        Ok(Started::Ran) => ExitCode::SUCCESS,
        Ok(Started::Refused(line)) => {
            eprintln!("dotjob-scheduler: {line}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("dotjob-scheduler: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(r) = local {
        r.stop().await;
    }
    code
}

/// How [`start`] ended without an error.
enum Started {
    /// Ran until a shutdown signal.
    Ran,
    /// The Redis server's eviction policy was refused (this line; exit code 2).
    Refused(String),
}

async fn start(cli: Cli, api_opts: dotjob_scheduler::ApiOptions) -> anyhow::Result<Started> {
    let cfg = cli.redis.validate()?;
    let redis = Redis::new(&cfg)?;
    if let Some(line) = secure::check_access(&redis, &cfg.url, &cfg.secure).await {
        return Ok(Started::Refused(line));
    }
    let allow = cli.redis.allow_eviction;
    if let Some(line) = eviction::check(&redis, allow).await {
        return Ok(Started::Refused(line));
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (DOTJOB_LISTEN): {e}", cli.listen))?;
    let opts = Options {
        redis,
        engine: EngineSettings {
            runs_keep: cli.runs_keep,
            runs_max_age: cli.runs_max_age,
            housekeeping: cli.housekeeping_interval,
            executor_timeout: cli.executor_timeout,
            lease: std::time::Duration::from_millis(cli.scheduler_lease_ms),
            fire_ahead: std::time::Duration::from_millis(cli.fire_ahead_ms),
            alerts: dotjob_scheduler::alerts::AlertSettings {
                retry_delays: cli.alert_retry_delays.clone(),
                timeout: cli.alert_timeout,
                check_every: cli.alert_check_interval,
                ..Default::default()
            },
            schedule_reread: cli.schedule_reread,
            ..EngineSettings::default()
        },
        embedded_worker: cli
            .embedded_group()
            .map(|g| (g.to_owned(), cli.worker.settings(), cli.worker.stock())),
    };
    say(&format!(
        "admin API and console on http://{}/ (Redis {})",
        cli.listen,
        cfg.describe()
    ));
    let watch = eviction::watch(opts.redis.clone(), allow);
    let signals = telemetry::Signals::listen();
    let run =
        dotjob_scheduler::run_until(opts, api_opts, listener, signals.first(), signals.second());
    tokio::select! {
        r = run => {
            r.map(|()| Started::Ran)
        }
        line = watch => Ok(Started::Refused(line)),
    }
}

/// A line for the operator at start: plain on stderr, or a log event when the logs are JSON
/// (so that every line a log collector reads parses).
fn say(msg: &str) {
    if telemetry::LogFormat::from_env() == Ok(telemetry::LogFormat::Json) {
        tracing::info!("{msg}");
    } else {
        eprintln!("dotjob-scheduler: {msg}");
    }
}
