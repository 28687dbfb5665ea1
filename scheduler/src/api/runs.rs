//! Runs: a job's history, one run, and cancelling one. Log lines are in [`super::logs`].

use axum::Json;
use axum::extract::State;
use dotjob_shared::model::run::{Run, RunStatus};
use dotjob_shared::store::{Page, RunFilter};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, instant_param};
use super::schema;

/// Query of `GET /jobs/{id}/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs in this status.
    status: Option<RunStatus>,
    /// Only runs scheduled at or after this instant (RFC 3339).
    #[param(format = DateTime, example = "2026-01-01T00:00:00Z")]
    from: Option<String>,
    /// Only runs scheduled at or before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the previous page (`<scheduled ms>:<run id>`).
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A job's runs, newest (by scheduled instant) first, filtered and paginated.
#[utoipa::path(get, path = "/jobs/{id}/runs", operation_id = "list_runs", tag = "runs",
    params(("id" = String, Path, description = "Job id"), ListQuery),
    responses(
        (status = 200, description = "One page", body = Page<Run>),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn list(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    let filter = RunFilter {
        status: q.status,
        from_ms: instant_param("from", q.from.as_deref())?,
        to_ms: instant_param("to", q.to.as_deref())?,
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
    if cursor.as_ref().is_some_and(|c| c.len() > 128) {
        return Err(ApiError::invalid(
            "cursor",
            "not a cursor from this listing",
        ));
    }
    Ok(Json(
        s.store
            .list_runs(&id, &filter, cursor.as_deref(), limit)
            .await?,
    ))
}

/// Read one run.
#[utoipa::path(get, path = "/runs/{id}", operation_id = "get_run", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 404, description = "No such run", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(s.store.get_run(&id).await?))
}

/// Cancel a run: a queued one (or one waiting for a retry) at once, a running one by
/// telling its executor, which cancels the handler.
#[utoipa::path(post, path = "/runs/{id}/cancel", operation_id = "cancel_run", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run after the request (`cancelled`, or still `running` while its executor stops it)", body = Run),
        (status = 404, description = "No such run", body = schema::ErrorBody),
        (status = 409, description = "The run is final already", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(s.store.cancel_run(&id).await?))
}
