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
use dotjob_shared::model::job::{ConcurrencyPolicy, Routing};
use dotjob_shared::schedule::Schedule;
use dotjob_shared::{Redis, scripts};
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::lease::Leases;
use crate::plan::{Rules, plan};

/// Most due jobs taken per pass.
const DUE_BATCH: usize = 2_000;
/// Most ticks per `fire.lua` call.
const FIRE_CHUNK: usize = 500;
/// Longest sleep between passes, so a missed wake-up costs at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(2);

/// What firing needs of a job: read with one `HMGET` of these fields, not the whole
/// definition (params and the rest are the workers' business).
const FIRE_FIELDS: [&str; 10] = [
    "version",
    "enabled",
    "schedule",
    "timezone",
    "created_at",
    "misfire_policy",
    "misfire_threshold_ms",
    "catch_up_limit",
    "concurrency",
    "routing",
];

/// A cached firing view of a job.
struct Cached {
    version: u64,
    enabled: bool,
    rules: Rules,
    policy: ConcurrencyPolicy,
    /// Parsed schedule and zone, shared by every job with the same pair; `None` = by hand.
    schedule: Option<Arc<(Schedule, Tz)>>,
    /// A sharded job's per-shard parameters as JSON ("" where it has none), one per shard.
    shards: Option<Vec<String>>,
}

/// A `fire.lua` call under way.
type FireCall<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = dotjob_shared::Result<Option<u64>>> + Send + 'a>,
>;

/// Reads a unit enum stored as its bare snake_case name.
fn word<T: serde::de::DeserializeOwned>(v: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).ok()
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
    /// How early ticks of jobs that allow overlap are enqueued; workers hold them and start
    /// each at its instant on the Redis clock. Zero fires at the instant.
    pub fire_ahead: Duration,
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
            fire_ahead: Duration::from_millis(2_500),
        }
    }
}

/// Parsed schedules by (schedule text, time zone name).
type ScheduleCache = lru::LruCache<(String, String), Arc<(Schedule, Tz)>>;

/// The scheduling side of a scheduler process.
pub struct Engine {
    redis: Redis,
    settings: EngineSettings,
    cache: Mutex<lru::LruCache<String, Arc<Cached>>>,
    schedules: Mutex<ScheduleCache>,
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
            schedules: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(4_096).unwrap_or(NonZeroUsize::MIN),
            )),
            wakers: Mutex::default(),
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
                        metrics::counter!("dotjob_schedule_pass_errors_total", "group" => group.clone())
                            .increment(1);
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

    /// The firing views of a pass's due jobs at the versions `due.lua` reported: from the
    /// cache, and the misses with one pipelined `HMGET` each. A job missing from Redis maps
    /// to `None`; an unreadable one to its error message.
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
                match cache.get(id).filter(|c| c.version == *version) {
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
            pipe.cmd("HMGET")
                .arg(keys.job(group, id))
                .arg(&FIRE_FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(c).await?;
        for (id, fields) in misses.into_iter().zip(rows) {
            if fields.iter().all(Option::is_none) {
                continue;
            }
            let entry = match self.parse(&fields) {
                Ok(job) => {
                    let job = Arc::new(job);
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.put(id.to_owned(), job.clone());
                    }
                    Ok(job)
                }
                Err(e) => Err(format!("{}: {e}", keys.job(group, id))),
            };
            out.insert(id.to_owned(), entry);
        }
        Ok(out)
    }

    /// A firing view from [`FIRE_FIELDS`] values.
    fn parse(&self, f: &[Option<String>]) -> Result<Cached, String> {
        let get = |i: usize| f.get(i).and_then(Option::as_deref).unwrap_or("");
        let num = |i: usize| -> Result<i64, String> {
            get(i)
                .parse()
                .map_err(|_| format!("field {} is not a number", FIRE_FIELDS[i]))
        };
        let schedule = match get(2) {
            "" => None,
            s => {
                let key = (s.to_owned(), get(3).to_owned());
                let hit = self
                    .schedules
                    .lock()
                    .ok()
                    .and_then(|mut c| c.get(&key).cloned());
                match hit {
                    Some(parsed) => Some(parsed),
                    None => {
                        let sched = Schedule::parse(s)?;
                        let tz = dotjob_shared::schedule::parse_timezone(get(3))?;
                        let parsed = Arc::new((sched, tz));
                        if let Ok(mut c) = self.schedules.lock() {
                            c.put(key, parsed.clone());
                        }
                        Some(parsed)
                    }
                }
            }
        };
        Ok(Cached {
            version: num(0)? as u64,
            enabled: get(1) == "true",
            schedule,
            rules: Rules {
                created_at: num(4)?,
                misfire_policy: word(get(5)).ok_or("bad misfire_policy")?,
                misfire_threshold_ms: num(6)? as u64,
                catch_up_limit: num(7)? as u32,
            },
            policy: word(get(8)).ok_or("bad concurrency")?,
            shards: match get(9) {
                "" => None,
                r => {
                    match serde_json::from_str::<Routing>(r).map_err(|e| format!("routing: {e}"))? {
                        Routing::Sharded {
                            shards,
                            shard_params,
                        } => Some(
                            (0..shards as usize)
                                .map(|k| {
                                    shard_params
                                        .get(k)
                                        .map(serde_json::Value::to_string)
                                        .unwrap_or_default()
                                })
                                .collect(),
                        ),
                        _ => None,
                    }
                }
            },
        })
    }

    /// Fires what is due in `group`; returns how long to sleep (zero after losing the lease).
    async fn pass(&self, group: &str, fence: &str) -> dotjob_shared::Result<Duration> {
        let prefix = self.redis.keys().group_prefix(group);
        loop {
            let mut c = self.redis.conn().await?;
            let ahead = self.settings.fire_ahead.as_millis() as i64;
            let (now, next, due): (String, String, Vec<String>) = scripts::DUE
                .key(&prefix)
                .arg(DUE_BATCH)
                .arg(ahead)
                .invoke_async(&mut c)
                .await?;
            let replied = Instant::now();
            let now: i64 = now.parse().unwrap_or_default();
            let until = |at: i64| {
                Duration::from_millis((at - now).max(0) as u64).saturating_sub(replied.elapsed())
            };
            if due.is_empty() {
                let wait = match next.parse::<f64>() {
                    Ok(n) => until(n as i64 - ahead),
                    Err(_) => MAX_SLEEP,
                };
                return Ok(wait.min(MAX_SLEEP));
            }
            let mut args: Vec<String> = Vec::new();
            let mut ticks_in_call = 0;
            let mut fired = 0u64;
            // One fire call in flight while the next chunk is planned: the Redis work of one
            // chunk overlaps the cron arithmetic of the next.
            let mux = redis::aio::MultiplexedConnection::clone(&c);
            let mut in_flight: Option<FireCall<'_>> = None;
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
            // Jobs with an overlap policy decide at their instant, not ahead of it.
            let mut deferred: Option<i64> = None;
            for (id, score, version) in &rows {
                let (id, score, version) = (id, *score, *version);
                let mut options = "a0".to_owned();
                if let Some(Ok(job)) = defs.get(id)
                    && job.policy != ConcurrencyPolicy::Allow
                    && score > now
                {
                    deferred = Some(deferred.map_or(score, |d: i64| d.min(score)));
                    continue;
                }
                let (fire, skip, next) = match defs.get(id) {
                    Some(Ok(job)) => match job.schedule.as_deref() {
                        Some((sched, tz)) if job.enabled => {
                            let horizon = if job.policy == ConcurrencyPolicy::Allow {
                                now + ahead
                            } else {
                                now
                            };
                            let p = plan(&job.rules, sched, *tz, score, now, horizon);
                            let policy = match job.policy {
                                ConcurrencyPolicy::Allow => 'a',
                                ConcurrencyPolicy::Forbid => 'f',
                                ConcurrencyPolicy::Replace => 'r',
                            };
                            let exhausted = if p.next.is_none() { '1' } else { '0' };
                            let sharded = if job.shards.is_some() { "s" } else { "" };
                            options = format!("{policy}{exhausted}{sharded}");
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
                crate::metrics::fire_lag(group, now, &fire);
                args.push(id.clone());
                args.push(score.to_string());
                args.push(next.map(|n| n.to_string()).unwrap_or_default());
                args.push(version.to_string());
                let sharded = options.ends_with('s');
                args.push(options);
                args.push((fire.len() + usize::from(skip.is_some())).to_string());
                ticks_in_call += fire.len() + 1;
                args.extend(fire.iter().map(i64::to_string));
                args.extend(skip.map(|s| format!("~{s}")));
                if sharded
                    && let Some(Ok(job)) = defs.get(id)
                    && let Some(shards) = &job.shards
                {
                    args.push(shards.len().to_string());
                    args.extend(shards.iter().cloned());
                    ticks_in_call += shards.len() * fire.len();
                }
                if ticks_in_call >= FIRE_CHUNK {
                    if let Some(prev) = in_flight.take() {
                        match prev.await? {
                            Some(n) => fired += n,
                            None => return Ok(Duration::ZERO),
                        }
                    }
                    let chunk = std::mem::take(&mut args);
                    in_flight = Some(Box::pin(self.fire(
                        mux.clone(),
                        &prefix,
                        group,
                        fence,
                        chunk,
                    )));
                    ticks_in_call = 0;
                }
            }
            if let Some(prev) = in_flight.take() {
                match prev.await? {
                    Some(n) => fired += n,
                    None => return Ok(Duration::ZERO),
                }
            }
            if !args.is_empty() {
                match self.fire(mux.clone(), &prefix, group, fence, args).await? {
                    Some(n) => fired += n,
                    None => return Ok(Duration::ZERO),
                }
            }
            if fired > 0 {
                crate::metrics::ticks_fired(group, fired);
            }
            if let Some(at) = deferred
                && fired == 0
            {
                // Only jobs waiting for their exact instant are left in the window.
                return Ok(until(at).min(MAX_SLEEP));
            }
        }
    }

    async fn fire(
        &self,
        mut c: redis::aio::MultiplexedConnection,
        prefix: &str,
        group: &str,
        fence: &str,
        args: Vec<String>,
    ) -> dotjob_shared::Result<Option<u64>> {
        let (status, fired, stale): (String, u64, u64) = scripts::FIRE
            .key(prefix)
            .arg(group)
            .arg(fence)
            .arg(self.redis.keys().events())
            .arg(self.settings.fire_ahead.as_millis() as u64)
            .arg(args)
            .invoke_async(&mut c)
            .await?;
        if status == "fenced" {
            warn!(
                group,
                "lost the group lease while firing; nothing was fired"
            );
            crate::metrics::fenced(group);
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
