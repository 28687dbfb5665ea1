//! Throughput: runs of a no-op handler end to end (enqueued in bulk, executed, acknowledged,
//! recorded), and what each run costs Redis (`INFO commandstats` and CPU deltas).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dotjob_shared::Store;
use dotjob_shared::model::job::JobInput;
use futures::StreamExt;

use super::{Ctx, worker};
use crate::env::{self, Counters};

/// Runs enqueued per script call.
const CHUNK: u64 = 1_000;

pub async fn run(ctx: &Ctx, runs: u64) -> anyhow::Result<()> {
    let redis = ctx.redis("bench-tp");
    let store = Store::new(redis.clone());
    let job = store
        .create_job(JobInput {
            name: Some("throughput".into()),
            group: Some("tp".into()),
            handler: Some("noop".into()),
            ..JobInput::default()
        })
        .await?;
    let started = Arc::new(AtomicU64::new(0));
    let s = started.clone();
    let on_start = Arc::new(move |_: &dotjob_worker::RunContext| {
        s.fetch_add(1, Ordering::Relaxed);
    });
    let workers = vec![
        worker(redis.clone(), "tp", 512, on_start.clone())?,
        worker(redis.clone(), "tp", 512, on_start)?,
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = env::conn(&ctx.url).await?;
    let before = Counters::read(&mut c).await?;
    let t0 = Instant::now();
    let chunks = runs.div_ceil(CHUNK);
    let enq: Vec<anyhow::Result<u64>> = futures::stream::iter(0..chunks)
        .map(|i| {
            let store = store.clone();
            let id = job.id.clone();
            async move {
                let n = CHUNK.min(runs - i * CHUNK);
                Ok(store.trigger_many(&id, n, "bench").await?)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let enqueued: u64 = enq.into_iter().sum::<anyhow::Result<u64>>()?;
    let enqueue_s = t0.elapsed().as_secs_f64();
    let active = redis.keys().active("tp");
    loop {
        let left: u64 = redis::cmd("HLEN").arg(&active).query_async(&mut c).await?;
        if left == 0 && started.load(Ordering::Relaxed) >= enqueued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = Counters::read(&mut c).await?;
    for w in workers {
        w.stop().await;
    }
    let (cmds, cpu_us, per) = before.delta(&after);
    let rate = enqueued as f64 / secs;
    println!(
        "throughput: {enqueued} runs in {secs:.2} s (enqueued in {enqueue_s:.2} s): {rate:.0} runs/s = {:.2} x XADD baseline",
        rate / ctx.baseline
    );
    println!(
        "throughput: Redis cost per run: {:.2} commands, {:.1} us Redis CPU",
        cmds as f64 / enqueued as f64,
        cpu_us as f64 / enqueued as f64
    );
    let mut top: Vec<_> = per.into_iter().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    let breakdown: Vec<String> = top
        .iter()
        .take(10)
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / enqueued as f64))
        .collect();
    println!(
        "throughput: commands per run by name: {}",
        breakdown.join(", ")
    );
    let mut usec: Vec<_> = before.usec_delta(&after).into_iter().collect();
    usec.sort_by_key(|e| std::cmp::Reverse(e.1));
    let profile: Vec<String> = usec
        .iter()
        .take(10)
        .map(|(k, v)| format!("{k} {:.1}", *v as f64 / enqueued as f64))
        .collect();
    println!(
        "throughput: Redis time per run by command, us: {}",
        profile.join(", ")
    );
    Ok(())
}
