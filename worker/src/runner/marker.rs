//! The marker task: first attempts start without a write; once one has run for
//! [`MARK_AFTER`] its record is marked `running` (`mark.lua`, in batches), so a quick run
//! goes from queued to final in one write and a long one still shows as running.
//!
//! It reads which attempts are due from the in-flight table and is the only writer of their
//! `marked` flag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dotjob_shared::scripts;
use tracing::debug;

use super::inflight::MarkDue;
use super::shared::Shared;

/// How long a first attempt runs before its record is marked `running`.
const MARK_AFTER: Duration = Duration::from_millis(250);
/// Most runs marked by one `mark.lua` call.
const MARK_CHUNK: usize = 512;

/// Marks until the task is aborted at shutdown.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(MARK_AFTER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = shared.inflight.due_marks(Instant::now(), MARK_AFTER);
        if due.is_empty() {
            continue;
        }
        match invoke_mark(&shared, &due).await {
            Ok(()) => shared.inflight.set_marked(&due),
            Err(e) => debug!(error = %e, "cannot mark runs running yet"),
        }
    }
}

/// `mark.lua` for the due runs, in chunks.
async fn invoke_mark(shared: &Shared, due: &[MarkDue]) -> dotjob_shared::Result<()> {
    let mut c = shared.redis.conn().await?;
    for chunk in due.chunks(MARK_CHUNK) {
        let runs: Vec<(&str, u32, u64)> = chunk
            .iter()
            .map(|d| (d.run.as_str(), d.attempt, d.ran_ms))
            .collect();
        scripts::MarkRunning {
            worker: &shared.id,
            runs: &runs,
        }
        .call(&mut c, &shared.prefix)
        .await?;
    }
    Ok(())
}
