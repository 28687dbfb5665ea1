//! The overview of every group: runs per minute by status over the last hour with failure
//! rate and duration percentiles, queue depth and lag, executors, a warning when work is
//! waiting and no live executor can take it, and the scheduler replicas with the groups
//! whose lease each holds.
//!
//! Run figures come from the newest [`SAMPLE`] runs of the group's hour (read from the
//! group's run index); `complete` says whether that is every run of the hour. Every other
//! figure is a count Redis keeps (`ZCARD`, `ZCOUNT`, `XLEN`, `XINFO`): the overview's
//! cost does not grow with the number of jobs or runs.

use std::collections::{BTreeMap, HashMap};

use redis::AsyncCommands;
use serde::Serialize;

use crate::conn::{Conn, Redis, now_ms};
use crate::error::Result;
use crate::keys::{CONSUMER_GROUP, Keys};
use crate::model::run::RunStatus;
use crate::store::Store;
use crate::time::rfc3339;

use super::{Range, Scope, newest};

/// Runs read per group.
pub const SAMPLE: usize = 500;
/// Most groups covered.
pub const GROUPS_MAX: usize = 100;
/// Minutes in the window.
pub const MINUTES: i64 = 60;
/// A scheduler replica that beat within this long is shown alive.
pub const REPLICA_ALIVE_MS: i64 = 15_000;

/// Runs whose tick falls in one minute, by status (statuses with none are left out).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Minute {
    /// Start of the minute.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub at: String,
    /// Runs by status.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u64>))]
    pub by_status: BTreeMap<&'static str, u64>,
}

/// The run figures of a group's last hour.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunWindow {
    /// Start of the window.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub from: String,
    /// Runs in the window (exact: counted in the group's run index).
    pub total: u64,
    /// Runs the figures below were computed from (the newest of the window).
    pub sampled: u64,
    /// Whether they are every run of the window (fewer than [`SAMPLE`]).
    pub complete: bool,
    /// One entry per minute, oldest first.
    pub minutes: Vec<Minute>,
    /// Of the sampled runs that finished, the share that did not succeed.
    pub failure_rate: Option<f64>,
    /// Duration percentiles of the sampled finished runs.
    pub duration_p50_ms: Option<u64>,
    /// 95th percentile.
    pub duration_p95_ms: Option<u64>,
}

/// Who holds a group's scheduling lease.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseView {
    /// Replica id (empty: nobody).
    pub owner: String,
    /// Fencing epoch.
    pub epoch: u64,
    /// Whether the lease is current.
    pub current: bool,
}

/// One group.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupOverview {
    /// Its name.
    pub group: String,
    /// Jobs in it.
    pub jobs: u64,
    /// Jobs with a next fire instant.
    pub scheduled: u64,
    /// Jobs whose next fire instant has passed (being fired now, or waiting for a scheduler).
    pub due: u64,
    /// Entries not delivered yet (the consumer group's lag).
    pub queue_depth: Option<u64>,
    /// Delivered and not acknowledged.
    pub pending: u64,
    /// Waiting for a retry.
    pub retrying: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Age of the oldest undelivered entry, ms.
    pub lag_ms: Option<i64>,
    /// Registered executors.
    pub executors: u64,
    /// Live and enabled executors.
    pub live_executors: u64,
    /// Set when work is scheduled or waiting and no live executor can take it.
    pub warning: Option<String>,
    /// The scheduling lease.
    pub lease: LeaseView,
    /// Runs of the last hour.
    pub runs: RunWindow,
}

/// A scheduler replica.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replica {
    /// Its id.
    pub id: String,
    /// Its last heartbeat.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub last_seen: String,
    /// Heartbeat within [`REPLICA_ALIVE_MS`].
    pub alive: bool,
    /// Groups whose current lease it holds.
    pub groups: Vec<String>,
}

/// The overview answer.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    /// When computed (Redis clock).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub generated_at: String,
    /// Every group (at most [`GROUPS_MAX`]), by name.
    pub groups: Vec<GroupOverview>,
    /// More groups exist than are shown.
    pub groups_truncated: bool,
    /// Scheduler replicas, by id.
    pub schedulers: Vec<Replica>,
}

/// Computes the overview.
pub async fn overview(redis: &Redis) -> Result<Overview> {
    let keys = redis.keys();
    let store = Store::new(redis.clone());
    let mut c = redis.conn().await?;
    let now = now_ms(&mut c).await?;
    let mut groups: Vec<String> = c.smembers(keys.groups()).await?;
    groups.sort();
    let groups_truncated = groups.len() > GROUPS_MAX;
    groups.truncate(GROUPS_MAX);
    let mut out = Vec::with_capacity(groups.len());
    for g in &groups {
        let executors = store.list_executors(g).await?;
        let live = executors.iter().filter(|e| e.alive && !e.disabled).count() as u64;
        let mut o = group_overview(&mut c, keys, g, now).await?;
        o.executors = executors.len() as u64;
        o.live_executors = live;
        o.warning = warning(&o);
        out.push(o);
    }
    let beats: Vec<(String, f64)> = c.zrange_withscores(keys.schedulers(), 0, -1).await?;
    let schedulers = beats
        .into_iter()
        .map(|(id, beat)| Replica {
            groups: out
                .iter()
                .filter(|g| g.lease.current && g.lease.owner == id)
                .map(|g| g.group.clone())
                .collect(),
            last_seen: rfc3339(beat as i64),
            alive: now - (beat as i64) <= REPLICA_ALIVE_MS,
            id,
        })
        .collect();
    Ok(Overview {
        generated_at: rfc3339(now),
        groups: out,
        groups_truncated,
        schedulers,
    })
}

fn warning(o: &GroupOverview) -> Option<String> {
    let waiting = o.queue_depth.unwrap_or(0) + o.pending;
    if o.live_executors > 0 || (o.scheduled == 0 && waiting == 0) {
        return None;
    }
    Some(format!(
        "{} scheduled job(s) and {waiting} queued or pending run(s), but no live executor",
        o.scheduled
    ))
}

type Counts = (u64, u64, u64, u64, u64, HashMap<String, String>);

async fn group_overview(c: &mut Conn, keys: &Keys, g: &str, now: i64) -> Result<GroupOverview> {
    let (jobs, scheduled, due, retrying, dead_letters, lease): Counts = redis::pipe()
        .zcard(keys.group_jobs(g))
        .zcard(keys.schedule(g))
        .zcount(keys.schedule(g), "-inf", now)
        .zcard(keys.retry(g))
        .xlen(keys.dead(g))
        .hgetall(keys.lease(g))
        .query_async(c)
        .await?;
    let info: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
        c.xinfo_groups(keys.stream(g)).await;
    let cg = info
        .ok()
        .and_then(|i| i.groups.into_iter().find(|x| x.name == CONSUMER_GROUP));
    let depth = cg.as_ref().and_then(|x| x.lag.map(|l| l as u64));
    // The oldest entry not delivered yet: the first after the last delivered one.
    let lag_ms = match (&cg, depth) {
        (Some(cg), Some(d)) if d > 0 => {
            let first: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(keys.stream(g))
                .arg(format!("({}", cg.last_delivered_id))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(c)
                .await
                .unwrap_or_default();
            first
                .first()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok())
                .map(|ms| (now - ms).max(0))
        }
        _ => None,
    };
    let owner = lease.get("owner").cloned().unwrap_or_default();
    let expires: i64 = lease
        .get("expires")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(GroupOverview {
        group: g.to_owned(),
        jobs,
        scheduled,
        due,
        queue_depth: depth,
        pending: cg.as_ref().map_or(0, |x| x.pending as u64),
        retrying,
        dead_letters,
        lag_ms,
        executors: 0,
        live_executors: 0,
        warning: None,
        lease: LeaseView {
            current: !owner.is_empty() && expires >= now,
            epoch: lease.get("epoch").and_then(|v| v.parse().ok()).unwrap_or(0),
            owner,
        },
        runs: run_window(c, keys, g, now).await?,
    })
}

/// What a sampled run contributes.
struct Sample {
    tick: i64,
    status: RunStatus,
    duration_ms: Option<u64>,
    retrying: bool,
}

async fn run_window(c: &mut Conn, keys: &Keys, group: &str, now: i64) -> Result<RunWindow> {
    let start = (now / 60_000 - (MINUTES - 1)) * 60_000;
    let range = Range {
        from_ms: Some(start),
        ..Range::default()
    };
    let scope = Scope::Groups(vec![group.to_owned()]);
    let found = newest(c, keys, &scope, &range, SAMPLE).await?;
    let total: u64 = if found.len() < SAMPLE {
        found.len() as u64
    } else {
        c.zcount(keys.group_runs(group), start, "+inf").await?
    };
    let mut pipe = redis::pipe();
    for r in &found {
        pipe.cmd("HMGET")
            .arg(keys.run(&r.group, &r.id))
            .arg("status")
            .arg("duration_ms")
            .arg("retry_at");
    }
    type Fields = (Option<String>, Option<String>, Option<String>);
    let fields: Vec<Fields> = if found.is_empty() {
        vec![]
    } else {
        pipe.query_async(c).await?
    };
    let samples: Vec<Sample> = found
        .iter()
        .zip(fields)
        .filter_map(|(r, (status, duration, retry))| {
            Some(Sample {
                tick: r.score,
                status: status.as_deref().and_then(RunStatus::parse)?,
                duration_ms: duration.and_then(|d| d.parse().ok()),
                retrying: retry.is_some_and(|v| !v.is_empty()),
            })
        })
        .collect();
    let mut window = summarise(&samples, start, found.len() < SAMPLE);
    window.total = total.max(window.sampled);
    Ok(window)
}

fn summarise(samples: &[Sample], start: i64, complete: bool) -> RunWindow {
    let mut minutes: Vec<Minute> = (0..MINUTES)
        .map(|i| Minute {
            at: rfc3339(start + i * 60_000),
            by_status: BTreeMap::new(),
        })
        .collect();
    let mut finished = 0u64;
    let mut failed = 0u64;
    let mut durations = Vec::new();
    for s in samples {
        // Runs fired ahead of their tick count in the current minute.
        let i = ((s.tick - start) / 60_000).clamp(0, MINUTES - 1) as usize;
        *minutes[i].by_status.entry(s.status.as_str()).or_default() += 1;
        let done = match s.status {
            RunStatus::Succeeded | RunStatus::Dead | RunStatus::Lost => true,
            RunStatus::Failed | RunStatus::TimedOut => !s.retrying,
            _ => false,
        };
        if done {
            finished += 1;
            if s.status != RunStatus::Succeeded {
                failed += 1;
            }
            durations.extend(s.duration_ms);
        }
    }
    durations.sort_unstable();
    let pct = |p: f64| -> Option<u64> {
        if durations.is_empty() {
            return None;
        }
        let rank = ((p * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
        Some(durations[rank - 1])
    };
    RunWindow {
        from: rfc3339(start),
        total: samples.len() as u64,
        sampled: samples.len() as u64,
        complete,
        minutes,
        failure_rate: (finished > 0).then(|| failed as f64 / finished as f64),
        duration_p50_ms: pct(0.5),
        duration_p95_ms: pct(0.95),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tick: i64, status: RunStatus, d: u64) -> Sample {
        Sample {
            tick,
            status,
            duration_ms: Some(d),
            retrying: false,
        }
    }

    #[test]
    fn minutes_failure_rate_and_percentiles() {
        let start = 60_000 * 1_000;
        let mut v: Vec<Sample> = (1..=19)
            .map(|i| s(start + 5 * 60_000 + i, RunStatus::Succeeded, i as u64 * 10))
            .collect();
        v.push(s(start + 59 * 60_000 + 5, RunStatus::Failed, 1_000));
        v.push(s(start + 61 * 60_000, RunStatus::Queued, 0));
        let w = summarise(&v, start, false);
        assert_eq!(w.minutes.len(), 60);
        assert_eq!(w.minutes[5].by_status["succeeded"], 19);
        assert_eq!(w.minutes[59].by_status["failed"], 1);
        assert_eq!(w.minutes[59].by_status["queued"], 1, "future ticks go last");
        assert_eq!(w.failure_rate, Some(0.05));
        assert_eq!(w.duration_p95_ms, Some(190));
        assert_eq!(w.duration_p50_ms, Some(100));
        assert!(!w.complete);
        assert!(w.minutes[0].by_status.is_empty());
    }

    #[test]
    fn warns_only_when_work_waits_without_executors() {
        let mut o = GroupOverview {
            group: "g".into(),
            jobs: 3,
            scheduled: 0,
            due: 0,
            queue_depth: Some(0),
            pending: 0,
            retrying: 0,
            dead_letters: 0,
            lag_ms: None,
            executors: 0,
            live_executors: 0,
            warning: None,
            lease: LeaseView {
                owner: String::new(),
                epoch: 0,
                current: false,
            },
            runs: summarise(&[], 0, true),
        };
        assert!(warning(&o).is_none(), "nothing scheduled, nothing queued");
        o.scheduled = 2;
        assert!(warning(&o).is_some_and(|w| w.contains("2 scheduled")));
        o.live_executors = 1;
        assert!(warning(&o).is_none());
        o.live_executors = 0;
        o.scheduled = 0;
        o.queue_depth = Some(4);
        assert!(warning(&o).is_some_and(|w| w.contains("4 queued")));
    }
}
