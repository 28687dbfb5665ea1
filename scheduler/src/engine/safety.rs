//! The safety re-read: correctness never depends on a wake-up hint (pub/sub, or this
//! replica's API). Every `schedule_reread` this task reads the earliest score of each group
//! this replica holds — one `ZRANGE schedule 0 0 WITHSCORES` per group, all in flight at
//! once on one multiplexed connection (one key each, so each goes to its group's Cluster
//! slot) — and wakes the loops of the groups whose earliest score is before the one their
//! loop sleeps towards (a job written while the hint was lost). An idle group costs one
//! command per re-read here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use tracing::{debug, info};

use super::Engine;

/// A group and its earliest (member, score), if it schedules anything.
type First = (String, redis::RedisResult<Vec<(String, f64)>>);

/// Reads in flight at once.
const CONCURRENT_READS: usize = 512;

impl Engine {
    pub(super) async fn safety_loop(self: Arc<Self>) {
        let every = self.settings.schedule_reread;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.stop.cancelled() => return,
            }
            match self.reread().await {
                Ok(0) => {}
                Ok(woken) => info!(
                    woken,
                    "the safety re-read found groups due earlier than their loops knew"
                ),
                Err(e) => debug!(error = %e, "safety re-read failed; next time"),
            }
        }
    }

    /// One re-read over the held groups; returns how many loops it woke.
    pub(super) async fn reread(&self) -> dotjob_shared::Result<usize> {
        let held = self.leases.held();
        if held.is_empty() {
            return Ok(0);
        }
        let c = self.redis.conn().await?;
        let mux = c.shared();
        let keys = self.redis.keys();
        let firsts: Vec<First> = futures::stream::iter(held)
            .map(|group| {
                let mut mux = mux.clone();
                let key = keys.schedule(&group);
                async move {
                    let r = redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES")
                        .query_async(&mut mux)
                        .await;
                    (group, r)
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        let mut woken = 0;
        for (group, r) in firsts {
            let Some(score) = r?.first().map(|(_, s)| *s as i64) else {
                continue;
            };
            let slot = self.wakers.lock().ok().and_then(|w| w.get(&group).cloned());
            if let Some(slot) = slot
                && score < slot.next_score.load(Ordering::Relaxed)
            {
                debug!(group, score, "woken by the safety re-read");
                slot.notify.notify_one();
                woken += 1;
            }
        }
        Ok(woken)
    }
}
