//! Housekeeping per group, by the replica holding the group's lease: run retention (count per
//! job and age), never touching a run that is queued, running or waiting for a retry.

use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::{Redis, scripts};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::engine::EngineSettings;
use crate::lease::Leases;

/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(30);
/// Jobs examined per retention script call.
const JOBS_PER_CALL: usize = 200;

/// Runs housekeeping until `stop`.
pub async fn run(
    redis: Redis,
    leases: Arc<Leases>,
    settings: EngineSettings,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = pass(&redis, &leases, &settings).await {
            debug!(error = %e, "housekeeping pass failed");
        }
    }
}

/// One housekeeping pass over every group this replica holds.
pub async fn pass(
    redis: &Redis,
    leases: &Leases,
    settings: &EngineSettings,
) -> dotjob_shared::Result<u64> {
    let mut c = redis.conn().await?;
    let groups: Vec<String> = c.smembers(redis.keys().groups()).await?;
    let mut deleted_total = 0;
    for group in groups.iter().filter(|g| leases.is_holder(g)) {
        let prefix = redis.keys().group_prefix(group);
        let mut cursor = String::new();
        loop {
            let (next, deleted): (String, u64) = scripts::TRIM_RUNS
                .key(&prefix)
                .arg(settings.runs_keep)
                .arg(settings.runs_max_age.as_millis() as u64)
                .arg(&cursor)
                .arg(JOBS_PER_CALL)
                .invoke_async(&mut c)
                .await?;
            deleted_total += deleted;
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
    }
    if deleted_total > 0 {
        info!(deleted = deleted_total, "run retention removed old runs");
    }
    Ok(deleted_total)
}
