//! The worker engine: reads runs from the group stream, executes them under a deadline,
//! records results in batches, keeps in-flight entries alive, reclaims retries and runs of
//! dead workers, and hands work back on shutdown.
//!
//! Tasks, all on the tokio runtime:
//! - the **reader** waits for free capacity, then `XREADGROUP … BLOCK` on a connection of its
//!   own and dispatches what it gets;
//! - the **claimer** takes retries whose backoff passed and entries idle past the lease
//!   (`claim.lua`, XCLAIM / XAUTOCLAIM looped until the cursor returns to `0-0`);
//! - one **execution** per run: the handler in its own task (a panic is a failed attempt),
//!   raced against the deadline, a cancel request and a hard shutdown;
//! - the **completer** records finished attempts in batches (`complete.lua`): ack, retry or
//!   dead-letter;
//! - the **heartbeat** touches in-flight entries (`touch.lua`) and the executor's liveness;
//! - the **listener** drops cached definitions on job changes and cancels runs on request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dotjob_shared::conn::Redis;
use dotjob_shared::events::Event;
use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_shared::model::job::ConcurrencyPolicy;
use dotjob_shared::model::run::{RunStatus, code};
use dotjob_shared::scripts;
use futures::StreamExt;
use redis::Value as RValue;
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cache::{CachedJob, JobCache};
use crate::handler::{Handler, HandlerError, LogBuffer, RunContext};

/// Most entries read or claimed at once.
const BATCH: usize = 128;
/// Most attempts recorded by one `complete.lua` call.
const COMPLETE_BATCH: usize = 256;
/// How long one `XREADGROUP` blocks; also bounds how quickly the reader sees a shutdown.
const BLOCK: Duration = Duration::from_millis(1_000);
/// How often due retries are looked for.
const RETRY_POLL: Duration = Duration::from_millis(200);
/// How often a running handler's log lines are flushed.
const LOG_FLUSH: Duration = Duration::from_millis(500);
/// Largest result stored on a run.
const RESULT_MAX_BYTES: usize = 64 * 1024;
/// Runs fired ahead of their tick are re-checked this long before it (recalled? changed?).
/// `save_job.lua` recalls only ticks more than 250 ms away, well beyond this lead, so a run
/// that passed its re-check is never recalled under it.
const RECHECK_LEAD: i64 = 20;
/// Most runs held waiting for their tick, per worker; beyond it the reader pauses.
const WAIT_MAX: usize = 20_000;
/// How long a first attempt runs before its record is marked `running`.
const MARK_AFTER: Duration = Duration::from_millis(250);
/// Started attempts interrupted by their executor's death after which a run is given up
/// (a crash is not the handler's failure, but a run that kills every executor must stop).
const POISON_AFTER: u32 = 5;

/// Tunables of one worker.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Runs executed at once.
    pub concurrency: usize,
    /// A run whose worker stopped heartbeating is reclaimed after this long.
    pub lease: Duration,
    /// How long shutdown waits for in-flight runs before handing them back.
    pub grace: Duration,
    /// How long log lists live (they are deleted with their run before that, normally).
    pub log_ttl: Duration,
    /// Listen on the events channel (default true): cached definitions are dropped as soon
    /// as a job changes, and running runs are cancelled as soon as it is asked. Without it
    /// the worker is still never stale (each stream entry carries the job version, and a
    /// newer one is read from Redis), and cancel requests arrive with the next heartbeat.
    pub events: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            lease: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            log_ttl: Duration::from_secs(14 * 24 * 3_600),
            events: true,
        }
    }
}

/// A run taken from the stream.
#[derive(Debug)]
struct Delivery {
    entry: String,
    run: String,
    job: String,
    version: u64,
    at: i64,
    params: Option<Value>,
    shard: Option<(u32, u32, Value)>,
    attempt: u32,
}

impl Delivery {
    /// Reads an entry's fields through `get`.
    fn parse_with(
        entry: String,
        attempt: u32,
        get: impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        let run = get("run")?;
        // The run id names the job and the tick; older entries also carried them as fields.
        let job = match get("job") {
            Some(j) => j,
            None => dotjob_shared::model::run::job_of_run(&run)?.to_owned(),
        };
        let at = get("at")
            .and_then(|a| a.parse().ok())
            .or_else(|| dotjob_shared::model::run::RunIdShape::of(&run).tick)
            .unwrap_or(0);
        let shard = match (get("shard"), get("shards")) {
            (Some(i), Some(n)) => Some((
                i.parse().ok()?,
                n.parse().ok()?,
                get("sp")
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or(Value::Null),
            )),
            _ => None,
        };
        Some(Self {
            job,
            at,
            run,
            version: get("v")?.parse().ok()?,
            params: get("p").and_then(|p| serde_json::from_str(&p).ok()),
            shard,
            entry,
            attempt,
        })
    }

    fn parse(entry: String, attempt: u32, fields: &HashMap<String, String>) -> Option<Self> {
        Self::parse_with(entry, attempt, |k| fields.get(k).cloned())
    }
}

/// A finished attempt waiting to be recorded.
#[derive(Debug)]
struct Done {
    entry: String,
    run: String,
    job: String,
    /// `succeeded`, `failed`, `timed_out`, `cancelled`, `fatal`, `skip` or `handback`.
    outcome: &'static str,
    attempt: u32,
    max_attempts: u32,
    retry_delay_ms: Option<u64>,
    code: u16,
    duration_ms: u64,
    result: String,
    error: String,
    /// The job has a concurrency policy: release its in-flight marker when final.
    guarded: bool,
    /// When the attempt started (the record gets its Redis-clock time when sent).
    started: Option<Instant>,
}

impl Done {
    fn skip(entry: String, run: String, job: String) -> Self {
        Self {
            entry,
            run,
            job,
            outcome: "skip",
            attempt: 0,
            max_attempts: 1,
            retry_delay_ms: None,
            code: 0,
            duration_ms: 0,
            result: String::new(),
            error: String::new(),
            guarded: false,
            started: None,
        }
    }
}

/// A run this worker holds.
struct InFlight {
    run: String,
    /// Cancelled by a cancel request for this run.
    cancel: CancellationToken,
    /// Its attempt number.
    attempt: u32,
    /// When its handler started (None while waiting for a slot).
    started: Option<Instant>,
    /// Whether its record says `running` yet (first attempts are marked only once they have
    /// run for [`MARK_AFTER`]: a quick run goes from queued to final in one write).
    marked: bool,
    /// Its handler returned; only the recording is left.
    finished: bool,
}

/// State shared by the worker's tasks.
pub(crate) struct Engine {
    pub(crate) redis: Redis,
    pub(crate) group: String,
    pub(crate) id: String,
    pub(crate) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(crate) settings: Settings,
    prefix: String,
    stream: String,
    cache: JobCache,
    sem: Arc<Semaphore>,
    inflight: Mutex<HashMap<String, InFlight>>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
    /// Stops reading and claiming.
    stop: CancellationToken,
    /// Ends the executions still running after the grace period (hand-back).
    hard: CancellationToken,
    /// Set by an admin through the API: claim nothing new.
    disabled: AtomicBool,
    /// The group and this executor's id, shared with every run's context.
    group_name: Arc<str>,
    id_name: Arc<str>,
    /// The Redis clock as last read (ms) and when, to start runs fired ahead at their tick.
    clock: Mutex<Option<(i64, Instant)>>,
    /// Runs fired ahead, by (tick, arrival), until their tick.
    waiting: Mutex<std::collections::BTreeMap<(i64, u64), Delivery>>,
    waiting_seq: std::sync::atomic::AtomicU64,
    waiting_changed: tokio::sync::Notify,
    /// Metric handles, looked up once rather than per run.
    durations: metrics::Histogram,
    runs: Mutex<HashMap<&'static str, metrics::Counter>>,
}

/// Exponential reconnect delay: 100 ms doubling to 5 s.
struct Retry(Duration);

impl Retry {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }
    async fn wait(&mut self, stop: &CancellationToken) {
        tokio::select! {
            () = tokio::time::sleep(self.0) => {}
            () = stop.cancelled() => {}
        }
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
}

fn to_string(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::Int(i) => i.to_string(),
        RValue::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

impl Engine {
    pub(crate) fn new(
        redis: Redis,
        group: String,
        id: String,
        handlers: HashMap<String, Arc<dyn Handler>>,
        settings: Settings,
    ) -> Arc<Self> {
        let keys = redis.keys().clone();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            prefix: keys.group_prefix(&group),
            stream: keys.stream(&group),
            sem: Arc::new(Semaphore::new(settings.concurrency)),
            cache: JobCache::new(4_096),
            inflight: Mutex::default(),
            done_tx,
            done_rx: Mutex::new(Some(done_rx)),
            stop: CancellationToken::new(),
            hard: CancellationToken::new(),
            disabled: AtomicBool::new(false),
            clock: Mutex::new(None),
            waiting: Mutex::default(),
            waiting_seq: std::sync::atomic::AtomicU64::new(0),
            waiting_changed: tokio::sync::Notify::new(),
            group_name: group.as_str().into(),
            id_name: id.as_str().into(),
            durations: metrics::histogram!("dotjob_run_duration_seconds", "group" => group.clone()),
            runs: Mutex::default(),
            redis,
            group,
            id,
            handlers,
            settings,
        })
    }

    /// Runs the worker until `shutdown` resolves, then drains and returns.
    pub(crate) async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let done_rx = self
            .done_rx
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| anyhow::anyhow!("worker already started"))?;
        crate::registry::register(&self).await;
        if let Ok(now) = self.redis.now_ms().await {
            self.set_clock(now, Instant::now());
        }
        let mut tasks = vec![
            tokio::spawn(self.clone().read_loop()),
            tokio::spawn(self.clone().claim_loop()),
            tokio::spawn(self.clone().heartbeat_loop()),
            tokio::spawn(self.clone().mark_loop()),
            tokio::spawn(self.clone().wait_loop()),
        ];
        if self.settings.events {
            tasks.push(tokio::spawn(self.clone().listen_loop()));
        }
        let completer = tokio::spawn(self.clone().complete_loop(done_rx));
        info!(worker = %self.id, group = %self.group, concurrency = self.settings.concurrency, "worker started");

        shutdown.await;
        info!(worker = %self.id, "shutting down: no new runs; waiting for in-flight runs");
        self.stop.cancel();
        let all = self.settings.concurrency as u32;
        let drained = tokio::time::timeout(self.settings.grace, self.sem.acquire_many(all)).await;
        if drained.is_err() {
            warn!(worker = %self.id, "grace period over: handing unfinished runs back");
            self.hard.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.sem.acquire_many(all)).await;
        }
        // Let the completer record what finished (bounded: Redis may be down).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.inflight.lock().map(|m| !m.is_empty()).unwrap_or(false)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for t in tasks {
            t.abort();
        }
        completer.abort();
        crate::registry::deregister(&self).await;
        info!(worker = %self.id, "worker stopped");
        Ok(())
    }

    /// The `dotjob_runs_total` counter of one status.
    fn runs_counter(&self, status: &'static str) -> metrics::Counter {
        let make = || metrics::counter!("dotjob_runs_total", "group" => self.group.clone(), "status" => status);
        match self.runs.lock() {
            Ok(mut m) => m.entry(status).or_insert_with(make).clone(),
            Err(_) => make(),
        }
    }

    /// The Redis clock now, estimated from the last reading and the monotonic clock.
    fn redis_now(&self) -> Option<i64> {
        self.clock
            .lock()
            .ok()
            .and_then(|c| *c)
            .map(|(ms, at)| ms + at.elapsed().as_millis() as i64)
    }

    /// Records a reading of the Redis clock, taken as read when its reply arrived: a lower
    /// bound, so a run waiting for its tick never starts early. The estimate keeps the best
    /// (highest) lower bound, since a slow reply understates the clock by its delay; a reading
    /// more than a second below the estimate means the Redis clock moved back (a restart on
    /// another host, say) and replaces it.
    fn set_clock(&self, redis_ms: i64, read_at: Instant) {
        if let Ok(mut c) = self.clock.lock() {
            let keep = c.is_some_and(|(ms, at)| {
                let estimate = ms + read_at.saturating_duration_since(at).as_millis() as i64;
                estimate > redis_ms && estimate - redis_ms < 1_000
            });
            if !keep {
                *c = Some((redis_ms, read_at));
            }
        }
    }

    /// The local instant at which the Redis clock reads `at_ms`.
    fn instant_of(&self, at_ms: i64) -> Instant {
        match self.clock.lock().ok().and_then(|c| *c) {
            Some((ms, at)) if at_ms >= ms => at + Duration::from_millis((at_ms - ms) as u64),
            _ => Instant::now(),
        }
    }

    /// Sorts a read batch: runs whose tick has come go out now, runs fired ahead wait.
    fn hold_for_tick(&self, batch: Vec<Delivery>) -> Vec<Delivery> {
        let Some(now) = self.redis_now() else {
            return batch;
        };
        let (due, later): (Vec<Delivery>, Vec<Delivery>) =
            batch.into_iter().partition(|d| d.at <= now + 1);
        if !later.is_empty() {
            self.hold(&later);
            if let Ok(mut w) = self.waiting.lock() {
                for d in later {
                    let seq = self.waiting_seq.fetch_add(1, Ordering::Relaxed);
                    w.insert((d.at, seq), d);
                }
            }
            self.waiting_changed.notify_one();
        }
        due
    }

    fn waiting_len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Starts runs fired ahead at their tick: re-checks them just before (recalled, or the
    /// job changed?), then waits for the exact instant on the Redis clock.
    async fn wait_loop(self: Arc<Self>) {
        loop {
            let first = self
                .waiting
                .lock()
                .ok()
                .and_then(|w| w.first_key_value().map(|((at, _), _)| *at));
            let Some(first) = first else {
                tokio::select! {
                    () = self.waiting_changed.notified() => continue,
                    () = self.stop.cancelled() => break,
                }
            };
            let now = self.redis_now().unwrap_or(first);
            if first - now > RECHECK_LEAD {
                tokio::select! {
                    () = tokio::time::sleep_until(self.instant_of(first - RECHECK_LEAD).into()) => {}
                    () = self.waiting_changed.notified() => {}
                    () = self.stop.cancelled() => break,
                }
                continue;
            }
            let batch: Vec<Delivery> = match self.waiting.lock() {
                Ok(mut w) => {
                    let keys: Vec<(i64, u64)> = w
                        .range(..(now + RECHECK_LEAD + 1, 0))
                        .map(|(k, _)| *k)
                        .collect();
                    keys.iter().filter_map(|k| w.remove(k)).collect()
                }
                Err(_) => break,
            };
            // Dispatched now, a moment early: each execution waits for its instant itself, so
            // at the tick only timers fire.
            let batch = self.recheck(batch).await;
            if !batch.is_empty() {
                self.clone().dispatch_with_wait(batch).await;
            }
        }
        // Shutting down: what waits for its tick is handed back.
        let left: Vec<Delivery> = self
            .waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w).into_values().collect())
            .unwrap_or_default();
        for d in left {
            self.send(Done {
                outcome: "handback",
                ..Done::skip(d.entry, d.run, d.job)
            });
        }
    }

    /// Drops recalled runs and raises the version of runs whose job changed since they were
    /// fired, so the definition they start with is the current one.
    async fn recheck(&self, batch: Vec<Delivery>) -> Vec<Delivery> {
        if batch.is_empty() {
            return batch;
        }
        let runs: Vec<(&str, &str)> = batch
            .iter()
            .map(|d| (d.run.as_str(), d.job.as_str()))
            .collect();
        let res = async {
            let mut c = self.redis.conn().await?;
            scripts::Recheck { runs: &runs }
                .call(&mut c, &self.prefix)
                .await
        }
        .await;
        let Ok(checked) = res else {
            warn!("cannot re-check runs fired ahead; starting them as fired");
            return batch;
        };
        // A fresh reading just before these runs' tick sharpens the instant they start at.
        self.set_clock(checked.now_ms, Instant::now());
        let mut keep = Vec::with_capacity(batch.len());
        for (mut d, check) in batch.into_iter().zip(checked.runs) {
            if check.status != Some(RunStatus::Queued) {
                debug!(run = %d.run, status = ?check.status, "run recalled before its tick");
                self.send(Done::skip(d.entry, d.run, d.job));
                continue;
            }
            if let Some(v) = check.job_version {
                d.version = d.version.max(v);
            }
            keep.push(d);
        }
        keep
    }

    fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Waits until at least one execution slot is free; returns how many are (at most
    /// `max`). Slots are not reserved: a blocking read must not hold capacity the claimer
    /// needs, so entries take their slots when they arrive.
    async fn capacity(&self, max: usize) -> Option<usize> {
        if self.sem.available_permits() == 0 {
            tokio::select! {
                p = self.sem.acquire() => drop(p.ok()?),
                () = self.stop.cancelled() => return None,
            }
        }
        Some(self.sem.available_permits().clamp(1, max))
    }

    async fn read_loop(self: Arc<Self>) {
        let mut conn: Option<MultiplexedConnection> = None;
        let mut retry = Retry::new();
        while !self.stop.is_cancelled() {
            if self.is_disabled() {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    () = self.stop.cancelled() => break,
                }
            }
            if self.waiting_len() >= WAIT_MAX {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    () = self.stop.cancelled() => break,
                }
            }
            let Some(count) = self.capacity(BATCH).await else {
                break;
            };
            let c = match &mut conn {
                Some(c) => c,
                None => match self.redis.dedicated(BLOCK).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        warn!(error = %e, "reader cannot reach Redis; retrying");
                        retry.wait(&self.stop).await;
                        continue;
                    }
                },
            };
            let reply: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(CONSUMER_GROUP)
                    .arg(&self.id)
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.stream)
                    .arg(">")
                    .query_async(c)
                    .await;
            match reply {
                Ok(reply) => {
                    retry.reset();
                    let entries: Vec<_> = reply
                        .into_iter()
                        .flat_map(|r| r.keys)
                        .flat_map(|k| k.ids)
                        .collect();
                    if entries.is_empty() {
                        continue;
                    }
                    let mut batch = Vec::with_capacity(entries.len());
                    for e in entries {
                        let parsed =
                            Delivery::parse_with(e.id.clone(), 1, |k| e.map.get(k).map(to_string));
                        match parsed {
                            Some(d) => batch.push(d),
                            None => {
                                warn!(entry = %e.id, "malformed stream entry; acknowledging it");
                                self.send(Done::skip(e.id, String::new(), String::new()));
                            }
                        }
                    }
                    let due = self.hold_for_tick(batch);
                    if !due.is_empty() {
                        self.clone().dispatch_with_wait(due).await;
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.ensure_group().await;
                }
                Err(e) => {
                    warn!(error = %e, "XREADGROUP failed; reconnecting");
                    conn = None;
                    retry.wait(&self.stop).await;
                }
            }
        }
        debug!("reader stopped");
    }

    /// (Re)creates the consumer group at the stream's start, so nothing fired is skipped.
    async fn ensure_group(&self) {
        let res: dotjob_shared::Result<()> = async {
            let mut c = self.redis.conn().await?;
            let r: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.stream)
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await;
            match r {
                Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
                _ => Ok(()),
            }
        }
        .await;
        if let Err(e) = res {
            warn!(error = %e, "cannot create the consumer group");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn claim_loop(self: Arc<Self>) {
        let mut cursor: Option<String> = None;
        let autoclaim_every = (self.settings.lease / 4).max(Duration::from_millis(100));
        let mut last_autoclaim = Instant::now();
        let mut retry = Retry::new();
        let mut tick = tokio::time::interval(RETRY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.stop.cancelled() => break,
            }
            if self.is_disabled() {
                continue;
            }
            let free = self.sem.available_permits().min(BATCH);
            if free == 0 {
                continue;
            }
            let autoclaim = cursor.is_some() || last_autoclaim.elapsed() >= autoclaim_every;
            if autoclaim && cursor.is_none() {
                last_autoclaim = Instant::now();
            }
            match self.claim_once(cursor.as_deref(), free, autoclaim).await {
                Ok((next, batch)) => {
                    retry.reset();
                    if autoclaim {
                        cursor = next;
                    }
                    if !batch.is_empty() {
                        self.clone().dispatch_with_wait(batch).await;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "claiming failed; retrying");
                    retry.wait(&self.stop).await;
                }
            }
        }
        debug!("claimer stopped");
    }

    async fn claim_once(
        &self,
        cursor: Option<&str>,
        count: usize,
        autoclaim: bool,
    ) -> dotjob_shared::Result<(Option<String>, Vec<Delivery>)> {
        let mut c = self.redis.conn().await?;
        let claim = scripts::Claim {
            consumer: &self.id,
            lease_ms: self.settings.lease.as_millis() as u64,
            max_entries: count,
            autoclaim,
            cursor,
        };
        let scripts::ClaimReply {
            next_cursor: next,
            entries: claimed,
            lost,
        } = claim.call(&mut c, &self.prefix).await?;
        if lost > 0 {
            warn!(group = %self.group, lost, "stream entries were deleted while pending; runs recorded as lost");
            metrics::counter!("dotjob_runs_lost_total", "group" => self.group.clone())
                .increment(lost);
        }
        let mut out = Vec::with_capacity(claimed.len());
        for scripts::Claimed {
            entry,
            deliveries,
            fields,
        } in claimed
        {
            match Delivery::parse(entry.clone(), deliveries, &fields) {
                Some(d) => out.push(d),
                None => self.send(Done::skip(entry, String::new(), String::new())),
            }
        }
        if !out.is_empty() {
            debug!(count = out.len(), "claimed runs for another attempt");
        }
        Ok((next, out))
    }

    /// Runs a batch of entries this consumer now owns: as many at once as there are free
    /// slots, waiting for slots for the rest (held and heartbeated meanwhile, never dropped).
    async fn dispatch_with_wait(self: Arc<Self>, mut batch: Vec<Delivery>) {
        self.hold(&batch);
        while !batch.is_empty() {
            let mut permits = Vec::new();
            match self.sem.clone().acquire_owned().await {
                Ok(p) => permits.push(p),
                Err(_) => return,
            }
            while permits.len() < batch.len() {
                match self.sem.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let now: Vec<Delivery> = batch.drain(..permits.len()).collect();
            self.clone().dispatch(now, permits).await;
        }
    }

    fn hold(&self, batch: &[Delivery]) {
        if let Ok(mut m) = self.inflight.lock() {
            for d in batch {
                m.entry(d.entry.clone()).or_insert_with(|| InFlight {
                    run: d.run.clone(),
                    cancel: CancellationToken::new(),
                    attempt: d.attempt,
                    started: None,
                    marked: d.attempt > 1,
                    finished: false,
                });
            }
        }
    }

    /// Marks a batch running and starts an execution per run.
    async fn dispatch(self: Arc<Self>, batch: Vec<Delivery>, permits: Vec<OwnedSemaphorePermit>) {
        self.hold(&batch);
        // Definitions first (one read for all the misses): a run whose job was deleted is
        // acknowledged, not run.
        let wanted: Vec<(&str, u64)> = batch.iter().map(|d| (d.job.as_str(), d.version)).collect();
        let defs = match self.cache.get_many(&self.redis, &self.group, &wanted).await {
            Ok(defs) => defs,
            Err(e) => {
                warn!(error = %e, "cannot load job definitions; the runs stay pending for a retry");
                if let Ok(mut m) = self.inflight.lock() {
                    for d in &batch {
                        m.remove(&d.entry);
                    }
                }
                return;
            }
        };
        let mut ready = Vec::with_capacity(batch.len());
        for d in batch {
            match defs.get(&d.job).cloned().flatten() {
                Some(job) => ready.push((d, job)),
                None => {
                    debug!(run = %d.run, job = %d.job, "job deleted; acknowledging its run");
                    self.send(Done::skip(d.entry, d.run, d.job));
                }
            }
        }
        let verdicts = match self.mark_started(&ready).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot mark runs started; they stay pending for a retry");
                self.release(&ready);
                return;
            }
        };
        let mut permits = permits.into_iter();
        for ((d, job), verdict) in ready.into_iter().zip(verdicts) {
            if verdict == scripts::StartVerdict::Poison {
                warn!(run = %d.run, attempt = d.attempt, "its executors died during {POISON_AFTER} attempts; giving up on the run");
                self.send(Done {
                    outcome: "failed",
                    attempt: d.attempt,
                    max_attempts: job.spec.max_attempts,
                    retry_delay_ms: None,
                    code: code::FAILED,
                    error: format!(
                        "its executors stopped during {POISON_AFTER} attempts; not running it again"
                    ),
                    guarded: job.spec.concurrency != ConcurrencyPolicy::Allow,
                    ..Done::skip(d.entry, d.run, d.job)
                });
                continue;
            }
            if verdict != scripts::StartVerdict::Start {
                debug!(run = %d.run, ?verdict, "run not startable; acknowledging");
                self.send(Done::skip(d.entry, d.run, d.job));
                continue;
            }
            let Some(permit) = permits.next() else {
                break;
            };
            let span = info_span!("run", job.id = %d.job, job.group = %self.group, run.id = %d.run, run.attempt = d.attempt);
            tokio::spawn(self.clone().execute(d, job, permit).instrument(span));
        }
    }

    /// Forgets entries this worker will not run now (they stay pending in Redis).
    fn release(&self, ready: &[(Delivery, Arc<CachedJob>)]) {
        if let Ok(mut m) = self.inflight.lock() {
            for (d, _) in ready {
                m.remove(&d.entry);
            }
        }
    }

    /// Checks and marks runs `running` before they start. Only for attempts after the first
    /// (retries and runs reclaimed from dead workers): their history and the poison check
    /// need it. A first attempt starts at once; [`Engine::mark_loop`] marks it if it lasts.
    async fn mark_started(
        &self,
        ready: &[(Delivery, Arc<CachedJob>)],
    ) -> dotjob_shared::Result<Vec<scripts::StartVerdict>> {
        if ready.iter().all(|(d, _)| d.attempt <= 1) {
            return Ok(vec![scripts::StartVerdict::Start; ready.len()]);
        }
        let runs: Vec<(&str, u32)> = ready
            .iter()
            .map(|(d, _)| (d.run.as_str(), d.attempt))
            .collect();
        let mut c = self.redis.conn().await?;
        let start = scripts::Start {
            worker: &self.id,
            poison_after: POISON_AFTER,
            runs: &runs,
        };
        Ok(start.call(&mut c, &self.prefix).await?.verdicts)
    }

    fn send(&self, done: Done) {
        if self.done_tx.send(done).is_err() {
            warn!("completion channel closed");
        }
    }

    async fn execute(
        self: Arc<Self>,
        mut d: Delivery,
        job: Arc<CachedJob>,
        permit: OwnedSemaphorePermit,
    ) {
        // A run fired ahead starts at its tick on the Redis clock. Everything is prepared
        // before that instant and the handler's own task waits for it, so at the tick only
        // timers fire and handlers start.
        let started = match self.redis_now() {
            Some(now) if d.at > now => self.instant_of(d.at),
            _ => Instant::now(),
        };
        // One token per run: a cancel request, the deadline and a hard shutdown all cancel it,
        // and the handler sees it through its context.
        let cancel = self
            .inflight
            .lock()
            .ok()
            .and_then(|mut m| {
                m.get_mut(&d.entry).map(|f| {
                    f.started = Some(started);
                    f.cancel.clone()
                })
            })
            .unwrap_or_default();
        let log = Arc::new(Mutex::new(LogBuffer::default()));
        let ctx = RunContext {
            run_id: d.run.as_str().into(),
            job_id: d.job.as_str().into(),
            job_name: job.name.clone(),
            group: self.group_name.clone(),
            attempt: d.attempt,
            max_attempts: job.spec.max_attempts,
            scheduled_at_ms: d.at,
            params: d.params.take().map_or_else(|| job.params.clone(), Arc::new),
            shard: d.shard.take(),
            executor: self.id_name.clone(),
            cancel: cancel.clone(),
            log: log.clone(),
        };
        let deadline = started + Duration::from_millis(job.spec.timeout_ms);
        let outcome: Result<Value, (&'static str, HandlerError)> = match self
            .handlers
            .get(&job.spec.handler)
        {
            None => Err((
                {
                    tokio::time::sleep_until(started.into()).await;
                    "failed"
                },
                HandlerError::retry(format!(
                    "no handler `{}` on worker {} (it has: {})",
                    job.spec.handler,
                    self.id,
                    self.handler_names()
                )),
            )),
            Some(h) => {
                // The handler runs in a task of its own: a panic is caught, and a handler that
                // never yields still cannot stop this task from recording its timeout.
                let h = h.clone();
                let mut task = tokio::spawn(async move {
                    tokio::time::sleep_until(started.into()).await;
                    h.call(ctx).await
                });
                loop {
                    let wake = (Instant::now() + LOG_FLUSH).min(deadline);
                    tokio::select! {
                        biased;
                        r = &mut task => break match r {
                            Ok(Ok(v)) => Ok(v),
                            Ok(Err(e)) if e.is_retryable() => Err(("failed", e)),
                            Ok(Err(e)) => Err(("fatal", e)),
                            Err(je) if je.is_panic() => {
                                let p = je.into_panic();
                                let msg = p.downcast_ref::<&str>().map(|s| (*s).to_owned())
                                    .or_else(|| p.downcast_ref::<String>().cloned())
                                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                                Err(("failed", HandlerError::retry(format!("handler panicked: {msg}"))))
                            }
                            Err(_) => Err(("cancelled", HandlerError::fatal("handler task aborted"))),
                        },
                        () = cancel.cancelled() => {
                            task.abort();
                            break Err(("cancelled", HandlerError::fatal("cancelled on request")));
                        }
                        () = self.hard.cancelled() => {
                            cancel.cancel();
                            task.abort();
                            break Err(("handback", HandlerError::retry("worker shut down")));
                        }
                        () = tokio::time::sleep_until(wake.into()) => {
                            if Instant::now() >= deadline {
                                cancel.cancel();
                                task.abort();
                                break Err(("timed_out", HandlerError::retry(format!("timed out after {} ms", job.spec.timeout_ms))));
                            }
                            Box::pin(self.flush_log(&d.run, &log)).await;
                        }
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        // Recording waits behind handlers that are due to start now (many runs share a tick):
        // the runtime would otherwise run this task first, delaying their start.
        tokio::task::yield_now().await;
        if outcome.is_ok() && !job.spec.children.is_empty() {
            // Before this run is recorded and acknowledged: a worker dying in between re-runs
            // the parent, which fires the children again (at least once, never lost).
            self.fire_children(&d.run, &job.spec.children, &log).await;
        }
        if let Ok(mut m) = self.inflight.lock()
            && let Some(f) = m.get_mut(&d.entry)
        {
            f.finished = true;
        }
        Box::pin(self.flush_log(&d.run, &log)).await;
        drop(permit);
        let (outcome, code, result, error) = match outcome {
            Ok(Value::Null) => ("succeeded", code::OK, String::new(), String::new()),
            Ok(v) => {
                let mut s = serde_json::to_string(&v).unwrap_or_default();
                if s.len() > RESULT_MAX_BYTES {
                    s = serde_json::json!({"truncated": true, "bytes": s.len()}).to_string();
                }
                ("succeeded", code::OK, s, String::new())
            }
            Err((kind, e)) => {
                let code = if kind == "timed_out" {
                    code::TIMEOUT
                } else {
                    code::FAILED
                };
                (kind, code, String::new(), e.message().to_owned())
            }
        };
        match outcome {
            "succeeded" => debug!(duration_ms, "run succeeded"),
            "handback" => {}
            _ => info!(outcome, duration_ms, error = %error, "run attempt did not succeed"),
        }
        let retry_delay_ms = matches!(outcome, "failed" | "timed_out").then(|| {
            job.spec
                .backoff
                .delay_ms(d.attempt + 1, rand::random_range(-1.0..=1.0))
        });
        self.durations.record(duration_ms as f64 / 1_000.0);
        self.send(Done {
            entry: d.entry,
            run: d.run,
            job: d.job,
            outcome,
            attempt: d.attempt,
            max_attempts: job.spec.max_attempts,
            retry_delay_ms,
            code,
            duration_ms,
            result,
            error,
            guarded: job.spec.concurrency != ConcurrencyPolicy::Allow,
            started: Some(started),
        });
    }

    fn handler_names(&self) -> String {
        let mut v: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.join(", ")
    }

    /// Enqueues a succeeded run's child jobs (trigger `child`, `parent_run` = this run) and
    /// notes each outcome in the run's log.
    async fn fire_children(&self, run: &str, children: &[String], log: &Mutex<LogBuffer>) {
        let store = dotjob_shared::Store::new(self.redis.clone());
        for child in children {
            let line = match store.trigger(child, None, "child", Some(run)).await {
                Ok(child_run) => format!("fired child job {child}: run {child_run}"),
                Err(e) => {
                    warn!(run, child = %child, error = %e, "cannot fire a child job");
                    format!("child job {child} not fired: {e}")
                }
            };
            if let Ok(mut l) = log.lock() {
                l.push(&line);
            }
        }
    }

    async fn flush_log(&self, run: &str, log: &Mutex<LogBuffer>) {
        let lines = match log.lock() {
            Ok(mut b) if !b.pending.is_empty() => std::mem::take(&mut b.pending),
            _ => return,
        };
        let key = self.redis.keys().run_log(&self.group, run);
        let res: dotjob_shared::Result<()> = async {
            let mut c = self.redis.conn().await?;
            redis::pipe()
                .rpush(&key, &lines)
                .ignore()
                .pexpire(&key, self.settings.log_ttl.as_millis() as i64)
                .ignore()
                .query_async::<()>(&mut c)
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            warn!(error = %e, lines = lines.len(), "could not store log lines");
        }
    }

    async fn complete_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Done>) {
        let mut retry = Retry::new();
        let never = CancellationToken::new();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < COMPLETE_BATCH {
                match rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            let (handback, record): (Vec<Done>, Vec<Done>) =
                batch.into_iter().partition(|d| d.outcome == "handback");
            loop {
                match self.record(&record, &handback).await {
                    Ok(()) => {
                        retry.reset();
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, count = record.len(), "cannot record finished runs; retrying");
                        retry.wait(&never).await;
                    }
                }
            }
            if let Ok(mut m) = self.inflight.lock() {
                for d in record.iter().chain(&handback) {
                    m.remove(&d.entry);
                }
            }
        }
    }

    async fn record(&self, record: &[Done], handback: &[Done]) -> dotjob_shared::Result<()> {
        let mut c = self.redis.conn().await?;
        if !record.is_empty() {
            let attempts: Vec<scripts::Attempt<'_>> = record
                .iter()
                .filter_map(|d| {
                    let Ok(outcome) = d.outcome.parse() else {
                        // Left pending: another attempt follows the lease.
                        warn!(run = %d.run, outcome = d.outcome, "not an attempt outcome");
                        return None;
                    };
                    Some(scripts::Attempt {
                        entry: &d.entry,
                        run: &d.run,
                        job: &d.job,
                        outcome,
                        attempt: d.attempt,
                        max_attempts: d.max_attempts,
                        retry_delay_ms: d.retry_delay_ms,
                        code: d.code,
                        duration_ms: d.duration_ms,
                        result: &d.result,
                        error: &d.error,
                        guarded: d.guarded,
                        started_ago_ms: d.started.map_or(0, |t| t.elapsed().as_millis() as u64),
                    })
                })
                .collect();
            let complete = scripts::Complete {
                worker: &self.id,
                attempts: &attempts,
            };
            for recorded in complete.call(&mut c, &self.prefix).await? {
                let status = match recorded {
                    scripts::Recorded::Final(status) => status.as_str(),
                    scripts::Recorded::Retry => "retry",
                    scripts::Recorded::Stale | scripts::Recorded::Skipped => continue,
                };
                self.runs_counter(status).increment(1);
            }
        }
        if !handback.is_empty() {
            let runs: Vec<(&str, &str)> = handback
                .iter()
                .map(|d| (d.entry.as_str(), d.run.as_str()))
                .collect();
            let handback_call = scripts::Handback {
                consumer: &self.id,
                idle_ms: self.settings.lease.as_millis() as u64 * 10,
                runs: &runs,
            };
            handback_call.call(&mut c, &self.prefix).await?;
            info!(count = handback.len(), "handed unfinished runs back");
        }
        Ok(())
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let entries: Vec<(String, String)> = self
                .inflight
                .lock()
                .map(|m| m.iter().map(|(e, f)| (e.clone(), f.run.clone())).collect())
                .unwrap_or_default();
            match self.touch(&entries).await {
                Ok(disabled) => {
                    let was = self.disabled.swap(disabled, Ordering::Relaxed);
                    if was != disabled {
                        info!(worker = %self.id, disabled, "executor state changed");
                    }
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            metrics::gauge!("dotjob_worker_inflight", "group" => self.group.clone())
                .set(entries.len() as f64);
        }
    }

    /// Marks first attempts `running` once they have run for [`MARK_AFTER`], in batches.
    async fn mark_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(MARK_AFTER);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let due: Vec<(String, String, u32, u64)> = self
                .inflight
                .lock()
                .map(|m| {
                    m.iter()
                        .filter(|(_, f)| !f.marked && !f.finished)
                        .filter_map(|(e, f)| {
                            let ago = f.started?.elapsed();
                            (ago >= MARK_AFTER).then(|| {
                                (e.clone(), f.run.clone(), f.attempt, ago.as_millis() as u64)
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if due.is_empty() {
                continue;
            }
            let res: dotjob_shared::Result<()> = async {
                let mut c = self.redis.conn().await?;
                for chunk in due.chunks(512) {
                    let runs: Vec<(&str, u32, u64)> = chunk
                        .iter()
                        .map(|(_, run, attempt, ago)| (run.as_str(), *attempt, *ago))
                        .collect();
                    scripts::MarkRunning {
                        worker: &self.id,
                        runs: &runs,
                    }
                    .call(&mut c, &self.prefix)
                    .await?;
                }
                Ok(())
            }
            .await;
            match res {
                Ok(()) => {
                    if let Ok(mut m) = self.inflight.lock() {
                        for (e, ..) in &due {
                            if let Some(f) = m.get_mut(e) {
                                f.marked = true;
                            }
                        }
                    }
                }
                Err(e) => debug!(error = %e, "cannot mark runs running yet"),
            }
        }
    }

    /// Touches in-flight entries; returns whether this executor is disabled.
    async fn touch(&self, entries: &[(String, String)]) -> dotjob_shared::Result<bool> {
        let mut c = self.redis.conn().await?;
        let mut disabled = false;
        // Chunked so one call stays short; the first chunk also carries an empty list.
        let chunks: Vec<&[(String, String)]> = if entries.is_empty() {
            vec![&[]]
        } else {
            entries.chunks(512).collect()
        };
        for chunk in chunks {
            let touched = scripts::Touch {
                consumer: &self.id,
                held: chunk,
            }
            .call(&mut c, &self.prefix)
            .await?;
            // Taken as read when the reply arrived: a lower bound of the Redis clock, so a
            // run waiting for its tick never starts early (at worst a round trip late).
            self.set_clock(touched.now_ms, Instant::now());
            disabled = touched.disabled;
            for run in touched.cancel {
                self.cancel_run(&run);
            }
            if !touched.not_ours.is_empty() {
                debug!(
                    count = touched.not_ours.len(),
                    "in-flight entries are no longer ours (reclaimed or finished elsewhere)"
                );
            }
        }
        crate::registry::beat(self, &mut c).await?;
        Ok(disabled)
    }

    async fn listen_loop(self: Arc<Self>) {
        let mut retry = Retry::new();
        let channel = self.redis.keys().events();
        loop {
            let mut ps = match self.redis.pubsub().await {
                Ok(ps) => ps,
                Err(e) => {
                    debug!(error = %e, "event listener cannot connect; retrying");
                    retry.wait(&self.stop).await;
                    continue;
                }
            };
            if let Err(e) = ps.subscribe(&channel).await {
                debug!(error = %e, "subscribe failed; retrying");
                retry.wait(&self.stop).await;
                continue;
            }
            retry.reset();
            let mut msgs = ps.on_message();
            while let Some(msg) = msgs.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(Event::Job { group, id, .. }) if group == self.group => {
                        self.cache.invalidate(&id);
                    }
                    Ok(Event::Cancel { group, run }) if group == self.group => {
                        self.cancel_run(&run);
                    }
                    _ => {}
                }
            }
            debug!("event stream ended; resubscribing");
        }
    }

    fn cancel_run(&self, run: &str) {
        if let Ok(m) = self.inflight.lock() {
            for f in m.values().filter(|f| f.run == run) {
                info!(run, "cancelling run on request");
                f.cancel.cancel();
            }
        }
    }
}
