//! Burst: many jobs due at the same instant: time until all are enqueued and until all ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dotjob_shared::Store;

use dotjob_tests::now_ms;

use super::{Ctx, create_jobs, scheduler, worker};
use crate::env;

pub async fn run(ctx: &Ctx, jobs: u64, with_workers: bool) -> anyhow::Result<()> {
    let redis = ctx.redis(if with_workers {
        "bench-burst"
    } else {
        "bench-burst-alone"
    });
    let store = Store::new(redis.clone());
    // Pilot: how fast can jobs be created here? Then choose an instant after all exist.
    let t = Instant::now();
    create_jobs(&store, "pilot", "@yearly", 1_000).await?;
    let per_job = t.elapsed().as_secs_f64() / 1_000.0;
    let due = (now_ms() + (per_job * jobs as f64 * 1.5 * 1_000.0) as i64 + 5_000) / 1_000 * 1_000;
    // A cron expression naming that one second (once a year): every job due at that instant.
    let at = chrono::DateTime::from_timestamp_millis(due).unwrap_or_default();
    let cron = at.format("%S %M %H %d %m *").to_string();
    let t = Instant::now();
    create_jobs(&store, "burst", &cron, jobs).await?;
    let created = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        now_ms() < due,
        "creating {jobs} jobs took {created:.1} s: past their instant"
    );
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let on_start = Arc::new(move |_: &dotjob_worker::RunContext| {
        r.fetch_add(1, Ordering::Relaxed);
    });
    let workers = if with_workers {
        vec![
            worker(redis.clone(), "burst", 1_024, on_start.clone())?,
            worker(redis.clone(), "burst", 1_024, on_start)?,
        ]
    } else {
        vec![]
    };
    let s = scheduler(redis.clone()).await?;
    let mut c = env::conn(&ctx.url).await?;
    let stream = redis.keys().stream("burst");
    let active = redis.keys().active("burst");
    tokio::time::sleep(Duration::from_millis((due - now_ms() - 5).max(0) as u64)).await;
    let mut enqueued_ms = None;
    let finished_ms = loop {
        if enqueued_ms.is_none() && entries_added(&mut c, &stream).await? >= jobs {
            enqueued_ms = Some(now_ms() - due);
        }
        if !with_workers && enqueued_ms.is_some() {
            break now_ms() - due;
        }
        if ran.load(Ordering::Relaxed) >= jobs {
            let left: u64 = redis::cmd("HLEN").arg(&active).query_async(&mut c).await?;
            if left == 0 {
                break now_ms() - due;
            }
        }
        if std::env::var_os("BENCH_TRACE").is_some() && (now_ms() - due) % 1_000 < 3 {
            eprintln!(
                "  t+{} ms: enqueued {:?}, started {}",
                now_ms() - due,
                enqueued_ms,
                ran.load(Ordering::Relaxed)
            );
        }
        if now_ms() - due > 600_000 {
            anyhow::bail!("burst did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    s.stop().await;
    for w in workers {
        w.stop().await;
    }
    if with_workers {
        println!(
            "burst: {jobs} jobs due at one instant: all enqueued {} ms after it, all finished {} ms after it (jobs created in {created:.1} s)",
            enqueued_ms.unwrap_or(finished_ms),
            finished_ms
        );
    } else {
        println!(
            "burst (no workers): {jobs} jobs due at one instant: all enqueued {} ms after it",
            enqueued_ms.unwrap_or(finished_ms)
        );
    }
    Ok(())
}

/// Entries ever added to a stream (trimming does not lower it).
async fn entries_added(
    c: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<u64> {
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(c)
        .await?;
    let items: Vec<redis::Value> = match info {
        redis::Value::Array(v) => v,
        redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => vec![],
    };
    for kv in items.chunks(2) {
        if let [redis::Value::BulkString(k), redis::Value::Int(n)] = kv
            && k == b"entries-added"
        {
            return Ok(*n as u64);
        }
    }
    Ok(0)
}
