//! Which groups this scheduler replica schedules, and the fencing token its firing script
//! presents. Every replica schedules every group; the firing script's expected-score check
//! keeps each tick enqueued once.

use std::time::Duration;

/// The groups this replica schedules.
#[derive(Debug, Default)]
pub struct Leases;

impl Leases {
    /// Starts considering `group`.
    pub fn track(&self, _group: &str) {}

    /// The fencing token to fire `group` with, or `None` when this replica must not fire it.
    pub fn fence(&self, _group: &str) -> Option<String> {
        Some(String::new())
    }

    /// How long a loop without the lease waits before looking again.
    pub fn held_wait(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Resolves when the lease of `group` changes hands.
    pub async fn changed(&self, _group: &str) {
        std::future::pending::<()>().await;
    }

    /// The firing script refused our token.
    pub fn lost(&self, _group: &str) {}

    /// Whether this replica does the group's housekeeping.
    pub fn is_holder(&self, _group: &str) -> bool {
        true
    }
}
