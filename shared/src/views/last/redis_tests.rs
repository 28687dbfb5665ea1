//! The last-status index against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local
//! one) under a key prefix of its own: through every kind of write (create, manual, child,
//! bulk and replacing triggers, firing with shards and a skipped tick, start, mark, each
//! completion outcome and a retry, a lost entry, a cancel, a hand-back, a recall, trimming,
//! a delete) it holds exactly each job's newest run's status as a scan finds it; the
//! backfill builds it from the runs alone; and the job table answers every last-status
//! filter through the index exactly as through the scan.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::json;

use super::LastStatus;
use crate::backfill::backfill_last_status;
use crate::conn::Redis;
use crate::keys::CONSUMER_GROUP;
use crate::model::job::{ConcurrencyPolicy, JobInput};
use crate::model::run::RunStatus;
use crate::scripts::{
    Attempt, AttemptOutcome, BackfillLast, BackfillReply, Cancel, Claim, Complete, Fire, FireJob,
    Handback, MarkRunning, Start, TriggerKind, TrimRuns,
};
use crate::store::Store;
use crate::views::jobs::{JobQuery, list_job_rows};

fn redis() -> Redis {
    crate::test_redis::handle("last")
}

async fn delete_all(redis: &Redis) {
    let mut c = redis.conn().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", redis.keys().prefix()))
        .query_async(&mut c)
        .await
        .unwrap();
    if !left.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&left)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

fn input(v: serde_json::Value) -> JobInput {
    serde_json::from_value(v).expect("job input")
}

/// Each job of the group with the status of its newest run as a scan finds it (the top of
/// its run index; `none` without runs or record), by job id.
async fn truth(redis: &Redis, g: &str) -> Vec<(String, LastStatus)> {
    let keys = redis.keys();
    let mut c = redis.conn().await.unwrap();
    let jobs: Vec<String> = c.zrange(keys.group_jobs(g), 0, -1).await.unwrap();
    let mut out = Vec::new();
    for j in jobs {
        let top: Vec<String> = c.zrange(keys.job_runs(g, &j), -1, -1).await.unwrap();
        let st: Option<String> = match top.first() {
            Some(r) => c.hget(keys.run(g, r), "status").await.unwrap(),
            None => None,
        };
        let last = st
            .and_then(|s| RunStatus::parse(&s))
            .map_or(LastStatus::Never, LastStatus::Is);
        out.push((j, last));
    }
    out
}

/// What the index holds, by job id.
async fn indexed(redis: &Redis, g: &str) -> Vec<(String, LastStatus)> {
    let mut c = redis.conn().await.unwrap();
    let v: Vec<(String, f64)> = c
        .zrange_withscores(redis.keys().last_status(g), 0, -1)
        .await
        .unwrap();
    let mut out: Vec<(String, LastStatus)> = v
        .into_iter()
        .map(|(j, code)| (j, LastStatus::from_code(code as u8).expect("a known code")))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Asserts the index is the truth; returns each job's status.
async fn assert_exact(redis: &Redis, g: &str, after: &str) -> HashMap<String, LastStatus> {
    let want = truth(redis, g).await;
    assert_eq!(
        indexed(redis, g).await,
        want,
        "after {after}: the index differs from the newest runs"
    );
    want.into_iter().collect()
}

/// Reads every new entry of the group stream as consumer `w`; returns run id → entry id.
async fn read_as(redis: &Redis, g: &str, w: &str) -> HashMap<String, String> {
    let keys = redis.keys();
    let mut c = redis.conn().await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg(w)
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg(keys.stream(g))
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    c.hgetall(keys.active(g)).await.unwrap()
}

fn attempt<'a>(entry: &'a str, run: &'a str, job: &'a str, outcome: AttemptOutcome) -> Attempt<'a> {
    Attempt {
        entry,
        run,
        job,
        outcome,
        attempt: 1,
        max_attempts: 1,
        retry_delay_ms: None,
        code: 200,
        duration_ms: 5,
        result: "",
        error: "",
        guarded: false,
        started_ago_ms: 5,
    }
}

const IS: fn(RunStatus) -> LastStatus = LastStatus::Is;

#[tokio::test]
async fn the_last_status_index_follows_every_write_of_a_jobs_newest_run() {
    let redis = redis();
    let keys = redis.keys().clone();
    let store = Store::new(redis.clone());
    let p = keys.group_prefix("idx");
    let g = "idx";
    let mut c = redis.conn().await.unwrap();
    let mk = |v: serde_json::Value| input(v);
    let a = store
        .create_job(mk(json!({"name": "a", "group": g, "handler": "h"})))
        .await
        .unwrap()
        .id;
    let b = store
        .create_job(mk(
            json!({"name": "b", "group": g, "handler": "h", "schedule": "@every 1h"}),
        ))
        .await
        .unwrap()
        .id;
    let r = store
        .create_job(mk(
            json!({"name": "r", "group": g, "handler": "h", "concurrency": "replace"}),
        ))
        .await
        .unwrap()
        .id;
    let d = store
        .create_job(mk(json!({"name": "d", "group": g, "handler": "h"})))
        .await
        .unwrap()
        .id;
    let late = store
        .create_job(mk(json!({"name": "late", "group": g, "handler": "h"})))
        .await
        .unwrap()
        .id;
    let s = assert_exact(&redis, g, "creating jobs").await;
    assert_eq!(s.len(), 5);
    assert!(s.values().all(|v| *v == LastStatus::Never), "{s:?}");

    // Manual, child and bulk triggers; a replacing trigger cancels the older run.
    let first = store
        .trigger(&a, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    store
        .trigger(&a, Some(&json!({"x": 1})), TriggerKind::Child, Some(&first))
        .await
        .unwrap();
    store
        .trigger_many(&a, 3, TriggerKind::Other("bulk"))
        .await
        .unwrap();
    let replaced = store
        .trigger(&r, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    let s = assert_exact(&redis, g, "triggers").await;
    assert_eq!(s[&a], IS(RunStatus::Queued));
    assert_eq!(s[&b], LastStatus::Never);
    let replacing = store
        .trigger(&r, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    let s = assert_exact(&redis, g, "a replacing trigger").await;
    assert_eq!(s[&r], IS(RunStatus::Queued));
    let old: Option<String> = c.hget(keys.run(g, &replaced), "status").await.unwrap();
    assert_eq!(old.as_deref(), Some("cancelled"), "{replacing}");

    // Fired ticks: b's newest is a skipped tick fired after a plain one; d fires one tick
    // as 12 shard runs (the newest by id is `-s9`, not `-s11`).
    let now = store.now_ms().await.unwrap();
    let due = now - 5_000;
    let _: () = c.zadd(keys.schedule(g), &b, due).await.unwrap();
    let _: () = c.zadd(keys.schedule(g), &d, due).await.unwrap();
    let shard_params: Vec<String> = (0..12).map(|_| String::new()).collect();
    let jobs = vec![
        FireJob {
            id: &b,
            expected_score: due,
            next_score: Some(due + 3_600_000),
            version: 1,
            policy: ConcurrencyPolicy::Allow,
            exhausted: false,
            ticks: vec![due - 120_000],
            skip: Some(due),
            shards: None,
            broadcast: false,
        },
        FireJob {
            id: &d,
            expected_score: due,
            next_score: Some(due + 3_600_000),
            version: 1,
            policy: ConcurrencyPolicy::Allow,
            exhausted: false,
            ticks: vec![due],
            skip: None,
            shards: Some(&shard_params),
            broadcast: false,
        },
    ];
    Fire {
        group: g,
        fence: None,
        fire_ahead_ms: 0,
        jobs: &jobs,
    }
    .call(&mut c, &keys)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "firing").await;
    assert_eq!(s[&d], IS(RunStatus::Queued));

    // A worker reads everything; some runs go running (start, mark), then each outcome.
    let held = read_as(&redis, g, "w1").await;
    let runs_of = |job: &str| -> Vec<String> {
        let mut v: Vec<String> = held
            .keys()
            .filter(|r| r.starts_with(job))
            .cloned()
            .collect();
        v.sort();
        v
    };
    let d_newest: Vec<String> = c.zrange(keys.job_runs(g, &d), -1, -1).await.unwrap();
    let d_newest = d_newest[0].clone();
    assert!(d_newest.ends_with("-s9"), "{d_newest}");
    let d_other = format!("{d}-{due}-s11");
    Start {
        worker: "w1",
        poison_after: 3,
        runs: &[(d_other.as_str(), 1)],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "starting an older shard").await;
    assert_eq!(s[&d], IS(RunStatus::Queued), "only the newest run counts");
    Start {
        worker: "w1",
        poison_after: 3,
        runs: &[(d_newest.as_str(), 1)],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "starting the newest shard").await;
    assert_eq!(s[&d], IS(RunStatus::Running));
    let a_runs = runs_of(&a);
    let a_newest: Vec<String> = c.zrange(keys.job_runs(g, &a), -1, -1).await.unwrap();
    let a_newest = a_newest[0].clone();
    MarkRunning {
        worker: "w1",
        runs: &[(a_newest.as_str(), 1, 300)],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "marking running").await;
    assert_eq!(s[&a], IS(RunStatus::Running));

    // A failure with a retry left, then dead; a plain success of d's newest shard; an
    // older run of a succeeding changes nothing.
    let e = held[&a_newest].clone();
    let mut fail = attempt(&e, &a_newest, &a, AttemptOutcome::Failed);
    fail.max_attempts = 2;
    fail.retry_delay_ms = Some(60_000);
    fail.code = 500;
    Complete {
        worker: "w1",
        attempts: &[fail.clone()],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "a failure waiting for its retry").await;
    assert_eq!(s[&a], IS(RunStatus::Failed));
    fail.attempt = 2;
    let older = a_runs.iter().find(|x| **x != a_newest).unwrap().clone();
    let older_entry = held[&older].clone();
    let de = held[&d_newest].clone();
    Complete {
        worker: "w1",
        attempts: &[
            fail,
            attempt(&de, &d_newest, &d, AttemptOutcome::Succeeded),
            attempt(&older_entry, &older, &a, AttemptOutcome::Succeeded),
        ],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "dead, succeeded and an older success").await;
    assert_eq!(s[&a], IS(RunStatus::Dead));
    assert_eq!(s[&d], IS(RunStatus::Succeeded));

    // b: a fresh manual run cancelled while queued.
    let bm = store
        .trigger(&b, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    assert_eq!(
        assert_exact(&redis, g, "b's trigger").await[&b],
        IS(RunStatus::Queued)
    );
    Cancel { group: g, run: &bm }
        .call(&mut c, &keys)
        .await
        .unwrap();
    let s = assert_exact(&redis, g, "a cancel").await;
    assert_eq!(s[&b], IS(RunStatus::Cancelled));

    // r's newest, held by w1 and running, is handed back (queued again), then its entry is
    // deleted under it and a claim records it lost.
    let held = read_as(&redis, g, "w1").await;
    let re = held[&replacing].clone();
    Start {
        worker: "w1",
        poison_after: 3,
        runs: &[(replacing.as_str(), 1)],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    assert_eq!(
        assert_exact(&redis, g, "r started").await[&r],
        IS(RunStatus::Running)
    );
    Handback {
        consumer: "w1",
        idle_ms: 10_000_000,
        runs: &[(re.as_str(), replacing.as_str())],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    let s = assert_exact(&redis, g, "a hand-back").await;
    assert_eq!(s[&r], IS(RunStatus::Queued));
    let _: i64 = c.xdel(keys.stream(g), &[&re]).await.unwrap();
    let claimed = Claim {
        consumer: "w3",
        reclaim_after_ms: 1_000,
        max_entries: 100,
        autoclaim: true,
        cursor: None,
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    assert!(claimed.lost >= 1, "{claimed:?}");
    let s = assert_exact(&redis, g, "a lost entry").await;
    assert_eq!(s[&r], IS(RunStatus::Lost));

    // A tick of b fired ahead, then recalled by a schedule change: b's newest is again
    // the cancelled manual run.
    let ahead = now + 600_000;
    let _: () = c.zadd(keys.schedule(g), &b, due).await.unwrap();
    let jobs = vec![FireJob {
        id: &b,
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
    Fire {
        group: g,
        fence: None,
        fire_ahead_ms: 700_000,
        jobs: &jobs,
    }
    .call(&mut c, &keys)
    .await
    .unwrap();
    assert_eq!(
        assert_exact(&redis, g, "firing ahead").await[&b],
        IS(RunStatus::Queued)
    );
    store
        .update_job(
            &b,
            mk(json!({"name": "b", "group": g, "handler": "h", "schedule": "@every 2h"})),
        )
        .await
        .unwrap();
    let s = assert_exact(&redis, g, "a recall").await;
    assert_eq!(s[&b], IS(RunStatus::Cancelled));

    // A manual run is not always the newest: a tick fired ahead (and started) is later.
    let _: () = c.zadd(keys.schedule(g), &late, due).await.unwrap();
    let jobs = vec![FireJob {
        id: &late,
        expected_score: due,
        next_score: None,
        version: 1,
        policy: ConcurrencyPolicy::Allow,
        exhausted: false,
        ticks: vec![ahead],
        skip: None,
        shards: None,
        broadcast: false,
    }];
    Fire {
        group: g,
        fence: None,
        fire_ahead_ms: 700_000,
        jobs: &jobs,
    }
    .call(&mut c, &keys)
    .await
    .unwrap();
    let late_ahead = format!("{late}-{ahead}");
    read_as(&redis, g, "w1").await;
    Start {
        worker: "w1",
        poison_after: 3,
        runs: &[(late_ahead.as_str(), 1)],
    }
    .call(&mut c, &p)
    .await
    .unwrap();
    store
        .trigger(&late, None, TriggerKind::Manual, None)
        .await
        .unwrap();
    let s = assert_exact(&redis, g, "a manual run older than a fired one").await;
    assert_eq!(s[&late], IS(RunStatus::Running));

    // Retention: every finished run goes; a job whose runs all went has none, one with a
    // run still queued has that one as its newest.
    let trim = TrimRuns {
        keep: 100,
        max_age_ms: 0,
        after: None,
        jobs: 100,
    };
    let trimmed = trim.call(&mut c, &p).await.unwrap();
    assert!(trimmed.deleted > 0);
    let s = assert_exact(&redis, g, "trimming").await;
    assert_eq!(
        s[&a],
        IS(RunStatus::Queued),
        "a's bulk runs are still queued"
    );
    assert_eq!(s[&r], LastStatus::Never, "r's runs all went");
    assert_eq!(
        s[&b],
        IS(RunStatus::Queued),
        "b's first tick was never started"
    );

    // Deleting a job takes it out of the index.
    store.delete_job(&d).await.unwrap();
    let s = assert_exact(&redis, g, "deleting a job").await;
    assert!(!s.contains_key(&d));
    let gone: Option<f64> = c.zscore(keys.last_status(g), &d).await.unwrap();
    assert_eq!(gone, None);

    // The backfill rebuilds the same index from the runs alone.
    let before = indexed(&redis, g).await;
    let _: i64 = c.del(keys.last_status(g)).await.unwrap();
    assert_eq!(backfill_last_status(&redis, g).await.unwrap(), Some(4));
    assert_eq!(indexed(&redis, g).await, before);
    delete_all(&redis).await;
}

/// Creates `n` jobs in two groups and gives them runs in every status (some jobs none) the
/// way releases before the index did (job and run indexes and run records only), then
/// drops the index, as if the jobs predated it.
async fn seed_jobs_without_index(redis: &Redis, n: usize) -> Vec<(String, String)> {
    let keys = redis.keys();
    let store = Store::new(redis.clone());
    let mut c = redis.conn().await.unwrap();
    let mut pipe = redis::pipe();
    let mut jobs = Vec::new();
    for j in 0..n {
        let g = if j % 3 == 0 { "beta" } else { "alpha" };
        let id = store
            .create_job(input(json!({"name": format!("job-{j:04}"), "group": g,
                "handler": "h", "enabled": j % 4 != 0})))
            .await
            .unwrap()
            .id;
        for k in 0..(j % 4) {
            let tick = 1_000 * k as i64;
            let run = format!("{id}-{tick}");
            let st = RunStatus::ALL[(j * 7 + k) % RunStatus::ALL.len()];
            pipe.zadd(keys.job_runs(g, &id), &run, tick)
                .ignore()
                .hset(keys.run(g, &run), "status", st.as_str())
                .ignore();
        }
        jobs.push((g.to_owned(), id));
    }
    pipe.del(keys.last_status("alpha"))
        .ignore()
        .del(keys.last_status("beta"))
        .ignore();
    let _: () = pipe.query_async(&mut c).await.unwrap();
    jobs
}

/// Backfills `group`'s index 7 jobs per call on a connection of its own; returns the jobs
/// it indexed.
async fn backfill_in_batches(redis: &Redis, group: &str) -> u64 {
    let prefix = redis.keys().group_prefix(group);
    let mut c = redis.conn().await.unwrap();
    let mut after: Option<String> = None;
    let mut total = 0;
    loop {
        let reply = BackfillLast {
            after: after.as_deref(),
            jobs: 7,
        }
        .call(&mut c, &prefix)
        .await
        .unwrap();
        match reply {
            BackfillReply::Continue { next, added } => {
                total += added;
                after = Some(next);
            }
            BackfillReply::Done { added } => return total + added,
            BackfillReply::AlreadyDone => return total,
        }
    }
}

/// Every job id of the job table under `q`, page by page, with the total of each page.
async fn walk(redis: &Redis, q: &JobQuery, limit: usize) -> (Vec<String>, Vec<u64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = list_job_rows(redis, q, cursor.as_deref(), limit)
            .await
            .unwrap();
        ids.extend(page.items.iter().map(|r| r.job.spec.id.clone()));
        totals.push(page.total);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (ids, totals),
        }
    }
}

#[tokio::test]
async fn the_job_table_answers_last_status_filters_from_the_index_as_the_scan_does() {
    let redis = redis();
    let keys = redis.keys().clone();
    let jobs = seed_jobs_without_index(&redis, 120).await;
    let mut c = redis.conn().await.unwrap();
    let mut queries = Vec::new();
    for status in std::iter::once(LastStatus::Never).chain(RunStatus::ALL.map(LastStatus::Is)) {
        for group in [None, Some("alpha")] {
            for (name, enabled) in [(None, None), (Some("1"), None), (None, Some(true))] {
                queries.push(JobQuery {
                    group: group.map(str::to_owned),
                    name: name.map(str::to_owned),
                    enabled,
                    last_status: Some(status),
                });
            }
        }
    }
    // Before the backfill (no marker): the scan answers.
    let mut scanned = Vec::new();
    for q in &queries {
        scanned.push(walk(&redis, q, 4).await);
    }
    assert!(
        scanned.iter().any(|(ids, _)| ids.len() > 4),
        "pages were walked"
    );
    // alpha by two backfills at once, 7 jobs per call; beta by the scheduler's call.
    let (x, y) = tokio::join!(
        backfill_in_batches(&redis, "alpha"),
        backfill_in_batches(&redis, "alpha")
    );
    assert!(x + y >= 80, "{x} + {y} jobs indexed");
    backfill_last_status(&redis, "beta").await.unwrap();
    for g in ["alpha", "beta"] {
        let marker: bool = c.exists(keys.last_backfilled(g)).await.unwrap();
        assert!(marker, "{g} is marked backfilled");
    }
    let n: u64 = c.zcard(keys.last_status("alpha")).await.unwrap();
    assert_eq!(
        n,
        jobs.iter().filter(|(g, _)| g == "alpha").count() as u64,
        "every job of the group is indexed"
    );
    // The index answers the same ids, in the same pages, with the same totals.
    for (q, want) in queries.iter().zip(&scanned) {
        let got = walk(&redis, q, 4).await;
        assert_eq!(&got, want, "{q:?}");
    }
    // A page after a cursor whose job has since left the status starts at the next job
    // of the status (found by a binary search over the status's ranks).
    let failed = LastStatus::Is(RunStatus::Failed);
    let q = JobQuery {
        group: Some("alpha".to_owned()),
        last_status: Some(failed),
        ..JobQuery::default()
    };
    let first = list_job_rows(&redis, &q, None, 2).await.unwrap();
    let cursor = first.next_cursor.expect("more than one page");
    let _: () = c
        .zadd(keys.last_status("alpha"), &cursor, LastStatus::Never.code())
        .await
        .unwrap();
    let members: Vec<String> = c
        .zrangebyscore(keys.last_status("alpha"), failed.code(), failed.code())
        .await
        .unwrap();
    let want: Vec<String> = members
        .into_iter()
        .filter(|id| *id > cursor)
        .take(2)
        .collect();
    assert!(!want.is_empty());
    let next = list_job_rows(&redis, &q, Some(&cursor), 2).await.unwrap();
    let got: Vec<String> = next.items.iter().map(|r| r.job.spec.id.clone()).collect();
    assert_eq!(got, want);
    assert_eq!(next.total, first.total - 1);

    // A second backfill reads the marker and writes nothing.
    assert_eq!(backfill_last_status(&redis, "alpha").await.unwrap(), None);
    delete_all(&redis).await;
}
