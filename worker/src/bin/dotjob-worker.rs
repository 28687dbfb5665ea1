//! `dotjob-worker --group G`: the stock worker with the built-in `http` and `shell` handlers.
//! It refuses a Redis whose `maxmemory-policy` may evict keys (exit code 2, unless
//! `DOTJOB_ALLOW_EVICTION`), at start and after a reconnect; a first Ctrl-C / SIGTERM drains
//! the runs in flight, a second hands them back at once.

use clap::Parser;
use dotjob_shared::config::RedisArgs;
use dotjob_shared::{Redis, eviction, secure};
use dotjob_worker::config::{MetricsArgs, WorkerArgs};
use dotjob_worker::{Worker, stock, telemetry};

/// Runs the jobs of one executor group with the built-in `http` and `shell` handlers.
#[derive(Parser, Debug)]
#[command(name = "dotjob-worker", version)]
struct Cli {
    /// Executor group whose runs this worker executes.
    #[arg(long, env = "DOTJOB_GROUP")]
    group: String,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = match dotjob_shared::config::parse_args("dotjob-worker") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match telemetry::LogFormat::from_env() {
        Ok(f) => telemetry::init_logs(f),
        Err(e) => {
            eprintln!("dotjob-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    let cfg = match cli.redis.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dotjob-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let redis = match Redis::new(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dotjob-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(line) = secure::check_access(&redis, &cfg.url, &cfg.secure).await {
        eprintln!("dotjob-worker: {line}");
        return std::process::ExitCode::from(2);
    }
    let allow = cli.redis.allow_eviction;
    if let Some(line) = eviction::check(&redis, allow).await {
        eprintln!("dotjob-worker: {line}");
        return std::process::ExitCode::from(2);
    }
    let outcome = tokio::select! {
        r = run(cli, redis.clone()) => r,
        line = eviction::watch(redis, allow) => {
            eprintln!("dotjob-worker: {line}");
            return std::process::ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dotjob-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, redis: Redis) -> anyhow::Result<()> {
    let builder = Worker::builder(redis.clone(), &cli.group).settings(cli.worker.settings());
    let worker = stock::register(builder, &cli.worker.stock())?.build()?;
    if let Some(addr) = cli.metrics.metrics_listen {
        let bound = telemetry::serve_metrics(addr, redis).await?;
        tracing::info!(%bound, "serving /metrics and /healthz");
    }
    let signals = telemetry::Signals::listen();
    worker.run_until(signals.first(), signals.second()).await
}
