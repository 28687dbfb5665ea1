//! Stats per group and per job, computed on demand from what Redis already holds: run
//! records through each job's `runs:<job>` index (scored by tick), the group stream's
//! consumer-group info, the retry, dead-letter and executor keys. Nothing is written, and
//! nothing on the per-run path pays for stats.
//!
//! Reading is bounded: at most [`GROUPS_MAX`] groups, [`JOBS_MAX`] jobs per request
//! (the first by id, i.e. creation order) and the newest [`RUNS_PER_JOB`] runs of each
//! job's last 24 hours. Every figure says when a cap cut into it (`jobs_truncated`,
//! `runs_truncated`, a window's `complete`).

pub mod summary;

use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_shared::model::run::RunStatus;
use dotjob_shared::{Error, Result, Store};
use redis::AsyncCommands;
use serde::Serialize;
use utoipa::ToSchema;

pub use summary::{ByStatus, RunSample, Window};

/// Most groups one request covers.
pub const GROUPS_MAX: usize = 100;
/// Most jobs one request reads runs of (across its groups).
pub const JOBS_MAX: usize = 200;
/// Most runs read per job (the newest of its last 24 hours).
pub const RUNS_PER_JOB: usize = 250;
/// Runs read when the request names one job.
pub const RUNS_ONE_JOB: usize = 5_000;

/// The windows, their names and lengths.
const WINDOWS: [i64; 3] = [5 * 60_000, 3_600_000, 24 * 3_600_000];

/// What to cover.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only this group.
    pub group: Option<String>,
    /// Only this job.
    pub job: Option<String>,
}

/// The caps that applied to an answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Caps {
    pub groups: usize,
    pub jobs: usize,
    pub runs_per_job: usize,
}

/// The stats answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Stats {
    /// When computed (Redis clock).
    #[schema(format = DateTime)]
    pub generated_at: String,
    /// The caps that applied.
    pub caps: Caps,
    pub groups: Vec<GroupStats>,
    /// More groups exist than were covered.
    pub groups_truncated: bool,
}

/// Runs of the last 5 minutes, hour and day (by tick).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Windows {
    pub last_5m: Window,
    pub last_1h: Window,
    pub last_24h: Window,
}

impl Windows {
    fn of<'a>(
        runs: impl Iterator<Item = &'a RunSample> + Clone,
        now: i64,
        complete: [bool; 3],
    ) -> Self {
        let w = |i: usize| summary::window(runs.clone(), now - WINDOWS[i], complete[i]);
        Self {
            last_5m: w(0),
            last_1h: w(1),
            last_24h: w(2),
        }
    }
}

/// The group's stream right now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Queue {
    /// Entries not delivered to any worker yet (the consumer group's lag); `null` when
    /// Redis cannot tell.
    pub depth: Option<u64>,
    /// Delivered, not acknowledged (running, or failed and waiting for a retry).
    pub pending: u64,
    /// Of those, waiting for a retry.
    pub retrying: u64,
    /// Entries in the stream, including done ones not trimmed yet.
    pub stream_length: u64,
    pub dead_letters: u64,
}

/// The group's executors right now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Executors {
    pub registered: u64,
    /// Heartbeat within three leases and not disabled.
    pub live: u64,
    pub disabled: u64,
}

/// One group.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GroupStats {
    pub group: String,
    /// Jobs in the group.
    pub jobs: u64,
    /// Jobs with a next fire instant (enabled and scheduled).
    pub scheduled: u64,
    /// Jobs whose runs the figures cover.
    pub jobs_sampled: u64,
    /// More jobs exist than were read: `runs` covers `jobs_sampled` of them.
    pub jobs_truncated: bool,
    pub queue: Queue,
    pub executors: Executors,
    /// Over the sampled jobs.
    pub runs: Windows,
    /// Per sampled job (all of the group's jobs unless `jobs_truncated`).
    pub job_stats: Vec<JobStats>,
}

/// One job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobStats {
    pub job_id: String,
    pub name: String,
    pub enabled: bool,
    pub runs: Windows,
    /// Runs read (its newest of the last 24 hours).
    pub runs_sampled: u64,
    /// It had more runs in the last 24 hours than were read.
    pub runs_truncated: bool,
}

/// Computes the stats of `scope`.
pub async fn compute(store: &Store, scope: &Scope) -> Result<Stats> {
    let mut groups = match (&scope.job, &scope.group) {
        (Some(job), want) => {
            let group = store
                .job_group(job)
                .await?
                .ok_or_else(|| Error::NotFound(format!("job {job}")))?;
            if want.as_ref().is_some_and(|g| *g != group) {
                return Err(Error::NotFound(format!(
                    "job {job} in group {}",
                    want.as_deref().unwrap_or("")
                )));
            }
            vec![group]
        }
        (None, Some(g)) => {
            store.check_group(g).await?;
            vec![g.clone()]
        }
        (None, None) => {
            let mut c = store.redis().conn().await?;
            let mut all: Vec<String> = c.smembers(store.redis().keys().groups()).await?;
            all.sort();
            all
        }
    };
    let groups_truncated = groups.len() > GROUPS_MAX;
    groups.truncate(GROUPS_MAX);
    let runs_cap = if scope.job.is_some() {
        RUNS_ONE_JOB
    } else {
        RUNS_PER_JOB
    };
    let now = store.now_ms().await?;
    let mut jobs_left = JOBS_MAX;
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let gs = group_stats(store, &g, scope.job.as_deref(), now, jobs_left, runs_cap).await?;
        jobs_left = jobs_left.saturating_sub(gs.jobs_sampled as usize);
        out.push(gs);
    }
    Ok(Stats {
        generated_at: dotjob_shared::time::rfc3339(now),
        caps: Caps {
            groups: GROUPS_MAX,
            jobs: JOBS_MAX,
            runs_per_job: runs_cap,
        },
        groups: out,
        groups_truncated,
    })
}

/// Counts of a group's keys.
type GroupCounts = (u64, u64, u64, u64, u64, Vec<String>);

async fn group_stats(
    store: &Store,
    group: &str,
    only_job: Option<&str>,
    now: i64,
    jobs_cap: usize,
    runs_cap: usize,
) -> Result<GroupStats> {
    let keys = store.redis().keys();
    let mut c = store.redis().conn().await?;
    let (jobs, scheduled, stream_length, dead_letters, retrying, first_jobs): GroupCounts =
        redis::pipe()
            .zcard(keys.group_jobs(group))
            .zcard(keys.schedule(group))
            .xlen(keys.stream(group))
            .xlen(keys.dead(group))
            .zcard(keys.retry(group))
            .zrange(keys.group_jobs(group), 0, jobs_cap as isize - 1)
            .query_async(&mut c)
            .await?;
    let job_ids: Vec<String> = match only_job {
        Some(j) => vec![j.to_owned()],
        None if jobs_cap == 0 => vec![],
        None => first_jobs,
    };
    let info: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
        c.xinfo_groups(keys.stream(group)).await;
    let cg = info
        .ok()
        .and_then(|i| i.groups.into_iter().find(|x| x.name == CONSUMER_GROUP));
    drop(c);
    let execs = store.list_executors(group).await?;
    let job_stats = job_stats(store, group, &job_ids, now, runs_cap).await?;
    let all: Vec<&RunSample> = job_stats.iter().flat_map(|(_, s)| s.iter()).collect();
    let every_job = only_job.is_some() || (jobs as usize) <= job_ids.len();
    let complete = |i: usize| every_job && job_stats.iter().all(|(j, _)| window_complete(j, i));
    let runs = Windows::of(
        all.iter().copied(),
        now,
        [complete(0), complete(1), complete(2)],
    );
    Ok(GroupStats {
        group: group.to_owned(),
        jobs,
        scheduled,
        jobs_sampled: job_ids.len() as u64,
        jobs_truncated: only_job.is_none() && (jobs as usize) > job_ids.len(),
        queue: Queue {
            depth: cg.as_ref().and_then(|x| x.lag.map(|l| l as u64)),
            pending: cg.as_ref().map_or(0, |x| x.pending as u64),
            retrying,
            stream_length,
            dead_letters,
        },
        executors: Executors {
            registered: execs.len() as u64,
            live: execs.iter().filter(|e| e.alive && !e.disabled).count() as u64,
            disabled: execs.iter().filter(|e| e.disabled).count() as u64,
        },
        runs,
        job_stats: job_stats.into_iter().map(|(j, _)| j).collect(),
    })
}

fn window_complete(j: &JobStats, i: usize) -> bool {
    [&j.runs.last_5m, &j.runs.last_1h, &j.runs.last_24h][i].complete
}

/// Run-derived figures per job, with the samples they came from.
async fn job_stats(
    store: &Store,
    group: &str,
    ids: &[String],
    now: i64,
    runs_cap: usize,
) -> Result<Vec<(JobStats, Vec<RunSample>)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let keys = store.redis().keys();
    let day_ago = now - WINDOWS[2];
    let mut c = store.redis().conn().await?;
    let mut defs = redis::pipe();
    let mut idx = redis::pipe();
    let mut counts = redis::pipe();
    for id in ids {
        defs.hmget(keys.job(group, id), &["name", "enabled"]);
        idx.cmd("ZRANGE")
            .arg(keys.job_runs(group, id))
            .arg("+inf")
            .arg(day_ago)
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(runs_cap)
            .arg("WITHSCORES");
        counts.zcount(keys.job_runs(group, id), day_ago, "+inf");
    }
    let defs: Vec<(Option<String>, Option<String>)> = defs.query_async(&mut c).await?;
    let indexes: Vec<Vec<(String, f64)>> = idx.query_async(&mut c).await?;
    let counts: Vec<u64> = counts.query_async(&mut c).await?;
    let mut fields = redis::pipe();
    for (run, _) in indexes.iter().flatten() {
        fields.hmget(keys.run(group, run), &["status", "duration_ms", "retry_at"]);
    }
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
        if indexes.iter().all(Vec::is_empty) {
            vec![]
        } else {
            fields.query_async(&mut c).await?
        };
    let mut rows = rows.into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for ((id, (name, enabled)), (index, in_day)) in
        ids.iter().zip(defs).zip(indexes.into_iter().zip(counts))
    {
        let mut samples = Vec::with_capacity(index.len());
        for (_, tick) in &index {
            let Some((status, duration, retry_at)) = rows.next() else {
                break;
            };
            // A run trimmed between the two reads has no status: skip it.
            let Some(status) = status.as_deref().and_then(RunStatus::parse) else {
                continue;
            };
            samples.push(RunSample {
                tick_ms: *tick as i64,
                status,
                duration_ms: duration.and_then(|d| d.parse().ok()),
                retrying: retry_at.is_some_and(|r| !r.is_empty()),
            });
        }
        let truncated = in_day as usize > index.len();
        // The sample holds the newest runs: a window is complete unless the cap was hit
        // and the oldest run read is still inside it.
        let oldest = index.last().map_or(i64::MAX, |(_, t)| *t as i64);
        let complete = |i: usize| !truncated || oldest < now - WINDOWS[i];
        let stats = JobStats {
            job_id: id.clone(),
            name: name.unwrap_or_default(),
            enabled: enabled.as_deref() == Some("true"),
            runs: Windows::of(samples.iter(), now, [complete(0), complete(1), complete(2)]),
            runs_sampled: samples.len() as u64,
            runs_truncated: truncated,
        };
        out.push((stats, samples));
    }
    Ok(out)
}
