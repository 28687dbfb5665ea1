//! Per-group scheduling leases with fencing: which replica schedules which group.
//!
//! Replicas beat into `<prefix>:schedulers` (a sorted set scored by the Redis clock) every
//! `ttl / 5`; a replica is live while its beat is younger than one `ttl`. Each group belongs
//! to one live replica by rendezvous hashing (the replica with the highest hash of group +
//! replica id), so N replicas share the groups and a join or leave moves only the groups that
//! must move. The chosen replica takes the group's lease (`lease.lua`); the lease is exclusive
//! and carries an epoch that grows with every new holder. `fire.lua` refuses a fencing token
//! whose owner, epoch or expiry is not current, so a replica that lost its lease while paused
//! or partitioned cannot fire.
//!
//! What an idle group costs: a group lease is held for a long *hold* (`HOLD_PER_TTL` lease
//! times) and renewed once per third of it, so a held group costs one short script call a
//! minute, not one a second. Failover stays within about one lease time because liveness
//! comes from the replica's own beat, one command per replica however many groups it holds:
//! - a replica considers its leases its own only while its last beat is younger than one
//!   `ttl` (minus a margin), so it stops firing before anyone may take over;
//! - the replica chosen among the live ones takes a lease whose holder is not live at once
//!   (`LeaseAction::TakeOver` passes the live set to the script), whatever the hold left;
//! - a beat that comes after a lapse re-verifies every lease before firing again.
//!
//! A lease moves to a newly chosen replica when that one asks for it (`want`) and the holder
//! sees the request on its next round (a holder reads the lease every round only for the
//! groups it is no longer chosen for); a replica that died never asks, so a group is never
//! handed to a dead replica. The calls of a round run concurrently on one multiplexed
//! connection (one script call per group, so each touches one Cluster slot).

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dotjob_shared::Redis;
use dotjob_shared::scripts::{Fence, Lease, LeaseAction, LeaseReply};
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A group lease lasts this many lease times (`ttl`) without renewal; it is renewed after a
/// third of that. Liveness does not depend on it (the beat does), so it can be long.
pub const HOLD_PER_TTL: u32 = 36;

/// Lease calls in flight at once in a round.
const CONCURRENT_CALLS: usize = 256;

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
    /// When to renew the hold (held) or look at a lease chosen for another replica (not held).
    due: Option<Instant>,
    /// Woken when we acquire or lose the lease.
    notify: std::sync::Arc<Notify>,
}

/// What the beat task last saw, read by the lease rounds and `holding`.
#[derive(Default)]
struct Beat {
    /// Live replicas (beat within one ttl), this one included.
    live: Vec<String>,
    /// Until when no other replica may consider this one dead (last beat sent + ttl −
    /// margin).
    valid_until: Option<Instant>,
}

/// The lease side of a scheduler replica.
pub struct Leases {
    redis: Option<Redis>,
    id: String,
    ttl: Duration,
    groups: Mutex<HashMap<String, GroupLease>>,
    /// Written by the beat task only.
    beat: Mutex<Beat>,
    /// Wakes the lease round (a new group, a lost lease, a beat after a lapse, live set
    /// changes).
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

/// A fraction in [0, 1) from a group name, to spread the groups' renewals over time.
fn spread(group: &str) -> f64 {
    (weight(group, "") >> 11) as f64 / (1u64 << 53) as f64
}

/// What a round does with one group's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Renew it, or take it (free, expired, holder dead), or ask for it: we are chosen.
    TakeOver,
    /// Renew it and see whether the chosen replica asked for it: we hold it but are not
    /// chosen.
    Yield,
    /// Look whether a lease chosen for another replica was left expired (the backstop).
    Backstop,
}

impl Leases {
    /// Leases for replica `id` with time-to-live `ttl`.
    pub fn new(redis: Redis, id: String, ttl: Duration) -> Self {
        Self {
            redis: Some(redis),
            id,
            ttl,
            groups: Mutex::default(),
            beat: Mutex::default(),
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
            beat: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How long a group lease lasts without renewal.
    pub fn hold(&self) -> Duration {
        self.ttl * HOLD_PER_TTL
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

    /// Whether our last beat still vouches for us.
    fn beat_valid(&self) -> bool {
        self.beat
            .lock()
            .ok()
            .and_then(|b| b.valid_until)
            .is_some_and(|v| Instant::now() < v)
    }

    /// What entitles this replica to fire `group`, or `None` when it must not fire it.
    pub fn holding(&self, group: &str) -> Option<Holding> {
        if self.redis.is_none() {
            return Some(Holding::Unfenced);
        }
        if !self.beat_valid() {
            return None;
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

    /// The groups this replica holds now.
    pub fn held(&self) -> Vec<String> {
        if self.redis.is_some() && !self.beat_valid() {
            return Vec::new();
        }
        let now = Instant::now();
        self.groups
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|(_, l)| {
                        self.redis.is_none()
                            || (l.epoch.is_some() && l.valid_until.is_some_and(|v| now < v))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
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

    /// How long a loop without the lease waits before looking again (it is also woken
    /// when the lease is acquired).
    pub fn held_wait(&self) -> Duration {
        self.ttl
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
            l.due = None;
            l.notify.notify_one();
        }
        self.wake.notify_one();
    }

    /// Beats, renews, acquires and releases until `stop`; then releases everything held.
    pub async fn run(&self, stop: CancellationToken) {
        let Some(redis) = &self.redis else {
            return stop.cancelled().await;
        };
        tokio::join!(self.beat_loop(redis, &stop), self.lease_loop(redis, &stop));
        self.release_all(redis).await;
    }

    /// Beats every `ttl / 5` and keeps the live set.
    async fn beat_loop(&self, redis: &Redis, stop: &CancellationToken) {
        let every = self.ttl / 5;
        loop {
            if let Err(e) = self.beat_once(redis).await {
                redis.log_failure("scheduler heartbeat", &e);
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One beat: the replica's score, stale replicas pruned, the live set read.
    async fn beat_once(&self, redis: &Redis) -> dotjob_shared::Result<()> {
        let keys = redis.keys();
        let sent = Instant::now();
        let mut c = redis.conn().await?;
        let now = dotjob_shared::conn::now_ms(&mut c).await?;
        let ttl_ms = self.ttl.as_millis() as i64;
        let (_, _, mut live): ((), (), Vec<String>) = redis::pipe()
            .zadd(keys.schedulers(), &self.id, now)
            .zrembyscore(keys.schedulers(), "-inf", now - 10 * ttl_ms)
            .zrangebyscore(keys.schedulers(), now - ttl_ms, "+inf")
            .query_async(&mut c)
            .await?;
        live.sort();
        let valid_until = sent + self.ttl.saturating_sub(self.ttl / 10);
        let (lapsed, changed) = {
            let Ok(mut b) = self.beat.lock() else {
                return Ok(());
            };
            let lapsed = b.valid_until.is_some_and(|v| Instant::now() >= v);
            let changed = b.live != live;
            b.live = live;
            b.valid_until = Some(valid_until);
            (lapsed, changed)
        };
        if lapsed {
            // Others may have taken our groups meanwhile: verify every lease before firing.
            warn!("this scheduler's heartbeat lapsed; verifying its group leases again");
            if let Ok(mut g) = self.groups.lock() {
                for l in g.values_mut() {
                    l.valid_until = None;
                    l.due = None;
                }
            }
        }
        if lapsed || changed {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Lease rounds: each takes, renews, hands over or backstops the groups that need it
    /// now, then sleeps until the next one does (or a wake-up).
    async fn lease_loop(&self, redis: &Redis, stop: &CancellationToken) {
        let every = self.ttl / 5;
        loop {
            let next = match self.round(redis).await {
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
                () = stop.cancelled() => return,
            }
        }
    }

    /// Forgets holds whose certainty ran out (Redis unreachable: we cannot renew).
    fn drop_expired(&self) {
        if let Ok(mut g) = self.groups.lock() {
            for (group, l) in g.iter_mut() {
                if l.valid_until.is_none_or(|v| Instant::now() >= v) && l.epoch.is_some() {
                    crate::metrics::lease_changed(group, false);
                    l.epoch = None;
                    l.valid_until = None;
                    l.notify.notify_one();
                }
            }
        }
    }

    /// The groups that need a lease call now, and when the next one will.
    fn plan(&self, live: &[String]) -> (Vec<(String, Step)>, Duration) {
        let now = Instant::now();
        let every = self.ttl / 5;
        let mut next = self.hold() / 3;
        let mut todo = Vec::new();
        let Ok(g) = self.groups.lock() else {
            return (todo, every);
        };
        for (group, l) in g.iter() {
            let mine = chosen(group, live) == Some(self.id.as_str());
            let held = l.epoch.is_some() && l.valid_until.is_some_and(|v| now < v);
            let step = match (mine, held) {
                // Not held and chosen: every round until taken (it is free, its holder dead,
                // or our request waits for the holder's next round).
                (true, false) => Some(Step::TakeOver),
                // Held but no longer chosen: every round, to see the chosen one's request.
                (false, true) => Some(Step::Yield),
                // Renewals due soon go along with this one: fewer, larger rounds.
                (true, true) => l
                    .due
                    .is_none_or(|d| d <= now + self.hold() / 12)
                    .then_some(Step::TakeOver),
                // Not held and chosen for another: at once when new to us (a free lease is
                // taken by whoever comes first, then handed to the chosen one), then once a
                // hold, in case the chosen one never takes it.
                (false, false) => l.due.is_none_or(|d| d <= now).then_some(Step::Backstop),
            };
            match step {
                Some(s) => {
                    todo.push((group.clone(), s));
                    if s != Step::Backstop {
                        next = next.min(every);
                    }
                }
                None => {
                    if let Some(d) = l.due {
                        next = next.min(d.saturating_duration_since(now));
                    }
                }
            }
        }
        (todo, next.max(Duration::from_millis(10)))
    }

    /// One round over the groups that need it; returns how long to sleep.
    async fn round(&self, redis: &Redis) -> dotjob_shared::Result<Duration> {
        let live = match self.beat.lock() {
            Ok(b) if b.valid_until.is_some() => b.live.clone(),
            // No beat yet: nothing to decide.
            _ => return Ok(self.ttl / 5),
        };
        let (todo, next) = self.plan(&live);
        if todo.is_empty() {
            self.gauge();
            return Ok(next);
        }
        let c = redis.conn().await?;
        let mux = c.shared();
        let keys = redis.keys();
        let hold_ms = self.hold().as_millis() as u64;
        let live_ref = &live;
        let results: Vec<(String, Step, Instant, dotjob_shared::Result<LeaseReply>)> =
            futures::stream::iter(todo)
                .map(|(group, step)| {
                    let mut mux = mux.clone();
                    let prefix = keys.group_prefix(&group);
                    async move {
                        let action = match step {
                            Step::TakeOver => LeaseAction::TakeOver { live: live_ref },
                            Step::Yield | Step::Backstop => LeaseAction::Acquire { chosen: false },
                        };
                        let sent = Instant::now();
                        let r = Lease {
                            replica: &self.id,
                            ttl_ms: hold_ms,
                            action,
                        }
                        .call(&mut mux, &prefix)
                        .await;
                        (group, step, sent, r)
                    }
                })
                .buffer_unordered(CONCURRENT_CALLS)
                .collect()
                .await;
        let mut first_error = None;
        let mut handovers = Vec::new();
        for (group, step, sent, r) in results {
            let lease = match r {
                Ok(l) => l,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let choice = chosen(&group, &live);
            if lease.epoch.is_some()
                && step == Step::Yield
                && lease.want.is_some()
                && choice == lease.want.as_deref()
            {
                handovers.push((group, lease.want.unwrap_or_default()));
                continue;
            }
            self.apply(&group, step, sent, &lease);
        }
        for (group, to) in handovers {
            // The replica chosen for this group asked for it: hand it over.
            let mut mux = mux.clone();
            Lease {
                replica: &self.id,
                ttl_ms: hold_ms,
                action: LeaseAction::Release,
            }
            .call(&mut mux, &keys.group_prefix(&group))
            .await?;
            info!(group, to = %to, "handed the group lease to the replica chosen for it");
            let backstop = Instant::now() + self.hold().mul_f64(1.0 + spread(&group));
            self.set(&group, None, None, Some(backstop));
        }
        self.gauge();
        match first_error {
            Some(e) => Err(e),
            None => Ok(next.min(self.ttl / 5)),
        }
    }

    /// Records the answer of one lease call made at `sent`.
    fn apply(&self, group: &str, step: Step, sent: Instant, lease: &LeaseReply) {
        let hold = self.hold();
        if let Some(epoch) = lease.epoch {
            // The script set the expiry to its clock + hold, and ran after `sent`.
            let valid = sent + hold.saturating_sub(self.ttl / 10 + hold / 100);
            let renew = sent + hold.mul_f64((1.0 + spread(group)) / 6.0);
            if !self.is_holder(group) {
                info!(group, epoch, "acquired the group lease");
            }
            self.set(group, Some(epoch), Some(valid), Some(renew));
        } else {
            if self.is_holder(group) {
                warn!(group, holder = %lease.holder, "the group lease is held by another replica");
            }
            debug!(group, holder = %lease.holder, "group held elsewhere");
            // Not ours: look again in a hold (backstop) unless chosen (every round).
            let due = (step == Step::Backstop).then(|| sent + hold.mul_f64(1.0 + spread(group)));
            self.set(group, None, None, due);
        }
    }

    fn gauge(&self) {
        let held = self
            .groups
            .lock()
            .map(|g| g.values().filter(|l| l.epoch.is_some()).count())
            .unwrap_or(0);
        metrics::gauge!("dotjob_scheduler_groups_held").set(held as f64);
    }

    fn set(
        &self,
        group: &str,
        epoch: Option<u64>,
        valid_until: Option<Instant>,
        due: Option<Instant>,
    ) {
        if let Ok(mut g) = self.groups.lock() {
            let l = g.entry(group.to_owned()).or_default();
            let was_valid = l.valid_until.is_some_and(|v| Instant::now() < v);
            let changed = l.epoch != epoch;
            l.epoch = epoch;
            l.valid_until = valid_until;
            l.due = due;
            if changed {
                crate::metrics::lease_changed(group, epoch.is_some());
            }
            if changed || (epoch.is_some() && !was_valid) {
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
        let mux = c.shared();
        let hold_ms = self.hold().as_millis() as u64;
        futures::stream::iter(held)
            .for_each_concurrent(CONCURRENT_CALLS, |group| {
                let mut mux = mux.clone();
                async move {
                    let released = Lease {
                        replica: &self.id,
                        ttl_ms: hold_ms,
                        action: LeaseAction::Release,
                    }
                    .call(&mut mux, &redis.keys().group_prefix(&group))
                    .await;
                    if let Err(e) = released {
                        debug!(group, error = %e, "could not release the group lease; it expires");
                    }
                }
            })
            .await;
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
