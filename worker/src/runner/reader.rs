//! The reader task: new runs from the group stream, and from this executor's own stream
//! (broadcast runs, in the same call). It waits for a free execution slot, then
//! `XREADGROUP … BLOCK` on a connection of its own (a blocking read never shares the
//! multiplexed connection, whose reply timeout is shorter than the block), parses what it
//! gets, hands runs fired ahead to the holder and dispatches the rest.
//!
//! It owns its connection and its backoff; it reads `disabled`, the waiting count and the
//! slots, and writes nothing shared but the in-flight table (through holding and dispatch).

use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::keys::CONSUMER_GROUP;
use tracing::{debug, warn};

use super::backoff::Backoff;
use super::delivery::Delivery;
use super::dispatch::{self, BATCH};
use super::holding;
use super::outcome::Done;
use super::own;
use super::shared::Shared;

/// How long one `XREADGROUP` blocks; also bounds how quickly the reader sees a shutdown.
const BLOCK: Duration = Duration::from_millis(1_000);
/// Most runs held waiting for their tick, per worker; beyond it the reader pauses.
const WAIT_MAX: usize = 20_000;

/// Reads until the runner stops.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut conn: Option<dotjob_shared::conn::Shared> = None;
    let mut backoff = Backoff::new();
    // The own stream and its consumer group exist from the start (a broadcast run may be
    // fired to this executor as soon as its heartbeat is seen).
    ensure_group(&shared).await;
    while !shared.stop.is_cancelled() {
        if shared.is_disabled() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                () = shared.stop.cancelled() => break,
            }
        }
        if shared.waiting.len() >= WAIT_MAX {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                () = shared.stop.cancelled() => break,
            }
        }
        let Some(count) = capacity(&shared, BATCH).await else {
            break;
        };
        let c = match &mut conn {
            Some(c) => c,
            None => match shared.redis.dedicated(BLOCK).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    shared.redis.log_failure("reading the stream", &e);
                    backoff.wait(&shared.stop).await;
                    continue;
                }
            },
        };
        match read(&shared, c, count).await {
            Ok(entries) => {
                backoff.reset();
                if entries.is_empty() {
                    continue;
                }
                let mut batch = Vec::with_capacity(entries.len());
                for e in entries {
                    match Delivery::from_read(e.id.clone(), &e.map) {
                        Some(d) => batch.push(d),
                        None => {
                            warn!(entry = %e.id, "malformed stream entry; acknowledging it");
                            shared.send(Done::skip(e.id, String::new(), String::new()));
                        }
                    }
                }
                let due = holding::hold_for_tick(&shared, batch);
                if !due.is_empty() {
                    dispatch::run_batch(&shared, due).await;
                }
            }
            Err(e) if e.code() == Some("NOGROUP") => ensure_group(&shared).await,
            Err(e) => {
                shared
                    .redis
                    .log_failure("reading the stream (XREADGROUP)", &e.into());
                conn = None;
                backoff.wait(&shared.stop).await;
            }
        }
    }
    debug!("reader stopped");
}

/// One `XREADGROUP` of at most `count` new entries of the group stream and of this
/// executor's own stream (broadcast runs; their ids come back marked, see [`own`]).
async fn read(
    shared: &Shared,
    c: &mut dotjob_shared::conn::Shared,
    count: usize,
) -> redis::RedisResult<Vec<redis::streams::StreamId>> {
    let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg(&shared.id)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&shared.stream)
        .arg(&shared.own.stream)
        .arg(">")
        .arg(">")
        .query_async(c)
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| {
            let own = k.key == shared.own.stream;
            k.ids.into_iter().map(move |mut e| {
                if own {
                    e.id = own::mark(&e.id);
                }
                e
            })
        })
        .collect())
}

/// Waits until at least one execution slot is free; returns how many are (at most `max`).
/// Slots are not reserved: a blocking read must not hold capacity the claimer needs, so
/// entries take their slots when they arrive. `None` once the runner stops.
async fn capacity(shared: &Shared, max: usize) -> Option<usize> {
    if shared.slots.available_permits() == 0 {
        tokio::select! {
            p = shared.slots.acquire() => drop(p.ok()?),
            () = shared.stop.cancelled() => return None,
        }
    }
    Some(shared.slots.available_permits().clamp(1, max))
}

/// (Re)creates the consumer group at the start of the group stream and of the own stream,
/// so nothing fired is skipped.
async fn ensure_group(shared: &Shared) {
    let res: dotjob_shared::Result<()> = async {
        let mut c = shared.redis.conn().await?;
        for stream in [&shared.stream, &shared.own.stream] {
            let r: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await;
            if let Err(e) = r
                && e.code() != Some("BUSYGROUP")
            {
                return Err(e.into());
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        warn!(error = %e, "cannot create the consumer group");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
