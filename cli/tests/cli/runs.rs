//! `dotjob trigger --wait` (its exit code is the run's outcome, and it prints the run's log),
//! dead letters and executors, `dotjob logs -f` (prints a live run's lines as they come and
//! ends with the run) and `dotjob logs --attempt N` (one attempt's lines).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dotjob_tests::ms;

use crate::support::{CHATTY_LINES, Setup, TestWorker, command};

/// Wall-clock milliseconds since the epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Creates a job of group `w` through the CLI (YAML on standard input, with `extra`
/// lines); returns its id.
async fn create_with(setup: &Setup, name: &str, handler: &str, extra: &str) -> String {
    let yaml = format!("name: {name}\ngroup: w\nhandler: {handler}\n{extra}");
    let out = setup
        .dotjob_stdin(&["jobs", "create", "-f", "-", "-o", "json"], &yaml)
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["id"].as_str().expect("id").to_owned()
}

/// Creates a job of group `w` with the defaults; returns its id.
async fn create(setup: &Setup, name: &str, handler: &str) -> String {
    create_with(setup, name, handler, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_wait_exits_with_the_runs_outcome() {
    let setup = Setup::start("cli-wait").await;
    let _worker = TestWorker::start(&setup, "w");
    let ok = create(&setup, "succeeds", "ok").await;
    create(&setup, "fails", "fail").await;

    // By group/name, following the run to its end.
    let out = setup
        .dotjob(&["trigger", "w/succeeds", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(" succeeded (attempt 1"),
        "{}",
        out.stdout
    );

    let out = setup
        .dotjob(&["trigger", "w/fails", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(" failed (attempt 1"), "{}", out.stdout);
    assert!(out.stdout.contains("failing on purpose"), "{}", out.stdout);

    // By id, as JSON: one document with the final run.
    let out = setup
        .dotjob(&[
            "trigger",
            &ok,
            "--wait",
            "-o",
            "json",
            "--params",
            r#"{"x": 1}"#,
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["status"], "succeeded", "{doc}");
    assert_eq!(doc["runs"][0]["status"], "succeeded", "{doc}");
    assert_eq!(doc["runs"][0]["result"]["ok"], true, "{doc}");
    let run_id = doc["run_id"].as_str().unwrap();
    let run = setup.api.run(run_id).await;
    assert_eq!(run["params"]["x"], 1, "{run}");

    // The run list shows both outcomes.
    let out = setup
        .dotjob(&["runs", "list", "--group", "w", "-o", "json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let statuses: Vec<String> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| *s == "failed").count(),
        1,
        "{statuses:?}"
    );

    // Attempts exhausted: the run ends dead; the dead letter is listed and requeued.
    let retry = "max_attempts: 2\nbackoff: {base_ms: 10, max_ms: 10}\n";
    create_with(&setup, "dies", "retry", retry).await;
    let out = setup
        .dotjob(&["trigger", "w/dies", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(" dead (attempt 2"), "{}", out.stdout);
    let dead = setup.dotjob(&["dead", "w", "-o", "json"]).await.json();
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    let out = setup
        .dotjob(&["dead", "w", "requeue", "--all", "-o", "json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let requeued = out.json();
    assert_eq!(requeued[0]["entry"], dead[0]["entry"], "{requeued}");
    assert!(requeued[0]["run_id"].is_string(), "{requeued}");

    // The worker is listed; disabling and enabling it shows in its record.
    let execs = setup.dotjob(&["executors", "w", "-o", "json"]).await.json();
    let exec = execs[0]["id"].as_str().expect("an executor").to_owned();
    let out = setup
        .dotjob(&["executors", "w", "disable", &exec, "-o", "json"])
        .await;
    assert_eq!(out.json()["disabled"], true, "{out:?}");
    let out = setup
        .dotjob(&["executors", "w", "enable", &exec, "-o", "json"])
        .await;
    assert_eq!(out.json()["disabled"], false, "{out:?}");
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_a_live_run_and_ends_with_it() {
    let setup = Setup::start("cli-logs").await;
    let _worker = TestWorker::start(&setup, "w");
    create(&setup, "chatty", "chatty").await;
    let out = setup.dotjob(&["trigger", "w/chatty", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let run_id = out.json()["run_id"].as_str().unwrap().to_owned();

    let spawned_ms = now_ms();
    let follower = command(&setup.base, &["logs", "-f", &run_id])
        .spawn()
        .expect("spawn");
    // The run is live while the follower starts.
    let run = setup.api.run(&run_id).await;
    assert!(
        matches!(run["status"].as_str(), Some("queued" | "running")),
        "{run}"
    );
    let out = tokio::time::timeout(Duration::from_secs(30), follower.wait_with_output())
        .await
        .expect("logs -f ended")
        .expect("output");
    let ended_ms = now_ms();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = (0..CHATTY_LINES).map(|i| format!("line {i}")).collect();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got, want, "logs -f printed");
    // It started before the run finished and ended after: it followed the live run to its
    // end (same host, so one clock up to a few ms).
    let run = setup.api.run(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let finished = ms(&run["finished_at"]);
    assert!(
        spawned_ms < finished,
        "started {spawned_ms}, run finished {finished}"
    );
    assert!(
        ended_ms + 50 >= finished,
        "ended {ended_ms}, run finished {finished}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("succeeded"));

    // Without -f: the same lines, at once; as JSON, one document.
    let out = setup.dotjob(&["logs", &run_id, "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.ends_with("}\n"), "{:?}", out.stdout);
    let doc = out.json();
    assert_eq!(
        doc["lines"].as_array().unwrap().len(),
        CHATTY_LINES,
        "{doc}"
    );
    assert_eq!(doc["complete"], true);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_one_attempt() {
    let setup = Setup::start("cli-attempt").await;
    let _worker = TestWorker::start(&setup, "w");
    let retry = "max_attempts: 3\nbackoff: {base_ms: 10, max_ms: 10}\n";
    create_with(&setup, "flaky", "flaky", retry).await;

    // Attempt 1 fails, attempt 2 succeeds; --wait prints the whole log under the run.
    let out = setup
        .dotjob(&["trigger", "w/flaky", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let printed: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(printed.len(), 4, "{}", out.stdout);
    assert!(
        printed[0].starts_with("run ") && printed[0].contains(" succeeded (attempt 2"),
        "{}",
        out.stdout
    );
    assert_eq!(
        printed[1..],
        [
            "  attempt 1 starts",
            "  --- attempt 2 ---",
            "  attempt 2 starts"
        ]
    );
    let run_id = printed[0].split(' ').nth(1).expect("run id").to_owned();

    // Without --attempt: every attempt, the retry's after its marker.
    let out = setup.dotjob(&["logs", &run_id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "attempt 1 starts\n--- attempt 2 ---\nattempt 2 starts\n"
    );
    // One attempt's lines, with no marker.
    let out = setup.dotjob(&["logs", &run_id, "--attempt", "1"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "attempt 1 starts\n"),
        "{out:?}"
    );
    let out = setup
        .dotjob(&["logs", &run_id, "--attempt", "2", "-o", "json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(
        doc["lines"],
        serde_json::json!(["attempt 2 starts"]),
        "{doc}"
    );
    assert_eq!(doc["status"], "succeeded", "{doc}");

    // An attempt that never happened is not found (exit 3), said in words.
    let out = setup.dotjob(&["logs", &run_id, "--attempt", "3"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("has had 2 attempt(s), so it has no attempt 3"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // Attempts count from 1, and one attempt cannot be followed: usage errors (exit 2).
    for args in [
        &["logs", run_id.as_str(), "--attempt", "0"][..],
        &["logs", run_id.as_str(), "--attempt", "1", "-f"][..],
    ] {
        let out = setup.dotjob(args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_an_idempotency_key_enqueues_once() {
    let setup = Setup::start("cli-idem").await;
    let id = create(&setup, "once", "ok").await;
    let args = [
        "trigger",
        "w/once",
        "--idempotency-key",
        "deploy-42",
        "-o",
        "json",
    ];
    let first = setup.dotjob(&args).await;
    assert_eq!(first.code, 0, "{first:?}");
    let again = setup.dotjob(&args).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(first.json()["run_id"], again.json()["run_id"], "{again:?}");
    assert_eq!(again.json()["replayed"], true, "{again:?}");
    assert!(first.json().get("replayed").is_none(), "{first:?}");
    let table = setup
        .dotjob(&["trigger", "w/once", "--idempotency-key", "deploy-42"])
        .await;
    assert!(table.stdout.contains("queued already"), "{table:?}");
    assert_eq!(
        setup.api.runs(&id).await.len(),
        1,
        "a repeated key enqueued again"
    );
    setup.finish().await;
}
