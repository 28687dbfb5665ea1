//! Stopping a worker, alone or embedded in the scheduler: the first SIGTERM logs how many
//! runs are in flight and the grace deadline, then progress while it waits; a second SIGTERM
//! hands every in-flight run back at once and exits within 2 s; another worker then finishes
//! the run.

use std::time::{Duration, Instant};

use dotjob_shared::Keys;
use dotjob_tests::{Api, Proc, RedisServer, raw_conn, spawn_scheduler, wait_for};
use serde_json::json;

#[tokio::test]
async fn a_second_sigterm_hands_runs_back_at_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (_s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let api = Api::new(&base);
    api.wait_ready().await;
    // 30 s unless the marker exists: worker A naps, worker B (after the marker) does not.
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("mark");
    let script = format!("test -f {} || sleep 30", mark.display());
    let job = api
        .create_job(&json!({"name": "long", "group": "sd", "handler": "shell",
            "params": {"command": ["sh", "-c", script]}, "timeout_ms": 120_000}))
        .await;
    let id = job["id"].as_str().unwrap();
    let worker = || {
        let env = [
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_SHELL_ALLOW", "sh"),
            ("DOTJOB_RECLAIM_AFTER_MS", "1000"),
            ("DOTJOB_SHUTDOWN_GRACE_MS", "60000"),
        ];
        Proc::spawn("dotjob-worker", &["--group", "sd"], &env)
    };

    let mut a = worker();
    let run = api.trigger(id, None).await;
    api.wait_run_running(&run, Duration::from_secs(30)).await;
    first_signal(&mut a).await;
    second_signal(&mut a);
    let r = api.run(&run).await;
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["attempts"][0]["status"], "handed_back", "{r}");

    // Worker B finishes it.
    std::fs::write(&mark, "").unwrap();
    let _b = worker();
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
}

#[tokio::test]
async fn a_second_sigterm_to_the_scheduler_hands_its_embedded_runs_back_at_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("mark");
    let script = format!("test -f {} || sleep 30", mark.display());
    // A scheduler with its embedded worker serving the group.
    let scheduler = || {
        spawn_scheduler(
            &url,
            "dotjob",
            &[
                ("DOTJOB_EMBEDDED_WORKER", "sde"),
                ("DOTJOB_SHELL_ALLOW", "sh"),
                ("DOTJOB_RECLAIM_AFTER_MS", "1000"),
                ("DOTJOB_SHUTDOWN_GRACE_MS", "60000"),
            ],
        )
    };
    let (mut a, base) = scheduler();
    let api = Api::new(&base);
    api.wait_ready().await;
    let job = api
        .create_job(&json!({"name": "long", "group": "sde", "handler": "shell",
            "params": {"command": ["sh", "-c", script]}, "timeout_ms": 120_000}))
        .await;
    let id = job["id"].as_str().unwrap();
    let run = api.trigger(id, None).await;
    api.wait_run_running(&run, Duration::from_secs(30)).await;
    let holder = wait_for("the group lease", Duration::from_secs(20), || async {
        Some(lease_owner(&url, "sde").await).filter(|o| !o.is_empty())
    })
    .await;
    assert!(replicas(&url).await.contains(&holder), "{holder}");
    // Someone follows the run's log: the stream must not hold the graceful stop open.
    let follow = reqwest::get(format!("{base}/api/v1/runs/{run}/logs?follow=true"))
        .await
        .expect("follow");
    assert_eq!(follow.status(), 200);

    first_signal(&mut a).await;
    let events = tokio::time::timeout(Duration::from_secs(10), follow.text())
        .await
        .expect("the followed log ended at the first signal")
        .expect("the followed log");
    assert!(
        events.contains("event: end") && events.contains(r#""complete":false"#),
        "{events}"
    );
    second_signal(&mut a);
    let r = stored_run(&url, &run).await;
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["attempts"][0]["status"], "handed_back", "{r}");
    // The scheduler's own shutdown still happened: lease released (not left to expire),
    // replica gone, API closed.
    assert_eq!(lease_owner(&url, "sde").await, "", "lease not released");
    assert!(
        !replicas(&url).await.contains(&holder),
        "{holder} still listed"
    );
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "the API still answers"
    );

    // A second scheduler's embedded worker finishes it.
    std::fs::write(&mark, "").unwrap();
    let (_b, base_b) = scheduler();
    let api = Api::new(&base_b);
    api.wait_ready().await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
}

/// The first SIGTERM: the count and the deadline, then progress, and still running.
async fn first_signal(p: &mut Proc) {
    p.term();
    let first = wait_for("the shutdown line", Duration::from_secs(10), || async {
        p.log()
            .lines()
            .find(|l| l.contains("shutting down"))
            .map(str::to_owned)
    })
    .await;
    assert!(first.contains("1 runs in flight"), "{first}");
    assert!(first.contains("runs_in_flight=1"), "{first}");
    assert!(first.contains("grace_s=60"), "{first}");
    assert!(first.contains("deadline="), "{first}");
    let progress = wait_for("a progress line", Duration::from_secs(10), || async {
        p.log()
            .lines()
            .find(|l| l.contains("waiting for 1 runs"))
            .map(str::to_owned)
    })
    .await;
    assert!(progress.contains("s left"), "{progress}");
    assert!(
        p.is_running(),
        "exited before the grace period:\n{}",
        p.log()
    );
}

/// The second SIGTERM: handed back and gone, exit code 0, within 2 s.
fn second_signal(p: &mut Proc) {
    let sent = Instant::now();
    p.term();
    let code = p.wait_exit(Duration::from_secs(5)).unwrap();
    let took = sent.elapsed();
    assert_eq!(code, Some(0), "{}", p.log());
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after the second signal"
    );
    assert!(p.log().contains("second signal"), "{}", p.log());
}

/// The run as stored, read straight from Redis (the scheduler that served the API is gone).
async fn stored_run(url: &str, run: &str) -> serde_json::Value {
    let store = dotjob_shared::Store::new(dotjob_tests::redis_handle(url, "dotjob"));
    serde_json::to_value(store.get_run(run).await.unwrap()).unwrap()
}

/// Who holds `group`'s scheduling lease ("" when nobody).
async fn lease_owner(url: &str, group: &str) -> String {
    let mut c = raw_conn(url).await;
    let owner: Option<String> = redis::cmd("HGET")
        .arg(Keys::new("dotjob").lease(group))
        .arg("owner")
        .query_async(&mut c)
        .await
        .unwrap();
    owner.unwrap_or_default()
}

/// The scheduler replicas that beat.
async fn replicas(url: &str) -> Vec<String> {
    let mut c = raw_conn(url).await;
    redis::cmd("ZRANGE")
        .arg(Keys::new("dotjob").schedulers())
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap()
}
