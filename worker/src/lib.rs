//! dotjob worker library: run a group's jobs inside your service.
//!
//! Register named async handlers, then run the worker until shutdown. It claims runs of its
//! group from the group's Redis stream through the `workers` consumer group, runs each under
//! the job's timeout (on expiry the handler is cancelled and the run recorded `timed_out`,
//! code 502), catches panics as failed attempts, records results, and acknowledges the entry
//! only once the run reached a final state. Failed attempts stay pending and are retried
//! after the job's backoff; a worker that dies loses nothing (its runs are reclaimed).
//!
//! ```no_run
//! use dotjob_worker::{HandlerError, RunContext, Worker};
//!
//! # async fn demo(redis: dotjob_shared::Redis) -> anyhow::Result<()> {
//! let worker = Worker::builder(redis, "billing")
//!     .handler("send-invoice", |ctx: RunContext| async move {
//!         let customer: u64 = ctx.param("customer")?;
//!         ctx.log(format!("invoicing {customer}"));
//!         Ok::<_, HandlerError>(serde_json::json!({ "sent": customer }))
//!     })
//!     .concurrency(8)
//!     .build()?;
//! worker.run(async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

#![warn(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::Redis;
use dotjob_shared::model::job::validate_group;

mod cache;
pub mod config;
mod declare;
pub mod handler;
mod mask;
mod metrics;
mod registry;
mod runner;
pub mod secrets;
pub mod stock;
pub mod telemetry;

pub use declare::JobDef;
pub use handler::{Handler, HandlerError, HandlerResult, RunContext};
pub use runner::Settings;

/// A configured worker, ready to run.
pub struct Worker {
    runner: runner::Runner,
    /// Jobs declared in code with the handler serving each, upserted at start.
    declared: Vec<(JobDef, String)>,
    /// Where the declared jobs are written.
    store: dotjob_shared::Store,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.runner.id())
            .field("group", &self.runner.group())
            .finish()
    }
}

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    redis: Redis,
    group: String,
    handlers: HashMap<String, Arc<dyn Handler>>,
    settings: Settings,
    secrets: secrets::SecretSource,
    /// Jobs declared with `schedule`/`schedule_job`, with their handler's name.
    declared: Vec<(JobDef, String)>,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("group", &self.group)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Worker {
    /// Starts building a worker of `group`.
    pub fn builder(redis: Redis, group: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            redis,
            group: group.into(),
            handlers: HashMap::new(),
            settings: Settings::default(),
            secrets: secrets::SecretSource::default(),
            declared: Vec::new(),
        }
    }

    /// This executor's id (its consumer name): host, pid and a random suffix.
    pub fn id(&self) -> &str {
        self.runner.id()
    }

    /// Runs until `shutdown` resolves; then stops claiming, lets in-flight runs finish within
    /// the grace period, hands back what did not, and returns.
    ///
    /// Jobs declared with [`WorkerBuilder::schedule`] are upserted first; an invalid one
    /// (e.g. a bad schedule) fails the start, Redis being away only delays nothing else.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.run_until(shutdown, std::future::pending()).await
    }

    /// [`run`](Self::run), and `force` resolving while the runs drain hands every
    /// unfinished one back at once (a second Ctrl-C / SIGTERM: see
    /// [`telemetry::Signals`]).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
        force: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let group = self.runner.group().to_owned();
        for (def, handler) in &self.declared {
            match declare::upsert(&self.store, &group, def, handler).await {
                Ok(_) => {}
                Err(e @ dotjob_shared::Error::Invalid { .. }) => {
                    anyhow::bail!("declared job `{}`: {e}", def.name())
                }
                Err(e) => {
                    tracing::warn!(error = %e, job.name = %def.name(), "cannot declare the job now");
                }
            }
        }
        self.runner.run(shutdown, force).await
    }
}

impl WorkerBuilder {
    /// Registers a handler under `name` (the job's `handler` field).
    pub fn handler(mut self, name: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.insert(name.into(), Arc::new(handler));
        self
    }

    /// Registers an already shared handler.
    pub fn handler_arc(mut self, name: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(name.into(), handler);
        self
    }

    /// Declares a job `name` on `schedule` served by `handler` (registered under `name`),
    /// upserted in this worker's group when the worker starts; see [`JobDef`].
    ///
    /// ```no_run
    /// # use dotjob_worker::{HandlerError, RunContext, Worker};
    /// # fn demo(redis: dotjob_shared::Redis) -> anyhow::Result<Worker> {
    /// Worker::builder(redis, "reports")
    ///     .schedule("nightly-report", "0 2 * * *", |_ctx: RunContext| async {
    ///         Ok::<_, HandlerError>(serde_json::json!({"done": true}))
    ///     })
    ///     .build()
    /// # }
    /// ```
    pub fn schedule(
        self,
        name: impl Into<String>,
        schedule: impl Into<String>,
        handler: impl Handler,
    ) -> Self {
        self.schedule_job(JobDef::new(name, schedule), handler)
    }

    /// Declares a job with a full definition (timezone, params, timeout, attempts), served
    /// by `handler` registered under the job's name.
    pub fn schedule_job(mut self, def: JobDef, handler: impl Handler) -> Self {
        let name = def.name().to_owned();
        self.handlers.insert(name.clone(), Arc::new(handler));
        self.declared.retain(|(d, _)| d.name() != name);
        self.declared.push((def, name));
        self
    }

    /// Runs executed at once (default 16).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency = n;
        self
    }

    /// How long after this worker dies (stops heartbeating) its runs are reclaimed by the
    /// group's other workers (default 10 s, at least 300 ms). Its in-flight entries are
    /// touched every third of it.
    pub fn reclaim_after(mut self, after: Duration) -> Self {
        self.settings.reclaim_after = after;
        self
    }

    /// The former name of [`WorkerBuilder::reclaim_after`].
    #[deprecated(note = "renamed `reclaim_after`")]
    pub fn lease(self, lease: Duration) -> Self {
        self.reclaim_after(lease)
    }

    /// How long shutdown waits for in-flight runs (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.settings.grace = grace;
        self
    }

    /// Whether to listen on the events channel for job changes and cancel requests
    /// (default true). Turning it off only delays cache drops and cancellations: the
    /// worker still never runs an older job definition than the one a run was fired with.
    /// Tests use it to prove that.
    pub fn events(mut self, on: bool) -> Self {
        self.settings.events = on;
        self
    }

    /// The secrets file params' `{"$secret": "NAME"}` references are resolved from (before
    /// `DOTJOB_SECRET_<NAME>` variables); see [`secrets`].
    pub fn secrets_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.secrets.file = file;
        self
    }

    /// All settings at once.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Checks the configuration and builds the worker.
    pub fn build(self) -> anyhow::Result<Worker> {
        validate_group(&self.group).map_err(|e| anyhow::anyhow!("worker {e}"))?;
        anyhow::ensure!(
            (1..=10_000).contains(&self.settings.concurrency),
            "concurrency must be between 1 and 10000"
        );
        anyhow::ensure!(
            self.settings.reclaim_after >= Duration::from_millis(300),
            "the reclaim time must be at least 300 ms"
        );
        anyhow::ensure!(!self.handlers.is_empty(), "register at least one handler");
        self.secrets.check().map_err(anyhow::Error::msg)?;
        let source = Arc::new(self.secrets);
        let handlers = self
            .handlers
            .into_iter()
            .map(|(name, h)| (name, secrets::guard(h, &source)))
            .collect();
        Ok(Worker {
            store: dotjob_shared::Store::new(self.redis.clone()),
            declared: self.declared,
            runner: runner::Runner::new(
                self.redis,
                self.group,
                dotjob_shared::process_id(),
                handlers,
                self.settings,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis() -> Redis {
        // Never connected to: building a worker does not touch Redis.
        Redis::new(&dotjob_shared::config::RedisConfig {
            url: "redis://127.0.0.1:1".to_owned(),
            prefix: "unit".to_owned(),
            timeout: Duration::from_secs(1),
            ..dotjob_shared::config::RedisConfig::default()
        })
        .unwrap()
    }

    async fn noop(_: RunContext) -> HandlerResult {
        Ok(serde_json::Value::Null)
    }

    #[test]
    #[allow(deprecated)]
    fn lease_is_the_former_name_of_reclaim_after() {
        let b = Worker::builder(redis(), "g").lease(Duration::from_millis(1_234));
        assert_eq!(b.settings.reclaim_after, Duration::from_millis(1_234));
    }

    #[test]
    fn the_reclaim_time_has_a_floor() {
        let build = |ms| {
            Worker::builder(redis(), "g")
                .handler("noop", noop)
                .reclaim_after(Duration::from_millis(ms))
                .build()
        };
        let err = build(299).unwrap_err().to_string();
        assert!(err.contains("reclaim time"), "{err}");
        let w = build(300).unwrap();
        assert_eq!(w.runner.group(), "g");
    }
}
