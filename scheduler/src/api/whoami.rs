//! `GET /whoami`: what the caller's token may do, so a client (the console) can hide the
//! write controls a read-only token cannot use instead of letting them fail.
//!
//! The access middleware has already let the request through (a read needs a read or an
//! admin token, or an open API), so the answer only tells those apart, through the same
//! token registry (constant-time digest comparison) the middleware uses.

use std::sync::Arc;

use axum::Json;
use axum::extract::Extension;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Guard;
use super::tokens;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every operation.
    Admin,
    /// Only operations that change nothing.
    Read,
}

/// The caller's role.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// What the presented token may do (`admin` when the API has no tokens).
    pub role: Role,
    /// True when the API has no tokens configured (every call is allowed).
    pub open: bool,
}

/// The role of the bearer token sent (`admin` or `read`), and whether the API is open.
#[utoipa::path(get, path = "/whoami", operation_id = "whoami", tag = "meta",
    responses((status = 200, description = "The caller's role", body = WhoAmI)),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn whoami(Extension(guard): Extension<Arc<Guard>>, headers: HeaderMap) -> Json<WhoAmI> {
    let open = guard.tokens.is_open();
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .map_or("", |(_, t)| t.trim());
    let admin = open || matches!(guard.tokens.identify(token), Some((_, tokens::Role::Admin)));
    Json(WhoAmI {
        role: if admin { Role::Admin } else { Role::Read },
        open,
    })
}

#[cfg(test)]
mod tests {

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::api::auth::Secret;
    use crate::api::tests::state;
    use crate::api::{ApiOptions, router_with};

    async fn whoami(app: &axum::Router, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::get("/api/v1/whoami");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn each_token_learns_its_role() {
        let opts = ApiOptions {
            admin_token: Some(Secret::new("the-admin")),
            read_token: Some(Secret::new("the-reader")),
            cors_origins: vec![],
            ..ApiOptions::default()
        };
        let app = router_with(state(), &opts);
        let admin = whoami(&app, Some("the-admin")).await;
        assert_eq!(
            admin,
            (StatusCode::OK, json!({"role": "admin", "open": false}))
        );
        let read = whoami(&app, Some("the-reader")).await;
        assert_eq!(
            read,
            (StatusCode::OK, json!({"role": "read", "open": false}))
        );
        assert_eq!(whoami(&app, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(whoami(&app, Some("nope")).await.0, StatusCode::UNAUTHORIZED);
        let open = router_with(state(), &ApiOptions::default());
        assert_eq!(
            whoami(&open, None).await,
            (StatusCode::OK, json!({"role": "admin", "open": true}))
        );
    }
}
