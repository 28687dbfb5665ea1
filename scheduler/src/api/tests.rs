//! Router tests without a socket or Redis (`tower::ServiceExt::oneshot`): the document
//! covers the contract, methods a route does not take answer 405 in JSON, and the token
//! check runs before any handler. Tests against a real listener and Redis are in
//! `tests/e2e/api*.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{ApiOptions, AppState, auth::Secret};
use crate::engine::{Engine, EngineSettings};
use crate::lease::Leases;

/// A state over a Redis nobody listens on: handlers that reach Redis fail, which these
/// tests never need.
pub(super) fn state() -> AppState {
    let cfg = dotjob_shared::config::RedisConfig {
        url: "redis://127.0.0.1:1".into(),
        prefix: "unit".into(),
        timeout: std::time::Duration::from_millis(200),
        ..dotjob_shared::config::RedisConfig::default()
    };
    let redis = dotjob_shared::Redis::new(&cfg).expect("handle");
    let leases = Arc::new(Leases::new(
        redis.clone(),
        "unit".into(),
        std::time::Duration::from_secs(5),
    ));
    AppState {
        store: dotjob_shared::Store::new(redis.clone()),
        engine: Engine::new(redis, leases, EngineSettings::default()),
        stopping: tokio_util::sync::CancellationToken::new(),
    }
}

fn doc() -> Value {
    serde_json::from_str(super::openapi::json()).expect("document is JSON")
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "01abc")
        .replace("{group}", "g")
        .replace("{executor}", "e")
        .replace("{entry}", "1-0")
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn document_lists_every_route_of_the_contract() {
    let doc = doc();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let contract = [
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/{id}"),
        ("patch", "/api/v1/jobs/{id}"),
        ("delete", "/api/v1/jobs/{id}"),
        ("post", "/api/v1/jobs/{id}/pause"),
        ("post", "/api/v1/jobs/{id}/resume"),
        ("post", "/api/v1/jobs/{id}/trigger"),
        ("get", "/api/v1/jobs/{id}/runs"),
        ("get", "/api/v1/runs/{id}"),
        ("get", "/api/v1/runs/{id}/logs"),
        ("post", "/api/v1/runs/{id}/cancel"),
        ("get", "/api/v1/groups"),
        ("get", "/api/v1/groups/{group}/executors"),
        (
            "post",
            "/api/v1/groups/{group}/executors/{executor}/disable",
        ),
        ("post", "/api/v1/groups/{group}/executors/{executor}/enable"),
        ("get", "/api/v1/groups/{group}/dead"),
        ("post", "/api/v1/groups/{group}/dead/{entry}/requeue"),
        ("get", "/api/v1/stats"),
        ("post", "/api/v1/schedule/preview"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/"),
    ];
    for (m, p) in contract {
        assert!(doc["paths"][p][m].is_object(), "{m} {p} is not documented");
    }
    for scheme in ["admin_token", "read_token"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"], "bearer",
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn methods_a_route_does_not_take_answer_405_in_json() {
    let app = super::router(state());
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in ["get", "post", "patch", "put", "delete"] {
            if item.get(m).is_some() {
                continue;
            }
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("method");
            let (status, body) = send(&app, method, &concrete(path), None).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            assert_eq!(body["error"]["code"], "method_not_allowed", "{m} {path}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} method/route pairs checked");
    let (status, body) = send(&app, Method::GET, "/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn json_answers_end_with_a_newline() {
    let app = super::router(state());
    for uri in ["/api/v1/nope", "/api/v1/openapi.json"] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let length = resp.headers().get(header::CONTENT_LENGTH).cloned();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(bytes.ends_with(b"}\n"), "{uri}: {:?}", bytes.last());
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1, "{uri}");
        if let Some(l) = length {
            assert_eq!(l.to_str().unwrap(), bytes.len().to_string(), "{uri}");
        }
    }
}

#[tokio::test]
async fn tokens_are_checked_before_any_handler() {
    let opts = ApiOptions {
        admin_token: Some(Secret::new("admin-secret")),
        read_token: Some(Secret::new("read-secret")),
        ..ApiOptions::default()
    };
    let app = super::router_with(state(), &opts);
    let (s, b) = send(&app, Method::GET, "/api/v1/jobs", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _) = send(&app, Method::GET, "/api/v1/jobs", Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = send(
        &app,
        Method::DELETE,
        "/api/v1/jobs/01abc",
        Some("read-secret"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // Past the check, the handler runs (and finds no Redis): not an auth answer.
    let (s, _) = send(&app, Method::GET, "/api/v1/jobs", Some("read-secret")).await;
    assert!(
        s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
        "{s}"
    );
    let (s, _) = send(&app, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
}
