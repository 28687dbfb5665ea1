//! Redis for tests: the machine's shared Redis with a key prefix of the test's own (for
//! tests that only need *a* Redis), or an isolated `redis-server` that a test may kill and
//! restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The machine's shared Redis (`DOTJOB_TEST_REDIS_URL`, default 127.0.0.1:6379).
pub fn shared_redis() -> String {
    std::env::var("DOTJOB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{:08x}", rand::random::<u32>())
}

/// A Redis handle for `url` and `prefix`.
pub fn redis_handle(url: &str, prefix: &str) -> dotjob_shared::Redis {
    let cfg = dotjob_shared::config::RedisConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(5),
        ..dotjob_shared::config::RedisConfig::default()
    };
    dotjob_shared::Redis::new(&cfg).expect("redis handle")
}

/// A plain connection for assertions (10 s reply timeout: redis-rs defaults to 500 ms,
/// too short for large reads).
pub async fn raw_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let cfg =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect to redis")
}

/// Deletes every key under `prefix` (tests on the shared Redis clean up after themselves).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let mut c = raw_conn(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query_async(&mut c).await;
    }
}

/// An isolated `redis-server` (binary from `DOTJOB_TEST_REDIS_SERVER`, default on PATH).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl RedisServer {
    /// Starts one without persistence.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts one with AOF on (`appendfsync always`, so a kill loses nothing acknowledged).
    pub fn start_aof() -> Self {
        Self::start_with(true)
    }

    fn start_with(aof: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut me = Self {
            child: None,
            port: free_port(),
            dir,
            aof,
        };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let bin =
            std::env::var("DOTJOB_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd.spawn().expect("start redis-server (is it on PATH?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Wait until it serves commands (AOF loading answers LOADING).
        let url = self.url();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL): clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data folder (AOF replays if on).
    pub fn restart(&mut self) {
        self.restart_after(Duration::ZERO);
    }

    /// Kills it, keeps it down for `down`, then starts it again.
    pub fn restart_after(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
