//! Errors in the user's words: bad bodies, queries and schedules are refused with messages
//! that quote what was sent and never leak Rust types, serde internals or positions; a bad
//! environment variable at start is one line naming it, with exit code 2.

use std::process::Command;

use dotjob_tests::{Api, InProcess, bin, delete_prefix, shared_redis, unique_prefix};
use serde_json::{Value, json};

/// Fragments of Rust or serde internals no error message may contain.
pub const FORBIDDEN: &[&str] = &[
    "expected struct",
    "invalid type:",
    "expected u",
    "expected i",
    "at line 1 column",
    "invalid digit found in string",
    "JobInput",
    "TriggerBody",
    "ListQuery",
    " elements",
    "usize",
    "u64",
    "Option<",
];

/// Panics if `message` contains a forbidden fragment.
pub fn assert_plain(what: &str, message: &str) {
    for f in FORBIDDEN {
        assert!(
            !message.contains(f),
            "{what}: error message {message:?} leaks {f:?}"
        );
    }
}

#[tokio::test]
async fn bad_requests_are_answered_without_internals() {
    let url = shared_redis();
    let prefix = unique_prefix("errors");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let job = api
        .create_job(&json!({"name": "e", "handler": "noop"}))
        .await;
    let id = job["id"].as_str().expect("id").to_owned();
    let bodies: Vec<(&str, String, Value)> = vec![
        ("POST", "/jobs".into(), json!([])),
        ("POST", "/jobs".into(), json!("a string")),
        ("POST", "/jobs".into(), json!(42)),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "timeout_ms": "fast"}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "timeout_ms": -5}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "max_attempts": 1.5}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "enabled": "yes"}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "misfire_policy": "x"}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": "n", "handler": "h", "nope": 1}),
        ),
        (
            "POST",
            "/jobs".into(),
            json!({"name": ["n"], "handler": "h"}),
        ),
        (
            "PATCH",
            format!("/jobs/{id}"),
            json!({"timeout_ms": {"a": 1}}),
        ),
        (
            "POST",
            format!("/jobs/{id}/trigger"),
            json!({"params": 1, "extra": 2}),
        ),
        ("POST", format!("/jobs/{id}/trigger"), json!([1, 2])),
    ];
    for (m, path, body) in &bodies {
        let a = api.call(m, path, Some(body)).await.expect("call");
        assert_eq!(a.status, 400, "{m} {path} {body}: {:?}", a.body);
        let msg = a.body["error"]["message"].as_str().expect("message");
        assert_plain(&format!("{m} {path} {body}"), msg);
    }
    // Not JSON at all.
    for raw in ["{", "{\"name\": }", "[1,]", "nul", "tx", "fals"] {
        let a = api
            .raw("POST", "/api/v1/jobs", Some(raw.to_owned()))
            .await
            .expect("raw");
        assert_eq!(a.status, 400, "{raw}: {:?}", a.body);
        let msg = a.body["error"]["message"].as_str().expect("message");
        assert!(
            msg.starts_with("the body is not valid JSON"),
            "{raw}: {msg}"
        );
        assert_plain(raw, msg);
    }
    // Queries.
    for q in ["/jobs?limit=abc", "/jobs?limit=-1", "/jobs?enabled=maybe"] {
        let a = api.call("GET", q, None).await.expect("call");
        assert_eq!(a.status, 400, "{q}: {:?}", a.body);
        assert_plain(q, a.body["error"]["message"].as_str().expect("message"));
    }
    // A cron error quotes what was written, with the right bound.
    let a = api
        .call(
            "POST",
            "/jobs",
            Some(&json!({"name": "n", "handler": "h", "schedule": "61 * * * *"})),
        )
        .await
        .expect("call");
    assert_eq!(a.status, 400, "{:?}", a.body);
    let msg = a.body["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("\"61 * * * *\"") && msg.contains("0-59"),
        "{msg}"
    );
    assert!(!msg.contains("0 61 * * * *"), "{msg}");

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[test]
fn a_bad_environment_variable_at_start_is_one_line_and_exit_2() {
    let out = Command::new(bin("dotjob-scheduler"))
        .env("DOTJOB_RUNS_MAX_AGE", "abc")
        .env("DOTJOB_START_REDIS", "never")
        .output()
        .expect("run dotjob-scheduler");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("DOTJOB_RUNS_MAX_AGE: \"abc\" is not a duration like 7d or 12h"),
        "{err}"
    );
    assert!(!err.contains("--runs-max-age"), "{err}");

    let out = Command::new(bin("dotjob-worker"))
        .env("DOTJOB_CONCURRENCY", "lots")
        .output()
        .expect("run dotjob-worker");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "dotjob-worker: DOTJOB_CONCURRENCY: \"lots\" is not a whole number",
        "{err}"
    );
}
