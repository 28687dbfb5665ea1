//! `@once <RFC 3339 instant>`: a single fire, after which the job disables itself.

use chrono::DateTime;

/// Parses what follows `@once` into an instant in milliseconds.
pub(super) fn parse(rest: &str) -> Result<i64, String> {
    let at = DateTime::parse_from_rfc3339(rest.trim())
        .map_err(|e| format!("@once needs an RFC 3339 instant like `2030-01-01T09:00:00Z`: {e}"))?;
    Ok(at.timestamp_millis())
}

/// The instant, while it is still after `after_ms`.
pub(super) fn next_after(at_ms: i64, after_ms: i64) -> Option<i64> {
    (at_ms > after_ms).then_some(at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_then_never() {
        let at = parse("2026-01-01T01:00:10+01:00").unwrap();
        assert_eq!(at, parse("2026-01-01T00:00:10Z").unwrap());
        assert_eq!(next_after(at, at - 1), Some(at));
        assert_eq!(next_after(at, at), None);
        assert!(parse("tomorrow").is_err());
    }
}
