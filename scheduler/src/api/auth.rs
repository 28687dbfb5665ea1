//! Bearer-token access control of the admin API.
//!
//! Two tokens: `DOTJOB_ADMIN_TOKEN` may call everything, `DOTJOB_READ_TOKEN` only the
//! operations that change nothing. Which operation needs which token is read from the
//! OpenAPI document's per-operation `security` (built from the handlers' annotations), so
//! the enforced rules and the documented ones are the same table; an operation the document
//! does not know is treated as admin-only. With no token configured the API is open, which
//! [`super::ApiOptions::check`] allows on loopback addresses only.
//!
//! Tokens are compared in constant time (SHA-256 digests compared with `subtle`, so neither
//! content nor length leaks through timing) and never printed: [`Secret`]'s `Debug` and
//! `Display` are redacted.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Name of the admin token's security scheme in the OpenAPI document.
pub const ADMIN_SCHEME: &str = "admin_token";
/// Name of the read-only token's security scheme in the OpenAPI document.
pub const READ_SCHEME: &str = "read_token";

/// A token: kept as its SHA-256 digest beside the text, never shown.
#[derive(Clone)]
pub struct Secret {
    text: Arc<str>,
    digest: [u8; 32],
}

impl Secret {
    /// Wraps a token.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.into(),
            digest: Sha256::digest(text.as_bytes()).into(),
        }
    }

    /// The token itself (to send it, e.g. from a test client).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Whether `presented`'s digest equals this token's, in constant time.
    fn matches(&self, presented: &[u8; 32]) -> bool {
        self.digest.ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Takes any text: checking it is [`Secret::check`]'s job, so that an error message
    /// (clap's included) never repeats a token.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl Secret {
    /// Whether it is empty (an unset variable in a template): treated as no token.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Checks it can be sent in an `Authorization` header: 1-4096 visible ASCII
    /// characters. The error does not contain the token.
    pub fn check(&self) -> Result<(), &'static str> {
        let t = self.text.as_bytes();
        if t.is_empty() || t.len() > 4096 || !t.iter().all(u8::is_ascii_graphic) {
            return Err("a token is 1-4096 visible ASCII characters (no spaces)");
        }
        Ok(())
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Nothing (the OpenAPI document itself, the pages, health and metrics).
    Public,
    /// The read token or the admin token.
    Read,
    /// The admin token.
    Admin,
}

/// The configured tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    /// Calls everything.
    pub admin: Option<Secret>,
    /// Calls read operations only.
    pub read: Option<Secret>,
}

impl Tokens {
    /// No token configured: the API is open.
    pub fn is_open(&self) -> bool {
        self.admin.is_none() && self.read.is_none()
    }
}

/// Access rules of every documented operation, by method and route template.
#[derive(Debug, Default)]
pub struct AccessTable(HashMap<(Method, String), Access>);

impl AccessTable {
    /// Reads the rules from an OpenAPI document (as JSON): an operation with an empty
    /// `security` (or an empty requirement in it) is public, one accepting the read token is
    /// a read, anything else (including no `security` at all) needs the admin token.
    pub fn from_openapi(doc: &Value) -> Self {
        let mut map = HashMap::new();
        let paths = doc.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                map.insert((method, path.clone()), access_of(op));
            }
        }
        Self(map)
    }

    /// What `method` on route template `path` needs (HEAD as GET; unknown = admin).
    pub fn access(&self, method: &Method, path: &str) -> Access {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .get(&(method.clone(), path.to_owned()))
            .copied()
            .unwrap_or(Access::Admin)
    }
}

/// What an operation (as OpenAPI JSON) needs.
pub(crate) fn access_of(op: &Value) -> Access {
    let Some(reqs) = op.get("security").and_then(Value::as_array) else {
        return Access::Admin;
    };
    let empty = |r: &Value| r.as_object().is_some_and(serde_json::Map::is_empty);
    if reqs.is_empty() || reqs.iter().any(empty) {
        Access::Public
    } else if reqs.iter().any(|r| r.get(READ_SCHEME).is_some()) {
        Access::Read
    } else {
        Access::Admin
    }
}

/// What the access middleware needs.
#[derive(Debug)]
pub struct Guard {
    /// The configured tokens.
    pub tokens: Tokens,
    /// Rules per operation.
    pub table: AccessTable,
}

/// Who a request's credentials say it is.
#[derive(Debug, PartialEq, Eq)]
enum Caller {
    Admin,
    Reader,
    Nobody,
    Invalid,
}

impl Guard {
    fn caller(&self, req: &Request) -> Caller {
        let Some(header) = req.headers().get(AUTHORIZATION) else {
            return Caller::Nobody;
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(token) = token else {
            return Caller::Invalid;
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Both comparisons always run, so timing says nothing about which one matched.
        let admin = self
            .tokens
            .admin
            .as_ref()
            .is_some_and(|s| s.matches(&digest));
        let read = self
            .tokens
            .read
            .as_ref()
            .is_some_and(|s| s.matches(&digest));
        match (admin, read) {
            (true, _) => Caller::Admin,
            (false, true) => Caller::Reader,
            _ => Caller::Invalid,
        }
    }
}

/// Checks the caller's token against what the matched operation needs.
pub async fn require(
    State(guard): State<Arc<Guard>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let path = matched.as_ref().map_or("", MatchedPath::as_str);
    let access = guard.table.access(req.method(), path);
    if access == Access::Public || guard.tokens.is_open() {
        return next.run(req).await;
    }
    match (guard.caller(&req), access) {
        (Caller::Admin, _) | (Caller::Reader, Access::Read) => next.run(req).await,
        (Caller::Reader, _) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the read-only token cannot change anything; use the admin token",
        )
        .into_response(),
        (Caller::Nobody, _) => ApiError::unauthorized(
            "send `Authorization: Bearer <token>` (DOTJOB_ADMIN_TOKEN, or DOTJOB_READ_TOKEN for reads)",
            false,
        )
        .into_response(),
        (Caller::Invalid, _) => {
            ApiError::unauthorized("the bearer token is not valid", true).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(s.check().is_ok());
        let bad = Secret::new("has space hunter2");
        assert!(bad.check().is_err_and(|e| !e.contains("hunter2")));
        assert!(Secret::new("").check().is_err());
    }

    #[test]
    fn access_comes_from_the_documented_security() {
        let doc = json!({"paths": {
            "/a": {
                "get": {"security": [{"read_token": []}, {"admin_token": []}]},
                "post": {"security": [{"admin_token": []}]}
            },
            "/open": {"get": {"security": [{}]}},
            "/bare": {"get": {}}
        }});
        let t = AccessTable::from_openapi(&doc);
        assert_eq!(t.access(&Method::GET, "/a"), Access::Read);
        assert_eq!(t.access(&Method::HEAD, "/a"), Access::Read);
        assert_eq!(t.access(&Method::POST, "/a"), Access::Admin);
        assert_eq!(t.access(&Method::GET, "/open"), Access::Public);
        assert_eq!(t.access(&Method::GET, "/bare"), Access::Admin);
        assert_eq!(t.access(&Method::GET, "/unknown"), Access::Admin);
    }
}
