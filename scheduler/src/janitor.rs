//! Housekeeping per group, by the replica holding the group's lease:
//! - run retention (count per job and age), never touching a run that is queued, running or
//!   waiting for a retry;
//! - stream trimming below the oldest entry still pending or undelivered (invariant 7), so
//!   the stream stays bounded under steady load;
//! - forgetting executors whose heartbeat stopped, and deleting their consumers once live
//!   workers have claimed their pending entries;
//! - ending the broadcast runs of executors no longer alive (`lost`: no other executor may
//!   run them) and deleting the own streams of forgotten executors.
//! - the group's stream and executor gauges.
//!
//! How often: a group that is in use — it had executors at its last look, or this replica
//! fired at least [`ACTIVE_RUNS`] runs into it since — every `housekeeping` interval; any
//! other group once per `IDLE_ROUNDS` intervals (5 minutes by default), so a quiet group
//! costs a few commands every few minutes instead of every few seconds. A group this
//! replica just took is looked at on the first round (at most [`FIRST_PER_ROUND`] such
//! groups a round). Groups are done a few at a time concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dotjob_shared::Redis;
use dotjob_shared::scripts::{Reap, TrimRuns, TrimStream};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::lease::Leases;
use crate::settings::EngineSettings;

/// Jobs examined per retention script call.
const JOBS_PER_CALL: usize = 200;

/// A group without executors and with few runs fired is housekept once per this many
/// intervals.
pub const IDLE_ROUNDS: u32 = 30;

/// Runs fired into a group since its last housekeeping that make it due at the next
/// interval.
pub const ACTIVE_RUNS: u64 = 100;

/// Groups new to this replica housekept per round: a replica taking thousands of groups
/// at once spreads their first housekeeping over several rounds.
pub const FIRST_PER_ROUND: usize = 500;

/// Groups housekept at once.
const CONCURRENT_GROUPS: usize = 16;

/// Runs fired per group since housekeeping last looked at it: written by the group loops,
/// read and reset by housekeeping.
#[derive(Debug, Default)]
pub struct Activity {
    fired: Mutex<HashMap<String, u64>>,
}

impl Activity {
    /// Notes `n` runs fired into `group`.
    pub fn note(&self, group: &str, n: u64) {
        if let Ok(mut f) = self.fired.lock() {
            *f.entry(group.to_owned()).or_default() += n;
        }
    }

    fn count(&self, group: &str) -> u64 {
        self.fired
            .lock()
            .ok()
            .and_then(|f| f.get(group).copied())
            .unwrap_or(0)
    }

    fn reset(&self, group: &str) {
        if let Ok(mut f) = self.fired.lock() {
            f.remove(group);
        }
    }
}

/// What housekeeping remembers of a group between rounds (owned by the housekeeping task).
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// When it was last housekept.
    at: Instant,
    /// Whether it had executors then.
    executors: bool,
}

/// Runs housekeeping until `stop`.
pub async fn run(
    redis: Redis,
    leases: Arc<Leases>,
    settings: EngineSettings,
    activity: Arc<Activity>,
    stop: CancellationToken,
) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.housekeeping) => {}
            () = stop.cancelled() => return,
        }
        let held: std::collections::HashSet<String> = leases.held().into_iter().collect();
        seen.retain(|g, _| held.contains(g));
        let mut first = 0;
        let due: Vec<String> = held
            .into_iter()
            .filter(|g| match seen.get(g) {
                None => {
                    first += 1;
                    first <= FIRST_PER_ROUND
                }
                Some(s) => {
                    let age = s.at.elapsed();
                    age >= settings.housekeeping * IDLE_ROUNDS
                        || (age >= settings.housekeeping
                            && (s.executors || activity.count(g) >= ACTIVE_RUNS))
                }
            })
            .collect();
        if due.is_empty() {
            continue;
        }
        let done: Vec<(String, dotjob_shared::Result<(u64, bool)>)> = futures::stream::iter(due)
            .map(|group| {
                let (redis, settings) = (&redis, &settings);
                async move {
                    let r = housekeep_group(redis, &group, settings).await;
                    (group, r)
                }
            })
            .buffer_unordered(CONCURRENT_GROUPS)
            .collect()
            .await;
        let mut deleted_total = 0;
        for (group, r) in done {
            match r {
                Ok((deleted, executors)) => {
                    deleted_total += deleted;
                    activity.reset(&group);
                    seen.insert(
                        group,
                        Seen {
                            at: Instant::now(),
                            executors,
                        },
                    );
                }
                Err(e) => debug!(group, error = %e, "housekeeping of a group failed"),
            }
        }
        if deleted_total > 0 {
            info!(deleted = deleted_total, "run retention removed old runs");
        }
    }
}

/// Housekeeping of every group this replica holds, now: the stream trimmed, dead executors
/// reaped, old runs deleted. Returns how many runs were deleted.
pub async fn housekeep_held_groups(
    redis: &Redis,
    leases: &Leases,
    settings: &EngineSettings,
) -> dotjob_shared::Result<u64> {
    let mut deleted_total = 0;
    for group in leases.held() {
        deleted_total += housekeep_group(redis, &group, settings).await?.0;
    }
    Ok(deleted_total)
}

/// Housekeeping of one group; returns how many runs were deleted and whether the group has
/// executors.
async fn housekeep_group(
    redis: &Redis,
    group: &str,
    settings: &EngineSettings,
) -> dotjob_shared::Result<(u64, bool)> {
    let prefix = redis.keys().group_prefix(group);
    let sample = crate::metrics::sample_group(redis, group).await?;
    let mut c = redis.conn().await?;
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
        metrics::counter!(dotjob_shared::metrics::RUNS_LOST, "group" => group.to_owned())
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
    let mut deleted = 0;
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
        deleted += trimmed.deleted;
        match trimmed.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok((deleted, sample.executors > reaped.executors))
}
