//! The upgrade backfill of the group run index: runs written the old way (job run indexes
//! only, no `group-runs`) are listed by `GET /runs?group=` once the scheduler holding the
//! group has started, each once; a second start reads the marker and scans nothing.

use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, delete_prefix, raw_conn, shared_redis, unique_prefix, wait_for,
};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// Every run id `GET /runs?group=` lists, all pages.
async fn group_runs(api: &Api, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/runs?group={group}&limit=5");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let a = api.call("GET", &path, None).await.expect("list runs");
        assert_eq!(a.status, 200, "{:?}", a.body);
        for r in a.body["items"].as_array().cloned().unwrap_or_default() {
            out.push(r["id"].as_str().unwrap_or_default().to_owned());
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn runs_recorded_before_the_group_index_are_listed_after_the_first_start_only_once() {
    let url = shared_redis();
    let prefix = unique_prefix("backfill");
    let keys = Keys::new(prefix.as_str());
    let mut c = raw_conn(&url).await;
    // Three jobs of four runs each, as releases before `group-runs` wrote them.
    let mut old: Vec<(i64, String)> = Vec::new();
    let mut pipe = redis::pipe();
    pipe.sadd(keys.groups(), "old").ignore();
    for j in 0..3 {
        let job = format!("01oldjob{j}");
        pipe.zadd(keys.group_jobs("old"), &job, 0)
            .ignore()
            .hset(keys.job_index(), &job, "old")
            .ignore();
        for k in 0..4i64 {
            let tick = 1_700_000_000_000 + 60_000 * k + j;
            let run = format!("{job}-{tick}");
            pipe.zadd(keys.job_runs("old", &job), &run, tick)
                .ignore()
                .hset_multiple(
                    keys.run("old", &run),
                    &[
                        ("status", "succeeded"),
                        ("v", "1"),
                        ("scheduled_at", &tick.to_string()),
                    ],
                )
                .ignore();
            old.push((tick, run));
        }
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    old.sort_by(|x, y| y.cmp(x));
    let old: Vec<String> = old.into_iter().map(|(_, r)| r).collect();

    let first = InProcess::start(&url, &prefix).await;
    let api = Api::new(&first.base);
    let listed = wait_for(
        "the old runs in the group listing",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let want = old.len();
            async move {
                let got = group_runs(&api, "old").await;
                (got.len() >= want).then_some(got)
            }
        },
    )
    .await;
    assert_eq!(listed, old, "every old run once, newest first");
    let marker: Option<String> = c.get(keys.backfilled("old")).await.unwrap();
    let marker = marker.expect("the group is marked backfilled");
    first.shutdown().await;

    // Take one run out of the group index (only to see whether a second start rescans),
    // then start again and let the new holder fire more than one round of a job of the
    // group: its backfill step follows its first round. A round fires the ticks up to
    // 2.5 s ahead (at most three of a 1 s job), so five runs take two rounds at least.
    let _: i64 = c.zrem(keys.group_runs("old"), &old[0]).await.unwrap();
    let second = InProcess::start(&url, &prefix).await;
    let api = Api::new(&second.base);
    let job: Value = api
        .create_job(&json!({"name": "tick", "group": "old", "handler": "noop",
            "schedule": "@every 1s"}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for("two firing rounds", Duration::from_secs(30), || {
        let api = api.clone();
        let id = id.clone();
        async move { (api.runs(&id).await.len() >= 5).then_some(()) }
    })
    .await;
    let again: Option<String> = c.get(keys.backfilled("old")).await.unwrap();
    assert_eq!(
        again.as_deref(),
        Some(marker.as_str()),
        "the marker was rewritten"
    );
    let score: Option<f64> = c.zscore(keys.group_runs("old"), &old[0]).await.unwrap();
    assert_eq!(
        score, None,
        "the second start scanned the job indexes again"
    );
    let listed = group_runs(&api, "old").await;
    for run in &old[1..] {
        assert_eq!(listed.iter().filter(|r| *r == run).count(), 1, "{run}");
    }
    second.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
