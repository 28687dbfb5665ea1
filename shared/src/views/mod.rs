//! Read-only views across jobs, for the console and other dashboards: runs of many jobs
//! newest first ([`runs`]), the job table with each job's last run ([`jobs`]) and the
//! per-group overview ([`overview`]).
//!
//! Nothing here writes: the views read the keys the scripts maintain. A cross-job run
//! listing reads the group's run index (`group-runs`, every run of the group scored by
//! tick, written and trimmed by the same scripts as the per-job `runs:<job>` indexes, one
//! `ZADD` or `ZREM` more per run) with a read-only script (`newest.lua`, [`newest`]) that
//! walks it newest first from the cursor, applies a status filter from the run records of
//! the entries it examines, and sends only the answer over the wire. The cost grows with
//! the page (and, under a status filter, with the runs examined to fill it), never with the
//! number of jobs or runs; one call examines at most [`EXAMINED_PER_CALL`] entries so
//! Redis is never held for long. Views over jobs ([`jobs`]) scan at most
//! [`JOBS_PER_CALL`] jobs per script call.

pub mod jobs;
pub mod last;
pub mod overview;
pub mod runs;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::model::run::{RunStatus, job_of_run};

/// Jobs one read-only script call of the job table scans.
pub const JOBS_PER_CALL: usize = 2_000;

/// `newest.lua`: the newest runs of one run index.
static NEWEST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("newest.lua")));
/// `scan_jobs.lua`: which of a group's jobs match the job table's filters.
pub(crate) static SCAN_JOBS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scan_jobs.lua")));

/// What a run view covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One job.
    Job(JobRef),
    /// Every job of these groups.
    Groups(Vec<String>),
}

/// The scope of a view: one job (of `group`, when given), one group, or every group.
pub async fn scope_of(
    c: &mut Conn,
    keys: &Keys,
    group: Option<&str>,
    job: Option<&str>,
) -> Result<Scope> {
    if job.is_some() {
        let mut jobs = jobs_in_scope(c, keys, group, job).await?;
        return Ok(Scope::Job(jobs.remove(0)));
    }
    Ok(Scope::Groups(groups_in_scope(c, keys, group).await?))
}

/// Which runs a merge considers: ticks in `[from_ms, to_ms]`, of one status, strictly
/// after `after`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Range<'a> {
    /// Ticks at or after (ms).
    pub from_ms: Option<i64>,
    /// Ticks at or before (ms).
    pub to_ms: Option<i64>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Continue after this run (newest-first order).
    pub after: Option<&'a RunCursor>,
}

/// Index entries one script call examines at most; it then answers where to resume.
pub const EXAMINED_PER_CALL: usize = 20_000;

/// The `need` newest runs of `scope` in `range`, newest first; fewer when there are no
/// more. Reads the group's run index (`group-runs`), or the job's for one job, from the
/// cursor down: the cost grows with the page (and, under a status filter, with the runs
/// examined to fill it), never with the number of jobs or runs.
pub async fn newest(
    c: &mut Conn,
    keys: &Keys,
    scope: &Scope,
    range: &Range<'_>,
    need: usize,
) -> Result<Vec<Candidate>> {
    newest_in_calls_of(c, keys, scope, range, need, EXAMINED_PER_CALL).await
}

/// [`newest`], examining at most `per_call` index entries per script call.
async fn newest_in_calls_of(
    c: &mut Conn,
    keys: &Keys,
    scope: &Scope,
    range: &Range<'_>,
    need: usize,
    per_call: usize,
) -> Result<Vec<Candidate>> {
    let (groups, job) = match scope {
        Scope::Job(j) => (std::slice::from_ref(&j.group), Some(j.id.as_str())),
        Scope::Groups(g) => (g.as_slice(), None),
    };
    let need = need.max(1);
    let mut best: Vec<Candidate> = Vec::with_capacity(need * 2);
    for g in groups {
        let index = match job {
            Some(id) => keys.job_runs(g, id),
            None => keys.group_runs(g),
        };
        let run_prefix = keys.run(g, "");
        // Once `need` runs are known, a later group can only add runs tied with or newer
        // than the last of them.
        let floor = (best.len() >= need).then(|| best[need - 1].score);
        let from_ms = match (range.from_ms, floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut after = range.after.cloned();
        let mut want = need;
        loop {
            let reply: Vec<String> = NEWEST
                .key(&index)
                .arg(&run_prefix)
                .arg(want)
                .arg(from_ms.map_or("-inf".to_owned(), |v| v.to_string()))
                .arg(range.to_ms.map_or("+inf".to_owned(), |v| v.to_string()))
                .arg(
                    after
                        .as_ref()
                        .map_or(String::new(), |a| a.score.to_string()),
                )
                .arg(after.as_ref().map_or("", |a| a.run.as_str()))
                .arg(range.status.map_or("", RunStatus::as_str))
                .arg(per_call)
                .invoke_async(c)
                .await?;
            let mut it = reply.into_iter();
            let resume = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
            while let (Some(score), Some(id)) = (it.next(), it.next()) {
                best.push(Candidate {
                    score: score.parse().unwrap_or(0),
                    id,
                    group: g.clone(),
                });
                want = want.saturating_sub(1);
            }
            match resume {
                (score, run) if want > 0 && !run.is_empty() => {
                    after = Some(RunCursor {
                        score: score.parse().unwrap_or(0),
                        run,
                    });
                }
                _ => break,
            }
        }
        best.sort_by(Candidate::order);
        best.truncate(need);
    }
    Ok(best)
}

/// A job in scope of a view: its group and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRef {
    /// Its group.
    pub group: String,
    /// Its id.
    pub id: String,
}

/// A run found in a run index: its tick, id and group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its tick (the index score), ms.
    pub score: i64,
    /// The run id.
    pub id: String,
    /// Its group.
    pub group: String,
}

impl Candidate {
    /// Newest first: tick descending, then run id descending.
    fn order(a: &Self, b: &Self) -> Ordering {
        b.score.cmp(&a.score).then_with(|| b.id.cmp(&a.id))
    }
}

/// Where a listing of runs stopped: the tick and id of the last run shown
/// (`<tick ms>:<run id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCursor {
    /// Tick of the last run shown.
    pub score: i64,
    /// Its id.
    pub run: String,
}

impl RunCursor {
    /// Parses `<tick ms>:<run id>`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "not a cursor from this listing");
        let (score, run) = s.split_once(':').ok_or_else(bad)?;
        let score = score.parse::<i64>().map_err(|_| bad())?;
        if s.len() > 160 || job_of_run(run).is_none() {
            return Err(bad());
        }
        Ok(Self {
            score,
            run: run.to_owned(),
        })
    }

    /// `<tick ms>:<run id>`.
    pub fn render(score: i64, run: &str) -> String {
        format!("{score}:{run}")
    }
}

/// The jobs a view covers: one job, one group's, or every group's, in id order per group.
pub async fn jobs_in_scope(
    c: &mut Conn,
    keys: &Keys,
    group: Option<&str>,
    job: Option<&str>,
) -> Result<Vec<JobRef>> {
    if let Some(job) = job {
        let found: Option<String> = if crate::model::job::valid_job_id(job) {
            c.hget(keys.job_index(), job).await?
        } else {
            None
        };
        let found = found
            .filter(|g| group.is_none_or(|want| want == g))
            .ok_or_else(|| Error::NotFound(format!("job {job}")))?;
        return Ok(vec![JobRef {
            group: found,
            id: job.to_owned(),
        }]);
    }
    let groups = groups_in_scope(c, keys, group).await?;
    let mut pipe = redis::pipe();
    for g in &groups {
        pipe.zrange(keys.group_jobs(g), 0, -1);
    }
    let ids: Vec<Vec<String>> = if groups.is_empty() {
        vec![]
    } else {
        pipe.query_async(c).await?
    };
    Ok(groups
        .iter()
        .zip(ids)
        .flat_map(|(g, ids)| {
            ids.into_iter().map(move |id| JobRef {
                group: g.clone(),
                id,
            })
        })
        .collect())
}

/// Fails with `NotFound` unless `group` has (or had) jobs.
pub async fn check_group(c: &mut Conn, keys: &Keys, group: &str) -> Result<()> {
    crate::model::job::validate_group(group)?;
    let known: bool = c.sismember(keys.groups(), group).await?;
    if known {
        Ok(())
    } else {
        Err(Error::NotFound(format!("group {group}")))
    }
}

/// The groups a query covers: `group` (which must exist), else every group, by name.
async fn groups_in_scope(c: &mut Conn, keys: &Keys, group: Option<&str>) -> Result<Vec<String>> {
    match group {
        Some(g) => {
            check_group(c, keys, g).await?;
            Ok(vec![g.to_owned()])
        }
        None => {
            let mut all: Vec<String> = c.smembers(keys.groups()).await?;
            all.sort();
            Ok(all)
        }
    }
}

/// Reads one hash per key in a pipeline (empty maps for keys that are gone).
pub(crate) async fn hgetall_many(
    c: &mut Conn,
    keys: &[String],
) -> Result<Vec<HashMap<String, String>>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.hgetall(k);
    }
    Ok(pipe.query_async(c).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = RunCursor::parse(&RunCursor::render(1_700, "01abc-1700")).unwrap();
        assert_eq!((c.score, c.run.as_str()), (1_700, "01abc-1700"));
        for bad in ["", "x", "12", "a:01abc-1", "12:../x", "12:nojobid"] {
            assert!(RunCursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newest_first_breaks_ties_by_id() {
        let c = |score, id: &str| Candidate {
            score,
            id: id.to_owned(),
            group: "g".to_owned(),
        };
        let mut v = [c(1, "a-1"), c(2, "a-2"), c(2, "b-2"), c(0, "z-0")];
        v.sort_by(Candidate::order);
        let ids: Vec<&str> = v.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["b-2", "a-2", "a-1", "z-0"]);
    }
}

#[cfg(test)]
mod redis_tests;
