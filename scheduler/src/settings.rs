//! Tunables of the scheduling side of a scheduler process: the firing loops, the leases and
//! housekeeping all read them, so they live apart from each.

use std::time::Duration;

/// Scheduler tunables.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Job definitions kept in memory.
    pub cache_size: usize,
    /// Runs kept per job.
    pub runs_keep: u64,
    /// Oldest run kept.
    pub runs_max_age: Duration,
    /// How often housekeeping (retention, stream trimming, executor reaping) runs.
    pub housekeeping: Duration,
    /// An executor without a heartbeat for this long is forgotten.
    pub executor_timeout: Duration,
    /// Time-to-live of group leases: a dead replica's groups move after about this long.
    pub lease: Duration,
    /// How early ticks of jobs that allow overlap are enqueued; workers hold them and start
    /// each at its instant on the Redis clock. Zero fires at the instant.
    pub fire_ahead: Duration,
    /// Alert evaluation and delivery.
    pub alerts: crate::alerts::AlertSettings,
    /// How often the held groups' earliest scores are read again, so a missed wake-up hint
    /// delays a changed job by at most this much.
    pub schedule_reread: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            cache_size: 10_000,
            runs_keep: 1_000,
            runs_max_age: Duration::from_secs(7 * 24 * 3_600),
            housekeeping: Duration::from_secs(10),
            executor_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(5),
            fire_ahead: Duration::from_millis(2_500),
            alerts: crate::alerts::AlertSettings::default(),
            schedule_reread: Duration::from_secs(30),
        }
    }
}
