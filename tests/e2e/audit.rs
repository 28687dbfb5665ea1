//! Named tokens and the audit trail: every admin write is recorded exactly once with the
//! name of the token that made it, refused attempts by a read token are not, the trail is
//! listed and filtered over the API (admin only), tokens in the tokens file rotate without a
//! restart, and log-follow streams are capped per token and per process.

use std::collections::BTreeMap;
use std::time::Duration;

use dotjob_scheduler::ApiOptions;
use dotjob_scheduler::api::auth::Secret;
use dotjob_scheduler::api::limits::SecurityOptions;
use dotjob_tests::{Api, InProcess, delete_prefix, shared_redis, unique_prefix, wait_for};
use serde_json::{Value, json};

use crate::common::TestWorker;

const ADMIN: &str = "admin-audit-5e1d7c";
const READ: &str = "read-audit-9b3f2a";
const OPS: &str = "ops-audit-4c8e1f";
const OPS_ROTATED: &str = "ops-audit-rotated-7a2d";
const DASH: &str = "dash-audit-3f6b0e";

/// Every entry of the trail, newest first, through pages of 3.
async fn trail(api: &Api, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let a = api
            .call("GET", &format!("/audit?limit=3{sep}{query}{cursor}"), None)
            .await
            .expect("audit");
        assert_eq!(a.status, 200, "{:?}", a.body);
        out.extend(a.body["items"].as_array().cloned().unwrap_or_default());
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

async fn ok(api: &Api, method: &str, path: &str, body: Option<Value>) -> Value {
    let a = api
        .call(method, path, body.as_ref())
        .await
        .expect("request");
    assert!(
        (200..300).contains(&a.status),
        "{method} {path} → {}: {}",
        a.status,
        a.body
    );
    a.body
}

#[tokio::test]
async fn audit_records_each_admin_write_once_with_its_tokens_name() {
    let url = shared_redis();
    let prefix = unique_prefix("audit");
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("# team tokens\nops admin {OPS}\ndash read {DASH}\n"),
    )
    .expect("write");
    let sched = InProcess::start_exposed(
        &url,
        &prefix,
        None,
        dotjob_scheduler::EngineSettings::default(),
        ApiOptions {
            admin_token: Some(Secret::new(ADMIN)),
            read_token: Some(Secret::new(READ)),
            security: SecurityOptions {
                tokens_file: Some(tokens.clone()),
                ..SecurityOptions::default()
            },
            ..ApiOptions::default()
        },
    )
    .await;
    let worker = TestWorker::start(&url, &prefix, "aud");
    let base = Api::new(&sched.base);
    base.wait_ready().await;
    let (ops, admin, dash, read) = (
        base.with_token(OPS),
        base.with_token(ADMIN),
        base.with_token(DASH),
        base.with_token(READ),
    );

    // Writes, each by a named admin token; (action, token) in order.
    let mut done: Vec<(&str, &str)> = Vec::new();
    let job = ok(
        &ops,
        "POST",
        "/jobs",
        Some(
            json!({"name": "audited", "group": "aud", "handler": "sleep", "params": {"ms": 30000}}),
        ),
    )
    .await;
    let id = job["id"].as_str().expect("id").to_owned();
    let v1 = job["version"].as_u64().expect("version");
    done.push(("create_job", "ops"));
    let patched = ok(
        &ops,
        "PATCH",
        &format!("/jobs/{id}"),
        Some(json!({"description": "changed"})),
    )
    .await;
    let v2 = patched["version"].as_u64().expect("version");
    done.push(("update_job", "ops"));
    let bad = ops
        .call(
            "PATCH",
            &format!("/jobs/{id}"),
            Some(&json!({"schedule": "61 * * * *"})),
        )
        .await
        .expect("patch");
    assert_eq!(bad.status, 400);
    done.push(("update_job", "ops"));
    ok(&admin, "POST", &format!("/jobs/{id}/pause"), None).await;
    done.push(("pause_job", "admin"));
    ok(&ops, "POST", &format!("/jobs/{id}/resume"), None).await;
    done.push(("resume_job", "ops"));
    let run = ok(&ops, "POST", &format!("/jobs/{id}/trigger"), None).await["run_id"]
        .as_str()
        .expect("run_id")
        .to_owned();
    done.push(("trigger_job", "ops"));
    ok(&ops, "POST", &format!("/runs/{run}/cancel"), None).await;
    done.push(("cancel_run", "ops"));
    let executor = wait_for("the worker to register", Duration::from_secs(20), || {
        let api = ops.clone();
        async move {
            api.call("GET", "/groups/aud/executors", None)
                .await
                .ok()?
                .body[0]["id"]
                .as_str()
                .map(str::to_owned)
        }
    })
    .await;
    ok(
        &ops,
        "POST",
        &format!("/groups/aud/executors/{executor}/disable"),
        None,
    )
    .await;
    done.push(("disable_executor", "ops"));
    ok(
        &ops,
        "POST",
        &format!("/groups/aud/executors/{executor}/enable"),
        None,
    )
    .await;
    done.push(("enable_executor", "ops"));
    let doomed = ok(&ops, "POST", "/jobs", Some(json!({"name": "doomed", "group": "aud", "handler": "fail", "max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 100}}))).await;
    let doomed = doomed["id"].as_str().expect("id").to_owned();
    done.push(("create_job", "ops"));
    let d_run = ops.trigger(&doomed, None).await;
    done.push(("trigger_job", "ops"));
    assert_eq!(
        ops.wait_run_final(&d_run, Duration::from_secs(60)).await["status"],
        "dead"
    );
    let letters = ok(&ops, "GET", "/groups/aud/dead", None).await;
    let entry = letters["items"][0]["entry"]
        .as_str()
        .expect("a dead letter")
        .to_owned();
    ok(
        &ops,
        "POST",
        &format!("/groups/aud/dead/{entry}/requeue"),
        None,
    )
    .await;
    done.push(("requeue_dead_letter", "ops"));

    // A read token cannot write, and its attempts are not recorded.
    for (method, path) in [
        ("PATCH", format!("/jobs/{id}")),
        ("POST", "/jobs".to_owned()),
        ("DELETE", format!("/jobs/{id}")),
    ] {
        let a = dash
            .call(
                method,
                &path,
                Some(&json!({"name": "x", "handler": "noop"})),
            )
            .await
            .expect("call");
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    let a = read
        .call("POST", &format!("/jobs/{id}/pause"), None)
        .await
        .expect("call");
    assert_eq!(a.status, 403);
    // The trail is for admin tokens only.
    assert_eq!(
        dash.call("GET", "/audit", None).await.expect("call").status,
        403
    );

    ok(&admin, "DELETE", &format!("/jobs/{id}"), None).await;
    done.push(("delete_job", "admin"));

    let entries = trail(&ops, "").await;
    let got: Vec<(&str, &str)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["token"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got, done,
        "every write once, in order, with its token's name"
    );
    let by_action: BTreeMap<&str, &Value> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e))
        .collect();
    let update_ok = entries
        .iter()
        .find(|e| e["action"] == "update_job" && e["status"] == 200)
        .expect("update");
    assert_eq!(
        (
            update_ok["version_before"].as_u64(),
            update_ok["version_after"].as_u64()
        ),
        (Some(v1), Some(v2))
    );
    assert_eq!(
        (update_ok["job"].as_str(), update_ok["group"].as_str()),
        (Some(id.as_str()), Some("aud"))
    );
    let update_bad = entries
        .iter()
        .find(|e| e["action"] == "update_job" && e["status"] == 400)
        .expect("rejected update");
    assert_eq!(
        (update_bad["outcome"].as_str(), update_bad["error"].as_str()),
        (Some("rejected"), Some("invalid"))
    );
    let delete = by_action["delete_job"];
    assert!(
        delete["version_before"].as_u64().is_some() && delete.get("version_after").is_none(),
        "{delete}"
    );
    assert_eq!(by_action["cancel_run"]["run"], run.as_str());
    assert_eq!(by_action["cancel_run"]["job"], id.as_str());
    assert_eq!(by_action["disable_executor"]["executor"], executor.as_str());
    assert_eq!(by_action["requeue_dead_letter"]["entry"], entry.as_str());
    assert_eq!(by_action["requeue_dead_letter"]["job"], doomed.as_str());
    assert!(
        entries
            .iter()
            .all(|e| e["token"] != "dash" && e["token"] != "read")
    );

    // Filters, and the same stream through redis-cli's eyes.
    let paused = trail(&ops, "action=pause_job").await;
    assert_eq!(
        (paused.len(), paused[0]["token"].as_str()),
        (1, Some("admin"))
    );
    assert_eq!(trail(&ops, "token=admin").await.len(), 2);
    assert_eq!(trail(&ops, &format!("job={id}")).await.len(), 8);
    let future = trail(&ops, "from=2100-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let bad = ops
        .call("GET", "/audit?cursor=nope", None)
        .await
        .expect("call");
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("cursor"))
    );
    let mut c = dotjob_tests::raw_conn(&url).await;
    let len: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}:audit"))
        .query_async(&mut c)
        .await
        .expect("xlen");
    assert_eq!(len, done.len());

    // Rotating a token in the file: the new one works and the old one stops, no restart.
    std::fs::write(
        &tokens,
        format!("ops admin {OPS_ROTATED}\ndash read {DASH}\n"),
    )
    .expect("rewrite");
    let rotated = base.with_token(OPS_ROTATED);
    wait_for("the rotated token to work", Duration::from_secs(15), || {
        let api = rotated.clone();
        async move { (api.call("GET", "/jobs", None).await.ok()?.status == 200).then_some(()) }
    })
    .await;
    assert_eq!(
        ops.call("GET", "/jobs", None).await.expect("call").status,
        401
    );

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn log_follow_streams_are_capped_per_token_and_per_process() {
    let url = shared_redis();
    let prefix = unique_prefix("follow-cap");
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("ops admin {OPS}\ndash read {DASH}\n")).expect("write");
    let sched = InProcess::start_exposed(
        &url,
        &prefix,
        None,
        dotjob_scheduler::EngineSettings::default(),
        ApiOptions {
            admin_token: Some(Secret::new(ADMIN)),
            security: SecurityOptions {
                tokens_file: Some(tokens),
                follow_max: 2,
                follow_max_per_token: 1,
                ..SecurityOptions::default()
            },
            ..ApiOptions::default()
        },
    )
    .await;
    let base = Api::new(&sched.base);
    base.wait_ready().await;
    // No worker serves this group: the run stays queued and a follow stays open.
    let job = ok(
        &base.with_token(ADMIN),
        "POST",
        "/jobs",
        Some(json!({"name": "waits", "group": "nobody", "handler": "noop"})),
    )
    .await;
    let run = base
        .with_token(ADMIN)
        .trigger(job["id"].as_str().expect("id"), None)
        .await;
    let http = reqwest::Client::new();
    let follow = |token: &'static str| {
        http.get(format!("{}/api/v1/runs/{run}/logs?follow=true", sched.base))
            .bearer_auth(token)
            .send()
    };
    let first = follow(DASH).await.expect("follow");
    assert_eq!(first.status().as_u16(), 200);
    let second = follow(DASH).await.expect("follow");
    assert_eq!(second.status().as_u16(), 429);
    let body: Value = second.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("token `dash`"),
        "{body}"
    );
    let other = follow(OPS).await.expect("follow");
    assert_eq!(
        other.status().as_u16(),
        200,
        "another token has its own allowance"
    );
    let third = follow(ADMIN).await.expect("follow");
    assert_eq!(third.status().as_u16(), 429, "the process bound");
    let body: Value = third.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("DOTJOB_FOLLOW_MAX"),
        "{body}"
    );
    // Plain reads are not counted.
    assert_eq!(
        base.with_token(ADMIN)
            .call("GET", &format!("/runs/{run}/logs"), None)
            .await
            .expect("logs")
            .status,
        200
    );
    drop((first, other));
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
