//! `fire.lua` and `trigger.lua` against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the
//! local one) under a key prefix of its own.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use crate::config::RedisConfig;
use crate::conn::Redis;
use crate::model::job::{ConcurrencyPolicy, JobInput};
use crate::store::Store;

use super::{Fire, FireJob, FireReply, Idempotency, Trigger, TriggerKind, TriggerReply};

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

/// One trigger call.
async fn trigger(redis: &Redis, t: Trigger<'_>) -> TriggerReply {
    let mut c = redis.conn().await.expect("conn");
    t.call(&mut c, redis.keys()).await.expect("trigger")
}

/// A handle on the test Redis under a fresh prefix.
fn test_redis(name: &str) -> Redis {
    crate::test_redis::handle(name)
}

use crate::test_redis::cleanup;

/// A job saved between `due.lua` and `fire.lua` (same score, new version) is left for the
/// next round instead of being fired with the version that was read (invariant 8).
#[tokio::test]
async fn a_job_saved_since_it_was_read_is_not_fired_with_the_old_version() {
    let redis = test_redis("fire");
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
            broadcast: false,
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

    cleanup(&redis).await;
}

/// A given (derived) run id is enqueued once; an idempotency key answers its first run until
/// its window ends. Neither replay writes anything.
#[tokio::test]
async fn derived_run_ids_and_idempotency_keys_enqueue_once() {
    let redis = test_redis("trigger");
    let store = Store::new(redis.clone());
    let keys = redis.keys().clone();
    let job: JobInput = serde_json::from_value(json!({"name": "j", "group": "g", "handler": "h"}))
        .expect("job input");
    let job = store.create_job(job).await.expect("create");
    let mut c = redis.conn().await.expect("conn");
    let child_run = format!("{}-c01parent-5", job.id);
    let base = Trigger {
        group: "g",
        job_id: &job.id,
        params: None,
        kind: TriggerKind::Child,
        parent_run: Some("01parent-5"),
        count: 1,
        shards: None,
        run_id: Some(&child_run),
        idempotency: None,
    };
    assert_eq!(
        trigger(&redis, base.clone()).await,
        TriggerReply::Enqueued(vec![child_run.clone()])
    );
    assert_eq!(
        trigger(&redis, base.clone()).await,
        TriggerReply::Replayed(child_run.clone())
    );
    let len: u64 = c.xlen(keys.stream("g")).await.expect("xlen");
    assert_eq!(len, 1, "a derived run id was enqueued twice");
    let parent: String = c
        .hget(keys.run("g", &child_run), super::fields::run::PARENT_RUN)
        .await
        .expect("parent");
    assert_eq!(parent, "01parent-5");

    let keyed = Trigger {
        kind: TriggerKind::Manual,
        parent_run: None,
        run_id: None,
        idempotency: Some(Idempotency {
            key: "retry-me",
            window_ms: 300,
        }),
        ..base
    };
    let TriggerReply::Enqueued(first) = trigger(&redis, keyed.clone()).await else {
        panic!("not enqueued")
    };
    assert_eq!(
        trigger(&redis, keyed.clone()).await,
        TriggerReply::Replayed(first[0].clone())
    );
    let len: u64 = c.xlen(keys.stream("g")).await.expect("xlen");
    assert_eq!(len, 2, "a repeated idempotency key was enqueued");
    let ttl: i64 = c
        .pttl(keys.idempotency("g", &job.id, "retry-me"))
        .await
        .expect("pttl");
    assert!(
        ttl > 0 && ttl <= 300,
        "the key does not expire with its window: {ttl}"
    );
    // After the window, the key enqueues again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ttl: i64 = c
            .pttl(keys.idempotency("g", &job.id, "retry-me"))
            .await
            .expect("pttl");
        if ttl == -2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let TriggerReply::Enqueued(again) = trigger(&redis, keyed).await else {
        panic!("not enqueued after the window")
    };
    assert_ne!(again, first);
    cleanup(&redis).await;
}

/// A sharded `forbid` job: the second tick of one call is skipped while the first tick's
/// shards are queued (every shard recorded `skipped`), and a manual trigger is refused
/// naming a shard in flight.
#[tokio::test]
async fn forbid_holds_a_sharded_tick_as_a_whole() {
    let redis = test_redis("shard-forbid");
    let store = Store::new(redis.clone());
    let keys = redis.keys().clone();
    let input: JobInput = serde_json::from_value(json!({"name": "j", "group": "g",
        "handler": "h", "schedule": "0 0 3 * * *", "concurrency": "forbid",
        "routing": {"mode": "sharded", "shards": 3}}))
    .expect("job input");
    let job = store.create_job(input).await.expect("create");
    let mut c = redis.conn().await.expect("conn");
    let score: i64 = c.zscore(keys.schedule("g"), &job.id).await.expect("score");
    let params = vec![String::new(); 3];
    let jobs = [FireJob {
        id: &job.id,
        expected_score: score,
        next_score: Some(score + 2 * 86_400_000),
        version: job.version,
        policy: ConcurrencyPolicy::Forbid,
        exhausted: false,
        ticks: vec![score, score + 86_400_000],
        skip: None,
        shards: Some(&params),
        broadcast: false,
    }];
    assert_eq!(
        call(&redis, &jobs).await,
        FireReply::Fired { fired: 3, stale: 0 }
    );
    let second = format!("{}-{}", job.id, score + 86_400_000);
    for k in 0..3 {
        let (status, err): (String, String) = redis::cmd("HMGET")
            .arg(keys.run("g", &format!("{second}-s{k}")))
            .arg(super::fields::run::STATUS)
            .arg(super::fields::run::ERROR)
            .query_async(&mut c)
            .await
            .expect("hmget");
        assert_eq!(status, "skipped");
        assert!(
            err.starts_with(&format!("forbid: run {}-{score}-s", job.id)),
            "{err}"
        );
    }
    let marker: String = c.hget(keys.inflight("g"), &job.id).await.expect("marker");
    assert_eq!(marker, format!("{}-{score}", job.id));
    let refused = store.trigger(&job.id, None, "manual", None).await;
    assert!(
        matches!(&refused, Err(crate::Error::Conflict(m)) if m.contains(&format!("{marker}-s0"))),
        "{refused:?}"
    );
    cleanup(&redis).await;
}

/// A broadcast tick is one run per live, enabled executor, each in that executor's own
/// stream; a replay of the tick fires nothing, even to an executor that joined since; an
/// executor reaped before finishing leaves its run `lost` and its stream deleted.
#[tokio::test]
async fn a_broadcast_tick_goes_once_to_each_live_enabled_executor_and_ends_lost_when_reaped() {
    let url = std::env::var("DOTJOB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = Redis::new(&RedisConfig {
        url,
        prefix: format!("t-bcast-{:08x}", rand::random::<u32>()),
        timeout: Duration::from_secs(5),
        ..RedisConfig::default()
    })
    .expect("redis handle");
    let store = Store::new(redis.clone());
    let keys = redis.keys().clone();
    let job = store
        .create_job(
            serde_json::from_value(json!({"name": "b", "group": "g", "handler": "h",
                "schedule": "0 0 3 * * *", "routing": {"mode": "broadcast"}}))
            .expect("job input"),
        )
        .await
        .expect("create");
    let mut c = redis.conn().await.expect("conn");
    let now = crate::conn::now_ms(&mut c).await.expect("now");
    let register = |id: &str, beat: i64| {
        redis::pipe()
            .hset(
                keys.executors("g"),
                id,
                json!({"id": id, "lease_ms": 1000}).to_string(),
            )
            .zadd(keys.heartbeats("g"), id, beat)
            .clone()
    };
    for (id, beat) in [("a", now), ("b", now), ("c", now), ("gone", now - 60_000)] {
        let _: () = register(id, beat)
            .query_async(&mut c)
            .await
            .expect("register");
    }
    let _: i64 = c.sadd(keys.disabled("g"), "c").await.expect("disable");
    let score: i64 = c.zscore(keys.schedule("g"), &job.id).await.expect("score");
    let fire = vec![FireJob {
        id: &job.id,
        expected_score: score,
        next_score: Some(score + 86_400_000),
        version: job.version,
        policy: ConcurrencyPolicy::Allow,
        exhausted: false,
        ticks: vec![score],
        skip: None,
        shards: None,
        broadcast: true,
    }];
    assert_eq!(
        call(&redis, &fire).await,
        FireReply::Fired { fired: 2, stale: 0 }
    );
    let run = |ex: &str| format!("{}-{score}-e{ex}", job.id);
    for ex in ["a", "b"] {
        let rec: std::collections::HashMap<String, String> =
            c.hgetall(keys.run("g", &run(ex))).await.expect("run");
        assert_eq!(rec["status"], "queued");
        assert_eq!((rec["executor"].as_str(), rec["worker"].as_str()), (ex, ex));
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE")
                .arg(keys.executor_stream("g", ex))
                .arg("-")
                .arg("+")
                .query_async(&mut c)
                .await
                .expect("xrange");
        assert_eq!(entries.len(), 1, "one entry in {ex}'s own stream");
        assert_eq!(entries[0].1["run"], run(ex));
    }
    let group_len: u64 = c.xlen(keys.stream("g")).await.expect("xlen");
    assert_eq!(group_len, 0, "nothing in the group stream");
    for ex in ["c", "gone"] {
        let n: u64 = c.exists(keys.run("g", &run(ex))).await.expect("exists");
        assert_eq!(n, 0, "{ex} got a run");
    }

    // The same tick again (its score put back), with one more executor alive: nothing.
    let _: () = register("d", now)
        .query_async(&mut c)
        .await
        .expect("register");
    let _: i64 = c
        .zadd(keys.schedule("g"), &job.id, score)
        .await
        .expect("rescore");
    assert_eq!(
        call(&redis, &fire).await,
        FireReply::Fired { fired: 0, stale: 0 }
    );

    // `a` stops beating: once reaped, its queued run is lost and its stream is gone.
    let _: i64 = c
        .zadd(keys.heartbeats("g"), "a", now - 60_000)
        .await
        .expect("age");
    let reaped = super::Reap {
        executor_timeout_ms: 30_000,
    }
    .call(&mut c, &keys.group_prefix("g"))
    .await
    .expect("reap");
    assert_eq!((reaped.executors, reaped.lost), (2, 1), "{reaped:?}");
    let rec: std::collections::HashMap<String, String> =
        c.hgetall(keys.run("g", &run("a"))).await.expect("run");
    assert_eq!(rec["status"], "lost");
    assert!(
        rec["error"].contains("executor a stopped before finishing"),
        "{rec:?}"
    );
    let streams: u64 = c
        .exists(&[
            keys.executor_stream("g", "a"),
            keys.executor_retry("g", "a"),
        ])
        .await
        .expect("exists");
    assert_eq!(streams, 0);
    let active: bool = c.hexists(keys.active("g"), run("a")).await.expect("active");
    assert!(!active);
    let b: String = c.hget(keys.run("g", &run("b")), "status").await.expect("b");
    assert_eq!(b, "queued", "a live executor's run is left alone");

    let all: Vec<String> = c.keys(format!("{}*", keys.prefix())).await.expect("keys");
    if !all.is_empty() {
        let _: () = c.del(all).await.expect("cleanup");
    }
}
