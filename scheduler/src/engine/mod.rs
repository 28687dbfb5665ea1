//! The scheduling loop: one task per group fires the group's due ticks on the Redis clock.
//!
//! Each round (`firing`) asks `due.lua` for the jobs whose score (next fire instant) is
//! due, plans the ticks in Rust (cron, time zones, misfire rules: [`crate::plan`]) and fires
//! them with `fire.lua`, which checks each job's expected score, appends the runs and moves
//! the score atomically — so however many replicas fire at once, a tick is enqueued at most
//! once. The loop then sleeps until the earliest score (measured from the Redis reply, not
//! the host clock), or until a job change wakes it: an idle group's loop does not run at
//! all until its next instant.
//!
//! A missed wake-up (pub/sub is a hint) is caught by the safety re-read (`safety`): every
//! `schedule_reread` one pipelined `ZRANGE schedule 0 0` per held group compares the group's
//! earliest score with the one its loop sleeps towards, and wakes the loops that are late.
//! So an idle group costs one command per re-read here, whatever the number of groups.
//!
//! Definitions are cached by (id, version), bounded (`views`): `due.lua` returns each due
//! job's version so a stale cache entry is never used, and the scheduler never loads every
//! job.
//!
//! The first round a replica holds a group also backfills the group's run index from the
//! job run indexes, and its last-status index from the jobs' newest runs, if no replica did
//! yet ([`dotjob_shared::backfill`]).
//!
//! Tasks: one loop per group, group discovery, the event listener (job changes invalidate
//! the cache and wake the group's loop), the safety re-read, the leases, housekeeping
//! ([`crate::janitor`]) and alerting ([`crate::alerts`]: evaluation and delivery, apart from
//! the firing loops).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use dotjob_shared::Redis;
use dotjob_shared::events::Event;
use dotjob_shared::schedule::Schedule;
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::lease::Leases;
pub use crate::settings::EngineSettings;

mod firing;
mod safety;
mod views;

use views::Cached;

/// Longest sleep between rounds of a group that the safety re-read does not cover (it
/// covers held groups).
const MAX_SLEEP: Duration = Duration::from_secs(3_600);

/// How often the set of groups is read again (new groups also arrive by event, and a
/// write through this replica's API starts its group's loop at once).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// One group's loop, as the other tasks see it.
struct GroupSlot {
    /// Wakes the loop.
    notify: Notify,
    /// The earliest schedule score the loop knows and sleeps towards (ms, Redis clock;
    /// `i64::MAX` when the group schedules nothing). Written by the loop, read by the
    /// safety re-read.
    next_score: AtomicI64,
}

/// Parsed schedules by (schedule text, time zone name).
type ScheduleCache = lru::LruCache<(String, String), Arc<(Schedule, Tz)>>;

/// The scheduling side of a scheduler process.
pub struct Engine {
    redis: Redis,
    settings: EngineSettings,
    /// Firing views by job id; filled by the group loops, emptied per job by the event
    /// listener and the admin API on a change.
    cache: Mutex<lru::LruCache<String, Arc<Cached>>>,
    /// Parsed schedules, shared by every job with the same schedule and zone.
    schedules: Mutex<ScheduleCache>,
    /// One wake-up per group loop, by group; a loop is started once per group.
    wakers: Mutex<HashMap<String, Arc<GroupSlot>>>,
    /// Wakes discovery (a write for a group this replica does not know yet).
    discover: Notify,
    /// Runs fired per group since housekeeping last looked.
    activity: Arc<crate::janitor::Activity>,
    /// Which groups this replica may fire.
    leases: Arc<Leases>,
    /// Stops every task of the engine.
    stop: CancellationToken,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `redis`; nothing runs until [`Engine::run`].
    pub fn new(redis: Redis, leases: Arc<Leases>, settings: EngineSettings) -> Arc<Self> {
        Arc::new(Self {
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(settings.cache_size.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            schedules: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(4_096).unwrap_or(NonZeroUsize::MIN),
            )),
            wakers: Mutex::default(),
            discover: Notify::new(),
            activity: Arc::default(),
            stop: CancellationToken::new(),
            leases,
            settings,
            redis,
        })
    }

    /// This replica's leases (for `/readyz`).
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }

    /// Wakes the loop of `group` now (after a job change in this process).
    pub fn wake(&self, group: &str) {
        match self.wakers.lock().ok().and_then(|w| w.get(group).cloned()) {
            Some(slot) => slot.notify.notify_one(),
            None => self.discover.notify_one(),
        }
    }

    /// Notes the earliest score the loop of `group` now sleeps towards.
    fn note_next(&self, group: &str, score: Option<i64>) {
        if let Some(slot) = self.wakers.lock().ok().and_then(|w| w.get(group).cloned()) {
            slot.next_score
                .store(score.unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// Forgets a cached definition.
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.pop(id);
        }
    }

    /// Runs the leases, group discovery, the event listener and one loop per group until
    /// `shutdown`; then releases the leases it holds.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let leases = tokio::spawn({
            let me = self.clone();
            async move { me.leases.run(me.stop.clone()).await }
        });
        let tasks = [
            tokio::spawn(self.clone().discover_loop()),
            tokio::spawn(self.clone().listen_loop()),
            tokio::spawn(self.clone().safety_loop()),
            tokio::spawn(crate::janitor::run(
                self.redis.clone(),
                self.leases.clone(),
                self.settings.clone(),
                self.activity.clone(),
                self.stop.clone(),
            )),
            tokio::spawn(crate::alerts::run(
                self.redis.clone(),
                self.leases.clone(),
                self.settings.alerts.clone(),
                self.settings.lease,
                self.stop.clone(),
            )),
        ];
        shutdown.await;
        self.stop.cancel();
        for t in tasks {
            t.abort();
        }
        let _ = leases.await;
    }

    fn ensure_group(self: &Arc<Self>, group: &str) {
        let Ok(mut w) = self.wakers.lock() else {
            return;
        };
        if w.contains_key(group) {
            return;
        }
        let slot = Arc::new(GroupSlot {
            notify: Notify::new(),
            next_score: AtomicI64::new(i64::MIN),
        });
        w.insert(group.to_owned(), slot.clone());
        self.leases.track(group);
        debug!(group, "scheduling group");
        tokio::spawn(self.clone().group_loop(group.to_owned(), slot));
    }

    async fn discover_loop(self: Arc<Self>) {
        loop {
            let res: dotjob_shared::Result<Vec<String>> = async {
                let mut c = self.redis.conn().await?;
                Ok(c.smembers(self.redis.keys().groups()).await?)
            }
            .await;
            match res {
                Ok(groups) => {
                    for g in groups {
                        self.ensure_group(&g);
                    }
                }
                Err(e) => debug!(error = %e, "cannot list groups"),
            }
            tokio::select! {
                () = tokio::time::sleep(DISCOVER_EVERY) => {}
                () = self.discover.notified() => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    async fn listen_loop(self: Arc<Self>) {
        let channel = self.redis.keys().events();
        loop {
            let sub = async {
                let mut ps = self.redis.pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, dotjob_shared::Error>(ps)
            }
            .await;
            let mut ps = match sub {
                Ok(ps) => ps,
                Err(e) => {
                    debug!(error = %e, "event listener cannot connect; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = self.stop.cancelled() => return,
                    }
                }
            };
            let mut msgs = ps.on_message();
            while let Some(msg) = msgs.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                if let Ok(Event::Job { group, id, .. }) = serde_json::from_str::<Event>(&payload) {
                    self.invalidate(&id);
                    self.ensure_group(&group);
                    self.wake(&group);
                }
            }
        }
    }

    /// The one-time backfills of the group's run index (runs recorded before it existed)
    /// and of its last-status index (jobs that existed before it), after this replica's
    /// first round holding the group, so the first firing never waits for them. Returns
    /// whether both are done; on an error the next round retries.
    async fn backfill(&self, group: &str) -> bool {
        let runs = self.backfill_runs(group).await;
        runs && self.backfill_last_status(group).await
    }

    /// The last-status index's backfill (see [`Self::backfill`]).
    async fn backfill_last_status(&self, group: &str) -> bool {
        match dotjob_shared::backfill::backfill_last_status(&self.redis, group).await {
            Ok(Some(jobs)) => {
                info!(group, jobs, "backfilled the group's last-status index");
                true
            }
            Ok(None) => true,
            Err(e) => {
                debug!(group, error = %e, "could not backfill the last-status index; retrying");
                false
            }
        }
    }

    /// The run index's backfill (see [`Self::backfill`]).
    async fn backfill_runs(&self, group: &str) -> bool {
        match dotjob_shared::backfill::backfill_group(&self.redis, group).await {
            Ok(Some(added)) => {
                info!(
                    group,
                    added, "backfilled the group run index from the job run indexes"
                );
                true
            }
            Ok(None) => true,
            Err(e) => {
                debug!(group, error = %e, "could not backfill the group run index; retrying");
                false
            }
        }
    }

    async fn group_loop(self: Arc<Self>, group: String, slot: Arc<GroupSlot>) {
        let mut failures = 0u32;
        // Whether this loop saw the group's run index backfilled (written by this loop only).
        let mut backfilled = false;
        loop {
            let wait = if let Some(holding) = self.leases.holding(&group) {
                let fired = self.fire_due(&group, holding.fence()).await;
                if !backfilled {
                    backfilled = self.backfill(&group).await;
                }
                match fired {
                    Ok(wait) => {
                        failures = 0;
                        wait
                    }
                    Err(e) => {
                        failures += 1;
                        metrics::counter!("dotjob_schedule_pass_errors_total", "group" => group.clone())
                            .increment(1);
                        if e.is_oom() || e.is_unavailable() {
                            self.redis.log_failure("scheduling round", &e);
                        } else if failures == 1 || failures.is_multiple_of(30) {
                            warn!(group, error = %e, failures, "scheduling round failed; retrying");
                        }
                        Duration::from_millis(100 * u64::from(failures.min(20)))
                    }
                }
            } else {
                self.leases.held_wait()
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = slot.notify.notified() => {}
                () = self.leases.changed(&group) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }
}
