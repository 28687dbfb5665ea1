//! The job table's last-status filter end to end: jobs run by a real worker through a real
//! scheduler end in different statuses, and `GET /views/jobs?last_status=` lists each job
//! under exactly the status of its newest run as `GET /jobs/{id}/runs` shows it (jobs that
//! never ran under `none`), page by page, with the matching total, read from the group's
//! last-status index; a cancelled run and a job run again move their jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, delete_prefix, raw_conn, shared_redis, unique_prefix, wait_for,
};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::common::TestWorker;

const STATUSES: [&str; 10] = [
    "none",
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "dead",
    "skipped",
    "cancelled",
    "lost",
];

/// Each job's newest run's status as its run list shows it ("none" without runs).
async fn truth(api: &Api, jobs: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for id in jobs {
        let runs = api.runs(id).await;
        let st = runs
            .first()
            .and_then(|r| r["status"].as_str())
            .unwrap_or("none");
        out.insert(id.clone(), st.to_owned());
    }
    out
}

/// Every job id `/views/jobs?group=&last_status=` lists (pages of 2), and the totals.
async fn listed(api: &Api, group: &str, status: &str) -> (Vec<String>, Vec<u64>) {
    let (mut ids, mut totals) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/views/jobs?group={group}&last_status={status}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let a = api.call("GET", &path, None).await.expect("list jobs");
        assert_eq!(a.status, 200, "{path}: {:?}", a.body);
        for row in a.body["items"].as_array().cloned().unwrap_or_default() {
            ids.push(row["job"]["id"].as_str().unwrap_or_default().to_owned());
            let last = row["last_run"]["status"].as_str().unwrap_or("none");
            assert_eq!(last, status, "{path}: {row}");
        }
        totals.push(a.body["total"].as_u64().unwrap_or(u64::MAX));
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, totals),
        }
    }
}

/// Asserts every status lists exactly the jobs whose newest run has it; returns the count
/// per status.
async fn assert_listed(api: &Api, group: &str, jobs: &[String]) -> BTreeMap<String, usize> {
    let truth = truth(api, jobs).await;
    let mut counts = BTreeMap::new();
    for status in STATUSES {
        let want: Vec<String> = truth
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(id, _)| id.clone())
            .collect();
        let (ids, totals) = listed(api, group, status).await;
        assert_eq!(ids, want, "last_status={status}");
        assert!(
            totals.iter().all(|t| *t == want.len() as u64),
            "last_status={status}: totals {totals:?}, {} jobs",
            want.len()
        );
        counts.insert(status.to_owned(), want.len());
    }
    counts
}

#[tokio::test]
async fn the_job_table_lists_each_job_under_its_newest_runs_status() {
    let url = shared_redis();
    let prefix = unique_prefix("last-status");
    let keys = Keys::new(prefix.as_str());
    let g = "ls";
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let worker = TestWorker::start(&url, &prefix, g);
    let job = |name: &str, handler: &str, extra: Value| {
        let mut j = json!({"name": name, "group": g, "handler": handler});
        if let (Some(o), Value::Object(e)) = (j.as_object_mut(), extra) {
            o.extend(e);
        }
        j
    };
    let mut jobs = Vec::new();
    for j in [
        job("ok-1", "noop", json!({})),
        job("ok-2", "noop", json!({})),
        job("fail", "fail", json!({"max_attempts": 1})),
        job(
            "dead",
            "fail",
            json!({"max_attempts": 2, "backoff": {"base_ms": 50, "max_ms": 100}}),
        ),
        job(
            "sleeper",
            "sleep",
            json!({"params": {"ms": 60_000}, "timeout_ms": 120_000}),
        ),
        job("never-1", "noop", json!({})),
        job("never-2", "noop", json!({})),
    ] {
        jobs.push(api.create_job(&j).await["id"].as_str().unwrap().to_owned());
    }
    // The scheduler's first round marks the group's index backfilled: the listing reads it.
    let mut c = raw_conn(&url).await;
    wait_for("the index backfilled", Duration::from_secs(30), || {
        let mut c = c.clone();
        let marker = keys.last_backfilled(g);
        async move { c.exists::<_, bool>(&marker).await.unwrap().then_some(()) }
    })
    .await;
    let mut runs = Vec::new();
    for id in &jobs[..5] {
        runs.push(api.trigger(id, None).await);
    }
    for run in &runs[..4] {
        api.wait_run_final(run, Duration::from_secs(30)).await;
    }
    api.wait_run_running(&runs[4], Duration::from_secs(30))
        .await;
    let counts = assert_listed(&api, g, &jobs).await;
    for (status, n) in [
        ("succeeded", 2),
        ("failed", 1),
        ("dead", 1),
        ("running", 1),
        ("none", 2),
    ] {
        assert_eq!(counts[status], n, "{status}: {counts:?}");
    }

    // The sleeper's run cancelled, a job that never ran run now, and ok-1 run again (its
    // newest is then the new run).
    let a = api
        .call("POST", &format!("/runs/{}/cancel", runs[4]), None)
        .await
        .unwrap();
    assert!(a.status < 300, "{:?}", a.body);
    api.wait_run_final(&runs[4], Duration::from_secs(30)).await;
    let again = api.trigger(&jobs[0], None).await;
    let first_run = api.trigger(&jobs[5], None).await;
    api.wait_run_final(&again, Duration::from_secs(30)).await;
    api.wait_run_final(&first_run, Duration::from_secs(30))
        .await;
    let counts = assert_listed(&api, g, &jobs).await;
    for (status, n) in [
        ("succeeded", 3),
        ("cancelled", 1),
        ("running", 0),
        ("none", 1),
    ] {
        assert_eq!(counts[status], n, "{status}: {counts:?}");
    }
    let n: u64 = c.zcard(keys.last_status(g)).await.unwrap();
    assert_eq!(n, jobs.len() as u64, "every job is in the index once");

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
