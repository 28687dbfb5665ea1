//! `/jobs`: create, list, read, change, delete, pause, resume and trigger jobs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dotjob_shared::model::job::{JobInput, JobView};
use dotjob_shared::store::{JobFilter, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, OptionalJson};

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    group: Option<String>,
    name: Option<String>,
    enabled: Option<bool>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;

/// Checks a `limit` query parameter.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > dotjob_shared::store::PAGE_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", dotjob_shared::store::PAGE_MAX),
        ));
    }
    Ok(limit)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if dotjob_shared::model::job::valid_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("job {id}")))
    }
}

pub async fn create(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let spec = s.store.create_job(input).await?;
    s.engine.wake(&spec.group);
    let view = s.store.view_job(&spec.id).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    if let Some(g) = &q.group {
        dotjob_shared::model::job::validate_group(g)?;
    }
    let limit = page_limit(q.limit)?;
    let filter = JobFilter {
        group: q.group,
        name: q.name,
        enabled: q.enabled,
    };
    Ok(Json(
        s.store
            .list_jobs(&filter, q.cursor.as_deref(), limit)
            .await?,
    ))
}

pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    check_id(&id)?;
    Ok(Json(s.store.view_job(&id).await?))
}

pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<Json<JobView>, ApiError> {
    check_id(&id)?;
    let spec = s.store.update_job(&id, input).await?;
    s.engine.invalidate(&id);
    s.engine.wake(&spec.group);
    Ok(Json(s.store.view_job(&id).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    s.store.delete_job(&id).await?;
    s.engine.invalidate(&id);
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(s: &AppState, id: &str, enabled: bool) -> Result<Json<JobView>, ApiError> {
    check_id(id)?;
    let spec = s.store.set_enabled(id, enabled).await?;
    s.engine.invalidate(id);
    s.engine.wake(&spec.group);
    Ok(Json(s.store.view_job(id).await?))
}

pub async fn pause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&s, &id, false).await
}

pub async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&s, &id, true).await
}

/// Body of `POST /jobs/{id}/trigger` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Replaces the job's params for this run.
    params: Option<Value>,
}

/// Answer of a trigger.
#[derive(Debug, Serialize)]
pub struct Triggered {
    run_id: String,
    job_id: String,
}

pub async fn trigger(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<TriggerBody>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    check_id(&id)?;
    let run_id = s
        .store
        .trigger(&id, body.params.as_ref(), "manual", None)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Triggered { run_id, job_id: id })))
}
