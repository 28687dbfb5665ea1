//! `/groups`: the executor groups and what they hold.

use axum::Json;
use axum::extract::State;
use dotjob_shared::keys::CONSUMER_GROUP;
use redis::AsyncCommands;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;

/// One group.
#[derive(Debug, Serialize)]
pub struct GroupInfo {
    name: String,
    jobs: u64,
    /// Entries in the stream (queued + pending + not yet trimmed).
    stream_length: u64,
    /// Entries delivered and not acknowledged.
    pending: u64,
    /// Entries never delivered.
    lag: Option<u64>,
    executors: u64,
    dead_letters: u64,
}

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<GroupInfo>>, ApiError> {
    let redis = s.store.redis();
    let keys = redis.keys();
    let mut c = redis.conn().await.map_err(ApiError::from)?;
    let mut groups: Vec<String> = c
        .smembers(keys.groups())
        .await
        .map_err(|e| ApiError::from(dotjob_shared::Error::from(e)))?;
    groups.sort();
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let (jobs, len, executors, dead): (u64, u64, u64, u64) = redis::pipe()
            .zcard(keys.group_jobs(&g))
            .xlen(keys.stream(&g))
            .hlen(keys.executors(&g))
            .xlen(keys.dead(&g))
            .query_async(&mut c)
            .await
            .map_err(|e| ApiError::from(dotjob_shared::Error::from(e)))?;
        let info: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
            c.xinfo_groups(keys.stream(&g)).await;
        let group = info
            .ok()
            .and_then(|i| i.groups.into_iter().find(|x| x.name == CONSUMER_GROUP));
        out.push(GroupInfo {
            name: g,
            jobs,
            stream_length: len,
            pending: group.as_ref().map_or(0, |x| x.pending as u64),
            lag: group.and_then(|x| x.lag.map(|l| l as u64)),
            executors,
            dead_letters: dead,
        });
    }
    Ok(Json(out))
}
