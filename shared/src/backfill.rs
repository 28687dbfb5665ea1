//! The one-time backfill of a group's run index (`group-runs`) after an upgrade.
//!
//! Runs recorded before `group-runs` existed are only in their job's run index
//! (`runs:<job>`), so the group-wide run list and the overview would miss them until
//! retention removed them. [`backfill_group`] adds every job index entry of the group to
//! `group-runs`, a batch of jobs per `backfill.lua` call so Redis is never blocked long, and
//! then sets the group's `backfilled` marker; once the marker is set it costs one script
//! call that reads one key. The scheduler holding the group's lease calls it when it starts
//! scheduling the group (`dotjob-scheduler`'s group loop). It is idempotent: two replicas
//! running it at once, or a rerun after a crash half-way, add nothing twice. A group created
//! after the upgrade is backfilled the same way, at the cost of reading its few job indexes
//! once.
//!
//! [`backfill_last_status`] does the same for the job table's last-status index (`last`,
//! [`crate::views::last`]): each job's code is set from its newest run, a batch of jobs
//! per `backfill_last.lua` call, then the group's `last-backfilled` marker is set; until
//! then the job table checks that group's jobs one by one, so its answers are exact
//! throughout.

use crate::conn::Redis;
use crate::error::Result;
use crate::scripts::{Backfill, BackfillLast, BackfillReply};

/// Jobs examined per script call at most.
pub const JOBS_PER_CALL: usize = 500;

/// Job index entries read per script call: the call ends after the job at which this many
/// were read (a job keeps at most its retention count of runs).
pub const ENTRIES_PER_CALL: usize = 20_000;

/// Backfills `group`'s run index from its job run indexes unless that was done already.
/// Returns the runs added, or `None` when the group was already backfilled.
pub async fn backfill_group(redis: &Redis, group: &str) -> Result<Option<u64>> {
    let prefix = redis.keys().group_prefix(group);
    let mut c = redis.conn().await?;
    let mut after: Option<String> = None;
    let mut added_total = 0;
    loop {
        let reply = Backfill {
            after: after.as_deref(),
            jobs: JOBS_PER_CALL,
            entries: ENTRIES_PER_CALL,
        }
        .call(&mut c, &prefix)
        .await?;
        match reply {
            // Already done before our first call: nothing to report. Done by another
            // replica between our calls: what we added still counts.
            BackfillReply::AlreadyDone if after.is_none() => return Ok(None),
            BackfillReply::AlreadyDone => return Ok(Some(added_total)),
            BackfillReply::Done { added } => return Ok(Some(added_total + added)),
            BackfillReply::Continue { next, added } => {
                added_total += added;
                after = Some(next);
            }
        }
    }
}

/// Backfills `group`'s last-status index unless that was done already. Returns the jobs
/// indexed, or `None` when the group was already backfilled.
pub async fn backfill_last_status(redis: &Redis, group: &str) -> Result<Option<u64>> {
    let prefix = redis.keys().group_prefix(group);
    let mut c = redis.conn().await?;
    let mut after: Option<String> = None;
    let mut total = 0;
    loop {
        let reply = BackfillLast {
            after: after.as_deref(),
            jobs: JOBS_PER_CALL,
        }
        .call(&mut c, &prefix)
        .await?;
        match reply {
            BackfillReply::AlreadyDone if after.is_none() => return Ok(None),
            BackfillReply::AlreadyDone => return Ok(Some(total)),
            BackfillReply::Done { added } => return Ok(Some(total + added)),
            BackfillReply::Continue { next, added } => {
                total += added;
                after = Some(next);
            }
        }
    }
}

#[cfg(test)]
mod redis_tests;
