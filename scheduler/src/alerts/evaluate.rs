//! The evaluation task (one per replica): turns group events and group states into queued
//! alerts. It runs beside the firing loops, never in them, so alerting cannot delay a tick.
//!
//! Each round (every `interval`) reads the enabled rules and, in one pipelined round trip,
//! the cursor and newest event of every group whose lease this replica holds; for each group
//! with news it reads the group's alert events after its cursor, queues an alert per
//! (rule, event) that matches, and advances the cursor, fenced by the lease
//! (`alert_cursor.lua`). Every `check_every` it also runs the state checks of its groups
//! (runs running too long, due work and no live executor) and, in every replica, the check
//! for groups nobody holds. Queuing (`alert_enqueue.lua`) de-duplicates by (rule, event) and
//! silences by (rule, subject), so however many replicas evaluate, an event alerts once.
//!
//! Every field of [`Evaluator`] is owned by this task.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dotjob_shared::model::run::{RunIdShape, job_of_run};
use dotjob_shared::scripts::fields::alert as field;
use dotjob_shared::scripts::{AdvanceAlertCursor, CursorReply, Fence};
use dotjob_shared::{Redis, Store};
use redis::AsyncCommands;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::payload::{Alert, human_ms};
use super::rule::{EventRule, Rule};
use super::{AlertSettings, store};
use crate::lease::Leases;

/// Most events read per group per round.
const EVENTS_PER_ROUND: usize = 500;
/// Most in-flight runs looked at per group per check (`long_running`).
const RUNS_PER_CHECK: usize = 2_000;
/// A group has due work when a job is due within this long (or runs wait in its stream).
const DUE_WITHIN_MS: i64 = 60_000;

/// One event of a group's `alert-events` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GroupEvent {
    /// Stream entry id.
    id: String,
    /// When it was written (ms, Redis clock: the entry id).
    at: i64,
    /// `dead`, `failed`, `timed_out`, `skipped` (by `fire.lua`) or `missed` (dropped by a
    /// misfire beyond the threshold: [`super::missed`]).
    kind: String,
    run: String,
    job: String,
    attempt: u64,
    /// Consecutive failed runs of the job (0: not a final failure).
    streak: u64,
    error: String,
}

impl GroupEvent {
    fn parse(id: String, mut f: HashMap<String, String>) -> Option<Self> {
        let mut take = |k: &str| f.remove(k).unwrap_or_default();
        let run = take(field::RUN);
        let job = job_of_run(&run)?.to_owned();
        Some(Self {
            at: id.split('-').next()?.parse().ok()?,
            kind: take(field::KIND),
            attempt: take(field::ATTEMPT).parse().unwrap_or(0),
            streak: take(field::STREAK).parse().unwrap_or(0),
            error: take(field::ERROR),
            run,
            job,
            id,
        })
    }

    /// The event of `rule` this matches, if any.
    fn matches<'r>(&self, rule: &'r Rule, group: &str) -> Option<&'r EventRule> {
        if self.at < rule.created_at || !rule.covers(group, Some(&self.job)) {
            return None;
        }
        let kind = self.kind.as_str();
        rule.find(|e| match e {
            EventRule::Dead => kind == "dead",
            EventRule::TimedOut => kind == "timed_out",
            EventRule::ConsecutiveFailures { count } => {
                self.streak > 0 && self.streak >= u64::from(*count)
            }
            EventRule::Missed => kind == "skipped" || kind == "missed",
            _ => false,
        })
    }
}

/// The evaluation side of one replica.
pub struct Evaluator {
    redis: Redis,
    store: Store,
    leases: Arc<Leases>,
    settings: AlertSettings,
    /// A group unheld for longer than this is alerted on (`no_lease_holder`).
    unheld_grace: Duration,
    /// Job names by id, for alert texts.
    names: lru::LruCache<String, String>,
    /// Groups seen without a lease holder, since when.
    unheld_since: HashMap<String, Instant>,
    /// When the state checks last ran.
    last_check: Option<Instant>,
}

impl Evaluator {
    /// An evaluator; nothing runs until [`Evaluator::run`].
    pub fn new(
        redis: Redis,
        leases: Arc<Leases>,
        settings: AlertSettings,
        lease_ttl: Duration,
    ) -> Self {
        Self {
            store: Store::new(redis.clone()),
            redis,
            leases,
            settings,
            unheld_grace: lease_ttl * 2,
            names: lru::LruCache::new(NonZeroUsize::new(1_024).unwrap_or(NonZeroUsize::MIN)),
            unheld_since: HashMap::new(),
            last_check: None,
        }
    }

    /// Evaluates until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                () = stop.cancelled() => return,
            }
            if let Err(e) = self.round().await {
                debug!(error = %e, "alert evaluation round failed; retrying");
            }
        }
    }

    async fn round(&mut self) -> dotjob_shared::Result<()> {
        let rules: Vec<Rule> = store::all(&self.redis)
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .collect();
        if rules.is_empty() {
            self.unheld_since.clear();
            return Ok(());
        }
        let check = self
            .last_check
            .is_none_or(|t| t.elapsed() >= self.settings.check_every);
        if check {
            self.last_check = Some(Instant::now());
        }
        // The held groups some rule may cover, with their lease.
        let held: Vec<(String, crate::lease::Holding)> = self
            .leases
            .states()
            .into_iter()
            .filter(|(g, held)| *held && rules.iter().any(|r| r.may_cover_group(g)))
            .filter_map(|(g, _)| self.leases.holding(&g).map(|h| (g, h)))
            .collect();
        // One round trip for every group: its cursor and its newest event.
        let news = self.newest_events(&held).await?;
        for ((group, holding), (cursor, newest)) in held.iter().zip(news) {
            let mine: Vec<&Rule> = rules.iter().filter(|r| r.may_cover_group(group)).collect();
            if newest.is_some() && newest != cursor {
                let evaluated = self
                    .group_events(group, cursor, holding.fence(), &mine)
                    .await;
                if let Err(e) = evaluated {
                    debug!(group, error = %e, "cannot evaluate the group's alert events");
                }
            }
            if check && let Err(e) = self.group_checks(group, &mine).await {
                debug!(group, error = %e, "cannot check the group for alerts");
            }
        }
        if check {
            self.lease_checks(&rules).await?;
        }
        Ok(())
    }

    /// The name of job `id` ("" when it is gone).
    async fn job_name(&mut self, group: &str, id: &str) -> String {
        if let Some(n) = self.names.get(id) {
            return n.clone();
        }
        let name: Option<String> = match self.redis.conn().await {
            Ok(mut c) => c
                .hget(self.redis.keys().job(group, id), "name")
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let name = name.unwrap_or_default();
        self.names.put(id.to_owned(), name.clone());
        name
    }

    /// Each group's alert cursor and newest alert event id, in one round trip.
    async fn newest_events(
        &self,
        groups: &[(String, crate::lease::Holding)],
    ) -> dotjob_shared::Result<Vec<(Option<String>, Option<String>)>> {
        if groups.is_empty() {
            return Ok(vec![]);
        }
        let keys = self.redis.keys();
        let mut pipe = redis::pipe();
        for (g, _) in groups {
            pipe.get(keys.alert_cursor(g));
            pipe.cmd("XREVRANGE")
                .arg(keys.alert_events(g))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let mut c = self.redis.conn().await?;
        let flat: Vec<redis::Value> = pipe.query_async(&mut c).await?;
        Ok(flat
            .chunks(2)
            .map(|pair| {
                let read = |i: usize| pair.get(i).cloned().unwrap_or(redis::Value::Nil);
                let cursor = redis::from_redis_value::<Option<String>>(read(0)).unwrap_or(None);
                let newest: Vec<(String, HashMap<String, String>)> =
                    redis::from_redis_value(read(1)).unwrap_or_default();
                (cursor, newest.into_iter().next().map(|e| e.0))
            })
            .collect())
    }

    /// Queues one alert per matching (rule, event) after the group's cursor, then moves it.
    async fn group_events(
        &mut self,
        group: &str,
        cursor: Option<String>,
        fence: Option<&Fence>,
        rules: &[&Rule],
    ) -> dotjob_shared::Result<()> {
        let keys = self.redis.keys().clone();
        let mut c = self.redis.conn().await?;
        let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(keys.alert_events(group))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(EVENTS_PER_ROUND)
            .query_async(&mut c)
            .await?;
        drop(c);
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            return Ok(());
        };
        for (id, fields) in rows {
            let Some(ev) = GroupEvent::parse(id, fields) else {
                continue;
            };
            for rule in rules {
                let Some(which) = ev.matches(rule, group) else {
                    continue;
                };
                let name = self.job_name(group, &ev.job).await;
                let alert = event_alert(rule, group, &ev, which, &name);
                super::enqueue(
                    &self.redis,
                    rule,
                    &ev.job,
                    Some((group, &ev.id)),
                    &alert,
                    true,
                )
                .await?;
            }
        }
        let mut c = self.redis.conn().await?;
        let moved = AdvanceAlertCursor { fence, last: &last }
            .call(&mut c, &keys.group_prefix(group))
            .await?;
        if moved == CursorReply::Fenced {
            debug!(
                group,
                "lost the group lease while evaluating its alert events"
            );
        }
        Ok(())
    }

    /// `no_executor` and `long_running` for a group this replica holds.
    async fn group_checks(&mut self, group: &str, rules: &[&Rule]) -> dotjob_shared::Result<()> {
        let no_exec: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|r| r.covers(group, None) && r.find(|e| *e == EventRule::NoExecutor).is_some())
            .collect();
        let long: Vec<(&Rule, u64)> = rules
            .iter()
            .filter_map(
                |r| match r.find(|e| matches!(e, EventRule::LongRunning { .. })) {
                    Some(EventRule::LongRunning { after_ms }) => Some((*r, *after_ms)),
                    _ => None,
                },
            )
            .collect();
        if no_exec.is_empty() && long.is_empty() {
            return Ok(());
        }
        let keys = self.redis.keys().clone();
        let mut c = self.redis.conn().await?;
        let now = dotjob_shared::conn::now_ms(&mut c).await?;
        if !no_exec.is_empty() {
            let (waiting, due): (u64, u64) = redis::pipe()
                .hlen(keys.active(group))
                .zcount(keys.schedule(group), "-inf", now + DUE_WITHIN_MS)
                .query_async(&mut c)
                .await?;
            if waiting + due > 0 {
                let executors = self.store.list_executors(group).await?;
                if !executors.iter().any(|e| e.alive && !e.disabled) {
                    let what = match (waiting, due) {
                        (0, _) => "jobs due".to_owned(),
                        (w, _) => format!("{w} runs waiting"),
                    };
                    let text = format!(
                        "Group {group} has {what} and no live executor: nothing runs until a worker of the group starts (or is enabled)."
                    );
                    for rule in no_exec {
                        let alert = Alert {
                            event: "no_executor",
                            rule: (rule.id.clone(), rule.name.clone()),
                            group: Some(group.to_owned()),
                            at: now,
                            text: text.clone(),
                            details: json!({"runs_waiting": waiting, "jobs_due": due,
                                "executors": executors.len()}),
                            ..Alert::default()
                        };
                        let subject = format!("group:{group}");
                        super::enqueue(&self.redis, rule, &subject, None, &alert, true).await?;
                    }
                }
            }
        }
        if !long.is_empty() {
            let running = self.running_runs(&mut c, group).await?;
            drop(c);
            for (run, started) in running {
                let Some(job) = job_of_run(&run).map(str::to_owned) else {
                    continue;
                };
                for (rule, after_ms) in &long {
                    let ran = now - started;
                    if ran <= *after_ms as i64 || !rule.covers(group, Some(&job)) {
                        continue;
                    }
                    let name = self.job_name(group, &job).await;
                    let alert = Alert {
                        event: "long_running",
                        rule: (rule.id.clone(), rule.name.clone()),
                        group: Some(group.to_owned()),
                        job: Some((job.clone(), name.clone())),
                        run: Some(run.clone()),
                        slot: RunIdShape::of(&run).tick,
                        at: now,
                        text: format!(
                            "Job {} in group {group}: run {run} has been running for {} (longer than {}).",
                            job_label(&job, &name),
                            human_ms(ran),
                            human_ms(*after_ms as i64)
                        ),
                        details: json!({"running_ms": ran, "after_ms": after_ms}),
                    };
                    super::enqueue(&self.redis, rule, &run, None, &alert, true).await?;
                }
            }
        }
        Ok(())
    }

    /// Runs of `group` marked `running`, with their start (ms), among its unacknowledged
    /// entries.
    async fn running_runs(
        &self,
        c: &mut dotjob_shared::conn::Conn,
        group: &str,
    ) -> dotjob_shared::Result<Vec<(String, i64)>> {
        let keys = self.redis.keys();
        let mut runs: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
                .arg(keys.active(group))
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(c)
                .await?;
            runs.extend(page.chunks(2).filter_map(|kv| kv.first().cloned()));
            cursor = next;
            if cursor == 0 || runs.len() >= RUNS_PER_CHECK {
                break;
            }
        }
        let mut out = Vec::new();
        for chunk in runs.chunks(200) {
            let mut pipe = redis::pipe();
            for r in chunk {
                pipe.cmd("HMGET")
                    .arg(keys.run(group, r))
                    .arg(dotjob_shared::scripts::fields::run::STATUS)
                    .arg(dotjob_shared::scripts::fields::run::STARTED_AT);
            }
            let rows: Vec<(Option<String>, Option<i64>)> = pipe.query_async(c).await?;
            for (r, (status, started)) in chunk.iter().zip(rows) {
                if let (Some("running"), Some(s)) = (status.as_deref(), started) {
                    out.push((r.clone(), s));
                }
            }
        }
        Ok(out)
    }

    /// `no_lease_holder`: groups whose lease nobody has held for longer than the grace.
    /// Every replica checks; the silence key lets one alert through.
    async fn lease_checks(&mut self, rules: &[Rule]) -> dotjob_shared::Result<()> {
        let watching: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.find(|e| *e == EventRule::NoLeaseHolder).is_some())
            .collect();
        if watching.is_empty() {
            self.unheld_since.clear();
            return Ok(());
        }
        let keys = self.redis.keys().clone();
        let mut c = self.redis.conn().await?;
        let groups: Vec<String> = c.smembers(keys.groups()).await?;
        let now = dotjob_shared::conn::now_ms(&mut c).await?;
        let mut pipe = redis::pipe();
        for g in &groups {
            pipe.cmd("HMGET")
                .arg(keys.lease(g))
                .arg("owner")
                .arg("expires");
        }
        let leases: Vec<(Option<String>, Option<i64>)> = if groups.is_empty() {
            vec![]
        } else {
            pipe.query_async(&mut c).await?
        };
        drop(c);
        self.unheld_since = unheld(
            &self.unheld_since,
            groups.iter().cloned().zip(leases),
            now,
            Instant::now(),
        );
        for (g, since) in &self.unheld_since {
            if since.elapsed() < self.unheld_grace {
                continue;
            }
            for rule in watching.iter().filter(|r| r.covers(g, None)) {
                let alert = Alert {
                    event: "no_lease_holder",
                    rule: (rule.id.clone(), rule.name.clone()),
                    group: Some(g.clone()),
                    at: now,
                    text: format!(
                        "No scheduler replica holds the lease of group {g} (for {} at least): its jobs are not fired.",
                        human_ms(since.elapsed().as_millis() as i64)
                    ),
                    details: json!({}),
                    ..Alert::default()
                };
                let subject = format!("group:{g}");
                super::enqueue(&self.redis, rule, &subject, None, &alert, true).await?;
            }
        }
        Ok(())
    }
}

/// The groups whose lease nobody holds at `now_ms` (Redis clock), each with since when this
/// replica has seen it so: the instant of `prev` (the last check) for a group still unheld,
/// `seen_at` for one newly unheld; a group held again drops out.
fn unheld(
    prev: &HashMap<String, Instant>,
    leases: impl Iterator<Item = (String, (Option<String>, Option<i64>))>,
    now_ms: i64,
    seen_at: Instant,
) -> HashMap<String, Instant> {
    leases
        .filter(|(_, (owner, expires))| {
            owner.as_deref().is_none_or(str::is_empty) || expires.unwrap_or(0) < now_ms
        })
        .map(|(g, _)| {
            let since = prev.get(&g).copied().unwrap_or(seen_at);
            (g, since)
        })
        .collect()
}

/// `"name" (id)`, or the id alone when the job is gone.
fn job_label(id: &str, name: &str) -> String {
    if name.is_empty() {
        id.to_owned()
    } else {
        format!("\"{name}\" ({id})")
    }
}

/// The alert for event `ev` of `group` matching `which` of `rule`.
fn event_alert(rule: &Rule, group: &str, ev: &GroupEvent, which: &EventRule, name: &str) -> Alert {
    let job = job_label(&ev.job, name);
    let slot = RunIdShape::of(&ev.run).tick;
    let err = if ev.error.is_empty() {
        String::new()
    } else {
        format!(": {}", ev.error)
    };
    let text = match which {
        EventRule::Dead => format!(
            "Job {job} in group {group}: run {} is dead after {} attempts{err}",
            ev.run, ev.attempt
        ),
        EventRule::TimedOut => format!(
            "Job {job} in group {group}: run {} timed out (attempt {}){err}",
            ev.run, ev.attempt
        ),
        EventRule::ConsecutiveFailures { .. } => format!(
            "Job {job} in group {group} failed {} runs in a row; the last, {}, ended {}{err}",
            ev.streak, ev.run, ev.kind
        ),
        _ => format!(
            "Job {job} in group {group} missed its slot {}{err}",
            slot.map_or_else(|| "?".to_owned(), dotjob_shared::time::rfc3339)
        ),
    };
    Alert {
        event: which.name(),
        rule: (rule.id.clone(), rule.name.clone()),
        group: Some(group.to_owned()),
        job: Some((ev.job.clone(), name.to_owned())),
        run: Some(ev.run.clone()),
        slot,
        at: ev.at,
        text,
        details: json!({"status": ev.kind, "attempt": ev.attempt, "streak": ev.streak,
            "error": ev.error}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rule::Target;

    fn rule(scope: &str, events: Vec<EventRule>) -> Rule {
        Rule {
            id: "r".into(),
            name: "n".into(),
            scope: scope.into(),
            events,
            target: Target::Slack {
                url: "https://x/".into(),
            },
            silence_ms: 1_000,
            enabled: true,
            version: 1,
            created_at: 100,
            updated_at: 100,
        }
    }

    fn event(kind: &str, streak: u64, at: i64) -> GroupEvent {
        let f: HashMap<String, String> = [
            (field::KIND, kind.to_owned()),
            (field::RUN, "01job-1790000000000".to_owned()),
            (field::ATTEMPT, "3".to_owned()),
            (field::STREAK, streak.to_string()),
            (field::ERROR, "boom".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        GroupEvent::parse(format!("{at}-0"), f).unwrap()
    }

    #[test]
    fn a_group_is_unheld_from_when_first_seen_so_until_held_again() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let lease = |g: &str, owner: &str, expires: i64| {
            (g.to_owned(), (Some(owner.to_owned()), Some(expires)))
        };
        let first = unheld(
            &HashMap::new(),
            [
                lease("free", "", 0),
                lease("held", "r1", 2_000),
                lease("lapsed", "r1", 500),
            ]
            .into_iter(),
            1_000,
            t0,
        );
        assert_eq!(first.len(), 2);
        assert_eq!((first["free"], first["lapsed"]), (t0, t0));
        // Still free: since the first sighting; taken again: gone.
        let second = unheld(
            &first,
            [
                lease("free", "", 0),
                lease("lapsed", "r2", 9_000),
                ("new".to_owned(), (None, None)),
            ]
            .into_iter(),
            1_000,
            t1,
        );
        assert_eq!(second.len(), 2);
        assert_eq!((second["free"], second["new"]), (t0, t1));
    }

    #[test]
    fn events_match_the_rules_that_ask_for_them() {
        let dead = rule("global", vec![EventRule::Dead]);
        assert!(event("dead", 1, 200).matches(&dead, "g").is_some());
        assert!(event("failed", 1, 200).matches(&dead, "g").is_none());
        assert!(
            event("dead", 1, 50).matches(&dead, "g").is_none(),
            "older than the rule"
        );
        let three = rule(
            "job:01job",
            vec![EventRule::ConsecutiveFailures { count: 3 }],
        );
        assert!(event("failed", 2, 200).matches(&three, "g").is_none());
        assert!(event("failed", 3, 200).matches(&three, "g").is_some());
        assert!(event("timed_out", 0, 200).matches(&three, "g").is_none());
        let other_job = rule("job:02job", vec![EventRule::Dead]);
        assert!(event("dead", 1, 200).matches(&other_job, "g").is_none());
        let missed = rule("group:g", vec![EventRule::Missed]);
        let ev = event("skipped", 0, 200);
        let which = ev.matches(&missed, "g").unwrap();
        assert!(ev.matches(&missed, "h").is_none());
        let a = event_alert(&missed, "g", &ev, which, "nightly");
        assert_eq!(a.event, "missed");
        assert_eq!(a.slot, Some(1_790_000_000_000));
        assert!(a.text.contains("2026-09-21T"), "{}", a.text);
        assert!(a.text.contains("\"nightly\""), "{}", a.text);
    }
}
