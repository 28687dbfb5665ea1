//! Handlers and workers the tests run in process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use dotjob_tests::{Api, Spawned, ms, redis_handle, wait_for};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::{Value, json};

/// Observations of the test handlers.
#[derive(Default)]
pub struct Probe {
    /// Set when a `sleep` handler's future was dropped before it finished.
    pub sleep_dropped: AtomicBool,
    /// Calls of the `flaky` handler.
    pub flaky_calls: AtomicU32,
}

struct DropFlag(Arc<Probe>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.sleep_dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// A running in-process worker; stops (gracefully) when dropped or on `stop()`.
pub struct TestWorker {
    pub probe: Arc<Probe>,
    task: Spawned,
}

impl TestWorker {
    /// A worker of `group` with handlers `noop`, `sleep` (params.ms), `panic`, `fail`,
    /// `flaky` (fails params.failures times, then succeeds), `echo` (returns its params) and
    /// `shard` (returns its shard index, count and parameter).
    pub fn start(url: &str, prefix: &str, group: &str) -> Self {
        let probe = Arc::new(Probe::default());
        let p1 = probe.clone();
        let p2 = probe.clone();
        let worker = Worker::builder(redis_handle(url, prefix), group)
            .handler("noop", |_ctx: RunContext| async {
                Ok::<_, HandlerError>(json!({"ok": true}))
            })
            .handler("echo", |ctx: RunContext| async move {
                Ok::<_, HandlerError>(ctx.params().clone())
            })
            .handler("sleep", move |ctx: RunContext| {
                let probe = p1.clone();
                async move {
                    let ms: u64 = ctx.param("ms")?;
                    let mut flag = DropFlag(probe, false);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    flag.1 = true;
                    Ok::<_, HandlerError>(json!({"slept_ms": ms}))
                }
            })
            .handler("shard", |ctx: RunContext| async move {
                let (index, shards, param) = ctx
                    .shard()
                    .ok_or_else(|| HandlerError::fatal("not a shard run"))?;
                Ok::<_, HandlerError>(json!({"shard": index, "shards": shards, "param": param}))
            })
            .handler("panic", |_ctx: RunContext| async {
                if true {
                    panic!("boom in handler");
                }
                Ok::<(), HandlerError>(())
            })
            .handler("fail", |_ctx: RunContext| async {
                Err::<(), _>(HandlerError::retry("always fails"))
            })
            .handler("flaky", move |ctx: RunContext| {
                let probe = p2.clone();
                async move {
                    let failures: u32 = ctx.param("failures")?;
                    probe.flaky_calls.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() <= failures {
                        return Err(HandlerError::retry(format!(
                            "failing attempt {}",
                            ctx.attempt()
                        )));
                    }
                    Ok(json!({"attempt": ctx.attempt()}))
                }
            })
            .reclaim_after(Duration::from_secs(2))
            .grace(Duration::from_secs(5))
            .build()
            .expect("worker");
        Self {
            probe,
            task: Spawned::worker(worker),
        }
    }

    /// Stops and waits for it.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// Asserts a job's runs cover every second from the first to the last tick, once each;
/// returns the ticks.
pub fn assert_every_tick_once(job: &str, runs: &[Value]) -> Vec<i64> {
    let mut ticks: Vec<i64> = runs.iter().map(|r| ms(&r["scheduled_at"])).collect();
    ticks.sort_unstable();
    for w in ticks.windows(2) {
        assert_ne!(w[0], w[1], "job {job}: tick {} has two runs", w[0]);
        assert_eq!(
            w[1] - w[0],
            1_000,
            "job {job}: a tick is missing after {}",
            w[0]
        );
    }
    ticks
}

/// A job's runs once none is queued or running any more.
pub async fn settled_runs(api: &Api, job: &str, timeout: Duration) -> Vec<Value> {
    wait_for(&format!("runs of job {job} to settle"), timeout, || {
        let api = api.clone();
        let id = job.to_owned();
        async move {
            let r = api.runs(&id).await;
            r.iter()
                .all(|r| r["status"] != "running" && r["status"] != "queued")
                .then_some(r)
        }
    })
    .await
}

/// Creates a stock `shell` job named `name` in `group` running `command`, with the fields of
/// `extra` added; returns its id.
pub async fn shell_job(api: &Api, group: &str, name: &str, command: Value, extra: Value) -> String {
    let mut j = json!({"name": name, "group": group, "handler": "shell",
        "params": {"command": command}});
    if let (Some(o), Value::Object(e)) = (j.as_object_mut(), extra) {
        o.extend(e);
    }
    api.create_job(&j).await["id"]
        .as_str()
        .expect("job id")
        .to_owned()
}

/// The jobs of a known set of outcomes in `group` (the metrics tests count their runs).
pub struct KnownJobs {
    /// `true`: succeeds.
    pub ok: String,
    /// `false`, one attempt: fails.
    pub fail: String,
    /// `false`, two attempts 100 ms apart: retried, then dead.
    pub dead: String,
    /// `sleep 5` with a 300 ms timeout, one attempt: timed out.
    pub slow: String,
}

/// Creates the [`KnownJobs`] of `group` (its workers must allow `true`, `false`, `sleep`).
pub async fn known_jobs(api: &Api, group: &str) -> KnownJobs {
    KnownJobs {
        ok: shell_job(api, group, "ok", json!(["true"]), json!({})).await,
        fail: shell_job(
            api,
            group,
            "fail",
            json!(["false"]),
            json!({"max_attempts": 1}),
        )
        .await,
        dead: shell_job(
            api,
            group,
            "dead",
            json!(["false"]),
            json!({"max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 200}}),
        )
        .await,
        slow: shell_job(
            api,
            group,
            "slow",
            json!(["sleep", "5"]),
            json!({"timeout_ms": 300, "max_attempts": 1}),
        )
        .await,
    }
}

/// The text of `<base>/metrics`.
pub async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

/// From a scrape, the sample of `name` whose labels include every pair of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}
