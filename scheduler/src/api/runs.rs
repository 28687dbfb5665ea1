//! Runs: a job's history, one run, and its log lines.

use axum::Json;
use axum::extract::{Path, State};
use dotjob_shared::model::run::{Run, RunStatus};
use dotjob_shared::store::{Page, RunFilter};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, instant_param};

/// Query of `GET /jobs/{id}/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<RunStatus>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    let filter = RunFilter {
        status: q.status,
        from_ms: instant_param("from", q.from.as_deref())?,
        to_ms: instant_param("to", q.to.as_deref())?,
    };
    Ok(Json(
        s.store
            .list_runs(&id, &filter, q.cursor.as_deref(), limit)
            .await?,
    ))
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    Ok(Json(s.store.get_run(&id).await?))
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(s.store.cancel_run(&id).await?))
}

/// Query of `GET /runs/{id}/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// First line to return (0-based); pass `next` of the previous answer to follow a run.
    from: Option<usize>,
}

/// Log lines of a run.
#[derive(Debug, Serialize)]
pub struct Logs {
    run_id: String,
    status: RunStatus,
    lines: Vec<String>,
    /// `from` for the next call.
    next: usize,
    /// True once the run is final: no more lines will come.
    complete: bool,
}

pub async fn logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<Logs>, ApiError> {
    let run = s.store.get_run(&id).await?;
    let from = q.from.unwrap_or(0);
    let lines = s.store.run_logs(&id, from).await?;
    let complete =
        !matches!(run.status, RunStatus::Queued | RunStatus::Running) && run.retry_at.is_none();
    Ok(Json(Logs {
        next: from + lines.len(),
        run_id: id,
        status: run.status,
        lines,
        complete,
    }))
}
