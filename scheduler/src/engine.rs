//! The scheduling loop: one task per group fires the group's due ticks on the Redis clock.
//!
//! Each pass asks `due.lua` for the jobs whose score (next fire instant) is due, plans the
//! ticks in Rust (cron, time zones, misfire rules: [`crate::plan`]) and fires them with
//! `fire.lua`, which checks each job's expected score, appends the runs and moves the score
//! atomically — so however many replicas fire at once, a tick is enqueued at most once. The
//! loop then sleeps until the earliest score (measured from the Redis reply, not the host
//! clock), or until a job change wakes it.
//!
//! Definitions are cached by (id, version), bounded: `due.lua` returns each due job's version
//! so a stale cache entry is never used, and the scheduler never loads every job.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use dotjob_shared::events::Event;
use dotjob_shared::model::job::{ConcurrencyPolicy, JobSpec};
use dotjob_shared::schedule::Schedule;
use dotjob_shared::{Redis, scripts};
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::lease::Leases;
use crate::plan::plan;

/// Most due jobs taken per pass.
const DUE_BATCH: usize = 1_000;
/// Most ticks per `fire.lua` call.
const FIRE_CHUNK: usize = 500;
/// Longest sleep between passes, so a missed wake-up costs at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(2);

/// A cached job definition with its parsed schedule.
struct Cached {
    spec: JobSpec,
    schedule: Option<(Schedule, Tz)>,
}

/// Scheduler tunables.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Job definitions kept in memory.
    pub cache_size: usize,
    /// Runs kept per job.
    pub runs_keep: u64,
    /// Oldest run kept.
    pub runs_max_age: Duration,
    /// How often housekeeping (retention, stream trimming, executor reaping) runs.
    pub housekeeping: Duration,
    /// An executor without a heartbeat for this long is forgotten.
    pub executor_timeout: Duration,
    /// Time-to-live of group leases: a dead replica's groups move after about this long.
    pub lease: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            cache_size: 10_000,
            runs_keep: 1_000,
            runs_max_age: Duration::from_secs(7 * 24 * 3_600),
            housekeeping: Duration::from_secs(10),
            executor_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(5),
        }
    }
}

/// The scheduling side of a scheduler process.
pub struct Engine {
    redis: Redis,
    settings: EngineSettings,
    cache: Mutex<lru::LruCache<String, Arc<Cached>>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    leases: Arc<Leases>,
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
            wakers: Mutex::default(),
            stop: CancellationToken::new(),
            leases,
            settings,
            redis,
        })
    }

    /// Wakes the loop of `group` now (after a job change in this process).
    pub fn wake(&self, group: &str) {
        if let Some(n) = self.wakers.lock().ok().and_then(|w| w.get(group).cloned()) {
            n.notify_one();
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
            tokio::spawn(crate::janitor::run(
                self.redis.clone(),
                self.leases.clone(),
                self.settings.clone(),
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
        let notify = Arc::new(Notify::new());
        w.insert(group.to_owned(), notify.clone());
        self.leases.track(group);
        info!(group, "scheduling group");
        tokio::spawn(self.clone().group_loop(group.to_owned(), notify));
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
                () = tokio::time::sleep(MAX_SLEEP) => {}
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

    async fn group_loop(self: Arc<Self>, group: String, notify: Arc<Notify>) {
        let mut failures = 0u32;
        loop {
            let wait = if let Some(fence) = self.leases.fence(&group) {
                match self.pass(&group, &fence).await {
                    Ok(wait) => {
                        failures = 0;
                        wait
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(30) {
                            warn!(group, error = %e, failures, "scheduling pass failed; retrying");
                        }
                        Duration::from_millis(100 * u64::from(failures.min(20)))
                    }
                }
            } else {
                self.leases.held_wait()
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = notify.notified() => {}
                () = self.leases.changed(&group) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// The definitions of a pass's due jobs at the versions `due.lua` reported: from the
    /// cache, and the misses with one pipelined read. A job missing from Redis maps to
    /// `None`; an unreadable one to its error message.
    async fn jobs(
        &self,
        c: &mut dotjob_shared::conn::Conn,
        group: &str,
        due: &[(String, i64, u64)],
    ) -> dotjob_shared::Result<HashMap<String, Result<Arc<Cached>, String>>> {
        let mut out = HashMap::with_capacity(due.len());
        let mut misses = Vec::new();
        if let Ok(mut cache) = self.cache.lock() {
            for (id, _, version) in due {
                match cache.get(id).filter(|c| c.spec.version == *version) {
                    Some(hit) => {
                        out.insert(id.clone(), Ok(hit.clone()));
                    }
                    None => misses.push(id.as_str()),
                }
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let keys = self.redis.keys();
        let mut pipe = redis::pipe();
        for id in &misses {
            pipe.hgetall(keys.job(group, id));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(c).await?;
        let mut cache = self.cache.lock().ok();
        for (id, fields) in misses.into_iter().zip(rows) {
            if fields.is_empty() {
                continue;
            }
            let parsed = JobSpec::from_fields(&keys.job(group, id), &fields).and_then(|spec| {
                let schedule = spec.parsed_schedule()?;
                Ok(Arc::new(Cached { spec, schedule }))
            });
            let entry = match parsed {
                Ok(job) => {
                    if let Some(cache) = cache.as_mut() {
                        cache.put(id.to_owned(), job.clone());
                    }
                    Ok(job)
                }
                Err(e) => Err(e.to_string()),
            };
            out.insert(id.to_owned(), entry);
        }
        Ok(out)
    }

    /// Fires what is due in `group`; returns how long to sleep (zero after losing the lease).
    async fn pass(&self, group: &str, fence: &str) -> dotjob_shared::Result<Duration> {
        let prefix = self.redis.keys().group_prefix(group);
        loop {
            let mut c = self.redis.conn().await?;
            let (now, next, due): (String, String, Vec<String>) = scripts::DUE
                .key(&prefix)
                .arg(DUE_BATCH)
                .invoke_async(&mut c)
                .await?;
            let replied = Instant::now();
            let now: i64 = now.parse().unwrap_or_default();
            if due.is_empty() {
                let wait = match next.parse::<f64>() {
                    Ok(n) => Duration::from_millis((n as i64 - now).max(0) as u64)
                        .saturating_sub(replied.elapsed()),
                    Err(_) => MAX_SLEEP,
                };
                return Ok(wait.min(MAX_SLEEP));
            }
            let mut args: Vec<String> = Vec::new();
            let mut ticks_in_call = 0;
            let mut fired = 0u64;
            let rows: Vec<(String, i64, u64)> = due
                .chunks(3)
                .filter_map(|row| match row {
                    [id, score, version] => Some((
                        id.clone(),
                        score.parse::<f64>().unwrap_or_default() as i64,
                        version.parse().unwrap_or(0),
                    )),
                    _ => None,
                })
                .collect();
            let defs = self.jobs(&mut c, group, &rows).await?;
            for (id, score, version) in &rows {
                let (id, score, version) = (id, *score, *version);
                let mut options = "a0".to_owned();
                let (fire, skip, next) = match defs.get(id) {
                    Some(Ok(job)) => match &job.schedule {
                        Some((sched, tz)) if job.spec.enabled => {
                            let p = plan(&job.spec, sched, *tz, score, now);
                            let policy = match job.spec.concurrency {
                                ConcurrencyPolicy::Allow => 'a',
                                ConcurrencyPolicy::Forbid => 'f',
                                ConcurrencyPolicy::Replace => 'r',
                            };
                            let exhausted = if p.next.is_none() { '1' } else { '0' };
                            options = format!("{policy}{exhausted}");
                            (p.fire, p.skip, p.next)
                        }
                        _ => (vec![], None, None),
                    },
                    None => (vec![], None, None),
                    Some(Err(message)) => {
                        warn!(group, job = %id, message, "unreadable job; unscheduling it");
                        (vec![], None, None)
                    }
                };
                args.push(id.clone());
                args.push(score.to_string());
                args.push(next.map(|n| n.to_string()).unwrap_or_default());
                args.push(version.to_string());
                args.push(options);
                args.push((fire.len() + usize::from(skip.is_some())).to_string());
                ticks_in_call += fire.len() + 1;
                args.extend(fire.iter().map(i64::to_string));
                args.extend(skip.map(|s| format!("~{s}")));
                if ticks_in_call >= FIRE_CHUNK {
                    match self.fire(&mut c, &prefix, group, fence, &args).await? {
                        Some(n) => fired += n,
                        None => return Ok(Duration::ZERO),
                    }
                    args.clear();
                    ticks_in_call = 0;
                }
            }
            if !args.is_empty() {
                match self.fire(&mut c, &prefix, group, fence, &args).await? {
                    Some(n) => fired += n,
                    None => return Ok(Duration::ZERO),
                }
            }
            if fired > 0 {
                metrics::counter!("dotjob_ticks_fired_total", "group" => group.to_owned())
                    .increment(fired);
            }
        }
    }

    async fn fire(
        &self,
        c: &mut dotjob_shared::conn::Conn,
        prefix: &str,
        group: &str,
        fence: &str,
        args: &[String],
    ) -> dotjob_shared::Result<Option<u64>> {
        let (status, fired, stale, _runs): (String, u64, u64, Vec<String>) = scripts::FIRE
            .key(prefix)
            .arg(group)
            .arg(fence)
            .arg(self.redis.keys().events())
            .arg(args)
            .invoke_async(c)
            .await?;
        if status == "fenced" {
            warn!(
                group,
                "lost the group lease while firing; nothing was fired"
            );
            self.leases.lost(group);
            return Ok(None);
        }
        if stale > 0 {
            debug!(
                group,
                stale, "some jobs were fired or changed elsewhere meanwhile"
            );
        }
        Ok(Some(fired))
    }
}
