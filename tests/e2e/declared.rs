//! Jobs declared in code: a worker declaring a job with `.schedule(...)` has it created in its
//! group when it starts and runs it on schedule, with no admin API call; restarting with the
//! same declaration leaves the job's version alone, a changed one updates it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dotjob_shared::Store;
use dotjob_shared::model::job::JobSpec;
use dotjob_shared::store::JobFilter;
use dotjob_tests::{
    InProcess, Spawned, delete_prefix, redis_handle, shared_redis, unique_prefix, wait_for,
};
use dotjob_worker::{HandlerError, JobDef, RunContext, Worker};
use serde_json::json;

fn worker(url: &str, prefix: &str, calls: Arc<AtomicU32>, def: Option<JobDef>) -> Spawned {
    let handler = move |_ctx: RunContext| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(json!({"ok": true}))
        }
    };
    let b = Worker::builder(redis_handle(url, prefix), "decl");
    let b = match def {
        None => b.schedule("every-second", "*/1 * * * * *", handler),
        Some(def) => b.schedule_job(def, handler),
    };
    Spawned::worker(b.build().expect("worker"))
}

async fn declared(store: &Store) -> Vec<JobSpec> {
    let filter = JobFilter {
        group: Some("decl".to_owned()),
        ..JobFilter::default()
    };
    let page = store.list_jobs(&filter, None, 100).await.expect("list");
    page.items.into_iter().map(|v| v.spec).collect()
}

#[tokio::test]
async fn a_declared_job_is_created_at_start_and_runs_without_the_api() {
    let url = shared_redis();
    let prefix = unique_prefix("declared");
    let sched = InProcess::start(&url, &prefix).await;
    let store = Store::new(redis_handle(&url, &prefix));
    let calls = Arc::new(AtomicU32::new(0));

    let w = worker(&url, &prefix, calls.clone(), None);
    wait_for(
        "two runs of the declared job",
        Duration::from_secs(20),
        || {
            let calls = calls.clone();
            async move { (calls.load(Ordering::SeqCst) >= 2).then_some(()) }
        },
    )
    .await;
    w.stop().await;
    let jobs = declared(&store).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].name, "every-second");
    assert_eq!(jobs[0].handler, "every-second");
    assert_eq!(jobs[0].schedule.as_deref(), Some("*/1 * * * * *"));
    assert_eq!(jobs[0].version, 1);

    // The same declaration again: still one job, version untouched, and it runs.
    let before = calls.load(Ordering::SeqCst);
    let w = worker(&url, &prefix, calls.clone(), None);
    wait_for("a run after the restart", Duration::from_secs(20), || {
        let calls = calls.clone();
        async move { (calls.load(Ordering::SeqCst) > before).then_some(()) }
    })
    .await;
    w.stop().await;
    let jobs = declared(&store).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].version, 1,
        "an unchanged declaration bumped the version"
    );

    // A changed declaration (params, timezone) updates the same job.
    let def = JobDef::new("every-second", "*/1 * * * * *")
        .timezone("Europe/Berlin")
        .params(json!({"v": 2}));
    let w = worker(&url, &prefix, calls.clone(), Some(def));
    let jobs = wait_for("the changed declaration", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let jobs = declared(&store).await;
            (jobs.len() == 1 && jobs[0].version == 2).then_some(jobs)
        }
    })
    .await;
    assert_eq!(jobs[0].timezone, "Europe/Berlin");
    assert_eq!(jobs[0].params, json!({"v": 2}));
    w.stop().await;

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
