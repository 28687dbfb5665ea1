//! Housekeeping per group, by the replica holding the group's lease:
//! - run retention (count per job and age), never touching a run that is queued, running or
//!   waiting for a retry;
//! - stream trimming below the oldest entry still pending or undelivered (invariant 7), so
//!   the stream stays bounded under steady load;
//! - forgetting executors whose heartbeat stopped, and deleting their consumers once live
//!   workers have claimed their pending entries.

use std::sync::Arc;

use dotjob_shared::{Redis, scripts};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::engine::EngineSettings;
use crate::lease::Leases;

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
            () = tokio::time::sleep(settings.housekeeping) => {}
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
        crate::metrics::sample_group(redis, group).await?;
        let (trimmed, kept_from): (u64, String) = scripts::TRIM_STREAM
            .key(&prefix)
            .invoke_async(&mut c)
            .await?;
        if trimmed > 0 {
            debug!(group, trimmed, kept_from, "trimmed the stream");
        }
        let (forgotten, consumers): (u64, u64) = scripts::REAP
            .key(&prefix)
            .arg(settings.executor_timeout.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        if forgotten + consumers > 0 {
            info!(
                group,
                forgotten, consumers, "removed executors whose heartbeat stopped"
            );
        }
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
