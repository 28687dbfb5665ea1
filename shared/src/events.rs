//! Change notifications on the `<prefix>:events` channel.
//!
//! The admin API publishes one after every job write so schedulers wake early and workers
//! drop cached definitions; a run cancellation is published so the executor holding the run
//! cancels it. Messages are hints: correctness never depends on receiving one (stream
//! entries carry the job version, and schedulers re-read the schedule on every wake).

use serde::{Deserialize, Serialize};

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A job was created, changed, paused, resumed or deleted.
    Job {
        /// Its group.
        group: String,
        /// Its id.
        id: String,
        /// Its version after the write (0 when deleted).
        version: u64,
    },
    /// A run should be cancelled wherever it is running.
    Cancel {
        /// Its group.
        group: String,
        /// The run.
        run: String,
    },
}

impl Event {
    /// The group the event is about.
    pub fn group(&self) -> &str {
        match self {
            Self::Job { group, .. } | Self::Cancel { group, .. } => group,
        }
    }
}
