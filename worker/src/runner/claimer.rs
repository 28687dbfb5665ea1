//! The claimer task: runs that are already in the consumer group's pending list. Every
//! [`RETRY_POLL`] it takes retries whose backoff passed, and every quarter of the reclaim
//! time it also takes entries of dead workers idle past it (`claim.lua`: XCLAIM, and
//! XAUTOCLAIM looped until the cursor returns to `0-0`), then dispatches them. Entries Redis
//! reports deleted while pending are recorded as lost by the script and counted here.
//!
//! Runs of broadcast jobs wait in this executor's own stream, and only it claims them: their
//! due retries (the completer notes when one is due) and, with every new scan, entries of
//! that stream it lost track of.
//!
//! It owns the XAUTOCLAIM cursor and its backoff; it reads `disabled` and the free slots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dotjob_shared::keys::OwnStream;
use dotjob_shared::scripts;
use tracing::{debug, warn};

use super::backoff::Backoff;
use super::delivery::Delivery;
use super::dispatch::{self, BATCH};
use super::outcome::Done;
use super::own;
use super::shared::Shared;

/// How often due retries are looked for.
const RETRY_POLL: Duration = Duration::from_millis(200);

/// Claims until the runner stops.
pub(super) async fn run(shared: Arc<Shared>) {
    // The XAUTOCLAIM scan in progress (`None`: none, the last one went round).
    let mut cursor: Option<String> = None;
    let autoclaim_every = (shared.settings.reclaim_after / 4).max(Duration::from_millis(100));
    let mut last_autoclaim = Instant::now();
    let mut backoff = Backoff::new();
    let mut tick = tokio::time::interval(RETRY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.stop.cancelled() => break,
        }
        if shared.is_disabled() {
            continue;
        }
        let free = shared.slots.available_permits().min(BATCH);
        if free == 0 {
            continue;
        }
        // A scan in progress continues at once; a new one starts every `autoclaim_every`.
        let autoclaim = cursor.is_some() || last_autoclaim.elapsed() >= autoclaim_every;
        if autoclaim && cursor.is_none() {
            last_autoclaim = Instant::now();
        }
        let scan_starts = autoclaim && cursor.is_none();
        match claim_once(&shared, cursor.as_deref(), free, autoclaim, None).await {
            Ok((next, batch)) => {
                backoff.reset();
                if autoclaim {
                    cursor = next;
                }
                if !batch.is_empty() {
                    dispatch::run_batch(&shared, batch).await;
                }
            }
            Err(e) => {
                shared.redis.log_failure("claiming runs", &e);
                backoff.wait(&shared.stop).await;
                continue;
            }
        }
        // The own stream (broadcast runs, claimed by this executor only): when one of its
        // retries is due, and with every new scan of the group stream (entries this worker
        // lost track of, entries deleted under it). It is small: one call scans it whole.
        if shared.take_own_retry_due() || scan_starts {
            let free = shared.slots.available_permits().min(BATCH);
            if free == 0 {
                shared.own_retry_at(Instant::now());
                continue;
            }
            match claim_once(&shared, None, free, scan_starts, Some(&shared.own)).await {
                Ok((_, batch)) if !batch.is_empty() => dispatch::run_batch(&shared, batch).await,
                Ok(_) => {}
                Err(e) => {
                    shared.own_retry_at(Instant::now());
                    shared
                        .redis
                        .log_failure("claiming runs of the own stream", &e);
                }
            }
        }
    }
    debug!("claimer stopped");
}

/// Claims up to `count` entries; returns the next cursor and the runs to dispatch.
/// Malformed entries are acknowledged.
async fn claim_once(
    shared: &Shared,
    cursor: Option<&str>,
    count: usize,
    autoclaim: bool,
    own: Option<&OwnStream>,
) -> dotjob_shared::Result<(Option<String>, Vec<Delivery>)> {
    let claimed = invoke_claim(shared, cursor, count, autoclaim, own).await?;
    if claimed.lost > 0 {
        warn!(group = %shared.group, lost = claimed.lost, "stream entries were deleted while pending; runs recorded as lost");
        metrics::counter!(dotjob_shared::metrics::RUNS_LOST, "group" => shared.group.clone())
            .increment(claimed.lost);
    }
    let mut out = Vec::with_capacity(claimed.entries.len());
    for scripts::Claimed {
        entry,
        deliveries,
        fields,
    } in claimed.entries
    {
        // An own-stream entry carries its mark inside the worker.
        let entry = if own.is_some() {
            own::mark(&entry)
        } else {
            entry
        };
        match Delivery::parse(entry.clone(), deliveries.max(1), &fields) {
            Some(d) => out.push(d),
            None => shared.send(Done::skip(entry, String::new(), String::new())),
        }
    }
    if !out.is_empty() {
        debug!(count = out.len(), "claimed runs for another attempt");
    }
    Ok((claimed.next_cursor, out))
}

/// `claim.lua`: due retries, and (with `autoclaim`) entries idle past the reclaim time.
async fn invoke_claim(
    shared: &Shared,
    cursor: Option<&str>,
    count: usize,
    autoclaim: bool,
    own: Option<&OwnStream>,
) -> dotjob_shared::Result<scripts::ClaimReply> {
    let mut c = shared.redis.conn().await?;
    scripts::Claim {
        consumer: &shared.id,
        reclaim_after_ms: shared.settings.reclaim_after.as_millis() as u64,
        max_entries: count,
        autoclaim,
        cursor,
    }
    .call_on(&mut c, &shared.prefix, own)
    .await
}
