//! `@every <duration>`: a fixed rate anchored at the job's creation instant, so every
//! replica computes the same ticks without sharing any state but the job hash.

/// Shortest allowed `@every` period.
pub const MIN_EVERY_MS: i64 = 1_000;
/// Longest allowed `@every` period.
pub const MAX_EVERY_MS: i64 = 366 * 24 * 3_600_000;

/// Parses what follows `@every` into a period in milliseconds.
pub(super) fn parse(rest: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(rest.trim())
        .map_err(|e| format!("@every needs a duration like `30s` or `5m`: {e}"))?;
    let period_ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&period_ms) {
        return Err("@every period must be between 1s and 366 days".into());
    }
    Ok(period_ms)
}

/// The first tick of the rate strictly after `after_ms`; the anchor itself is the first.
pub(super) fn next_after(period_ms: i64, after_ms: i64, anchor_ms: i64) -> Option<i64> {
    if anchor_ms > after_ms {
        Some(anchor_ms)
    } else {
        let k = (after_ms - anchor_ms) / period_ms + 1;
        anchor_ms.checked_add(k.checked_mul(period_ms)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_from_the_anchor() {
        let anchor = 1_767_225_610_000;
        assert_eq!(next_after(30_000, anchor - 5, anchor), Some(anchor));
        assert_eq!(next_after(30_000, anchor, anchor), Some(anchor + 30_000));
        assert_eq!(
            next_after(30_000, anchor + 61_000, anchor),
            Some(anchor + 90_000)
        );
    }

    #[test]
    fn period_bounds() {
        assert_eq!(parse(" 30s"), Ok(30_000));
        assert_eq!(parse("1s"), Ok(MIN_EVERY_MS));
        assert!(parse("999ms").is_err());
        assert!(parse("367days").is_err());
        assert!(parse("0s").is_err());
        assert!(parse("soon").is_err());
    }
}
