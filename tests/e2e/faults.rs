//! Nothing lost, nothing run twice without a reason, under real faults: workers killed with
//! `kill -9`, a long soak with trimming, Redis restarted under load. Everything is counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, Proc, RedisServer, delete_prefix, ms, now_ms, pid_of, raw_conn, shared_redis,
    spawn_scheduler, unique_prefix, wait_for,
};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{TestWorker, assert_every_tick_once};

/// Waits until every run of `jobs` is final; returns them per job.
async fn all_final(api: &Api, jobs: &[String], timeout: Duration) -> Vec<Vec<Value>> {
    let api = api.clone();
    let jobs = jobs.to_vec();
    wait_for("every run to be final", timeout, || {
        let api = api.clone();
        let jobs = jobs.clone();
        async move {
            let mut out = vec![];
            for j in &jobs {
                let runs = api.runs(j).await;
                if runs.iter().any(|r| {
                    matches!(r["status"].as_str(), Some("queued" | "running"))
                        || !r["retry_at"].is_null()
                }) {
                    return None;
                }
                out.push(runs);
            }
            Some(out)
        }
    })
    .await
}

#[tokio::test]
async fn killing_workers_loses_no_run_and_reruns_only_runs_of_killed_workers() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("executions.log");
    let (_s, base) = spawn_scheduler(&url, "dotjob", &[("DOTJOB_HOUSEKEEPING_INTERVAL", "1s")]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let mut jobs = vec![];
    for (i, secs) in ["0.3", "0.6", "0.9", "1.2"].iter().enumerate() {
        let script = format!(
            "echo \"$DOTJOB_RUN_ID $DOTJOB_ATTEMPT $DOTJOB_EXECUTOR start\" >> {log}; sleep {secs}; \
             echo \"$DOTJOB_RUN_ID $DOTJOB_ATTEMPT $DOTJOB_EXECUTOR end\" >> {log}",
            log = log.display()
        );
        let j = api
            .create_job(&json!({
                "name": format!("chaos-{i}"), "group": "chaos", "handler": "shell",
                "schedule": "*/1 * * * * *", "timeout_ms": 20000,
                "params": {"command": ["sh", "-c", script]}
            }))
            .await;
        jobs.push(j["id"].as_str().unwrap().to_owned());
    }
    let env = [
        ("REDIS_URL", url.as_str()),
        ("DOTJOB_SHELL_ALLOW", "sh"),
        ("DOTJOB_LEASE_MS", "1500"),
        ("DOTJOB_CONCURRENCY", "8"),
    ];
    let spawn = || Proc::spawn("dotjob-worker", &["--group", "chaos"], &env);
    let mut workers: Vec<Proc> = (0..3).map(|_| spawn()).collect();
    let mut killed: HashSet<i32> = HashSet::new();
    let mut rng = rand::rng();
    while killed.len() < 22 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..2_500))).await;
        let i = rng.random_range(0..workers.len());
        killed.insert(workers[i].pid());
        workers[i].kill9();
        workers[i] = spawn();
    }
    for j in &jobs {
        api.call("POST", &format!("/jobs/{j}/pause"), None)
            .await
            .unwrap();
    }
    let per_job = all_final(&api, &jobs, Duration::from_secs(90)).await;

    let mut total = 0;
    let mut final_worker: HashMap<String, String> = HashMap::new();
    for (j, runs) in jobs.iter().zip(&per_job) {
        let ticks = assert_every_tick_once(j, runs);
        assert!(ticks.len() >= 40, "job {j}: only {} ticks", ticks.len());
        for r in runs {
            assert_eq!(r["status"], "succeeded", "run not succeeded: {r}");
            final_worker.insert(
                r["id"].as_str().unwrap().to_owned(),
                r["worker"].as_str().unwrap().to_owned(),
            );
        }
        total += runs.len();
    }
    // Executions, from the handlers' own log: every run executed; an execution that did not
    // produce the run's result was cut short by a kill of its worker.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut execs: BTreeMap<String, Vec<(u32, String, bool)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [run, attempt, executor, kind] = f[..] else {
            panic!("bad line {line:?}")
        };
        let e = execs.entry(run.to_owned()).or_default();
        let attempt: u32 = attempt.parse().unwrap();
        match kind {
            "start" => e.push((attempt, executor.to_owned(), false)),
            "end" => {
                if let Some(x) = e.iter_mut().find(|x| x.0 == attempt && x.1 == executor) {
                    x.2 = true;
                }
            }
            _ => panic!("bad line {line:?}"),
        }
    }
    assert_eq!(execs.len(), total, "runs recorded vs runs executed");
    let mut reruns = 0;
    for (run, list) in &execs {
        let winner = &final_worker[run];
        let (last_attempt, last_exec, last_done) = list.last().unwrap();
        assert!(
            last_done,
            "run {run}: its last execution did not finish: {list:?}"
        );
        assert_eq!(
            last_exec, winner,
            "run {run}: recorded by another executor than the last one"
        );
        assert!(
            *last_attempt as usize >= list.len(),
            "{run}: attempts do not count deliveries"
        );
        for (_, exec, _) in &list[..list.len() - 1] {
            assert!(
                pid_of(exec).is_some_and(|pid| killed.contains(&pid)),
                "run {run} executed again although executor {exec} was never killed: {list:?}"
            );
            reruns += 1;
        }
    }
    eprintln!(
        "chaos: {} kills, {total} runs, {reruns} re-executions after kills",
        killed.len()
    );
}

/// Seconds the soak lasts: `DOTJOB_SOAK_SECS`, 2 minutes unless set (CI); the full soak
/// is `DOTJOB_SOAK_SECS=600`.
fn soak_secs() -> u64 {
    std::env::var("DOTJOB_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

#[tokio::test]
async fn soak_under_load_keeps_the_stream_bounded_and_trims_nothing_pending() {
    let secs = soak_secs();
    let url = shared_redis();
    let prefix = unique_prefix("soak");
    let engine = dotjob_scheduler::EngineSettings {
        housekeeping: Duration::from_secs(2),
        ..Default::default()
    };
    let sched = InProcess::start_full(&url, &prefix, None, engine).await;
    let api = Api::new(&sched.base);
    let w1 = TestWorker::start(&url, &prefix, "soak");
    let w2 = TestWorker::start(&url, &prefix, "soak");
    // A run that stays pending for a third of the soak (two minutes at most) while trimming
    // goes on around it.
    let long_ms = (secs * 1_000 / 3).min(120_000);
    let long = api
        .create_job(&json!({"name": "long", "group": "soak", "handler": "sleep",
            "params": {"ms": long_ms}, "timeout_ms": 200_000}))
        .await;
    let long_run = api.trigger(long["id"].as_str().unwrap(), None).await;
    let mut jobs = vec![];
    for i in 0..20 {
        let j = api
            .create_job(
                &json!({"name": format!("load-{i}"), "group": "soak", "handler": "sleep",
                "schedule": "*/1 * * * * *", "params": {"ms": 20 + 15 * i}, "max_attempts": 1}),
            )
            .await;
        jobs.push(j["id"].as_str().unwrap().to_owned());
    }
    let stream = Keys::new(prefix.as_str()).stream("soak");
    let mut c = raw_conn(&url).await;
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64)> = vec![];
    let mut long_done_at: Option<Duration> = None;
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let len: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut c)
            .await
            .unwrap();
        samples.push((start.elapsed(), len));
        if long_done_at.is_none() && api.run(&long_run).await["status"] != "running" {
            long_done_at = Some(start.elapsed());
        }
    }
    for j in &jobs {
        api.call("POST", &format!("/jobs/{j}/pause"), None)
            .await
            .unwrap();
    }
    let per_job = all_final(&api, &jobs, Duration::from_secs(60)).await;
    let lr = api.run(&long_run).await;
    assert_eq!(lr["status"], "succeeded", "the long-pending run: {lr}");
    let mut total = 0;
    for (j, runs) in jobs.iter().zip(&per_job) {
        assert_every_tick_once(j, runs);
        for r in runs {
            assert_eq!(r["status"], "succeeded", "{r}");
        }
        total += runs.len();
    }
    let rate = 20;
    let steady_bound = rate * 2 * 2 + 300; // two housekeeping periods + one stream node of slack
    let long_bound = rate * (long_ms as usize / 1_000 + 10) + 300;
    let long_done = long_done_at.expect("the long run never finished");
    for (t, len) in &samples {
        let bound = if *t > long_done + Duration::from_secs(10) {
            steady_bound
        } else {
            long_bound
        };
        assert!(
            *len <= bound as u64,
            "stream length {len} at {t:?} over {bound}: {samples:?}"
        );
    }
    let late: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t > long_done + Duration::from_secs(10))
        .map(|(_, l)| *l)
        .collect();
    assert!(
        !late.is_empty() || secs < 60,
        "no samples after the long run"
    );
    eprintln!(
        "soak: {total} runs in {secs} s; stream length max {} while the long run was pending, max {} after",
        samples
            .iter()
            .filter(|(t, _)| *t <= long_done)
            .map(|s| s.1)
            .max()
            .unwrap_or(0),
        late.iter().max().unwrap_or(&0)
    );
    w1.stop().await;
    w2.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn redis_restarted_under_load_scheduling_and_work_resume_with_definitions_intact() {
    let mut redis = RedisServer::start_aof();
    let url = redis.url();
    let (mut s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let mut w = Proc::spawn(
        "dotjob-worker",
        &["--group", "rr"],
        &[
            ("REDIS_URL", &url),
            ("DOTJOB_SHELL_ALLOW", "sleep"),
            ("DOTJOB_LEASE_MS", "2000"),
        ],
    );
    let api = Api::new(&base);
    api.wait_ready().await;
    let job = api
        .create_job(&json!({"name": "steady", "group": "rr", "handler": "shell", "schedule": "*/1 * * * * *",
            "params": {"command": ["sleep", "0.2"]}, "labels": {"team": "infra"}}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let api2 = api.clone();
    let id2 = id.clone();
    wait_for("3 succeeded runs", Duration::from_secs(20), || {
        let api = api2.clone();
        let id = id2.clone();
        async move {
            (api.runs(&id)
                .await
                .iter()
                .filter(|r| r["status"] == "succeeded")
                .count()
                >= 3)
                .then_some(())
        }
    })
    .await;
    let definition = |mut v: Value| {
        v.as_object_mut().unwrap().remove("next_fire_at");
        v
    };
    let before = definition(
        api.call("GET", &format!("/jobs/{id}"), None)
            .await
            .unwrap()
            .body,
    );

    let cpu = (s.cpu_time(), w.cpu_time());
    let down = Duration::from_secs(3);
    redis.restart_after(down);
    let restarted_at = now_ms();
    let used = (s.cpu_time() - cpu.0, w.cpu_time() - cpu.1);
    assert!(
        used.0 < Duration::from_millis(1_500) && used.1 < Duration::from_millis(1_500),
        "busy loop while Redis was down? CPU used in {down:?}: scheduler {:?}, worker {:?}",
        used.0,
        used.1
    );

    let api2 = api.clone();
    let id2 = id.clone();
    wait_for(
        "a run scheduled after the restart to succeed",
        Duration::from_secs(40),
        || {
            let api = api2.clone();
            let id = id2.clone();
            async move {
                let runs = api.runs(&id).await;
                runs.iter()
                    .any(|r| {
                        r["status"] == "succeeded" && ms(&r["scheduled_at"]) > restarted_at + 1_000
                    })
                    .then_some(())
            }
        },
    )
    .await;
    assert!(s.is_running(), "the scheduler died: {}", s.log());
    assert!(w.is_running(), "the worker died: {}", w.log());
    let after = definition(
        api.call("GET", &format!("/jobs/{id}"), None)
            .await
            .unwrap()
            .body,
    );
    assert_eq!(after, before, "the definition changed across the restart");

    api.call("POST", &format!("/jobs/{id}/pause"), None)
        .await
        .unwrap();
    let runs = all_final(&api, std::slice::from_ref(&id), Duration::from_secs(60))
        .await
        .remove(0);
    assert_every_tick_once(&id, &runs);
    for r in &runs {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
}
