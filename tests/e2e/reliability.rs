//! Retries through the pending list, dead letters, executors, graceful shutdown.

use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_tests::{
    Api, InProcess, Proc, RedisServer, delete_prefix, ms, raw_conn, shared_redis, spawn_scheduler,
    unique_prefix, wait_for,
};
use serde_json::{Value, json};

use crate::common::TestWorker;

#[tokio::test]
async fn failing_twice_then_succeeding_takes_three_attempts_with_backoff_gaps() {
    let url = shared_redis();
    let prefix = unique_prefix("retry");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "rt");
    let api = Api::new(&sched.base);
    let job = api
        .create_job(&json!({
            "name": "flaky", "group": "rt", "handler": "flaky", "params": {"failures": 2},
            "max_attempts": 5, "backoff": {"base_ms": 600, "max_ms": 10000}
        }))
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 3, "{r}");
    let attempts = r["attempts"].as_array().expect("attempt history");
    let statuses: Vec<&str> = attempts
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"], "{r}");
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    // Backoff: ~600 ms before attempt 2, ~1200 ms before attempt 3 (±20 % jitter).
    let gap1 = ms(&attempts[1]["started_at"]) - ms(&attempts[0]["finished_at"]);
    let gap2 = ms(&attempts[2]["started_at"]) - ms(&attempts[1]["finished_at"]);
    assert!((480..3_000).contains(&gap1), "first backoff gap {gap1} ms");
    assert!((960..4_000).contains(&gap2), "second backoff gap {gap2} ms");
    assert!(gap2 > gap1, "backoff did not grow: {gap1} then {gap2}");
    assert_eq!(
        worker
            .probe
            .flaky_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );

    // The entry was acknowledged once final: nothing pending, nothing waiting for a retry.
    let mut c = raw_conn(&url).await;
    let keys = Keys::new(prefix.as_str());
    let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(keys.stream("rt"))
        .arg(CONSUMER_GROUP)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(pending.0, 0);
    let retry: u64 = redis::cmd("ZCARD")
        .arg(keys.retry("rt"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(retry, 0);
    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn always_failing_run_ends_dead_in_the_dead_letters_and_can_be_requeued() {
    let url = shared_redis();
    let prefix = unique_prefix("dead");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "dl");
    let api = Api::new(&sched.base);
    let job = api
        .create_job(&json!({
            "name": "doomed", "group": "dl", "handler": "fail",
            "max_attempts": 3, "backoff": {"base_ms": 100, "max_ms": 200}
        }))
        .await;
    let id = job["id"].as_str().unwrap();
    let run = api.trigger(id, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "dead", "{r}");
    assert_eq!(r["attempt"], 3);
    assert_eq!(r["error"], "always fails");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 3);

    let dead = api.call("GET", "/groups/dl/dead", None).await.unwrap();
    assert_eq!(dead.status, 200, "{:?}", dead.body);
    let items = dead.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["run"], json!(run));
    assert_eq!(items[0]["job"], json!(id));
    assert_eq!(items[0]["attempts"], 3);
    let entry = items[0]["entry"].as_str().unwrap();

    let rq = api
        .call("POST", &format!("/groups/dl/dead/{entry}/requeue"), None)
        .await
        .unwrap();
    assert_eq!(rq.status, 202, "{:?}", rq.body);
    let new_run = rq.body["run_id"].as_str().unwrap().to_owned();
    assert_ne!(new_run, run);
    let r2 = api.wait_run_final(&new_run, Duration::from_secs(30)).await;
    assert_eq!(r2["trigger"], "requeue");
    assert_eq!(r2["parent_run"], json!(run));
    assert_eq!(r2["status"], "dead");
    let dead = api.call("GET", "/groups/dl/dead", None).await.unwrap();
    let runs: Vec<&str> = dead.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["run"].as_str().unwrap())
        .collect();
    assert_eq!(
        runs,
        [new_run.as_str()],
        "the requeued letter should be gone, the new one there"
    );
    // Bad requests about dead letters are 404s.
    for path in [
        "/groups/dl/dead/1-1/requeue",
        "/groups/nosuchgroup/dead/1-1/requeue",
        "/groups/dl/dead/x/requeue",
    ] {
        let a = api.call("POST", path, None).await.unwrap();
        assert_eq!(a.status, 404, "{path}: {:?}", a.body);
    }
    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

async fn executors(api: &Api, group: &str) -> Vec<Value> {
    let a = api
        .call("GET", &format!("/groups/{group}/executors"), None)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_disabled_executor_finishes_its_run_and_claims_nothing_new() {
    let url = shared_redis();
    let prefix = unique_prefix("exec");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let slow = api
        .create_job(
            &json!({"name": "slow", "group": "ex", "handler": "sleep", "params": {"ms": 2500}}),
        )
        .await;
    let quick = api
        .create_job(&json!({"name": "quick", "group": "ex", "handler": "noop"}))
        .await;
    let a = TestWorker::start(&url, &prefix, "ex");
    let list = wait_for("executor A registered", Duration::from_secs(10), || {
        let api = api.clone();
        async move {
            let l = executors(&api, "ex").await;
            (l.len() == 1).then_some(l)
        }
    })
    .await;
    let a_id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["alive"], true);
    assert_eq!(list[0]["disabled"], false);
    assert_eq!(list[0]["pid"], std::process::id());
    assert!(
        list[0]["handlers"]
            .as_array()
            .unwrap()
            .contains(&json!("noop"))
    );

    let long_run = api.trigger(slow["id"].as_str().unwrap(), None).await;
    // It starts on A.
    api.wait_run_running(&long_run, Duration::from_secs(10))
        .await;
    let d = api
        .call(
            "POST",
            &format!("/groups/ex/executors/{a_id}/disable"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (d.status, d.body["disabled"].clone()),
        (200, json!(true)),
        "{:?}",
        d.body
    );
    // A takes the change at its next heartbeat (lease / 3 = ~0.7 s in TestWorker), and a read
    // it had already begun blocks at most 1 s more.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let b = TestWorker::start(&url, &prefix, "ex");
    let mut quick_runs = vec![];
    for _ in 0..6 {
        quick_runs.push(api.trigger(quick["id"].as_str().unwrap(), None).await);
    }
    for r in &quick_runs {
        let r = api.wait_run_final(r, Duration::from_secs(20)).await;
        assert_eq!(r["status"], "succeeded");
        assert_ne!(
            r["worker"],
            json!(a_id),
            "a disabled executor claimed a new run"
        );
    }
    let lr = api.wait_run_final(&long_run, Duration::from_secs(20)).await;
    assert_eq!(
        lr["status"], "succeeded",
        "the disabled executor did not finish its run: {lr}"
    );
    assert_eq!(lr["worker"], json!(a_id));

    let e = api
        .call("POST", &format!("/groups/ex/executors/{a_id}/enable"), None)
        .await
        .unwrap();
    assert_eq!(e.body["disabled"], false);
    for path in [
        "/groups/ex/executors/nobody/disable",
        "/groups/nogroup/executors/x/enable",
    ] {
        assert_eq!(
            api.call("POST", path, None).await.unwrap().status,
            404,
            "{path}"
        );
    }
    a.stop().await;
    b.stop().await;
    // Stopped workers deregister.
    assert!(executors(&api, "ex").await.is_empty());
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

async fn consumers(url: &str, stream: &str) -> Vec<(String, u64)> {
    let mut c = raw_conn(url).await;
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut c)
        .await
        .unwrap();
    reply
        .consumers
        .into_iter()
        .map(|c| (c.name, c.pending as u64))
        .collect()
}

#[tokio::test]
async fn a_dead_executor_is_forgotten_and_its_consumer_removed_only_after_its_runs_are_claimed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (_s, base) = spawn_scheduler(
        &url,
        "dotjob",
        &[
            ("DOTJOB_HOUSEKEEPING_INTERVAL", "500ms"),
            ("DOTJOB_EXECUTOR_TIMEOUT", "3s"),
        ],
    );
    let api = Api::new(&base);
    api.wait_ready().await;
    let job = api
        .create_job(&json!({"name": "long", "group": "rp", "handler": "shell", "params": {"command": ["sleep", "1"]}}))
        .await;
    let env = [
        ("REDIS_URL", url.as_str()),
        ("DOTJOB_SHELL_ALLOW", "sleep"),
        ("DOTJOB_LEASE_MS", "1000"),
    ];
    let mut w1 = Proc::spawn("dotjob-worker", &["--group", "rp"], &env);
    let run = api.trigger(job["id"].as_str().unwrap(), None).await;
    let first = api.wait_run_running(&run, Duration::from_secs(15)).await;
    let dead_id = first["worker"].as_str().unwrap().to_owned();
    w1.kill9();
    // Nobody is alive to claim its entry: after the timeout the executor is forgotten but its
    // consumer stays, still holding the entry.
    wait_for(
        "the dead executor to be forgotten",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            async move { executors(&api, "rp").await.is_empty().then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stream = Keys::new("dotjob").stream("rp");
    let stream = stream.as_str();
    assert_eq!(consumers(&url, stream).await, vec![(dead_id.clone(), 1)]);
    // A new worker reclaims the run and finishes it; then the old consumer goes.
    let _w2 = Proc::spawn("dotjob-worker", &["--group", "rp"], &env);
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["attempts"][0]["status"], "interrupted", "{r}");
    assert_eq!(r["attempts"][0]["worker"], json!(dead_id));
    wait_for(
        "the dead consumer to be deleted",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            let dead_id = dead_id.clone();
            async move {
                let cs = consumers(&url, stream).await;
                (!cs.iter().any(|(n, _)| *n == dead_id)).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn sigterm_lets_a_run_finish_or_hands_it_back_and_exits_zero() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (_s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let job = api
        .create_job(&json!({"name": "nap", "group": "gs", "handler": "shell", "params": {"command": ["sleep", "2"]}}))
        .await;
    let id = job["id"].as_str().unwrap();

    let worker = |grace: &str| {
        let env = [
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_SHELL_ALLOW", "sleep"),
            ("DOTJOB_LEASE_MS", "1000"),
            ("DOTJOB_SHUTDOWN_GRACE_MS", grace),
        ];
        Proc::spawn("dotjob-worker", &["--group", "gs"], &env)
    };
    // A run of the job on a worker with `grace`, which gets SIGTERM mid-run and must exit 0.
    let terminated_mid_run = async |grace: &str| {
        let mut w = worker(grace);
        let run = api.trigger(id, None).await;
        api.wait_run_running(&run, Duration::from_secs(20)).await;
        w.term();
        assert_eq!(
            w.wait_exit(Duration::from_secs(15)).unwrap(),
            Some(0),
            "{}",
            w.log()
        );
        api.run(&run).await
    };

    // 1. Enough grace: the run finishes, then the worker exits 0.
    let r = terminated_mid_run("10000").await;
    assert_eq!(
        r["status"], "succeeded",
        "the run did not finish within the grace period: {r}"
    );

    // 2. Too little grace: the run is handed back, the worker exits 0, another worker runs it.
    let r = terminated_mid_run("300").await;
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["attempts"][0]["status"], "handed_back", "{r}");
    let run = r["id"].as_str().unwrap().to_owned();
    let _w = worker("10000");
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2);
}
