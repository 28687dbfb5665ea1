//! The run listing against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local one)
//! under a key prefix of its own: every page walk returns each run once, in order, across
//! groups, ties on a tick (shards) and status filters.

use std::time::Duration;

use crate::config::RedisConfig;
use crate::conn::Redis;
use crate::model::run::RunStatus;

use super::runs::{RunQuery, list_runs};

fn redis() -> Redis {
    let url = std::env::var("DOTJOB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    Redis::new(&RedisConfig {
        url,
        prefix: format!("t-views-{:08x}", rand::random::<u32>()),
        timeout: Duration::from_secs(5),
    })
    .expect("redis handle")
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
    let unknown = RunQuery {
        group: Some("nope".into()),
        ..RunQuery::default()
    };
    assert!(matches!(
        list_runs(&redis, &unknown, None, 5).await,
        Err(crate::Error::NotFound(_))
    ));
    let keys_left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", keys.prefix()))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&keys_left)
        .query_async(&mut c)
        .await
        .unwrap();
}
