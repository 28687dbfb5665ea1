//! Sharded jobs with overlap policies and children: `forbid` and `replace` apply to a tick as
//! a whole (all its shards), and children fire once per tick, once every shard succeeded.

use std::collections::BTreeMap;
use std::time::Duration;

use dotjob_tests::{
    Api, InProcess, Spawned, delete_prefix, ms, now_ms, redis_handle, shared_redis, unique_prefix,
    wait_for,
};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::{Value, json};

use crate::common::settled_runs;

/// A worker of `group` with `shard_sleep` (sleeps its shard parameter in ms; fails, never
/// retried, when the params' `fail_shard` is its index) and `noop`.
fn worker(url: &str, prefix: &str, group: &str) -> Spawned {
    let w = Worker::builder(redis_handle(url, prefix), group)
        .handler("noop", |_ctx: RunContext| async {
            Ok::<_, HandlerError>(json!({}))
        })
        .handler("shard_sleep", |ctx: RunContext| async move {
            let (k, _, param) = ctx
                .shard()
                .ok_or_else(|| HandlerError::fatal("not a shard run"))?;
            if ctx.params().get("fail_shard") == Some(&json!(k)) {
                return Err(HandlerError::fatal(format!("shard {k} fails on purpose")));
            }
            let sleep = param.as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(sleep)).await;
            // When the handler ended, on the host clock (the clock of the local Redis).
            Ok(json!({"shard": k, "ended_ms": now_ms()}))
        })
        .reclaim_after(Duration::from_secs(2))
        .grace(Duration::from_secs(5))
        .build()
        .expect("worker");
    Spawned::worker(w)
}

/// Runs grouped by tick (scheduled instant, ms), each tick's runs by shard index.
fn ticks(runs: &[Value]) -> BTreeMap<i64, Vec<Value>> {
    let mut m: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for r in runs {
        m.entry(ms(&r["scheduled_at"])).or_default().push(r.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r["shard"].as_u64());
    }
    m
}

fn all(runs: &[Value], status: &str) -> bool {
    runs.iter().all(|r| r["status"] == status)
}

/// Waits until `job` has at least `n` ticks whose 4 shards are all `status`.
async fn wait_ticks(api: &Api, job: &str, n: usize, what: fn(&[Value]) -> bool) {
    wait_for(
        &format!("{n} ticks of job {job}"),
        Duration::from_secs(40),
        || {
            let api = api.clone();
            let job = job.to_owned();
            async move {
                let runs = api.runs(&job).await;
                let done = ticks(&runs)
                    .values()
                    .filter(|t| t.len() == 4 && what(t))
                    .count();
                (done >= n).then_some(())
            }
        },
    )
    .await;
}

async fn create(api: &Api, job: Value) -> String {
    api.create_job(&job).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn pause(api: &Api, job: &str) {
    let a = api
        .call("POST", &format!("/jobs/{job}/pause"), None)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test]
async fn forbid_skips_a_tick_while_any_shard_of_the_previous_one_runs() {
    let url = shared_redis();
    let prefix = unique_prefix("shard-forbid");
    let sched = InProcess::start(&url, &prefix).await;
    let _w = worker(&url, &prefix, "shf");
    let api = Api::new(&sched.base);
    // Three quick shards and a slow one: only the slow one holds the tick for 2.5 s.
    let id = create(
        &api,
        json!({"name": "forbid shards", "group": "shf",
        "handler": "shard_sleep", "schedule": "*/1 * * * * *", "concurrency": "forbid",
        "timeout_ms": 20000, "max_attempts": 1,
        "routing": {"mode": "sharded", "shards": 4, "shard_params": [100, 200, 300, 2500]}}),
    )
    .await;
    wait_ticks(&api, &id, 3, |t| all(t, "succeeded")).await;
    pause(&api, &id).await;
    let runs = settled_runs(&api, &id, Duration::from_secs(30)).await;

    let by_tick = ticks(&runs);
    let mut fired: Vec<(i64, &Vec<Value>)> = Vec::new();
    let mut skipped = 0;
    let mut skipped_on_the_slow_shard = 0;
    for (tick, shards) in &by_tick {
        assert_eq!(shards.len(), 4, "tick {tick}: {shards:?}");
        for (k, r) in shards.iter().enumerate() {
            assert_eq!(r["shard"], k, "{r}");
            assert_eq!(r["shards"], 4, "{r}");
        }
        if all(shards, "skipped") {
            // Skipped because a shard of the tick fired last was still in flight.
            let (last, _) = fired.last().expect("the first tick was skipped");
            let err = shards[0]["error"].as_str().unwrap_or("");
            assert!(
                err.starts_with(&format!("forbid: run {id}-{last}-s")),
                "{err}"
            );
            skipped_on_the_slow_shard += usize::from(err.contains("-s3 was"));
            skipped += 1;
        } else {
            assert!(
                all(shards, "succeeded"),
                "tick {tick} is neither skipped nor run: {shards:?}"
            );
            fired.push((*tick, shards));
        }
    }
    assert!(skipped >= 2, "no tick was skipped: {by_tick:?}");
    assert!(
        skipped_on_the_slow_shard >= 1,
        "never skipped for the last shard alone"
    );
    // No shard of a tick ran while a shard of the tick before still ran.
    for w in fired.windows(2) {
        let prev_end = w[0].1.iter().map(|r| ms(&r["finished_at"])).max().unwrap();
        let next_start = w[1].1.iter().map(|r| ms(&r["started_at"])).min().unwrap();
        assert!(
            next_start >= prev_end,
            "tick {} started at {next_start}, before tick {} ended at {prev_end}",
            w[1].0,
            w[0].0
        );
    }
    eprintln!("forbid: {} ticks run, {skipped} skipped", fired.len());

    // A manual trigger is refused while any shard of the run before is in flight.
    let manual = create(
        &api,
        json!({"name": "manual forbid", "group": "shf",
        "handler": "shard_sleep", "concurrency": "forbid", "max_attempts": 1,
        "routing": {"mode": "sharded", "shards": 2, "shard_params": [50, 1500]}}),
    )
    .await;
    let first = api.trigger(&manual, None).await;
    let base = first.trim_end_matches("-s0").to_owned();
    api.wait_run_final(&first, Duration::from_secs(10)).await;
    let refused = api
        .call("POST", &format!("/jobs/{manual}/trigger"), None)
        .await
        .unwrap();
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(
        refused.body.to_string().contains(&format!("{base}-s1")),
        "{:?}",
        refused.body
    );
    api.wait_run_final(&format!("{base}-s1"), Duration::from_secs(10))
        .await;
    let again = api
        .call("POST", &format!("/jobs/{manual}/trigger"), None)
        .await
        .unwrap();
    assert_eq!(again.status, 202, "{:?}", again.body);
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn replace_cancels_every_unfinished_shard_of_the_previous_tick() {
    let url = shared_redis();
    let prefix = unique_prefix("shard-replace");
    let sched = InProcess::start(&url, &prefix).await;
    let _w = worker(&url, &prefix, "shr");
    let api = Api::new(&sched.base);
    // Shard 0 finishes within its tick; the others outlive it.
    let id = create(
        &api,
        json!({"name": "replace shards", "group": "shr",
        "handler": "shard_sleep", "schedule": "*/1 * * * * *", "concurrency": "replace",
        "timeout_ms": 20000, "max_attempts": 1,
        "routing": {"mode": "sharded", "shards": 4, "shard_params": [50, 3000, 3000, 3000]}}),
    )
    .await;
    wait_ticks(&api, &id, 3, |t| {
        t[1..].iter().all(|r| r["status"] == "cancelled")
    })
    .await;
    pause(&api, &id).await;
    let runs = settled_runs(&api, &id, Duration::from_secs(30)).await;
    let by_tick: Vec<(i64, Vec<Value>)> = ticks(&runs).into_iter().collect();
    let (last_tick, last) = by_tick.last().unwrap();
    // The last tick, replaced by nothing, ran to its end.
    assert!(all(last, "succeeded"), "tick {last_tick}: {last:?}");
    let mut replaced = 0;
    for w in by_tick.windows(2) {
        let ((tick, shards), (next, _)) = (&w[0], &w[1]);
        assert_eq!(shards.len(), 4, "tick {tick}: {shards:?}");
        assert_eq!(shards[0]["status"], "succeeded", "{}", shards[0]);
        for r in &shards[1..] {
            assert_eq!(
                r["status"], "cancelled",
                "tick {tick} outlived the next one: {r}"
            );
            let err = r["error"].as_str().unwrap_or("");
            assert_eq!(err, format!("replaced by run {id}-{next}"), "{r}");
        }
        replaced += 1;
    }
    assert!(replaced >= 3, "{by_tick:?}");
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn children_of_a_sharded_job_fire_once_per_tick_after_every_shard_succeeded() {
    let url = shared_redis();
    let prefix = unique_prefix("shard-children");
    let sched = InProcess::start(&url, &prefix).await;
    let _w = worker(&url, &prefix, "shc");
    let api = Api::new(&sched.base);
    let child = create(
        &api,
        json!({"name": "after all shards", "group": "shc",
        "handler": "noop"}),
    )
    .await;
    let id = create(
        &api,
        json!({"name": "sharded parent", "group": "shc",
        "handler": "shard_sleep", "schedule": "*/2 * * * * *", "max_attempts": 1,
        "children": [child],
        "routing": {"mode": "sharded", "shards": 4, "shard_params": [700, 100, 500, 300]}}),
    )
    .await;
    wait_ticks(&api, &id, 3, |t| all(t, "succeeded")).await;
    pause(&api, &id).await;
    let runs = settled_runs(&api, &id, Duration::from_secs(30)).await;
    let kids = settled_runs(&api, &child, Duration::from_secs(30)).await;

    let mut complete = 0;
    for (tick, shards) in ticks(&runs) {
        assert_eq!(shards.len(), 4, "tick {tick}: {shards:?}");
        assert!(all(&shards, "succeeded"), "{shards:?}");
        let base = format!("{id}-{tick}");
        let mine: Vec<&Value> = kids
            .iter()
            .filter(|k| k["parent_run"] == json!(base))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "tick {tick} fired its child {} times: {kids:?}",
            mine.len()
        );
        let kid = mine[0];
        assert_eq!(kid["id"], json!(format!("{child}-c{base}")), "{kid}");
        assert_eq!(kid["trigger"], "child", "{kid}");
        assert_eq!(kid["status"], "succeeded", "{kid}");
        // The child is fired once the last shard's handler succeeded (before that shard is
        // recorded, so that a worker dying in between loses no child): its enqueue (the
        // stream entry's instant, Redis clock) follows the end of every shard's handler (as
        // each reported it, on the same host's clock).
        let last_shard_end = shards
            .iter()
            .map(|r| r["result"]["ended_ms"].as_i64().unwrap())
            .max()
            .unwrap();
        assert!(
            ms(&kid["enqueued_at"]) >= last_shard_end,
            "tick {tick}: the child was enqueued before the last shard finished: {kid} {shards:?}"
        );
        complete += 1;
    }
    assert!(complete >= 3);
    assert_eq!(
        kids.len(),
        complete,
        "children without a complete tick: {kids:?}"
    );

    // A run with a failed shard fires no child; a run whose shards all succeed fires one.
    let failing = api.trigger(&id, Some(&json!({"fail_shard": 2}))).await;
    let base = failing.trim_end_matches("-s0").to_owned();
    let mut statuses = Vec::new();
    for k in 0..4 {
        let r = api
            .wait_run_final(&format!("{base}-s{k}"), Duration::from_secs(15))
            .await;
        statuses.push(r["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["succeeded", "succeeded", "failed", "succeeded"]);
    let ok = api.trigger(&id, None).await;
    let ok_base = ok.trim_end_matches("-s0").to_owned();
    let kid_id = format!("{child}-c{ok_base}");
    let kid = wait_for("the manual run's child", Duration::from_secs(15), || {
        let api = api.clone();
        let (child, kid_id) = (child.clone(), kid_id.clone());
        async move {
            let runs = api.runs(&child).await;
            runs.into_iter().find(|r| r["id"] == json!(kid_id))
        }
    })
    .await;
    assert_eq!(kid["parent_run"], json!(ok_base), "{kid}");
    let kids = api.runs(&child).await;
    assert_eq!(kids.len(), complete + 1, "{kids:?}");
    assert!(
        kids.iter().all(|k| k["parent_run"] != json!(base)),
        "{kids:?}"
    );
    delete_prefix(&url, &prefix).await;
}
