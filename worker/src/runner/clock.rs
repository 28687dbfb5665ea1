//! The Redis server clock as this worker estimates it, so a run fired ahead starts at its
//! tick on the one clock every decision uses, not on the host's.
//!
//! [`ClockEstimate`] is the pure logic (no I/O; instants are passed in): it keeps the best
//! lower bound of the Redis clock from its readings and extrapolates with the monotonic
//! clock. [`RedisClock`] owns the lock around it. Readings are written by the heartbeat
//! (`touch.lua` replies), the holder (`recheck.lua` replies) and once at start; the holder
//! and the executions read it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A reading of the Redis clock below the estimate by more than this means the clock moved
/// back (a restart on another host, say) and replaces the estimate.
const MOVED_BACK_MS: i64 = 1_000;

/// The Redis clock as last read (ms) and when, in local monotonic time.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ClockEstimate {
    reading: Option<(i64, Instant)>,
}

impl ClockEstimate {
    /// Takes a reading of `redis_ms` made at `read_at`. Taken as read when its reply arrived,
    /// a reading is a lower bound of the clock (a slow reply understates it by its delay), so
    /// the estimate keeps the highest lower bound: a run waiting for its tick never starts
    /// early. A reading far below the estimate replaces it (the Redis clock moved back).
    pub(super) fn record(&mut self, redis_ms: i64, read_at: Instant) {
        let keep = self.reading.is_some_and(|(ms, at)| {
            let estimate = ms + read_at.saturating_duration_since(at).as_millis() as i64;
            estimate > redis_ms && estimate - redis_ms < MOVED_BACK_MS
        });
        if !keep {
            self.reading = Some((redis_ms, read_at));
        }
    }

    /// The Redis clock (ms) at local instant `at`, if it was ever read.
    pub(super) fn at(&self, at: Instant) -> Option<i64> {
        self.reading
            .map(|(ms, read)| ms + at.saturating_duration_since(read).as_millis() as i64)
    }

    /// The local instant at which the Redis clock reads `at_ms`; `now` when that is not
    /// ahead of the last reading or the clock was never read.
    pub(super) fn instant_of(&self, at_ms: i64, now: Instant) -> Instant {
        match self.reading {
            Some((ms, at)) if at_ms >= ms => at + Duration::from_millis((at_ms - ms) as u64),
            _ => now,
        }
    }
}

/// The shared estimate, behind its own lock.
#[derive(Debug, Default)]
pub(super) struct RedisClock {
    estimate: Mutex<ClockEstimate>,
}

impl RedisClock {
    /// Takes a reading of the Redis clock whose reply just arrived.
    pub(super) fn record(&self, redis_ms: i64) {
        let read_at = Instant::now();
        if let Ok(mut e) = self.estimate.lock() {
            e.record(redis_ms, read_at);
        }
    }

    /// The Redis clock now, estimated.
    pub(super) fn now(&self) -> Option<i64> {
        self.snapshot().at(Instant::now())
    }

    /// The local instant at which the Redis clock reads `at_ms`.
    pub(super) fn instant_of(&self, at_ms: i64) -> Instant {
        self.snapshot().instant_of(at_ms, Instant::now())
    }

    fn snapshot(&self) -> ClockEstimate {
        self.estimate.lock().map(|e| *e).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unread_clock_has_no_estimate() {
        let c = ClockEstimate::default();
        let now = Instant::now();
        assert_eq!(c.at(now), None);
        assert_eq!(c.instant_of(5_000, now), now);
    }

    #[test]
    fn estimate_advances_with_local_time() {
        let t0 = Instant::now();
        let mut c = ClockEstimate::default();
        c.record(10_000, t0);
        assert_eq!(c.at(t0), Some(10_000));
        assert_eq!(c.at(t0 + 250 * MS), Some(10_250));
        // An instant before the reading does not go back in time.
        assert_eq!(c.at(t0.checked_sub(MS).unwrap_or(t0)), Some(10_000));
    }

    #[test]
    fn a_slow_reply_does_not_pull_the_estimate_back() {
        let t0 = Instant::now();
        let mut c = ClockEstimate::default();
        c.record(10_000, t0);
        // 100 ms later a reply says 10 060: it was 40 ms in flight; 10 100 is the better bound.
        c.record(10_060, t0 + 100 * MS);
        assert_eq!(c.at(t0 + 100 * MS), Some(10_100));
        // A reading above the estimate is a better lower bound and replaces it.
        c.record(10_150, t0 + 120 * MS);
        assert_eq!(c.at(t0 + 120 * MS), Some(10_150));
    }

    #[test]
    fn a_clock_that_moved_back_replaces_the_estimate() {
        let t0 = Instant::now();
        let mut c = ClockEstimate::default();
        c.record(100_000, t0);
        c.record(50_000, t0 + 10 * MS);
        assert_eq!(c.at(t0 + 10 * MS), Some(50_000));
        // Exactly a second behind counts as moved back too.
        let mut c = ClockEstimate::default();
        c.record(100_000, t0);
        c.record(99_000, t0);
        assert_eq!(c.at(t0), Some(99_000));
        // Just under a second behind is a slow reply.
        let mut c = ClockEstimate::default();
        c.record(100_000, t0);
        c.record(99_001, t0);
        assert_eq!(c.at(t0), Some(100_000));
    }

    #[test]
    fn ticks_map_to_local_instants() {
        let t0 = Instant::now();
        let mut c = ClockEstimate::default();
        c.record(10_000, t0);
        let later = t0 + 5 * MS;
        assert_eq!(c.instant_of(10_400, later), t0 + 400 * MS);
        assert_eq!(c.instant_of(10_000, later), t0);
        // A tick before the reading is due now.
        assert_eq!(c.instant_of(9_000, later), later);
    }

    #[test]
    fn the_shared_clock_reads_what_was_recorded() {
        let c = RedisClock::default();
        assert_eq!(c.now(), None);
        c.record(1_000_000);
        let now = c.now().unwrap();
        assert!((1_000_000..1_001_000).contains(&now), "{now}");
        assert!(c.instant_of(now + 60_000) > Instant::now() + Duration::from_secs(50));
    }
}
