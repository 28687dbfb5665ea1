//! Precision: many per-second jobs; latency from each tick to its handler's start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dotjob_shared::Store;

use dotjob_tests::now_ms;

use super::{Ctx, create_jobs, now_us, scheduler, worker};
use crate::env::pct;

pub async fn run(ctx: &Ctx, jobs: u64, secs: u64) -> anyhow::Result<()> {
    let redis = ctx.redis("bench-prec");
    let store = Store::new(redis.clone());
    create_jobs(&store, "prec", "*/1 * * * * *", jobs).await?;
    // Measure whole ticks after a warm-up (the first ticks find the jobs just created).
    let from = (now_ms() / 1_000 + 5) * 1_000;
    let until = from + secs as i64 * 1_000;
    let lat: Arc<Mutex<Vec<(i64, i64)>>> =
        Arc::new(Mutex::new(Vec::with_capacity((jobs * secs) as usize)));
    let l = lat.clone();
    let on_start = Arc::new(move |ctx: &dotjob_worker::RunContext| {
        let at = ctx.scheduled_at_ms();
        if (from..until).contains(&at)
            && let Ok(mut v) = l.lock()
        {
            v.push((at, now_us() - at * 1_000));
        }
    });
    let w1 = worker(redis.clone(), "prec", 1_024, on_start.clone())?;
    let w2 = worker(redis.clone(), "prec", 1_024, on_start)?;
    let s = scheduler(redis.clone()).await?;
    tokio::time::sleep(Duration::from_millis(
        (until - now_ms() + 2_000).max(0) as u64
    ))
    .await;
    s.stop().await;
    w1.stop().await;
    w2.stop().await;
    let starts = lat.lock().map(|v| v.clone()).unwrap_or_default();
    if std::env::var_os("BENCH_TRACE").is_some() {
        // Per tick: the earliest and latest start, in µs after the tick.
        let mut by_tick = std::collections::BTreeMap::<i64, (i64, i64)>::new();
        for &(at, us) in &starts {
            let e = by_tick.entry(at).or_insert((us, us));
            e.0 = e.0.min(us);
            e.1 = e.1.max(us);
        }
        for (at, (lo, hi)) in by_tick {
            eprintln!("precision: tick {at}: first start +{lo} us, last +{hi} us");
        }
    }
    let mut v: Vec<i64> = starts.iter().map(|&(_, us)| us / 1_000).collect();
    v.sort_unstable();
    let expected = jobs * secs;
    println!(
        "precision: {jobs} jobs x {secs} s = {} runs started of {expected} ({:.0} fires/s); tick -> handler start: p50 {} ms, p99 {} ms, max {} ms",
        v.len(),
        v.len() as f64 / secs as f64,
        pct(&v, 0.50),
        pct(&v, 0.99),
        v.last().copied().unwrap_or(0)
    );
    Ok(())
}
