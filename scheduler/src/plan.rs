//! Which ticks to fire for a due job: the misfire rules, as a pure function of the job, its
//! expected score and the Redis clock (so tests can drive it with any clock).
//!
//! A job whose oldest due tick is at most `misfire_threshold_ms` late simply fires every due
//! tick late: a scheduler failover loses nothing. When the oldest due tick is later than the
//! threshold, the whole backlog is a misfire and the job's policy decides: `fire_once` fires
//! only the latest missed tick, `skip` records the latest as `skipped`, `catch_up` fires the
//! latest `catch_up_limit` missed ticks. The next score is then the first tick after now.

use chrono_tz::Tz;
use dotjob_shared::model::job::{JobSpec, MisfirePolicy};

/// The parts of a job definition the misfire rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Creation instant: the anchor of `@every`.
    pub created_at: i64,
    /// How late a tick may fire before it counts as missed.
    pub misfire_threshold_ms: u64,
    /// What to do with missed ticks.
    pub misfire_policy: MisfirePolicy,
    /// Most missed ticks `catch_up` fires.
    pub catch_up_limit: u32,
}

impl From<&JobSpec> for Rules {
    fn from(s: &JobSpec) -> Self {
        Self {
            created_at: s.created_at,
            misfire_threshold_ms: s.misfire_threshold_ms,
            misfire_policy: s.misfire_policy,
            catch_up_limit: s.catch_up_limit,
        }
    }
}
use dotjob_shared::schedule::Schedule;

/// Most ticks of one job fired per scheduling pass when catching up within the threshold.
pub const MAX_TICKS_PER_PASS: usize = 1_000;

/// What to do with one due job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Ticks to enqueue (ms), oldest first.
    pub fire: Vec<i64>,
    /// A tick to record as `skipped` (misfire skip).
    pub skip: Option<i64>,
    /// The job's next score; `None` unschedules it (schedule exhausted).
    pub next: Option<i64>,
}

/// Ticks of `sched` in `(from, to]`, at most `max`, oldest first.
fn ticks_between(
    sched: &Schedule,
    tz: Tz,
    anchor: i64,
    from: i64,
    to: i64,
    max: usize,
) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = from;
    while out.len() < max {
        match sched.next_after(t, tz, anchor) {
            Some(n) if n <= to => {
                out.push(n);
                t = n;
            }
            _ => break,
        }
    }
    out
}

/// The latest `k` ticks in `[score, now]` (score is itself a tick), oldest first, found by
/// looking back from `now` in growing windows so a long outage of a fast job stays cheap.
fn last_ticks(sched: &Schedule, tz: Tz, anchor: i64, score: i64, now: i64, k: usize) -> Vec<i64> {
    let mut window: i64 = 1_000;
    loop {
        let from = (now - window).max(score - 1);
        let ticks = ticks_between(sched, tz, anchor, from, now, k * 8 + 64);
        if ticks.len() >= k || from < score {
            let skip = ticks.len().saturating_sub(k);
            return ticks[skip..].to_vec();
        }
        window = window.saturating_mul(4);
    }
}

/// Plans a due job whose schedule score is `score`, at Redis time `now`. Ticks up to
/// `horizon` (`now`, or later when firing ahead) are fired in this pass.
pub fn plan(spec: &Rules, sched: &Schedule, tz: Tz, score: i64, now: i64, horizon: i64) -> Plan {
    let anchor = spec.created_at;
    let late = now - score;
    if late <= spec.misfire_threshold_ms as i64 {
        let mut fire = vec![score];
        fire.extend(ticks_between(
            sched,
            tz,
            anchor,
            score,
            horizon.max(now),
            MAX_TICKS_PER_PASS - 1,
        ));
        let last = *fire.last().unwrap_or(&score);
        return Plan {
            fire,
            skip: None,
            next: sched.next_after(last, tz, anchor),
        };
    }
    let next = sched.next_after(now, tz, anchor);
    match spec.misfire_policy {
        MisfirePolicy::FireOnce => Plan {
            fire: last_ticks(sched, tz, anchor, score, now, 1),
            skip: None,
            next,
        },
        MisfirePolicy::Skip => Plan {
            fire: vec![],
            skip: last_ticks(sched, tz, anchor, score, now, 1).pop(),
            next,
        },
        MisfirePolicy::CatchUp => Plan {
            fire: last_ticks(sched, tz, anchor, score, now, spec.catch_up_limit as usize),
            skip: None,
            next,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dotjob_shared::model::job::JobInput;

    const T0: i64 = 1_790_000_000_000; // a whole second

    fn job(schedule: &str, policy: &str, threshold_ms: u64) -> (Rules, Schedule) {
        let input = JobInput::from_json(
            serde_json::json!({
                "name": "j", "handler": "h", "schedule": schedule,
                "misfire_policy": policy, "misfire_threshold_ms": threshold_ms,
                "catch_up_limit": 100
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let spec = input.into_spec(None, "01j", T0 - 60_000).unwrap();
        let sched = Schedule::parse(schedule).unwrap();
        (Rules::from(&spec), sched)
    }

    #[test]
    fn on_time_fires_the_tick() {
        let (j, s) = job("*/1 * * * * *", "fire_once", 30_000);
        let p = plan(&j, &s, Tz::UTC, T0, T0 + 3, T0 + 3);
        assert_eq!(p.fire, vec![T0]);
        assert_eq!(p.next, Some(T0 + 1_000));
    }

    #[test]
    fn firing_ahead_takes_the_ticks_up_to_the_horizon() {
        let (j, s) = job("*/1 * * * * *", "fire_once", 30_000);
        let p = plan(&j, &s, Tz::UTC, T0, T0 - 800, T0 + 2_500);
        assert_eq!(p.fire, vec![T0, T0 + 1_000, T0 + 2_000]);
        assert_eq!(p.next, Some(T0 + 3_000));
    }

    #[test]
    fn late_within_threshold_fires_every_tick() {
        let (j, s) = job("*/1 * * * * *", "skip", 30_000);
        // Down for 10 s: the first missed tick is 10 s late, within 30 s.
        let p = plan(&j, &s, Tz::UTC, T0, T0 + 9_500, T0 + 9_500);
        assert_eq!(p.fire.len(), 10);
        assert_eq!(p.fire[9], T0 + 9_000);
        assert_eq!(p.next, Some(T0 + 10_000));
    }

    #[test]
    fn beyond_threshold_the_policy_decides() {
        let now = T0 + 9_500; // ticks T0 .. T0+9s missed (10 ticks), oldest 9.5 s late
        let (j, s) = job("*/1 * * * * *", "fire_once", 5_000);
        let p = plan(&j, &s, Tz::UTC, T0, now, now);
        assert_eq!(p.fire, vec![T0 + 9_000]);
        assert_eq!(p.next, Some(T0 + 10_000));

        let (j, s) = job("*/1 * * * * *", "skip", 5_000);
        let p = plan(&j, &s, Tz::UTC, T0, now, now);
        assert!(p.fire.is_empty());
        assert_eq!(p.skip, Some(T0 + 9_000));

        let (j, s) = job("*/1 * * * * *", "catch_up", 5_000);
        let p = plan(&j, &s, Tz::UTC, T0, now, now);
        assert_eq!(p.fire.len(), 10);
        assert_eq!(p.fire[0], T0);
    }

    #[test]
    fn catch_up_is_bounded_and_cheap_after_a_long_outage() {
        let (j, s) = job("*/1 * * * * *", "catch_up", 5_000);
        let now = T0 + 86_400_000; // a day of per-second ticks
        let p = plan(&j, &s, Tz::UTC, T0, now, now);
        assert_eq!(p.fire.len(), 100);
        assert_eq!(*p.fire.last().unwrap(), now);
        let (j, s) = job("@hourly", "fire_once", 5_000);
        let p = plan(&j, &s, Tz::UTC, T0 - (T0 % 3_600_000), now, now);
        assert_eq!(p.fire.len(), 1);
        assert!(p.fire[0] <= now && now - p.fire[0] < 3_600_000);
    }
}
