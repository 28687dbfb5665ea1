//! `/groups`: executor groups, their executors (list, disable, enable) and their dead
//! letters (list, requeue).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dotjob_shared::groups::{DeadLetter, ExecutorView, GroupInfo};
use dotjob_shared::store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::schema;

/// Longest executor id looked up (ids are host, pid and a suffix: far shorter).
const EXECUTOR_MAX: usize = 256;

/// List every group with its counts: jobs, stream length, pending, lag, executors, dead
/// letters.
#[utoipa::path(get, path = "/groups", operation_id = "list_groups", tag = "groups",
    responses((status = 200, description = "Every group, by name", body = Vec<GroupInfo>)),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<GroupInfo>>, ApiError> {
    Ok(Json(s.store.list_groups().await?))
}

/// List a group's executors (worker processes): registration, heartbeat, liveness,
/// disabled flag and pending entries.
#[utoipa::path(get, path = "/groups/{group}/executors", operation_id = "list_executors", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The executors, by id", body = Vec<ExecutorView>),
        (status = 404, description = "No such group", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn executors(
    State(s): State<AppState>,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<Vec<ExecutorView>>, ApiError> {
    Ok(Json(s.store.list_executors(&group).await?))
}

async fn set_disabled(
    s: &AppState,
    group: &str,
    executor: &str,
    disabled: bool,
) -> Result<Json<ExecutorView>, ApiError> {
    if executor.len() > EXECUTOR_MAX {
        return Err(ApiError::not_found(format!("executor {executor}")));
    }
    Ok(Json(
        s.store
            .set_executor_disabled(group, executor, disabled)
            .await?,
    ))
}

/// Disable an executor: it finishes what it holds and claims nothing new.
#[utoipa::path(post, path = "/groups/{group}/executors/{executor}/disable", operation_id = "disable_executor", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("executor" = String, Path, description = "Executor id")),
    responses(
        (status = 200, description = "The executor", body = ExecutorView),
        (status = 404, description = "No such group or executor", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn disable(
    State(s): State<AppState>,
    ApiPath((group, executor)): ApiPath<(String, String)>,
) -> Result<Json<ExecutorView>, ApiError> {
    set_disabled(&s, &group, &executor, true).await
}

/// Enable a disabled executor again.
#[utoipa::path(post, path = "/groups/{group}/executors/{executor}/enable", operation_id = "enable_executor", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("executor" = String, Path, description = "Executor id")),
    responses(
        (status = 200, description = "The executor", body = ExecutorView),
        (status = 404, description = "No such group or executor", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn enable(
    State(s): State<AppState>,
    ApiPath((group, executor)): ApiPath<(String, String)>,
) -> Result<Json<ExecutorView>, ApiError> {
    set_disabled(&s, &group, &executor, false).await
}

/// Query of `GET /groups/{group}/dead`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// `next_cursor` of the previous page (an entry id).
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// List a group's dead letters, newest first, paginated.
#[utoipa::path(get, path = "/groups/{group}/dead", operation_id = "list_dead_letters", tag = "groups",
    params(("group" = String, Path, description = "Group name"), DeadQuery),
    responses(
        (status = 200, description = "One page", body = Page<DeadLetter>),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such group", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn dead(
    State(s): State<AppState>,
    ApiPath(group): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    Ok(Json(
        s.store
            .list_dead(&group, q.cursor.as_deref().filter(|c| !c.is_empty()), limit)
            .await?,
    ))
}

/// Answer of a requeue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// The new run.
    run_id: String,
}

/// Run a dead letter's job again (with the dead run's params override, if any) and remove
/// the dead letter.
#[utoipa::path(post, path = "/groups/{group}/dead/{entry}/requeue", operation_id = "requeue_dead_letter", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("entry" = String, Path, description = "Dead-letter entry id (`<ms>-<seq>`)")),
    responses(
        (status = 202, description = "Queued again", body = Requeued),
        (status = 404, description = "No such group, dead letter or job", body = schema::ErrorBody),
        (status = 409, description = "The job forbids overlapping runs and one is in flight", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn requeue(
    State(s): State<AppState>,
    ApiPath((group, entry)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let run_id = s.store.requeue_dead(&group, &entry).await?;
    crate::metrics::triggered(&group, "requeue");
    Ok((StatusCode::ACCEPTED, Json(Requeued { run_id })))
}
