//! `/jobs`: create, list, read, change, delete, pause, resume and trigger jobs.
//!
//! Every write goes through the store (validated, atomic, version bumped, invalidation
//! published) and then wakes or invalidates the local engine so the change takes effect
//! without waiting for the next pass.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use dotjob_shared::model::job::{JobInput, JobView, Routing, limits, valid_job_id};
use dotjob_shared::scripts::Idempotency;
use dotjob_shared::store::{JobFilter, PAGE_MAX, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use super::idempotency::{self, IdempotencyWindow};
use super::schema;
use super::warnings::{self, JobWritten};

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs of this group.
    #[param(example = "default")]
    group: Option<String>,
    /// Only jobs whose name contains this (case-insensitive).
    name: Option<String>,
    /// Only enabled (`true`) or only paused (`false`) jobs.
    enabled: Option<bool>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;

/// Checks a `limit` query parameter.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {PAGE_MAX}"),
        ));
    }
    Ok(limit)
}

/// A job id from a path: anything that cannot be one is simply not found.
fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("job {id}")))
    }
}

/// Create a job.
#[utoipa::path(post, path = "/jobs", operation_id = "create_job", tag = "jobs",
    request_body = JobInput,
    responses(
        (status = 201, description = "Created; `warnings` lists what may not work (e.g. no executor serves the handler)", body = JobWritten),
        (status = 400, description = "Invalid field (named in `error.field`); nothing written", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn create(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<(StatusCode, Json<JobWritten>), ApiError> {
    let spec = s.store.create_job(input).await?;
    s.engine.wake(&spec.group);
    let job = s.store.view_job(&spec.id).await?;
    let warnings = warnings::for_job(&s.store, &spec.group, &spec.handler).await;
    Ok((StatusCode::CREATED, Json(JobWritten { job, warnings })))
}

/// Checks the `group` and `name` filters of a job listing (`GET /jobs`, `GET /views/jobs`).
pub(super) fn check_filters(group: Option<&str>, name: Option<&str>) -> Result<(), ApiError> {
    if let Some(g) = group {
        dotjob_shared::model::job::validate_group(g)?;
    }
    if name.is_some_and(|n| n.len() > limits::NAME_MAX) {
        return Err(ApiError::invalid(
            "name",
            format!("longer than {} characters", limits::NAME_MAX),
        ));
    }
    Ok(())
}

/// List jobs in creation order, filtered and paginated.
#[utoipa::path(get, path = "/jobs", operation_id = "list_jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = Page<JobView>),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    check_filters(q.group.as_deref(), q.name.as_deref())?;
    let cursor = q.cursor.filter(|c| !c.is_empty());
    if cursor.as_deref().is_some_and(|c| !valid_job_id(c)) {
        return Err(ApiError::invalid(
            "cursor",
            "not a cursor from this listing",
        ));
    }
    let limit = page_limit(q.limit)?;
    let filter = JobFilter {
        group: q.group,
        name: q.name,
        enabled: q.enabled,
    };
    Ok(Json(
        s.store.list_jobs(&filter, cursor.as_deref(), limit).await?,
    ))
}

/// Read one job.
#[utoipa::path(get, path = "/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    check_id(&id)?;
    Ok(Json(s.store.view_job(&id).await?))
}

/// Change a job: only the fields sent change (`null` clears `schedule`, `params`,
/// `description`). Bumps the version and invalidates every cached copy.
#[utoipa::path(patch, path = "/jobs/{id}", operation_id = "update_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body = JobInput,
    responses(
        (status = 200, description = "The job after the change, with `warnings` as on create", body = JobWritten),
        (status = 400, description = "Invalid field; nothing written", body = schema::ErrorBody),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "Changed concurrently too often; retry", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn update(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<JobInput>,
) -> Result<Json<JobWritten>, ApiError> {
    check_id(&id)?;
    let spec = s.store.update_job(&id, input).await?;
    s.engine.invalidate(&id);
    s.engine.wake(&spec.group);
    let job = s.store.view_job(&id).await?;
    let warnings = warnings::for_job(&s.store, &spec.group, &spec.handler).await;
    Ok(Json(JobWritten { job, warnings }))
}

/// Delete a job with its schedule and run history.
#[utoipa::path(delete, path = "/jobs/{id}", operation_id = "delete_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
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

/// Pause a job: its schedule entry is removed before the answer, so no tick fires after
/// it (manual triggers still work).
#[utoipa::path(post, path = "/jobs/{id}/pause", operation_id = "pause_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The paused job (`enabled` false, `next_fire_at` null)", body = JobView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn pause(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&s, &id, false).await
}

/// Resume a paused job: it fires again from its next tick.
#[utoipa::path(post, path = "/jobs/{id}/resume", operation_id = "resume_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The resumed job", body = JobView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn resume(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&s, &id, true).await
}

/// Body of `POST /jobs/{id}/trigger` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Replaces the job's params for this run (any JSON, at most 64 KiB).
    #[schema(example = json!({"customer": 42}))]
    params: Option<Value>,
    /// Idempotency key (1-200 characters; or the `Idempotency-Key` header, which must then
    /// be equal): a repeat with the same key for this job within the window
    /// (`DOTJOB_IDEMPOTENCY_WINDOW`, default 24 h) answers the first run and enqueues
    /// nothing.
    #[schema(example = "order-4711-retry")]
    idempotency_key: Option<String>,
}

/// Answer of a trigger.
#[derive(Debug, Serialize, ToSchema)]
pub struct Triggered {
    /// The new run (`<job id>-m<ms>-<n>`; of a sharded or broadcast job, its first run), or
    /// with `replayed` the run the idempotency key answered first.
    run_id: String,
    /// Every run enqueued when there are several: one per shard of a sharded job, one per
    /// live executor of a broadcast job (`<run>-e<executor>`); absent for a single run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<String>,
    job_id: String,
    /// Present (`true`) when the idempotency key was seen within the window: nothing was
    /// enqueued, `run_id` is the first trigger's run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    /// What may delay the run (e.g. no live executor in the group); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Run a job now, optionally with other params.
#[utoipa::path(post, path = "/jobs/{id}/trigger", operation_id = "trigger_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Idempotency key (1-200 characters), like the body's `idempotency_key`: a repeat within the window answers the first run with `replayed: true` and enqueues nothing")),
    request_body(content = Option<TriggerBody>, description = "Optional; an empty body runs with the job's params"),
    responses(
        (status = 202, description = "Queued (or, with `replayed`, queued by the first trigger with this idempotency key)", body = Triggered),
        (status = 400, description = "Invalid params or idempotency key", body = schema::ErrorBody),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "The job forbids overlapping runs and one is in flight", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn trigger(
    State(s): State<AppState>,
    Extension(window): Extension<IdempotencyWindow>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<TriggerBody>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    check_id(&id)?;
    let key = idempotency::key(&headers, body.idempotency_key.as_deref())?;
    let idem = key.as_deref().map(|key| Idempotency {
        key,
        window_ms: window.ms(),
    });
    let t = s
        .store
        .trigger_idempotent(&id, body.params.as_ref(), idem)
        .await?;
    let mut runs = t.runs;
    if runs.len() == 1 {
        runs.clear();
    }
    let job = s.store.view_job(&id).await.map(|v| v.spec);
    let warnings = match job {
        Ok(spec) => {
            if !t.replayed {
                crate::metrics::triggered(&spec.group, "manual");
            }
            let w = warnings::for_trigger(&s.store, &spec.group).await;
            if spec.routing == Routing::Broadcast && !w.is_empty() {
                vec![warnings::broadcast_nowhere(&spec.group, &t.run_id)]
            } else {
                w
            }
        }
        Err(_) => Vec::new(),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Triggered {
            run_id: t.run_id,
            runs,
            job_id: id,
            replayed: t.replayed,
            warnings,
        }),
    ))
}
