//! `dotjob-worker --group G`: the stock worker with the built-in `http` and `shell` handlers.

use clap::Parser;
use dotjob_shared::Redis;
use dotjob_shared::config::RedisArgs;
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
    telemetry::init_tracing();
    let cfg = match cli.redis.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dotjob-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli, cfg).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dotjob-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, cfg: dotjob_shared::config::RedisConfig) -> anyhow::Result<()> {
    let redis = Redis::new(&cfg)?;
    let builder = Worker::builder(redis.clone(), &cli.group).settings(cli.worker.settings());
    let worker = stock::register(builder, &cli.worker.stock())?.build()?;
    if let Some(addr) = cli.metrics.metrics_listen {
        let bound = telemetry::serve_metrics(addr, redis).await?;
        tracing::info!(%bound, "serving /metrics and /healthz");
    }
    worker.run(telemetry::shutdown_signal()).await
}
