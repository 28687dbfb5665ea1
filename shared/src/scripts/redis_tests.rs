//! `fire.lua` against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local one) under a
//! key prefix of its own.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use crate::config::RedisConfig;
use crate::conn::Redis;
use crate::model::job::{ConcurrencyPolicy, JobInput};
use crate::store::Store;

use super::{Fire, FireJob, FireReply};

/// One unfenced fire call in group `g`, looking two days ahead.
async fn call(redis: &Redis, jobs: &[FireJob<'_>]) -> FireReply {
    Fire {
        group: "g",
        fence: None,
        fire_ahead_ms: 2 * 86_400_000,
        jobs,
    }
    .call(&mut redis.conn().await.expect("conn"), redis.keys())
    .await
    .expect("fire")
}

/// A job saved between `due.lua` and `fire.lua` (same score, new version) is left for the
/// next round instead of being fired with the version that was read (invariant 8).
#[tokio::test]
async fn a_job_saved_since_it_was_read_is_not_fired_with_the_old_version() {
    let url = std::env::var("DOTJOB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = Redis::new(&RedisConfig {
        url,
        prefix: format!("t-fire-{:08x}", rand::random::<u32>()),
        timeout: Duration::from_secs(5),
        ..RedisConfig::default()
    })
    .expect("redis handle");
    let store = Store::new(redis.clone());
    let keys = redis.keys().clone();
    let body = |n: u32| -> JobInput {
        serde_json::from_value(json!({"name": "j", "group": "g", "handler": "h",
            "schedule": "0 0 3 * * *", "params": {"n": n}}))
        .expect("job input")
    };
    let job = store.create_job(body(1)).await.expect("create");
    let mut c = redis.conn().await.expect("conn");
    let score: i64 = c.zscore(keys.schedule("g"), &job.id).await.expect("score");
    // Read at version 1 (as `due.lua` would), then saved again: same schedule, same score.
    let saved = store.update_job(&job.id, body(2)).await.expect("update");
    assert_eq!(saved.version, 2);
    let rescored: i64 = c.zscore(keys.schedule("g"), &job.id).await.expect("score");
    assert_eq!(
        rescored, score,
        "the save must keep the score for this test"
    );

    let fire = |version: u64| {
        vec![FireJob {
            id: &job.id,
            expected_score: score,
            next_score: Some(score + 86_400_000),
            version,
            policy: ConcurrencyPolicy::Allow,
            exhausted: false,
            ticks: vec![score],
            skip: None,
            shards: None,
        }]
    };
    let stale = fire(1);
    assert_eq!(
        call(&redis, &stale).await,
        FireReply::Fired { fired: 0, stale: 1 }
    );
    let len: u64 = c.xlen(keys.stream("g")).await.expect("xlen");
    assert_eq!(len, 0, "nothing enqueued with the old version");
    let current = fire(2);
    assert_eq!(
        call(&redis, &current).await,
        FireReply::Fired { fired: 1, stale: 0 }
    );
    let run: String = format!("{}-{score}", job.id);
    let version: String = c
        .hget(keys.run("g", &run), super::fields::run::VERSION)
        .await
        .expect("run version");
    assert_eq!(version, "2");

    let all: Vec<String> = c.keys(format!("{}*", keys.prefix())).await.expect("keys");
    if !all.is_empty() {
        let _: () = c.del(all).await.expect("cleanup");
    }
}
