//! Groups: what many groups cost when they have little to do. N groups (1 000 and 10 000)
//! of one job each and one scheduler process; after a warm-up, Redis commands per second
//! (`INFO commandstats` delta, commands run inside scripts included) and the scheduler's CPU
//! time, measured from a minute after the scheduler holds every group, in two phases:
//! - idle: each group's job is not due during the measurement (`@yearly`), so everything
//!   counted is the per-group overhead (leases, safety re-reads, housekeeping);
//! - `*/5`: each group's job fires every 5 s, so the figures include the firing itself;
//!   the difference to the idle phase divided by the fires is what one fire costs.
//!
//! The scheduler is the real binary of the bench's own profile (debug bench: debug
//! scheduler), so its CPU time is its own (`/proc/<pid>/stat`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dotjob_shared::Store;
use dotjob_shared::model::job::{JobInput, Nullable};
use dotjob_tests::{Profile, spawn_scheduler_built};
use futures::StreamExt;

use super::Ctx;
use crate::env::{self, Counters};

/// Seconds between holding every group and measuring.
const WARM_UP_SECS: u64 = 60;

/// What one phase measured.
struct Phase {
    /// Commands per second, all of them.
    cmds_per_s: f64,
    /// Calls per second per command name.
    per_cmd: BTreeMap<String, f64>,
    /// Runs appended to the streams per second (`XADD` calls).
    fires_per_s: f64,
    /// Scheduler CPU, in percent of one core.
    cpu_pct: f64,
    /// Redis CPU, in percent of one core.
    redis_cpu_pct: f64,
}

pub async fn run(ctx: &Ctx, counts: &[u64], secs: u64) -> anyhow::Result<()> {
    for &n in counts {
        let idle = phase(ctx, n, "@yearly", secs).await?;
        report(n, "idle (one @yearly job each)", &idle, None);
        let busy = phase(ctx, n, "*/5 * * * * *", secs).await?;
        report(n, "one */5 job each", &busy, Some(&idle));
    }
    Ok(())
}

fn report(n: u64, what: &str, p: &Phase, idle: Option<&Phase>) {
    let per_group = p.cmds_per_s / n as f64;
    let mut line = format!(
        "groups: {n} groups, {what}: {:.0} Redis commands/s = {per_group:.3} per group per second; \
         {:.0} fires/s; scheduler CPU {:.1} % of a core; Redis CPU {:.1} %",
        p.cmds_per_s, p.fires_per_s, p.cpu_pct, p.redis_cpu_pct
    );
    if let Some(idle) = idle
        && p.fires_per_s > 0.0
    {
        line.push_str(&format!(
            "; {:.1} commands per fire beyond the idle cost",
            (p.cmds_per_s - idle.cmds_per_s) / p.fires_per_s
        ));
    }
    println!("{line}");
    let mut top: Vec<(&String, &f64)> = p.per_cmd.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1));
    let top: Vec<String> = top
        .iter()
        .take(8)
        .map(|(k, v)| format!("{k} {:.3}", *v / n as f64))
        .collect();
    println!(
        "groups: {n} groups, {what}: per group per second: {}",
        top.join(", ")
    );
}

/// Creates `n` groups of one job with `schedule`, starts a scheduler, waits until it holds
/// every group, lets it settle, then measures for `secs`.
async fn phase(ctx: &Ctx, n: u64, schedule: &str, secs: u64) -> anyhow::Result<Phase> {
    let tag = if schedule.starts_with('@') {
        "idle"
    } else {
        "busy"
    };
    let prefix = format!("bench-g{tag}{n}");
    let redis = ctx.redis(&prefix);
    let store = Store::new(redis.clone());
    let created: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let schedule = schedule.to_owned();
            async move {
                store
                    .create_job(JobInput {
                        name: Some("tick".into()),
                        group: Some(format!("g{i}")),
                        handler: Some("noop".into()),
                        schedule: Nullable::Value(schedule),
                        timeout_ms: Some(60_000),
                        ..JobInput::default()
                    })
                    .await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in created {
        r?;
    }
    let profile = if cfg!(debug_assertions) {
        Profile::Debug
    } else {
        Profile::Release
    };
    let (mut sched, _) = spawn_scheduler_built(profile, &ctx.url, &prefix, &[("RUST_LOG", "warn")]);
    let mut c = env::conn(&ctx.url).await?;
    // Warm-up: every group held, then one full firing period and a housekeeping round.
    let leases: Vec<String> = (0..n)
        .map(|i| redis.keys().lease(&format!("g{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut pipe = redis::pipe();
        for l in &leases {
            pipe.cmd("HGET").arg(l).arg("owner");
        }
        let owners: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        let held = owners
            .iter()
            .filter(|o| o.as_deref().is_some_and(|o| !o.is_empty()))
            .count();
        if held as u64 == n {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline && sched.is_running(),
            "the scheduler holds only {held} of {n} groups after the warm-up"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Past the start (the first housekeeping of every group, spread over rounds; the first
    // renewals), into the steady state.
    tokio::time::sleep(Duration::from_secs(WARM_UP_SECS)).await;
    let before = Counters::read(&mut c).await?;
    let cpu0 = sched.cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu1 = sched.cpu_time();
    let after = Counters::read(&mut c).await?;
    let took = t0.elapsed().as_secs_f64();
    drop(sched);
    let (cmds, redis_cpu_us, per) = before.delta(&after);
    let fires = per.get("xadd").copied().unwrap_or(0);
    Ok(Phase {
        cmds_per_s: cmds as f64 / took,
        per_cmd: per.into_iter().map(|(k, v)| (k, v as f64 / took)).collect(),
        fires_per_s: fires as f64 / took,
        cpu_pct: (cpu1 - cpu0).as_secs_f64() / took * 100.0,
        redis_cpu_pct: redis_cpu_us as f64 / 1e6 / took * 100.0,
    })
}
