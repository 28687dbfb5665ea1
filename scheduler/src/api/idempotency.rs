//! Idempotent triggers: `POST /jobs/{id}/trigger` takes an idempotency key, in the body
//! (`idempotency_key`) or the `Idempotency-Key` header (both given must agree). A repeat with
//! the same key for the same job within the window answers the first run (`replayed: true`)
//! and enqueues nothing; `trigger.lua` decides atomically (see the store's
//! `trigger_idempotent`). The window is `DOTJOB_IDEMPOTENCY_WINDOW` (default 24 h).

use std::time::Duration;

use axum::http::HeaderMap;
use dotjob_shared::store::check_idempotency_key;

use super::error::ApiError;

/// The request header that carries an idempotency key.
pub const HEADER: &str = "Idempotency-Key";

/// Shortest window accepted.
pub const WINDOW_MIN: Duration = Duration::from_secs(1);
/// Longest window accepted.
pub const WINDOW_MAX: Duration = Duration::from_secs(30 * 24 * 3_600);

/// How long an idempotency key answers its first run (`DOTJOB_IDEMPOTENCY_WINDOW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyWindow(pub Duration);

impl Default for IdempotencyWindow {
    fn default() -> Self {
        Self(Duration::from_secs(24 * 3_600))
    }
}

impl IdempotencyWindow {
    /// The window in ms, as `trigger.lua` takes it.
    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }

    /// Refuses a window outside 1 s to 30 days, in one line for the operator.
    pub fn check(self) -> Result<(), String> {
        if self.0 < WINDOW_MIN || self.0 > WINDOW_MAX {
            return Err(format!(
                "DOTJOB_IDEMPOTENCY_WINDOW: {} is outside 1s to 30days",
                humantime::format_duration(self.0)
            ));
        }
        Ok(())
    }
}

/// The idempotency key of a trigger: the header's or the body's, checked (1-200
/// characters, no control characters); a 400 names the field when they differ or one is bad.
pub fn key(headers: &HeaderMap, body: Option<&str>) -> Result<Option<String>, ApiError> {
    let header = match headers.get(HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid(HEADER, "must be visible ASCII text"))?,
        ),
        None => None,
    };
    if let Some(h) = header {
        check_idempotency_key(HEADER, h)?;
    }
    if let Some(b) = body {
        check_idempotency_key("idempotency_key", b)?;
    }
    match (header, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid(
            "idempotency_key",
            format!("differs from the {HEADER} header; give one, or the same in both"),
        )),
        (h, b) => Ok(h.or(b).map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn field(r: Result<Option<String>, ApiError>) -> String {
        r.expect_err("refused")
            .field()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn the_key_comes_from_the_header_or_the_body() {
        assert_eq!(key(&headers(None), None).unwrap(), None);
        assert_eq!(
            key(&headers(Some("a-1")), None).unwrap().as_deref(),
            Some("a-1")
        );
        assert_eq!(
            key(&headers(None), Some("b")).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(
            key(&headers(Some("c")), Some("c")).unwrap().as_deref(),
            Some("c")
        );
        assert_eq!(
            field(key(&headers(Some("c")), Some("d"))),
            "idempotency_key"
        );
        assert_eq!(field(key(&headers(None), Some(""))), "idempotency_key");
        let long = "k".repeat(201);
        assert_eq!(field(key(&headers(None), Some(&long))), "idempotency_key");
        assert_eq!(field(key(&headers(Some(&long)), None)), HEADER);
        assert!(key(&headers(None), Some(&"k".repeat(200))).is_ok());
        assert_eq!(field(key(&headers(None), Some("a\nb"))), "idempotency_key");
    }

    #[test]
    fn the_window_is_bounded() {
        assert!(IdempotencyWindow::default().check().is_ok());
        assert_eq!(IdempotencyWindow::default().ms(), 86_400_000);
        assert!(
            IdempotencyWindow(Duration::from_millis(10))
                .check()
                .is_err()
        );
        assert!(IdempotencyWindow(WINDOW_MAX * 2).check().is_err());
    }
}
