//! Failover: three scheduler processes; kill -9 the lease holder and time how long its group
//! takes to fire again; then check every tick ran once (no duplicate, no miss).

use std::collections::HashMap;
use std::time::Duration;

use dotjob_shared::Store;
use dotjob_tests::{Proc, Profile, now_ms, pid_of, spawn_scheduler_built};

use super::{Ctx, create_jobs};
use crate::env;

const LEASE_MS: u64 = 5_000;

/// A release scheduler process of `prefix` with a short lease, killed on drop.
fn scheduler(url: &str, prefix: &str) -> Proc {
    let lease = LEASE_MS.to_string();
    let env = [
        ("DOTJOB_SCHEDULER_LEASE_MS", lease.as_str()),
        ("RUST_LOG", "warn"),
    ];
    spawn_scheduler_built(Profile::Release, url, prefix, &env).0
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let prefix = "bench-fo";
    let redis = ctx.redis(prefix);
    let store = Store::new(redis.clone());
    let mut procs: Vec<Proc> = (0..3).map(|_| scheduler(&ctx.url, prefix)).collect();
    create_jobs(&store, "fo", "*/1 * * * * *", 20).await?;
    let mut c = env::conn(&ctx.url).await?;
    let lease = redis.keys().lease("fo");
    let stream = redis.keys().stream("fo");
    let mut times = vec![];
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        let owner: Option<String> = redis::cmd("HGET")
            .arg(&lease)
            .arg("owner")
            .query_async(&mut c)
            .await?;
        let pid = owner.as_deref().and_then(pid_of);
        let i = procs
            .iter()
            .position(|p| Some(p.pid()) == pid)
            .ok_or_else(|| anyhow::anyhow!("no holder"))?;
        drop(procs.remove(i)); // SIGKILL
        let killed_at = now_ms();
        procs.push(scheduler(&ctx.url, prefix)); // a replacement joins, as a supervisor would
        // Time the first fire after the kill.
        let resumed = loop {
            let last: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(&stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut c)
                .await?;
            let at = last
                .first()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok())
                .unwrap_or(0);
            if at > killed_at {
                break at;
            }
            if now_ms() - killed_at > 60_000 {
                anyhow::bail!("no fire within 60 s of the kill");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        times.push(resumed - killed_at);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(procs);
    // Every tick of every job once: count stream entries per (job, tick).
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await?;
    let mut per: HashMap<(String, i64), u32> = HashMap::new();
    for (_, f) in &entries {
        let run = f.get("run").cloned().unwrap_or_default();
        let at = dotjob_shared::model::run::RunIdShape::of(&run)
            .tick
            .unwrap_or(0);
        let job = dotjob_shared::model::run::job_of_run(&run)
            .unwrap_or("")
            .to_owned();
        *per.entry((job, at)).or_default() += 1;
    }
    let dups = per.values().filter(|n| **n > 1).count();
    let mut by_job: HashMap<&str, Vec<i64>> = HashMap::new();
    for (job, at) in per.keys() {
        by_job.entry(job.as_str()).or_default().push(*at);
    }
    let mut misses = 0;
    for ticks in by_job.values_mut() {
        ticks.sort_unstable();
        for w in ticks.windows(2) {
            misses += ((w[1] - w[0]) / 1_000 - 1).max(0);
        }
    }
    println!(
        "failover: lease {LEASE_MS} ms; group fired again {} ms after each kill of its holder (worst {} ms); {dups} duplicates, {misses} misses over {} ticks",
        times
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        times.iter().max().copied().unwrap_or(0),
        per.len()
    );
    Ok(())
}
