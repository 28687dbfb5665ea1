//! The one error type of the admin API: `{ "error": { "code", "message", "field" } }`.
//!
//! Client mistakes carry their message and the offending field; server failures carry a
//! generic message to the client and their real cause in a response extension, which the
//! logging middleware writes to the log once. A 401 carries `WWW-Authenticate: Bearer`.

use axum::Json;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    internal: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
}

/// The real cause of a 5xx, for the log only.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl ApiError {
    /// A 4xx/5xx with a code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            internal: None,
            challenge: None,
        }
    }

    /// 401 with a `Bearer` challenge; `invalid_token` when a token was sent but is wrong.
    pub fn unauthorized(message: impl Into<String>, invalid_token: bool) -> Self {
        Self {
            challenge: Some(if invalid_token {
                r#"Bearer realm="dotjob", error="invalid_token""#
            } else {
                r#"Bearer realm="dotjob""#
            }),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// 400 naming `field`; a deserializer's wording is put in the user's words first.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                super::wording::in_users_words(&message.into()),
            )
        }
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field a 400 names.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl From<dotjob_shared::Error> for ApiError {
    fn from(e: dotjob_shared::Error) -> Self {
        use dotjob_shared::Error as E;
        match e {
            E::Invalid { field, message } => Self::invalid(field, message),
            E::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            E::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            e if e.is_oom() => {
                dotjob_shared::metrics::redis_error(&e);
                Self {
                    internal: Some(e.to_string()),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "Redis is out of memory (maxmemory reached): writes are refused until \
                         memory is freed or maxmemory raised",
                    )
                }
            }
            e if e.is_unavailable() => Self {
                internal: Some(e.to_string()),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Redis is unavailable; retry shortly",
                )
            },
            e => Self {
                internal: Some(e.to_string()),
                ..Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(cause) = self.internal {
            resp.extensions_mut().insert(InternalCause(cause));
        }
        if let Some(challenge) = self.challenge {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}
