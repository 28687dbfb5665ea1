//! Footprint: Redis memory per registered job and per retained run, and the resident memory
//! of a scheduler and a worker process with 100 000 and 1 000 000 registered jobs (it must not
//! grow with the job count: nothing loads every job).

use std::time::Duration;

use dotjob_shared::Store;
use dotjob_shared::model::job::JobInput;
use dotjob_tests::{Proc, Profile, spawn_scheduler_built};

use super::{Ctx, create_jobs, worker};
use crate::env;

pub async fn run(ctx: &Ctx, max_jobs: u64) -> anyhow::Result<()> {
    let prefix = "bench-fp";
    let redis = ctx.redis(prefix);
    let store = Store::new(redis.clone());
    let mut c = env::conn(&ctx.url).await?;

    // Redis memory per registered job (yearly jobs: registered and scheduled, not due during the bench).
    let m0 = env::used_memory(&mut c).await?;
    create_jobs(&store, "fp", "@yearly", 100_000).await?;
    let m1 = env::used_memory(&mut c).await?;
    println!(
        "footprint: Redis memory per registered job: {} bytes",
        (m1 - m0) / 100_000
    );

    // Redis memory per retained run (finished, recorded; the stream trimmed).
    let job = store
        .create_job(JobInput {
            name: Some("runs".into()),
            group: Some("fpr".into()),
            handler: Some("noop".into()),
            ..JobInput::default()
        })
        .await?;
    let w = worker(
        redis.clone(),
        "fpr",
        512,
        std::sync::Arc::new(|_: &dotjob_worker::RunContext| {}),
    )?;
    let m2 = env::used_memory(&mut c).await?;
    let runs = 100_000u64;
    for _ in 0..runs / 1_000 {
        store.trigger_many(&job.id, 1_000, "bench").await?;
    }
    loop {
        let left: u64 = redis::cmd("HLEN")
            .arg(redis.keys().active("fpr"))
            .query_async(&mut c)
            .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.stop().await;
    let _: redis::Value = redis::cmd("XTRIM")
        .arg(redis.keys().stream("fpr"))
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut c)
        .await?;
    let m3 = env::used_memory(&mut c).await?;
    println!(
        "footprint: Redis memory per retained run: {} bytes",
        (m3 - m2) / runs
    );

    // Process RSS with 100 000, then 1 000 000 registered jobs.
    let mut line = vec![];
    let mut registered = 100_000u64;
    loop {
        let quiet = [("RUST_LOG", "warn")];
        let (sched, _) = spawn_scheduler_built(Profile::Release, &ctx.url, prefix, &quiet);
        let work = Proc::spawn_built(
            Profile::Release,
            "dotjob-worker",
            &["--group", "fp"],
            &[("REDIS_URL", &ctx.url), ("DOTJOB_PREFIX", prefix), quiet[0]],
        );
        tokio::time::sleep(Duration::from_secs(15)).await;
        line.push(format!(
            "{registered} jobs: scheduler {:.1} MiB, worker {:.1} MiB",
            env::rss(sched.pid()) as f64 / 1_048_576.0,
            env::rss(work.pid()) as f64 / 1_048_576.0
        ));
        drop(sched);
        drop(work);
        if registered >= max_jobs {
            break;
        }
        create_jobs(&store, "fp", "@yearly", max_jobs - registered).await?;
        registered = max_jobs;
    }
    println!("footprint: RSS with {}", line.join("; "));
    Ok(())
}
