//! The heartbeat task: every third of the reclaim time it touches the entries this worker
//! holds, in the group stream and in its own stream (`touch.lua`: resets their idle time so a
//! live worker's long run is never reclaimed, records the beat), refreshes the executor's registration, and takes from the
//! reply whether an admin disabled this executor, which runs were asked to cancel (in case
//! the listener missed it) and a reading of the Redis clock.
//!
//! It is the only writer of `disabled`; it writes the clock estimate and cancels runs
//! through the in-flight table, which it otherwise only reads.

use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::keys::OwnStream;
use dotjob_shared::scripts;
use tracing::{debug, info};

use super::own;
use super::shared::Shared;

/// Most entries touched by one `touch.lua` call.
const TOUCH_CHUNK: usize = 512;

/// Beats until the task is aborted at shutdown (after the in-flight runs are recorded).
pub(super) async fn run(shared: Arc<Shared>) {
    let every = (shared.settings.reclaim_after / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let entries = shared.inflight.entries();
        match beat(&shared, &entries).await {
            Ok(disabled) => {
                let was = shared.set_disabled(disabled);
                if was != disabled {
                    info!(worker = %shared.id, disabled, "executor state changed");
                }
            }
            Err(e) => shared.redis.log_failure("heartbeat", &e),
        }
        let held = shared.waiting.len();
        crate::metrics::worker_runs(&shared.group, held, entries.len().saturating_sub(held));
    }
}

/// A held run: (entry, run id).
type Held = (String, String);

/// Touches in-flight entries and refreshes the registration; returns whether this executor
/// is disabled.
async fn beat(shared: &Shared, entries: &[(String, String)]) -> dotjob_shared::Result<bool> {
    let mut c = shared.redis.conn().await?;
    let mut disabled = false;
    // Entries of the own stream (broadcast runs) are touched there, by calls of their own;
    // the script takes the ids as Redis knows them.
    let (own, entries): (Vec<Held>, Vec<Held>) = entries
        .iter()
        .cloned()
        .partition(|(entry, _)| own::is_own(entry));
    let own: Vec<Held> = own
        .into_iter()
        .map(|(entry, run)| (own::id(&entry).to_owned(), run))
        .collect();
    // Chunked so one call stays short; with nothing held, one call with an empty list.
    let chunks: Vec<&[(String, String)]> = if entries.is_empty() {
        vec![&[]]
    } else {
        entries.chunks(TOUCH_CHUNK).collect()
    };
    let calls = chunks.into_iter().map(|chunk| (chunk, None)).chain(
        own.chunks(TOUCH_CHUNK)
            .map(|chunk| (chunk, Some(&shared.own))),
    );
    for (chunk, own) in calls {
        let t = invoke_touch(shared, &mut c, chunk, own).await?;
        // Taken as read when the reply arrived: a lower bound of the Redis clock, so a run
        // waiting for its tick never starts early (at worst a round trip late).
        shared.clock.record(t.now_ms);
        disabled = t.disabled;
        for run in t.cancel {
            shared.cancel_run(&run);
        }
        if !t.not_ours.is_empty() {
            debug!(
                count = t.not_ours.len(),
                "in-flight entries are no longer ours (reclaimed or finished elsewhere)"
            );
        }
    }
    shared.registry.beat(&mut c).await?;
    Ok(disabled)
}

/// `touch.lua` for some (entry, run) pairs this worker holds.
async fn invoke_touch(
    shared: &Shared,
    c: &mut dotjob_shared::conn::Conn,
    chunk: &[(String, String)],
    own: Option<&OwnStream>,
) -> dotjob_shared::Result<scripts::TouchReply> {
    scripts::Touch {
        consumer: &shared.id,
        held: chunk,
    }
    .call_on(c, &shared.prefix, own)
    .await
}
