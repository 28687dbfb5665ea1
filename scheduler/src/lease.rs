//! Per-group scheduling leases with fencing: which replica schedules which group.
//!
//! Replicas beat into `<prefix>:schedulers` (a sorted set scored by the Redis clock). Each
//! group belongs to one live replica by rendezvous hashing (the replica with the highest
//! hash of group + replica id), so N replicas share the groups and a join or leave moves only
//! the groups that must move. The chosen replica takes the group's lease (`lease.lua`); the
//! lease is exclusive and carries an epoch that grows with every new holder. `fire.lua`
//! refuses a fencing token whose epoch or expiry is not current, so a replica that lost its
//! lease while paused or partitioned cannot fire.
//!
//! A replica renews its leases every `ttl / 5`. When a new replica joins and is chosen for a
//! group, it asks for the lease (`want`) and the holder hands it over at its next renewal; a
//! replica that died never asks, so a group is never handed to a dead replica. When a holder
//! dies, the replica chosen among the survivors wakes exactly when the dead holder's lease
//! expires and takes it: a group moves within about one lease time.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dotjob_shared::Redis;
use dotjob_shared::scripts::{Fence, Lease, LeaseAction};
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// This replica's right to fire a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// No lease is needed (a single scheduler without fencing).
    Unfenced,
    /// The group's lease, which the firing script checks.
    Lease(Fence),
}

impl Holding {
    /// The fence the firing script must check, if any.
    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Self::Unfenced => None,
            Self::Lease(fence) => Some(fence),
        }
    }
}

/// What this replica knows of one group's lease.
#[derive(Default)]
struct GroupLease {
    /// Epoch of the lease we hold, if any.
    epoch: Option<u64>,
    /// Until when our hold is certain, on the local monotonic clock (expiry minus margin).
    valid_until: Option<Instant>,
    /// Woken when we acquire or lose the lease.
    notify: std::sync::Arc<Notify>,
}

/// The lease side of a scheduler replica.
pub struct Leases {
    redis: Option<Redis>,
    id: String,
    ttl: Duration,
    groups: Mutex<HashMap<String, GroupLease>>,
    wake: Notify,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("id", &self.id).finish()
    }
}

/// Rendezvous weight of `replica` for `group`: FNV-1a, then murmur3's finaliser so similar
/// names spread evenly. Stable across processes and builds.
fn weight(group: &str, replica: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(group.as_bytes());
    h.write(&[0xff]);
    h.write(replica.as_bytes());
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The replica chosen for `group` among `live`.
pub fn chosen<'a>(group: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .max_by_key(|r| (weight(group, r), r.as_str()))
        .map(String::as_str)
}

impl Leases {
    /// Leases for replica `id` with time-to-live `ttl`.
    pub fn new(redis: Redis, id: String, ttl: Duration) -> Self {
        Self {
            redis: Some(redis),
            id,
            ttl,
            groups: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Leases that are always held, without fencing (a single scheduler in a unit test).
    pub fn unfenced() -> Self {
        Self {
            redis: None,
            id: "local".to_owned(),
            ttl: Duration::from_secs(3600),
            groups: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts considering `group`.
    pub fn track(&self, group: &str) {
        let new = self
            .groups
            .lock()
            .map(|mut g| {
                let fresh = !g.contains_key(group);
                g.entry(group.to_owned()).or_default();
                fresh
            })
            .unwrap_or(false);
        if new {
            self.wake.notify_one();
        }
    }

    /// What entitles this replica to fire `group`, or `None` when it must not fire it.
    pub fn holding(&self, group: &str) -> Option<Holding> {
        if self.redis.is_none() {
            return Some(Holding::Unfenced);
        }
        let g = self.groups.lock().ok()?;
        let l = g.get(group)?;
        let epoch = l.epoch?;
        l.valid_until.filter(|v| Instant::now() < *v).map(|_| {
            Holding::Lease(Fence {
                holder: self.id.clone(),
                epoch,
            })
        })
    }

    /// Whether this replica holds `group` (it then also does its housekeeping).
    pub fn is_holder(&self, group: &str) -> bool {
        self.holding(group).is_some()
    }

    /// The groups this replica considers, each with whether it holds the lease.
    pub fn states(&self) -> Vec<(String, bool)> {
        let names: Vec<String> = self
            .groups
            .lock()
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        let mut v: Vec<(String, bool)> = names
            .into_iter()
            .map(|n| {
                let held = self.is_holder(&n);
                (n, held)
            })
            .collect();
        v.sort();
        v
    }

    /// How long a loop without the lease waits before looking again.
    pub fn held_wait(&self) -> Duration {
        self.ttl / 5
    }

    /// Resolves when the lease of `group` is acquired or lost.
    pub async fn changed(&self, group: &str) {
        let n = self
            .groups
            .lock()
            .ok()
            .and_then(|g| g.get(group).map(|l| l.notify.clone()));
        match n {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    }

    /// The firing script refused our token: we no longer hold `group`.
    pub fn lost(&self, group: &str) {
        if let Ok(mut g) = self.groups.lock()
            && let Some(l) = g.get_mut(group)
        {
            if l.epoch.is_some() {
                crate::metrics::lease_changed(group, false);
            }
            l.epoch = None;
            l.valid_until = None;
            l.notify.notify_one();
        }
        self.wake.notify_one();
    }

    /// Beats, renews, acquires and releases until `stop`; then releases everything held.
    pub async fn run(&self, stop: CancellationToken) {
        let Some(redis) = &self.redis else {
            return stop.cancelled().await;
        };
        let every = self.ttl / 5;
        loop {
            let next = match self.beat_and_renew(redis).await {
                Ok(next) => next,
                Err(e) => {
                    redis.log_failure("lease round", &e);
                    self.drop_expired();
                    every.min(Duration::from_millis(500))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
        }
        self.release_all(redis).await;
    }

    /// Forgets holds whose certainty ran out (Redis unreachable: we cannot renew).
    fn drop_expired(&self) {
        if let Ok(mut g) = self.groups.lock() {
            for l in g.values_mut() {
                if l.valid_until.is_some_and(|v| Instant::now() >= v) && l.epoch.is_some() {
                    l.epoch = None;
                    l.valid_until = None;
                    l.notify.notify_one();
                }
            }
        }
    }

    /// One round: beat, read the live replicas, then renew/acquire/release each group.
    /// Returns how long to sleep.
    async fn beat_and_renew(&self, redis: &Redis) -> dotjob_shared::Result<Duration> {
        let keys = redis.keys();
        let mut c = redis.conn().await?;
        let now = dotjob_shared::conn::now_ms(&mut c).await?;
        let alive_after = now - (self.ttl / 2).as_millis() as i64;
        let (_, _, live): ((), (), Vec<String>) = redis::pipe()
            .zadd(keys.schedulers(), &self.id, now)
            .zrembyscore(
                keys.schedulers(),
                "-inf",
                now - 10 * self.ttl.as_millis() as i64,
            )
            .zrangebyscore(keys.schedulers(), alive_after, "+inf")
            .query_async(&mut c)
            .await?;
        let groups: Vec<String> = self
            .groups
            .lock()
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        let mut next = self.ttl / 5;
        let ttl_ms = self.ttl.as_millis() as u64;
        for group in groups {
            let choice = chosen(&group, &live);
            let mine = choice == Some(self.id.as_str());
            let held = self.is_holder(&group);
            let prefix = keys.group_prefix(&group);
            let sent = Instant::now();
            let lease = Lease {
                replica: &self.id,
                ttl_ms,
                action: LeaseAction::Acquire { chosen: mine },
            }
            .call(&mut c, &prefix)
            .await?;
            if lease.epoch.is_some()
                && !mine
                && lease.want.is_some()
                && choice == lease.want.as_deref()
            {
                // The replica chosen for this group asked for it: hand it over.
                Lease {
                    replica: &self.id,
                    ttl_ms,
                    action: LeaseAction::Release,
                }
                .call(&mut c, &prefix)
                .await?;
                let to = lease.want.unwrap_or_default();
                info!(group, to = %to, "handed the group lease to the replica chosen for it");
                self.set(&group, None, None);
                continue;
            }
            let (holder, expires) = (lease.holder, lease.expires_ms);
            if let Some(epoch) = lease.epoch {
                // Certain until the expiry, minus the round trip and a safety margin.
                let left = Duration::from_millis((expires - now).max(0) as u64)
                    .saturating_sub(sent.elapsed() + self.ttl / 10);
                if !held {
                    info!(group, epoch, "acquired the group lease");
                }
                self.set(&group, Some(epoch), Some(Instant::now() + left));
            } else {
                if held {
                    warn!(group, holder, "the group lease is held by another replica");
                }
                let grace = if mine { 0 } else { ttl_ms as i64 };
                let wait = Duration::from_millis((expires + grace - now + 1).max(1) as u64);
                debug!(group, holder, ?wait, "group held elsewhere");
                self.set(&group, None, None);
                next = next.min(wait);
            }
        }
        let held = self
            .groups
            .lock()
            .map(|g| g.values().filter(|l| l.epoch.is_some()).count())
            .unwrap_or(0);
        metrics::gauge!("dotjob_scheduler_groups_held").set(held as f64);
        Ok(next)
    }

    fn set(&self, group: &str, epoch: Option<u64>, valid_until: Option<Instant>) {
        if let Ok(mut g) = self.groups.lock() {
            let l = g.entry(group.to_owned()).or_default();
            let changed = l.epoch != epoch;
            l.epoch = epoch;
            l.valid_until = valid_until;
            if changed {
                crate::metrics::lease_changed(group, epoch.is_some());
                l.notify.notify_one();
            }
        }
    }

    async fn release_all(&self, redis: &Redis) {
        let held: Vec<String> = self
            .groups
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|(_, l)| l.epoch.is_some())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let Ok(mut c) = redis.conn().await else {
            return;
        };
        for group in held {
            let released = Lease {
                replica: &self.id,
                ttl_ms: self.ttl.as_millis() as u64,
                action: LeaseAction::Release,
            }
            .call(&mut c, &redis.keys().group_prefix(&group))
            .await;
            if let Err(e) = released {
                debug!(group, error = %e, "could not release the group lease; it expires");
            }
        }
        let _: redis::RedisResult<i64> = c.zrem(redis.keys().schedulers(), &self.id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_over_replicas_and_move_little_when_one_leaves() {
        let live: Vec<String> = (0..3).map(|i| format!("replica-{i}")).collect();
        let groups: Vec<String> = (0..300).map(|i| format!("group-{i}")).collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for g in &groups {
            *count.entry(chosen(g, &live).unwrap()).or_default() += 1;
        }
        assert_eq!(count.len(), 3);
        assert!(count.values().all(|n| (60..=140).contains(n)), "{count:?}");
        // Remove one replica: only its groups move.
        let fewer = vec![live[0].clone(), live[2].clone()];
        for g in &groups {
            let before = chosen(g, &live).unwrap();
            let after = chosen(g, &fewer).unwrap();
            if before != live[1] {
                assert_eq!(before, after, "group {g} moved needlessly");
            }
        }
    }
}
