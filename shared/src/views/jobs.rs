//! The job table: jobs in creation order with their next fire instant and their last run,
//! filtered by group, name, enabled and last run status, with the total count of matches.
//!
//! Without a name, enabled or status filter the total is the index's cardinality and a
//! page reads only its own jobs. With a last-status filter, the group's last-status index
//! ([`super::last`]) gives the jobs of that status (`scan_last.lua`): the total is one
//! `ZCOUNT` per group, or with a name or enabled filter as well, those two are checked on
//! that status's jobs only. With only a name or enabled filter (or in a group whose index
//! is not backfilled yet), a read-only script (`scan_jobs.lua`) checks the jobs in scope
//! inside Redis, [`super::JOBS_PER_CALL`] per call, reading only what the filters need
//! (name, enabled, the newest run's status). Either way only the count and the page's ids
//! cross the wire.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use crate::conn::{Conn, Redis};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::model::job::{JobSpec, JobView, valid_job_id};
use crate::model::run::{Run, RunStatus};
use crate::store::PAGE_MAX;
use crate::time::opt_ms_rfc3339;

pub use super::last::LastStatus;
use super::{JOBS_PER_CALL, JobRef, SCAN_JOBS, check_group, hgetall_many, last};

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    /// Only this group.
    pub group: Option<String>,
    /// Name contains this (ASCII letters compared case-insensitively).
    pub name: Option<String>,
    /// Only enabled / only paused jobs.
    pub enabled: Option<bool>,
    /// Only jobs whose newest run has this status.
    pub last_status: Option<LastStatus>,
}

/// A job's newest run (by tick), in short.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastRun {
    /// Run id.
    pub id: String,
    /// Its status.
    pub status: RunStatus,
    /// Its tick.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime)
    )]
    pub scheduled_at: Option<i64>,
    /// When it finished.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime)
    )]
    pub finished_at: Option<i64>,
    /// How long its last attempt took.
    pub duration_ms: Option<u64>,
}

/// One row of the job table.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRow {
    /// The job with its next fire instant.
    pub job: JobView,
    /// Its newest run, if it has one.
    pub last_run: Option<LastRun>,
}

/// A page of the job table.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRows {
    /// The rows.
    pub items: Vec<JobRow>,
    /// Cursor of the next page (the last job id), `null` on the last one.
    pub next_cursor: Option<String>,
    /// Jobs matching the filters.
    pub total: u64,
}

/// One page of the job table after `cursor` (a job id).
pub async fn list_job_rows(
    redis: &Redis,
    q: &JobQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<JobRows> {
    if cursor.is_some_and(|c| !valid_job_id(c)) {
        return Err(Error::invalid("cursor", "not a cursor from this listing"));
    }
    let keys = redis.keys();
    let limit = limit.clamp(1, PAGE_MAX);
    let mut c = redis.conn().await?;
    let needle = q.name.as_deref().map(str::to_ascii_lowercase);
    let filtered = needle.is_some() || q.enabled.is_some() || q.last_status.is_some();
    let (page, more, total) = if filtered {
        filtered_page(
            &mut c,
            keys,
            q,
            needle.as_deref().unwrap_or(""),
            cursor,
            limit,
        )
        .await?
    } else {
        unfiltered_page(&mut c, keys, q.group.as_deref(), cursor, limit).await?
    };
    let items = load_rows(&mut c, keys, &page).await?;
    Ok(JobRows {
        next_cursor: more.then(|| page.last().map(|j| j.id.clone())).flatten(),
        items,
        total,
    })
}

/// A page of every job (of a group) after `cursor`, with the exact total.
async fn unfiltered_page(
    c: &mut Conn,
    keys: &Keys,
    group: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<JobRef>, bool, u64)> {
    if let Some(g) = group {
        check_group(c, keys, g).await?;
    }
    let index = group.map_or_else(|| keys.job_ids(), |g| keys.group_jobs(g));
    let from = cursor.map_or("-".to_owned(), |c| format!("({c}"));
    let (total, ids): (u64, Vec<String>) = redis::pipe()
        .zcard(&index)
        .add_command(crate::store::ids_from(&index, &from, limit + 1))
        .query_async(c)
        .await?;
    let more = ids.len() > limit;
    let ids = &ids[..ids.len().min(limit)];
    let groups: Vec<Option<String>> = match group {
        Some(g) => vec![Some(g.to_owned()); ids.len()],
        None if ids.is_empty() => vec![],
        None => {
            redis::cmd("HMGET")
                .arg(keys.job_index())
                .arg(ids)
                .query_async(c)
                .await?
        }
    };
    let page = ids
        .iter()
        .zip(groups)
        .filter_map(|(id, g)| {
            g.map(|group| JobRef {
                group,
                id: id.clone(),
            })
        })
        .collect();
    Ok((page, more, total))
}

/// A page of the jobs matching name, enabled and last-status filters after `cursor`, with
/// their total, checked inside Redis group by group.
async fn filtered_page(
    c: &mut Conn,
    keys: &Keys,
    q: &JobQuery,
    needle: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<JobRef>, bool, u64)> {
    let groups: Vec<String> = match &q.group {
        Some(g) => {
            check_group(c, keys, g).await?;
            vec![g.clone()]
        }
        None => {
            let mut all: Vec<String> = c.smembers(keys.groups()).await?;
            all.sort();
            all
        }
    };
    let enabled = q.enabled.map_or("", |e| if e { "true" } else { "false" });
    let last_name = match q.last_status {
        None => "",
        Some(LastStatus::Never) => "none",
        Some(LastStatus::Is(s)) => s.as_str(),
    };
    let want = limit + 1;
    // A last-status filter reads the group's index once it holds every job.
    let indexed = match q.last_status {
        Some(_) => last::ready(c, keys, &groups).await?,
        None => vec![false; groups.len()],
    };
    let mut page = Vec::new();
    let mut total = 0u64;
    for (g, indexed) in groups.into_iter().zip(indexed) {
        let mut start = String::new();
        let mut got = 0;
        loop {
            let reply: Vec<String> = match q.last_status {
                Some(status) if indexed => {
                    last::scan_call(
                        c,
                        keys,
                        &g,
                        status,
                        &start,
                        JOBS_PER_CALL,
                        needle,
                        enabled,
                        cursor.unwrap_or(""),
                        want - got,
                    )
                    .await?
                }
                _ => {
                    SCAN_JOBS
                        .key(keys.group_prefix(&g))
                        .arg(&start)
                        .arg(JOBS_PER_CALL)
                        .arg(needle)
                        .arg(enabled)
                        .arg(last_name)
                        .arg(cursor.unwrap_or(""))
                        .arg(want - got)
                        .invoke_async(c)
                        .await?
                }
            };
            let mut it = reply.into_iter();
            let next = it.next().unwrap_or_default();
            total += it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            for id in it {
                got += 1;
                page.push(JobRef {
                    group: g.clone(),
                    id,
                });
            }
            if next.is_empty() {
                break;
            }
            start = next;
        }
    }
    page.sort_by(|a, b| a.id.cmp(&b.id));
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more, total))
}

/// The rows of a page: definition, next fire instant, newest run.
async fn load_rows(c: &mut Conn, keys: &Keys, page: &[JobRef]) -> Result<Vec<JobRow>> {
    if page.is_empty() {
        return Ok(vec![]);
    }
    let mut pipe = redis::pipe();
    for j in page {
        pipe.hgetall(keys.job(&j.group, &j.id))
            .zscore(keys.schedule(&j.group), &j.id)
            .zrange(keys.job_runs(&j.group, &j.id), -1, -1);
    }
    type Row = (HashMap<String, String>, Option<f64>, Vec<String>);
    let rows: Vec<Row> = pipe.query_async(c).await?;
    let run_keys: Vec<String> = page
        .iter()
        .zip(&rows)
        .map(|(j, (_, _, last))| keys.run(&j.group, last.first().map_or("", String::as_str)))
        .collect();
    let runs = hgetall_many(c, &run_keys).await?;
    let mut out = Vec::with_capacity(page.len());
    for ((j, (f, next, _)), (run_key, run)) in page.iter().zip(rows).zip(run_keys.iter().zip(runs))
    {
        // A job deleted between the reads is left out.
        if f.is_empty() {
            continue;
        }
        let spec = JobSpec::from_fields(&keys.job(&j.group, &j.id), &f)?;
        let last_run = if run.is_empty() {
            None
        } else {
            Run::from_fields(run_key, &run).ok().map(|r| LastRun {
                id: r.id,
                status: r.status,
                scheduled_at: r.scheduled_at,
                finished_at: r.finished_at,
                duration_ms: r.duration_ms,
            })
        };
        out.push(JobRow {
            job: JobView {
                spec,
                next_fire_at: next.map(|s| s as i64),
            },
            last_run,
        });
    }
    Ok(out)
}
