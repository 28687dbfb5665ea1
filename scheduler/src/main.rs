//! `dotjob-scheduler`: parses flags, starts a private Redis if asked to, and calls
//! [`dotjob_scheduler::run`].

use std::process::ExitCode;

use dotjob_scheduler::config::Cli;
use dotjob_scheduler::local_redis::{self, LocalRedis};
use dotjob_scheduler::{EngineSettings, Options};
use dotjob_shared::Redis;
use dotjob_worker::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli: Cli = match dotjob_shared::config::parse_args("dotjob-scheduler") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    telemetry::init_tracing();
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
    let explicit = cli.redis.redis_url.is_some();
    if !explicit {
        cli.redis.redis_url = Some(local_url.clone());
    }
    if !explicit && cli.start_redis == "auto" && !local_redis::answers(&local_url).await {
        match LocalRedis::start(port, &cli.data_dir).await {
            Ok(r) => {
                eprintln!(
                    "dotjob-scheduler: nothing answered on 127.0.0.1:{port}, so a private redis-server \
                     was started there (AOF on, data in {}); it stops when dotjob stops.",
                    cli.data_dir.display()
                );
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
        Ok(()) => ExitCode::SUCCESS,
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

async fn start(cli: Cli, api_opts: dotjob_scheduler::ApiOptions) -> anyhow::Result<()> {
    let cfg = cli.redis.validate()?;
    let redis = Redis::new(&cfg)?;
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
            ..EngineSettings::default()
        },
        embedded_worker: cli
            .embedded_group()
            .map(|g| (g.to_owned(), cli.worker.settings(), cli.worker.stock())),
    };
    eprintln!(
        "dotjob-scheduler: admin API and console on http://{}/ (Redis {})",
        cli.listen,
        dotjob_shared::config::redacted_url(&cfg.url)
    );
    dotjob_scheduler::run_with(opts, api_opts, listener, telemetry::shutdown_signal()).await
}
