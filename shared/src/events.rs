//! Change notifications on the `<prefix>:events` channel.
//!
//! The admin API publishes one after every job write so schedulers wake early and workers
//! drop cached definitions; a run cancellation is published so the executor holding the run
//! cancels it. Messages are hints: correctness never depends on receiving one (stream
//! entries carry the job version, and schedulers re-read the schedule on every wake).

use serde::{Deserialize, Serialize};

/// The `kind` of a [`Event::Cancel`] message. The scripts publish cancel requests
/// themselves and name it `EVENT_CANCEL`.
pub const CANCEL_KIND: &str = "cancel";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_published_by_a_script_reads_as_a_cancel_event() {
        let sent = Event::Cancel {
            group: "g".to_owned(),
            run: "01abc-1".to_owned(),
        };
        assert_eq!(serde_json::to_value(&sent).unwrap()["kind"], CANCEL_KIND);
        // What cancel_run in the Lua prelude encodes.
        let lua = format!(r#"{{"kind":"{CANCEL_KIND}","group":"g","run":"01abc-1"}}"#);
        assert_eq!(serde_json::from_str::<Event>(&lua).unwrap(), sent);
    }
}
