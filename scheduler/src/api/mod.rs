//! The admin HTTP API under `/api/v1`, plus `/healthz`, `/metrics` and the console at `/`.
//!
//! [`router`] builds the whole app from an [`AppState`]; tests drive it with
//! `tower::ServiceExt::oneshot` or a real listener.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use dotjob_shared::Store;

use crate::engine::Engine;

pub mod error;
pub mod extract;
mod groups;
mod jobs;
mod runs;
mod schedule;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Jobs and runs in Redis.
    pub store: Store,
    /// The local scheduling engine (woken after job writes).
    pub engine: Arc<Engine>,
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

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The `/api/v1` routes.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(jobs::create).get(jobs::list))
        .route(
            "/jobs/{id}",
            get(jobs::get).patch(jobs::update).delete(jobs::delete),
        )
        .route("/jobs/{id}/pause", post(jobs::pause))
        .route("/jobs/{id}/resume", post(jobs::resume))
        .route("/jobs/{id}/trigger", post(jobs::trigger))
        .route("/jobs/{id}/runs", get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/logs", get(runs::logs))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/groups", get(groups::list))
        .route("/groups/{group}/executors", get(groups::executors))
        .route(
            "/groups/{group}/executors/{executor}/disable",
            post(groups::disable),
        )
        .route(
            "/groups/{group}/executors/{executor}/enable",
            post(groups::enable),
        )
        .route("/groups/{group}/dead", get(groups::dead))
        .route(
            "/groups/{group}/dead/{entry}/requeue",
            post(groups::requeue),
        )
        .route("/schedule/preview", post(schedule::preview))
}

/// The whole app.
pub fn router(state: AppState) -> Router {
    let redis = state.store.redis().clone();
    Router::new()
        .nest("/api/v1", api_routes().fallback(not_found))
        .route("/", get(crate::console::page))
        .with_state(state)
        .merge(dotjob_worker::telemetry::router(redis))
        .layer(middleware::from_fn(log_server_errors))
}
