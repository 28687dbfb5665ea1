//! `GET /runs`: runs across jobs, newest first, filtered by group, job, status and tick,
//! paged by cursor. The per-job run indexes are merged ([`dotjob_shared::views::runs`]),
//! so a page costs one bounded read per job in scope, never a scan of every run.

use axum::Json;
use axum::extract::State;
use dotjob_shared::model::run::{Run, RunStatus};
use dotjob_shared::store::Page;
use dotjob_shared::views::runs::{RunQuery, list_runs};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, instant_param};
use super::schema;

/// Query of `GET /runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AllRunsQuery {
    /// Only runs of this group's jobs.
    #[param(example = "default")]
    group: Option<String>,
    /// Only runs of this job.
    job: Option<String>,
    /// Only runs in this status.
    #[param(value_type = Option<RunStatus>)]
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

/// Runs of every job (or of a group's jobs, or of one job), newest (by scheduled instant)
/// first. With a status filter a page may come back shorter than `limit` (at most 2 000
/// runs are examined per request) with a `next_cursor` to go on from.
#[utoipa::path(get, path = "/runs", operation_id = "list_all_runs", tag = "runs",
    params(AllRunsQuery),
    responses(
        (status = 200, description = "One page", body = Page<Run>),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such group or job", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AllRunsQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    if let Some(g) = &q.group {
        dotjob_shared::model::job::validate_group(g)?;
    }
    let query = RunQuery {
        group: q.group,
        job: q.job.filter(|j| !j.is_empty()),
        status: q.status,
        from_ms: instant_param("from", q.from.as_deref())?,
        to_ms: instant_param("to", q.to.as_deref())?,
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
    Ok(Json(
        list_runs(s.store.redis(), &query, cursor.as_deref(), limit).await?,
    ))
}
