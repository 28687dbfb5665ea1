//! Abuse bounds of the admin API and the settings of its security features.
//!
//! - Query strings longer than [`QUERY_MAX`] bytes are refused (414) before routing; request
//!   bodies are capped at 1 MiB by the JSON extractor (413).
//! - Log-follow streams (`GET /runs/{id}/logs?follow=true`) hold a Redis poll each for up to
//!   an hour, so they are counted: at most `follow_max` open at once in this process and
//!   `follow_max_per_token` per token name; beyond, a 429 says which bound was hit. A
//!   [`FollowPermit`] lives as long as its stream and frees its place when dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest query string accepted, in bytes.
pub const QUERY_MAX: usize = 8 * 1024;
/// Default cap on open log-follow streams per process.
pub const FOLLOW_MAX: usize = 64;
/// Default cap on open log-follow streams per token.
pub const FOLLOW_MAX_PER_TOKEN: usize = 8;
/// Default bound on the audit stream's length.
pub const AUDIT_MAXLEN: u64 = 100_000;

/// Tokens file, audit trail and abuse bounds.
#[derive(Clone, Debug)]
pub struct SecurityOptions {
    /// `DOTJOB_TOKENS_FILE`: named tokens, re-read when it changes.
    pub tokens_file: Option<PathBuf>,
    /// `DOTJOB_AUDIT_MAXLEN`: the audit stream is trimmed to about this many entries.
    pub audit_maxlen: u64,
    /// `DOTJOB_FOLLOW_MAX`: open log-follow streams per process.
    pub follow_max: usize,
    /// `DOTJOB_FOLLOW_MAX_PER_TOKEN`: open log-follow streams per token name.
    pub follow_max_per_token: usize,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        Self {
            tokens_file: None,
            audit_maxlen: AUDIT_MAXLEN,
            follow_max: FOLLOW_MAX,
            follow_max_per_token: FOLLOW_MAX_PER_TOKEN,
        }
    }
}

/// Refuses query strings over [`QUERY_MAX`] bytes.
pub async fn cap_query(req: Request, next: Next) -> Response {
    if req.uri().query().is_some_and(|q| q.len() > QUERY_MAX) {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the query string is over {QUERY_MAX} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Counts of open follow streams.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_token: HashMap<Arc<str>, usize>,
}

/// The follow-stream bounds of one process.
#[derive(Debug)]
pub struct FollowLimits {
    max: usize,
    per_token: usize,
    open: Mutex<Open>,
}

/// One open follow stream's place; freed on drop.
#[derive(Debug)]
pub struct FollowPermit {
    limits: Arc<FollowLimits>,
    token: Arc<str>,
}

impl FollowLimits {
    /// Bounds of `max` streams in all and `per_token` per token name.
    pub fn new(max: usize, per_token: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_token,
            open: Mutex::default(),
        })
    }

    /// A place for one more stream of `token`, or a 429 saying which bound was hit.
    pub fn acquire(self: &Arc<Self>, token: Arc<str>) -> Result<FollowPermit, ApiError> {
        let mut open = self.open.lock().map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })?;
        let mine = open.per_token.get(&token).copied().unwrap_or(0);
        let refuse =
            |msg: String| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", msg);
        if open.total >= self.max {
            return Err(refuse(format!(
                "{} log-follow streams are open on this server, the most it serves \
                 (DOTJOB_FOLLOW_MAX); read without follow, or retry later",
                open.total
            )));
        }
        if mine >= self.per_token {
            return Err(refuse(format!(
                "token `{token}` has {mine} log-follow streams open, the most one token may \
                 (DOTJOB_FOLLOW_MAX_PER_TOKEN); close one first"
            )));
        }
        open.total += 1;
        *open.per_token.entry(token.clone()).or_default() += 1;
        Ok(FollowPermit {
            limits: self.clone(),
            token,
        })
    }
}

impl Drop for FollowPermit {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limits.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.per_token.get_mut(&self.token) {
                *n -= 1;
                if *n == 0 {
                    open.per_token.remove(&self.token);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_streams_are_bounded_per_token_and_in_all() {
        let l = FollowLimits::new(3, 2);
        let a1 = l.acquire("a".into()).unwrap();
        let _a2 = l.acquire("a".into()).unwrap();
        let e = l.acquire("a".into()).unwrap_err();
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let _b1 = l.acquire("b".into()).unwrap();
        assert!(l.acquire("c".into()).is_err(), "the process bound");
        drop(a1);
        assert!(
            l.acquire("c".into()).is_ok(),
            "a closed stream frees its place"
        );
    }
}
