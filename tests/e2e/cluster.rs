//! Redis Cluster: the spine and the scheduler failover on a real 3-master, 3-replica
//! cluster with groups on several masters; a master killed mid-run (durable setting on);
//! listing 10 000 jobs over 20 groups without `KEYS`. Each test starts its own cluster.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_tests::{
    Api, InProcess, Proc, RedisCluster, ms, now_ms, pid_of, redis_handle, spawn_scheduler, wait_for,
};
use serde_json::{Value, json};

use crate::common::{TestWorker, assert_every_tick_once};

/// `n` group names and the master port serving each one's slot; asserts they span at least
/// two masters.
fn groups_on_masters(cluster: &RedisCluster, n: usize) -> Vec<(String, u16, u16)> {
    let keys = Keys::new("dotjob");
    let groups: Vec<(String, u16, u16)> = (0..n)
        .map(|i| {
            let g = format!("g{i}");
            let slot = cluster.keyslot(&keys.group_prefix(&g));
            let master = cluster.master_of(slot).expect("a master for the slot");
            (g, slot, master)
        })
        .collect();
    let masters: BTreeSet<u16> = groups.iter().map(|(_, _, m)| *m).collect();
    assert!(
        masters.len() >= 2,
        "groups {groups:?} all on one master of {:?}",
        cluster.masters()
    );
    groups
}

/// Stream entries of a group per (job, tick), read through the cluster.
async fn entries_per_tick(
    c: &mut redis::cluster_async::ClusterConnection,
    group: &str,
) -> HashMap<(String, i64), usize> {
    let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(Keys::new("dotjob").stream(group))
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .expect("xrange");
    let mut out = HashMap::new();
    for (_, f) in rows {
        let run = &f["run"];
        let job = dotjob_shared::model::run::job_of_run(run)
            .expect("job of run")
            .to_owned();
        let at = dotjob_shared::model::run::RunIdShape::of(run)
            .tick
            .expect("tick");
        *out.entry((job, at)).or_insert(0) += 1;
    }
    out
}

/// Creates one every-second job per group with `handler` (and `params`); returns the ids.
async fn every_second(api: &Api, groups: &[String], handler: &str, params: Value) -> Vec<String> {
    let mut ids = Vec::new();
    for g in groups {
        let j = api
            .create_job(
                &json!({"name": format!("tick-{g}"), "group": g, "handler": handler,
                "params": params, "schedule": "*/1 * * * * *"}),
            )
            .await;
        ids.push(j["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// Every run of a job, or `None` while the API answers anything but 200 (e.g. 503 while a
/// master fails over).
async fn runs_if_up(api: &Api, job: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/jobs/{job}/runs?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let a = api.call("GET", &path, None).await.ok()?;
        if a.status != 200 {
            return None;
        }
        out.extend(a.body["items"].as_array().cloned().unwrap_or_default());
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(out),
        }
    }
}

/// Waits until every job has `n` succeeded runs scheduled after `after` (ms).
async fn succeeded_after(api: &Api, jobs: &[String], after: i64, n: usize, timeout: Duration) {
    for j in jobs {
        wait_for(&format!("{n} succeeded runs of job {j}"), timeout, || {
            let api = api.clone();
            let j = j.clone();
            async move {
                let runs = runs_if_up(&api, &j).await?;
                (runs
                    .iter()
                    .filter(|r| r["status"] == "succeeded" && ms(&r["scheduled_at"]) > after)
                    .count()
                    >= n)
                    .then_some(())
            }
        })
        .await;
    }
}

/// Pauses every job (retrying while the API answers 503 during a failover).
async fn pause_all(api: &Api, jobs: &[String]) {
    for j in jobs {
        wait_for(&format!("job {j} paused"), Duration::from_secs(30), || {
            let api = api.clone();
            let j = j.clone();
            async move {
                let a = api
                    .call("POST", &format!("/jobs/{j}/pause"), None)
                    .await
                    .ok()?;
                assert!(a.status == 200 || a.status == 503, "{:?}", a.body);
                (a.status == 200).then_some(())
            }
        })
        .await;
    }
}

/// Every run of a job once the API answers (it may answer 503 during a failover).
async fn runs_when_up(api: &Api, job: &str) -> Vec<Value> {
    wait_for(
        &format!("runs of job {job}"),
        Duration::from_secs(30),
        || runs_if_up(api, job),
    )
    .await
}

/// Pauses the jobs, lets their runs settle, and asserts every job's runs cover each second
/// once with no gap, and that each tick has exactly one stream entry.
async fn assert_each_tick_once(
    cluster: &RedisCluster,
    api: &Api,
    groups: &[String],
    jobs: &[String],
) -> usize {
    pause_all(api, jobs).await;
    let mut ticks = 0;
    for j in jobs {
        let runs = wait_for(
            &format!("runs of {j} to settle"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let j = j.clone();
                async move {
                    let runs = runs_if_up(&api, &j).await?;
                    runs.iter()
                        .all(|r| r["status"] != "running" && r["status"] != "queued")
                        .then_some(runs)
                }
            },
        )
        .await;
        for r in &runs {
            assert_eq!(r["status"], "succeeded", "job {j}: {r}");
        }
        ticks += assert_every_tick_once(j, &runs).len();
    }
    let mut c = cluster.conn().await;
    for g in groups {
        let entries = entries_per_tick(&mut c, g).await;
        assert!(
            entries.values().all(|n| *n == 1),
            "group {g}: a tick was enqueued twice"
        );
    }
    ticks
}

#[tokio::test]
async fn the_spine_and_a_scheduler_failover_work_on_a_three_master_cluster() {
    let cluster = RedisCluster::start(3, 1);
    let url = cluster.url();
    let placed = groups_on_masters(&cluster, 8);
    let groups: Vec<String> = placed.iter().map(|(g, _, _)| g.clone()).collect();
    let env = [
        ("DOTJOB_SCHEDULER_LEASE_MS", "3000"),
        ("DOTJOB_FIRE_AHEAD_MS", "0"),
    ];
    let mut scheds: Vec<(Proc, String)> = (0..2)
        .map(|_| spawn_scheduler(&url, "dotjob", &env))
        .collect();
    for (_, base) in &scheds {
        Api::new(base).wait_ready().await;
    }
    let workers: Vec<TestWorker> = groups
        .iter()
        .map(|g| TestWorker::start(&url, "dotjob", g))
        .collect();
    let api = Api::new(&scheds[0].1);
    let jobs = every_second(&api, &groups, "noop", json!({})).await;
    succeeded_after(&api, &jobs, 0, 3, Duration::from_secs(30)).await;
    // The spine's checks on one run of each group.
    for j in &jobs {
        let runs = api.runs(j).await;
        let r = runs
            .iter()
            .find(|r| r["status"] == "succeeded")
            .expect("a succeeded run");
        assert_eq!(r["attempt"], 1);
        assert_eq!(r["result"], json!({"ok": true}));
        assert!(ms(&r["started_at"]) >= ms(&r["scheduled_at"]));
    }

    // kill -9 the replica holding the first group's lease; the other takes over.
    let mut c = cluster.conn().await;
    let owner: String = redis::cmd("HGET")
        .arg(Keys::new("dotjob").lease(&groups[0]))
        .arg("owner")
        .query_async(&mut c)
        .await
        .expect("lease owner");
    let victim = scheds
        .iter()
        .position(|(p, _)| Some(p.pid()) == pid_of(&owner))
        .expect("the lease holder is one of ours");
    let killed_at = now_ms();
    scheds[victim].0.kill9();
    let live = Api::new(&scheds[1 - victim].1);
    succeeded_after(&live, &jobs, killed_at + 4_000, 3, Duration::from_secs(40)).await;
    let ticks = assert_each_tick_once(&cluster, &live, &groups, &jobs).await;
    let masters: BTreeSet<u16> = placed.iter().map(|(_, _, m)| *m).collect();
    eprintln!(
        "cluster spine: {} groups on {} masters, {ticks} ticks once each across a scheduler kill",
        groups.len(),
        masters.len()
    );
    for w in workers {
        w.stop().await;
    }
}

/// Succeeded runs of `job` a worker's `/metrics` counted (acknowledged completions).
async fn counted_succeeded(metrics_base: &str, job: &str) -> u64 {
    let text = crate::common::scrape(metrics_base).await;
    text.lines()
        .filter(|l| {
            l.starts_with("dotjob_runs_total{")
                && l.contains("status=\"succeeded\"")
                && l.contains(&format!("job=\"{job}\""))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn killing_a_master_mid_run_resumes_by_itself_and_loses_no_acknowledged_run() {
    let mut cluster = RedisCluster::start(3, 1);
    let url = cluster.url();
    let placed = groups_on_masters(&cluster, 6);
    let groups: Vec<String> = placed.iter().map(|(g, _, _)| g.clone()).collect();
    let (_, slot, victim) = placed[0].clone();
    let replica = cluster.replica_of(victim).expect("the victim's replica");
    let durable = [
        ("DOTJOB_WAIT_REPLICAS", "1"),
        ("DOTJOB_WAIT_TIMEOUT_MS", "4000"),
        ("DOTJOB_FIRE_AHEAD_MS", "0"),
    ];
    let (_sched, base) = spawn_scheduler(&url, "dotjob", &durable);
    let api = Api::new(&base);
    api.wait_ready().await;
    let mut workers = Vec::new();
    let mut metrics_of: HashMap<String, String> = HashMap::new();
    for g in &groups {
        let listen = format!("127.0.0.1:{}", dotjob_tests::free_port());
        let mut env: Vec<(&str, &str)> = vec![
            ("REDIS_CLUSTER_URLS", &url),
            ("DOTJOB_PREFIX", "dotjob"),
            ("DOTJOB_SHELL_ALLOW", "true"),
            ("DOTJOB_METRICS_LISTEN", &listen),
        ];
        env.extend_from_slice(&durable);
        workers.push(Proc::spawn("dotjob-worker", &["--group", g], &env));
        metrics_of.insert(g.clone(), format!("http://{listen}"));
    }
    let jobs = every_second(&api, &groups, "shell", json!({"command": ["true"]})).await;
    succeeded_after(&api, &jobs, 0, 3, Duration::from_secs(40)).await;

    // The victim's replica freezes and its link is cut: nothing the master writes now
    // reaches it. Work goes on for 2 s, then the master dies and the replica wakes up to
    // take over.
    cluster.signal(replica, nix::sys::signal::Signal::SIGSTOP);
    // Its replication link is cut too (what was sent before may still sit in its socket
    // buffer; what the master writes from now on stays on the master).
    let mut m = dotjob_tests::raw_conn(&format!("redis://127.0.0.1:{victim}")).await;
    let cut: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut m)
        .await
        .expect("cut the replication link");
    assert_eq!(cut, 1, "the victim had no replica connected");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut acked: Vec<(String, u64)> = Vec::new();
    for ((g, _, m), j) in placed.iter().zip(&jobs) {
        if *m == victim {
            acked.push((j.clone(), counted_succeeded(&metrics_of[g], j).await));
        }
    }
    let killed_at = now_ms();
    cluster.kill9(victim);
    cluster.signal(replica, nix::sys::signal::Signal::SIGCONT);
    let promoted = cluster.wait_promoted(slot, victim, Duration::from_secs(30));
    assert_eq!(promoted, replica);
    eprintln!(
        "master {victim} ({} groups) killed; replica {promoted} promoted after {} ms",
        acked.len(),
        now_ms() - killed_at
    );
    // Scheduling and work resume by themselves in every group.
    succeeded_after(&api, &jobs, killed_at + 2_000, 3, Duration::from_secs(60)).await;
    // Every completion a worker had acknowledged before the kill is still recorded.
    for (j, counted) in &acked {
        let kept = runs_when_up(&api, j)
            .await
            .iter()
            .filter(|r| r["status"] == "succeeded" && ms(&r["finished_at"]) < killed_at)
            .count() as u64;
        assert!(
            kept >= *counted,
            "job {j}: {counted} runs acknowledged before the kill, {kept} kept"
        );
    }
    let ticks = assert_each_tick_once(&cluster, &api, &groups, &jobs).await;
    eprintln!("master failover: acknowledged runs {acked:?} all kept, {ticks} ticks once each");
}

#[tokio::test]
async fn listing_ten_thousand_jobs_over_twenty_groups_never_calls_keys() {
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.url();
    let placed = groups_on_masters(&cluster, 20);
    let sched = InProcess::start(&url, "dotjob").await;
    let api = Api::new(&sched.base);
    // The jobs go in through the store (as the API would), 500 at a time.
    let store = dotjob_shared::store::Store::new(redis_handle(&url, "dotjob"));
    let inputs: Vec<dotjob_shared::model::job::JobInput> = (0..10_000)
        .map(|i| {
            serde_json::from_value(json!({"name": format!("job-{i}"),
                "group": placed[i % placed.len()].0, "handler": "noop"}))
            .expect("job input")
        })
        .collect();
    for chunk in inputs.chunks(500) {
        let creates = chunk.iter().map(|input| store.create_job(input.clone()));
        for r in futures::future::join_all(creates).await {
            r.expect("create job");
        }
    }
    let keys_before: Vec<u64> = cluster
        .ports()
        .iter()
        .map(|p| cluster.calls(*p, "keys"))
        .collect();

    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/jobs?limit=500".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let a = api.call("GET", &path, None).await.expect("list jobs");
        assert_eq!(a.status, 200, "{:?}", a.body);
        for j in a.body["items"].as_array().expect("items") {
            seen.insert(j["id"].as_str().expect("id").to_owned());
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000, "jobs listed");
    // A job deleted leaves the global indexes too (written beside its group's script).
    let gone = seen.iter().next().expect("a job").clone();
    let a = api
        .call("DELETE", &format!("/jobs/{gone}"), None)
        .await
        .expect("delete");
    assert!(a.status < 300, "{:?}", a.body);
    let a = api
        .call("GET", &format!("/jobs/{gone}"), None)
        .await
        .expect("get");
    assert_eq!(a.status, 404, "{:?}", a.body);
    let mut c = cluster.conn().await;
    let indexed: Option<String> = redis::cmd("HGET")
        .arg(Keys::new("dotjob").job_index())
        .arg(&gone)
        .query_async(&mut c)
        .await
        .expect("hget");
    assert_eq!(indexed, None, "the deleted job is still in the job index");
    let groups = api.call("GET", "/groups", None).await.expect("groups");
    assert_eq!(groups.status, 200, "{:?}", groups.body);
    let listed = groups.body["items"]
        .as_array()
        .or_else(|| groups.body.as_array())
        .expect("groups list");
    assert_eq!(listed.len(), 20, "groups listed: {}", groups.body);
    // Runs in several groups, then every cross-group view.
    let listed_ids: Vec<String> = seen.iter().skip(1).take(40).cloned().collect();
    let mut triggered = 0;
    for id in &listed_ids {
        api.trigger(id, None).await;
        triggered += 1;
    }
    for path in [
        "/stats",
        "/runs?limit=100",
        "/views/jobs?limit=100",
        "/views/overview",
        "/audit",
    ] {
        let a = api.call("GET", path, None).await.expect("view");
        assert_eq!(a.status, 200, "{path}: {:?}", a.body);
    }
    let runs = api
        .call("GET", "/runs?limit=100", None)
        .await
        .expect("runs");
    assert_eq!(
        runs.body["items"].as_array().map(Vec::len),
        Some(triggered),
        "{}",
        runs.body
    );
    let one = api
        .call(
            "GET",
            &format!("/jobs?group={}&limit=10", placed[3].0),
            None,
        )
        .await
        .expect("list a group");
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(one.body["items"].as_array().map(Vec::len), Some(10));

    let keys_after: Vec<u64> = cluster
        .ports()
        .iter()
        .map(|p| cluster.calls(*p, "keys"))
        .collect();
    assert_eq!(keys_before, keys_after, "KEYS was called");
    assert!(
        keys_after.iter().all(|n| *n == 0),
        "KEYS was called: {keys_after:?}"
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn the_durable_setting_waits_on_the_master_that_ran_the_script() {
    let cluster = RedisCluster::start(3, 1);
    let placed = groups_on_masters(&cluster, 6);
    let durable = dotjob_shared::Redis::new(&dotjob_shared::config::RedisConfig {
        cluster: cluster.urls(),
        wait: Some(dotjob_shared::config::WaitReplicas {
            replicas: 1,
            timeout: Duration::from_secs(2),
        }),
        ..dotjob_shared::config::RedisConfig::default()
    })
    .expect("handle");
    let masters = cluster.masters();
    let waits = || -> HashMap<u16, u64> {
        masters
            .iter()
            .map(|m| (*m, cluster.calls(*m, "wait")))
            .collect()
    };
    for (i, (g, _, master)) in placed.iter().enumerate() {
        // A script new to every node: the first EVALSHA meets NOSCRIPT on the group's master.
        let script = redis::Script::new(&format!(
            "return redis.call('INCRBY', KEYS[1] .. 'n', {})",
            i + 1
        ));
        let before = waits();
        let mut c = durable.conn().await.expect("conn");
        let n: i64 = script
            .key(durable.keys().group_prefix(g))
            .invoke_async(&mut durable.durable(&mut c))
            .await
            .expect("script through the durable connection");
        assert_eq!(n, i as i64 + 1);
        let after = waits();
        for m in &masters {
            if m == master {
                assert!(after[m] > before[m], "group {g}: no WAIT on its master {m}");
            } else {
                assert_eq!(after[m], before[m], "group {g}: a WAIT went to master {m}");
            }
        }
        // Without the wrapper: no WAIT at all.
        let _: i64 = script
            .key(durable.keys().group_prefix(g))
            .invoke_async(&mut c)
            .await
            .expect("plain script");
        assert_eq!(waits(), after, "a plain script call sent a WAIT");
    }
}

#[tokio::test]
async fn eviction_and_full_memory_are_checked_on_every_master() {
    use dotjob_shared::eviction::{self, Reading, Verdict};
    let cluster = RedisCluster::start(3, 0);
    let redis = redis_handle(&cluster.url(), "dotjob");
    let safe = eviction::read(&redis).await.expect("read the policy");
    assert_eq!(eviction::verdict(&safe, false), Verdict::Safe, "{safe:?}");
    assert!(!redis.memory_full().await.expect("memory"));
    // One master out of three evicts, another is full: both are seen.
    let masters: Vec<u16> = cluster.masters().into_iter().collect();
    let set = |port: u16, name: &'static str, value: &'static str| async move {
        let mut c = dotjob_tests::raw_conn(&format!("redis://127.0.0.1:{port}")).await;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut c)
            .await
            .expect("config set");
    };
    set(masters[2], "maxmemory-policy", "allkeys-lru").await;
    let reading = eviction::read(&redis).await.expect("read the policy");
    let Reading::Known { policy, .. } = &reading else {
        panic!("unreadable: {reading:?}");
    };
    assert!(
        policy.contains("allkeys-lru") && policy.contains(&masters[2].to_string()),
        "{policy}"
    );
    assert!(matches!(
        eviction::verdict(&reading, false),
        Verdict::Refuse(_)
    ));
    set(masters[1], "maxmemory", "1").await;
    assert!(
        redis.memory_full().await.expect("memory"),
        "a full master was missed"
    );
}

#[tokio::test]
async fn a_pipeline_over_many_groups_is_split_per_node_and_answers_in_order() {
    let cluster = RedisCluster::start(3, 0);
    let placed = groups_on_masters(&cluster, 9);
    let redis = redis_handle(&cluster.url(), "t-pipe");
    let keys = redis.keys();
    let mut c = redis.conn().await.expect("conn");
    let mut write = redis::pipe();
    for (i, (g, _, _)) in placed.iter().enumerate() {
        write.set(keys.group_prefix(g) + "n", i).ignore();
    }
    let () = write
        .query_async(&mut c)
        .await
        .expect("writes over every group");
    // Reads of every group interleaved with keyless and multi-slot commands.
    let mut read = redis::pipe();
    for (g, _, _) in &placed {
        read.get(keys.group_prefix(g) + "n").cmd("TIME");
    }
    let all: Vec<String> = placed
        .iter()
        .map(|(g, _, _)| keys.group_prefix(g) + "n")
        .collect();
    read.cmd("MGET").arg(&all);
    let reply: Vec<redis::Value> = read.query_async(&mut c).await.expect("mixed pipeline");
    assert_eq!(reply.len(), placed.len() * 2 + 1);
    for (i, _) in placed.iter().enumerate() {
        let n: usize = redis::from_redis_value(reply[i * 2].clone()).expect("a number");
        assert_eq!(n, i, "reply {i} out of order");
        let (s, _us): (u64, u64) = redis::from_redis_value(reply[i * 2 + 1].clone()).expect("TIME");
        assert!(s > 1_700_000_000);
    }
    let many: Vec<usize> = redis::from_redis_value(reply[placed.len() * 2].clone()).expect("MGET");
    assert_eq!(many, (0..placed.len()).collect::<Vec<_>>());
}
