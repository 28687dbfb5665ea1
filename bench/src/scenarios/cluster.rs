//! `bench --cluster`: the throughput scenario on a Redis Cluster the bench starts, with 1
//! and then 3 masters (and 3 masters with a replica each under `DOTJOB_WAIT_REPLICAS=1`, the
//! durable setting's cost). The runs go to 12 groups, one job each (groups are the unit of
//! spread: one slot each), one in-process worker per group. Reports runs/s, Redis CPU per run
//! on each master (`INFO cpu` deltas) and how the groups and the work spread over masters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dotjob_shared::config::{RedisConfig, WaitReplicas};
use dotjob_shared::model::job::JobInput;
use dotjob_shared::{Redis, Store};
use dotjob_tests::RedisCluster;
use futures::StreamExt;

use super::worker;
use crate::env::{self, Counters};

/// Groups the runs are spread over.
const GROUPS: usize = 12;
/// Runs enqueued per script call.
const CHUNK: u64 = 500;

/// One configuration: `masters` masters, `replicas` each, and whether to `WAIT`.
struct Setup {
    masters: usize,
    replicas: usize,
    wait: bool,
}

pub async fn run(runs: u64) -> anyhow::Result<()> {
    let setups = [
        Setup {
            masters: 1,
            replicas: 0,
            wait: false,
        },
        Setup {
            masters: 3,
            replicas: 0,
            wait: false,
        },
        Setup {
            masters: 3,
            replicas: 1,
            wait: true,
        },
    ];
    let mut per_master_cpu = Vec::new();
    for s in &setups {
        let cpu = one(s, runs).await?;
        per_master_cpu.push(cpu);
    }
    if let (Some(one), Some(three)) = (per_master_cpu.first(), per_master_cpu.get(1))
        && *three > 0.0
    {
        println!(
            "cluster: busiest master's Redis CPU per run, 1 master / 3 masters: {:.2}x",
            one / three
        );
    }
    Ok(())
}

/// Runs one setup; returns the busiest master's Redis CPU per run (µs).
async fn one(s: &Setup, runs: u64) -> anyhow::Result<f64> {
    let label = format!(
        "{} master(s), {} replica(s) each{}",
        s.masters,
        s.replicas,
        if s.wait { ", WAIT 1" } else { "" }
    );
    let cluster = RedisCluster::start(s.masters, s.replicas);
    let redis = Redis::new(&RedisConfig {
        cluster: cluster.urls(),
        prefix: "bench-cl".to_owned(),
        timeout: Duration::from_secs(30),
        wait: s.wait.then_some(WaitReplicas {
            replicas: 1,
            timeout: Duration::from_secs(1),
        }),
        ..RedisConfig::default()
    })?;
    let store = Store::new(redis.clone());
    let groups: Vec<String> = (0..GROUPS).map(|i| format!("tp{i}")).collect();
    let mut jobs = Vec::new();
    for g in &groups {
        let job = store
            .create_job(JobInput {
                name: Some(format!("throughput-{g}")),
                group: Some(g.clone()),
                handler: Some("noop".into()),
                ..JobInput::default()
            })
            .await?;
        jobs.push(job.id);
    }
    // Which master serves each group.
    let mut groups_on: BTreeMap<u16, usize> = BTreeMap::new();
    for g in &groups {
        let slot = cluster.keyslot(&redis.keys().group_prefix(g));
        let m = cluster
            .master_of(slot)
            .ok_or_else(|| anyhow::anyhow!("no master for slot {slot}"))?;
        *groups_on.entry(m).or_default() += 1;
    }
    let started = Arc::new(AtomicU64::new(0));
    let st = started.clone();
    let on_start = Arc::new(move |_: &dotjob_worker::RunContext| {
        st.fetch_add(1, Ordering::Relaxed);
    });
    let workers = groups
        .iter()
        .map(|g| worker(redis.clone(), g, 256, on_start.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let masters: Vec<u16> = groups_on.keys().copied().collect();
    let mut conns = Vec::new();
    for m in &masters {
        conns.push(env::conn(&format!("redis://127.0.0.1:{m}")).await?);
    }
    let mut before = Vec::new();
    for c in &mut conns {
        before.push(Counters::read(c).await?);
    }
    let per_group = runs / GROUPS as u64;
    let t0 = Instant::now();
    let calls: Vec<(String, u64)> = jobs
        .iter()
        .flat_map(|j| {
            (0..per_group.div_ceil(CHUNK))
                .map(move |i| (j.clone(), CHUNK.min(per_group - i * CHUNK)))
        })
        .collect();
    let enq: Vec<anyhow::Result<u64>> = futures::stream::iter(calls)
        .map(|(id, n)| {
            let store = store.clone();
            async move { Ok(store.trigger_many(&id, n, "bench").await?) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let enqueued: u64 = enq.into_iter().sum::<anyhow::Result<u64>>()?;
    let mut c = redis.conn().await?;
    loop {
        let mut left = 0u64;
        for g in &groups {
            let n: u64 = redis::cmd("HLEN")
                .arg(redis.keys().active(g))
                .query_async(&mut c)
                .await?;
            left += n;
        }
        if left == 0 && started.load(Ordering::Relaxed) >= enqueued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut after = Vec::new();
    for c in &mut conns {
        after.push(Counters::read(c).await?);
    }
    for w in workers {
        w.stop().await;
    }
    println!(
        "cluster [{label}]: {enqueued} runs in {secs:.2} s: {:.0} runs/s",
        enqueued as f64 / secs
    );
    let mut busiest = 0.0f64;
    let mut total = 0.0;
    for ((m, b), a) in masters.iter().zip(&before).zip(&after) {
        let (cmds, cpu_us, _) = b.delta(a);
        let cpu = cpu_us as f64 / enqueued as f64;
        busiest = busiest.max(cpu);
        total += cpu;
        println!(
            "cluster [{label}]: master :{m}: {} groups, {:.2} commands and {cpu:.1} us Redis CPU per run (of all runs)",
            groups_on[m],
            cmds as f64 / enqueued as f64,
        );
    }
    let counts: Vec<usize> = groups_on.values().copied().collect();
    println!(
        "cluster [{label}]: Redis CPU per run: busiest master {busiest:.1} us, all masters {total:.1} us; groups per master {counts:?}"
    );
    Ok(busiest)
}
