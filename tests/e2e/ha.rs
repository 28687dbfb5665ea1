//! Time and HA: fenced per-group leases, misfire and overlap policies, daylight saving and
//! clock skew, and 100 000 jobs due at once. Runs are counted per tick.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, Proc, RedisServer, delete_prefix, ms, now_ms, pid_of, raw_conn, redis_handle,
    shared_redis, spawn_scheduler, unique_prefix, wait_for,
};
use serde_json::{Value, json};

use crate::common::{TestWorker, assert_every_tick_once, settled_runs};

/// Stream entries of a group per (job, tick).
async fn entries_per_tick(url: &str, prefix: &str, group: &str) -> HashMap<(String, i64), usize> {
    let mut c = raw_conn(url).await;
    let mut out = HashMap::new();
    let mut start = "-".to_owned();
    loop {
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(Keys::new(prefix).stream(group))
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            return out;
        };
        for (_, f) in rows {
            let run = &f["run"];
            let job = dotjob_shared::model::run::job_of_run(run)
                .unwrap()
                .to_owned();
            let at = dotjob_shared::model::run::RunIdShape::of(run).tick.unwrap();
            *out.entry((job, at)).or_insert(0) += 1;
        }
        start = format!("({last}");
    }
}

async fn lease_owner(url: &str, group: &str) -> (String, u64) {
    let mut c = raw_conn(url).await;
    let (owner, epoch): (Option<String>, Option<u64>) = redis::cmd("HMGET")
        .arg(Keys::new("dotjob").lease(group))
        .arg("owner")
        .arg("epoch")
        .query_async(&mut c)
        .await
        .unwrap();
    (owner.unwrap_or_default(), epoch.unwrap_or(0))
}

async fn create_every_second(api: &Api, group: &str, n: usize) -> Vec<String> {
    let mut ids = vec![];
    for i in 0..n {
        let j = api
            .create_job(
                &json!({"name": format!("{group}-{i}"), "group": group, "handler": "noop",
                "schedule": "*/1 * * * * *"}),
            )
            .await;
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn pause_all(api: &Api, jobs: &[String]) {
    for j in jobs {
        let a = api
            .call("POST", &format!("/jobs/{j}/pause"), None)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
}

#[tokio::test]
async fn killing_the_lease_holder_every_5s_loses_no_tick_and_fires_none_twice() {
    let redis = RedisServer::start();
    let url = redis.url();
    // Firing ahead would hide the failovers this test is about.
    let env = [
        ("DOTJOB_SCHEDULER_LEASE_MS", "3000"),
        ("DOTJOB_FIRE_AHEAD_MS", "0"),
    ];
    let mut scheds: Vec<(Proc, String)> = (0..3)
        .map(|_| spawn_scheduler(&url, "dotjob", &env))
        .collect();
    let api = Api::new(&scheds[0].1);
    for (_, base) in &scheds {
        Api::new(base).wait_ready().await;
    }
    let jobs = create_every_second(&api, "ha", 50).await;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (owner, _) = lease_owner(&url, "ha").await;
        if let Some(i) = scheds
            .iter()
            .position(|(p, _)| Some(p.pid()) == pid_of(&owner))
        {
            scheds[i].0.kill9();
            scheds[i] = spawn_scheduler(&url, "dotjob", &env);
            kills += 1;
        }
    }
    assert!(kills >= 10, "only {kills} lease holders killed");
    // Let the late ticks of the last failover fire, then stop.
    let live = scheds.last().map(|(_, b)| b.clone()).unwrap();
    let api = Api::new(&live);
    api.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    pause_all(&api, &jobs).await;
    let entries = entries_per_tick(&url, "dotjob", "ha").await;
    assert!(
        entries.values().all(|n| *n == 1),
        "a tick was enqueued twice"
    );
    let mut late = 0;
    for j in &jobs {
        let runs = api.runs(j).await;
        let ticks = assert_every_tick_once(j, &runs);
        assert!(ticks.len() >= 60, "job {j}: {} ticks", ticks.len());
        late += runs
            .iter()
            .filter(|r| ms(&r["enqueued_at"]) - ms(&r["scheduled_at"]) > 1_000)
            .count();
    }
    assert!(
        late > 0,
        "no tick was fired late: the failovers did not bite"
    );
    eprintln!(
        "failover: {kills} kills, {} ticks, {late} fired late, 0 twice, 0 missing",
        entries.len()
    );
}

#[tokio::test]
async fn a_stalled_lease_holder_fires_nothing_when_it_resumes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = [("DOTJOB_SCHEDULER_LEASE_MS", "2000")];
    let scheds: Vec<(Proc, String)> = (0..3)
        .map(|_| spawn_scheduler(&url, "dotjob", &env))
        .collect();
    for (_, base) in &scheds {
        Api::new(base).wait_ready().await;
    }
    let jobs = create_every_second(&Api::new(&scheds[0].1), "st", 10).await;
    let (owner, epoch) = wait_for("a lease holder", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            let (o, e) = lease_owner(&url, "st").await;
            (!o.is_empty()).then_some((o, e))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let i = scheds
        .iter()
        .position(|(p, _)| Some(p.pid()) == pid_of(&owner))
        .expect("holder is ours");
    let other = Api::new(&scheds[(i + 1) % 3].1);
    scheds[i].0.stop();
    let stopped_at = now_ms();
    // Another replica takes over once the lease expires.
    let (new_owner, new_epoch) = wait_for("another holder", Duration::from_secs(20), || {
        let url = url.clone();
        let owner = owner.clone();
        async move {
            let (o, e) = lease_owner(&url, "st").await;
            (!o.is_empty() && o != owner).then_some((o, e))
        }
    })
    .await;
    assert!(new_epoch > epoch);
    tokio::time::sleep(Duration::from_secs(2)).await;
    scheds[i].0.cont();
    let resumed_at = now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    pause_all(&other, &jobs).await;
    let stale_token = format!("{owner}|{epoch}");
    let mut by_new = 0;
    for j in &jobs {
        let runs = other.runs(j).await;
        assert_every_tick_once(j, &runs);
        for r in &runs {
            if r["fired_by"] == json!(stale_token) {
                assert!(
                    ms(&r["enqueued_at"]) <= stopped_at + 200,
                    "the stalled holder fired after it was stopped ({} > {stopped_at}, resumed {resumed_at}): {r}",
                    ms(&r["enqueued_at"])
                );
            }
            if r["fired_by"]
                .as_str()
                .is_some_and(|f| f.starts_with(&new_owner))
            {
                by_new += 1;
            }
        }
    }
    assert!(by_new > 0, "the new holder fired nothing");
    let entries = entries_per_tick(&url, "dotjob", "st").await;
    assert!(
        entries.values().all(|n| *n == 1),
        "a tick was enqueued twice"
    );
}

async fn lease(c: &mut dotjob_shared::conn::Conn, prefix: &str, who: &str) -> (u64, String, i64) {
    let l = dotjob_shared::scripts::Lease {
        replica: who,
        ttl_ms: 300,
        action: dotjob_shared::scripts::LeaseAction::Acquire { chosen: true },
    }
    .call(c, prefix)
    .await
    .unwrap();
    (l.epoch.unwrap_or(0), l.holder, l.expires_ms)
}

async fn fire(
    c: &mut dotjob_shared::conn::Conn,
    keys: &dotjob_shared::Keys,
    fence: (&str, u64),
    job: &dotjob_shared::model::job::JobSpec,
    tick: i64,
) -> dotjob_shared::scripts::FireReply {
    let fence = dotjob_shared::scripts::Fence {
        holder: fence.0.to_owned(),
        epoch: fence.1,
    };
    let jobs = [dotjob_shared::scripts::FireJob {
        id: &job.id,
        expected_score: tick,
        next_score: Some(tick + 1_000),
        version: job.version,
        policy: dotjob_shared::model::job::ConcurrencyPolicy::Allow,
        exhausted: false,
        ticks: vec![tick],
        skip: None,
        shards: None,
        broadcast: false,
    }];
    dotjob_shared::scripts::Fire {
        group: "fc",
        fence: Some(&fence),
        fire_ahead_ms: 0,
        jobs: &jobs,
    }
    .call(c, keys)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fire_with_a_stale_fencing_token_is_refused_and_writes_nothing() {
    let url = shared_redis();
    let prefix = unique_prefix("fence");
    let redis = redis_handle(&url, &prefix);
    let store = dotjob_shared::Store::new(redis.clone());
    let job = store
        .create_job(dotjob_shared::model::job::JobInput {
            name: Some("f".into()),
            group: Some("fc".into()),
            handler: Some("noop".into()),
            schedule: dotjob_shared::model::job::Nullable::Value("*/1 * * * * *".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let group_prefix = redis.keys().group_prefix("fc");
    let mut c = redis.conn().await.unwrap();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(redis.keys().schedule("fc"))
        .arg(&job.id)
        .query_async(&mut c)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(
        (score as i64 - now_ms()).max(0) as u64 + 50,
    ))
    .await;
    // A holds the lease; B cannot take it while it lives, then takes it once it expired.
    let (epoch_a, _, _) = lease(&mut c, &group_prefix, "a").await;
    assert!(epoch_a > 0);
    let (none, holder, _) = lease(&mut c, &group_prefix, "b").await;
    assert_eq!((none, holder.as_str()), (0, "a"), "b took a live lease");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (epoch_b, _, _) = lease(&mut c, &group_prefix, "b").await;
    assert_eq!(epoch_b, epoch_a + 1);
    // A wakes up and fires with its old token: refused, nothing written.
    let tick = score as i64;
    let reply = fire(&mut c, redis.keys(), ("a", epoch_a), &job, tick).await;
    assert_eq!(reply, dotjob_shared::scripts::FireReply::Fenced);
    let len: u64 = redis::cmd("XLEN")
        .arg(redis.keys().stream("fc"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(len, 0, "a fenced fire wrote to the stream");
    let reply = fire(&mut c, redis.keys(), ("b", epoch_b), &job, tick).await;
    assert_eq!(
        reply,
        dotjob_shared::scripts::FireReply::Fired { fired: 1, stale: 0 }
    );
    drop(c);
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn misfire_policies_after_every_scheduler_was_down_for_10s() {
    let redis = RedisServer::start();
    let url = redis.url();
    // Ticks fired ahead before the outage would shorten the gap this test measures.
    let ahead = [("DOTJOB_FIRE_AHEAD_MS", "0")];
    let (mut s, base) = spawn_scheduler(&url, "dotjob", &ahead);
    let api = Api::new(&base);
    api.wait_ready().await;
    let mut jobs: BTreeMap<&str, String> = BTreeMap::new();
    for (name, policy, threshold) in [
        ("fire_once", "fire_once", 5_000),
        ("skip", "skip", 5_000),
        ("catch_up", "catch_up", 5_000),
        ("default", "fire_once", 30_000),
    ] {
        let j = api
            .create_job(
                &json!({"name": name, "group": "mf", "handler": "noop", "schedule": "*/1 * * * * *",
                "misfire_policy": policy, "misfire_threshold_ms": threshold}),
            )
            .await;
        jobs.insert(name, j["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.kill9();
    let down_from = now_ms();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_s2, base) = spawn_scheduler(&url, "dotjob", &ahead);
    let up_at = now_ms();
    let api = Api::new(&base);
    api.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    pause_all(&api, &jobs.values().cloned().collect::<Vec<_>>()).await;

    // The gap: ticks after the kill up to the first fire of the restarted scheduler.
    let gap = |runs: &[Value]| -> (Vec<Value>, i64) {
        let first_fire = runs
            .iter()
            .filter_map(|r| r["enqueued_at"].as_str().map(|_| ms(&r["enqueued_at"])))
            .chain(
                runs.iter()
                    .filter(|r| r["status"] == "skipped")
                    .map(|r| ms(&r["finished_at"])),
            )
            .filter(|t| *t >= up_at)
            .min()
            .expect("nothing fired after the restart");
        let in_gap = runs
            .iter()
            .filter(|r| {
                let t = ms(&r["scheduled_at"]);
                t > down_from + 500 && t <= first_fire
            })
            .cloned()
            .collect();
        (in_gap, (first_fire - down_from - 500) / 1_000)
    };
    let runs = |name: &str| {
        let api = api.clone();
        let id = jobs[name].clone();
        async move { api.runs(&id).await }
    };
    // Default threshold (30 s): every tick of the gap fires, late.
    let d = runs("default").await;
    assert_every_tick_once("default", &d);
    let (in_gap, ticks) = gap(&d);
    assert!(ticks >= 9, "the gap was only {ticks} ticks");
    assert!(
        in_gap.len() as i64 >= ticks,
        "default: {} of {ticks}",
        in_gap.len()
    );
    // catch_up: every missed tick too.
    let c = runs("catch_up").await;
    assert_every_tick_once("catch_up", &c);
    let (in_gap, ticks) = gap(&c);
    assert!(
        in_gap.len() as i64 >= ticks,
        "catch_up: {} of {ticks}",
        in_gap.len()
    );
    // fire_once: one run for the whole gap.
    let f = runs("fire_once").await;
    let (in_gap, _) = gap(&f);
    assert_eq!(
        in_gap.len(),
        1,
        "fire_once ran {:?}",
        in_gap
            .iter()
            .map(|r| r["scheduled_at"].clone())
            .collect::<Vec<_>>()
    );
    assert_ne!(in_gap[0]["status"], "skipped");
    // skip: no run for the gap; the skip is recorded once.
    let sk = runs("skip").await;
    let (in_gap, _) = gap(&sk);
    assert_eq!(in_gap.len(), 1, "skip: {in_gap:?}");
    assert_eq!(
        in_gap[0]["status"], "skipped",
        "skip ran a missed tick: {in_gap:?}"
    );
    for (name, rs) in [("fire_once", &f), ("skip", &sk)] {
        let mut per: HashMap<i64, usize> = HashMap::new();
        for r in rs.iter() {
            *per.entry(ms(&r["scheduled_at"])).or_default() += 1;
        }
        assert!(per.values().all(|n| *n == 1), "{name}: a tick twice");
    }
    let gap_ticks = ticks;
    eprintln!("misfire: gap of {gap_ticks} ticks");
}

#[tokio::test]
async fn forbid_never_overlaps_and_records_skips_and_replace_cancels_the_old_run() {
    let url = shared_redis();
    let prefix = unique_prefix("overlap");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "ov");
    let api = Api::new(&sched.base);
    let forbid = api
        .create_job(
            &json!({"name": "forbid", "group": "ov", "handler": "sleep", "params": {"ms": 3000},
            "schedule": "*/1 * * * * *", "concurrency": "forbid"}),
        )
        .await;
    let replace = api
        .create_job(
            &json!({"name": "replace", "group": "ov", "handler": "sleep", "params": {"ms": 3000},
            "schedule": "*/2 * * * * *", "concurrency": "replace"}),
        )
        .await;
    let ids = vec![
        forbid["id"].as_str().unwrap().to_owned(),
        replace["id"].as_str().unwrap().to_owned(),
    ];
    tokio::time::sleep(Duration::from_secs(10)).await;
    pause_all(&api, &ids).await;
    let fr = settled_runs(&api, &ids[0], Duration::from_secs(15)).await;
    let mut ran: Vec<(i64, i64)> = fr
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| (ms(&r["started_at"]), ms(&r["finished_at"])))
        .collect();
    ran.sort_unstable();
    assert!(ran.len() >= 2, "forbid: {} runs", ran.len());
    for w in ran.windows(2) {
        assert!(w[1].0 >= w[0].1, "forbid runs overlapped: {w:?}");
    }
    let skipped: Vec<&Value> = fr.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(
        skipped.len() >= 4,
        "forbid: {} skipped ticks",
        skipped.len()
    );
    assert!(skipped[0]["error"].as_str().unwrap().contains("forbid"));
    // A manual trigger while one is in flight is refused too.
    api.call("POST", &format!("/jobs/{}/resume", ids[0]), None)
        .await
        .unwrap();
    let running = wait_for("a forbid run in flight", Duration::from_secs(10), || {
        let api = api.clone();
        let id = ids[0].clone();
        async move {
            api.runs(&id)
                .await
                .into_iter()
                .find(|r| r["status"] == "running")
        }
    })
    .await;
    let t = api
        .call("POST", &format!("/jobs/{}/trigger", ids[0]), None)
        .await
        .unwrap();
    assert_eq!(t.status, 409, "{:?}", t.body);
    assert!(
        t.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(running["id"].as_str().unwrap())
    );
    api.call("POST", &format!("/jobs/{}/pause", ids[0]), None)
        .await
        .unwrap();

    let rr = settled_runs(&api, &ids[1], Duration::from_secs(15)).await;
    let cancelled: Vec<&Value> = rr.iter().filter(|r| r["status"] == "cancelled").collect();
    assert!(
        cancelled.len() >= 3,
        "replace: {} cancelled of {:?}",
        cancelled.len(),
        rr.iter().map(|r| r["status"].clone()).collect::<Vec<_>>()
    );
    for c in &cancelled {
        assert!(c["error"].as_str().unwrap().contains("replaced by"), "{c}");
    }
    assert_eq!(
        rr[0]["status"], "succeeded",
        "the newest run should have run to the end: {}",
        rr[0]
    );
    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

fn offset_to(instant: &str) -> String {
    let target = chrono::DateTime::parse_from_rfc3339(instant)
        .unwrap()
        .timestamp_millis();
    (target - now_ms()).to_string()
}

#[tokio::test]
async fn daylight_saving_days_fire_the_documented_instants_once() {
    // Spring forward in Berlin: 02:30 does not exist on 2026-03-29; it fires at 03:00 CEST.
    // (Build first: the fake clock starts ticking when the offset is computed.)
    dotjob_tests::bin("dotjob-scheduler");
    let redis = RedisServer::start();
    let url = redis.url();
    let off = offset_to("2026-03-29T00:59:45Z");
    let (mut s, base) = spawn_scheduler(&url, "dotjob", &[("DOTJOB_TEST_CLOCK_OFFSET_MS", &off)]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let j = api
        .create_job(&json!({"name": "spring", "group": "dst", "handler": "noop",
            "schedule": "30 2 * * *", "timezone": "Europe/Berlin"}))
        .await;
    assert_eq!(j["next_fire_at"], "2026-03-29T01:00:00.000Z", "{j}");
    let id = j["id"].as_str().unwrap().to_owned();
    let runs = wait_for("the spring-forward fire", Duration::from_secs(30), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let r = api.runs(&id).await;
            (!r.is_empty()).then_some(r)
        }
    })
    .await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["scheduled_at"], "2026-03-29T01:00:00.000Z");
    let after = api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(after["next_fire_at"], "2026-03-30T00:30:00.000Z", "{after}");
    s.kill9();

    // Fall back: 02:30 happens twice on 2026-10-25; it fires at the first (CEST) only.
    let off = offset_to("2026-10-25T00:29:45Z");
    let (mut s, base) = spawn_scheduler(&url, "dotjob", &[("DOTJOB_TEST_CLOCK_OFFSET_MS", &off)]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let j = api
        .create_job(&json!({"name": "fall", "group": "dst2", "handler": "noop",
            "schedule": "30 2 * * *", "timezone": "Europe/Berlin"}))
        .await;
    assert_eq!(j["next_fire_at"], "2026-10-25T00:30:00.000Z", "{j}");
    let id = j["id"].as_str().unwrap().to_owned();
    wait_for("the first 02:30", Duration::from_secs(30), || {
        let api = api.clone();
        let id = id.clone();
        async move { (!api.runs(&id).await.is_empty()).then_some(()) }
    })
    .await;
    let after = api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(after["next_fire_at"], "2026-10-26T01:30:00.000Z", "{after}");
    s.kill9();
    // An hour later by the clock, in the repeated hour: 02:30 CET passes without a run.
    let off = offset_to("2026-10-25T01:29:45Z");
    let (_s, base) = spawn_scheduler(&url, "dotjob", &[("DOTJOB_TEST_CLOCK_OFFSET_MS", &off)]);
    let api = Api::new(&base);
    api.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    let runs = api.runs(&id).await;
    assert_eq!(runs.len(), 1, "fired again in the repeated hour: {runs:?}");
    assert_eq!(runs[0]["scheduled_at"], "2026-10-25T00:30:00.000Z");
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test]
async fn a_scheduler_with_a_skewed_host_clock_fires_on_the_redis_clock() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "this test skews the scheduler's host clock with libfaketime: install it \
         (Debian: apt-get install faketime; .ci/run does)"
    );
    let redis = RedisServer::start();
    let url = redis.url();
    for (i, skew) in ["+10m", "-10m"].iter().enumerate() {
        // The skewed process both schedules and (embedded worker) executes the job.
        let group = format!("skew{i}");
        let (mut s, base) = spawn_scheduler(
            &url,
            "dotjob",
            &[
                ("LD_PRELOAD", LIBFAKETIME),
                ("FAKETIME", skew),
                ("DONT_FAKE_MONOTONIC", "1"),
                ("DOTJOB_EMBEDDED_WORKER", &group),
                ("DOTJOB_SHELL_ALLOW", "true"),
            ],
        );
        let api = Api::new(&base);
        api.wait_ready().await;
        // The process really runs 10 minutes off: its log timestamps say so.
        let log = s.log();
        let stamp = log
            .split_whitespace()
            .find_map(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
            .unwrap_or_else(|| panic!("no timestamp in the scheduler's log: {log}"));
        let drift = stamp.timestamp_millis() - now_ms();
        assert!(
            drift.abs() > 9 * 60_000,
            "the scheduler's clock is not skewed ({drift} ms)"
        );
        let j = api
            .create_job(&json!({"name": group, "group": group, "handler": "shell",
                "schedule": "*/1 * * * * *", "params": {"command": ["true"]}}))
            .await;
        let next = ms(&j["next_fire_at"]);
        assert!(
            (next - now_ms()).abs() < 2_000,
            "next fire not on the Redis clock: {j}"
        );
        let id = j["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_secs(6)).await;
        api.call("POST", &format!("/jobs/{id}/pause"), None)
            .await
            .unwrap();
        let runs = wait_for("the runs to finish", Duration::from_secs(20), || {
            let api = api.clone();
            let id = id.clone();
            async move {
                let r = api.runs(&id).await;
                r.iter().all(|r| r["status"] == "succeeded").then_some(r)
            }
        })
        .await;
        assert!(runs.len() >= 4, "{skew}: {} runs in 6 s", runs.len());
        assert_every_tick_once(&id, &runs);
        for r in &runs {
            // Enqueued at most the fire-ahead window (2.5 s) early, started at its tick.
            let early = ms(&r["scheduled_at"]) - ms(&r["enqueued_at"]);
            assert!(
                early <= 2_500,
                "{skew}: enqueued {early} ms before its tick: {r}"
            );
            let late = ms(&r["started_at"]) - ms(&r["scheduled_at"]);
            assert!(
                (0..500).contains(&late),
                "{skew}: started {late} ms off its tick: {r}"
            );
        }
        s.kill9();
    }
}

#[tokio::test]
async fn a_hundred_thousand_jobs_due_at_the_same_instant_are_all_enqueued_once() {
    let url = shared_redis();
    let prefix = unique_prefix("burst");
    let redis = redis_handle(&url, &prefix);
    let store = dotjob_shared::Store::new(redis.clone());
    const N: usize = 100_000;
    use futures::StreamExt;
    // Creates `n` @once jobs at `at` in `group`, 64 at a time.
    let create = |group: &'static str, n: usize, at: i64| {
        let store = store.clone();
        let at = chrono::DateTime::from_timestamp_millis(at)
            .unwrap()
            .to_rfc3339();
        async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let store = store.clone();
                    let at = at.clone();
                    async move {
                        store
                            .create_job(dotjob_shared::model::job::JobInput {
                                name: Some(format!("{group}-{i}")),
                                group: Some(group.into()),
                                handler: Some("noop".into()),
                                schedule: dotjob_shared::model::job::Nullable::Value(format!(
                                    "@once {at}"
                                )),
                                ..Default::default()
                            })
                            .await
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await
        }
    };
    // The instant must still be ahead when the last job is created: time 1 000 creations
    // (in another group, due in an hour) and give the 100 000 three times as long as that
    // rate predicts, at least 60 s (a loaded machine creates them several times slower).
    let warmup = Instant::now();
    let probe = create("warmup", 1_000, now_ms() + 3_600_000).await;
    assert!(probe.iter().all(Result::is_ok), "creating jobs failed");
    let lead = (warmup.elapsed() * (N / 1_000) as u32 * 3).max(Duration::from_secs(60));
    let due = now_ms() + lead.as_millis() as i64;
    let created = Instant::now();
    let results = create("burst", N, due).await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!("creating a job failed: {e}");
    }
    let took = created.elapsed();
    assert!(
        now_ms() < due,
        "creating {N} jobs took {took:?}, longer than the {lead:?} the first 1 000 predicted"
    );
    // The scheduler starts only now: nothing was due before.
    let sched = InProcess::start(&url, &prefix).await;
    let mut c = raw_conn(&url).await;
    let stream = redis.keys().stream("burst");
    let until_due = Duration::from_millis((due - now_ms()).max(0) as u64);
    wait_for(
        "every job to fire",
        until_due + Duration::from_secs(120),
        || {
            let mut c = c.clone();
            let stream = stream.clone();
            async move {
                let n: usize = redis::cmd("XLEN")
                    .arg(&stream)
                    .query_async(&mut c)
                    .await
                    .ok()?;
                (n >= N).then_some(())
            }
        },
    )
    .await;
    let enqueued_in = now_ms() - due.max(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_tick = entries_per_tick(&url, &prefix, "burst").await;
    assert_eq!(per_tick.len(), N, "distinct (job, tick) entries");
    assert!(per_tick.values().all(|n| *n == 1), "a job fired twice");
    assert!(
        per_tick.keys().all(|(_, t)| *t == due),
        "a job fired at another tick"
    );
    let left: usize = redis::cmd("ZCARD")
        .arg(redis.keys().schedule("burst"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, 0, "schedule entries left after @once fired");
    eprintln!(
        "burst: {N} jobs created in {took:?}; all enqueued {enqueued_in} ms after their instant (debug build)"
    );
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
