//! Bearer-token access control of the admin API.
//!
//! Admin tokens may call everything, read tokens only the operations that change nothing.
//! Tokens have names ([`super::tokens`]: `DOTJOB_ADMIN_TOKEN` is `admin`,
//! `DOTJOB_READ_TOKEN` is `read`, more in `DOTJOB_TOKENS_FILE`); the name of the caller's
//! token travels with the request and its answer as a [`CallerName`] (for the audit trail
//! and per-token limits). Which operation needs which role is read from the OpenAPI
//! document's per-operation `security` (built from the handlers' annotations), so the
//! enforced rules and the documented ones are the same table; an operation the document
//! does not know is treated as admin-only. With no token configured the API is open, which
//! [`super::ApiOptions::check`] allows on loopback addresses only.
//!
//! Tokens are compared in constant time (SHA-256 digests compared with `subtle`, so neither
//! content nor length leaks through timing) and never printed: [`Secret`]'s `Debug` and
//! `Display` are redacted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use super::tokens::{Role, TokenRegistry};

/// Name of the admin token's security scheme in the OpenAPI document.
pub const ADMIN_SCHEME: &str = "admin_token";
/// Name of the read-only token's security scheme in the OpenAPI document.
pub const READ_SCHEME: &str = "read_token";

pub use super::secret::Secret;

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

/// Access rules and operation ids of every documented operation, by method and route
/// template.
#[derive(Debug, Default)]
pub struct AccessTable(HashMap<(Method, String), (Access, Option<String>)>);

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
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                map.insert((method, path.clone()), (access_of(op), id));
            }
        }
        Self(map)
    }

    fn entry(&self, method: &Method, path: &str) -> Option<&(Access, Option<String>)> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0.get(&(method.clone(), path.to_owned()))
    }

    /// What `method` on route template `path` needs (HEAD as GET; unknown = admin).
    pub fn access(&self, method: &Method, path: &str) -> Access {
        self.entry(method, path).map_or(Access::Admin, |e| e.0)
    }

    /// The documented operation id of `method` on route template `path`.
    pub fn operation(&self, method: &Method, path: &str) -> Option<&str> {
        self.entry(method, path).and_then(|e| e.1.as_deref())
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

/// The name of the token a request came with (`anonymous` when the API is open); set on
/// the request (for handlers) and on its answer (for the audit trail).
#[derive(Clone, Debug)]
pub struct CallerName(pub Arc<str>);

/// Name recorded for requests to an open API (no tokens configured).
pub const ANONYMOUS: &str = "anonymous";

/// What the access middleware needs.
#[derive(Debug)]
pub struct Guard {
    /// The configured tokens.
    pub tokens: Arc<TokenRegistry>,
    /// Rules per operation.
    pub table: Arc<AccessTable>,
}

/// Who a request's credentials say it is.
#[derive(Debug, PartialEq, Eq)]
enum Caller {
    Known(Arc<str>, Role),
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
        match self.tokens.identify(token) {
            Some((name, role)) => Caller::Known(name, role),
            None => Caller::Invalid,
        }
    }
}

/// Runs the request as `name`: marks the request and its answer with the caller's name.
async fn run_as(name: Arc<str>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(CallerName(name.clone()));
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(CallerName(name));
    resp
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
    if access == Access::Public {
        return next.run(req).await;
    }
    if guard.tokens.is_open() {
        return run_as(ANONYMOUS.into(), req, next).await;
    }
    match (guard.caller(&req), access) {
        (Caller::Known(name, Role::Admin), _) | (Caller::Known(name, Role::Read), Access::Read) => {
            run_as(name, req, next).await
        }
        (Caller::Known(name, _), _) => {
            tracing::warn!(token = %name, method = %req.method(), path, "a read token tried to change something; refused");
            let mut resp = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a read-only token cannot change anything; use an admin token",
            )
            .into_response();
            resp.extensions_mut().insert(CallerName(name));
            resp
        }
        (Caller::Nobody, _) => ApiError::unauthorized(
            "send `Authorization: Bearer <token>` (an admin token, or a read token for reads)",
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
