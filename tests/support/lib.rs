//! Test support for dotjob's end-to-end and fault tests, also used by the bench.
//!
//! - [`RedisServer`]: an isolated `redis-server` on a free port in a temp dir, killed on drop
//!   (restartable, optionally with AOF) for tests that stop or restart Redis;
//! - [`shared_redis`] + [`unique_prefix`]: the machine's Redis with a key prefix of the test's
//!   own, for tests that only need *a* Redis;
//! - [`binary`]: the scheduler and worker binaries, built on first use (debug for the tests,
//!   release for the bench);
//! - [`Proc`]: a dotjob binary as a child process, killed on drop, with `kill -9`, SIGTERM,
//!   SIGSTOP and SIGCONT; [`pid_of`] finds the process behind a replica or executor id;
//! - [`Spawned`]: a component running as a tokio task until stopped (or dropped), and
//!   [`InProcess`]: a scheduler run that way inside the test, on `127.0.0.1:0`;
//! - [`RedisCluster`]: a private Redis Cluster (N masters, R replicas each) on free ports;
//!   its comma-separated seed list goes wherever a Redis URL does;
//! - [`TlsRedis`]: a TLS-only `redis-server` with a generated CA, server and client
//!   certificate, for the TLS and ACL tests;
//! - [`Api`]: a small client of the admin API;
//! - [`wait_for`]: poll a condition with a deadline instead of sleeping.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

mod api;
mod cluster;
mod process;
mod redis_setup;
mod task;
mod tls;

pub use api::{Answer, Api};
pub use cluster::{RedisCluster, command_calls};
pub use process::{Proc, Profile, bin, binary, pid_of, spawn_scheduler, spawn_scheduler_built};
pub use redis_setup::{
    RedisServer, delete_prefix, raw_conn, redis_handle, shared_redis, unique_prefix,
};
pub use task::{InProcess, Shutdown, Spawned};
pub use tls::TlsRedis;

/// Logs of in-process components go to the test's captured output (shown on failure).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Ports handed out by [`free_port`] or taken by [`reserve_port`] in this process.
static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// Marks `port` as taken (e.g. a Redis Cluster node's bus port, +10000), so [`free_port`]
/// never hands it out; `false` if it was handed out already.
pub fn reserve_port(port: u16) -> bool {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    if given.contains(&port) {
        return false;
    }
    given.push(port);
    true
}

/// A free TCP port on 127.0.0.1, never handed out twice in this process: the suite's tests
/// run concurrently in one binary, and a port freed by one caller could otherwise be picked
/// again by another before the first binds it.
pub fn free_port() -> u16 {
    loop {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds since the Unix epoch on this host's clock (the same clock as a local Redis).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds of an RFC 3339 instant in a run or job.
pub fn ms(v: &serde_json::Value) -> i64 {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|| panic!("not an instant: {v}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_api_instants() {
        assert_eq!(
            super::ms(&serde_json::json!("1970-01-01T00:00:01.000Z")),
            1_000
        );
        assert_eq!(
            super::ms(&serde_json::json!("2026-11-20T23:59:52.000Z")),
            1_795_219_192_000
        );
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        // 2025-01-01T00:00:00Z: a broken clock reading (0, or seconds) fails this.
        assert!(super::now_ms() > 1_735_689_600_000);
    }
}
