//! The one place that names Redis keys, and reads them back.
//!
//! Every key of a group carries the group as a Redis Cluster hash tag (`{billing}`), so that
//! a group's schedule, stream, job hashes, run records and lease live in one slot and one Lua
//! script can touch all of them. The Lua scripts receive the group prefix
//! (`<prefix>:{<group>}:`) as `KEYS[1]` and name each [`suffix`] below by a name of
//! [`lua_names`], which the script loader replaces with the suffix: Rust and Lua build each
//! key from the same constant and no script spells a key name itself.

/// The consumer group every worker of a group reads the group stream through.
pub const CONSUMER_GROUP: &str = "workers";

/// Key suffixes under a group prefix. The Lua scripts name each `K_<NAME>` (see
/// `lua_names` in this module).
pub mod suffix {
    /// Hash: one job definition (`job:<id>`).
    pub const JOB: &str = "job:";
    /// Sorted set: ids of the group's jobs (all score 0, ordered by id).
    pub const JOBS: &str = "jobs";
    /// Sorted set: job id → next fire instant (ms, Redis clock).
    pub const SCHEDULE: &str = "schedule";
    /// Stream: runs waiting for or held by a worker.
    pub const STREAM: &str = "stream";
    /// Stream: dead letters (runs whose attempts were exhausted).
    pub const DEAD: &str = "dead";
    /// Hash: one run record (`run:<run id>`).
    pub const RUN: &str = "run:";
    /// Sorted set: a job's runs (`runs:<job id>`), run id → scheduled instant.
    pub const RUNS: &str = "runs:";
    /// Sorted set: every run of the group (`group-runs`), run id → scheduled instant; kept
    /// exactly in step with the per-job indexes by the scripts that write those.
    pub const GROUP_RUNS: &str = "group-runs";
    /// List: log lines of a run (`log:<run id>`).
    pub const LOG: &str = "log:";
    /// Hash: run id → its stream entry id, for every entry not yet acknowledged.
    pub const ACTIVE: &str = "active";
    /// Hash: run id → reason, for cancel requests its executor has not acted on yet.
    pub const CANCEL: &str = "cancel";
    /// Sorted set: stream entry id → instant its retry is due.
    pub const RETRY: &str = "retry";
    /// Hash: the group's scheduling lease (owner, epoch, expires).
    pub const LEASE: &str = "lease";
    /// Hash: executor id → registration JSON.
    pub const EXECUTORS: &str = "executors";
    /// Sorted set: executor id → last heartbeat (ms, Redis clock).
    pub const HEARTBEATS: &str = "heartbeats";
    /// Set: disabled executor ids.
    pub const DISABLED: &str = "disabled";
    /// Hash: job id → run id of the run in flight (concurrency policies).
    pub const INFLIGHT: &str = "inflight";
    /// String: counter for manual-trigger run ids.
    pub const SEQ: &str = "seq";
    /// String: set (to the Redis time, ms) once `group-runs` was backfilled from the job
    /// run indexes, for runs recorded before `group-runs` existed (`backfill.lua`).
    pub const BACKFILLED: &str = "backfilled";
    /// String: run id answered to a trigger's idempotency key
    /// (`idem:<job id>:<key>`, expires after the idempotency window; `trigger.lua`).
    pub const IDEM: &str = "idem:";
    /// Set: indexes of the shards of one tick that succeeded (`shards-ok:<base run id>`),
    /// for a sharded job with children: the shard completing it fires them
    /// (`shard_done.lua`; expires a week after its last change).
    pub const SHARDS_OK: &str = "shards-ok:";
    /// Sorted set: the job table's last-status index (`last`), every job of the group →
    /// the code of its newest run's status (`LastStatus::code`, 0 = no run); kept exactly
    /// in step by every script that adds, removes or changes a job's newest run.
    pub const LAST: &str = "last";
    /// String: set (to the Redis time, ms) once `last` was backfilled for every job of the
    /// group (`backfill_last.lua`); until then the job table scans instead.
    pub const LAST_BACKFILLED: &str = "last-backfilled";
    /// Stream: one executor's own runs (`stream:<executor>`), those of broadcast jobs; read
    /// through the consumer group `workers` by that executor only.
    pub const EXECUTOR_STREAM: &str = "stream:";
    /// Sorted set: entries of one executor's own stream waiting for a retry
    /// (`retry:<executor>`), entry id → instant it is due.
    pub const EXECUTOR_RETRY: &str = "retry:";

    /// Every suffix with its Lua name (`K_<name>`).
    pub const ALL: [(&str, &str); 25] = [
        ("JOB", JOB),
        ("JOBS", JOBS),
        ("SCHEDULE", SCHEDULE),
        ("STREAM", STREAM),
        ("DEAD", DEAD),
        ("RUN", RUN),
        ("RUNS", RUNS),
        ("GROUP_RUNS", GROUP_RUNS),
        ("LOG", LOG),
        ("ACTIVE", ACTIVE),
        ("CANCEL", CANCEL),
        ("RETRY", RETRY),
        ("LEASE", LEASE),
        ("EXECUTORS", EXECUTORS),
        ("HEARTBEATS", HEARTBEATS),
        ("DISABLED", DISABLED),
        ("INFLIGHT", INFLIGHT),
        ("SEQ", SEQ),
        ("BACKFILLED", BACKFILLED),
        ("IDEM", IDEM),
        ("SHARDS_OK", SHARDS_OK),
        ("LAST", LAST),
        ("LAST_BACKFILLED", LAST_BACKFILLED),
        ("EXECUTOR_STREAM", EXECUTOR_STREAM),
        ("EXECUTOR_RETRY", EXECUTOR_RETRY),
    ];
}

/// Key suffixes of alerting, kept apart from [`suffix`]. Three are group keys (under the
/// group prefix, so the scripts that end runs and fire ticks write them in the group's
/// slot); the rest live under the alerts prefix `<prefix>:{~alerts}:` (a hash tag no group
/// can have: `~` is not allowed in group names), so each alert script touches one slot.
/// The Lua scripts name each `K_<NAME>`.
pub mod alert_suffix {
    /// Group stream: alert events (runs dead, failed, timed out; ticks skipped), capped.
    pub const EVENTS: &str = "alert-events";
    /// Group string: id of the last alert event evaluated (advanced under the lease).
    pub const CURSOR: &str = "alert-cursor";
    /// Group hash: job id → consecutive failed runs (deleted on a success).
    pub const STREAKS: &str = "fail-streaks";
    /// Hash: rule id → rule JSON (alerts prefix).
    pub const RULES: &str = "rules";
    /// Sorted set: delivery id → when its next attempt is due (ms, Redis clock).
    pub const QUEUE: &str = "queue";
    /// Hash: one queued delivery (`delivery:<id>`).
    pub const DELIVERY: &str = "delivery:";
    /// Stream: every delivery attempt, capped.
    pub const DELIVERIES: &str = "deliveries";
    /// String with a TTL: a rule is silent for a subject (`silence:<rule>:<subject>`).
    pub const SILENCE: &str = "silence:";
    /// String with a TTL: an event already taken for a rule (`seen:<rule>:<group>:<event>`).
    pub const SEEN: &str = "seen:";

    /// Every alert suffix with its Lua name (`K_<name>`).
    pub const ALL: [(&str, &str); 9] = [
        ("ALERT_EVENTS", EVENTS),
        ("ALERT_CURSOR", CURSOR),
        ("FAIL_STREAKS", STREAKS),
        ("ALERT_RULES", RULES),
        ("ALERT_QUEUE", QUEUE),
        ("ALERT_DELIVERY", DELIVERY),
        ("ALERT_DELIVERIES", DELIVERIES),
        ("ALERT_SILENCE", SILENCE),
        ("ALERT_SEEN", SEEN),
    ];
}

/// The names the Lua scripts use for key material, with their values: each key suffix as
/// `K_<NAME>` (a script names a group key `P .. K_STREAM` or `P .. K_RUN .. id`, `P` being
/// the group prefix, `KEYS[1]`) and the consumer group as `CONSUMER_GROUP`. The script
/// loader writes each value in place of its name.
pub fn lua_names() -> impl Iterator<Item = (String, &'static str)> {
    suffix::ALL
        .iter()
        .chain(alert_suffix::ALL.iter())
        .map(|(name, suffix)| (format!("K_{name}"), *suffix))
        .chain([("CONSUMER_GROUP".to_owned(), CONSUMER_GROUP)])
}

/// Splits a group key (`<prefix>:{<group>}:<rest>`) into its group and the rest.
pub fn parse_group_key(key: &str) -> Option<(&str, &str)> {
    let (_, tagged) = key.split_once(":{")?;
    let (group, rest) = tagged.split_once("}:")?;
    (!group.is_empty()).then_some((group, rest))
}

/// The group and run id of a run record's key (`<prefix>:{<group>}:run:<run id>`).
pub fn parse_run_key(key: &str) -> Option<(&str, &str)> {
    let (group, rest) = parse_group_key(key)?;
    let run = rest.strip_prefix(suffix::RUN)?;
    (!run.is_empty()).then_some((group, run))
}

/// The keys of one executor's own stream, where the runs of broadcast jobs meant for it
/// alone wait: the stream and its retry set. The scripts that read or acknowledge entries
/// (`complete.lua`, `claim.lua`, `touch.lua`) take them as `KEYS[2]` (and `KEYS[3]`) to work
/// on it instead of the group stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnStream {
    /// `stream:<executor>`.
    pub stream: String,
    /// `retry:<executor>`.
    pub retry: String,
}

/// Builds key names for one key prefix (`DOTJOB_PREFIX`).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `dotjob`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Set of every group that has or had a job.
    pub fn groups(&self) -> String {
        format!("{}:groups", self.prefix)
    }

    /// Hash: job id → group, to find a job (and its runs) from its id alone.
    pub fn job_index(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Sorted set of every job id (score 0, lexical order = creation order).
    pub fn job_ids(&self) -> String {
        format!("{}:job-ids", self.prefix)
    }

    /// Pub/sub channel for job changes and run cancellations.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Stream: the admin API's audit trail (one entry per admin write).
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// `<prefix>:{~alerts}:`, the prefix of the alert rules, delivery queue and delivery
    /// log (`KEYS[1]` of the alert delivery scripts).
    pub fn alerts_prefix(&self) -> String {
        format!("{}:{{~alerts}}:", self.prefix)
    }

    /// Hash: alert rule id → rule JSON.
    pub fn alert_rules(&self) -> String {
        format!("{}{}", self.alerts_prefix(), alert_suffix::RULES)
    }

    /// Stream: every alert delivery attempt.
    pub fn alert_deliveries(&self) -> String {
        format!("{}{}", self.alerts_prefix(), alert_suffix::DELIVERIES)
    }

    /// Sorted set: queued alert deliveries by due instant.
    pub fn alert_queue(&self) -> String {
        format!("{}{}", self.alerts_prefix(), alert_suffix::QUEUE)
    }

    /// Hash: one queued alert delivery.
    pub fn alert_delivery(&self, id: &str) -> String {
        format!("{}{}{id}", self.alerts_prefix(), alert_suffix::DELIVERY)
    }

    /// Hash: scheduler replica id → last heartbeat (ms), used to balance leases.
    pub fn schedulers(&self) -> String {
        format!("{}:schedulers", self.prefix)
    }

    /// `<prefix>:{<group>}:`, the prefix of every key of a group (`KEYS[1]` of the scripts).
    pub fn group_prefix(&self, group: &str) -> String {
        format!("{}:{{{group}}}:", self.prefix)
    }

    fn g(&self, group: &str, suffix: &str) -> String {
        let mut k = self.group_prefix(group);
        k.push_str(suffix);
        k
    }

    /// Hash of one job definition.
    pub fn job(&self, group: &str, id: &str) -> String {
        self.g(group, &format!("{}{id}", suffix::JOB))
    }

    /// Sorted set of the group's job ids.
    pub fn group_jobs(&self, group: &str) -> String {
        self.g(group, suffix::JOBS)
    }

    /// Sorted set of next fire instants.
    pub fn schedule(&self, group: &str) -> String {
        self.g(group, suffix::SCHEDULE)
    }

    /// The group's run stream.
    pub fn stream(&self, group: &str) -> String {
        self.g(group, suffix::STREAM)
    }

    /// The group's dead-letter stream.
    pub fn dead(&self, group: &str) -> String {
        self.g(group, suffix::DEAD)
    }

    /// Hash of one run record.
    pub fn run(&self, group: &str, run_id: &str) -> String {
        self.g(group, &format!("{}{run_id}", suffix::RUN))
    }

    /// Sorted set of a job's runs.
    pub fn job_runs(&self, group: &str, job_id: &str) -> String {
        self.g(group, &format!("{}{job_id}", suffix::RUNS))
    }

    /// Sorted set of every run of a group (run id → scheduled instant).
    pub fn group_runs(&self, group: &str) -> String {
        self.g(group, suffix::GROUP_RUNS)
    }

    /// List of a run's log lines.
    pub fn run_log(&self, group: &str, run_id: &str) -> String {
        self.g(group, &format!("{}{run_id}", suffix::LOG))
    }

    /// Hash of unacknowledged entries → run ids.
    pub fn active(&self, group: &str) -> String {
        self.g(group, suffix::ACTIVE)
    }

    /// Sorted set of entries waiting for a retry.
    pub fn retry(&self, group: &str) -> String {
        self.g(group, suffix::RETRY)
    }

    /// The group's scheduling lease.
    pub fn lease(&self, group: &str) -> String {
        self.g(group, suffix::LEASE)
    }

    /// Executor registrations.
    pub fn executors(&self, group: &str) -> String {
        self.g(group, suffix::EXECUTORS)
    }

    /// Executor heartbeats.
    pub fn heartbeats(&self, group: &str) -> String {
        self.g(group, suffix::HEARTBEATS)
    }

    /// Disabled executors.
    pub fn disabled(&self, group: &str) -> String {
        self.g(group, suffix::DISABLED)
    }

    /// Runs in flight per job.
    pub fn inflight(&self, group: &str) -> String {
        self.g(group, suffix::INFLIGHT)
    }

    /// Cancel requests not acted on yet.
    pub fn cancel(&self, group: &str) -> String {
        self.g(group, suffix::CANCEL)
    }

    /// Counter of manual-trigger run ids.
    pub fn seq(&self, group: &str) -> String {
        self.g(group, suffix::SEQ)
    }

    /// One executor's own stream (runs of broadcast jobs meant for it alone).
    pub fn executor_stream(&self, group: &str, executor: &str) -> String {
        self.g(group, &format!("{}{executor}", suffix::EXECUTOR_STREAM))
    }

    /// Retries waiting on one executor's own stream.
    pub fn executor_retry(&self, group: &str, executor: &str) -> String {
        self.g(group, &format!("{}{executor}", suffix::EXECUTOR_RETRY))
    }

    /// The own stream of an executor and its retry set.
    pub fn own_stream(&self, group: &str, executor: &str) -> OwnStream {
        OwnStream {
            stream: self.executor_stream(group, executor),
            retry: self.executor_retry(group, executor),
        }
    }

    /// Stream of a group's alert events.
    pub fn alert_events(&self, group: &str) -> String {
        self.g(group, alert_suffix::EVENTS)
    }

    /// Id of the last alert event of a group evaluated.
    pub fn alert_cursor(&self, group: &str) -> String {
        self.g(group, alert_suffix::CURSOR)
    }

    /// Consecutive failed runs per job of a group.
    pub fn fail_streaks(&self, group: &str) -> String {
        self.g(group, alert_suffix::STREAKS)
    }

    /// Marker: the group's run index was backfilled from its job run indexes.
    pub fn backfilled(&self, group: &str) -> String {
        self.g(group, suffix::BACKFILLED)
    }

    /// The run id a trigger of `job_id` with idempotency key `key` answered.
    pub fn idempotency(&self, group: &str, job_id: &str, key: &str) -> String {
        self.g(group, &format!("{}{job_id}:{key}", suffix::IDEM))
    }

    /// The succeeded shards of a sharded tick (`base_run`: the run id without `-s<k>`).
    pub fn shards_ok(&self, group: &str, base_run: &str) -> String {
        self.g(group, &format!("{}{base_run}", suffix::SHARDS_OK))
    }

    /// Sorted set: job id → code of its newest run's status (the job table's index).
    pub fn last_status(&self, group: &str) -> String {
        self.g(group, suffix::LAST)
    }

    /// Marker: the group's last-status index was backfilled.
    pub fn last_backfilled(&self, group: &str) -> String {
        self.g(group, suffix::LAST_BACKFILLED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_share_one_hash_tag() {
        let k = Keys::new("dotjob");
        assert_eq!(k.group_prefix("billing"), "dotjob:{billing}:");
        assert_eq!(k.job("billing", "01abc"), "dotjob:{billing}:job:01abc");
        assert_eq!(k.stream("billing"), "dotjob:{billing}:stream");
        assert_eq!(k.run("billing", "01abc-5"), "dotjob:{billing}:run:01abc-5");
        assert_eq!(
            k.executor_stream("billing", "h-1-ab"),
            "dotjob:{billing}:stream:h-1-ab"
        );
        assert_eq!(
            k.executor_retry("billing", "h-1-ab"),
            "dotjob:{billing}:retry:h-1-ab"
        );
        for key in [
            k.schedule("g"),
            k.dead("g"),
            k.lease("g"),
            k.job_runs("g", "x"),
            k.group_runs("g"),
        ] {
            assert!(key.contains("{g}"), "{key}");
        }
    }

    #[test]
    fn keys_read_back_into_group_and_run() {
        let k = Keys::new("dotjob");
        let run = k.run("billing", "01abc-m17-3-s1");
        assert_eq!(parse_run_key(&run), Some(("billing", "01abc-m17-3-s1")));
        assert_eq!(
            parse_group_key(&k.inflight("g")),
            Some(("g", suffix::INFLIGHT))
        );
        assert_eq!(parse_run_key(&k.run_log("billing", "01abc-5")), None);
        assert_eq!(parse_run_key(&k.job_index()), None);
        assert_eq!(parse_group_key("dotjob:{}:run:x"), None);
    }

    #[test]
    fn every_suffix_has_its_own_lua_name() {
        let names: std::collections::HashMap<String, &str> = lua_names().collect();
        assert_eq!(
            names.len(),
            suffix::ALL.len() + alert_suffix::ALL.len() + 1,
            "two names share a Lua name"
        );
        assert_eq!(names["K_RUN"], "run:");
        assert_eq!(names["K_INFLIGHT"], "inflight");
        assert_eq!(names["CONSUMER_GROUP"], "workers");
    }
}
