//! Runs across jobs, newest first: every run of a group (or of every group, or of one job),
//! filtered by status and tick, paged by cursor. [`super::newest`] reads the group run
//! indexes (the job's, for one job) from the cursor down and applies the status filter
//! inside Redis.

use crate::conn::Redis;
use crate::error::Result;
use crate::model::run::{Run, RunStatus};
use crate::store::{PAGE_MAX, Page};

use super::{Range, RunCursor, hgetall_many, newest, scope_of};

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only this group's jobs.
    pub group: Option<String>,
    /// Only this job.
    pub job: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Ticks at or after (ms).
    pub from_ms: Option<i64>,
    /// Ticks at or before (ms).
    pub to_ms: Option<i64>,
}

/// One page of runs across jobs, newest (by tick) first. The cursor is
/// `<tick ms>:<run id>` of the last run shown.
pub async fn list_runs(
    redis: &Redis,
    q: &RunQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Run>> {
    let keys = redis.keys();
    let limit = limit.clamp(1, PAGE_MAX);
    let after = cursor.map(RunCursor::parse).transpose()?;
    let mut c = redis.conn().await?;
    let scope = scope_of(&mut c, keys, q.group.as_deref(), q.job.as_deref()).await?;
    let range = Range {
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        status: q.status,
        after: after.as_ref(),
    };
    // One more than a page, to know whether a next page exists.
    let mut found = newest(&mut c, keys, &scope, &range, limit + 1).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let run_keys: Vec<String> = found.iter().map(|r| keys.run(&r.group, &r.id)).collect();
    let records = hgetall_many(&mut c, &run_keys).await?;
    let mut items = Vec::with_capacity(found.len());
    for (key, f) in run_keys.iter().zip(records) {
        // A run removed by retention between the two reads is simply not shown.
        if !f.is_empty() {
            items.push(Run::from_fields(key, &f)?);
        }
    }
    Ok(Page {
        next_cursor: more
            .then(|| found.last().map(|r| RunCursor::render(r.score, &r.id)))
            .flatten(),
        items,
    })
}
