//! Schedules: parsing the `schedule` string and computing fire instants in a time zone.
//!
//! A schedule is a cron expression (6 fields with seconds, or classic 5 fields), a macro
//! (`@hourly`, `@daily`, …), a fixed rate (`@every 30s`) or a one-shot (`@once <RFC 3339>`).
//! All instants are milliseconds since the Unix epoch; the scheduler feeds them Redis-clock
//! values, never the host clock.
//!
//! Each form has a module of its own: `cron` (expressions, macros, Unix day-of-week
//! numbering), `dst` (cron instants across daylight-saving transitions), `every` and
//! `once`. This module parses the string into a [`Schedule`] and dispatches to them.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

mod cron;
mod dst;
mod every;
mod once;

pub use every::{MAX_EVERY_MS, MIN_EVERY_MS};

/// A parsed `schedule` string.
///
/// ```
/// use dotjob_shared::schedule::{Schedule, parse_timezone};
///
/// // Weekdays at 09:30 in Berlin, from Friday 2026-01-02T00:00:00Z on.
/// let weekdays = Schedule::parse("30 9 * * MON-FRI").unwrap();
/// let berlin = parse_timezone("Europe/Berlin").unwrap();
/// let friday = 1_767_312_000_000;
/// // Friday 09:30 CET (08:30 UTC), then Monday: the weekend is skipped.
/// assert_eq!(
///     weekdays.preview(friday, berlin, friday, 2),
///     [1_767_342_600_000, 1_767_601_800_000]
/// );
/// // Errors are for the user: they quote what was written and give the bounds.
/// assert_eq!(
///     Schedule::parse("61 * * * *").unwrap_err(),
///     "cron \"61 * * * *\": minutes must be 0-59, got 61"
/// );
/// ```
#[derive(Clone, Debug)]
pub enum Schedule {
    /// A cron expression (normalised to the cron crate's 6/7-field form).
    Cron {
        /// The parsed expression.
        cron: Box<::cron::Schedule>,
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

impl Schedule {
    /// Parses a schedule string; the error says what is wrong for a human.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("empty schedule".into());
        }
        if let Some(rest) = s.strip_prefix("@every") {
            return Ok(Self::Every {
                period_ms: every::parse(rest)?,
            });
        }
        if let Some(rest) = s.strip_prefix("@once") {
            return Ok(Self::Once {
                at_ms: once::parse(rest)?,
            });
        }
        let (cron, all_hours) = cron::parse(s)?;
        Ok(Self::Cron {
            cron: Box::new(cron),
            all_hours,
        })
    }

    /// The first fire instant strictly after `after_ms`, in zone `tz`. `anchor_ms` is where
    /// an `@every` rate starts (the job's creation). `None` when the schedule is exhausted.
    pub fn next_after(&self, after_ms: i64, tz: Tz, anchor_ms: i64) -> Option<i64> {
        match self {
            Self::Once { at_ms } => once::next_after(*at_ms, after_ms),
            Self::Every { period_ms } => every::next_after(*period_ms, after_ms, anchor_ms),
            Self::Cron { cron, all_hours } => {
                let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?;
                dst::cron_next(cron, *all_hours, tz, after).map(|t| t.timestamp_millis())
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    pub(super) fn iso(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// Every fire instant of `expr` in `tz` within `(from, to]`.
    pub(super) fn fires(expr: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
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
    fn every_and_once_dispatch() {
        let every = Schedule::parse("@every 30s").unwrap();
        let anchor = ms("2026-01-01T00:00:10Z");
        assert_eq!(every.next_after(anchor - 5, Tz::UTC, anchor), Some(anchor));
        assert_eq!(
            every.next_after(anchor + 61_000, Tz::UTC, anchor),
            Some(anchor + 90_000)
        );
        let once = Schedule::parse("@once 2026-01-01T00:00:10Z").unwrap();
        assert!(once.is_once() && !every.is_once());
        assert_eq!(once.next_after(anchor - 1, Tz::UTC, 0), Some(anchor));
        assert_eq!(once.next_after(anchor, Tz::UTC, 0), None);
        assert_eq!(once.preview(0, Tz::UTC, 0, 3), [anchor]);
        assert_eq!(
            every.preview(anchor, Tz::UTC, anchor, 2),
            [anchor + 30_000, anchor + 60_000]
        );
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
}
