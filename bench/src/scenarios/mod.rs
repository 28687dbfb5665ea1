//! The scenarios, and what they share: in-process schedulers and workers, bulk job creation.

use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::model::job::{JobInput, Nullable};
use dotjob_shared::{Redis, Store};
use dotjob_tests::Spawned;
use dotjob_worker::{HandlerError, RunContext, Worker};
use futures::StreamExt;

pub mod burst;
pub mod failover;
pub mod footprint;
pub mod precision;
pub mod throughput;

/// What every scenario gets.
pub struct Ctx {
    /// Redis URL.
    pub url: String,
    /// `redis-benchmark` XADD ops/s.
    pub baseline: f64,
}

impl Ctx {
    /// A Redis handle with its own key prefix.
    pub fn redis(&self, prefix: &str) -> Redis {
        Redis::new(&dotjob_shared::config::RedisConfig {
            url: self.url.clone(),
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(30),
            ..dotjob_shared::config::RedisConfig::default()
        })
        .expect("redis handle")
    }
}

/// A scheduler without API traffic or embedded worker.
pub async fn scheduler(redis: Redis) -> anyhow::Result<Spawned> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let opts = dotjob_scheduler::Options {
        redis,
        engine: dotjob_scheduler::EngineSettings::default(),
        embedded_worker: None,
    };
    Ok(Spawned::new(|shutdown| {
        dotjob_scheduler::run(opts, listener, shutdown)
    }))
}

/// A worker of `group` whose `noop` handler calls `on_start` and returns at once.
pub fn worker(
    redis: Redis,
    group: &str,
    concurrency: usize,
    on_start: Arc<dyn Fn(&RunContext) + Send + Sync>,
) -> anyhow::Result<Spawned> {
    let w = Worker::builder(redis, group)
        .handler("noop", move |ctx: RunContext| {
            on_start(&ctx);
            async { Ok::<_, HandlerError>(()) }
        })
        .concurrency(concurrency)
        .build()?;
    Ok(Spawned::worker(w))
}

/// Creates `n` jobs of `group` with `schedule`, 64 at a time.
pub async fn create_jobs(store: &Store, group: &str, schedule: &str, n: u64) -> anyhow::Result<()> {
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let schedule = schedule.to_owned();
            let group = group.to_owned();
            async move {
                store
                    .create_job(JobInput {
                        name: Some(format!("bench-{i}")),
                        group: Some(group),
                        handler: Some("noop".into()),
                        schedule: Nullable::Value(schedule),
                        timeout_ms: Some(60_000),
                        ..JobInput::default()
                    })
                    .await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// Microseconds since the epoch on this host (the same clock as Redis here).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
