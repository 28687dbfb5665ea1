//! Connections to Redis.
//!
//! Ordinary commands go through a deadpool-redis pool of multiplexed connections (checked
//! out per batch of work: every checkout costs a PING). Blocking reads (`XREADGROUP BLOCK`)
//! and pub/sub get connections of their own, never a shared multiplexed one, with a reply
//! timeout longer than the block (redis-rs 1.x defaults to 500 ms, shorter than our BLOCK).
//!
//! Every handle of one process shares a [`Link`]: whether Redis is reachable, so a lost
//! connection is logged once with its error, then at most once per backoff step with the
//! attempt count, and "reconnected after N s" when it answers again. The loops that retry a
//! failed round (scheduling, leases, claiming, heartbeats) report through
//! [`Redis::log_failure`]: an unreachable Redis is the link's to log, an out-of-memory one
//! is logged once per backoff step too, anything else as it comes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Handle to Redis: a connection pool, a client for dedicated connections, and the key names.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    client: redis::Client,
    keys: Keys,
    timeout: Duration,
    /// Reachability, shared by the clones of this handle.
    link: Arc<Link>,
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

/// A pooled connection.
pub type Conn = deadpool_redis::Connection;

impl Redis {
    /// Builds the pool. Does not connect yet: a process may start before Redis does.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
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
            pool,
            client,
            keys: Keys::new(cfg.prefix.clone()),
            timeout: cfg.timeout,
            link: Arc::default(),
        })
    }

    /// Key names under this prefix.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A pooled connection for ordinary commands.
    pub async fn conn(&self) -> Result<Conn> {
        let started = Instant::now();
        self.watch(started, self.pool.get().await.map_err(Error::from))
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
            // The connection attempts note (and log) the outage.
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

    /// A connection of its own for a blocking command that blocks up to `block`.
    pub async fn dedicated(&self, block: Duration) -> Result<MultiplexedConnection> {
        let started = Instant::now();
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + self.timeout))
            .set_connection_timeout(Some(self.timeout));
        self.watch(
            started,
            self.client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(Error::from),
        )
    }

    /// A pub/sub connection.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        Ok(
            tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
                .await
                .map_err(|_| timed_out("pub/sub connect timed out"))??,
        )
    }

    /// Whether Redis is at its `maxmemory` (it then refuses writes with `OOM`), from
    /// `INFO memory`; `false` without a limit.
    pub async fn memory_full(&self) -> Result<bool> {
        let mut c = self.conn().await?;
        let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
        Ok(memory_full(&info))
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
