//! Sharded jobs (one run per shard, each with its index and parameter) and child jobs (fired
//! when a run succeeds).

use std::collections::BTreeMap;
use std::time::Duration;

use dotjob_tests::{Api, InProcess, delete_prefix, shared_redis, unique_prefix, wait_for};
use serde_json::{Value, json};

use crate::common::TestWorker;

/// A job's runs grouped by scheduled instant.
fn by_tick(runs: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in runs {
        m.entry(r["scheduled_at"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(r);
    }
    m
}

/// Every run of one tick: shards 0..n once each, succeeded, with the shard's parameter.
fn assert_all_shards(tick: &str, runs: &[&Value], params: &[Value]) {
    let mut seen: Vec<u64> = runs.iter().map(|r| r["shard"].as_u64().unwrap()).collect();
    seen.sort_unstable();
    let want: Vec<u64> = (0..params.len() as u64).collect();
    assert_eq!(seen, want, "shards of tick {tick}: {runs:?}");
    for r in runs {
        let k = r["shard"].as_u64().unwrap() as usize;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["shards"], json!(params.len()), "{r}");
        assert_eq!(r["shard_param"], params[k], "{r}");
        assert!(
            r["id"].as_str().unwrap().ends_with(&format!("-s{k}")),
            "{r}"
        );
        // The handler saw the same shard.
        assert_eq!(
            r["result"],
            json!({"shard": k, "shards": params.len(), "param": params[k]}),
            "{r}"
        );
    }
}

#[tokio::test]
async fn a_sharded_job_runs_every_shard_of_every_tick_once() {
    let url = shared_redis();
    let prefix = unique_prefix("shard");
    let sched = InProcess::start(&url, &prefix).await;
    let _worker = TestWorker::start(&url, &prefix, "sh");
    let api = Api::new(&sched.base);
    let params = vec![json!("eu"), json!({"region": "us"}), json!(3)];
    let job = api
        .create_job(
            &json!({"name": "sharded", "group": "sh", "handler": "shard",
            "schedule": "*/1 * * * * *",
            "routing": {"mode": "sharded", "shards": 3, "shard_params": params}}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["routing"]["shards"], 3, "{job}");

    // Three whole ticks, each with its three shards finished.
    let runs = wait_for("3 ticks of 3 shards", Duration::from_secs(20), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let runs = api.runs(&id).await;
            let done = by_tick(&runs)
                .values()
                .filter(|v| v.len() == 3 && v.iter().all(|r| r["status"] == "succeeded"))
                .count();
            (done >= 3).then_some(runs)
        }
    })
    .await;
    api.call("POST", &format!("/jobs/{id}/pause"), None)
        .await
        .unwrap();
    let ticks = by_tick(&runs);
    for (tick, rs) in &ticks {
        assert!(rs.len() <= 3, "tick {tick} has {} runs: {rs:?}", rs.len());
        if rs.iter().all(|r| r["status"] == "succeeded") && rs.len() == 3 {
            assert_all_shards(tick, rs, &params);
        }
    }

    // A manual trigger is one run per shard too; the answer names the first shard's run.
    let a = api
        .call("POST", &format!("/jobs/{id}/trigger"), Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(a.status, 202, "{:?}", a.body);
    let first = a.body["run_id"].as_str().unwrap().to_owned();
    assert!(first.ends_with("-s0"), "{first}");
    let base = first.trim_end_matches("-s0").to_owned();
    let mut manual = Vec::new();
    for k in 0..3 {
        manual.push(
            api.wait_run_final(&format!("{base}-s{k}"), Duration::from_secs(15))
                .await,
        );
    }
    assert!(
        manual.iter().all(|r| r["trigger"] == "manual"),
        "{manual:?}"
    );
    let refs: Vec<&Value> = manual.iter().collect();
    assert_all_shards("manual", &refs, &params);
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_succeeded_run_fires_its_child_jobs_and_a_failed_one_does_not() {
    let url = shared_redis();
    let prefix = unique_prefix("children");
    let sched = InProcess::start(&url, &prefix).await;
    let _parents = TestWorker::start(&url, &prefix, "parents");
    let _children = TestWorker::start(&url, &prefix, "kids");
    let api = Api::new(&sched.base);
    // The child lives in another group: children may.
    let child = api
        .create_job(&json!({"name": "child", "group": "kids", "handler": "echo",
            "params": {"from": "child"}}))
        .await;
    let child_id = child["id"].as_str().unwrap().to_owned();
    let parent = api
        .create_job(
            &json!({"name": "parent", "group": "parents", "handler": "noop",
            "children": [child_id]}),
        )
        .await;
    let parent_id = parent["id"].as_str().unwrap().to_owned();
    let bad_parent = api
        .create_job(
            &json!({"name": "failing parent", "group": "parents", "handler": "fail",
            "children": [child_id]}),
        )
        .await;

    let run = api.trigger(&parent_id, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let kids = wait_for("the child's run", Duration::from_secs(15), || {
        let api = api.clone();
        let id = child_id.clone();
        async move {
            let runs = api.runs(&id).await;
            (runs.len() == 1 && runs[0]["status"] == "succeeded").then_some(runs)
        }
    })
    .await;
    assert_eq!(kids[0]["parent_run"], json!(run), "{}", kids[0]);
    assert_eq!(kids[0]["trigger"], "child", "{}", kids[0]);
    assert_eq!(kids[0]["result"], json!({"from": "child"}), "{}", kids[0]);
    // The parent's log says which run it fired.
    let log = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .unwrap()
        .body;
    let kid_run = kids[0]["id"].as_str().unwrap();
    assert!(
        log.to_string().contains(kid_run),
        "parent log does not name {kid_run}: {log}"
    );

    // A failed parent fires nothing.
    let bad = api.trigger(bad_parent["id"].as_str().unwrap(), None).await;
    let r = api.wait_run_final(&bad, Duration::from_secs(15)).await;
    assert_eq!(r["status"], "failed", "{r}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.runs(&child_id).await.len(),
        1,
        "a failed parent fired a child"
    );

    // A child that no longer exists is reported in the parent's log, not an error of the run.
    let a = api
        .call("DELETE", &format!("/jobs/{child_id}"), None)
        .await
        .unwrap();
    assert!(a.status < 300, "{:?}", a.body);
    let run = api.trigger(&parent_id, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(15)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let log = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .unwrap()
        .body;
    assert!(log.to_string().contains("not fired"), "{log}");
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_dead_shard_is_requeued_as_that_shard_alone() {
    let url = shared_redis();
    let prefix = unique_prefix("deadshard");
    let sched = InProcess::start(&url, &prefix).await;
    let _worker = TestWorker::start(&url, &prefix, "dsh");
    let api = Api::new(&sched.base);
    let job = api
        .create_job(
            &json!({"name": "doomed shards", "group": "dsh", "handler": "fail",
            "max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 200},
            "routing": {"mode": "sharded", "shards": 2, "shard_params": ["left", "right"]}}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let first = api.trigger(&id, None).await;
    let base = first.trim_end_matches("-s0").to_owned();
    for k in 0..2 {
        let r = api
            .wait_run_final(&format!("{base}-s{k}"), Duration::from_secs(30))
            .await;
        assert_eq!(r["status"], "dead", "{r}");
    }
    let dead = api.call("GET", "/groups/dsh/dead", None).await.unwrap();
    let items = dead.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    let right = items
        .iter()
        .find(|d| d["run"] == json!(format!("{base}-s1")))
        .unwrap_or_else(|| panic!("no dead letter of shard 1: {items:?}"));
    let entry = right["entry"].as_str().unwrap();
    let rq = api
        .call("POST", &format!("/groups/dsh/dead/{entry}/requeue"), None)
        .await
        .unwrap();
    assert_eq!(rq.status, 202, "{:?}", rq.body);
    let again = rq.body["run_id"].as_str().unwrap().to_owned();
    assert!(again.ends_with("-s1"), "{again}");
    let r = api.wait_run_final(&again, Duration::from_secs(30)).await;
    assert_eq!(r["shard"], 1, "{r}");
    assert_eq!(r["shards"], 2, "{r}");
    assert_eq!(r["shard_param"], "right", "{r}");
    assert_eq!(r["trigger"], "requeue", "{r}");
    assert_eq!(r["parent_run"], json!(format!("{base}-s1")), "{r}");
    // Only that shard ran again: the job has its 2 first runs and this one.
    assert_eq!(api.runs(&id).await.len(), 3);
    delete_prefix(&url, &prefix).await;
}
