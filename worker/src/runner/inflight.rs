//! The runs this worker holds, by stream entry, behind a lock only this type takes.
//!
//! Who writes what: the holder and the dispatcher add entries ([`InFlightTable::hold`]) and
//! drop those they will not run ([`InFlightTable::forget`]); an execution sets its start
//! instant and its finish; the marker sets `marked`; the completer removes an entry once its
//! attempt is recorded. The heartbeat reads the entries to keep them alive, the marker reads
//! which first attempts to mark `running`, and the heartbeat and the listener cancel runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::delivery::Delivery;

/// A run this worker holds.
#[derive(Debug)]
struct InFlight {
    run: String,
    /// Cancelled by a cancel request for this run, the deadline or a hard shutdown.
    cancel: CancellationToken,
    /// Its attempt number.
    attempt: u32,
    /// When its handler starts or started (None while waiting for a slot).
    started: Option<Instant>,
    /// Whether its record says `running` yet (first attempts are marked only once they have
    /// run a while: a quick run goes from queued to final in one write).
    marked: bool,
    /// Its handler returned; only the recording is left.
    finished: bool,
}

/// A first attempt due to be marked `running`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MarkDue {
    pub(super) entry: String,
    pub(super) run: String,
    pub(super) attempt: u32,
    /// How long it has run.
    pub(super) ran_ms: u64,
}

/// The runs held, by stream entry id.
#[derive(Debug, Default)]
pub(super) struct InFlightTable {
    map: Mutex<HashMap<String, InFlight>>,
}

impl InFlightTable {
    /// Holds runs (kept alive by the heartbeat from now on); entries already held keep their
    /// state. Attempts after the first are marked `running` when they start, not later.
    pub(super) fn hold(&self, batch: &[Delivery]) {
        if let Ok(mut m) = self.map.lock() {
            for d in batch {
                m.entry(d.entry.clone()).or_insert_with(|| InFlight {
                    run: d.run.clone(),
                    cancel: CancellationToken::new(),
                    attempt: d.attempt,
                    started: None,
                    marked: d.attempt > 1,
                    finished: false,
                });
            }
        }
    }

    /// Stops holding entries (recorded, or left pending in Redis for a later attempt).
    pub(super) fn forget<'a>(&self, entries: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut m) = self.map.lock() {
            for e in entries {
                m.remove(e);
            }
        }
    }

    /// Notes when an entry's handler starts; returns the run's cancellation token (a fresh
    /// one if the entry is not held).
    pub(super) fn start(&self, entry: &str, at: Instant) -> CancellationToken {
        self.map
            .lock()
            .ok()
            .and_then(|mut m| {
                m.get_mut(entry).map(|f| {
                    f.started = Some(at);
                    f.cancel.clone()
                })
            })
            .unwrap_or_default()
    }

    /// Notes that an entry's handler returned (it is not marked `running` any more).
    pub(super) fn finish(&self, entry: &str) {
        if let Ok(mut m) = self.map.lock()
            && let Some(f) = m.get_mut(entry)
        {
            f.finished = true;
        }
    }

    /// Every held (entry, run), to keep alive.
    pub(super) fn entries(&self) -> Vec<(String, String)> {
        self.map
            .lock()
            .map(|m| m.iter().map(|(e, f)| (e.clone(), f.run.clone())).collect())
            .unwrap_or_default()
    }

    /// Unmarked first attempts whose handler has run at least `after` at `now`.
    pub(super) fn due_marks(&self, now: Instant, after: Duration) -> Vec<MarkDue> {
        self.map
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, f)| !f.marked && !f.finished)
                    .filter_map(|(e, f)| {
                        let ran = now.saturating_duration_since(f.started?);
                        (ran >= after).then(|| MarkDue {
                            entry: e.clone(),
                            run: f.run.clone(),
                            attempt: f.attempt,
                            ran_ms: ran.as_millis() as u64,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Notes that runs were marked `running`.
    pub(super) fn set_marked(&self, marked: &[MarkDue]) {
        if let Ok(mut m) = self.map.lock() {
            for d in marked {
                if let Some(f) = m.get_mut(&d.entry) {
                    f.marked = true;
                }
            }
        }
    }

    /// Cancels every held attempt of `run`; returns how many there were.
    pub(super) fn cancel_run(&self, run: &str) -> usize {
        let Ok(m) = self.map.lock() else {
            return 0;
        };
        let mut n = 0;
        for f in m.values().filter(|f| f.run == run) {
            f.cancel.cancel();
            n += 1;
        }
        n
    }

    /// Whether nothing is held.
    pub(super) fn is_empty(&self) -> bool {
        self.map.lock().map(|m| m.is_empty()).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(entry: &str, run: &str, attempt: u32) -> Delivery {
        Delivery {
            entry: entry.to_owned(),
            run: run.to_owned(),
            job: "j".to_owned(),
            version: 1,
            at: 0,
            params: None,
            shard: None,
            attempt,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn held_runs_are_kept_alive_until_forgotten() {
        let t = InFlightTable::default();
        assert!(t.is_empty());
        t.hold(&[delivery("1-0", "a", 1), delivery("2-0", "b", 1)]);
        let mut held = t.entries();
        held.sort();
        assert_eq!(
            held,
            [
                ("1-0".to_owned(), "a".to_owned()),
                ("2-0".to_owned(), "b".to_owned())
            ]
        );
        t.forget(["1-0"]);
        assert_eq!(t.entries(), [("2-0".to_owned(), "b".to_owned())]);
        t.forget(["2-0", "9-9"]);
        assert!(t.is_empty());
    }

    #[test]
    fn first_attempts_are_marked_once_they_ran_long_enough() {
        let t = InFlightTable::default();
        let t0 = Instant::now();
        t.hold(&[
            delivery("1-0", "first", 1),
            delivery("2-0", "retry", 2),
            delivery("3-0", "waiting", 1),
        ]);
        t.start("1-0", t0);
        t.start("2-0", t0);
        assert!(t.due_marks(t0 + 100 * MS, 250 * MS).is_empty());
        let due = t.due_marks(t0 + 300 * MS, 250 * MS);
        let want = MarkDue {
            entry: "1-0".to_owned(),
            run: "first".to_owned(),
            attempt: 1,
            ran_ms: 300,
        };
        assert_eq!(due, [want]);
        t.set_marked(&due);
        assert!(t.due_marks(t0 + 400 * MS, 250 * MS).is_empty());
    }

    #[test]
    fn finished_and_future_starts_are_not_marked() {
        let t = InFlightTable::default();
        let t0 = Instant::now();
        t.hold(&[delivery("1-0", "done", 1), delivery("2-0", "ahead", 1)]);
        t.start("1-0", t0);
        t.finish("1-0");
        // Fired ahead: its handler starts at its tick, a second from now.
        t.start("2-0", t0 + 1_000 * MS);
        assert!(t.due_marks(t0 + 500 * MS, 250 * MS).is_empty());
        assert_eq!(t.due_marks(t0 + 1_300 * MS, 250 * MS).len(), 1);
    }

    #[test]
    fn holding_twice_keeps_the_first_state() {
        let t = InFlightTable::default();
        let t0 = Instant::now();
        t.hold(&[delivery("1-0", "a", 1)]);
        t.start("1-0", t0);
        t.hold(&[delivery("1-0", "a", 1)]);
        assert_eq!(t.due_marks(t0 + 300 * MS, 250 * MS).len(), 1);
    }

    #[test]
    fn cancel_requests_reach_the_running_attempt() {
        let t = InFlightTable::default();
        t.hold(&[delivery("1-0", "a", 1), delivery("2-0", "b", 1)]);
        let a = t.start("1-0", Instant::now());
        let b = t.start("2-0", Instant::now());
        assert_eq!(t.cancel_run("a"), 1);
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
        assert_eq!(t.cancel_run("unknown"), 0);
        // An entry not held gets a token of its own, cancelled by nothing here.
        assert!(!t.start("9-9", Instant::now()).is_cancelled());
    }
}
