//! Test support for dotjob's end-to-end and fault tests.
//!
//! - [`RedisServer`]: an isolated `redis-server` on a free port in a temp dir, killed on drop
//!   (restartable, optionally with AOF) for tests that stop or restart Redis;
//! - [`shared_redis`] + [`unique_prefix`]: the machine's Redis with a key prefix of the test's
//!   own, for tests that only need *a* Redis;
//! - [`Proc`]: a dotjob binary as a child process, killed on drop, with `kill -9`, SIGTERM,
//!   SIGSTOP and SIGCONT;
//! - [`InProcess`]: a scheduler running inside the test on `127.0.0.1:0`;
//! - [`Api`]: a small client of the admin API;
//! - [`wait_for`]: poll a condition with a deadline instead of sleeping.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

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

/// A free TCP port on 127.0.0.1, never handed out twice in this process: the suite's tests
/// run concurrently in one binary, and a port freed by one caller could otherwise be picked
/// again by another before the first binds it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
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

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Path of a dotjob binary, built (debug) on first use in this test process.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "dotjob-scheduler",
                "-p",
                "dotjob-worker",
                "--bins",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed: {status}"))
        }
    });
    if let Err(e) = built {
        panic!("cannot build the dotjob binaries: {e}");
    }
    let p = target_dir().join("debug").join(name);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// A dotjob process, killed on drop. Its stderr goes to a log file in a temp dir, printed
/// when the test fails (on drop while panicking).
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts `binary` with `args` and `env`.
    pub fn spawn(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin(binary));
        cmd.args(args)
            .env_remove("REDIS_URL")
            .env_remove("DOTJOB_PREFIX")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        Self {
            name: binary.to_owned(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn signal(&self, s: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), s);
        }
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM.
    pub fn term(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// SIGSTOP (freeze).
    pub fn stop(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// SIGCONT (thaw).
    pub fn cont(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Waits for it to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        let Some(c) = self.child.as_mut() else {
            bail!("not running");
        };
        loop {
            if let Some(status) = c.try_wait()? {
                self.child = None;
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system) it used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')':
        // state is the 1st there, utime the 12th and stime the 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        Duration::from_millis((num(11) + num(12)) * 10)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) stderr ----\n{}",
                self.name,
                self.pid(),
                self.log()
            );
        }
        self.cont();
        self.kill9();
    }
}

/// Starts `dotjob-scheduler` as a process on a free port; returns it with its base URL.
pub fn spawn_scheduler(
    redis_url: &str,
    prefix: &str,
    extra_env: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut env: Vec<(&str, &str)> = vec![
        ("REDIS_URL", redis_url),
        ("DOTJOB_PREFIX", prefix),
        ("DOTJOB_LISTEN", &listen),
        ("DOTJOB_EMBEDDED_WORKER", "off"),
    ];
    env.extend_from_slice(extra_env);
    let p = Proc::spawn("dotjob-scheduler", &[], &env);
    (p, format!("http://{listen}"))
}

/// A scheduler running inside the test process.
pub struct InProcess {
    /// Base URL of its API.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Starts a scheduler on 127.0.0.1:0 without an embedded worker.
    pub async fn start(redis_url: &str, prefix: &str) -> Self {
        Self::start_with(redis_url, prefix, None).await
    }

    /// Starts one with an embedded stock worker of `group`.
    pub async fn start_with(redis_url: &str, prefix: &str, embedded: Option<&str>) -> Self {
        Self::start_full(
            redis_url,
            prefix,
            embedded,
            dotjob_scheduler::EngineSettings::default(),
        )
        .await
    }

    /// Starts one with scheduling settings of the test's choice.
    pub async fn start_full(
        redis_url: &str,
        prefix: &str,
        embedded: Option<&str>,
        engine: dotjob_scheduler::EngineSettings,
    ) -> Self {
        Self::start_exposed(
            redis_url,
            prefix,
            embedded,
            engine,
            dotjob_scheduler::ApiOptions::default(),
        )
        .await
    }

    /// Starts one without an embedded worker whose admin API has the tokens and CORS
    /// origins of `api`.
    pub async fn start_api(
        redis_url: &str,
        prefix: &str,
        api: dotjob_scheduler::ApiOptions,
    ) -> Self {
        Self::start_exposed(
            redis_url,
            prefix,
            None,
            dotjob_scheduler::EngineSettings::default(),
            api,
        )
        .await
    }

    /// Starts one with every setting of the test's choice.
    pub async fn start_exposed(
        redis_url: &str,
        prefix: &str,
        embedded: Option<&str>,
        engine: dotjob_scheduler::EngineSettings,
        api: dotjob_scheduler::ApiOptions,
    ) -> Self {
        init_tracing();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let opts = dotjob_scheduler::Options {
            redis: redis_handle(redis_url, prefix),
            engine,
            embedded_worker: embedded.map(|g| {
                (
                    g.to_owned(),
                    dotjob_worker::Settings::default(),
                    vec!["true".to_owned(), "sh".to_owned()].into(),
                )
            }),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(dotjob_scheduler::run_with(
            opts,
            api,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            base,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops it and waits.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A client of the admin API.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// An API answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Api {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Waits until `/healthz` answers 200.
    pub async fn wait_ready(&self) {
        let api = self.clone();
        wait_for("the API to answer", Duration::from_secs(60), || {
            let api = api.clone();
            async move {
                let r = api
                    .http
                    .get(format!("{}/healthz", api.base))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// Sends a request with an optional JSON body (`/api/v1` is prepended to `path`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.raw(
            method,
            &format!("/api/v1{path}"),
            body.map(Value::to_string),
        )
        .await
    }

    /// Sends a request to any path with an optional raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.context("request")?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body })
    }

    /// Creates a job; panics unless 201.
    pub async fn create_job(&self, job: &Value) -> Value {
        let a = self
            .call("POST", "/jobs", Some(job))
            .await
            .expect("create job");
        assert_eq!(a.status, 201, "create job: {:?}", a.body);
        a.body
    }

    /// Triggers a job; returns the run id.
    pub async fn trigger(&self, job_id: &str, params: Option<&Value>) -> String {
        let body = params.map(|p| serde_json::json!({ "params": p }));
        let a = self
            .call("POST", &format!("/jobs/{job_id}/trigger"), body.as_ref())
            .await
            .expect("trigger");
        assert_eq!(a.status, 202, "trigger: {:?}", a.body);
        a.body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// One run.
    pub async fn run(&self, run_id: &str) -> Value {
        let a = self
            .call("GET", &format!("/runs/{run_id}"), None)
            .await
            .expect("get run");
        assert_eq!(a.status, 200, "get run: {:?}", a.body);
        a.body
    }

    /// Every run of a job (all pages), newest first.
    pub async fn runs(&self, job_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/jobs/{job_id}/runs?limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let a = self.call("GET", &path, None).await.expect("list runs");
            assert_eq!(a.status, 200, "list runs: {:?}", a.body);
            out.extend(a.body["items"].as_array().cloned().unwrap_or_default());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Waits until run `run_id` has a final status; returns it.
    pub async fn wait_run_final(&self, run_id: &str, timeout: Duration) -> Value {
        let api = self.clone();
        let id = run_id.to_owned();
        wait_for(&format!("run {run_id} to finish"), timeout, || {
            let api = api.clone();
            let id = id.clone();
            async move {
                let r = api.run(&id).await;
                let st = r["status"].as_str().unwrap_or("");
                let retrying = !r["retry_at"].is_null();
                (!matches!(st, "queued" | "running") && !retrying).then_some(r)
            }
        })
        .await
    }
}

/// Milliseconds of an RFC 3339 instant in a run or job.
pub fn ms(v: &Value) -> i64 {
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
}
