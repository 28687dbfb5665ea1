//! Broadcast jobs: every tick or trigger is one run per live, enabled executor of the group,
//! run by that executor only (`<run>-e<executor>`, from its own stream). A disabled executor
//! gets none; the run of an executor killed mid-run ends `lost`, never moved to another one,
//! and the ticks after it is seen dead go to the survivors only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dotjob_tests::{
    Api, InProcess, Proc, delete_prefix, ms, now_ms, pid_of, shared_redis, spawn_scheduler,
    unique_prefix, wait_for,
};
use serde_json::{Value, json};

use crate::common::TestWorker;

/// The error of a broadcast run whose executor stopped before finishing it.
const STOPPED: &str = "stopped before finishing; broadcast runs are not moved to another executor";

/// Ids of the group's executors the API calls alive.
async fn live_executors(api: &Api, group: &str) -> BTreeSet<String> {
    let a = api
        .call("GET", &format!("/groups/{group}/executors"), None)
        .await
        .expect("executors");
    a.body
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|e| e["alive"] == true)
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the group has exactly `n` live executors; returns their ids.
async fn wait_executors(api: &Api, group: &str, n: usize) -> BTreeSet<String> {
    wait_for(
        &format!("{n} live executors in {group}"),
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let group = group.to_owned();
            async move {
                let ids = live_executors(&api, &group).await;
                (ids.len() == n).then_some(ids)
            }
        },
    )
    .await
}

/// A job's runs by tick (ms): each tick's executors, checking on the way that every run of a
/// tick names its executor in its id, and no executor has two runs of one tick.
fn by_tick(job: &str, runs: &[Value]) -> BTreeMap<i64, Vec<(String, Value)>> {
    let mut out: BTreeMap<i64, Vec<(String, Value)>> = BTreeMap::new();
    for r in runs {
        let tick = ms(&r["scheduled_at"]);
        let id = r["id"].as_str().unwrap();
        let ex = r["executor"].as_str().unwrap_or("").to_owned();
        assert_eq!(
            id,
            format!("{job}-{tick}-e{ex}"),
            "run id names its executor: {r}"
        );
        let list = out.entry(tick).or_default();
        assert!(
            list.iter().all(|(e, _)| *e != ex),
            "executor {ex} has two runs of tick {tick}"
        );
        list.push((ex, r.clone()));
    }
    out
}

/// The executors of a tick's runs.
fn executors_of(runs: &[(String, Value)]) -> BTreeSet<String> {
    runs.iter().map(|(e, _)| e.clone()).collect()
}

/// Waits until `count` ticks after `after_ms` have each exactly the runs of `want`, all
/// succeeded on their own executor; returns every run of the job at that point.
async fn wait_ticks_on(
    api: &Api,
    job: &str,
    after_ms: i64,
    want: &BTreeSet<String>,
    count: usize,
) -> Vec<Value> {
    let what = format!("{count} ticks of job {job} on exactly {want:?}");
    wait_for(&what, Duration::from_secs(30), || {
        let api = api.clone();
        let job = job.to_owned();
        let want = want.clone();
        async move {
            let runs = api.runs(&job).await;
            let done = by_tick(&job, &runs)
                .into_iter()
                .filter(|(tick, rs)| {
                    *tick > after_ms
                        && executors_of(rs) == want
                        && rs.iter().all(|(ex, r)| {
                            r["status"] == "succeeded" && r["worker"].as_str() == Some(ex.as_str())
                        })
                })
                .count();
            (done >= count).then_some(runs)
        }
    })
    .await
}

fn spawn_worker(url: &str, prefix: &str, group: &str) -> Proc {
    Proc::spawn(
        "dotjob-worker",
        &["--group", group],
        &[
            ("REDIS_URL", url),
            ("DOTJOB_PREFIX", prefix),
            ("DOTJOB_SHELL_ALLOW", "true,sleep"),
            ("DOTJOB_RECLAIM_AFTER_MS", "1000"),
        ],
    )
}

#[tokio::test]
async fn every_tick_runs_once_per_live_enabled_executor_and_a_killed_executors_run_ends_lost() {
    let url = shared_redis();
    let prefix = unique_prefix("bcast");
    let group = "bcast";
    let (_sched, base) = spawn_scheduler(
        &url,
        &prefix,
        &[
            ("DOTJOB_HOUSEKEEPING_INTERVAL", "1s"),
            ("DOTJOB_EXECUTOR_TIMEOUT", "4s"),
        ],
    );
    let api = Api::new(&base);
    api.wait_ready().await;
    let fast = api
        .create_job(
            &json!({"name": "everywhere", "group": group, "handler": "shell",
            "schedule": "*/1 * * * * *", "routing": {"mode": "broadcast"},
            "params": {"command": ["true"]}}),
        )
        .await;
    let fast = fast["id"].as_str().unwrap().to_owned();
    let mut workers: Vec<Proc> = (0..3).map(|_| spawn_worker(&url, &prefix, group)).collect();
    let all = wait_executors(&api, group, 3).await;
    let started = now_ms();

    // Every tick: one run on each of the three executors.
    let runs = wait_ticks_on(&api, &fast, started + 1_000, &all, 3).await;
    for (tick, rs) in by_tick(&fast, &runs) {
        assert!(rs.len() <= 3, "tick {tick}: {} runs", rs.len());
        assert!(executors_of(&rs).is_subset(&all), "tick {tick}: {rs:?}");
    }

    // A disabled executor gets none.
    let off = all.iter().next().unwrap().clone();
    let a = api
        .call(
            "POST",
            &format!("/groups/{group}/executors/{off}/disable"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let disabled_at = now_ms();
    let on: BTreeSet<String> = all.iter().filter(|e| **e != off).cloned().collect();
    let runs = wait_ticks_on(&api, &fast, disabled_at + 1_000, &on, 3).await;
    for (tick, rs) in by_tick(&fast, &runs) {
        if tick > disabled_at + 1_000 {
            assert!(
                !executors_of(&rs).contains(&off),
                "tick {tick} went to the disabled executor"
            );
        }
    }
    let a = api
        .call(
            "POST",
            &format!("/groups/{group}/executors/{off}/enable"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);

    // A manual trigger of a slow broadcast job: one run per live executor. Killing one
    // executor mid-run ends its run `lost`; the others finish theirs.
    let slow = api
        .create_job(
            &json!({"name": "slow everywhere", "group": group, "handler": "shell",
            "routing": {"mode": "broadcast"}, "timeout_ms": 60000,
            "params": {"command": ["sleep", "3"]}}),
        )
        .await;
    let slow = slow["id"].as_str().unwrap().to_owned();
    let a = api
        .call("POST", &format!("/jobs/{slow}/trigger"), Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(a.status, 202, "{:?}", a.body);
    let first = a.body["run_id"].as_str().unwrap();
    let base_run = &first[..first.find("-e").unwrap()];
    let triggered: BTreeSet<String> = a.body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = all.iter().map(|e| format!("{base_run}-e{e}")).collect();
    assert_eq!(triggered, want, "one run per live executor");
    let victim = all.iter().last().unwrap().clone();
    let victim_run = format!("{base_run}-e{victim}");
    let r = api
        .wait_run_running(&victim_run, Duration::from_secs(15))
        .await;
    assert_eq!(r["worker"], victim.as_str(), "{r}");
    let pid = pid_of(&victim).unwrap();
    let w = workers.iter_mut().find(|w| w.pid() == pid).unwrap();
    w.kill9();

    let r = api
        .wait_run_final(&victim_run, Duration::from_secs(30))
        .await;
    assert_eq!(r["status"], "lost", "{r}");
    let err = r["error"].as_str().unwrap_or("");
    assert!(
        err.contains(&victim) && err.contains(STOPPED),
        "error names the executor and the rule: {err}"
    );
    for ex in all.iter().filter(|e| **e != victim) {
        let r = api
            .wait_run_final(&format!("{base_run}-e{ex}"), Duration::from_secs(20))
            .await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["worker"], ex.as_str(), "{r}");
        // Kept alive by its executor's heartbeat (3 s run, 1 s reclaim time): one attempt,
        // never taken up again.
        assert_eq!(r["attempt"], 1, "{r}");
        assert_eq!(r["attempts"], json!([]), "{r}");
    }

    // Once the killed executor is seen dead (forgotten), ticks go to the two survivors only.
    wait_for(
        "the killed executor forgotten",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let victim = victim.clone();
            async move {
                let a = api
                    .call("GET", &format!("/groups/{group}/executors"), None)
                    .await
                    .ok()?;
                let gone = a
                    .body
                    .as_array()?
                    .iter()
                    .all(|e| e["id"] != victim.as_str());
                gone.then_some(())
            }
        },
    )
    .await;
    let seen_dead = now_ms();
    let survivors: BTreeSet<String> = all.iter().filter(|e| **e != victim).cloned().collect();
    wait_ticks_on(&api, &fast, seen_dead + 1_000, &survivors, 3).await;
    api.call("POST", &format!("/jobs/{fast}/pause"), None)
        .await
        .unwrap();

    // Nothing left open: every run is final, the killed executor's ones `lost`, and no
    // tick after it was seen dead went to it.
    let runs = wait_for("every run final", Duration::from_secs(20), || {
        let api = api.clone();
        let fast = fast.clone();
        async move {
            let runs = api.runs(&fast).await;
            runs.iter()
                .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
                .then_some(runs)
        }
    })
    .await;
    let mut lost = 0;
    for (tick, rs) in by_tick(&fast, &runs) {
        for (ex, r) in &rs {
            match r["status"].as_str() {
                Some("succeeded") => assert_eq!(r["worker"], ex.as_str(), "{r}"),
                Some("lost") => {
                    assert_eq!(*ex, victim, "only the killed executor's runs are lost: {r}");
                    assert!(tick <= seen_dead, "a tick after it was seen dead: {r}");
                    lost += 1;
                }
                _ => panic!("unexpected run: {r}"),
            }
        }
        if tick > seen_dead {
            assert!(!executors_of(&rs).contains(&victim), "tick {tick}: {rs:?}");
        }
    }
    eprintln!(
        "broadcast: {} runs, {lost} lost on the killed executor",
        runs.len()
    );
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_manual_trigger_runs_once_per_live_executor_and_retries_stay_on_it() {
    let url = shared_redis();
    let prefix = unique_prefix("bcast-trigger");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let group = "bt";
    let echo = api
        .create_job(
            &json!({"name": "echo everywhere", "group": group, "handler": "echo",
            "routing": {"mode": "broadcast"}, "params": {"x": 1}}),
        )
        .await;
    let echo = echo["id"].as_str().unwrap().to_owned();
    let mut workers: Vec<TestWorker> = (0..3)
        .map(|_| TestWorker::start(&url, &prefix, group))
        .collect();
    let all = wait_executors(&api, group, 3).await;

    // A trigger with a params override: one run per executor, each run there.
    let a = api
        .call(
            "POST",
            &format!("/jobs/{echo}/trigger"),
            Some(&json!({"params": {"y": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 202, "{:?}", a.body);
    let runs: Vec<String> = a.body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs.len(), 3, "{:?}", a.body);
    assert_eq!(a.body["run_id"], runs[0].as_str());
    let mut ran_on = BTreeSet::new();
    for run in &runs {
        let r = api.wait_run_final(run, Duration::from_secs(15)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["result"], json!({"y": 2}), "{r}");
        assert_eq!(r["trigger"], "manual", "{r}");
        let ex = r["executor"].as_str().unwrap();
        assert_eq!(r["worker"], ex, "run on its own executor: {r}");
        assert!(run.ends_with(&format!("-e{ex}")), "{run}");
        ran_on.insert(ex.to_owned());
    }
    assert_eq!(ran_on, all, "each executor ran one");

    // A failed attempt is retried by the same executor.
    let flaky = api
        .create_job(
            &json!({"name": "flaky everywhere", "group": group, "handler": "flaky",
            "routing": {"mode": "broadcast"}, "params": {"failures": 1}, "max_attempts": 3,
            "backoff": {"base_ms": 200, "max_ms": 400}}),
        )
        .await;
    let flaky = flaky["id"].as_str().unwrap().to_owned();
    let a = api
        .call("POST", &format!("/jobs/{flaky}/trigger"), None)
        .await
        .unwrap();
    assert_eq!(a.status, 202, "{:?}", a.body);
    let runs = a.body["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 3, "{:?}", a.body);
    for run in &runs {
        let r = api
            .wait_run_final(run.as_str().unwrap(), Duration::from_secs(20))
            .await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["attempt"], 2, "{r}");
        let ex = r["executor"].as_str().unwrap();
        assert_eq!(r["worker"], ex, "{r}");
        let attempts = r["attempts"].as_array().unwrap();
        assert!(
            !attempts.is_empty() && attempts.iter().all(|h| h["worker"] == ex),
            "every attempt on its executor: {r}"
        );
    }

    // An executor shut down while its broadcast run is still going (past its 5 s grace):
    // the run is not handed back to another executor but ends `lost`.
    let slow = api
        .create_job(
            &json!({"name": "slow everywhere", "group": group, "handler": "sleep",
            "routing": {"mode": "broadcast"}, "params": {"ms": 30000}}),
        )
        .await;
    let slow = slow["id"].as_str().unwrap().to_owned();
    let a = api
        .call("POST", &format!("/jobs/{slow}/trigger"), None)
        .await
        .unwrap();
    let runs: Vec<String> = a.body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs.len(), 3, "{:?}", a.body);
    for run in &runs {
        api.wait_run_running(run, Duration::from_secs(15)).await;
    }
    let leaving = workers.pop().unwrap();
    leaving.stop().await;
    let gone: BTreeSet<String> = &all - &live_executors(&api, group).await;
    let gone = gone.into_iter().next().expect("one executor left");
    let r = api
        .wait_run_final(
            &format!("{}-e{gone}", &runs[0][..runs[0].find("-e").unwrap()]),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(r["status"], "lost", "{r}");
    assert!(r["error"].as_str().unwrap().contains(STOPPED), "{r}");
    for run in runs.iter().filter(|r| !r.ends_with(&format!("-e{gone}"))) {
        let r = api.run(run).await;
        assert_eq!(r["status"], "running", "the others go on: {r}");
    }
    // Deleting the job takes its runs out of the executors' own streams.
    let a = api
        .call("DELETE", &format!("/jobs/{slow}"), None)
        .await
        .unwrap();
    assert!((200..300).contains(&a.status), "{:?}", a.body);

    // No live executor: the trigger is recorded as one skipped run saying why.
    let lonely = api
        .create_job(
            &json!({"name": "nobody home", "group": "bt-empty", "handler": "echo",
            "routing": {"mode": "broadcast"}}),
        )
        .await;
    let lonely = lonely["id"].as_str().unwrap().to_owned();
    let a = api
        .call("POST", &format!("/jobs/{lonely}/trigger"), None)
        .await
        .unwrap();
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert!(a.body["runs"].is_null(), "{:?}", a.body);
    let warned = a.body["warnings"].to_string();
    assert!(warned.contains("recorded as skipped"), "{warned}");
    let r = api.run(a.body["run_id"].as_str().unwrap()).await;
    assert_eq!(r["status"], "skipped", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("no live executor"),
        "{r}"
    );

    // What a broadcast job cannot be: refused, naming the field, nothing written.
    for (field, extra) in [
        ("concurrency", json!({"concurrency": "forbid"})),
        ("concurrency", json!({"concurrency": "replace"})),
        ("children", json!({"children": [echo]})),
    ] {
        let mut job = json!({"name": "bad", "group": group, "handler": "echo",
            "routing": {"mode": "broadcast"}});
        job.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let a = api.call("POST", "/jobs", Some(&job)).await.unwrap();
        assert_eq!(a.status, 400, "{:?}", a.body);
        assert_eq!(a.body["error"]["field"], field, "{:?}", a.body);
    }
    let a = api
        .call("GET", &format!("/jobs?group={group}&name=bad"), None)
        .await
        .unwrap();
    assert_eq!(a.body["items"], json!([]), "{:?}", a.body);
    delete_prefix(&url, &prefix).await;
}
