//! Field names of what the scripts write: run records, stream entries and dead letters.
//!
//! Declared once here; the scripts name them `F_<NAME>` (run record fields), `E_<NAME>`
//! (stream entry fields) and `D_<NAME>` (dead letter fields), and the script loader writes
//! each field in place of its name, so a script never spells a field name itself. The model
//! reads run records by the same names (a test below holds the two together).

/// Fields of a run record (`run:<run id>` hash). A record holds only what cannot be derived:
/// the job and tick come from the run id, the enqueue time from the stream entry id.
pub mod run {
    /// `queued`, `running`, `succeeded`, ... (the run status' snake_case name).
    pub const STATUS: &str = "status";
    /// Job version the run was fired with.
    pub const VERSION: &str = "v";
    /// Its stream entry id.
    pub const ENTRY: &str = "entry";
    /// The fencing token (`<replica>|<epoch>`) of the scheduler that fired it.
    pub const FIRED_BY: &str = "fired_by";
    /// `manual`, `child`, `requeue`, ... (absent for ticks and plain manual runs).
    pub const TRIGGER: &str = "trigger";
    /// Params override (JSON) of a manual run.
    pub const PARAMS: &str = "params";
    /// Run whose success fired this one.
    pub const PARENT_RUN: &str = "parent_run";
    /// Shard index.
    pub const SHARD: &str = "shard";
    /// Shard count.
    pub const SHARDS: &str = "shards";
    /// This shard's parameter (JSON).
    pub const SHARD_PARAM: &str = "shard_param";
    /// Attempt number of the current or last attempt.
    pub const ATTEMPT: &str = "attempt";
    /// Executor of the current or last attempt.
    pub const WORKER: &str = "worker";
    /// When the current or last attempt started (ms).
    pub const STARTED_AT: &str = "started_at";
    /// When it ended (ms); a quick first success stores only its start and duration.
    pub const FINISHED_AT: &str = "finished_at";
    /// Duration of the last attempt (ms).
    pub const DURATION_MS: &str = "duration_ms";
    /// Result code, stored only where the status does not imply it.
    pub const CODE: &str = "code";
    /// Handler result (JSON).
    pub const RESULT: &str = "result";
    /// Error of the last failed attempt, or why it did not run.
    pub const ERROR: &str = "error";
    /// When the next attempt is due (ms), while a retry is pending.
    pub const RETRY_AT: &str = "retry_at";
    /// Earlier attempts (JSON array), kept for runs that did not succeed at once.
    pub const HISTORY: &str = "history";
    /// The executor a broadcast run is bound to: its entry is in that executor's own
    /// stream (`stream:<executor>`), and no other executor may run it.
    pub const EXECUTOR: &str = "executor";

    /// Every field with its Lua name (`F_<name>`).
    pub const ALL: [(&str, &str); 21] = [
        ("STATUS", STATUS),
        ("VERSION", VERSION),
        ("ENTRY", ENTRY),
        ("FIRED_BY", FIRED_BY),
        ("TRIGGER", TRIGGER),
        ("PARAMS", PARAMS),
        ("PARENT_RUN", PARENT_RUN),
        ("SHARD", SHARD),
        ("SHARDS", SHARDS),
        ("SHARD_PARAM", SHARD_PARAM),
        ("ATTEMPT", ATTEMPT),
        ("WORKER", WORKER),
        ("STARTED_AT", STARTED_AT),
        ("FINISHED_AT", FINISHED_AT),
        ("DURATION_MS", DURATION_MS),
        ("CODE", CODE),
        ("RESULT", RESULT),
        ("ERROR", ERROR),
        ("RETRY_AT", RETRY_AT),
        ("HISTORY", HISTORY),
        ("EXECUTOR", EXECUTOR),
    ];
}

/// Fields of a group stream entry: the run id and job version, and where they apply the
/// params override and the shard.
pub mod entry {
    /// The run id.
    pub const RUN: &str = "run";
    /// Job version it was fired with.
    pub const VERSION: &str = "v";
    /// Params override (JSON).
    pub const PARAMS: &str = "p";
    /// Shard index.
    pub const SHARD: &str = "shard";
    /// Shard count.
    pub const SHARDS: &str = "shards";
    /// Shard parameter (JSON).
    pub const SHARD_PARAM: &str = "sp";

    /// Every field with its Lua name (`E_<name>`).
    pub const ALL: [(&str, &str); 6] = [
        ("RUN", RUN),
        ("VERSION", VERSION),
        ("PARAMS", PARAMS),
        ("SHARD", SHARD),
        ("SHARDS", SHARDS),
        ("SHARD_PARAM", SHARD_PARAM),
    ];
}

/// Fields of a dead letter (an entry of the group's `dead` stream).
pub mod dead {
    /// The run that died.
    pub const RUN: &str = "run";
    /// Its job.
    pub const JOB: &str = "job";
    /// Its entry in the group stream.
    pub const ENTRY: &str = "entry";
    /// Attempts made.
    pub const ATTEMPTS: &str = "attempts";
    /// The last error.
    pub const ERROR: &str = "error";
    /// When it died (ms).
    pub const FAILED_AT: &str = "failed_at";

    /// Every field with its Lua name (`D_<name>`).
    pub const ALL: [(&str, &str); 6] = [
        ("RUN", RUN),
        ("JOB", JOB),
        ("ENTRY", ENTRY),
        ("ATTEMPTS", ATTEMPTS),
        ("ERROR", ERROR),
        ("FAILED_AT", FAILED_AT),
    ];
}

/// Every field name a script writes, with its Lua name (`F_`, `E_`, `D_` + name).
/// Fields of alert events (the group's `alert-events` stream), of queued alert deliveries
/// and of the delivery log, named `A_<NAME>` in the scripts.
pub mod alert {
    /// Event kind: `dead`, `failed`, `timed_out` (a run), `skipped` (a tick).
    pub const KIND: &str = "kind";
    /// The run.
    pub const RUN: &str = "run";
    /// The attempt that ended.
    pub const ATTEMPT: &str = "attempt";
    /// Consecutive failed runs of the job, this one included (final failures).
    pub const STREAK: &str = "streak";
    /// The run's error, or why the tick was skipped; a failed delivery's error.
    pub const ERROR: &str = "error";
    /// A delivery's rule id.
    pub const RULE: &str = "rule";
    /// What a delivery is about (the silence subject: a job, run or group).
    pub const SUBJECT: &str = "subject";
    /// A delivery's event (`dead`, `missed`, `no_executor`, ..., `test`).
    pub const EVENT: &str = "event";
    /// A delivery's JSON payload.
    pub const PAYLOAD: &str = "payload";
    /// Attempts made so far (queued delivery), or this attempt's number (log).
    pub const ATTEMPTS: &str = "attempts";
    /// The delivery id (log).
    pub const DELIVERY: &str = "delivery";
    /// `delivered`, `retrying` or `failed` (log).
    pub const STATUS: &str = "status";
    /// The receiver's HTTP status (log; absent when none answered).
    pub const CODE: &str = "code";
    /// The group the alert is about (queued delivery, log).
    pub const GROUP: &str = "group";
    /// The job the alert is about (queued delivery, log).
    pub const JOB: &str = "job";

    /// Every alert field with its Lua name (`A_<name>`).
    pub const ALL: [(&str, &str); 15] = [
        ("KIND", KIND),
        ("RUN", RUN),
        ("ATTEMPT", ATTEMPT),
        ("STREAK", STREAK),
        ("ERROR", ERROR),
        ("RULE", RULE),
        ("SUBJECT", SUBJECT),
        ("EVENT", EVENT),
        ("PAYLOAD", PAYLOAD),
        ("ATTEMPTS", ATTEMPTS),
        ("DELIVERY", DELIVERY),
        ("STATUS", STATUS),
        ("CODE", CODE),
        ("GROUP", GROUP),
        ("JOB", JOB),
    ];
}

pub(crate) fn all() -> impl Iterator<Item = (String, &'static str)> {
    let with = |tag: &'static str, list: &'static [(&'static str, &'static str)]| {
        list.iter().map(move |(n, f)| (format!("{tag}_{n}"), *f))
    };
    with("F", &run::ALL)
        .chain(with("E", &entry::ALL))
        .chain(with("D", &dead::ALL))
        .chain(with("A", &alert::ALL))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::run::{Run, RunStatus};

    #[test]
    fn the_model_reads_run_records_by_these_names() {
        let f: HashMap<String, String> = [
            (run::STATUS, "dead"),
            (run::VERSION, "7"),
            (run::ENTRY, "1790000000123-0"),
            (run::FIRED_BY, "replica|3"),
            (run::TRIGGER, "requeue"),
            (run::PARAMS, r#"{"a":1}"#),
            (run::PARENT_RUN, "01abc-1789999999000"),
            (run::SHARD, "1"),
            (run::SHARDS, "4"),
            (run::SHARD_PARAM, r#""eu""#),
            (run::ATTEMPT, "3"),
            (run::WORKER, "w1"),
            (run::STARTED_AT, "1790000000200"),
            (run::FINISHED_AT, "1790000000300"),
            (run::DURATION_MS, "100"),
            (run::CODE, "502"),
            (run::RESULT, r#"{"ok":true}"#),
            (run::ERROR, "boom"),
            (run::RETRY_AT, "1790000001000"),
            (run::HISTORY, r#"[{"attempt":1}]"#),
            (run::EXECUTOR, "w1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(f.len(), run::ALL.len(), "a field is missing from this test");
        let r = Run::from_fields("dotjob:{g}:run:01abc-m1790000000000-1-s1", &f).unwrap();
        assert_eq!(r.status, RunStatus::Dead);
        assert_eq!(r.job_version, 7);
        assert_eq!(r.entry.as_deref(), Some("1790000000123-0"));
        assert_eq!(r.fired_by.as_deref(), Some("replica|3"));
        assert_eq!(r.trigger, "requeue");
        assert_eq!(r.params, Some(serde_json::json!({"a": 1})));
        assert_eq!(r.parent_run.as_deref(), Some("01abc-1789999999000"));
        assert_eq!((r.shard, r.shards), (Some(1), Some(4)));
        assert_eq!(r.shard_param, Some(serde_json::json!("eu")));
        assert_eq!((r.attempt, r.worker.as_deref()), (3, Some("w1")));
        assert_eq!(
            (r.started_at, r.finished_at),
            (Some(1_790_000_000_200), Some(1_790_000_000_300))
        );
        assert_eq!((r.duration_ms, r.code), (Some(100), Some(502)));
        assert_eq!(r.result, Some(serde_json::json!({"ok": true})));
        assert_eq!(r.error.as_deref(), Some("boom"));
        assert_eq!(r.retry_at, Some(1_790_000_001_000));
        assert_eq!(r.attempts.len(), 1);
        assert_eq!(r.executor.as_deref(), Some("w1"));
    }

    #[test]
    fn every_field_has_its_own_lua_name() {
        let names: std::collections::HashSet<String> = all().map(|(name, _)| name).collect();
        assert_eq!(
            names.len(),
            run::ALL.len() + entry::ALL.len() + dead::ALL.len() + alert::ALL.len()
        );
        assert!(names.contains("F_STATUS") && names.contains("E_SHARD_PARAM"));
    }
}
