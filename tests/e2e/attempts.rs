//! A run's log keeps every attempt apart: a retry starts with a `--- attempt N ---` line,
//! and `GET /runs/{id}/logs?attempt=N` returns only that attempt's lines.

use std::time::Duration;

use dotjob_tests::{
    Api, InProcess, Spawned, delete_prefix, redis_handle, shared_redis, unique_prefix,
};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::json;

#[tokio::test]
async fn a_retried_runs_log_marks_and_filters_each_attempt() {
    let url = shared_redis();
    let prefix = unique_prefix("attempts");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = Worker::builder(redis_handle(&url, &prefix), "att")
        .handler("once", |ctx: RunContext| async move {
            ctx.log(format!("hello from attempt {}", ctx.attempt()));
            if ctx.attempt() == 1 {
                return Err(HandlerError::retry("first attempt fails"));
            }
            Ok::<_, HandlerError>(json!({"ok": true}))
        })
        .build()
        .expect("worker");
    let worker = Spawned::worker(worker);
    let api = Api::new(&sched.base);
    let job = api
        .create_job(&json!({
            "name": "once", "group": "att", "handler": "once",
            "max_attempts": 3, "backoff": {"base_ms": 300, "max_ms": 1000}
        }))
        .await;
    let run = api.trigger(job["id"].as_str().expect("id"), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");

    let all = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .expect("logs");
    assert_eq!(all.status, 200, "{:?}", all.body);
    let lines: Vec<&str> = all.body["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let marker = lines
        .iter()
        .position(|l| *l == "--- attempt 2 ---")
        .unwrap_or_else(|| panic!("no marker in {lines:?}"));
    let first = lines
        .iter()
        .position(|l| l.contains("hello from attempt 1"))
        .expect("attempt 1 line");
    let second = lines
        .iter()
        .position(|l| l.contains("hello from attempt 2"))
        .expect("attempt 2 line");
    assert!(first < marker && marker < second, "{lines:?}");

    for n in [1, 2] {
        let a = api
            .call("GET", &format!("/runs/{run}/logs?attempt={n}"), None)
            .await
            .expect("logs of one attempt");
        assert_eq!(a.status, 200, "{:?}", a.body);
        let mine: Vec<&str> = a.body["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert!(
            mine.iter()
                .any(|l| l.contains(&format!("hello from attempt {n}"))),
            "attempt {n}: {mine:?}"
        );
        let other = 3 - n;
        assert!(
            !mine
                .iter()
                .any(|l| l.contains(&format!("hello from attempt {other}"))
                    || l.starts_with("--- attempt")),
            "attempt {n}: {mine:?}"
        );
    }
    let a = api
        .call("GET", &format!("/runs/{run}/logs?attempt=0"), None)
        .await
        .expect("attempt 0");
    assert_eq!(a.status, 400, "{:?}", a.body);

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
