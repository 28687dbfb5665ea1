//! Runs fired ahead of their tick, waiting for it, behind a lock only this type takes.
//!
//! The reader adds runs ([`Waiting::add`]) and checks the size to pause reading; the holder
//! (the only other user) takes them out as their tick nears, and takes the rest at shutdown
//! to hand them back. Ordered by (tick, arrival), so runs of one tick start in stream order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use super::delivery::Delivery;

/// Splits a batch at the Redis clock `now`: runs whose tick has come (or is 1 ms away) and
/// runs fired ahead.
pub(super) fn split_due(batch: Vec<Delivery>, now: i64) -> (Vec<Delivery>, Vec<Delivery>) {
    batch.into_iter().partition(|d| d.at <= now + 1)
}

/// Runs waiting for their tick.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// By (tick, arrival number).
    runs: Mutex<BTreeMap<(i64, u64), Delivery>>,
    /// The next arrival number.
    seq: AtomicU64,
    /// Woken when runs are added, so the holder can wait for an earlier tick.
    changed: Notify,
}

impl Waiting {
    /// Adds runs to wait for their tick.
    pub(super) fn add(&self, later: Vec<Delivery>) {
        if later.is_empty() {
            return;
        }
        if let Ok(mut w) = self.runs.lock() {
            for d in later {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                w.insert((d.at, seq), d);
            }
        }
        self.changed.notify_one();
    }

    /// How many runs wait.
    pub(super) fn len(&self) -> usize {
        self.runs.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// The earliest tick waited for.
    pub(super) fn first_tick(&self) -> Option<i64> {
        self.runs
            .lock()
            .ok()
            .and_then(|w| w.first_key_value().map(|((at, _), _)| *at))
    }

    /// Takes the runs whose tick is at most `tick`, in order.
    pub(super) fn take_until(&self, tick: i64) -> Vec<Delivery> {
        let Ok(mut w) = self.runs.lock() else {
            return Vec::new();
        };
        let later = w.split_off(&(tick.saturating_add(1), 0));
        std::mem::replace(&mut *w, later).into_values().collect()
    }

    /// Takes every waiting run.
    pub(super) fn take_all(&self) -> Vec<Delivery> {
        self.runs
            .lock()
            .map(|mut w| std::mem::take(&mut *w).into_values().collect())
            .unwrap_or_default()
    }

    /// Resolves when runs were added since the last wake-up.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(run: &str, at: i64) -> Delivery {
        Delivery::sample(run, at, 1)
    }

    fn runs(v: &[Delivery]) -> Vec<&str> {
        v.iter().map(|d| d.run.as_str()).collect()
    }

    #[test]
    fn runs_due_within_a_millisecond_go_now() {
        let batch = vec![
            at("past", 900),
            at("now", 1_000),
            at("next", 1_001),
            at("later", 1_002),
        ];
        let (due, later) = split_due(batch, 1_000);
        assert_eq!(runs(&due), ["past", "now", "next"]);
        assert_eq!(runs(&later), ["later"]);
    }

    #[test]
    fn runs_leave_by_tick_then_arrival() {
        let w = Waiting::default();
        assert_eq!(w.first_tick(), None);
        w.add(vec![at("c", 3_000), at("a1", 1_000)]);
        w.add(vec![at("b", 2_000), at("a2", 1_000)]);
        assert_eq!((w.len(), w.first_tick()), (4, Some(1_000)));
        assert!(w.take_until(999).is_empty());
        assert_eq!(runs(&w.take_until(2_000)), ["a1", "a2", "b"]);
        assert_eq!((w.len(), w.first_tick()), (1, Some(3_000)));
        assert_eq!(runs(&w.take_all()), ["c"]);
        assert_eq!(w.len(), 0);
    }

    #[tokio::test]
    async fn adding_wakes_the_holder() {
        let w = Waiting::default();
        w.add(vec![at("a", 5)]);
        // The wake-up was stored: this resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), w.changed())
            .await
            .expect("no wake-up after an add");
    }
}
