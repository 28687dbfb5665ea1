//! Read-only views across jobs, for the console and other dashboards: runs of many jobs
//! newest first ([`runs`]), the job table with each job's last run ([`jobs`]) and the
//! per-group overview ([`overview`]).
//!
//! Nothing here writes, and nothing on the run path pays for these views: they read the
//! keys the scripts already maintain. A cross-job run listing merges the per-job run
//! indexes (`runs:<job>`, scored by tick) with [`merge_newest`]: one bounded `ZRANGE` per
//! job in scope, pipelined, with a score floor that rises as the page fills, so the cost
//! grows with the number of jobs in scope and the page size, never with the number of
//! runs. A group-wide run index written by the firing and trigger scripts would make it
//! grow with the page alone.

pub mod jobs;
pub mod overview;
pub mod runs;

use std::cmp::Ordering;
use std::collections::HashMap;

use redis::AsyncCommands;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::model::run::job_of_run;

/// A job in scope of a view: its group and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRef {
    /// Its group.
    pub group: String,
    /// Its id.
    pub id: String,
}

/// A run found in a job's run index: its tick, id and group.
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
    let groups: Vec<String> = match group {
        Some(g) => {
            check_group(c, keys, g).await?;
            vec![g.to_owned()]
        }
        None => {
            let mut all: Vec<String> = c.smembers(keys.groups()).await?;
            all.sort();
            all
        }
    };
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

/// Jobs whose run indexes one pipeline probes: enough to keep round trips few, few enough
/// that a first probe (before the floor rises) stays small.
fn chunk_size(need: usize) -> usize {
    (50_000 / need.max(1)).clamp(32, 1_000)
}

/// How a job's probe is bounded above when continuing after `after`.
fn upper_bound(job: &str, after: Option<&RunCursor>, to_ms: Option<i64>) -> (String, usize) {
    let to = to_ms.unwrap_or(i64::MAX);
    let inf = |v: i64| {
        if v == i64::MAX {
            "+inf".to_owned()
        } else {
            v.to_string()
        }
    };
    match after {
        Some(cur) if cur.score <= to => {
            // Runs tied on the cursor's tick are ordered by id, and a run id starts with its
            // job id (which holds no `-`): a job ordered after the cursor's job had all its
            // tied runs shown already, one ordered before had none of them shown, and the
            // cursor's own job needs room to skip its tied runs (shards share a tick).
            let cursor_job = job_of_run(&cur.run).unwrap_or("");
            match format!("{job}-").cmp(&format!("{cursor_job}-")) {
                Ordering::Greater => (format!("({}", cur.score), 0),
                Ordering::Less => (cur.score.to_string(), 0),
                Ordering::Equal => (cur.score.to_string(), 1_025),
            }
        }
        _ => (inf(to), 0),
    }
}

/// The `need` newest runs (by tick, then id, descending) of `jobs` with a tick in
/// `[from_ms, to_ms]`, strictly after `after` in that order. Fewer than `need` means there
/// are no more.
pub async fn merge_newest(
    c: &mut Conn,
    keys: &Keys,
    jobs: &[JobRef],
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    after: Option<&RunCursor>,
    need: usize,
) -> Result<Vec<Candidate>> {
    let need = need.max(1);
    let mut best: Vec<Candidate> = Vec::with_capacity(need * 2);
    for chunk in jobs.chunks(chunk_size(need)) {
        // Once `need` runs are held, only runs at least as new as the last one can enter.
        let floor = if best.len() >= need {
            Some(best[need - 1].score)
        } else {
            None
        };
        let min = match (from_ms, floor) {
            (Some(a), Some(b)) => a.max(b).to_string(),
            (Some(a), None) | (None, Some(a)) => a.to_string(),
            (None, None) => "-inf".to_owned(),
        };
        let mut pipe = redis::pipe();
        for job in chunk {
            let (max, extra) = upper_bound(&job.id, after, to_ms);
            pipe.cmd("ZRANGE")
                .arg(keys.job_runs(&job.group, &job.id))
                .arg(max)
                .arg(&min)
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(need + extra)
                .arg("WITHSCORES");
        }
        let rows: Vec<Vec<(String, f64)>> = pipe.query_async(c).await?;
        for (job, rows) in chunk.iter().zip(rows) {
            for (id, score) in rows {
                let score = score as i64;
                if after.is_some_and(|cur| score == cur.score && id >= cur.run) {
                    continue;
                }
                best.push(Candidate {
                    score,
                    id,
                    group: job.group.clone(),
                });
            }
        }
        best.sort_by(Candidate::order);
        best.truncate(need);
    }
    Ok(best)
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
    fn ties_on_the_cursor_tick_are_split_by_job_order() {
        let cur = RunCursor {
            score: 500,
            run: "0bbb-500".to_owned(),
        };
        assert_eq!(
            upper_bound("0ccc", Some(&cur), None),
            ("(500".to_owned(), 0)
        );
        assert_eq!(upper_bound("0aaa", Some(&cur), None), ("500".to_owned(), 0));
        assert_eq!(upper_bound("0bbb", Some(&cur), None).1, 1_025);
        // A prefix job id sorts by its `-`, as its run ids do.
        assert_eq!(upper_bound("0bb", Some(&cur), None).0, "500");
        assert_eq!(upper_bound("0b", None, Some(9)), ("9".to_owned(), 0));
        assert_eq!(upper_bound("0b", Some(&cur), Some(100)).0, "100");
        assert_eq!(upper_bound("0b", None, None).0, "+inf");
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
