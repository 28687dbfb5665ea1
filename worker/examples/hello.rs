//! The smallest useful worker: one handler the admin API can trigger (`hello`) and one job
//! declared in code (`heartbeat`, every 10 seconds), in group `hello`.
//!
//! Start Redis (or `dotjob-scheduler`, which starts one) and a scheduler, then:
//!
//! ```text
//! cargo run -p dotjob-worker --example hello
//! ```
//!
//! `REDIS_URL` and `DOTJOB_PREFIX` are read like the other dotjob processes do. Ctrl-C
//! stops it (in-flight runs finish first).

use std::time::Duration;

use dotjob_shared::Redis;
use dotjob_shared::config::{DEFAULT_REDIS_URL, RedisConfig};
use dotjob_worker::{HandlerError, JobDef, RunContext, Worker, telemetry};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let cfg = RedisConfig {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned()),
        prefix: std::env::var("DOTJOB_PREFIX").unwrap_or_else(|_| "dotjob".to_owned()),
        timeout: Duration::from_secs(5),
        ..RedisConfig::default()
    };
    let worker = Worker::builder(Redis::new(&cfg)?, "hello")
        // Triggered over the API: POST /api/v1/jobs {"name": "greet", "group": "hello",
        // "handler": "hello", "params": {"name": "Ada"}}, then POST /api/v1/jobs/{id}/trigger.
        .handler("hello", |ctx: RunContext| async move {
            let name: String = ctx.param("name").unwrap_or_else(|_| "world".to_owned());
            ctx.log(format!("hello, {name}"));
            Ok::<_, HandlerError>(json!({ "greeted": name }))
        })
        // Declared in code: created (or updated) in group `hello` when the worker starts.
        .schedule_job(
            JobDef::new("heartbeat", "@every 10s").params(json!({ "from": "hello example" })),
            |ctx: RunContext| async move {
                ctx.log(format!("heartbeat, attempt {}", ctx.attempt()));
                Ok::<_, HandlerError>(json!({ "alive": true }))
            },
        )
        .build()?;
    eprintln!("hello worker {} running; Ctrl-C stops it", worker.id());
    worker.run(telemetry::shutdown_signal()).await
}
