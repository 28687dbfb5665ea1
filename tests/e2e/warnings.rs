//! Write-time warnings: a job whose handler no executor of its group registers, and a trigger
//! into a group with no live executor, still succeed but say so in `warnings`; with a worker
//! serving the handler, the answers carry none.

use std::time::Duration;

use dotjob_tests::{Api, InProcess, delete_prefix, shared_redis, unique_prefix, wait_for};
use serde_json::{Value, json};

use crate::common::TestWorker;

fn warnings(body: &Value) -> Vec<String> {
    body["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn writes_warn_about_missing_executors_and_handlers_and_stay_quiet_otherwise() {
    let url = shared_redis();
    let prefix = unique_prefix("warn");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);

    // No executor at all: the job is created, with a warning; so is the trigger.
    let job = api
        .create_job(&json!({"name": "w", "group": "warn", "handler": "noop"}))
        .await;
    let w = warnings(&job);
    assert_eq!(w.len(), 1, "{job}");
    assert!(
        w[0].contains("\"warn\"") && w[0].contains("\"noop\""),
        "{w:?}"
    );
    let id = job["id"].as_str().expect("id").to_owned();
    let a = api
        .call("POST", &format!("/jobs/{id}/trigger"), None)
        .await
        .expect("trigger");
    assert_eq!(a.status, 202, "{:?}", a.body);
    let w = warnings(&a.body);
    assert_eq!(w.len(), 1, "{:?}", a.body);
    assert!(w[0].contains("no live executor"), "{w:?}");

    // A live worker serving `noop`: no warnings; an unknown handler is named with the known ones.
    let worker = TestWorker::start(&url, &prefix, "warn");
    wait_for("the worker to register", Duration::from_secs(10), || {
        let api = api.clone();
        async move {
            let a = api.call("GET", "/groups/warn/executors", None).await.ok()?;
            let alive = a.body["items"]
                .as_array()
                .or(a.body.as_array())
                .is_some_and(|x| x.iter().any(|e| e["alive"] == true));
            alive.then_some(())
        }
    })
    .await;
    let ok = api
        .create_job(&json!({"name": "ok", "group": "warn", "handler": "noop"}))
        .await;
    assert!(ok.get("warnings").is_none(), "{ok}");
    let a = api
        .call("POST", &format!("/jobs/{id}/trigger"), None)
        .await
        .expect("trigger");
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert!(a.body.get("warnings").is_none(), "{:?}", a.body);
    let nope = api
        .create_job(&json!({"name": "nope", "group": "warn", "handler": "nope"}))
        .await;
    let w = warnings(&nope);
    assert_eq!(w.len(), 1, "{nope}");
    assert!(w[0].contains("\"nope\"") && w[0].contains("noop"), "{w:?}");
    // Changing it to a served handler clears the warning.
    let nid = nope["id"].as_str().expect("id");
    let a = api
        .call(
            "PATCH",
            &format!("/jobs/{nid}"),
            Some(&json!({"handler": "echo"})),
        )
        .await
        .expect("patch");
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(a.body.get("warnings").is_none(), "{:?}", a.body);

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
