//! Runs across jobs, newest first: every run of a group (or of every group, or of one job),
//! filtered by status and tick, paged by cursor. The per-job run indexes are merged with
//! [`super::merge_newest`]; a status filter reads the candidates' records in batches and
//! stops after [`EXAMINE_MAX`] of them, answering a shorter page with a cursor to go on.

use crate::conn::Redis;
use crate::error::Result;
use crate::model::run::{Run, RunStatus};
use crate::store::{PAGE_MAX, Page};

use super::{RunCursor, hgetall_many, jobs_in_scope, merge_newest};

/// Most run records one request reads while looking for runs of a status.
pub const EXAMINE_MAX: usize = 2_000;

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
/// `<tick ms>:<run id>` of the last run examined.
pub async fn list_runs(
    redis: &Redis,
    q: &RunQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Run>> {
    let keys = redis.keys();
    let limit = limit.clamp(1, PAGE_MAX);
    let mut after = cursor.map(RunCursor::parse).transpose()?;
    let mut c = redis.conn().await?;
    let jobs = jobs_in_scope(&mut c, keys, q.group.as_deref(), q.job.as_deref()).await?;
    // Without a status filter every candidate is shown: read one more to know whether a
    // next page exists. With one, read in larger batches.
    let batch = if q.status.is_some() {
        (limit * 4).max(500)
    } else {
        limit + 1
    };
    let mut items = Vec::with_capacity(limit);
    let mut examined = 0;
    loop {
        let found = merge_newest(
            &mut c,
            keys,
            &jobs,
            q.from_ms,
            q.to_ms,
            after.as_ref(),
            batch,
        )
        .await?;
        let exhausted = found.len() < batch;
        let run_keys: Vec<String> = found.iter().map(|r| keys.run(&r.group, &r.id)).collect();
        let records = hgetall_many(&mut c, &run_keys).await?;
        for ((cand, key), f) in found.iter().zip(&run_keys).zip(records) {
            if items.len() == limit {
                // One more matching run exists: the page ends at the previous one.
                return Ok(Page {
                    next_cursor: after.map(|a| RunCursor::render(a.score, &a.run)),
                    items,
                });
            }
            after = Some(RunCursor {
                score: cand.score,
                run: cand.id.clone(),
            });
            examined += 1;
            // A run removed by retention between the two reads is simply not shown.
            if f.is_empty() {
                continue;
            }
            let run = Run::from_fields(key, &f)?;
            if q.status.is_none_or(|s| s == run.status) {
                items.push(run);
            }
        }
        if exhausted {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        }
        // A full page (a next one may turn out empty), or the reading budget spent.
        if items.len() == limit || examined >= EXAMINE_MAX {
            return Ok(Page {
                items,
                next_cursor: after.map(|a| RunCursor::render(a.score, &a.run)),
            });
        }
    }
}
