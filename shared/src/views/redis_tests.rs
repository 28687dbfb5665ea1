//! The run listing against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local one)
//! under a key prefix of its own: every page walk returns each run once, in order, across
//! groups, ties on a tick (shards) and status filters; and the group run index it reads
//! stays exactly the union of the job indexes through every script that writes them.

use redis::AsyncCommands;
use serde_json::json;

use crate::conn::Redis;
use crate::model::job::{ConcurrencyPolicy, JobInput};
use crate::model::run::RunStatus;
use crate::scripts::fields::dead;
use crate::scripts::{Fire, FireJob, FireReply, TriggerKind, TrimRuns};
use crate::store::Store;

use super::runs::{RunQuery, list_runs};
use super::{JobRef, Range, RunCursor, Scope, newest, newest_in_calls_of};

fn redis() -> Redis {
    crate::test_redis::handle("views")
}

/// One seeded run: group, job, run id, tick, status.
type Seeded = (&'static str, String, String, i64, &'static str);

/// Every seeded run, newest first.
fn seed_plan() -> Vec<Seeded> {
    let mut runs = Vec::new();
    let jobs = [("a", "0aaa"), ("a", "0bbb"), ("b", "0ccc"), ("b", "0cc")];
    for (gi, (g, j)) in jobs.iter().enumerate() {
        for k in 0..7i64 {
            // Ticks collide across jobs (every job has runs at 1000 and 2000).
            let tick = 1_000 * (k % 3 + 1) + if k >= 3 { 10 * k + gi as i64 } else { 0 };
            let status = if (k + gi as i64) % 3 == 0 {
                "failed"
            } else {
                "succeeded"
            };
            runs.push((*g, (*j).to_owned(), format!("{j}-{tick}"), tick, status));
        }
    }
    // Five shards of one tick of job 0bbb: same tick, ids differ by suffix.
    for s in 0..5 {
        runs.push((
            "a",
            "0bbb".to_owned(),
            format!("0bbb-5000-s{s}"),
            5_000,
            "succeeded",
        ));
    }
    runs.sort_by(|x, y| y.3.cmp(&x.3).then_with(|| y.2.cmp(&x.2)));
    runs.dedup_by(|x, y| x.2 == y.2);
    runs
}

async fn walk(redis: &Redis, q: &RunQuery, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = list_runs(redis, q, cursor.as_deref(), limit)
            .await
            .expect("page");
        assert!(page.items.len() <= limit);
        out.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn run_pages_cover_every_run_once_newest_first() {
    let redis = redis();
    let keys = redis.keys().clone();
    let mut c = match redis.conn().await {
        Ok(c) => c,
        Err(e) => {
            panic!("these tests need a Redis at DOTJOB_TEST_REDIS_URL or 127.0.0.1:6379: {e}")
        }
    };
    let plan = seed_plan();
    let mut pipe = redis::pipe();
    for (g, j, run, tick, status) in &plan {
        pipe.sadd(keys.groups(), *g)
            .zadd(keys.group_jobs(g), j, 0)
            .hset(keys.job_index(), j, *g)
            .zadd(keys.job_runs(g, j), run, *tick)
            .zadd(keys.group_runs(g), run, *tick)
            .hset_multiple(keys.run(g, run), &[("status", *status), ("v", "1")]);
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();

    let ids = |f: &dyn Fn(&Seeded) -> bool| -> Vec<String> {
        plan.iter().filter(|r| f(r)).map(|r| r.2.clone()).collect()
    };
    for limit in [1, 2, 3, 7, 50] {
        let all = walk(&redis, &RunQuery::default(), limit).await;
        assert_eq!(all, ids(&|_| true), "every run, pages of {limit}");
        let failed = RunQuery {
            status: Some(RunStatus::Failed),
            ..RunQuery::default()
        };
        assert_eq!(
            walk(&redis, &failed, limit).await,
            ids(&|r| r.4 == "failed"),
            "failed, pages of {limit}"
        );
        let group_b = RunQuery {
            group: Some("b".into()),
            ..RunQuery::default()
        };
        assert_eq!(
            walk(&redis, &group_b, limit).await,
            ids(&|r| r.0 == "b"),
            "group b, pages of {limit}"
        );
        let one_job = RunQuery {
            job: Some("0bbb".into()),
            from_ms: Some(1_500),
            to_ms: Some(5_000),
            ..RunQuery::default()
        };
        assert_eq!(
            walk(&redis, &one_job, limit).await,
            ids(&|r| r.1 == "0bbb" && (1_500..=5_000).contains(&r.3)),
            "one job in a range, pages of {limit}"
        );
    }
    // Calls cut short by their budget resume where they stopped: any budget gives the
    // same answer, from any cursor (also one inside the five shards tied on a tick).
    let mut c2 = redis.conn().await.unwrap();
    let job = JobRef {
        group: "a".into(),
        id: "0bbb".into(),
    };
    let scopes = [
        Scope::Groups(vec!["a".into(), "b".into()]),
        Scope::Groups(vec!["b".into()]),
        Scope::Job(job),
    ];
    let cursors: Vec<Option<RunCursor>> = [None, Some(0), Some(3), Some(9)]
        .into_iter()
        .map(|i| {
            i.map(|i: usize| RunCursor {
                score: plan[i].3,
                run: plan[i].2.clone(),
            })
        })
        .collect();
    for scope in &scopes {
        for status in [None, Some(RunStatus::Failed)] {
            for after in &cursors {
                let range = Range {
                    status,
                    after: after.as_ref(),
                    ..Range::default()
                };
                for need in [1, 4, 50] {
                    let whole = newest(&mut c2, &keys, scope, &range, need).await.unwrap();
                    for per_call in [1, 2, 3] {
                        let cut = newest_in_calls_of(&mut c2, &keys, scope, &range, need, per_call)
                            .await
                            .unwrap();
                        assert_eq!(
                            cut, whole,
                            "{scope:?} {status:?} {after:?} need {need}, {per_call} per call"
                        );
                    }
                }
            }
        }
    }
    let unknown = RunQuery {
        group: Some("nope".into()),
        ..RunQuery::default()
    };
    assert!(matches!(
        list_runs(&redis, &unknown, None, 5).await,
        Err(crate::Error::NotFound(_))
    ));
    delete_all(&redis).await;
}

/// Deletes every key of the test's prefix.
async fn delete_all(redis: &Redis) {
    let mut c = redis.conn().await.unwrap();
    let keys_left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", redis.keys().prefix()))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys_left.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys_left)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

/// A group's run entries (run id, tick) as its jobs' indexes hold them, and as its group
/// index holds them, each sorted.
async fn both_indexes(redis: &Redis, group: &str) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let keys = redis.keys();
    let mut c = redis.conn().await.unwrap();
    let jobs: Vec<String> = c.zrange(keys.group_jobs(group), 0, -1).await.unwrap();
    let mut per_job = Vec::new();
    for j in &jobs {
        let v: Vec<(String, f64)> = c
            .zrange_withscores(keys.job_runs(group, j), 0, -1)
            .await
            .unwrap();
        per_job.extend(v.into_iter().map(|(r, t)| (r, t as i64)));
    }
    let all: Vec<(String, f64)> = c
        .zrange_withscores(keys.group_runs(group), 0, -1)
        .await
        .unwrap();
    let mut all: Vec<(String, i64)> = all.into_iter().map(|(r, t)| (r, t as i64)).collect();
    per_job.sort();
    all.sort();
    (per_job, all)
}

/// Asserts that the group index holds exactly what the job indexes hold; returns its size.
async fn assert_exact(redis: &Redis, group: &str, after: &str) -> usize {
    let (per_job, all) = both_indexes(redis, group).await;
    assert_eq!(
        all, per_job,
        "after {after}: the group index differs from the job indexes"
    );
    all.len()
}

fn input(v: serde_json::Value) -> JobInput {
    serde_json::from_value(v).expect("job input")
}

#[tokio::test]
async fn the_group_run_index_follows_every_write_of_the_job_indexes() {
    let redis = redis();
    let keys = redis.keys().clone();
    let store = Store::new(redis.clone());
    let g = "idx";
    let a = store
        .create_job(input(json!({"name": "a", "group": g, "handler": "h"})))
        .await
        .unwrap()
        .id;
    let b = store
        .create_job(input(
            json!({"name": "b", "group": g, "handler": "h", "schedule": "@every 1h"}),
        ))
        .await
        .unwrap();
    let c3 = store
        .create_job(input(json!({"name": "c", "group": g, "handler": "h"})))
        .await
        .unwrap()
        .id;

    // Manual triggers, a bulk one, a child run.
    let first = store
        .trigger(&a, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    store
        .trigger(&a, Some(&json!({"x": 1})), TriggerKind::Child, Some(&first))
        .await
        .unwrap();
    store
        .trigger_many(&a, 5, TriggerKind::Other("bulk"))
        .await
        .unwrap();
    assert_eq!(assert_exact(&redis, g, "triggers").await, 7);

    // Fired ticks: a plain one, a skipped one, a sharded one (one run per shard), and a
    // replay of a tick already fired (not indexed twice).
    let mut c = redis.conn().await.unwrap();
    let now = store.now_ms().await.unwrap();
    let due = now - 5_000;
    let _: () = c.zadd(keys.schedule(g), &b.id, due).await.unwrap();
    let _: () = c.zadd(keys.schedule(g), &c3, due).await.unwrap();
    let shard_params = ["".to_owned(), r#"{"k":1}"#.to_owned()];
    let fire = |ticks: Vec<i64>, skip: Option<i64>, next: i64| {
        vec![
            FireJob {
                id: &b.id,
                expected_score: due,
                next_score: Some(next),
                version: 1,
                policy: ConcurrencyPolicy::Allow,
                exhausted: false,
                ticks: ticks.clone(),
                skip,
                shards: None,
                broadcast: false,
            },
            FireJob {
                id: &c3,
                expected_score: due,
                next_score: Some(next),
                version: 1,
                policy: ConcurrencyPolicy::Allow,
                exhausted: false,
                ticks,
                skip: None,
                shards: Some(&shard_params),
                broadcast: false,
            },
        ]
    };
    let jobs = fire(vec![due], Some(due - 60_000), due);
    let call = Fire {
        group: g,
        fence: None,
        fire_ahead_ms: 0,
        jobs: &jobs,
    };
    assert!(matches!(
        call.call(&mut c, &keys).await.unwrap(),
        FireReply::Fired { fired: 3, .. }
    ));
    // The same ticks again (the score was left at `due`): replays, nothing new.
    call.call(&mut c, &keys).await.unwrap();
    assert_eq!(assert_exact(&redis, g, "firing").await, 7 + 2 + 2);

    // A tick fired ahead of its instant, then recalled by a schedule change.
    let ahead = now + 60_000;
    let jobs = vec![FireJob {
        id: &b.id,
        expected_score: due,
        next_score: Some(ahead + 3_600_000),
        version: 1,
        policy: ConcurrencyPolicy::Allow,
        exhausted: false,
        ticks: vec![ahead],
        skip: None,
        shards: None,
        broadcast: false,
    }];
    let call = Fire {
        group: g,
        fence: None,
        fire_ahead_ms: 120_000,
        jobs: &jobs,
    };
    call.call(&mut c, &keys).await.unwrap();
    assert_eq!(assert_exact(&redis, g, "firing ahead").await, 12);
    store
        .update_job(
            &b.id,
            input(json!({"name": "b", "group": g, "handler": "h", "schedule": "@every 2h"})),
        )
        .await
        .unwrap();
    assert_eq!(assert_exact(&redis, g, "a recall").await, 11);

    // A dead letter re-queued: its new run is indexed.
    let dead_run = first.clone();
    let entry: String = redis::cmd("XADD")
        .arg(keys.dead(g))
        .arg("*")
        .arg(dead::RUN)
        .arg(&dead_run)
        .arg(dead::JOB)
        .arg(&a)
        .query_async(&mut c)
        .await
        .unwrap();
    let requeued = store.requeue_dead(g, &entry).await.unwrap();
    assert_eq!(assert_exact(&redis, g, "a requeue").await, 12);
    let score: Option<f64> = c.zscore(keys.group_runs(g), &requeued).await.unwrap();
    assert!(
        score.is_some(),
        "the requeued run {requeued} is in the group index"
    );

    // Retention: every run finished, at most 2 kept per job.
    let (per_job, _) = both_indexes(&redis, g).await;
    let mut pipe = redis::pipe();
    for (run, _) in &per_job {
        pipe.hset(keys.run(g, run), "status", "succeeded").ignore();
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    let trim = TrimRuns {
        keep: 2,
        max_age_ms: 86_400_000,
        after: None,
        jobs: 100,
    };
    let trimmed = trim.call(&mut c, &keys.group_prefix(g)).await.unwrap();
    assert_eq!(trimmed.deleted, 6, "a: 8 runs → 2; b and c: 2 each, kept");
    assert_eq!(assert_exact(&redis, g, "trimming").await, 6);

    // A job deleted with its runs: none of them is left in the group index.
    store.delete_job(&a).await.unwrap();
    assert_eq!(assert_exact(&redis, g, "deleting a job").await, 4);
    let left: Vec<String> = c.zrange(keys.group_runs(g), 0, -1).await.unwrap();
    assert!(left.iter().all(|r| !r.starts_with(&a)), "{left:?}");

    delete_all(&redis).await;
}
