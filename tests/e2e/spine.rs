//! The spine: a job defined over HTTP fires on time, runs on a worker, and is recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use dotjob_tests::{
    Api, InProcess, Proc, RedisServer, delete_prefix, ms, raw_conn, shared_redis, spawn_scheduler,
    unique_prefix, wait_for,
};
use serde_json::{Value, json};

use crate::common::TestWorker;

/// Entries of a group stream, counted per tick (`at` field).
async fn stream_ticks(url: &str, prefix: &str, group: &str) -> BTreeMap<i64, usize> {
    let mut c = raw_conn(url).await;
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(dotjob_shared::Keys::new(prefix).stream(group))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("xrange");
    let mut per_tick = BTreeMap::new();
    for (_, f) in entries {
        let at = dotjob_shared::model::run::RunIdShape::of(&f["run"])
            .tick
            .expect("a tick in the run id");
        *per_tick.entry(at).or_insert(0) += 1;
    }
    per_tick
}

fn statuses(runs: &[Value]) -> Vec<&str> {
    runs.iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn job_created_over_http_fires_every_second_once_per_tick() {
    let url = shared_redis();
    let prefix = unique_prefix("spine");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "spine");
    let api = Api::new(&sched.base);
    let job = api
        .create_job(&json!({"name": "every second", "group": "spine", "handler": "noop", "schedule": "*/1 * * * * *"}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    let runs = wait_for("3 succeeded runs", Duration::from_secs(20), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let runs = api.runs(&id).await;
            (runs.iter().filter(|r| r["status"] == "succeeded").count() >= 3).then_some(runs)
        }
    })
    .await;
    let mut ticks: Vec<i64> = runs
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| ms(&r["scheduled_at"]))
        .collect();
    ticks.sort_unstable();
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], 1_000, "ticks not one second apart: {ticks:?}");
    }
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        assert_eq!(r["attempt"], 1);
        assert_eq!(r["code"], 200);
        assert_eq!(r["result"], json!({"ok": true}));
        assert!(
            ms(&r["started_at"]) >= ms(&r["scheduled_at"]),
            "started before its tick: {r}"
        );
        assert!(r["worker"].as_str().is_some_and(|w| !w.is_empty()));
    }
    // No tick twice: one run record and one stream entry per scheduled instant.
    let mut per_tick: HashMap<i64, usize> = HashMap::new();
    for r in &runs {
        *per_tick.entry(ms(&r["scheduled_at"])).or_default() += 1;
    }
    assert!(
        per_tick.values().all(|n| *n == 1),
        "a tick ran twice: {per_tick:?}"
    );
    let entries = stream_ticks(&url, &prefix, "spine").await;
    assert!(
        entries.values().all(|n| *n == 1),
        "a tick was enqueued twice: {entries:?}"
    );

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn handler_outliving_its_timeout_is_timed_out_502_and_the_worker_goes_on() {
    let url = shared_redis();
    let prefix = unique_prefix("timeout");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "to");
    let api = Api::new(&sched.base);
    let slow = api
        .create_job(&json!({"name": "slow", "group": "to", "handler": "sleep", "params": {"ms": 30000}, "timeout_ms": 300}))
        .await;
    let run = api.trigger(slow["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
    assert_eq!(r["status"], "timed_out", "{r}");
    assert_eq!(r["code"], 502);
    let took = r["duration_ms"].as_u64().unwrap();
    assert!((300..5_000).contains(&took), "duration {took} ms");
    // The handler was cancelled (its future dropped), not left running.
    wait_for("the handler to be dropped", Duration::from_secs(5), || {
        let dropped = worker.probe.sleep_dropped.load(Ordering::SeqCst);
        async move { dropped.then_some(()) }
    })
    .await;

    let fast = api
        .create_job(&json!({"name": "fast", "group": "to", "handler": "noop"}))
        .await;
    let run = api.trigger(fast["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
    assert_eq!(
        r["status"], "succeeded",
        "worker stopped working after a timeout: {r}"
    );

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn panicking_handler_fails_the_run_and_the_worker_goes_on() {
    let url = shared_redis();
    let prefix = unique_prefix("panic");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "pn");
    let api = Api::new(&sched.base);
    let bad = api
        .create_job(&json!({"name": "bad", "group": "pn", "handler": "panic"}))
        .await;
    let good = api
        .create_job(&json!({"name": "good", "group": "pn", "handler": "echo", "params": {"x": 1}}))
        .await;
    for _ in 0..3 {
        let run = api.trigger(bad["id"].as_str().unwrap(), None).await;
        let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["code"], 500);
        assert!(
            r["error"].as_str().unwrap().contains("boom in handler"),
            "{r}"
        );
    }
    let run = api.trigger(good["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"], json!({"x": 1}));

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn two_scheduler_processes_fire_every_tick_exactly_once_for_30s() {
    let redis = RedisServer::start();
    let url = redis.url();
    let prefix = "dotjob";
    let (_a, base_a) = spawn_scheduler(&url, prefix, &[]);
    let (_b, base_b) = spawn_scheduler(&url, prefix, &[]);
    let _w = Proc::spawn(
        "dotjob-worker",
        &["--group", "twin"],
        &[("REDIS_URL", &url), ("DOTJOB_SHELL_ALLOW", "true")],
    );
    let (api_a, api_b) = (Api::new(&base_a), Api::new(&base_b));
    api_a.wait_ready().await;
    api_b.wait_ready().await;
    let job = api_a
        .create_job(&json!({"name": "twin", "group": "twin", "handler": "shell", "schedule": "*/1 * * * * *", "params": {"command": ["true"]}}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let paused_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    api_b
        .call("POST", &format!("/jobs/{id}/pause"), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Ticks fired ahead for instants after the pause were recalled by it; count up to it.
    let mut ticks = stream_ticks(&url, prefix, "twin").await;
    ticks.retain(|t, _| *t <= paused_at);
    assert!(
        ticks.len() >= 28,
        "only {} ticks fired in 30 s",
        ticks.len()
    );
    assert!(
        ticks.values().all(|n| *n == 1),
        "a tick was enqueued twice: {ticks:?}"
    );
    let at: Vec<i64> = ticks.keys().copied().collect();
    for w in at.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1_000,
            "a tick is missing between {} and {}",
            w[0],
            w[1]
        );
    }
    let mut runs = api_b.runs(&id).await;
    runs.retain(|r| ms(&r["scheduled_at"]) <= paused_at);
    assert_eq!(runs.len(), ticks.len(), "run records != fired ticks");
    let mut per_tick: HashMap<i64, usize> = HashMap::new();
    for r in &runs {
        *per_tick.entry(ms(&r["scheduled_at"])).or_default() += 1;
    }
    assert!(per_tick.values().all(|n| *n == 1));
    let done = statuses(&runs)
        .iter()
        .filter(|s| **s == "succeeded")
        .count();
    assert!(
        done + 2 >= runs.len(),
        "runs not executed: {:?}",
        statuses(&runs)
    );
    // Both fired through healthy passes: no scheduling pass failed.
    for api in [&api_a, &api_b] {
        let m = api.raw("GET", "/metrics", None).await.unwrap();
        let text = m.body.as_str().unwrap_or_default().to_owned();
        assert!(text.contains("dotjob_"), "no metrics served:\n{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("dotjob_schedule_pass_errors_total")),
            "a scheduling pass failed:\n{text}"
        );
    }
}

#[tokio::test]
async fn all_in_one_start_brings_up_its_own_redis_and_stops_cleanly() {
    let data = tempfile_dir();
    let port = dotjob_tests::free_port();
    let api_port = dotjob_tests::free_port();
    let listen = format!("127.0.0.1:{api_port}");
    let port_s = port.to_string();
    let mut p = Proc::spawn(
        "dotjob-scheduler",
        &[],
        &[
            ("DOTJOB_LOCAL_REDIS_PORT", &port_s),
            ("DOTJOB_DATA_DIR", data.path().to_str().unwrap()),
            ("DOTJOB_LISTEN", &listen),
            ("DOTJOB_SHELL_ALLOW", "sh"),
        ],
    );
    let api = Api::new(&format!("http://{listen}"));
    api.wait_ready().await;
    assert!(p.log().contains("private redis-server"), "{}", p.log());
    let job = api
        .create_job(&json!({"name": "hello", "handler": "shell", "params": {"command": ["sh", "-c", "echo hello from dotjob"]}}))
        .await;
    assert_eq!(job["group"], "default");
    let run = api.trigger(job["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let logs = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .unwrap();
    assert_eq!(logs.body["lines"], json!(["hello from dotjob"]));

    p.term();
    assert_eq!(
        p.wait_exit(Duration::from_secs(40)).unwrap(),
        Some(0),
        "{}",
        p.log()
    );
    // Its Redis stopped with it, and kept its data in an append-only file.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "redis-server still running"
    );
    let has_aof = walk(data.path())
        .iter()
        .any(|f| f.to_string_lossy().contains("appendonly"));
    assert!(has_aof, "no AOF under {}", data.path().display());
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
