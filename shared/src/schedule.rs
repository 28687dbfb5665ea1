//! Schedules: parsing the `schedule` string and computing fire instants in a time zone.
//!
//! A schedule is a cron expression (6 fields with seconds, or classic 5 fields), a macro
//! (`@hourly`, `@daily`, …), a fixed rate (`@every 30s`) or a one-shot (`@once <RFC 3339>`).
//! All instants are milliseconds since the Unix epoch; the scheduler feeds them Redis-clock
//! values, never the host clock.
//!
//! Day-of-week numbers follow Unix crontab in every form: 0 and 7 are Sunday, 1 is Monday, …
//! 6 is Saturday. Names (`MON`–`SUN`) work too.
//!
//! Daylight-saving rule (Vixie cron's): a job whose hour field is a specific hour
//! (`30 2 * * *`) fires **once** per wall-clock match — on the spring-forward day a time that
//! does not exist fires at the first valid instant after the gap, and on the fall-back day a
//! repeated time fires only at its first occurrence. A job whose hour field is `*` (every
//! second, every 15 minutes, hourly, …) keeps its rhythm in real time: it skips wall times
//! that do not exist and fires again during the repeated hour.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

/// A parsed `schedule` string.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// A cron expression (normalised to the cron crate's 6/7-field form).
    Cron {
        /// The parsed expression.
        cron: Box<cron::Schedule>,
        /// Whether the hour field matches every hour; decides the DST rule.
        all_hours: bool,
    },
    /// Fixed rate, anchored at the job's creation instant.
    Every {
        /// Period in milliseconds.
        period_ms: i64,
    },
    /// One instant, then the job disables itself.
    Once {
        /// The instant (ms).
        at_ms: i64,
    },
}

/// Shortest allowed `@every` period.
pub const MIN_EVERY_MS: i64 = 1_000;
/// Longest allowed `@every` period.
pub const MAX_EVERY_MS: i64 = 366 * 24 * 3_600_000;

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * Sun"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

impl Schedule {
    /// Parses a schedule string; the error says what is wrong for a human.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("empty schedule".into());
        }
        if let Some(rest) = s.strip_prefix("@every") {
            let d = humantime::parse_duration(rest.trim())
                .map_err(|e| format!("@every needs a duration like `30s` or `5m`: {e}"))?;
            let period_ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&period_ms) {
                return Err("@every period must be between 1s and 366 days".into());
            }
            return Ok(Self::Every { period_ms });
        }
        if let Some(rest) = s.strip_prefix("@once") {
            let at = DateTime::parse_from_rfc3339(rest.trim()).map_err(|e| {
                format!("@once needs an RFC 3339 instant like `2030-01-01T09:00:00Z`: {e}")
            })?;
            return Ok(Self::Once {
                at_ms: at.timestamp_millis(),
            });
        }
        let expr = if s.starts_with('@') {
            MACROS
                .iter()
                .find(|(m, _)| m.eq_ignore_ascii_case(s))
                .map(|(_, e)| (*e).to_owned())
                .ok_or_else(|| {
                    format!(
                        "unknown macro `{s}` (known: @yearly, @monthly, @weekly, @daily, @hourly, @every <duration>, @once <instant>)"
                    )
                })?
        } else {
            normalise_cron(s)?
        };
        let cron = cron::Schedule::from_str(&expr).map_err(|e| format!("invalid cron: {e}"))?;
        let all_hours = cron.hours().is_all();
        Ok(Self::Cron {
            cron: Box::new(cron),
            all_hours,
        })
    }

    /// The first fire instant strictly after `after_ms`, in zone `tz`. `anchor_ms` is where
    /// an `@every` rate starts (the job's creation). `None` when the schedule is exhausted.
    pub fn next_after(&self, after_ms: i64, tz: Tz, anchor_ms: i64) -> Option<i64> {
        match self {
            Self::Once { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Self::Every { period_ms } => {
                if anchor_ms > after_ms {
                    Some(anchor_ms)
                } else {
                    let k = (after_ms - anchor_ms) / period_ms + 1;
                    anchor_ms.checked_add(k.checked_mul(*period_ms)?)
                }
            }
            Self::Cron { cron, all_hours } => {
                let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?;
                cron_next(cron, *all_hours, tz, after).map(|t| t.timestamp_millis())
            }
        }
    }

    /// True for `@once`.
    pub fn is_once(&self) -> bool {
        matches!(self, Self::Once { .. })
    }

    /// The next `count` fire instants after `after_ms`.
    pub fn preview(&self, after_ms: i64, tz: Tz, anchor_ms: i64, count: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(count);
        let mut t = after_ms;
        while out.len() < count {
            match self.next_after(t, tz, anchor_ms) {
                Some(n) => {
                    out.push(n);
                    t = n;
                }
                None => break,
            }
        }
        out
    }
}

/// Parses an IANA time zone name.
pub fn parse_timezone(s: &str) -> Result<Tz, String> {
    Tz::from_str(s)
        .map_err(|_| format!("unknown IANA time zone `{s}` (e.g. `UTC`, `Europe/Berlin`)"))
}

/// Turns a 5/6/7-field expression into the cron crate's form: seconds first, Quartz
/// day-of-week ordinals (spelled as names so Unix numbering cannot be misread).
fn normalise_cron(s: &str) -> Result<String, String> {
    let mut fields: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".to_owned()),
        6 | 7 => {}
        n => {
            return Err(format!(
                "a cron expression has 5 fields (min hour dom mon dow) or 6 with seconds first; got {n}"
            ));
        }
    }
    fields[5] = unix_days_of_week(&fields[5])?;
    Ok(fields.join(" "))
}

/// A day-of-week token as a number 0–7 (names give 0–6, Sunday = 0).
fn day_number(token: &str) -> Result<u32, String> {
    const FULL: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let lower = token.to_ascii_lowercase();
    if let Some(i) = FULL.iter().position(|f| *f == lower || f[..3] == lower) {
        return Ok(i as u32);
    }
    match token.parse::<u32>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(format!(
            "day of week `{token}` must be 0-7 (0 and 7 are Sunday) or a name like MON"
        )),
    }
}

/// Rewrites a day-of-week field with Unix numbering into an explicit list of day names.
fn unix_days_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in day of week `{part}`"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (day_number(a)? % 7, day_number(b)?);
            // `5-0` / `FRI-SUN` mean Friday..Sunday: Sunday closes a range at the week's end.
            let b = if b == 0 && a > 0 { 7 } else { b };
            if a > b {
                return Err(format!("day-of-week range `{range}` runs backwards"));
            }
            (a, b)
        } else {
            let a = day_number(range)? % 7;
            (a, if part.contains('/') { 6 } else { a })
        };
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    if names.is_empty() {
        return Err(format!("day of week `{field}` matches no day"));
    }
    Ok(names.join(","))
}

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

fn cron_next(
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
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn fires(expr: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap();
        let tz = parse_timezone(tz).unwrap();
        let mut t = ms(from);
        let end = ms(to);
        let mut out = vec![];
        while let Some(n) = s.next_after(t, tz, 0) {
            if n > end {
                break;
            }
            assert!(n > t, "not increasing");
            out.push(iso(n));
            t = n;
        }
        out
    }

    #[test]
    fn seconds_and_five_fields() {
        assert_eq!(
            fires(
                "*/1 * * * * *",
                "UTC",
                "2026-01-01T00:00:00.300Z",
                "2026-01-01T00:00:03Z"
            ),
            [
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:02Z",
                "2026-01-01T00:00:03Z"
            ]
        );
        assert_eq!(
            fires(
                "15 9 * * *",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-02T23:00:00Z"
            ),
            ["2026-01-01T09:15:00Z", "2026-01-02T09:15:00Z"]
        );
    }

    #[test]
    fn unix_day_of_week_numbers() {
        // 2026-01-05 is a Monday.
        assert_eq!(
            fires(
                "0 9 * * 1",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-10T00:00:00Z"
            ),
            ["2026-01-05T09:00:00Z"]
        );
        assert_eq!(
            fires(
                "0 9 * * 0",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-10T00:00:00Z"
            ),
            ["2026-01-04T09:00:00Z"]
        );
        assert_eq!(
            fires(
                "0 9 * * 7",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-10T00:00:00Z"
            ),
            ["2026-01-04T09:00:00Z"]
        );
        assert_eq!(
            fires(
                "0 9 * * 1-5",
                "UTC",
                "2026-01-03T00:00:00Z",
                "2026-01-10T00:00:00Z"
            )
            .len(),
            5
        );
        assert_eq!(
            fires(
                "0 9 * * MON-FRI",
                "UTC",
                "2026-01-03T00:00:00Z",
                "2026-01-10T00:00:00Z"
            )
            .len(),
            5
        );
        assert_eq!(
            fires(
                "0 9 * * 5-7",
                "UTC",
                "2026-01-05T00:00:00Z",
                "2026-01-12T00:00:00Z"
            ),
            [
                "2026-01-09T09:00:00Z",
                "2026-01-10T09:00:00Z",
                "2026-01-11T09:00:00Z"
            ]
        );
    }

    #[test]
    fn macros_every_and_once() {
        assert_eq!(
            fires(
                "@hourly",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:00:00Z"
            ),
            ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
        );
        let every = Schedule::parse("@every 30s").unwrap();
        let anchor = ms("2026-01-01T00:00:10Z");
        assert_eq!(every.next_after(anchor - 5, Tz::UTC, anchor), Some(anchor));
        assert_eq!(
            every.next_after(anchor, Tz::UTC, anchor),
            Some(anchor + 30_000)
        );
        assert_eq!(
            every.next_after(anchor + 61_000, Tz::UTC, anchor),
            Some(anchor + 90_000)
        );
        let once = Schedule::parse("@once 2026-01-01T00:00:10Z").unwrap();
        assert_eq!(once.next_after(anchor - 1, Tz::UTC, 0), Some(anchor));
        assert_eq!(once.next_after(anchor, Tz::UTC, 0), None);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "@fortnightly",
            "@every 0s",
            "@every soon",
            "@once tomorrow",
            "0 0 * * 8",
            "a b c d e",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert!(parse_timezone("Europe/Berlin").is_ok());
    }

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
