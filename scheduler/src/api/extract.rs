//! Request extractors that turn every malformed input into an [`ApiError`] naming the field:
//! JSON bodies (size-limited, strict), query strings and path segments.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.starts_with("application/json") && !ct.starts_with("text/plain") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ));
        }
    }
    let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, BODY_LIMIT)));
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE || e.to_string().contains("length limit") {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::invalid("body", "cannot read the body")
        }
    })
}

/// A JSON body of `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid("body", "a JSON body is required"));
        }
        Ok(Self(dotjob_shared::model::parse_json(&bytes)?))
    }
}

/// An optional JSON body: empty or `null` means `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let v: Option<T> = dotjob_shared::model::parse_json(&bytes)?;
        Ok(Self(v.unwrap_or_default()))
    }
}

/// A query string of `T`; an error names the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            let field = if path.is_empty() || path == "." {
                msg.split('`').nth(1).unwrap_or("query").to_owned()
            } else {
                path
            };
            ApiError::invalid(field, msg)
        })
    }
}

/// Path segments of `T` (e.g. `String` or `(String, String)`); a segment that is not valid
/// UTF-8 after percent-decoding is a 400 naming `path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|_| ApiError::invalid("path", "a path segment is not valid text"))
    }
}

/// Parses an RFC 3339 instant query parameter into ms.
pub fn instant_param(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .map_err(|e| ApiError::invalid(field, format!("an RFC 3339 instant is needed: {e}")))
    })
    .transpose()
}
