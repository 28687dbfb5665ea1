//! The worker's runner: reads runs from the group stream, executes them under a deadline,
//! records results in batches, keeps in-flight entries alive, reclaims retries and runs of
//! dead workers, and hands work back on shutdown.
//!
//! One module per tokio task, all sharing one [`shared::Shared`]:
//! - [`reader`]: waits for a free slot, then `XREADGROUP … BLOCK` on its own connection;
//! - [`claimer`]: retries whose backoff passed and entries of dead workers (`claim.lua`);
//! - [`holding`]: runs fired ahead of their tick wait there, re-checked just before it;
//! - [`dispatch`] (inside the reader, claimer and holder): definitions, `start.lua`, slots;
//! - [`execution`]: one per attempt, the handler raced against deadline, cancel and shutdown;
//! - [`completer`]: records finished attempts in batches (`complete.lua`, `handback.lua`);
//! - [`heartbeat`]: touches in-flight entries (`touch.lua`), registration, `disabled` flag;
//! - [`marker`]: marks first attempts `running` once they last (`mark.lua`);
//! - [`listener`]: drops cached definitions and cancels runs on events.
//!
//! Pure parts: [`delivery`] (stream entry → run), [`outcome`] (attempt → record),
//! [`clock`] (the Redis clock estimate); tables that own their lock:
//! [`inflight`], [`waiting`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dotjob_shared::conn::Redis;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::handler::Handler;
use crate::registry::{Registration, Registry};

mod backoff;
mod claimer;
mod clock;
mod completer;
mod delivery;
mod dispatch;
mod execution;
mod heartbeat;
mod holding;
mod inflight;
mod listener;
mod marker;
mod outcome;
mod reader;
mod settings;
mod shared;
mod waiting;

pub use settings::Settings;

use outcome::Done;
use shared::Shared;

/// A built worker's machinery, ready to run once.
pub(crate) struct Runner {
    shared: Arc<Shared>,
    /// Finished attempts; handed to the completer task when the runner starts.
    done_rx: mpsc::UnboundedReceiver<Done>,
}

impl Runner {
    pub(crate) fn new(
        redis: Redis,
        group: String,
        id: String,
        handlers: HashMap<String, Arc<dyn Handler>>,
        settings: Settings,
    ) -> Self {
        let registry = Registry::new(
            redis.clone(),
            Registration {
                group: group.clone(),
                id: id.clone(),
                handlers: handlers.keys().cloned().collect(),
                concurrency: settings.concurrency,
                reclaim_after: settings.reclaim_after,
            },
        );
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let shared = Shared::new(redis, group, id, handlers, settings, registry, done_tx);
        Self {
            shared: Arc::new(shared),
            done_rx,
        }
    }

    /// This executor's id.
    pub(crate) fn id(&self) -> &str {
        &self.shared.id
    }

    /// Its group.
    pub(crate) fn group(&self) -> &str {
        &self.shared.group
    }

    /// Runs the worker until `shutdown` resolves, then drains and returns.
    pub(crate) async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self { shared, done_rx } = self;
        shared.registry.register().await;
        if let Ok(now) = shared.redis.now_ms().await {
            shared.clock.record(now);
        }
        let mut tasks = vec![
            tokio::spawn(reader::run(shared.clone())),
            tokio::spawn(claimer::run(shared.clone())),
            tokio::spawn(heartbeat::run(shared.clone())),
            tokio::spawn(marker::run(shared.clone())),
            tokio::spawn(holding::run(shared.clone())),
        ];
        if shared.settings.events {
            tasks.push(tokio::spawn(listener::run(shared.clone())));
        }
        let completer = tokio::spawn(completer::run(shared.clone(), done_rx));
        info!(worker = %shared.id, group = %shared.group, concurrency = shared.settings.concurrency, "worker started");

        shutdown.await;
        info!(worker = %shared.id, "shutting down: no new runs; waiting for in-flight runs");
        shared.stop.cancel();
        let all = shared.settings.concurrency as u32;
        let drained =
            tokio::time::timeout(shared.settings.grace, shared.slots.acquire_many(all)).await;
        if drained.is_err() {
            warn!(worker = %shared.id, "grace period over: handing unfinished runs back");
            shared.hard.cancel();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), shared.slots.acquire_many(all)).await;
        }
        // Let the completer record what finished (bounded: Redis may be down).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shared.inflight.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for t in tasks {
            t.abort();
        }
        completer.abort();
        shared.registry.deregister().await;
        info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}
