//! The backfill against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local one) under a
//! key prefix of its own: runs written the old way (job indexes only) are listed once each
//! after it, a second backfill reads one key and adds nothing, batches resume where the
//! previous one stopped, and two backfills at once add each run once between them.

use std::collections::HashSet;

use redis::AsyncCommands;

use super::backfill_group;
use crate::conn::Redis;
use crate::scripts::{Backfill, BackfillReply};
use crate::views::runs::{RunQuery, list_runs};

fn redis() -> Redis {
    crate::test_redis::handle("backfill")
}

/// Writes `jobs` jobs of `group` with `runs` runs each the way releases before `group-runs`
/// did (job index and run record only), except that every third job's runs are also in
/// `group-runs` (written after the upgrade). Returns every run id, newest first, and how
/// many are missing from `group-runs`.
async fn seed_old_way(redis: &Redis, group: &str, jobs: usize, runs: i64) -> (Vec<String>, u64) {
    let keys = redis.keys();
    let mut c = redis.conn().await.unwrap_or_else(|e| {
        panic!("these tests need a Redis at DOTJOB_TEST_REDIS_URL or 127.0.0.1:6379: {e}")
    });
    let mut all: Vec<(i64, String)> = Vec::new();
    let mut missing = 0;
    let mut pipe = redis::pipe();
    pipe.sadd(keys.groups(), group).ignore();
    for j in 0..jobs {
        let job = format!("0job{j:04}");
        pipe.zadd(keys.group_jobs(group), &job, 0)
            .ignore()
            .hset(keys.job_index(), &job, group)
            .ignore();
        for k in 0..runs {
            // Ticks collide across jobs: the group index must keep both runs of a tick.
            let tick = 1_000 * k + (j % 2) as i64;
            let run = format!("{job}-{tick}");
            pipe.zadd(keys.job_runs(group, &job), &run, tick)
                .ignore()
                .hset_multiple(
                    keys.run(group, &run),
                    &[("status", "succeeded"), ("v", "1")],
                )
                .ignore();
            if j % 3 == 0 {
                pipe.zadd(keys.group_runs(group), &run, tick).ignore();
            } else {
                missing += 1;
            }
            all.push((tick, run));
        }
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    all.sort_by(|x, y| y.cmp(x));
    (all.into_iter().map(|(_, r)| r).collect(), missing)
}

/// Every run `GET /runs?group=` lists, page by page.
async fn listed(redis: &Redis, group: &str) -> Vec<String> {
    let q = RunQuery {
        group: Some(group.to_owned()),
        ..RunQuery::default()
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = list_runs(redis, &q, cursor.as_deref(), 100)
            .await
            .expect("page");
        out.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn old_runs_are_listed_once_after_the_backfill_and_a_second_one_adds_nothing() {
    let redis = redis();
    let (runs, missing) = seed_old_way(&redis, "old", 7, 5).await;
    assert!(missing > 0);
    let before = listed(&redis, "old").await;
    assert_eq!(before.len() as u64, runs.len() as u64 - missing);

    assert_eq!(backfill_group(&redis, "old").await.unwrap(), Some(missing));
    let after = listed(&redis, "old").await;
    assert_eq!(after, runs, "every run once, newest first");
    assert_eq!(after.iter().collect::<HashSet<_>>().len(), after.len());

    let mut c = redis.conn().await.unwrap();
    let marked: bool = c.exists(redis.keys().backfilled("old")).await.unwrap();
    assert!(marked, "the group is marked backfilled");
    // A second start: one key read, nothing added, even after the index lost a run (which
    // only retention may do, with the run itself; the marker stops any rescan).
    let first = runs[0].clone();
    let _: i64 = c
        .zrem(redis.keys().group_runs("old"), &first)
        .await
        .unwrap();
    assert_eq!(backfill_group(&redis, "old").await.unwrap(), None);
    let score: Option<f64> = c
        .zscore(redis.keys().group_runs("old"), &first)
        .await
        .unwrap();
    assert_eq!(score, None, "a backfilled group was scanned again");
}

#[tokio::test]
async fn small_batches_resume_where_the_last_one_stopped() {
    let redis = redis();
    let (runs, missing) = seed_old_way(&redis, "chunked", 11, 4).await;
    let prefix = redis.keys().group_prefix("chunked");
    let mut c = redis.conn().await.unwrap();
    let (mut after, mut added, mut calls) = (None::<String>, 0, 0);
    loop {
        calls += 1;
        let reply = Backfill {
            after: after.as_deref(),
            jobs: 3,
            entries: 6,
        }
        .call(&mut c, &prefix)
        .await
        .unwrap();
        match reply {
            BackfillReply::Continue { next, added: n } => {
                added += n;
                after = Some(next);
            }
            BackfillReply::Done { added: n } => {
                added += n;
                break;
            }
            BackfillReply::AlreadyDone => panic!("marked before the last batch"),
        }
    }
    // 11 jobs of 4 runs, a call ends once 6 entries were read: two jobs per call.
    assert_eq!(calls, 6);
    assert_eq!(added, missing);
    assert_eq!(listed(&redis, "chunked").await, runs);
    let again = Backfill {
        after: None,
        jobs: 3,
        entries: 6,
    }
    .call(&mut c, &prefix)
    .await
    .unwrap();
    assert_eq!(again, BackfillReply::AlreadyDone);
}

#[tokio::test]
async fn two_backfills_at_once_add_each_run_once_between_them() {
    let redis = redis();
    let (runs, missing) = seed_old_way(&redis, "race", 1_200, 3).await;
    let other = redis.clone();
    let (a, b) = tokio::join!(
        backfill_group(&redis, "race"),
        backfill_group(&other, "race")
    );
    let total = a.unwrap().unwrap_or(0) + b.unwrap().unwrap_or(0);
    assert_eq!(total, missing);
    assert_eq!(listed(&redis, "race").await, runs);
    // A group with jobs but no runs yet (created after the upgrade) is marked at once.
    let _: () = redis::pipe()
        .zadd(redis.keys().group_jobs("fresh"), "0new", 0)
        .query_async(&mut redis.conn().await.unwrap())
        .await
        .unwrap();
    assert_eq!(backfill_group(&redis, "fresh").await.unwrap(), Some(0));
    assert_eq!(backfill_group(&redis, "fresh").await.unwrap(), None);
}
