//! The holder task: runs fired ahead of their tick wait here until it comes. Just before
//! the tick it re-checks them (`recheck.lua`: recalled by a pause or reschedule? did the job
//! change?), then dispatches them a moment early; each execution waits for the exact
//! instant on the Redis clock itself, so at the tick only timers fire.
//!
//! The reader puts runs in ([`hold_for_tick`]); only this task takes them out. Held runs are
//! in the in-flight table from arrival, so the heartbeat keeps their entries alive. At
//! shutdown what still waits is handed back.

use std::sync::Arc;

use dotjob_shared::model::run::RunStatus;
use dotjob_shared::scripts;
use tracing::{debug, warn};

use super::delivery::Delivery;
use super::dispatch;
use super::outcome::Done;
use super::shared::Shared;
use super::waiting::split_due;

/// Runs fired ahead are re-checked this long (ms) before their tick (recalled? changed?).
/// `save_job.lua` recalls only ticks more than 250 ms away, well beyond this lead, so a run
/// that passed its re-check is never recalled under it.
const RECHECK_LEAD: i64 = 20;

/// Sorts a read batch: runs whose tick has come are returned to go out now, runs fired
/// ahead are held until their tick.
pub(super) fn hold_for_tick(shared: &Shared, batch: Vec<Delivery>) -> Vec<Delivery> {
    let Some(now) = shared.clock.now() else {
        return batch;
    };
    let (due, later) = split_due(batch, now);
    if !later.is_empty() {
        shared.inflight.hold(&later);
        shared.waiting.add(later);
    }
    due
}

/// Starts held runs at their tick until the runner stops, then hands back what is left.
pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        let Some(first) = shared.waiting.first_tick() else {
            tokio::select! {
                () = shared.waiting.changed() => continue,
                () = shared.stop.cancelled() => break,
            }
        };
        let now = shared.clock.now().unwrap_or(first);
        if first - now > RECHECK_LEAD {
            let wake = shared.clock.instant_of(first - RECHECK_LEAD);
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                () = shared.waiting.changed() => {}
                () = shared.stop.cancelled() => break,
            }
            continue;
        }
        let batch = shared.waiting.take_until(now + RECHECK_LEAD);
        // Dispatched now, a moment early: each execution waits for its instant itself.
        let batch = recheck(&shared, batch).await;
        if !batch.is_empty() {
            dispatch::run_batch(&shared, batch).await;
        }
    }
    // Shutting down: what waits for its tick is handed back.
    for d in shared.waiting.take_all() {
        shared.send(Done::handback(d.entry, d.run, d.job));
    }
}

/// Drops recalled runs and raises the version of runs whose job changed since they were
/// fired, so the definition they start with is the current one. On a Redis error the runs
/// start as fired.
async fn recheck(shared: &Shared, batch: Vec<Delivery>) -> Vec<Delivery> {
    if batch.is_empty() {
        return batch;
    }
    let Ok(checked) = invoke_recheck(shared, &batch).await else {
        warn!("cannot re-check runs fired ahead; starting them as fired");
        return batch;
    };
    // A fresh reading just before these runs' tick sharpens the instant they start at.
    shared.clock.record(checked.now_ms);
    let (keep, recalled) = apply_checks(batch, &checked.runs);
    for (d, status) in recalled {
        debug!(run = %d.run, ?status, "run recalled before its tick");
        shared.send(Done::skip(d.entry, d.run, d.job));
    }
    keep
}

/// Applies `recheck.lua`'s checks: runs still `queued` are kept, their version raised to the
/// job's current one; the others were recalled (returned with their status, `None` when
/// their record is gone).
fn apply_checks(
    batch: Vec<Delivery>,
    checks: &[scripts::RunCheck],
) -> (Vec<Delivery>, Vec<(Delivery, Option<RunStatus>)>) {
    let mut keep = Vec::with_capacity(batch.len());
    let mut recalled = Vec::new();
    for (mut d, check) in batch.into_iter().zip(checks) {
        if check.status != Some(RunStatus::Queued) {
            recalled.push((d, check.status));
            continue;
        }
        if let Some(v) = check.job_version {
            d.version = d.version.max(v);
        }
        keep.push(d);
    }
    (keep, recalled)
}

/// `recheck.lua`: the Redis clock, then each run's status and its job's version.
async fn invoke_recheck(
    shared: &Shared,
    batch: &[Delivery],
) -> dotjob_shared::Result<scripts::RecheckReply> {
    let runs: Vec<(&str, &str)> = batch
        .iter()
        .map(|d| (d.run.as_str(), d.job.as_str()))
        .collect();
    let mut c = shared.redis.conn().await?;
    scripts::Recheck { runs: &runs }
        .call(&mut c, &shared.prefix)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(run: &str, version: u64) -> Delivery {
        Delivery::sample(run, 0, version)
    }

    #[test]
    fn queued_runs_stay_with_the_newest_version_and_recalled_runs_leave() {
        let check = |status, job_version| scripts::RunCheck {
            status: Some(status),
            job_version,
        };
        let checks = [
            check(RunStatus::Queued, Some(5)),
            check(RunStatus::Cancelled, Some(5)),
            check(RunStatus::Queued, Some(2)),
            check(RunStatus::Queued, None),
        ];
        let batch = vec![fired("a", 3), fired("b", 3), fired("c", 4), fired("d", 4)];
        let (keep, recalled) = apply_checks(batch, &checks);
        let kept: Vec<(&str, u64)> = keep.iter().map(|d| (d.run.as_str(), d.version)).collect();
        // `a` takes the job's newer version; `c` keeps its own, newer than the job's reply.
        assert_eq!(kept, [("a", 5), ("c", 4), ("d", 4)]);
        assert_eq!(recalled.len(), 1);
        assert_eq!(
            (recalled[0].0.run.as_str(), recalled[0].1),
            ("b", Some(RunStatus::Cancelled))
        );
    }
}
