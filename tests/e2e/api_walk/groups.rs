//! Groups and what hangs off them: executors (list, disable, enable), dead letters (list,
//! requeue), the group list, stats, and the schedule preview.

use std::time::Duration;

use dotjob_tests::wait_for;
use serde_json::{Value, json};

use super::{CANCEL, GROUP, Walk, Workers};

const EXECUTORS: &str = "/api/v1/groups/{group}/executors";
const DISABLE: &str = "/api/v1/groups/{group}/executors/{executor}/disable";
const ENABLE: &str = "/api/v1/groups/{group}/executors/{executor}/enable";
const DEAD: &str = "/api/v1/groups/{group}/dead";
const REQUEUE: &str = "/api/v1/groups/{group}/dead/{entry}/requeue";
const GROUPS: &str = "/api/v1/groups";
const STATS: &str = "/api/v1/stats";
const PREVIEW: &str = "/api/v1/schedule/preview";

/// The executors of [`GROUP`] once its worker has registered (the group exists once it has
/// a job: this creates one).
async fn executors(w: &Walk) -> Value {
    w.job("walk-a", json!({})).await;
    wait_for(
        "the worker to register",
        Duration::from_secs(30),
        || async {
            let execs = w.ok("GET", EXECUTORS, &[GROUP], "", None).await;
            (execs.as_array().is_some_and(|a| !a.is_empty())).then_some(execs)
        },
    )
    .await
}

/// The dead letters of [`GROUP`] (up to 500).
async fn dead_letters(w: &Walk) -> Vec<Value> {
    let dead = w.ok("GET", DEAD, &[GROUP], "limit=500", None).await;
    dead["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn executors_are_listed_alive_and_can_be_disabled_and_enabled() {
    let w = Walk::start("walk-executors", Workers::Test).await;
    let execs = executors(&w).await;
    let exec = execs[0]["id"].as_str().expect("an executor").to_owned();
    assert_eq!(execs[0]["alive"].as_bool(), Some(true));
    let d = w.ok("POST", DISABLE, &[GROUP, &exec], "", None).await;
    assert_eq!(d["disabled"].as_bool(), Some(true));
    let listed = w.ok("GET", EXECUTORS, &[GROUP], "", None).await;
    assert_eq!(listed[0]["disabled"].as_bool(), Some(true), "{listed}");
    let e = w.ok("POST", ENABLE, &[GROUP, &exec], "", None).await;
    assert_eq!(e["disabled"].as_bool(), Some(false));
    w.finish().await;
}

#[tokio::test]
async fn executors_of_an_unknown_group_or_executor_are_404() {
    let w = Walk::start("walk-executors-404", Workers::Test).await;
    executors(&w).await;
    let ghost = w.go("POST", DISABLE, &[GROUP, "ghost"], "", None).await;
    assert_eq!(ghost.status, 404);
    let nogroup = w.go("GET", EXECUTORS, &["nogroup"], "", None).await;
    assert_eq!(nogroup.status, 404);
    w.finish().await;
}

#[tokio::test]
async fn dead_letters_hold_exhausted_runs_and_requeue_each_once() {
    let w = Walk::start("walk-dead", Workers::Test).await;
    let (job, run) = w.dead_run().await;
    let default_page = w.ok("GET", DEAD, &[GROUP], "", None).await;
    let letter = default_page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["run"] == run.as_str())
        .expect("the dead run is a dead letter")
        .clone();
    assert_eq!(letter["attempts"].as_u64(), Some(2));
    let entry = letter["entry"].as_str().expect("entry").to_owned();
    let again = w.ok("POST", REQUEUE, &[GROUP, &entry], "", None).await;
    assert!(
        again["run_id"]
            .as_str()
            .is_some_and(|r| r.starts_with(&job)),
        "the requeued run is a run of the job: {again}"
    );
    assert!(
        !dead_letters(&w)
            .await
            .iter()
            .any(|d| d["entry"] == entry.as_str()),
        "a requeued letter leaves the dead letters"
    );
    let twice = w.go("POST", REQUEUE, &[GROUP, &entry], "", None).await;
    assert_eq!(twice.status, 404, "a letter is requeued once");
    w.finish().await;
}

#[tokio::test]
async fn dead_letters_refuse_a_bad_cursor() {
    let w = Walk::start("walk-dead-cursor", Workers::None).await;
    w.job("walk-a", json!({})).await;
    let bad = w.go("GET", DEAD, &[GROUP], "cursor=x", None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    w.finish().await;
}

#[tokio::test]
async fn groups_count_their_jobs() {
    let w = Walk::start("walk-groups", Workers::None).await;
    for name in ["walk-a", "walk-b", "walk-c"] {
        w.job(name, json!({})).await;
    }
    w.job("walk-d", json!({"group": "other"})).await;
    let groups = w.ok("GET", GROUPS, &[], "", None).await;
    let jobs_of = |name: &str| {
        groups
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("group {name} is listed: {groups}"))["jobs"]
            .as_u64()
    };
    assert_eq!((jobs_of(GROUP), jobs_of("other")), (Some(3), Some(1)));
    w.finish().await;
}

#[tokio::test]
async fn stats_of_one_job_count_its_recent_runs() {
    let w = Walk::start("walk-stats-job", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    w.job("walk-b", json!({})).await;
    for _ in 0..4 {
        w.run_to_end(&a).await;
    }
    let st = w.ok("GET", STATS, &[], &format!("job={a}"), None).await;
    let g = &st["groups"][0];
    assert_eq!(
        (g["group"].as_str(), g["job_stats"].as_array().map(Vec::len)),
        (Some(GROUP), Some(1))
    );
    let js = &g["job_stats"][0];
    assert_eq!(js["job_id"].as_str(), Some(a.as_str()));
    let last_5m = &js["runs"]["last_5m"];
    assert_eq!(
        (
            last_5m["runs"].as_u64(),
            last_5m["by_status"]["succeeded"].as_u64(),
            last_5m["success_rate"].as_f64()
        ),
        (Some(4), Some(4), Some(1.0))
    );
    assert!(
        last_5m["duration_p50_ms"].is_u64()
            && last_5m["duration_p95_ms"].is_u64()
            && last_5m["complete"] == true,
        "{last_5m}"
    );
    w.finish().await;
}

#[tokio::test]
async fn stats_of_a_group_count_jobs_executors_and_outcomes() {
    let w = Walk::start("walk-stats-group", Workers::Test).await;
    let ok = w.job("walk-a", json!({})).await;
    w.run_to_end(&ok).await;
    w.dead_run().await;
    let (_, sleeping) = w.running_sleeper().await;
    w.ok("POST", CANCEL, &[&sleeping], "", None).await;
    w.final_run(&sleeping).await;
    let st = w.ok("GET", STATS, &[], "group=work", None).await;
    let g = &st["groups"][0];
    assert_eq!(
        (
            g["jobs"].as_u64(),
            g["jobs_sampled"].as_u64(),
            g["jobs_truncated"].as_bool()
        ),
        (Some(3), Some(3), Some(false))
    );
    assert!(g["executors"]["live"].as_u64() >= Some(1), "{g}");
    let last_1h = &g["runs"]["last_1h"];
    assert_eq!(
        (
            last_1h["by_status"]["succeeded"].as_u64(),
            last_1h["by_status"]["dead"].as_u64(),
            last_1h["by_status"]["cancelled"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{last_1h}"
    );
    let rate = last_1h["success_rate"].as_f64().expect("a rate");
    assert!(rate > 0.0 && rate < 1.0, "{rate}");
    w.finish().await;
}

#[tokio::test]
async fn stats_of_everything_list_every_group() {
    let w = Walk::start("walk-stats-all", Workers::None).await;
    w.job("walk-a", json!({})).await;
    w.job("walk-b", json!({"group": "other"})).await;
    let everything = w.ok("GET", STATS, &[], "", None).await;
    let names: Vec<&str> = everything["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["group"].as_str())
        .collect();
    assert!(
        names.contains(&GROUP) && names.contains(&"other"),
        "{names:?}"
    );
    w.finish().await;
}

#[tokio::test]
async fn stats_refuse_an_unknown_group_and_window() {
    let w = Walk::start("walk-stats-bad", Workers::None).await;
    w.job("walk-a", json!({})).await;
    let nogroup = w.go("GET", STATS, &[], "group=nogroup", None).await;
    assert_eq!(nogroup.status, 404);
    let window = w.go("GET", STATS, &[], "window=1h", None).await;
    assert_eq!(window.status, 400);
    w.finish().await;
}

#[tokio::test]
async fn preview_lists_the_next_fires_in_the_zone() {
    let w = Walk::start("walk-preview", Workers::None).await;
    let p = w
        .ok(
            "POST",
            PREVIEW,
            &[],
            "",
            Some(json!({"schedule": "0 9 * * *", "timezone": "Europe/Berlin", "count": 3})),
        )
        .await;
    let fires = p["fires"].as_array().expect("fires");
    assert_eq!(fires.len(), 3);
    let at: Vec<i64> = fires.iter().map(dotjob_tests::ms).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in order: {fires:?}");
    for local in p["fires_local"].as_array().expect("fires_local") {
        let local = local.as_str().expect("an instant");
        assert!(local.contains("T09:00:00"), "9 o'clock in Berlin: {local}");
    }
    w.finish().await;
}
