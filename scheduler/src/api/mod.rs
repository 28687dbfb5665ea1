//! The admin HTTP API under `/api/v1`, plus `/healthz`, `/metrics`, the console at `/` and
//! the API viewer at `/api/docs`.
//!
//! [`router`] / [`router_with`] build the whole app from an [`AppState`]; tests drive it
//! with `tower::ServiceExt::oneshot` or a real listener. Routes are registered through
//! `utoipa_axum`, so each handler's `#[utoipa::path]` annotation is both its route and its
//! entry in the OpenAPI document ([`document`]); access control reads the document.
//!
//! Layers, outermost first: CORS (only when configured), 5xx logging, the query-size cap,
//! panic → 500, then per route the audit trail of admin writes and the token check.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use dotjob_shared::Store;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::Engine;

mod alerts;
pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
mod groups;
pub mod idempotency;
mod jobs;
pub mod limits;
mod logs;
pub mod openapi;
mod options;
mod runs;
mod runs_all;
mod schedule;
pub mod schema;
mod secret;
mod stats;
mod stream_page;
pub mod tokens;
mod views;
mod warnings;
mod whoami;
mod wording;

pub use error::ApiError;
pub use options::ApiOptions;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Jobs and runs in Redis.
    pub store: Store,
    /// The local scheduling engine (woken after job writes).
    pub engine: Arc<Engine>,
    /// Cancelled when the server starts shutting down: open log-follow streams end then
    /// (`complete: false`), so they do not hold a graceful stop open.
    pub stopping: CancellationToken,
}

/// Logs each 5xx once, with its internal cause.
async fn log_server_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    if resp.status().is_server_error() {
        let cause = resp
            .extensions()
            .get::<error::InternalCause>()
            .map_or("", |c| c.0.as_str());
        tracing::error!(%method, path, status = resp.status().as_u16(), cause, "request failed");
    }
    resp
}

/// Ends every JSON answer with a newline, so a `curl` in a terminal leaves the prompt on a
/// line of its own (JSON readers ignore it).
async fn json_newline(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) if !bytes.is_empty() && !bytes.ends_with(b"\n") => {
            let mut text = Vec::with_capacity(bytes.len() + 1);
            text.extend_from_slice(&bytes);
            text.push(b'\n');
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(text))
        }
        Ok(bytes) => Response::from_parts(parts, axum::body::Body::from(bytes)),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method; see /api/v1/openapi.json",
    )
}

/// A panicking handler answers 500 (logged with its message) instead of dropping the
/// connection.
fn panic_answer(payload: Box<dyn Any + Send + 'static>) -> Response {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    let mut resp = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response();
    resp.extensions_mut()
        .insert(error::InternalCause(format!("handler panicked: {msg}")));
    resp
}

/// The `/api/v1` operations. Handlers sharing one `routes!` call must share their path.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::get, jobs::update, jobs::delete))
        .routes(routes!(jobs::pause))
        .routes(routes!(jobs::resume))
        .routes(routes!(jobs::trigger))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(logs::logs))
        .routes(routes!(runs::cancel))
        .routes(routes!(groups::list))
        .routes(routes!(groups::executors))
        .routes(routes!(groups::disable))
        .routes(routes!(groups::enable))
        .routes(routes!(groups::dead))
        .routes(routes!(groups::requeue))
        .routes(routes!(stats::stats))
        .routes(routes!(schedule::preview))
        .routes(routes!(audit::list))
        .routes(routes!(openapi::document))
        .routes(routes!(runs_all::list))
        .routes(routes!(views::jobs))
        .routes(routes!(views::overview))
        .routes(routes!(whoami::whoami))
        .routes(routes!(alerts::create, alerts::list))
        .routes(routes!(alerts::get, alerts::update, alerts::delete))
        .routes(routes!(alerts::test))
        .routes(routes!(alerts::deliveries))
}

/// Every route of the app that has state, with its document.
fn app_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api_routes())
        .routes(routes!(crate::console::page))
        .routes(routes!(crate::console::api_docs))
}

/// The OpenAPI document of the app (every route it serves).
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(app_routes().into_openapi())
}

/// The `/readyz` detail of a scheduler: the groups whose lease it holds or waits for.
fn lease_detail(leases: Arc<crate::lease::Leases>) -> dotjob_worker::telemetry::ReadyDetail {
    Arc::new(move || {
        let (held, waiting): (Vec<_>, Vec<_>) = leases.states().into_iter().partition(|s| s.1);
        let names = |v: Vec<(String, bool)>| v.into_iter().map(|s| s.0).collect::<Vec<_>>();
        serde_json::json!({"leases": {"held": names(held), "waiting": names(waiting)}})
    })
}

/// The whole app, open (no tokens, no CORS).
pub fn router(state: AppState) -> Router {
    router_with(state, &ApiOptions::default())
}

/// The whole app with its exposure settings (tokens, CORS).
pub fn router_with(state: AppState, opts: &ApiOptions) -> Router {
    let redis = state.store.redis().clone();
    let doc: serde_json::Value = serde_json::from_str(openapi::json()).unwrap_or_default();
    let table = Arc::new(auth::AccessTable::from_openapi(&doc));
    let guard = Arc::new(auth::Guard {
        tokens: Arc::new(tokens::TokenRegistry::load_or_closed(opts)),
        table: table.clone(),
    });
    let ready = lease_detail(state.engine.leases().clone());
    let auditor = Arc::new(audit::Auditor {
        store: state.store.clone(),
        table,
        maxlen: opts.security.audit_maxlen,
    });
    let follow =
        limits::FollowLimits::new(opts.security.follow_max, opts.security.follow_max_per_token);
    let (routes, _) = app_routes().split_for_parts();
    let app = routes
        .route_layer(middleware::from_fn_with_state(guard.clone(), auth::require))
        .route_layer(middleware::from_fn_with_state(auditor, audit::record))
        .layer(axum::Extension(follow))
        .layer(axum::Extension(opts.idempotency_window))
        .layer(axum::Extension(guard))
        .with_state(state)
        .layer(middleware::from_fn(crate::metrics::count_requests))
        .merge(dotjob_worker::telemetry::router_with(redis, Some(ready)))
        .merge(crate::console::router())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(middleware::from_fn(limits::cap_query))
        .layer(middleware::from_fn(log_server_errors))
        .layer(middleware::from_fn(json_newline));
    match opts.cors_layer() {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

#[cfg(test)]
mod tests;
