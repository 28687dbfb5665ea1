//! Housekeeping per group, by the replica holding the group's lease:
//! - run retention (count per job and age), never touching a run that is queued, running or
//!   waiting for a retry;
//! - stream trimming below the oldest entry still pending or undelivered (invariant 7), so
//!   the stream stays bounded under steady load;
//! - forgetting executors whose heartbeat stopped, and deleting their consumers once live
//!   workers have claimed their pending entries;
//! - ending the broadcast runs of executors no longer alive (`lost`: no other executor may
//!   run them) and deleting the own streams of forgotten executors.

use std::sync::Arc;

use dotjob_shared::Redis;
use dotjob_shared::scripts::{Reap, TrimRuns, TrimStream};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::lease::Leases;
use crate::settings::EngineSettings;

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
        if let Err(e) = housekeep_held_groups(&redis, &leases, &settings).await {
            debug!(error = %e, "housekeeping round failed");
        }
    }
}

/// Housekeeping of every group this replica holds: the stream trimmed, dead executors
/// reaped, old runs deleted. Returns how many runs were deleted.
pub async fn housekeep_held_groups(
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
        let trim = TrimStream.call(&mut c, &prefix).await?;
        if trim.removed > 0 {
            debug!(group, trimmed = trim.removed, kept_from = ?trim.kept_from, "trimmed the stream");
        }
        let reaped = Reap {
            executor_timeout_ms: settings.executor_timeout.as_millis() as u64,
        }
        .call(&mut c, &prefix)
        .await?;
        if reaped.lost > 0 {
            metrics::counter!(dotjob_shared::metrics::RUNS_LOST, "group" => group.clone())
                .increment(reaped.lost);
            info!(
                group,
                lost = reaped.lost,
                "broadcast runs of executors that stopped were recorded lost"
            );
        }
        if reaped.executors + reaped.consumers > 0 {
            info!(
                group,
                forgotten = reaped.executors,
                consumers = reaped.consumers,
                "removed executors whose heartbeat stopped"
            );
        }
        let mut after: Option<String> = None;
        loop {
            let trimmed = TrimRuns {
                keep: settings.runs_keep,
                max_age_ms: settings.runs_max_age.as_millis() as u64,
                after: after.as_deref(),
                jobs: JOBS_PER_CALL,
            }
            .call(&mut c, &prefix)
            .await?;
            deleted_total += trimmed.deleted;
            match trimmed.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    if deleted_total > 0 {
        info!(deleted = deleted_total, "run retention removed old runs");
    }
    Ok(deleted_total)
}
