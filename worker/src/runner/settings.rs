//! The tunables of one worker, set once by [`crate::WorkerBuilder`] (or the flags in
//! [`crate::config`]) and only read afterwards by every task of the runner.

use std::time::Duration;

/// Tunables of one worker.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Runs executed at once.
    pub concurrency: usize,
    /// A run whose worker stopped heartbeating is reclaimed by another worker after this
    /// long. The heartbeat touches in-flight entries every third of it, so a live worker's
    /// long run is never reclaimed.
    pub reclaim_after: Duration,
    /// How long shutdown waits for in-flight runs before handing them back.
    pub grace: Duration,
    /// How long log lists live (they are deleted with their run before that, normally).
    pub log_ttl: Duration,
    /// Listen on the events channel (default true): cached definitions are dropped as soon
    /// as a job changes, and running runs are cancelled as soon as it is asked. Without it
    /// the worker is still never stale (each stream entry carries the job version, and a
    /// newer one is read from Redis), and cancel requests arrive with the next heartbeat.
    pub events: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            reclaim_after: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            log_ttl: Duration::from_secs(14 * 24 * 3_600),
            events: true,
        }
    }
}
