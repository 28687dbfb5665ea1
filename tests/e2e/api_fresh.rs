//! Writes through the API take effect at once: a PATCHed job's very next run sees the new
//! params on a worker that cached the old definition, also when that worker never hears
//! the invalidation message (stream entries carry the job version); a paused job stops
//! firing within one tick of the call.

use std::time::Duration;

use dotjob_tests::{
    Api, InProcess, Spawned, delete_prefix, ms, raw_conn, redis_handle, shared_redis,
    unique_prefix, wait_for,
};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::{Value, json};

/// Starts an echo worker of `group`; `events: false` = it never subscribes to the events
/// channel, so it misses every invalidation.
fn echo_worker(url: &str, prefix: &str, group: &str, events: bool) -> Spawned {
    let worker = Worker::builder(redis_handle(url, prefix), group)
        .handler("echo", |ctx: RunContext| async move {
            Ok::<_, HandlerError>(ctx.params().clone())
        })
        .events(events)
        .reclaim_after(Duration::from_secs(2))
        .grace(Duration::from_secs(5))
        .build()
        .expect("worker");
    Spawned::worker(worker)
}

/// Final runs of a job, oldest first by enqueue instant.
async fn final_runs(api: &Api, job: &str) -> Vec<Value> {
    let mut runs: Vec<Value> = api
        .runs(job)
        .await
        .into_iter()
        .filter(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        .collect();
    runs.sort_by_key(|r| ms(&r["enqueued_at"]));
    runs
}

#[tokio::test]
async fn api_patched_params_reach_the_very_next_run_even_when_the_invalidation_is_missed() {
    let url = shared_redis();
    let prefix = unique_prefix("api-fresh");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let listening = echo_worker(&url, &prefix, "listening", true);
    let deaf = echo_worker(&url, &prefix, "deaf", false);

    for group in ["listening", "deaf"] {
        let job = api
            .create_job(&json!({"name": group, "group": group, "handler": "echo",
                "schedule": "* * * * * *", "params": {"n": 1}}))
            .await;
        let id = job["id"].as_str().expect("id").to_owned();
        // The worker runs version 1 (and caches it).
        let api2 = api.clone();
        let id2 = id.clone();
        wait_for("a run with the old params", Duration::from_secs(30), || {
            let api = api2.clone();
            let id = id2.clone();
            async move {
                final_runs(&api, &id)
                    .await
                    .iter()
                    .any(|r| r["status"] == "succeeded" && r["result"] == json!({"n": 1}))
                    .then_some(())
            }
        })
        .await;

        let patched = api
            .call(
                "PATCH",
                &format!("/jobs/{id}"),
                Some(&json!({"params": {"n": 2}})),
            )
            .await
            .expect("patch");
        assert_eq!(patched.status, 200, "{:?}", patched.body);
        let v2 = patched.body["version"].as_u64().expect("version");
        let patched_at = ms(&patched.body["updated_at"]);
        // The very next run, by hand, right after the answer.
        let manual = api.trigger(&id, None).await;
        let r = api.wait_run_final(&manual, Duration::from_secs(30)).await;
        assert_eq!(
            (r["job_version"].as_u64(), &r["result"]),
            (Some(v2), &json!({"n": 2})),
            "{group}: manual run after PATCH"
        );

        // Scheduled runs: the first enqueued after the PATCH already has the new params,
        // and so does every later one.
        let api2 = api.clone();
        let id2 = id.clone();
        let after = wait_for(
            "three scheduled runs after the PATCH",
            Duration::from_secs(30),
            || {
                let api = api2.clone();
                let id = id2.clone();
                async move {
                    let later: Vec<Value> = final_runs(&api, &id)
                        .await
                        .into_iter()
                        .filter(|r| {
                            r["trigger"] == "schedule" && ms(&r["enqueued_at"]) > patched_at
                        })
                        .collect();
                    (later.len() >= 3).then_some(later)
                }
            },
        )
        .await;
        for r in &after {
            assert_eq!(
                r["job_version"].as_u64(),
                Some(v2),
                "{group}: fired with the new version: {r}"
            );
            assert_eq!(
                r["result"],
                json!({"n": 2}),
                "{group}: run {} saw stale params",
                r["id"]
            );
        }
        // Whatever ran with the new version saw the new params (no stale cache hit).
        for r in final_runs(&api, &id).await {
            if r["job_version"].as_u64() == Some(v2) {
                assert_eq!(r["result"], json!({"n": 2}), "{group}: {r}");
            }
        }
    }

    for worker in [listening, deaf] {
        worker.stop().await;
    }
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn api_a_paused_job_stops_firing_within_one_tick_and_resumes() {
    let url = shared_redis();
    let prefix = unique_prefix("api-pause");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let every_second = |name: &str| json!({"name": name, "group": "p", "handler": "noop", "schedule": "* * * * * *"});
    let target = api.create_job(&every_second("target")).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let control = api.create_job(&every_second("control")).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ticks = |job: String| {
        let api = api.clone();
        async move {
            let mut t: Vec<i64> = api
                .runs(&job)
                .await
                .iter()
                .map(|r| ms(&r["scheduled_at"]))
                .collect();
            t.sort_unstable();
            t
        }
    };
    let t = target.clone();
    wait_for("the job to fire twice", Duration::from_secs(20), || {
        let f = ticks(t.clone());
        async move { (f.await.len() >= 2).then_some(()) }
    })
    .await;

    let paused = api
        .call("POST", &format!("/jobs/{target}/pause"), None)
        .await
        .expect("pause");
    assert_eq!(paused.status, 200);
    // The schedule entry is gone by the time the call answers.
    let key = dotjob_shared::Keys::new(prefix.clone()).schedule("p");
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(&key)
        .arg(&target)
        .query_async(&mut raw_conn(&url).await)
        .await
        .expect("zscore");
    assert_eq!(
        score, None,
        "pause removes the schedule entry synchronously"
    );
    assert!(paused.body["next_fire_at"].is_null());
    let paused_at = ms(&paused.body["updated_at"]);

    // The scheduler keeps firing the other job for three more ticks…
    let c = control.clone();
    wait_for(
        "three more ticks of the control job",
        Duration::from_secs(20),
        || {
            let f = ticks(c.clone());
            async move {
                f.await
                    .last()
                    .is_some_and(|t| *t >= paused_at + 3_000)
                    .then_some(())
            }
        },
    )
    .await;
    // …and the paused one fired no tick later than one tick after the call.
    let fired = ticks(target.clone()).await;
    let late: Vec<&i64> = fired.iter().filter(|t| **t > paused_at + 1_000).collect();
    assert!(
        late.is_empty(),
        "ticks after the pause: {late:?} (paused at {paused_at})"
    );
    let before = fired.len();

    let resumed = api
        .call("POST", &format!("/jobs/{target}/resume"), None)
        .await
        .expect("resume");
    assert_eq!(resumed.status, 200);
    let resumed_at = ms(&resumed.body["updated_at"]);
    let t = target.clone();
    let after = wait_for(
        "the resumed job to fire again",
        Duration::from_secs(20),
        || {
            let f = ticks(t.clone());
            async move {
                let v = f.await;
                v.iter().any(|t| *t > resumed_at).then_some(v)
            }
        },
    )
    .await;
    assert!(after.len() > before);
    assert!(
        !after
            .iter()
            .any(|t| *t > paused_at + 1_000 && *t <= resumed_at),
        "nothing fired while paused"
    );

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
