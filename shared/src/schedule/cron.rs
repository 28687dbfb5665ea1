//! Cron expressions and `@hourly`-style macros: what a user writes (5 fields, or 6 with
//! seconds first; Unix day-of-week numbers) turned into the `cron` crate's form.
//!
//! Day-of-week numbers follow Unix crontab in every form: 0 and 7 are Sunday, 1 is Monday, …
//! 6 is Saturday. Names (`MON`–`SUN`) work too. They are rewritten as explicit day names,
//! so the crate's Quartz numbering (1 = Sunday) can never misread them.

use std::str::FromStr;

use cron::TimeUnitSpec;

/// The macros and the 6-field expression each stands for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * Sun"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

/// What each field of a cron expression takes, for error messages.
const FIELDS_HELP: &str = "fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 \
     or JAN-DEC) and day of week (0-7 or SUN-SAT), optionally seconds (0-59) first; each a \
     value, a range a-b, a list a,b, `*` or a step like */5";

/// The fields with numbers, in the order of a 6-field expression: name, lowest, highest.
const BOUNDS: [(&str, u32, u32); 5] = [
    ("seconds", 0, 59),
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
];

/// Checks every number of the seconds..month fields against its bounds, so an error quotes
/// what the user wrote and names the right range (day of week is checked when rewritten).
fn check_bounds(s: &str) -> Result<(), String> {
    let fields: Vec<&str> = s.split_whitespace().collect();
    let skip = if fields.len() == 5 { 1 } else { 0 };
    for (field, (name, lo, hi)) in fields.iter().zip(BOUNDS.iter().skip(skip)) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step
                && !st.parse::<u32>().is_ok_and(|n| n > 0)
            {
                return Err(format!(
                    "cron \"{s}\": the step `{st}` in the {name} field must be a whole number above 0"
                ));
            }
            for v in range.split('-') {
                let Ok(n) = v.parse::<u32>() else { continue };
                if n < *lo || n > *hi {
                    return Err(format!("cron \"{s}\": {name} must be {lo}-{hi}, got {n}"));
                }
            }
        }
    }
    Ok(())
}

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Parses a cron expression or macro (`s` is trimmed and not empty). Also answers whether
/// the hour field matches every hour, which decides the daylight-saving rule.
pub(super) fn parse(s: &str) -> Result<(cron::Schedule, bool), String> {
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
        check_bounds(s)?;
        normalise(s).map_err(|e| format!("cron \"{s}\": {e}"))?
    };
    let cron = cron::Schedule::from_str(&expr)
        .map_err(|_| format!("cron \"{s}\" is not valid: {FIELDS_HELP}"))?;
    let all_hours = cron.hours().is_all();
    Ok((cron, all_hours))
}

/// Turns a 5/6/7-field expression into the cron crate's form: seconds first, Quartz
/// day-of-week ordinals (spelled as names so Unix numbering cannot be misread).
fn normalise(s: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::fires;
    use super::*;

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
        // 2026-01-05 is a Monday. (schedule, from, to, the fires between)
        const WEEKDAYS: &[&str] = &[
            "2026-01-05",
            "2026-01-06",
            "2026-01-07",
            "2026-01-08",
            "2026-01-09",
        ];
        let cases: [(&str, &str, &str, &[&str]); 6] = [
            ("0 9 * * 1", "2026-01-01", "2026-01-10", &["2026-01-05"]),
            ("0 9 * * 0", "2026-01-01", "2026-01-10", &["2026-01-04"]),
            ("0 9 * * 7", "2026-01-01", "2026-01-10", &["2026-01-04"]),
            ("0 9 * * 1-5", "2026-01-03", "2026-01-10", WEEKDAYS),
            ("0 9 * * MON-FRI", "2026-01-03", "2026-01-10", WEEKDAYS),
            (
                "0 9 * * 5-7",
                "2026-01-05",
                "2026-01-12",
                &["2026-01-09", "2026-01-10", "2026-01-11"],
            ),
        ];
        for (schedule, from, to, days) in cases {
            let want: Vec<String> = days.iter().map(|d| format!("{d}T09:00:00Z")).collect();
            assert_eq!(
                fires(
                    schedule,
                    "UTC",
                    &format!("{from}T00:00:00Z"),
                    &format!("{to}T00:00:00Z")
                ),
                want,
                "{schedule}"
            );
        }
    }

    #[test]
    fn day_of_week_rewriting() {
        assert_eq!(unix_days_of_week("1-5").unwrap(), "Mon,Tue,Wed,Thu,Fri");
        assert_eq!(unix_days_of_week("FRI-SUN").unwrap(), "Sun,Fri,Sat");
        assert_eq!(unix_days_of_week("*/2").unwrap(), "Sun,Tue,Thu,Sat");
        assert!(unix_days_of_week("8").is_err());
        assert!(unix_days_of_week("5-1").is_err());
        assert!(unix_days_of_week("1/0").is_err());
    }

    fn error(s: &str) -> String {
        parse(s).err().unwrap_or_else(|| panic!("{s} parsed"))
    }

    #[test]
    fn errors_quote_what_was_written_with_the_right_bounds() {
        let e = error("61 * * * *");
        assert_eq!(e, "cron \"61 * * * *\": minutes must be 0-59, got 61");
        assert!(error("0 24 * * *").contains("hours must be 0-23, got 24"));
        assert!(error("0 0 0 * *").contains("day of month must be 1-31, got 0"));
        assert!(error("0 0 1 13 *").contains("month must be 1-12, got 13"));
        assert!(error("60 0 0 1 1 *").contains("seconds must be 0-59, got 60"));
        assert!(error("*/0 * * * *").contains("step `0`"));
        let e = error("0 0 * * 8");
        assert!(
            e.starts_with("cron \"0 0 * * 8\": ") && e.contains("0-7"),
            "{e}"
        );
        let e = error("x * * * *");
        assert!(e.starts_with("cron \"x * * * *\" is not valid: "), "{e}");
        assert!(e.contains("minute (0-59)"), "{e}");
        for e in [error("61 * * * *"), error("x * * * *"), error("* * *")] {
            assert!(!e.contains("0 61") && !e.contains("less than"), "{e}");
        }
    }

    #[test]
    fn macros() {
        assert_eq!(
            fires(
                "@hourly",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:00:00Z"
            ),
            ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
        );
        assert!(parse("@DAILY").is_ok());
        assert!(parse("@fortnightly").is_err());
    }
}
