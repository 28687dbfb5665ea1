//! The in-flight marker of a job with a concurrency policy (`<P>:{g}:inflight`, job id → its
//! run in flight) is released on every path a run leaves flight by: a queued run cancelled,
//! a run recorded `lost` because its stream entry was deleted while pending, and a run
//! completed. A marker left behind names a run that no longer runs.

use std::time::Duration;

use dotjob_shared::model::job::{ConcurrencyPolicy, JobInput, JobSpec, Nullable};
use dotjob_shared::model::run::{Run, RunStatus};
use dotjob_shared::store::RunFilter;
use dotjob_shared::{Error, Redis, Store};
use dotjob_tests::{InProcess, delete_prefix, redis_handle, shared_redis, unique_prefix, wait_for};
use redis::AsyncCommands;

use crate::common::TestWorker;

/// The run the group's in-flight hash names for `job`.
async fn marker(redis: &Redis, job: &JobSpec) -> Option<String> {
    let mut c = redis.conn().await.unwrap();
    c.hget(redis.keys().inflight(&job.group), &job.id)
        .await
        .unwrap()
}

/// A job's runs, newest first.
async fn runs_of(store: &Store, job: &JobSpec) -> Vec<Run> {
    store
        .list_runs(&job.id, &RunFilter::default(), None, 100)
        .await
        .unwrap()
        .items
}

async fn forbid_job(store: &Store, group: &str, schedule: Option<&str>) -> JobSpec {
    store
        .create_job(JobInput {
            name: Some("one at a time".into()),
            group: Some(group.into()),
            handler: Some("noop".into()),
            schedule: schedule.map_or(Nullable::Absent, |s| Nullable::Value(s.into())),
            concurrency: Some(ConcurrencyPolicy::Forbid),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn cancelling_a_queued_run_releases_its_jobs_marker() {
    let url = shared_redis();
    let prefix = unique_prefix("inflight-cancel");
    let redis = redis_handle(&url, &prefix);
    let store = Store::new(redis.clone());
    let job = forbid_job(&store, "ifc", None).await;
    let first = store.trigger(&job.id, None, "manual", None).await.unwrap();
    assert_eq!(marker(&redis, &job).await.as_deref(), Some(first.as_str()));
    let refused = store.trigger(&job.id, None, "manual", None).await;
    assert!(
        matches!(refused, Err(Error::Conflict(_))),
        "forbid let a second run in: {refused:?}"
    );

    let cancelled = store.cancel_run(&first).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(
        marker(&redis, &job).await,
        None,
        "the cancelled run still holds its job"
    );
    let second = store
        .trigger(&job.id, None, "manual", None)
        .await
        .expect("a trigger after the cancel is refused");
    assert_eq!(marker(&redis, &job).await.as_deref(), Some(second.as_str()));
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_forbid_job_fires_at_its_next_tick_once_its_queued_run_is_cancelled() {
    let url = shared_redis();
    let prefix = unique_prefix("inflight-tick");
    let sched = InProcess::start(&url, &prefix).await;
    let redis = redis_handle(&url, &prefix);
    let store = Store::new(redis.clone());
    // No worker: the first run stays queued, so the following ticks are skipped.
    let job = forbid_job(&store, "ift", Some("*/1 * * * * *")).await;
    let (store, job) = (&store, &job);
    let first = wait_for(
        "a tick skipped behind the queued run",
        Duration::from_secs(10),
        || async move {
            let runs = runs_of(store, job).await;
            let queued = runs.iter().find(|r| r.status == RunStatus::Queued)?;
            runs.iter()
                .any(|r| r.status == RunStatus::Skipped)
                .then(|| queued.id.clone())
        },
    )
    .await;
    assert_eq!(marker(&redis, job).await.as_deref(), Some(first.as_str()));

    let cancelled = store.cancel_run(&first).await.unwrap();
    let cancelled_at = cancelled.finished_at.unwrap();
    assert_eq!(
        marker(&redis, job).await,
        None,
        "the cancelled run still holds its job"
    );
    let next = wait_for(
        "a tick fired after the cancel",
        Duration::from_secs(10),
        || async move {
            runs_of(store, job).await.into_iter().find(|r| {
                r.scheduled_at.is_some_and(|t| t > cancelled_at) && r.status != RunStatus::Skipped
            })
        },
    )
    .await;
    assert_eq!(next.status, RunStatus::Queued, "{next:?}");
    assert_eq!(marker(&redis, job).await.as_deref(), Some(next.id.as_str()));
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_run_lost_with_its_stream_entry_releases_its_jobs_marker() {
    let url = shared_redis();
    let prefix = unique_prefix("inflight-lost");
    let redis = redis_handle(&url, &prefix);
    let store = Store::new(redis.clone());
    let job = forbid_job(&store, "ifl", None).await;
    let first = store.trigger(&job.id, None, "manual", None).await.unwrap();
    let entry = store.get_run(&first).await.unwrap().entry.unwrap();

    // A consumer that dies holding the entry, then the entry is deleted under it.
    let stream = redis.keys().stream(&job.group);
    let mut c = redis.conn().await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(dotjob_shared::keys::CONSUMER_GROUP)
        .arg("gone-worker")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    let deleted: u64 = c.xdel(&stream, &[&entry]).await.unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(marker(&redis, &job).await.as_deref(), Some(first.as_str()));

    // A live worker's claimer finds the entry idle past its lease and deleted: lost.
    let worker = TestWorker::start(&url, &prefix, &job.group);
    let (store, first_ref) = (&store, &first);
    let lost = wait_for(
        "the run recorded lost",
        Duration::from_secs(15),
        || async move {
            let run = store.get_run(first_ref).await.unwrap();
            (run.status == RunStatus::Lost).then_some(run)
        },
    )
    .await;
    assert!(lost.error.unwrap_or_default().contains(&entry));
    assert_eq!(
        marker(&redis, &job).await,
        None,
        "the lost run still holds its job"
    );

    // The job runs again, and its completion releases the marker too.
    let second = store
        .trigger(&job.id, None, "manual", None)
        .await
        .expect("a trigger after the loss is refused");
    let second = &second;
    let done = wait_for(
        "the next run to succeed",
        Duration::from_secs(15),
        || async move {
            let run = store.get_run(second).await.unwrap();
            (run.status == RunStatus::Succeeded).then_some(run)
        },
    )
    .await;
    assert_eq!(done.attempt, 1);
    assert_eq!(marker(&redis, &job).await, None);
    worker.stop().await;
    delete_prefix(&url, &prefix).await;
}
