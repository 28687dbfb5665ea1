//! Stopping a worker: the first SIGTERM logs how many runs are in flight and the grace
//! deadline, then progress while it waits; a second SIGTERM hands every in-flight run back
//! at once and exits within 2 s; another worker then finishes the run.

use std::time::{Duration, Instant};

use dotjob_tests::{Api, Proc, RedisServer, spawn_scheduler, wait_for};
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
    a.term();
    // The count and the deadline, then progress.
    let first = wait_for("the shutdown line", Duration::from_secs(10), || async {
        a.log()
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
        a.log()
            .lines()
            .find(|l| l.contains("waiting for 1 runs"))
            .map(str::to_owned)
    })
    .await;
    assert!(progress.contains("s left"), "{progress}");
    assert!(
        a.is_running(),
        "exited before the grace period:\n{}",
        a.log()
    );

    // The second signal: handed back and gone within 2 s.
    let sent = Instant::now();
    a.term();
    let code = a.wait_exit(Duration::from_secs(5)).unwrap();
    let took = sent.elapsed();
    assert_eq!(code, Some(0), "{}", a.log());
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after the second signal"
    );
    assert!(a.log().contains("second signal"), "{}", a.log());
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
