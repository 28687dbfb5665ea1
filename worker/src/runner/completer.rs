//! The completer task: records finished attempts in batches. It drains the completion
//! channel (up to [`COMPLETE_BATCH`] at once), records them with one `complete.lua` call
//! (ack, retry or dead-letter; plain first-attempt successes in a compact form first) and
//! gives back runs unfinished at shutdown with one `handback.lua` call, retrying until Redis
//! answers. Only then does it forget the entries in the in-flight table, so the heartbeat
//! keeps them alive until they are recorded.
//!
//! It is the only reader of the completion channel and owns the run counters
//! (`dotjob_runs_total`, retries, dead letters), counted from the script's verdicts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dotjob_shared::keys::OwnStream;
use dotjob_shared::scripts;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::backoff::Backoff;
use super::outcome::{Done, Outcome, counted_status};
use super::own;
use super::shared::Shared;
use crate::metrics::RunCounters;

/// Most attempts recorded by one `complete.lua` call.
const COMPLETE_BATCH: usize = 256;

/// Records what arrives on `rx` until the channel closes (or the task is aborted).
pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Done>) {
    let mut backoff = Backoff::new();
    let never = CancellationToken::new();
    let mut counters = RunCounters::new(&shared.group);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let (handback, record): (Vec<Done>, Vec<Done>) = batch
            .into_iter()
            .partition(|d| d.outcome == Outcome::Handback);
        // A broadcast run is not handed back: no other executor may take it. Its entry stays
        // pending in the own stream, and `retire.lua` records it `lost` as this executor
        // deregisters.
        let (handback, kept): (Vec<Done>, Vec<Done>) =
            handback.into_iter().partition(|d| !own::is_own(&d.entry));
        loop {
            match write(&shared, &record, &handback, &mut counters).await {
                Ok(()) => {
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    shared.redis.log_failure("recording finished runs", &e);
                    backoff.wait(&never).await;
                }
            }
        }
        shared.inflight.forget(
            record
                .iter()
                .chain(&handback)
                .chain(&kept)
                .map(|d| d.entry.as_str()),
        );
    }
}

/// Records attempts and hands runs back.
async fn write(
    shared: &Shared,
    record: &[Done],
    handback: &[Done],
    counters: &mut RunCounters,
) -> dotjob_shared::Result<()> {
    let mut c = shared.redis.conn().await?;
    // Entries of the group stream, then (rarely any) of the own stream: one call each.
    let (own, group): (Vec<&Done>, Vec<&Done>) = record.iter().partition(|d| own::is_own(&d.entry));
    for (part, own) in [(group, None), (own, Some(&shared.own))] {
        if part.is_empty() {
            continue;
        }
        let recorded = invoke_complete(shared, &mut c, &part, own).await?;
        for (d, r) in part.iter().zip(recorded) {
            if let Some(status) = counted_status(r) {
                counters.count(&d.job, status);
            }
            if own.is_some()
                && r == scripts::Recorded::Retry
                && let Some(delay) = d.retry_delay_ms
            {
                shared.own_retry_at(Instant::now() + Duration::from_millis(delay));
            }
        }
    }
    if !handback.is_empty() {
        invoke_handback(shared, &mut c, handback).await?;
        info!(count = handback.len(), "handed unfinished runs back");
    }
    Ok(())
}

/// `complete.lua`: what became of each attempt, in order.
async fn invoke_complete(
    shared: &Shared,
    c: &mut dotjob_shared::conn::Conn,
    record: &[&Done],
    own: Option<&OwnStream>,
) -> dotjob_shared::Result<Vec<scripts::Recorded>> {
    let attempts: Vec<scripts::Attempt<'_>> = record.iter().filter_map(|d| d.attempt()).collect();
    scripts::Complete {
        worker: &shared.id,
        attempts: &attempts,
    }
    .call_on(&mut shared.redis.durable(c), &shared.prefix, own)
    .await
}

/// `handback.lua`: unfinished runs stay pending but look idle far past the reclaim time, so
/// a live worker's next XAUTOCLAIM takes them at once.
async fn invoke_handback(
    shared: &Shared,
    c: &mut dotjob_shared::conn::Conn,
    handback: &[Done],
) -> dotjob_shared::Result<()> {
    let runs: Vec<(&str, &str)> = handback
        .iter()
        .map(|d| (d.entry.as_str(), d.run.as_str()))
        .collect();
    scripts::Handback {
        consumer: &shared.id,
        idle_ms: shared.settings.reclaim_after.as_millis() as u64 * 10,
        runs: &runs,
    }
    .call(c, &shared.prefix)
    .await
}
