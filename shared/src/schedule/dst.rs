//! Cron fire instants in a time zone, across daylight-saving transitions.
//!
//! The rule is Vixie cron's: a job whose hour field is a specific hour (`30 2 * * *`) fires
//! **once** per wall-clock match — on the spring-forward day a time that does not exist
//! fires at the first valid instant after the gap, and on the fall-back day a repeated time
//! fires only at its first occurrence. A job whose hour field is `*` (every second, every
//! 15 minutes, hourly, …) keeps its rhythm in real time: it skips wall times that do not
//! exist and fires again during the repeated hour.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

fn wall(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

fn offset_secs(tz: Tz, t: DateTime<Utc>) -> i32 {
    t.with_timezone(&tz).offset().fix().local_minus_utc()
}

/// The next cron wall time strictly after `n`.
fn naive_next(cron: &cron::Schedule, n: NaiveDateTime) -> Option<NaiveDateTime> {
    cron.after(&Utc.from_utc_datetime(&n))
        .next()
        .map(|d| d.naive_utc())
}

/// First instant in `(a, b]` whose UTC offset differs from `a`'s, to the millisecond.
fn first_transition(tz: Tz, a: DateTime<Utc>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let off = offset_secs(tz, a);
    let step = Duration::hours(6);
    let mut lo = a;
    while lo < b {
        let hi = (lo + step).min(b);
        if offset_secs(tz, hi) != off {
            let (mut l, mut h) = (lo, hi);
            while h - l > Duration::milliseconds(1) {
                let mid = l + (h - l) / 2;
                if offset_secs(tz, mid) == off {
                    l = mid;
                } else {
                    h = mid;
                }
            }
            return Some(h);
        }
        lo = hi;
    }
    None
}

/// The instant a wall time maps to under the "first occurrence" rule; for a wall time in a
/// spring-forward gap, the end of the gap (fixed-hour jobs) or nothing (every-hour jobs).
fn map_first(tz: Tz, c: NaiveDateTime, all_hours: bool) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&c) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(e, _) => Some(e.with_timezone(&Utc)),
        LocalResult::None if all_hours => None,
        LocalResult::None => {
            // The gap ends at the transition: the first instant whose wall time is past `c`.
            let guess = Utc.from_utc_datetime(&c);
            first_transition(tz, guess - Duration::hours(26), guess + Duration::hours(26))
        }
    }
}

/// The first fire instant of `cron` strictly after `after`, read in zone `tz`. `all_hours`
/// (the hour field is `*`) selects the real-time rhythm rule over the once-per-wall-time one.
pub(super) fn cron_next(
    cron: &cron::Schedule,
    all_hours: bool,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // A: the earliest "first occurrence" instant of a wall time after `after`'s wall time.
    let mut n = wall(tz, after);
    let mut best = None;
    for _ in 0..100_000 {
        let c = naive_next(cron, n)?;
        if let Some(t) = map_first(tz, c, all_hours).filter(|t| *t > after) {
            best = Some(t);
            break;
        }
        n = c;
    }
    let a = best?;
    if !all_hours {
        return Some(a);
    }
    // B: every-hour jobs also fire in the repeated hour of a fall-back, which comes before
    // the wall times after the fold. Find a fold whose second pass overlaps (after, a).
    let (fold_at, repeat_from) = match tz.from_local_datetime(&wall(tz, after)) {
        LocalResult::Ambiguous(e, l) if after >= l.with_timezone(&Utc) => {
            // `after` is inside the repeated hour already.
            match first_transition(tz, e.with_timezone(&Utc), l.with_timezone(&Utc)) {
                Some(t) => (t, wall(tz, after)),
                None => return Some(a),
            }
        }
        _ => {
            let Some(t) = first_transition(tz, after, a) else {
                return Some(a);
            };
            if offset_secs(tz, t) >= offset_secs(tz, t - Duration::seconds(1)) {
                return Some(a); // a spring-forward gap: nothing repeats
            }
            (t, wall(tz, t) - Duration::milliseconds(1))
        }
    };
    let fold_end = wall(tz, fold_at - Duration::milliseconds(1)) + Duration::milliseconds(1);
    let c = naive_next(cron, repeat_from)?;
    if c < fold_end
        && let LocalResult::Ambiguous(_, l) = tz.from_local_datetime(&c)
    {
        let l = l.with_timezone(&Utc);
        if l > after && l < a {
            return Some(l);
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::super::Schedule;
    use super::super::parse_timezone;
    use super::super::tests::{fires, iso, ms};

    #[test]
    fn berlin_spring_forward_fires_once_at_gap_end() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            fires(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T12:00:00Z"
            ),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ]
        );
    }

    #[test]
    fn berlin_fall_back_fires_once() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        assert_eq!(
            fires(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-23T12:00:00Z",
                "2026-10-26T12:00:00Z"
            ),
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z", // first 02:30 (CEST) only
                "2026-10-26T01:30:00Z", // 02:30 CET
            ]
        );
        // Standing inside the repeated hour does not fire the repeat either.
        let s = Schedule::parse("30 2 * * *").unwrap();
        let tz = parse_timezone("Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(ms("2026-10-25T01:10:00Z"), tz, 0)
                .map(iso)
                .unwrap(),
            "2026-10-26T01:30:00Z"
        );
    }

    #[test]
    fn every_hour_jobs_keep_real_time_rhythm_across_dst() {
        for (from, to) in [
            ("2026-10-24T22:00:00Z", "2026-10-25T04:00:00Z"),
            ("2026-03-28T22:00:00Z", "2026-03-29T04:00:00Z"),
        ] {
            let got = fires("*/15 * * * *", "Europe/Berlin", from, to);
            assert_eq!(got.len(), 24, "{from}: {got:?}");
            for w in got.windows(2) {
                assert_eq!(ms(&w[1].to_string()) - ms(&w[0].to_string()), 900_000);
            }
        }
        // Inside the repeated hour, the next quarter is in the repeated hour.
        let s = Schedule::parse("0 */15 * * * *").unwrap();
        let tz = parse_timezone("Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(ms("2026-10-25T01:10:00Z"), tz, 0)
                .map(iso)
                .unwrap(),
            "2026-10-25T01:15:00Z"
        );
        assert_eq!(
            s.next_after(ms("2026-10-25T00:50:00Z"), tz, 0)
                .map(iso)
                .unwrap(),
            "2026-10-25T01:00:00Z"
        );
    }

    #[test]
    fn utc_jobs_are_unaffected() {
        assert_eq!(
            fires(
                "30 2 * * *",
                "UTC",
                "2026-03-28T12:00:00Z",
                "2026-03-30T12:00:00Z"
            ),
            ["2026-03-29T02:30:00Z", "2026-03-30T02:30:00Z"]
        );
    }
}
