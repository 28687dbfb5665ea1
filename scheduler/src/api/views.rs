//! `/views`: read-only views made for dashboards such as the console: the job table (each
//! job with its last run and next fire, the total count, a last-status filter) and the
//! overview of every group (runs per minute, failure rate, p95, queue, executors, leases).
//! Computed by [`dotjob_shared::views`] from what Redis already holds.

use axum::Json;
use axum::extract::State;
use dotjob_shared::views::jobs::{JobQuery, JobRows, LastStatus, list_job_rows};
use dotjob_shared::views::overview::{Overview, overview as compute};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::schema;

/// Query of `GET /views/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobTableQuery {
    /// Only jobs of this group.
    #[param(example = "default")]
    group: Option<String>,
    /// Only jobs whose name contains this (ASCII letters case-insensitive).
    name: Option<String>,
    /// Only enabled (`true`) or only paused (`false`) jobs.
    enabled: Option<bool>,
    /// Only jobs whose newest run has this status (`none`: jobs with no run).
    #[param(value_type = Option<LastStatus>)]
    last_status: Option<String>,
    /// `next_cursor` of the previous page (a job id).
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The job table: jobs in creation order, each with its next fire instant and newest run,
/// filtered, paged, with the number of matching jobs (`total`).
#[utoipa::path(get, path = "/views/jobs", operation_id = "job_table", tag = "jobs",
    params(JobTableQuery),
    responses(
        (status = 200, description = "One page and the total", body = JobRows),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such group", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn jobs(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<JobTableQuery>,
) -> Result<Json<JobRows>, ApiError> {
    super::jobs::check_filters(q.group.as_deref(), q.name.as_deref())?;
    let last_status = match q.last_status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(LastStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "last_status",
                "a run status, or `none` for jobs with no run",
            )
        })?),
        None => None,
    };
    let limit = super::jobs::page_limit(q.limit)?;
    let query = JobQuery {
        group: q.group,
        name: q.name.filter(|n| !n.is_empty()),
        enabled: q.enabled,
        last_status,
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
    Ok(Json(
        list_job_rows(s.store.redis(), &query, cursor.as_deref(), limit).await?,
    ))
}

/// Every group at a glance: runs per minute by status over the last hour, failure rate and
/// p50/p95 duration (from the newest 500 runs of each group's hour; `complete` says when
/// that is all of them), queue depth and lag, executors and a warning when work waits with
/// no live executor, the scheduling lease; and the scheduler replicas with the groups
/// each holds.
#[utoipa::path(get, path = "/views/overview", operation_id = "overview", tag = "stats",
    responses((status = 200, description = "The overview", body = Overview)),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn overview(State(s): State<AppState>) -> Result<Json<Overview>, ApiError> {
    Ok(Json(compute(s.store.redis()).await?))
}
