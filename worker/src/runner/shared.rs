//! The state the runner's tasks share, built once when the worker is built and then behind
//! an `Arc`. Fields are either set once (names, handlers, settings, channels, tokens) or own
//! their synchronisation (the in-flight table, the waiting runs, the clock estimate, the job
//! cache, the semaphore, the `disabled` flag): no task locks a shared map itself.
//!
//! Who writes what at run time: `disabled` is written by the heartbeat only and read by the
//! reader and the claimer; `stop` is cancelled by the runner at shutdown, `hard` when the
//! grace period is over; see [`InFlightTable`], [`Waiting`] and [`RedisClock`] for theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dotjob_shared::conn::Redis;
use dotjob_shared::keys::OwnStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::clock::RedisClock;
use super::inflight::InFlightTable;
use super::outcome::Done;
use super::settings::Settings;
use super::waiting::Waiting;
use crate::cache::JobCache;
use crate::handler::Handler;
use crate::registry::Registry;

/// State shared by the worker's tasks.
pub(super) struct Shared {
    pub(super) redis: Redis,
    pub(super) group: String,
    /// This executor's id: its consumer name.
    pub(super) id: String,
    pub(super) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(super) settings: Settings,
    /// The group's key prefix (`KEYS[1]` of every script).
    pub(super) prefix: String,
    /// The group's stream.
    pub(super) stream: String,
    /// This executor's own stream and retry set (broadcast runs meant for it alone).
    pub(super) own: OwnStream,
    /// When the earliest retry of an own-stream run is due (written by the completer, taken
    /// by the claimer, which then claims on the own stream before its usual cadence).
    pub(super) own_retry_due: Mutex<Option<Instant>>,
    /// Job definitions: filled by the dispatcher, emptied by the listener.
    pub(super) cache: JobCache,
    /// One permit per execution slot: taken by the dispatcher, released by the execution.
    pub(super) slots: Arc<Semaphore>,
    pub(super) inflight: InFlightTable,
    pub(super) waiting: Waiting,
    pub(super) clock: RedisClock,
    /// Finished attempts, to the completer.
    done_tx: mpsc::UnboundedSender<Done>,
    /// Stops reading and claiming.
    pub(super) stop: CancellationToken,
    /// Ends the executions still running after the grace period (hand-back).
    pub(super) hard: CancellationToken,
    /// Set by an admin through the API: claim nothing new.
    disabled: AtomicBool,
    /// The group and this executor's id, shared with every run's context.
    pub(super) group_name: Arc<str>,
    pub(super) id_name: Arc<str>,
    pub(super) registry: Registry,
}

impl Shared {
    pub(super) fn new(
        redis: Redis,
        group: String,
        id: String,
        handlers: HashMap<String, Arc<dyn Handler>>,
        settings: Settings,
        registry: Registry,
        done_tx: mpsc::UnboundedSender<Done>,
    ) -> Self {
        let keys = redis.keys().clone();
        Self {
            prefix: keys.group_prefix(&group),
            stream: keys.stream(&group),
            own: keys.own_stream(&group, &id),
            own_retry_due: Mutex::new(None),
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            cache: JobCache::new(4_096),
            inflight: InFlightTable::default(),
            waiting: Waiting::default(),
            clock: RedisClock::default(),
            done_tx,
            stop: CancellationToken::new(),
            hard: CancellationToken::new(),
            disabled: AtomicBool::new(false),
            group_name: group.as_str().into(),
            id_name: id.as_str().into(),
            registry,
            redis,
            group,
            id,
            handlers,
            settings,
        }
    }

    /// Hands a finished attempt to the completer.
    pub(super) fn send(&self, done: Done) {
        if self.done_tx.send(done).is_err() {
            warn!("completion channel closed");
        }
    }

    /// Whether an admin disabled this executor (claim nothing new).
    pub(super) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Sets the disabled flag (heartbeat only); returns the previous value.
    pub(super) fn set_disabled(&self, disabled: bool) -> bool {
        self.disabled.swap(disabled, Ordering::Relaxed)
    }

    /// Cancels the attempt of `run` this worker holds, if any (a cancel request).
    pub(super) fn cancel_run(&self, run: &str) {
        if self.inflight.cancel_run(run) > 0 {
            info!(run, "cancelling run on request");
        }
    }

    /// The sorted handler names, for an error naming what this worker has.
    /// Notes an own-stream retry due at `at`: the claimer looks for it then.
    pub(super) fn own_retry_at(&self, at: Instant) {
        if let Ok(mut due) = self.own_retry_due.lock() {
            *due = Some(due.map_or(at, |d| d.min(at)));
        }
    }

    /// Whether an own-stream retry is due by now; forgets it if so.
    pub(super) fn take_own_retry_due(&self) -> bool {
        match self.own_retry_due.lock() {
            Ok(mut due) if due.is_some_and(|d| d <= Instant::now()) => {
                *due = None;
                true
            }
            _ => false,
        }
    }

    pub(super) fn handler_names(&self) -> String {
        let mut v: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.join(", ")
    }
}
