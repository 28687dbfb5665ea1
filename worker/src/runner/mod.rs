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
//! Runs of broadcast jobs come through the executor's own stream (read in the same
//! `XREADGROUP` as the group stream); [`own`] tells their entries apart.
//!
//! Pure parts: [`delivery`] (stream entry → run), [`outcome`] (attempt → record),
//! [`clock`] (the Redis clock estimate), [`own`]; tables that own their lock:
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
mod own;
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

    /// Runs the worker until `shutdown` resolves, then drains and returns: in-flight runs get
    /// the grace period to finish (progress logged every few seconds), then the unfinished
    /// ones are handed back; `force` resolving during the drain hands them back at once.
    pub(crate) async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
        force: impl std::future::Future<Output = ()> + Send,
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
        shared.stop.cancel();
        let forced = drain(&shared, force).await;
        // Let the completer record what finished and what was handed back (bounded: Redis
        // may be down; shorter when forced, the operator asked to stop now).
        let wait = if forced {
            Duration::from_millis(1_500)
        } else {
            Duration::from_secs(10)
        };
        let deadline = Instant::now() + wait;
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

/// How often the drain says how many runs it still waits for.
const DRAIN_PROGRESS: Duration = Duration::from_secs(5);

/// Waits for the in-flight runs: until they finish, the grace period ends or `force`
/// resolves (a second signal); then hands the unfinished ones back. Returns whether it was
/// forced.
async fn drain(shared: &Shared, force: impl std::future::Future<Output = ()> + Send) -> bool {
    let all = shared.settings.concurrency;
    // Runs executing: in flight, less those held for their tick (the pending acquire below
    // takes free slots as it waits, so the semaphore cannot tell).
    let running = || {
        shared
            .inflight
            .entries()
            .len()
            .saturating_sub(shared.waiting.len())
    };
    let grace = shared.settings.grace;
    let deadline = tokio::time::Instant::now() + grace;
    let at = chrono::Utc::now() + chrono::Duration::from_std(grace).unwrap_or_default();
    info!(
        worker = %shared.id,
        runs_in_flight = running(),
        grace_s = grace.as_secs_f64(),
        deadline = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "shutting down: no new runs; {} runs in flight get until {} to finish, then are handed back (a second signal hands them back now)",
        running(),
        at.format("%H:%M:%S UTC"),
    );
    let acquire = shared.slots.acquire_many(all as u32);
    tokio::pin!(acquire, force);
    let mut progress =
        tokio::time::interval_at(tokio::time::Instant::now() + DRAIN_PROGRESS, DRAIN_PROGRESS);
    let forced = loop {
        tokio::select! {
            _ = &mut acquire => return false,
            () = tokio::time::sleep_until(deadline) => {
                warn!(worker = %shared.id, runs_in_flight = running(), "grace period over: handing unfinished runs back");
                break false;
            }
            () = &mut force => {
                warn!(worker = %shared.id, runs_in_flight = running(), "second signal: handing {} unfinished runs back now", running());
                break true;
            }
            _ = progress.tick() => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                info!(worker = %shared.id, runs_in_flight = running(), left_s = left.as_secs(), "waiting for {} runs, {} s left", running(), left.as_secs());
            }
        }
    };
    shared.hard.cancel();
    let limit = if forced {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let _ = tokio::time::timeout(limit, shared.slots.acquire_many(all as u32)).await;
    forced
}
