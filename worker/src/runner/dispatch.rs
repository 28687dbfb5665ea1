//! Dispatch: turns runs this consumer now owns (from the reader, the holder or the claimer)
//! into executions. It runs inside the calling task: waits for execution slots, loads the
//! job definitions (cache, then one read for the misses), checks attempts after the first
//! (`start.lua`: still startable? poisoned by executors dying under it?) and spawns one
//! execution per run with its slot.
//!
//! It adds runs to the in-flight table and forgets the ones it leaves pending in Redis; it
//! fills the job cache; it sends runs it will not execute to the completer.

use std::sync::Arc;

use dotjob_shared::model::job::ConcurrencyPolicy;
use dotjob_shared::model::run::code;
use dotjob_shared::scripts::{self, StartVerdict};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{Instrument, debug, info_span, warn};

use super::delivery::Delivery;
use super::execution;
use super::outcome::{Done, Outcome};
use super::shared::Shared;
use crate::cache::CachedJob;

/// Most entries read or claimed at once.
pub(super) const BATCH: usize = 128;
/// Started attempts interrupted by their executor's death after which a run is given up
/// (a crash is not the handler's failure, but a run that kills every executor must stop).
const POISON_AFTER: u32 = 5;

/// Runs a batch of entries this consumer now owns: as many at once as there are free slots,
/// waiting for slots for the rest (held and heartbeated meanwhile, never dropped).
pub(super) async fn run_batch(shared: &Arc<Shared>, mut batch: Vec<Delivery>) {
    shared.inflight.hold(&batch);
    while !batch.is_empty() {
        let mut permits = Vec::new();
        match shared.slots.clone().acquire_owned().await {
            Ok(p) => permits.push(p),
            Err(_) => return,
        }
        while permits.len() < batch.len() {
            match shared.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let now: Vec<Delivery> = batch.drain(..permits.len()).collect();
        start(shared, now, permits).await;
    }
}

/// Starts an execution per run of a held batch, one slot each.
async fn start(shared: &Arc<Shared>, batch: Vec<Delivery>, permits: Vec<OwnedSemaphorePermit>) {
    // Definitions first (one read for all the misses): a run whose job was deleted is
    // acknowledged, not run.
    let wanted: Vec<(&str, u64)> = batch.iter().map(|d| (d.job.as_str(), d.version)).collect();
    let defs = match shared
        .cache
        .get_many(&shared.redis, &shared.group, &wanted)
        .await
    {
        Ok(defs) => defs,
        Err(e) => {
            warn!(error = %e, "cannot load job definitions; the runs stay pending for a retry");
            shared
                .inflight
                .forget(batch.iter().map(|d| d.entry.as_str()));
            return;
        }
    };
    let mut ready = Vec::with_capacity(batch.len());
    for d in batch {
        match defs.get(&d.job).cloned().flatten() {
            Some(job) => ready.push((d, job)),
            None => {
                debug!(run = %d.run, job = %d.job, "job deleted; acknowledging its run");
                shared.send(Done::skip(d.entry, d.run, d.job));
            }
        }
    }
    let verdicts = match mark_started(shared, &ready).await {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "cannot mark runs started; they stay pending for a retry");
            shared
                .inflight
                .forget(ready.iter().map(|(d, _)| d.entry.as_str()));
            return;
        }
    };
    let mut permits = permits.into_iter();
    for ((d, job), verdict) in ready.into_iter().zip(verdicts) {
        match verdict {
            StartVerdict::Start => {}
            StartVerdict::Poison => {
                warn!(run = %d.run, attempt = d.attempt, "its executors died during {POISON_AFTER} attempts; giving up on the run");
                shared.send(Done {
                    outcome: Outcome::Failed,
                    attempt: d.attempt,
                    max_attempts: job.spec.max_attempts,
                    retry_delay_ms: None,
                    code: code::FAILED,
                    error: format!(
                        "its executors stopped during {POISON_AFTER} attempts; not running it again"
                    ),
                    guarded: job.spec.concurrency != ConcurrencyPolicy::Allow,
                    ..Done::skip(d.entry, d.run, d.job)
                });
                continue;
            }
            StartVerdict::Gone | StartVerdict::NotStartable(_) => {
                debug!(run = %d.run, ?verdict, "run not startable; acknowledging");
                shared.send(Done::skip(d.entry, d.run, d.job));
                continue;
            }
        }
        let Some(permit) = permits.next() else {
            break;
        };
        let span = info_span!("run", job.id = %d.job, job.group = %shared.group, run.id = %d.run, run.attempt = d.attempt);
        tokio::spawn(execution::run(shared.clone(), d, job, permit).instrument(span));
    }
}

/// Checks and marks runs `running` before they start. Only for attempts after the first
/// (retries and runs reclaimed from dead workers): their history and the poison check need
/// it. A first attempt starts at once; the marker marks it if it lasts.
async fn mark_started(
    shared: &Shared,
    ready: &[(Delivery, Arc<CachedJob>)],
) -> dotjob_shared::Result<Vec<StartVerdict>> {
    if ready.iter().all(|(d, _)| d.attempt <= 1) {
        return Ok(vec![StartVerdict::Start; ready.len()]);
    }
    invoke_start(shared, ready).await
}

/// `start.lua`: one verdict per run.
async fn invoke_start(
    shared: &Shared,
    ready: &[(Delivery, Arc<CachedJob>)],
) -> dotjob_shared::Result<Vec<StartVerdict>> {
    let runs: Vec<(&str, u32)> = ready
        .iter()
        .map(|(d, _)| (d.run.as_str(), d.attempt))
        .collect();
    let mut c = shared.redis.conn().await?;
    let reply = scripts::Start {
        worker: &shared.id,
        poison_after: POISON_AFTER,
        runs: &runs,
    }
    .call(&mut c, &shared.prefix)
    .await?;
    Ok(reply.verdicts)
}
