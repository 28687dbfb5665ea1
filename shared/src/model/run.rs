//! Run records (the seeds' job_log): one hash per run, written by the firing script, the
//! worker's start and completion scripts, and read by the admin API.
//!
//! Run ids are derived from what caused the run, so a replay is recognisable:
//! `<job id>-<tick ms>` for a scheduled tick, `<job id>-m<ms>-<n>` for a manual trigger,
//! `<job id>-c<parent run id>` for a child job fired by a parent's success (see
//! [`child_run_id`]), with `-s<k>` appended per shard and `-e<executor>` per executor of a
//! broadcast job. The job id comes first and contains no `-`, so a run id alone finds its
//! job, and through the job index its group.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::model::job::FieldReader;
use crate::time::opt_ms_rfc3339;

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In the stream, not yet started.
    Queued,
    /// A worker is executing it.
    Running,
    /// Finished well.
    Succeeded,
    /// The handler failed (final when no retry is due).
    Failed,
    /// The attempt outlived `timeout_ms` (code 502).
    TimedOut,
    /// Attempts exhausted; copied to the dead letters.
    Dead,
    /// Not run: misfire `skip`, or overlap under `forbid`.
    Skipped,
    /// Cancelled by hand or by `replace`.
    Cancelled,
    /// Its stream entry was deleted while pending.
    Lost,
}

impl RunStatus {
    /// All statuses, for filters and docs.
    pub const ALL: [Self; 9] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Dead,
        Self::Skipped,
        Self::Cancelled,
        Self::Lost,
    ];

    /// The snake_case name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Result code of a run, as in the seeds' job_log.
pub mod code {
    /// Succeeded.
    pub const OK: u16 = 200;
    /// The handler failed.
    pub const FAILED: u16 = 500;
    /// The attempt timed out (FutureTask-style).
    pub const TIMEOUT: u16 = 502;
}

/// One run as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// Run id, derived from its tick: `<job id>-<tick ms>` for a scheduled tick,
    /// `<job id>-m<ms>-<n>` for a manual run, `<job id>-c<parent run id>` for a child job's
    /// run, `-s<k>` appended per shard, `-e<executor>` per executor of a broadcast job.
    pub id: String,
    /// Job it belongs to.
    pub job_id: String,
    /// Job version it was fired with.
    pub job_version: u64,
    /// Group that runs it.
    pub group: String,
    /// Current status.
    pub status: RunStatus,
    /// Attempt number (the stream delivery count); 0 while queued.
    pub attempt: u32,
    /// The tick (scheduled instant); for a manual run, the trigger instant.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub scheduled_at: Option<i64>,
    /// When it entered the stream.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub enqueued_at: Option<i64>,
    /// When the current or last attempt started.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<i64>,
    /// When the last attempt ended.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<i64>,
    /// Duration of the last attempt.
    pub duration_ms: Option<u64>,
    /// Executor that ran the last attempt.
    pub worker: Option<String>,
    /// 200 ok, 500 failed, 502 timed out.
    pub code: Option<u16>,
    /// Handler result (any JSON).
    pub result: Option<Value>,
    /// Error of the last failed attempt.
    pub error: Option<String>,
    /// `schedule`, `manual`, `child` or `requeue`.
    pub trigger: String,
    /// Parameter override given to a manual trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// When the next attempt is due, while a retry is pending.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retry_at: Option<i64>,
    /// Stream entry id (for `XPENDING`/`XRANGE` inspection).
    pub entry: Option<String>,
    /// The scheduler replica and lease epoch that fired it (`<replica>|<epoch>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_by: Option<String>,
    /// Shard index of a sharded job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Number of shards of a sharded job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// This shard's parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_param: Option<Value>,
    /// Run whose success fired this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run: Option<String>,
    /// The executor a run of a broadcast job is bound to (run id `<tick run>-e<executor>`):
    /// only it runs the run, and the run ends `lost` if it stops before finishing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Earlier attempts, oldest first, for runs that failed or were retried or reclaimed
    /// (`attempt`, `status`, `started_at`, `finished_at`, `duration_ms`, `worker`, `code`,
    /// `error`). Empty for a run that succeeded at its first attempt.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub attempts: Vec<Value>,
}

impl Run {
    /// Reads a run from its hash fields. `key` (`<prefix>:{<group>}:run:<run id>`) also
    /// supplies what the record does not store because it is derivable: the run id, the
    /// group, the job id and tick (from the run id), the enqueue instant (from the stream
    /// entry id) and the result code (from the status).
    pub fn from_fields(key: &str, f: &HashMap<String, String>) -> Result<Self> {
        let r = FieldReader { key, f };
        let opt = |k: &str| f.get(k).filter(|v| !v.is_empty());
        let opt_num = |k: &str| opt(k).and_then(|v| v.parse::<i64>().ok());
        let opt_json = |k: &str| opt(k).and_then(|v| serde_json::from_str::<Value>(v).ok());
        let corrupt = |message: &str| crate::Error::Corrupt {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        let id = match opt("id") {
            Some(id) => id.clone(),
            None => crate::keys::parse_run_key(key)
                .map(|(_, id)| id.to_owned())
                .ok_or_else(|| corrupt("not a run key"))?,
        };
        let group = match opt("group") {
            Some(g) => g.clone(),
            None => crate::keys::parse_group_key(key)
                .map(|(g, _)| g.to_owned())
                .ok_or_else(|| corrupt("not a group key"))?,
        };
        let job_id = match opt("job_id") {
            Some(j) => j.clone(),
            None => job_of_run(&id)
                .ok_or_else(|| corrupt("run id names no job"))?
                .to_owned(),
        };
        let shape = RunIdShape::of(&id);
        let entry = opt("entry").cloned();
        let entry_ms = entry
            .as_deref()
            .and_then(|e| e.split('-').next()?.parse::<i64>().ok());
        let status =
            RunStatus::parse(r.str("status")?).ok_or_else(|| corrupt("field status: unknown"))?;
        let job_version = match opt_num("job_version").or_else(|| opt_num("v")) {
            Some(v) => v as u64,
            None => r.num("job_version")?,
        };
        let duration_ms = opt_num("duration_ms").map(|v| v.max(0) as u64);
        // A quick first-attempt success stores its start and duration, not its end.
        let finished_at = opt_num("finished_at").or_else(|| {
            opt_num("started_at")
                .zip(duration_ms)
                .map(|(s, d)| s + d as i64)
        });
        let ran = matches!(
            status,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::TimedOut | RunStatus::Dead
        );
        Ok(Self {
            // A quick first-attempt success does not store its attempt number.
            attempt: opt_num("attempt").unwrap_or(i64::from(ran)) as u32,
            scheduled_at: opt_num("scheduled_at").or(shape.tick),
            enqueued_at: opt_num("enqueued_at").or(entry_ms),
            started_at: opt_num("started_at"),
            finished_at,
            duration_ms,
            worker: opt("worker").cloned(),
            code: opt_num("code").map(|v| v as u16).or(match status {
                RunStatus::Succeeded => Some(code::OK),
                RunStatus::Failed | RunStatus::Dead => Some(code::FAILED),
                RunStatus::TimedOut => Some(code::TIMEOUT),
                _ => None,
            }),
            result: opt_json("result"),
            error: opt("error").cloned(),
            trigger: opt("trigger")
                .cloned()
                .unwrap_or_else(|| if shape.manual { "manual" } else { "schedule" }.to_owned()),
            params: opt_json("params"),
            retry_at: opt_num("retry_at"),
            entry,
            fired_by: opt("fired_by").cloned(),
            shard: opt_num("shard").map(|v| v as u32),
            shards: opt_num("shards").map(|v| v as u32),
            shard_param: opt_json("shard_param"),
            parent_run: opt("parent_run").cloned(),
            executor: opt("executor").cloned(),
            attempts: opt("history")
                .and_then(|h| serde_json::from_str::<Vec<Value>>(h).ok())
                .unwrap_or_default()
                .into_iter()
                .map(instants_as_rfc3339)
                .collect(),
            id,
            job_id,
            job_version,
            group,
            status,
        })
    }
}

/// What a run id says: `<job>-<tick ms>` (scheduled), `<job>-m<ms>-<n>` (by hand) or
/// `<job>-c<parent run id>` (a child job's run, see [`child_run_id`]).
#[derive(Debug, PartialEq, Eq)]
pub struct RunIdShape {
    /// The tick (scheduled) or trigger instant (by hand), in ms.
    pub tick: Option<i64>,
    /// Whether it was enqueued by hand (trigger, requeue, child).
    pub manual: bool,
}

impl RunIdShape {
    /// Reads a run id. A child run (`<job>-c<parent run id>`) has its parent's instant.
    pub fn of(run_id: &str) -> Self {
        let rest = run_id.split_once('-').map_or("", |(_, r)| r);
        if let Some(parent) = rest.strip_prefix('c') {
            return Self {
                tick: Self::of(parent).tick,
                manual: true,
            };
        }
        match rest.strip_prefix('m') {
            Some(m) => Self {
                tick: m.split('-').next().and_then(|t| t.parse().ok()),
                manual: true,
            },
            None => Self {
                tick: rest.split('-').next().and_then(|t| t.parse().ok()),
                manual: false,
            },
        }
    }
}

/// Attempt history stores instants in ms; the API shows RFC 3339 like everywhere else.
fn instants_as_rfc3339(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["started_at", "finished_at"] {
            if let Some(ms) = o.get(k).and_then(Value::as_f64) {
                o.insert(k.to_owned(), Value::String(crate::time::rfc3339(ms as i64)));
            }
        }
    }
    v
}

/// The log line a worker writes when attempt `n` (2 or more) of a run starts: a run's log
/// holds every attempt's lines, attempt 1's before the first marker.
pub fn attempt_marker(n: u32) -> String {
    format!("--- attempt {n} ---")
}

/// The lines of attempt `n` (1-based) of a run's whole log, markers left out.
pub fn attempt_lines(lines: &[String], n: u32) -> Vec<String> {
    let mut current = 1;
    let mut out = Vec::new();
    for l in lines {
        if let Some(k) = l
            .strip_prefix("--- attempt ")
            .and_then(|r| r.strip_suffix(" ---"))
            .and_then(|k| k.parse::<u32>().ok())
        {
            current = k;
        } else if current == n {
            out.push(l.clone());
        }
    }
    out
}

/// Longest child run id that spells its parent out (`<child>-c<parent run id>`); a longer
/// one (a deep chain of children) names its parent by a hash instead.
pub const CHILD_RUN_ID_MAX: usize = 160;

/// The run id of the run of job `child` that the success of `parent_run` fires:
/// `<child>-c<parent run id>`, or `<child>-ch<32 hex digits of the parent's SHA-256>` when
/// that would be longer than [`CHILD_RUN_ID_MAX`]. Derived from the parent, so a parent run
/// again (its worker died after firing the child, before the run was recorded) names the
/// same child run, which `trigger.lua` enqueues only once.
pub fn child_run_id(child: &str, parent_run: &str) -> String {
    let id = format!("{child}-c{parent_run}");
    if id.len() <= CHILD_RUN_ID_MAX {
        return id;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(parent_run.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{child}-ch{hex}")
}

/// The job id part of a run id.
pub fn job_of_run(run_id: &str) -> Option<&str> {
    let job = run_id.split('-').next()?;
    (crate::model::job::valid_job_id(job) && job.len() < run_id.len()).then_some(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_job() {
        assert_eq!(job_of_run("01jabc-1790000000000"), Some("01jabc"));
        assert_eq!(job_of_run("01jabc-m1790000000000-4"), Some("01jabc"));
        assert_eq!(job_of_run("01jabc"), None);
        assert_eq!(job_of_run("../etc-1"), None);
    }

    #[test]
    fn child_run_ids_derive_from_their_parent() {
        assert_eq!(
            child_run_id("02kid", "01abc-1790000000000"),
            "02kid-c01abc-1790000000000"
        );
        assert_eq!(job_of_run("02kid-c01abc-1790000000000"), Some("02kid"));
        // A child run has its parent's instant, through any depth, and counts as by hand.
        let grandchild = child_run_id("03gk", &child_run_id("02kid", "01abc-m1790000000555-4"));
        assert_eq!(grandchild, "03gk-c02kid-c01abc-m1790000000555-4");
        assert_eq!(
            RunIdShape::of(&grandchild),
            RunIdShape {
                tick: Some(1_790_000_000_555),
                manual: true
            }
        );
        assert_eq!(
            RunIdShape::of("02kid-c01abc-1790000000000-s3").tick,
            Some(1_790_000_000_000)
        );
        // A deep chain is named by a hash of its parent: bounded, and still the same each time.
        let long_parent = format!("01abc-{}", "c01abc-".repeat(30));
        let a = child_run_id("02kid", &long_parent);
        assert_eq!(a, child_run_id("02kid", &long_parent));
        assert!(
            a.starts_with("02kid-ch") && a.len() == "02kid-ch".len() + 32,
            "{a}"
        );
        assert_ne!(a, child_run_id("02kid", &format!("{long_parent}x")));
        assert_eq!(RunIdShape::of(&a).tick, None);
    }

    #[test]
    fn lean_records_fill_in_what_they_do_not_store() {
        let f: HashMap<String, String> = [
            ("status", "succeeded"),
            ("v", "3"),
            ("entry", "1790000000123-0"),
            ("started_at", "1790000000200"),
            ("duration_ms", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = Run::from_fields("dotjob:{billing}:run:01abc-1790000000000", &f).unwrap();
        assert_eq!(r.id, "01abc-1790000000000");
        assert_eq!((r.group.as_str(), r.job_id.as_str()), ("billing", "01abc"));
        assert_eq!(r.scheduled_at, Some(1_790_000_000_000));
        assert_eq!(r.enqueued_at, Some(1_790_000_000_123));
        assert_eq!(
            (r.job_version, r.code, r.trigger.as_str()),
            (3, Some(200), "schedule")
        );
        assert_eq!((r.attempt, r.finished_at), (1, Some(1_790_000_000_205)));
        let m = Run::from_fields("dotjob:{g}:run:01abc-m1790000000555-7", &f).unwrap();
        assert_eq!(
            (m.scheduled_at, m.trigger.as_str()),
            (Some(1_790_000_000_555), "manual")
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
