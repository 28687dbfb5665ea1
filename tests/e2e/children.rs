//! Child jobs fire once per parent run: the child's run id derives from the parent run, so a
//! parent run again after its worker was killed (after firing the child, before its run was
//! recorded) finds the child run enqueued already. Child jobs may not form a cycle, at any
//! depth.

use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, Proc, delete_prefix, raw_conn, shared_redis, unique_prefix, wait_for,
};
use serde_json::json;

use crate::common::TestWorker;

#[tokio::test]
async fn a_parent_run_again_after_a_kill_fires_its_child_once() {
    let url = shared_redis();
    let prefix = unique_prefix("child-once");
    // No housekeeping during the test: the child group's stream keeps every entry ever
    // enqueued, so its length counts the child's enqueues.
    let engine = dotjob_scheduler::EngineSettings {
        housekeeping: Duration::from_secs(3_600),
        ..Default::default()
    };
    let sched = InProcess::start_full(&url, &prefix, None, engine).await;
    let api = Api::new(&sched.base);
    let _kids = TestWorker::start(&url, &prefix, "kids");
    let kids_stream = Keys::new(prefix.as_str()).stream("kids");
    let mut c = raw_conn(&url).await;
    let child = api
        .create_job(&json!({"name": "child", "group": "kids", "handler": "noop"}))
        .await;
    let child_id = child["id"].as_str().unwrap().to_owned();
    let parent = api
        .create_job(
            &json!({"name": "parent", "group": "parents", "handler": "shell",
            "params": {"command": ["true"]}, "max_attempts": 3,
            "backoff": {"base_ms": 100, "max_ms": 200}, "children": [child_id]}),
        )
        .await;
    let parent_id = parent["id"].as_str().unwrap().to_owned();
    let env = |hold: &'static str| {
        vec![
            ("REDIS_URL", url.clone()),
            ("DOTJOB_PREFIX", prefix.clone()),
            ("DOTJOB_SHELL_ALLOW", "true".to_owned()),
            ("DOTJOB_RECLAIM_AFTER_MS", "1500".to_owned()),
            ("DOTJOB_TEST_HOLD_AFTER_CHILDREN_MS", hold.to_owned()),
        ]
    };
    let spawn = |hold: &'static str| {
        let env = env(hold);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Proc::spawn("dotjob-worker", &["--group", "parents"], &env)
    };
    // This worker runs the parent, fires the child, then holds the run unrecorded.
    let mut holding = spawn("600000");
    let run = api.trigger(&parent_id, None).await;
    let fired = wait_for("the child to be fired", Duration::from_secs(30), || {
        let api = api.clone();
        let id = child_id.clone();
        async move {
            let runs = api.runs(&id).await;
            (!runs.is_empty()).then_some(runs)
        }
    })
    .await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["parent_run"], json!(run), "{}", fired[0]);
    assert_eq!(
        fired[0]["id"],
        json!(format!("{child_id}-c{run}")),
        "the child's run id does not derive from its parent run"
    );
    let before = api.run(&run).await;
    assert!(
        matches!(before["status"].as_str(), Some("queued" | "running")),
        "the parent was recorded before the kill: {before}"
    );
    holding.kill9();

    // Another worker reclaims the parent and runs it again: its success fires the same child
    // run, which is not enqueued again.
    let _rescuer = spawn("0");
    let r = api.wait_run_final(&run, Duration::from_secs(60)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempt"], 2, "the parent did not run again: {r}");
    let kid = api
        .wait_run_final(fired[0]["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(kid["status"], "succeeded", "{kid}");
    let runs = api.runs(&child_id).await;
    assert_eq!(runs.len(), 1, "the child ran more than once: {runs:?}");
    let enqueued: u64 = redis::cmd("XLEN")
        .arg(&kids_stream)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(enqueued, 1, "the child was enqueued {enqueued} times");
    let log = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .unwrap()
        .body
        .to_string();
    assert!(log.contains("was fired already"), "{log}");

    // A new parent run is a new child run.
    let second = api.trigger(&parent_id, None).await;
    api.wait_run_final(&second, Duration::from_secs(30)).await;
    let runs = api.runs(&child_id).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().any(|r| r["parent_run"] == json!(second)),
        "{runs:?}"
    );
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_cycle_of_children_is_refused_at_any_depth() {
    let url = shared_redis();
    let prefix = unique_prefix("child-cycle");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let mut ids = Vec::new();
    for (name, group) in [("a", "g1"), ("b", "g2"), ("c", "g1"), ("d", "g3")] {
        let j = api
            .create_job(&json!({"name": name, "group": group, "handler": "noop"}))
            .await;
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let set = |id: String, children: serde_json::Value| {
        let api = api.clone();
        async move {
            api.call(
                "PATCH",
                &format!("/jobs/{id}"),
                Some(&json!({"children": children})),
            )
            .await
            .unwrap()
        }
    };
    // a → b → c across groups, and a diamond (a → d, b → d): no cycle.
    assert_eq!(set(a.clone(), json!([b, d])).await.status, 200);
    assert_eq!(set(b.clone(), json!([c, d])).await.status, 200);
    let c_before = api
        .call("GET", &format!("/jobs/{c}"), None)
        .await
        .unwrap()
        .body;

    // c → a closes c → a → b → c: refused, naming `children` and the path; nothing written.
    let refused = set(c.clone(), json!([d, a])).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.body["error"]["field"], "children",
        "{:?}",
        refused.body
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{c} → {a} → {b} → {c}")),
        "{message}"
    );
    let c_after = api
        .call("GET", &format!("/jobs/{c}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(
        c_after["version"], c_before["version"],
        "a refused write changed the job"
    );
    assert_eq!(c_after["children"], json!([]));
    // Shorter cycles too: c → b (b → c → b), d → a (a → d → a).
    assert_eq!(set(c.clone(), json!([b])).await.status, 400);
    assert_eq!(set(d.clone(), json!([a])).await.status, 400);
    // A child pointing back nowhere new is fine: c → d.
    assert_eq!(set(c.clone(), json!([d])).await.status, 200);
    delete_prefix(&url, &prefix).await;
}
