//! `GET /stats`: per group and per job figures, computed on demand by [`crate::stats`].

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::schema;
use crate::stats::{self, Scope, Stats};

/// Query of `GET /stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only this group.
    group: Option<String>,
    /// Only this job (its group, with this job alone).
    job: Option<String>,
}

/// Runs by status over the last 5 minutes, hour and day, success rate and p50/p95
/// durations per group and per job, with each group's queue depth, pending and retrying
/// entries, dead letters and live executors. Bounded reads: see `caps`; a figure a cap
/// cut into says so (`jobs_truncated`, `runs_truncated`, a window's `complete`).
#[utoipa::path(get, path = "/stats", operation_id = "get_stats", tag = "stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such group or job", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn stats(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    if let Some(g) = &q.group {
        dotjob_shared::model::job::validate_group(g)?;
    }
    if let Some(j) = &q.job
        && !dotjob_shared::model::job::valid_job_id(j)
    {
        return Err(ApiError::not_found(format!("job {j}")));
    }
    let scope = Scope {
        group: q.group,
        job: q.job,
    };
    Ok(Json(stats::compute(&s.store, &scope).await?))
}
