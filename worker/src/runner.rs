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

use dotjob_shared::Store;
use dotjob_shared::conn::Redis;
use dotjob_shared::events::Event;
use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_shared::model::job::{ConcurrencyPolicy, JobSpec};
use dotjob_shared::model::run::code;
use dotjob_shared::scripts;
use futures::StreamExt;
use redis::Value as RValue;
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cache::JobCache;
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
    fn parse(entry: String, attempt: u32, fields: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            run: fields.get("run")?.clone(),
            job: fields.get("job")?.clone(),
            version: fields.get("v")?.parse().ok()?,
            at: fields.get("at").and_then(|a| a.parse().ok()).unwrap_or(0),
            params: fields.get("p").and_then(|p| serde_json::from_str(p).ok()),
            shard: match (fields.get("shard"), fields.get("shards")) {
                (Some(i), Some(n)) => Some((
                    i.parse().ok()?,
                    n.parse().ok()?,
                    fields
                        .get("sp")
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or(Value::Null),
                )),
                _ => None,
            },
            entry,
            attempt,
        })
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
        }
    }
}

/// A run this worker holds.
struct InFlight {
    run: String,
    /// Cancelled by a cancel request for this run.
    cancel: CancellationToken,
}

/// State shared by the worker's tasks.
pub(crate) struct Engine {
    pub(crate) redis: Redis,
    pub(crate) store: Store,
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

fn field_map(v: &RValue) -> HashMap<String, String> {
    let mut m = HashMap::new();
    match v {
        RValue::Array(items) => {
            for kv in items.chunks(2) {
                if let [k, v] = kv {
                    m.insert(to_string(k), to_string(v));
                }
            }
        }
        RValue::Map(pairs) => {
            for (k, v) in pairs {
                m.insert(to_string(k), to_string(v));
            }
        }
        _ => {}
    }
    m
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
            store: Store::new(redis.clone()),
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
        let mut tasks = vec![
            tokio::spawn(self.clone().read_loop()),
            tokio::spawn(self.clone().claim_loop()),
            tokio::spawn(self.clone().heartbeat_loop()),
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
                        let fields: HashMap<String, String> = e
                            .map
                            .iter()
                            .map(|(k, v)| (k.clone(), to_string(v)))
                            .collect();
                        match Delivery::parse(e.id.clone(), 1, &fields) {
                            Some(d) => batch.push(d),
                            None => {
                                warn!(entry = %e.id, "malformed stream entry; acknowledging it");
                                self.send(Done::skip(e.id, String::new(), String::new()));
                            }
                        }
                    }
                    self.clone().dispatch_with_wait(batch).await;
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
        let mut cursor = "0-0".to_owned();
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
            let autoclaim = cursor != "0-0" || last_autoclaim.elapsed() >= autoclaim_every;
            if autoclaim && cursor == "0-0" {
                last_autoclaim = Instant::now();
            }
            match self.claim_once(&cursor, free, autoclaim).await {
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
        cursor: &str,
        count: usize,
        autoclaim: bool,
    ) -> dotjob_shared::Result<(String, Vec<Delivery>)> {
        let mut c = self.redis.conn().await?;
        let (next, claimed, lost): (String, Vec<(String, u32, RValue)>, u64) = scripts::CLAIM
            .key(&self.prefix)
            .arg(&self.id)
            .arg(self.settings.lease.as_millis() as u64)
            .arg(count)
            .arg(cursor)
            .arg(if autoclaim { "1" } else { "0" })
            .invoke_async(&mut c)
            .await?;
        if lost > 0 {
            warn!(group = %self.group, lost, "stream entries were deleted while pending; runs recorded as lost");
            metrics::counter!("dotjob_runs_lost_total", "group" => self.group.clone())
                .increment(lost);
        }
        let mut out = Vec::with_capacity(claimed.len());
        for (entry, deliveries, fields) in claimed {
            match Delivery::parse(entry.clone(), deliveries.max(1), &field_map(&fields)) {
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
                });
            }
        }
    }

    /// Marks a batch running and starts an execution per run.
    async fn dispatch(self: Arc<Self>, batch: Vec<Delivery>, permits: Vec<OwnedSemaphorePermit>) {
        self.hold(&batch);
        // Definitions first: a run whose job was deleted is acknowledged, not run.
        let mut ready = Vec::with_capacity(batch.len());
        for d in batch {
            match self.job(&d).await {
                Some(Ok(job)) => ready.push((d, job)),
                Some(Err(())) => {} // Redis unreachable: left pending, reclaimed later
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
            if verdict == "poison" {
                warn!(run = %d.run, attempt = d.attempt, "its executors died during {POISON_AFTER} attempts; giving up on the run");
                self.send(Done {
                    outcome: "failed",
                    attempt: d.attempt,
                    max_attempts: job.max_attempts,
                    retry_delay_ms: None,
                    code: code::FAILED,
                    error: format!(
                        "its executors stopped during {POISON_AFTER} attempts; not running it again"
                    ),
                    guarded: job.concurrency != ConcurrencyPolicy::Allow,
                    ..Done::skip(d.entry, d.run, d.job)
                });
                continue;
            }
            if verdict != "ok" {
                debug!(run = %d.run, status = %verdict, "run not startable; acknowledging");
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
    fn release(&self, ready: &[(Delivery, Arc<JobSpec>)]) {
        if let Ok(mut m) = self.inflight.lock() {
            for (d, _) in ready {
                m.remove(&d.entry);
            }
        }
    }

    async fn job(&self, d: &Delivery) -> Option<Result<Arc<JobSpec>, ()>> {
        match self
            .cache
            .get(&self.store, &self.group, &d.job, d.version)
            .await
        {
            Ok(Some(j)) => Some(Ok(j)),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "cannot load job definition");
                if let Ok(mut m) = self.inflight.lock() {
                    m.remove(&d.entry);
                }
                Some(Err(()))
            }
        }
    }

    async fn mark_started(
        &self,
        ready: &[(Delivery, Arc<JobSpec>)],
    ) -> dotjob_shared::Result<Vec<String>> {
        if ready.is_empty() {
            return Ok(vec![]);
        }
        let mut inv = scripts::START.prepare_invoke();
        inv.key(&self.prefix).arg(&self.id).arg(POISON_AFTER);
        for (d, _) in ready {
            inv.arg(&d.run).arg(d.attempt);
        }
        let mut c = self.redis.conn().await?;
        let mut out: Vec<String> = inv.invoke_async(&mut c).await?;
        if !out.is_empty() {
            out.remove(0); // the Redis clock
        }
        Ok(out)
    }

    fn send(&self, done: Done) {
        if self.done_tx.send(done).is_err() {
            warn!("completion channel closed");
        }
    }

    async fn execute(
        self: Arc<Self>,
        d: Delivery,
        job: Arc<JobSpec>,
        permit: OwnedSemaphorePermit,
    ) {
        let cancel_req = self
            .inflight
            .lock()
            .ok()
            .and_then(|m| m.get(&d.entry).map(|f| f.cancel.clone()))
            .unwrap_or_default();
        let ctx_cancel = CancellationToken::new();
        let log = Arc::new(Mutex::new(LogBuffer::default()));
        let ctx = RunContext {
            run_id: d.run.as_str().into(),
            job_id: d.job.as_str().into(),
            job_name: job.name.as_str().into(),
            group: self.group.as_str().into(),
            attempt: d.attempt,
            max_attempts: job.max_attempts,
            scheduled_at_ms: d.at,
            params: Arc::new(d.params.clone().unwrap_or_else(|| job.params.clone())),
            shard: d.shard.clone(),
            executor: self.id.as_str().into(),
            cancel: ctx_cancel.clone(),
            log: log.clone(),
        };
        let started = Instant::now();
        let timeout = Duration::from_millis(job.timeout_ms);
        let outcome: Result<Value, (&'static str, HandlerError)> = match self
            .handlers
            .get(&job.handler)
        {
            None => Err((
                "failed",
                HandlerError::retry(format!(
                    "no handler `{}` on worker {} (it has: {})",
                    job.handler,
                    self.id,
                    self.handler_names()
                )),
            )),
            Some(h) => {
                let mut task = tokio::spawn(h.call(ctx));
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                let mut flush = tokio::time::interval(LOG_FLUSH);
                flush.tick().await;
                loop {
                    tokio::select! {
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
                        () = &mut deadline => {
                            ctx_cancel.cancel();
                            task.abort();
                            break Err(("timed_out", HandlerError::retry(format!("timed out after {} ms", job.timeout_ms))));
                        }
                        () = cancel_req.cancelled() => {
                            ctx_cancel.cancel();
                            task.abort();
                            break Err(("cancelled", HandlerError::fatal("cancelled on request")));
                        }
                        () = self.hard.cancelled() => {
                            ctx_cancel.cancel();
                            task.abort();
                            break Err(("handback", HandlerError::retry("worker shut down")));
                        }
                        _ = flush.tick() => self.flush_log(&d.run, &log).await,
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        self.flush_log(&d.run, &log).await;
        drop(permit);
        let (outcome, code, result, error) = match outcome {
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
            job.backoff
                .delay_ms(d.attempt + 1, rand::random_range(-1.0..=1.0))
        });
        metrics::histogram!("dotjob_run_duration_seconds", "group" => self.group.clone())
            .record(duration_ms as f64 / 1_000.0);
        self.send(Done {
            entry: d.entry,
            run: d.run,
            job: d.job,
            outcome,
            attempt: d.attempt,
            max_attempts: job.max_attempts,
            retry_delay_ms,
            code,
            duration_ms,
            result,
            error,
            guarded: job.concurrency != ConcurrencyPolicy::Allow,
        });
    }

    fn handler_names(&self) -> String {
        let mut v: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.join(", ")
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
            let mut inv = scripts::COMPLETE.prepare_invoke();
            inv.key(&self.prefix).arg(&self.id);
            for d in record {
                inv.arg(&d.entry)
                    .arg(&d.run)
                    .arg(&d.job)
                    .arg(d.outcome)
                    .arg(d.attempt)
                    .arg(d.max_attempts)
                    .arg(d.retry_delay_ms.map(|v| v.to_string()).unwrap_or_default())
                    .arg(d.code)
                    .arg(d.duration_ms)
                    .arg(&d.result)
                    .arg(&d.error)
                    .arg(if d.guarded { "1" } else { "0" });
            }
            let verdicts: Vec<String> = inv.invoke_async(&mut c).await?;
            for (d, v) in record.iter().zip(&verdicts) {
                let status = match (v.as_str(), d.outcome) {
                    ("final", "fatal") => "failed",
                    ("final", o) => o,
                    ("dead", _) => "dead",
                    ("retry", _) => "retry",
                    _ => continue,
                };
                metrics::counter!("dotjob_runs_total", "group" => self.group.clone(), "status" => status)
                    .increment(1);
            }
        }
        if !handback.is_empty() {
            let mut inv = scripts::HANDBACK.prepare_invoke();
            inv.key(&self.prefix)
                .arg(&self.id)
                .arg(self.settings.lease.as_millis() as u64 * 10);
            for d in handback {
                inv.arg(&d.entry).arg(&d.run);
            }
            let _: i64 = inv.invoke_async(&mut c).await?;
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
            let entries: Vec<String> = self
                .inflight
                .lock()
                .map(|m| m.keys().cloned().collect())
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

    /// Touches in-flight entries; returns whether this executor is disabled.
    async fn touch(&self, entries: &[String]) -> dotjob_shared::Result<bool> {
        let mut c = self.redis.conn().await?;
        let mut disabled = false;
        // Chunked so one call stays short; the first chunk also carries an empty list.
        let chunks: Vec<&[String]> = if entries.is_empty() {
            vec![&[]]
        } else {
            entries.chunks(512).collect()
        };
        for chunk in chunks {
            let (d, lost, cancel): (i64, Vec<String>, Vec<String>) = scripts::TOUCH
                .key(&self.prefix)
                .arg(&self.id)
                .arg(chunk)
                .invoke_async(&mut c)
                .await?;
            disabled = d == 1;
            for run in cancel {
                self.cancel_run(&run);
            }
            if !lost.is_empty() {
                debug!(
                    count = lost.len(),
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
