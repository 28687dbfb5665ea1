//! A run's log lines: read plainly, from an offset, and followed live as Server-Sent Events
//! (resumable with `Last-Event-ID`). The runs are the stock `shell` handler's, which logs
//! each stdout line as it comes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{LOGS, Walk, Workers};

/// One Server-Sent Event.
#[derive(Debug, Default)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads SSE frames from `resp` until the stream ends, calling `seen` on each event as it
/// arrives.
async fn read_events(mut resp: reqwest::Response, mut seen: impl AsyncFnMut(&Sse)) -> Vec<Sse> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("stream chunk") {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut ev = Sse::default();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    ev.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    ev.data = serde_json::from_str(v.trim()).expect("data is JSON");
                }
            }
            if ev.event.is_empty() {
                continue; // keep-alive comment
            }
            seen(&ev).await;
            out.push(ev);
        }
    }
    out
}

/// Triggers a shell job of `default` printing `line-1` … `line-6`, each after `pause`
/// seconds (`0` for none); returns the run id.
async fn printing_run(w: &Walk, pause: &str) -> String {
    let script = format!("for i in 1 2 3 4 5 6; do echo line-$i; sleep {pause}; done");
    let job = w
        .job(
            "ticker",
            json!({"group": "default", "handler": "shell", "timeout_ms": 30000,
                "params": {"command": ["sh", "-c", script]}}),
        )
        .await;
    w.trigger(&job, None).await
}

/// A finished run that logged `line-1` … `line-6`.
async fn finished_run(w: &Walk) -> String {
    let run = printing_run(w, "0").await;
    assert_eq!(w.final_run(&run).await["status"], "succeeded");
    run
}

/// Starts following a run's log, with `Last-Event-ID: last` if given.
async fn follow(w: &Walk, run: &str, last: Option<&str>) -> reqwest::Response {
    let url = format!("{}/api/v1/runs/{run}/logs?follow=true", w.sched.base);
    let mut req = reqwest::Client::new().get(url);
    if let Some(last) = last {
        req = req.header("last-event-id", last);
    }
    req.send().await.expect("follow")
}

#[tokio::test]
async fn logs_of_a_live_run_can_be_followed_as_server_sent_events() {
    let w = Walk::start("api-follow", Workers::Stock).await;
    // 6 lines, 1 s apart: the run is still running when the first line arrives, even on a
    // loaded machine.
    let run = printing_run(&w, "1").await;
    let started = Instant::now();
    let resp = follow(&w, &run, None).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let mut status_at_first_line = None;
    let events = read_events(resp, async |ev: &Sse| {
        if ev.event == "line" && status_at_first_line.is_none() {
            status_at_first_line = Some(
                w.api.run(&run).await["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    })
    .await;
    assert_eq!(
        status_at_first_line.as_deref(),
        Some("running"),
        "the first line arrives while the run still runs (the stream is live)"
    );
    let lines: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "line")
        .map(|e| &e.data["line"])
        .collect();
    let want: Vec<Value> = (1..=6).map(|i| json!(format!("line-{i}"))).collect();
    assert_eq!(
        lines,
        want.iter().collect::<Vec<_>>(),
        "every line once, in order"
    );
    let ids: Vec<Option<&str>> = events
        .iter()
        .filter(|e| e.event == "line")
        .map(|e| e.id.as_deref())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"].map(Some).to_vec());
    let end = events.last().expect("events");
    assert_eq!(end.event, "end", "the stream ends with `end`: {events:?}");
    assert_eq!(
        (
            end.data["status"].as_str(),
            end.data["next"].as_u64(),
            end.data["complete"].as_bool()
        ),
        (Some("succeeded"), Some(6), Some(true))
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    w.finish().await;
}

#[tokio::test]
async fn logs_of_a_finished_run_read_plainly_and_from_an_offset() {
    let w = Walk::start("api-logs", Workers::Stock).await;
    let run = finished_run(&w).await;
    let all = w.ok("GET", LOGS, &[&run], "", None).await;
    let want: Vec<String> = (1..=6).map(|i| format!("line-{i}")).collect();
    assert_eq!(all["lines"], json!(want));
    assert_eq!(
        (all["next"].as_u64(), all["complete"].as_bool()),
        (Some(6), Some(true))
    );
    let tail = w.ok("GET", LOGS, &[&run], "from=4", None).await;
    assert_eq!(tail["lines"], json!(["line-5", "line-6"]));
    w.finish().await;
}

#[tokio::test]
async fn logs_follow_resumes_after_the_last_event_id() {
    let w = Walk::start("api-follow-resume", Workers::Stock).await;
    let run = finished_run(&w).await;
    let events = read_events(follow(&w, &run, Some("4")).await, async |_: &Sse| {}).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["line", "line", "end"]);
    assert_eq!(events[0].data, json!({"n": 4, "line": "line-5"}));
    w.finish().await;
}

#[tokio::test]
async fn logs_refuse_bad_queries_and_unknown_runs() {
    let w = Walk::start("api-logs-bad", Workers::Stock).await;
    let run = finished_run(&w).await;
    for q in [
        "from=-1",
        "from=18446744073709551615",
        "follow=perhaps",
        "tail=1",
    ] {
        assert_eq!(
            w.go("GET", LOGS, &[&run], q, None).await.status,
            400,
            "?{q}"
        );
    }
    let unknown = w.go("GET", LOGS, &["nope-1"], "follow=true", None).await;
    assert_eq!(
        unknown.status, 404,
        "an unknown run is a 404, not an empty stream"
    );
    w.finish().await;
}
