//! `DOTJOB_LOG_FORMAT=json`: every line a worker and a scheduler write is a JSON object, the lines a run's
//! execution logs carry `job.id`, `job.group`, `run.id` and `run.attempt`, and the Redis
//! password appears nowhere.

use std::time::Duration;

use dotjob_tests::{Api, Proc, RedisServer, raw_conn, spawn_scheduler, wait_for};
use serde_json::{Value, json};

#[tokio::test]
async fn json_logs_carry_the_run_span_and_no_secret() {
    let redis = RedisServer::start();
    let mut c = raw_conn(&redis.url()).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "pw-s3cret-9"])
        .query_async(&mut c)
        .await
        .unwrap();
    let url = format!("redis://:pw-s3cret-9@127.0.0.1:{}", redis.port());
    let (s, base) = spawn_scheduler(&url, "dotjob", &[("DOTJOB_LOG_FORMAT", "json")]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let w = Proc::spawn(
        "dotjob-worker",
        &["--group", "lj"],
        &[
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_SHELL_ALLOW", "false"),
            ("DOTJOB_LOG_FORMAT", "json"),
        ],
    );
    // A failed attempt is logged at info level inside the run's span.
    let job = api
        .create_job(&json!({"name": "fails", "group": "lj", "handler": "shell",
            "params": {"command": ["false"]}, "max_attempts": 1}))
        .await;
    let id = job["id"].as_str().unwrap();
    let run = api.trigger(id, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "failed", "{r}");

    let line = wait_for("a log line of the run", Duration::from_secs(10), || async {
        let log = w.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        lines
            .into_iter()
            .find(|l| l["span"]["run.id"] == run.as_str())
    })
    .await;
    let span = &line["span"];
    assert_eq!(span["job.id"], id, "{line}");
    assert_eq!(span["job.group"], "lj", "{line}");
    assert_eq!(span["run.attempt"], 1, "{line}");
    for field in ["timestamp", "level", "message"] {
        assert!(line.get(field).is_some(), "no {field}: {line}");
    }
    let log = w.log();
    assert!(log.lines().count() >= 2, "{log}");
    assert!(log.contains("worker started"), "{log}");
    assert!(
        !log.contains("pw-s3cret-9"),
        "the password is in the log:\n{log}"
    );
    // The scheduler's lines parse too, its start banner included.
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("admin API and console on"))),
        "{log}"
    );
    assert!(
        !log.contains("pw-s3cret-9"),
        "the password is in the scheduler's log"
    );
}
