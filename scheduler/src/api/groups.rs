//! `/groups`: executor groups, their executors and their dead letters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dotjob_shared::groups::{DeadLetter, ExecutorView, GroupInfo};
use dotjob_shared::store::Page;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<GroupInfo>>, ApiError> {
    Ok(Json(s.store.list_groups().await?))
}

pub async fn executors(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<Vec<ExecutorView>>, ApiError> {
    Ok(Json(s.store.list_executors(&group).await?))
}

pub async fn disable(
    State(s): State<AppState>,
    Path((group, executor)): Path<(String, String)>,
) -> Result<Json<ExecutorView>, ApiError> {
    Ok(Json(
        s.store
            .set_executor_disabled(&group, &executor, true)
            .await?,
    ))
}

pub async fn enable(
    State(s): State<AppState>,
    Path((group, executor)): Path<(String, String)>,
) -> Result<Json<ExecutorView>, ApiError> {
    Ok(Json(
        s.store
            .set_executor_disabled(&group, &executor, false)
            .await?,
    ))
}

/// Query of `GET /groups/{group}/dead`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn dead(
    State(s): State<AppState>,
    Path(group): Path<String>,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    Ok(Json(
        s.store
            .list_dead(&group, q.cursor.as_deref(), limit)
            .await?,
    ))
}

/// Answer of a requeue.
#[derive(Debug, Serialize)]
pub struct Requeued {
    run_id: String,
}

pub async fn requeue(
    State(s): State<AppState>,
    Path((group, entry)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let run_id = s.store.requeue_dead(&group, &entry).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued { run_id })))
}
