//! Connections to Redis.
//!
//! Ordinary commands go through a deadpool-redis pool of multiplexed connections (checked
//! out per batch of work: every checkout costs a PING). Blocking reads (`XREADGROUP BLOCK`)
//! and pub/sub get connections of their own, never a shared multiplexed one, with a reply
//! timeout longer than the block (redis-rs 1.x defaults to 500 ms, shorter than our BLOCK).
//!
//! On a Redis Cluster (`REDIS_CLUSTER_URLS`) the same handle holds one cluster connection
//! instead of the pool ([`crate::cluster::ClusterConn`]: multiplexed per node, follows
//! `MOVED`/`ASK` and failovers, splits pipelines per hash tag); [`Conn`] and [`Shared`] are
//! enums over both, so the code above them is the same for both. A blocking read gets a
//! cluster connection of its own whose reply timeout is longer than its block; pub/sub a
//! plain connection to one seed node after another (classic `PUBLISH` reaches every node of
//! a cluster). Every client is built by [`client_for`] from a URL, the one place where TLS
//! and ACL settings plug in.
//!
//! With the durable setting ([`crate::config::WaitReplicas`]) the firing and completion
//! scripts go through [`Redis::durable`]: the `EVALSHA` and a `WAIT` are sent as one
//! pipeline, so the `WAIT` reaches the node that ran the script.
//!
//! Every handle of one process shares a [`Link`]: whether Redis is reachable, so a lost
//! connection is logged once with its error, then at most once per backoff step with the
//! attempt count, and "reconnected after N s" when it answers again. The loops that retry a
//! failed round (scheduling, leases, claiming, heartbeats) report through
//! [`Redis::log_failure`]: an unreachable Redis is the link's to log, an out-of-memory one
//! is logged once per backoff step too, anything else as it comes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use crate::cluster::ClusterConn;
use crate::config::{RedisConfig, WaitReplicas};
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Handle to Redis: a connection pool (or a cluster connection), a client for dedicated
/// connections, and the key names.
#[derive(Clone)]
pub struct Redis {
    backend: Backend,
    keys: Keys,
    timeout: Duration,
    /// `WAIT` after firing and completing (the durable setting), if asked for.
    wait: Option<WaitReplicas>,
    /// Reachability, shared by the clones of this handle.
    link: Arc<Link>,
}

/// A single Redis or a cluster.
#[derive(Clone)]
enum Backend {
    Single(Arc<SingleBackend>),
    Cluster(Arc<ClusterBackend>),
}

/// The single-Redis side of a [`Redis`] handle.
struct SingleBackend {
    pool: Pool,
    client: redis::Client,
}

/// The cluster side of a [`Redis`] handle.
struct ClusterBackend {
    /// Seed node URLs, as configured.
    urls: Vec<String>,
    client: ClusterClient,
    /// The process's cluster connection, made on first use and kept (it reconnects itself).
    shared: tokio::sync::Mutex<Option<ClusterConn>>,
    /// The seed node the next pub/sub connection tries first (moves on after a failure).
    next_node: AtomicUsize,
    /// TLS files and credentials, for the per-node pub/sub clients.
    secure: crate::secure::Secure,
}

/// A client for one node, with the process's TLS files and ACL credentials
/// ([`crate::secure::client`], the one place where they meet a connection).
pub fn client_for(url: &str, secure: &crate::secure::Secure) -> Result<redis::Client> {
    crate::secure::client(url, secure)
}

/// A cluster client for `urls` (each checked by [`client_for`]), with the same TLS files and
/// credentials for every node.
fn cluster_client(
    urls: &[String],
    timeout: Duration,
    secure: &crate::secure::Secure,
) -> Result<ClusterClient> {
    for u in urls {
        client_for(u, secure)?;
    }
    secure
        .cluster_builder(urls)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .map_err(|e| Error::Config(format!("REDIS_CLUSTER_URLS: {e}")))
}

/// An outage in progress: since when, how many failed attempts, when it is logged next.
#[derive(Debug)]
struct Outage {
    since: Instant,
    attempts: u64,
    next_log: Instant,
    step: Duration,
}

/// Refusals for lack of memory (`OOM`): since when, how many, when they are logged next.
#[derive(Debug)]
struct Full {
    since: Instant,
    last: Instant,
    refusals: u64,
    next_log: Instant,
    step: Duration,
}

/// An OOM episode ends when no refusal came for this long.
const FULL_EPISODE_GAP: Duration = Duration::from_secs(30);

/// Whether Redis is reachable, written by every connection attempt.
#[derive(Debug, Default)]
pub struct Link {
    outage: Mutex<Option<Outage>>,
    /// Out-of-memory refusals seen by the retry loops.
    full: Mutex<Option<Full>>,
    /// When the last outage ended: an attempt begun before it that fails after it is stale.
    up_since: Mutex<Option<Instant>>,
    /// Woken when an outage ends (the eviction guard checks the server again then).
    reconnected: tokio::sync::Notify,
}

/// Longest pause between two log lines of one outage.
const MAX_LOG_STEP: Duration = Duration::from_secs(60);

impl Link {
    /// Notes a failed attempt: logs the first one with its error, then at most once per
    /// backoff step (1 s, 2 s, 4 s … 60 s) with the attempt count.
    fn failed(&self, e: &Error, started: Instant) {
        metrics::counter!(crate::metrics::REDIS_ERRORS, "kind" => "connect").increment(1);
        let Ok(mut o) = self.outage.lock() else {
            return;
        };
        let stale = self
            .up_since
            .lock()
            .is_ok_and(|u| u.is_some_and(|u| started < u));
        if o.is_none() && stale {
            return;
        }
        let now = Instant::now();
        match o.as_mut() {
            None => {
                tracing::warn!(error = %e, "lost the connection to Redis; retrying");
                *o = Some(Outage {
                    since: now,
                    attempts: 1,
                    next_log: now + Duration::from_secs(1),
                    step: Duration::from_secs(1),
                });
            }
            Some(out) => {
                out.attempts += 1;
                if now >= out.next_log {
                    out.step = (out.step * 2).min(MAX_LOG_STEP);
                    out.next_log = now + out.step;
                    tracing::warn!(
                        error = %e,
                        attempts = out.attempts,
                        down_s = out.since.elapsed().as_secs(),
                        "Redis still unreachable"
                    );
                }
            }
        }
    }

    /// Notes a successful attempt begun at `started`: ends an outage with "reconnected
    /// after N s" (not an attempt begun before the outage: it says nothing about now).
    fn succeeded(&self, started: Instant) {
        let Ok(mut o) = self.outage.lock() else {
            return;
        };
        if o.as_ref().is_some_and(|out| started < out.since) {
            return;
        }
        if let Some(out) = o.take() {
            if let Ok(mut u) = self.up_since.lock() {
                *u = Some(Instant::now());
            }
            metrics::counter!(crate::metrics::REDIS_RECONNECTS).increment(1);
            let secs = out.since.elapsed().as_secs_f64();
            tracing::info!(
                attempts = out.attempts,
                "reconnected to Redis after {secs:.1} s"
            );
            self.reconnected.notify_waiters();
        }
    }

    /// Resolves when the next outage ends.
    pub fn reconnected(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.reconnected.notified()
    }

    /// Notes an `OOM` refusal: logs the first of an episode with its error, then at most
    /// once per backoff step (1 s, 2 s … 60 s) with the count; counts every refusal.
    fn refused_oom(&self, what: &str, e: &Error) {
        crate::metrics::redis_error(e);
        let Ok(mut f) = self.full.lock() else {
            return;
        };
        let now = Instant::now();
        match f.as_mut() {
            Some(full) if now.duration_since(full.last) < FULL_EPISODE_GAP => {
                full.refusals += 1;
                full.last = now;
                if now >= full.next_log {
                    full.step = (full.step * 2).min(MAX_LOG_STEP);
                    full.next_log = now + full.step;
                    tracing::warn!(
                        refusals = full.refusals,
                        full_s = full.since.elapsed().as_secs(),
                        "Redis is still out of memory; {what} keeps failing"
                    );
                }
            }
            _ => {
                tracing::warn!(
                    error = %e,
                    "Redis is out of memory (maxmemory reached) and refuses writes: {what} \
                     failed; retrying until memory is freed or maxmemory raised"
                );
                *f = Some(Full {
                    since: now,
                    last: now,
                    refusals: 1,
                    next_log: now + Duration::from_secs(1),
                    step: Duration::from_secs(1),
                });
            }
        }
    }

    /// Whether an outage is in progress.
    pub fn is_down(&self) -> bool {
        self.outage.lock().map(|o| o.is_some()).unwrap_or(false)
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

/// A connection for ordinary commands: pooled (single Redis) or the cluster connection.
pub enum Conn {
    /// Checked out of the pool.
    Pooled(deadpool_redis::Connection),
    /// A clone of the process's cluster connection.
    Cluster(ClusterConn),
}

/// A connection that can be cloned, to run several calls at once (e.g. one `fire.lua`
/// call in flight while the next is planned), or a dedicated one.
#[derive(Clone)]
pub enum Shared {
    /// A multiplexed connection to the single Redis.
    Single(MultiplexedConnection),
    /// A cluster connection.
    Cluster(ClusterConn),
}

impl Conn {
    /// A clonable handle on the same connection.
    pub fn shared(&self) -> Shared {
        match self {
            Self::Pooled(c) => Shared::Single(MultiplexedConnection::clone(c)),
            Self::Cluster(c) => Shared::Cluster(c.clone()),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection whose scripts are followed by `WAIT` (see [`Redis::durable`]).
pub struct Durable<'a, C> {
    inner: &'a mut C,
    wait: Option<WaitReplicas>,
}

impl<C: ConnectionLike + Send> ConnectionLike for Durable<'_, C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let Some(wait) = self.wait.filter(|_| is_script_call(cmd)) else {
            return self.inner.req_packed_command(cmd);
        };
        Box::pin(async move {
            let mut p = redis::pipe();
            p.add_command(cmd.clone())
                .cmd("WAIT")
                .arg(wait.replicas)
                .arg(wait.timeout.as_millis() as u64);
            let mut replies = self.inner.req_packed_commands(&p, 0, 2).await?;
            let acks = replies.pop();
            let reply = replies.pop().unwrap_or(Value::Nil);
            if let Value::ServerError(e) = reply {
                return Err(e.into());
            }
            match acks {
                Some(Value::Int(n)) if n >= i64::from(wait.replicas) => {}
                other => {
                    metrics::counter!(crate::metrics::REDIS_WAIT_SHORT).increment(1);
                    tracing::debug!(acks = ?other, wanted = wait.replicas, "WAIT came back short");
                }
            }
            Ok(reply)
        })
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.inner.req_packed_commands(cmd, offset, count)
    }
    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// Whether `cmd` runs a script (`EVALSHA`/`EVAL`), the writes the durable setting covers.
fn is_script_call(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(redis::Arg::Simple(name))
        if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL"))
}

impl Redis {
    /// Builds the pool. Does not connect yet: a process may start before Redis does.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
        if !cfg.cluster.is_empty() {
            return Ok(Self {
                backend: Backend::Cluster(Arc::new(ClusterBackend {
                    urls: cfg.cluster.clone(),
                    client: cluster_client(&cfg.cluster, cfg.timeout, &cfg.secure)?,
                    shared: tokio::sync::Mutex::new(None),
                    next_node: AtomicUsize::new(0),
                    secure: cfg.secure.clone(),
                })),
                keys: Keys::new(cfg.prefix.clone()),
                timeout: cfg.timeout,
                wait: cfg.wait,
                link: Arc::default(),
            });
        }
        let client = crate::secure::client(&cfg.url, &cfg.secure)?;
        let conn_cfg = AsyncConnectionConfig::new()
            .set_response_timeout(Some(cfg.timeout))
            .set_connection_timeout(Some(cfg.timeout));
        let manager = Manager::new_with_config(client.get_connection_info().clone(), conn_cfg)
            .map_err(|e| Error::Config(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(32)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.timeout))
            .create_timeout(Some(cfg.timeout))
            .recycle_timeout(Some(cfg.timeout))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            backend: Backend::Single(Arc::new(SingleBackend { pool, client })),
            keys: Keys::new(cfg.prefix.clone()),
            timeout: cfg.timeout,
            wait: cfg.wait,
            link: Arc::default(),
        })
    }

    /// Whether this handle talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// `c` with the durable setting applied: a script call through it is followed by
    /// `WAIT` on the same node (a no-op wrapper when the setting is off).
    pub fn durable<'a, C: ConnectionLike + Send>(&self, c: &'a mut C) -> Durable<'a, C> {
        Durable {
            inner: c,
            wait: self.wait,
        }
    }

    /// The process's cluster connection, connecting on first use.
    async fn cluster_conn(&self, cl: &ClusterBackend) -> Result<ClusterConn> {
        let mut slot = cl.shared.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout * 2, cl.client.get_async_connection())
            .await
            .map_err(|_| timed_out("Redis Cluster connect timed out"))??;
        let c = ClusterConn::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `cmd` on every master (the single Redis: on it); one reply per node address.
    pub async fn on_masters(&self, cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        match &self.backend {
            Backend::Single(_) => {
                let mut c = self.conn().await?;
                let v: Value = cmd.query_async(&mut c).await?;
                Ok(vec![(String::new(), v)])
            }
            Backend::Cluster(cl) => Ok(self.cluster_conn(cl).await?.on_masters(cmd).await?),
        }
    }

    /// Key names under this prefix.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A pooled connection for ordinary commands.
    pub async fn conn(&self) -> Result<Conn> {
        let started = Instant::now();
        let c = match &self.backend {
            Backend::Single(s) => s.pool.get().await.map(Conn::Pooled).map_err(Error::from),
            Backend::Cluster(cl) => {
                let c = self.cluster_conn(cl).await;
                if let Ok(c) = &c
                    && self.link.is_down()
                {
                    // The cluster connection is kept, not checked out with a PING: while an
                    // outage is noted, a PING of every master decides whether it is over
                    // (the connection is handed out either way).
                    let ping = ClusterConn::clone(c).on_masters(&redis::cmd("PING")).await;
                    if ping
                        .is_ok_and(|r| r.iter().all(|(_, v)| !matches!(v, Value::ServerError(_))))
                    {
                        self.link.succeeded(started);
                    }
                    return Ok(Conn::Cluster(c.clone()));
                }
                c.map(Conn::Cluster)
            }
        };
        self.watch(started, c)
    }

    /// Whether Redis was unreachable at the last attempt.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Logs that `what` (e.g. "scheduling round") failed with `e`, without flooding the log
    /// from a loop that retries: a lost connection is logged by the link (once, then once
    /// per backoff step), so here only at debug level; an `OOM` refusal once per backoff
    /// step (and counted in `dotjob_redis_errors_total{kind="oom"}`); anything else as a
    /// warning each time.
    pub fn log_failure(&self, what: &str, e: &Error) {
        if e.is_oom() {
            self.link.refused_oom(what, e);
        } else if e.is_unavailable() {
            // The connection attempts note (and log) the outage; on a cluster the kept
            // connection is not re-checked per checkout, so the failure itself notes it.
            if self.is_cluster() {
                self.link.failed(e, Instant::now());
            }
            tracing::debug!(error = %e, "{what} failed: Redis is unreachable");
        } else {
            tracing::warn!(error = %e, "{what} failed; retrying");
        }
    }

    /// Notes a connection attempt's result in the link state.
    fn watch<T>(&self, started: Instant, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.link.succeeded(started),
            Err(e) => self.link.failed(e, started),
        }
        r
    }

    /// `PING` with the handle's timeout; records the round trip.
    pub async fn ping(&self) -> Result<Duration> {
        let sent = Instant::now();
        let mut c = self.conn().await?;
        let r: Result<String> =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut c))
                .await
                .map_err(|_| timed_out("PING timed out"))?
                .map_err(Error::from);
        r?;
        let rtt = sent.elapsed();
        metrics::histogram!(crate::metrics::REDIS_ROUNDTRIP).record(rtt.as_secs_f64());
        Ok(rtt)
    }

    /// A connection of its own for a blocking command that blocks up to `block` (on a
    /// cluster: a cluster connection of its own, one connection per node, with that reply
    /// timeout).
    pub async fn dedicated(&self, block: Duration) -> Result<Shared> {
        let started = Instant::now();
        let c = match &self.backend {
            Backend::Single(s) => {
                let cfg = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(block + self.timeout))
                    .set_connection_timeout(Some(self.timeout));
                s.client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map(Shared::Single)
                    .map_err(Error::from)
            }
            Backend::Cluster(cl) => {
                let cfg = ClusterConfig::new()
                    .set_response_timeout(block + self.timeout)
                    .set_connection_timeout(self.timeout);
                match tokio::time::timeout(
                    self.timeout * 2,
                    cl.client.get_async_connection_with_config(cfg),
                )
                .await
                {
                    Ok(r) => r
                        .map(|c| Shared::Cluster(ClusterConn::new(c)))
                        .map_err(Error::from),
                    Err(_) => Err(timed_out("Redis Cluster connect timed out")),
                }
            }
        };
        self.watch(started, c)
    }

    /// A pub/sub connection (on a cluster: to the first seed node that answers, starting
    /// after the one used last, so a dead node is skipped on the next reconnect).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let connect = |client: redis::Client| async move {
            tokio::time::timeout(self.timeout, client.get_async_pubsub())
                .await
                .map_err(|_| timed_out("pub/sub connect timed out"))?
                .map_err(Error::from)
        };
        match &self.backend {
            Backend::Single(s) => connect(s.client.clone()).await,
            Backend::Cluster(cl) => {
                let n = cl.urls.len();
                let first = cl.next_node.fetch_add(1, Ordering::Relaxed);
                let mut last = Err(timed_out("no Redis Cluster node to subscribe on"));
                for i in 0..n {
                    let url = &cl.urls[(first + i) % n];
                    last = connect(client_for(url, &cl.secure)?).await;
                    if last.is_ok() {
                        break;
                    }
                }
                last
            }
        }
    }

    /// Whether Redis (any master of a cluster) is at its `maxmemory` (it then refuses
    /// writes with `OOM`), from `INFO memory`; `false` without a limit.
    pub async fn memory_full(&self) -> Result<bool> {
        let replies = self.on_masters(redis::cmd("INFO").arg("memory")).await?;
        Ok(replies.into_iter().any(|(_, v)| {
            redis::from_redis_value::<String>(v).is_ok_and(|info| memory_full(&info))
        }))
    }

    /// The Redis server clock, in ms; records the round trip.
    pub async fn now_ms(&self) -> Result<i64> {
        let sent = Instant::now();
        let mut c = self.conn().await?;
        let now = now_ms(&mut c).await?;
        metrics::histogram!(crate::metrics::REDIS_ROUNDTRIP).record(sent.elapsed().as_secs_f64());
        Ok(now)
    }
}

/// Whether an `INFO memory` text shows `used_memory` at or over a set `maxmemory`.
fn memory_full(info: &str) -> bool {
    let field = |name: &str| {
        info.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    match (field("used_memory"), field("maxmemory")) {
        (Some(used), Some(max)) => max > 0 && used >= max,
        _ => false,
    }
}

/// A timeout as a Redis error.
fn timed_out(what: &'static str) -> Error {
    Error::Redis(redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        what,
    )))
}

/// The Redis server clock, in ms (`TIME`, plus the test clock offset if one is set).
pub async fn now_ms<C: redis::aio::ConnectionLike + Send>(c: &mut C) -> Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(c).await?;
    Ok(s * 1_000 + us / 1_000 + crate::scripts::clock_offset_ms())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn attempts_begun_before_a_change_do_not_flip_the_link() {
        let link = super::Link::default();
        let e = super::timed_out("test");
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        link.failed(&e, Instant::now());
        assert!(link.is_down());
        // A checkout begun before the outage that completes after it says nothing.
        link.succeeded(before);
        assert!(link.is_down());
        let during = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        link.succeeded(Instant::now());
        assert!(!link.is_down());
        // An attempt begun during the outage that fails after the reconnection is stale.
        link.failed(&e, during);
        assert!(!link.is_down());
        link.failed(&e, Instant::now());
        assert!(link.is_down());
    }

    #[test]
    fn memory_is_full_only_at_a_set_limit() {
        let info = |used: u64, max: u64| {
            format!("# Memory\r\nused_memory:{used}\r\nused_memory_human:1M\r\nmaxmemory:{max}\r\n")
        };
        assert!(super::memory_full(&info(2_000, 1_000)));
        assert!(!super::memory_full(&info(500, 1_000)));
        assert!(!super::memory_full(&info(5_000, 0)));
        assert!(!super::memory_full(""));
    }
}
