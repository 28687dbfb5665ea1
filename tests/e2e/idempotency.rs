//! Idempotent triggers: a trigger with an idempotency key (body `idempotency_key` or header
//! `Idempotency-Key`) seen for the same job within the window answers the first run with
//! `replayed: true` and enqueues nothing; another key, or the same after the window, enqueues
//! a new run. The audit trail records every trigger, replays marked.

use std::time::{Duration, Instant};

use dotjob_scheduler::ApiOptions;
use dotjob_scheduler::api::idempotency::IdempotencyWindow;
use dotjob_tests::{Api, InProcess, delete_prefix, shared_redis, unique_prefix, wait_for};
use serde_json::{Value, json};

/// `POST /jobs/{id}/trigger` with an optional `Idempotency-Key` header and body.
async fn trigger(base: &str, job: &str, header: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{base}/api/v1/jobs/{job}/trigger"));
    if let Some(h) = header {
        req = req.header("Idempotency-Key", h);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("trigger");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const WINDOW: Duration = Duration::from_secs(3);

#[tokio::test]
async fn the_same_key_gives_one_run_until_the_window_ends() {
    let url = shared_redis();
    let prefix = unique_prefix("idem");
    let api_opts = ApiOptions {
        idempotency_window: IdempotencyWindow(WINDOW),
        ..ApiOptions::default()
    };
    let sched = InProcess::start_api(&url, &prefix, api_opts).await;
    let base = sched.base.clone();
    let api = Api::new(&base);
    // No worker: runs stay queued, and every enqueued run is counted.
    let job = api
        .create_job(&json!({"name": "billing export", "group": "idem", "handler": "noop"}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let (st, first) = trigger(&base, &id, Some("order-4711"), None).await;
    assert_eq!(st, 202, "{first}");
    assert!(first.get("replayed").is_none(), "{first}");
    let run = first["run_id"].as_str().unwrap().to_owned();
    // The same key again, by header, by body, by both: the first run, nothing enqueued.
    for (header, body) in [
        (Some("order-4711"), None),
        (None, Some(json!({"idempotency_key": "order-4711"}))),
        (
            Some("order-4711"),
            Some(json!({"idempotency_key": "order-4711", "params": {"x": 1}})),
        ),
    ] {
        let (st, again) = trigger(&base, &id, header, body).await;
        assert_eq!(st, 202, "{again}");
        assert_eq!(again["run_id"], json!(run), "{again}");
        assert_eq!(again["replayed"], true, "{again}");
        assert_eq!(again["job_id"], json!(id), "{again}");
    }
    assert!(started.elapsed() < WINDOW, "the test ran past the window");
    assert_eq!(
        api.runs(&id).await.len(),
        1,
        "a repeated key enqueued a run"
    );

    // Another key is another run; no key is a run each time.
    let (st, other) = trigger(&base, &id, Some("order-4712"), None).await;
    assert_eq!(st, 202, "{other}");
    assert_ne!(other["run_id"], json!(run));
    assert!(other.get("replayed").is_none(), "{other}");
    trigger(&base, &id, None, None).await;
    assert_eq!(api.runs(&id).await.len(), 3);

    // Bad keys: a 400 naming the field, and nothing enqueued.
    let long = "k".repeat(201);
    for (header, body, field) in [
        (
            Some("a"),
            Some(json!({"idempotency_key": "b"})),
            "idempotency_key",
        ),
        (
            None,
            Some(json!({"idempotency_key": long})),
            "idempotency_key",
        ),
        (Some(long.as_str()), None, "Idempotency-Key"),
        (
            None,
            Some(json!({"idempotency_key": ""})),
            "idempotency_key",
        ),
        (
            None,
            Some(json!({"idempotency_key": 42})),
            "idempotency_key",
        ),
    ] {
        let (st, err) = trigger(&base, &id, header, body).await;
        assert_eq!(st, 400, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    assert_eq!(
        api.runs(&id).await.len(),
        3,
        "a refused trigger enqueued a run"
    );

    // After the window the key is new again: one more run, and only one.
    let fresh = wait_for("the key to expire", WINDOW * 5, || {
        let base = base.clone();
        let id = id.clone();
        async move {
            let (st, a) = trigger(&base, &id, Some("order-4711"), None).await;
            assert_eq!(st, 202, "{a}");
            (a["replayed"] != true).then_some(a)
        }
    })
    .await;
    assert!(started.elapsed() >= WINDOW, "the key expired early");
    assert_ne!(fresh["run_id"], json!(run));
    assert_eq!(api.runs(&id).await.len(), 4);

    // The audit trail has every trigger; the replays are marked.
    let audit = api
        .call("GET", "/audit?action=trigger_job&limit=100", None)
        .await
        .unwrap();
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let entries = audit.body["items"].as_array().unwrap().clone();
    let ok: Vec<&Value> = entries.iter().filter(|e| e["status"] == 202).collect();
    let replayed = ok.iter().filter(|e| e["replayed"] == true).count();
    assert!(
        replayed >= 3,
        "replays not marked in the audit trail: {entries:?}"
    );
    assert_eq!(ok.len() - replayed, 4, "{entries:?}");
    assert!(
        ok.iter()
            .filter(|e| e["replayed"] == true)
            .all(|e| e["run"] == json!(run)),
        "{entries:?}"
    );
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_replayed_key_is_not_refused_by_forbid_and_keys_are_per_job() {
    let url = shared_redis();
    let prefix = unique_prefix("idem-forbid");
    let sched = InProcess::start(&url, &prefix).await;
    let base = sched.base.clone();
    let api = Api::new(&base);
    let job = api
        .create_job(
            &json!({"name": "one at a time", "group": "idf", "handler": "noop",
            "concurrency": "forbid"}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let other = api
        .create_job(&json!({"name": "other", "group": "idf", "handler": "noop",
            "routing": {"mode": "sharded", "shards": 3}}))
        .await;
    let other_id = other["id"].as_str().unwrap().to_owned();

    let (st, first) = trigger(&base, &id, Some("k"), None).await;
    assert_eq!(st, 202, "{first}");
    // The retry of a trigger that went through answers its run, although a run is in flight.
    let (st, again) = trigger(&base, &id, Some("k"), None).await;
    assert_eq!((st, &again["run_id"]), (202, &first["run_id"]), "{again}");
    assert_eq!(again["replayed"], true);
    // A new key is a new run: refused, as the first one still holds the job.
    let (st, refused) = trigger(&base, &id, Some("k2"), None).await;
    assert_eq!(st, 409, "{refused}");
    // The same key on another job is that job's own; a sharded job answers its first shard.
    let (st, s) = trigger(&base, &other_id, Some("k"), None).await;
    assert_eq!(st, 202, "{s}");
    let shard0 = s["run_id"].as_str().unwrap().to_owned();
    assert!(shard0.ends_with("-s0"), "{shard0}");
    let (_, s_again) = trigger(&base, &other_id, Some("k"), None).await;
    assert_eq!(s_again["run_id"], json!(shard0), "{s_again}");
    assert_eq!(s_again["replayed"], true);
    assert_eq!(api.runs(&id).await.len(), 1);
    assert_eq!(api.runs(&other_id).await.len(), 3);
    delete_prefix(&url, &prefix).await;
}
