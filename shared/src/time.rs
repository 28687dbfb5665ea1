//! Instants as the API shows them: milliseconds since the epoch inside, RFC 3339 outside.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `2026-11-20T12:00:01.000Z` for an instant in ms.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serialises an instant in ms as RFC 3339.
pub fn ms_to_rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// Serialises an optional instant in ms as RFC 3339 or `null`.
pub fn opt_ms_rfc3339<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_millis_in_utc() {
        assert_eq!(super::rfc3339(1_000), "1970-01-01T00:00:01.000Z");
    }
}
