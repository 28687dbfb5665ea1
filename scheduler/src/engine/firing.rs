//! One firing round of a group: the due jobs (`due.lua`), their ticks planned in Rust, and
//! the ticks fired in chunks (`fire.lua`), one chunk in flight while the next is planned.

use std::time::{Duration, Instant};

use dotjob_shared::conn::Shared;
use dotjob_shared::model::job::ConcurrencyPolicy;
use dotjob_shared::scripts::{Due, Fence, Fire, FireJob, FireReply};
use tracing::{debug, warn};

use super::{Engine, MAX_SLEEP};
use crate::plan::plan;

/// Most due jobs taken per round.
const DUE_BATCH: usize = 2_000;
/// Most ticks per `fire.lua` call.
const FIRE_CHUNK: usize = 500;

/// A `fire.lua` call under way: the runs it fired, `None` when the lease was lost.
type FireCall<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = dotjob_shared::Result<Option<(u64, u64)>>> + Send + 'a>,
>;

impl Engine {
    /// Fires what is due in `group` under `fence` (`None`: unfenced); returns how long to
    /// sleep (zero after losing the lease).
    pub(super) async fn fire_due(
        &self,
        group: &str,
        fence: Option<&Fence>,
    ) -> dotjob_shared::Result<Duration> {
        let prefix = self.redis.keys().group_prefix(group);
        let ahead = self.settings.fire_ahead.as_millis() as u64;
        // One checkout per round: each costs the pool's recycling commands.
        let mut c = self.redis.conn().await?;
        loop {
            let due = Due {
                max_jobs: DUE_BATCH,
                look_ahead_ms: ahead,
            }
            .call(&mut c, &prefix)
            .await?;
            let replied = Instant::now();
            let now = due.now_ms;
            let until = |at: i64| {
                Duration::from_millis((at - now).max(0) as u64).saturating_sub(replied.elapsed())
            };
            if due.jobs.is_empty() {
                self.note_next(group, due.next_score);
                let wait = due
                    .next_score
                    .map_or(MAX_SLEEP, |n| until(n - ahead as i64));
                return Ok(wait.min(MAX_SLEEP));
            }
            let mut batch: Vec<FireJob<'_>> = Vec::new();
            let mut ticks_in_call = 0;
            let mut fired = 0u64;
            // Jobs changed since `due.lua` read them: the next round fires them as they are.
            let mut stale = 0u64;
            // One fire call in flight while the next chunk is planned: the Redis work of one
            // chunk overlaps the cron arithmetic of the next.
            let mux = c.shared();
            let defs = self.jobs(&mut c, group, &due.jobs).await?;
            let mut in_flight: Option<FireCall<'_>> = None;
            // Jobs with an overlap policy decide at their instant, not ahead of it; so do
            // broadcast jobs, whose live executors are the ones alive at the instant.
            let mut deferred: Option<i64> = None;
            // Slots dropped beyond the misfire threshold (alerts), recorded after firing.
            let mut missed: Vec<crate::alerts::missed::Missed> = Vec::new();
            // The earliest score this round moves a job to: with the first score past the
            // window (`due.next_score`) it is when the group is due next, without reading
            // the schedule again.
            let mut moved_to: Option<i64> = None;
            for job in &due.jobs {
                let def = defs.get(&job.id);
                if let Some(Ok(d)) = def
                    && (d.policy != ConcurrencyPolicy::Allow || d.broadcast)
                    && job.score > now
                {
                    deferred = Some(deferred.map_or(job.score, |at: i64| at.min(job.score)));
                    continue;
                }
                // Without a plan (gone, paused, by hand only, unreadable) the job leaves the
                // schedule.
                let mut fire = FireJob {
                    id: &job.id,
                    expected_score: job.score,
                    next_score: None,
                    version: job.version,
                    policy: ConcurrencyPolicy::Allow,
                    exhausted: false,
                    ticks: Vec::new(),
                    skip: None,
                    shards: None,
                    broadcast: false,
                };
                match def {
                    Some(Ok(d)) => {
                        if let Some((sched, tz)) = d.schedule.as_deref()
                            && d.enabled
                        {
                            let horizon = if d.policy == ConcurrencyPolicy::Allow && !d.broadcast {
                                now + ahead as i64
                            } else {
                                now
                            };
                            let p = plan(&d.rules, sched, *tz, job.score, now, horizon);
                            missed.extend(crate::alerts::missed::missed(
                                &job.id,
                                job.score,
                                now,
                                d.rules.misfire_threshold_ms,
                                d.rules.misfire_policy,
                                &p.fire,
                            ));
                            fire.policy = d.policy;
                            fire.exhausted = p.next.is_none();
                            fire.next_score = p.next;
                            crate::metrics::fire_lag(group, now, &p.fire);
                            fire.ticks = p.fire;
                            fire.skip = p.skip;
                            fire.shards = d.shards.as_deref();
                            fire.broadcast = d.broadcast;
                        }
                    }
                    None => {}
                    Some(Err(message)) => {
                        warn!(group, job = %job.id, message, "unreadable job; unscheduling it");
                    }
                }
                ticks_in_call += fire.ticks.len() * (1 + fire.shards.map_or(0, <[_]>::len)) + 1;
                if let Some(n) = fire.next_score {
                    moved_to = Some(moved_to.map_or(n, |m: i64| m.min(n)));
                }
                batch.push(fire);
                if ticks_in_call >= FIRE_CHUNK {
                    if let Some(prev) = in_flight.take() {
                        match prev.await? {
                            Some((n, s)) => (fired, stale) = (fired + n, stale + s),
                            None => return Ok(Duration::ZERO),
                        }
                    }
                    let chunk = std::mem::take(&mut batch);
                    in_flight = Some(Box::pin(self.fire(mux.clone(), group, fence, chunk)));
                    ticks_in_call = 0;
                }
            }
            if let Some(prev) = in_flight.take() {
                match prev.await? {
                    Some((n, s)) => (fired, stale) = (fired + n, stale + s),
                    None => return Ok(Duration::ZERO),
                }
            }
            if !batch.is_empty() {
                match self.fire(mux.clone(), group, fence, batch).await? {
                    Some((n, s)) => (fired, stale) = (fired + n, stale + s),
                    None => return Ok(Duration::ZERO),
                }
            }
            if fired > 0 {
                crate::metrics::ticks_fired(group, fired);
                self.activity.note(group, fired);
            }
            if let Err(e) = crate::alerts::missed::record(&self.redis, group, &missed).await {
                debug!(group, error = %e, "cannot record missed slots for alerts");
            }
            if stale == 0 && due.jobs.len() < DUE_BATCH {
                // Everything due was fired (or waits for its instant): sleep until the
                // earliest of the moved scores, the first score past the window, and the
                // instants of the jobs deferred to them.
                let ahead_of = [due.next_score, moved_to].into_iter().flatten().min();
                let next = [ahead_of, deferred].into_iter().flatten().min();
                self.note_next(group, next);
                let wait = [
                    ahead_of.map(|n| until(n - ahead as i64)),
                    deferred.map(until),
                ]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(MAX_SLEEP);
                return Ok(wait.min(MAX_SLEEP));
            }
        }
    }

    /// One `fire.lua` call: runs fired and jobs found stale; `None` when the fence no
    /// longer holds the lease.
    async fn fire(
        &self,
        mut c: Shared,
        group: &str,
        fence: Option<&Fence>,
        jobs: Vec<FireJob<'_>>,
    ) -> dotjob_shared::Result<Option<(u64, u64)>> {
        let reply = Fire {
            group,
            fence,
            fire_ahead_ms: self.settings.fire_ahead.as_millis() as u64,
            jobs: &jobs,
        }
        .call(&mut self.redis.durable(&mut c), self.redis.keys())
        .await?;
        match reply {
            FireReply::Fenced => {
                warn!(
                    group,
                    "lost the group lease while firing; nothing was fired"
                );
                crate::metrics::fenced(group);
                self.leases.lost(group);
                Ok(None)
            }
            FireReply::Fired { fired, stale } => {
                if stale > 0 {
                    debug!(
                        group,
                        stale, "some jobs were fired or changed elsewhere meanwhile"
                    );
                }
                Ok(Some((fired, stale)))
            }
        }
    }
}
