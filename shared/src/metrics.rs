//! The catalogue of dotjob's Prometheus metrics: every family's name, its HELP text
//! ([`describe`], called once when a process installs its recorder) and the label helpers
//! the scheduler and the worker share.
//!
//! Units are base units (seconds, counts). Labels are bounded: `group`, `status`, `kind`,
//! `state`, `change`, `route` take a handful of values; `job` (the job id) takes one value
//! per job and can be turned off with `DOTJOB_METRICS_JOB_LABELS=false` for fleets with
//! very many jobs. Nothing here touches Redis: values come from data the callers already have.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Ticks fired into a group's stream, by `group` and `kind` (`schedule` by the scheduler,
/// `manual` triggers and dead letters `requeue`d through the API, `child` jobs by workers).
pub const TICKS_FIRED: &str = "dotjob_ticks_fired_total";
/// Seconds from a tick to its enqueue (0 for ticks fired ahead), by `group`.
pub const FIRE_LAG: &str = "dotjob_fire_lag_seconds";
/// Seconds from a tick to its handler's start, by `group`.
pub const START_LAG: &str = "dotjob_start_lag_seconds";
/// Runs that reached a final status, by `group`, `job`, `status`.
pub const RUNS: &str = "dotjob_runs_total";
/// Attempt duration, by `group`, `job`.
pub const RUN_DURATION: &str = "dotjob_run_duration_seconds";
/// Failed or timed-out attempts scheduled for a retry, by `group`, `job`.
pub const RETRIES: &str = "dotjob_run_retries_total";
/// Runs moved to the dead-letter list, by `group`, `job`.
pub const DEAD_LETTERS: &str = "dotjob_dead_letters_total";
/// Entries trimmed from a stream before any worker finished them, by `group`.
pub const RUNS_LOST: &str = "dotjob_runs_lost_total";
/// A worker's runs by `group` and `state` (`held`: waiting for its tick, `executing`).
pub const WORKER_RUNS: &str = "dotjob_worker_runs";
/// Entries in a group's stream, by `group`.
pub const STREAM_LENGTH: &str = "dotjob_stream_length";
/// Entries delivered and not acknowledged, by `group`.
pub const STREAM_PENDING: &str = "dotjob_stream_pending";
/// Entries not yet delivered to any worker, by `group`.
pub const STREAM_LAG: &str = "dotjob_stream_lag";
/// Age of the oldest pending entry, by `group`.
pub const STREAM_OLDEST_PENDING: &str = "dotjob_stream_oldest_pending_age_seconds";
/// Registered executors by `group` and `state` (`live`, `disabled`).
pub const EXECUTORS: &str = "dotjob_executors";
/// Groups whose lease this scheduler holds.
pub const GROUPS_HELD: &str = "dotjob_scheduler_groups_held";
/// 1 when this scheduler holds the `group` lease, else 0.
pub const LEASE_HELD: &str = "dotjob_lease_held";
/// Lease changes by `group` and `change` (`acquired`, `lost`).
pub const LEASE_CHANGES: &str = "dotjob_lease_changes_total";
/// Fire calls refused because the lease moved meanwhile, by `group`.
pub const FIRE_FENCED: &str = "dotjob_fire_fenced_total";
/// Scheduling passes that failed, by `group`.
pub const PASS_ERRORS: &str = "dotjob_schedule_pass_errors_total";
/// Redis commands or connections that failed, by `kind` (`connect`, `command`, `oom`).
pub const REDIS_ERRORS: &str = "dotjob_redis_errors_total";
/// Times Redis came back after being unreachable.
pub const REDIS_RECONNECTS: &str = "dotjob_redis_reconnects_total";
/// Firings and completions whose `WAIT` (the durable setting) came back with fewer
/// replicas than asked for.
pub const REDIS_WAIT_SHORT: &str = "dotjob_redis_wait_short_total";
/// Round trip of a Redis probe (`TIME` or `PING`).
pub const REDIS_ROUNDTRIP: &str = "dotjob_redis_roundtrip_seconds";
/// Admin API requests by `route` (the matched path, never the raw URL), `method`, `status`.
pub const HTTP_REQUESTS: &str = "dotjob_http_requests_total";
/// Alerts a rule matched, by `event` and `result` (`queued`, `silenced`, `seen`: already
/// taken by another evaluation).
pub const ALERTS: &str = "dotjob_alerts_total";
/// Alert delivery attempts by `result` (`delivered`, `retrying`, `failed`).
pub const ALERTS_SENT: &str = "dotjob_alerts_sent_total";

/// Every family with its HELP text, in the order [`describe`] registers them.
pub const FAMILIES: &[(&str, &str)] = &[
    (
        TICKS_FIRED,
        "Ticks fired into a group's stream, by trigger kind.",
    ),
    (
        FIRE_LAG,
        "Seconds from a tick to its enqueue (0 when fired ahead).",
    ),
    (START_LAG, "Seconds from a tick to its handler's start."),
    (RUNS, "Runs that reached a final status."),
    (RUN_DURATION, "Duration of one attempt, in seconds."),
    (
        RETRIES,
        "Failed or timed-out attempts scheduled for a retry.",
    ),
    (DEAD_LETTERS, "Runs moved to the dead-letter list."),
    (
        RUNS_LOST,
        "Stream entries trimmed before a worker finished them.",
    ),
    (
        WORKER_RUNS,
        "Runs a worker holds, waiting for their tick (held) or executing.",
    ),
    (STREAM_LENGTH, "Entries in the group's stream."),
    (
        STREAM_PENDING,
        "Entries delivered to a worker and not acknowledged.",
    ),
    (STREAM_LAG, "Entries not yet delivered to any worker."),
    (
        STREAM_OLDEST_PENDING,
        "Age of the oldest pending entry, in seconds.",
    ),
    (EXECUTORS, "Registered executors, live or disabled."),
    (GROUPS_HELD, "Groups whose lease this scheduler holds."),
    (LEASE_HELD, "1 when this scheduler holds the group's lease."),
    (LEASE_CHANGES, "Group lease acquisitions and losses."),
    (
        FIRE_FENCED,
        "Fire calls refused because the group lease had moved.",
    ),
    (PASS_ERRORS, "Scheduling passes that failed."),
    (
        REDIS_ERRORS,
        "Failed Redis connections and commands, by kind.",
    ),
    (
        REDIS_RECONNECTS,
        "Times Redis answered again after being unreachable.",
    ),
    (
        REDIS_WAIT_SHORT,
        "Firings and completions whose WAIT got fewer replicas than asked.",
    ),
    (REDIS_ROUNDTRIP, "Round trip of a Redis probe, in seconds."),
    (
        HTTP_REQUESTS,
        "Admin API requests by matched route, method and status.",
    ),
    (
        ALERTS,
        "Alerts a rule matched, by event and result (queued, silenced, seen).",
    ),
    (
        ALERTS_SENT,
        "Alert delivery attempts by result (delivered, retrying, failed).",
    ),
];

/// Registers the HELP text (and unit) of every family with the installed recorder.
pub fn describe() {
    for &(name, help) in FAMILIES {
        if name.ends_with("_total") {
            describe_counter!(name, Unit::Count, help);
        } else if name.ends_with("_seconds") && name != STREAM_OLDEST_PENDING {
            describe_histogram!(name, Unit::Seconds, help);
        } else if name == STREAM_OLDEST_PENDING {
            describe_gauge!(name, Unit::Seconds, help);
        } else {
            describe_gauge!(name, help);
        }
    }
}

/// Whether metrics carry a `job` label (`DOTJOB_METRICS_JOB_LABELS`, default on): one
/// series per job and status; off for fleets with many thousands of jobs.
pub fn job_labels() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("DOTJOB_METRICS_JOB_LABELS")
            .map(|v| parse_flag(&v))
            .unwrap_or(true)
    })
}

/// `false`, `0`, `no`, `off` (any case) turn a flag off; anything else leaves it on.
fn parse_flag(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off"
    )
}

/// The labels of a per-run family: `group`, then `job` unless job labels are off, then
/// `extra`.
pub fn run_labels(
    group: &str,
    job: &str,
    extra: &[(&'static str, &'static str)],
) -> Vec<metrics::Label> {
    let mut l = vec![metrics::Label::new("group", group.to_owned())];
    if job_labels() {
        l.push(metrics::Label::new("job", job.to_owned()));
    }
    l.extend(extra.iter().map(|&(k, v)| metrics::Label::new(k, v)));
    l
}

/// Counts a failed Redis call of `kind` (`oom` when Redis answered out of memory).
pub fn redis_error(e: &crate::Error) {
    let kind = if e.is_oom() { "oom" } else { "command" };
    metrics::counter!(REDIS_ERRORS, "kind" => kind).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_and_described_once() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        for (name, help) in FAMILIES {
            assert!(name.starts_with("dotjob_"), "{name}");
            assert!(!help.is_empty(), "{name}");
        }
    }

    #[test]
    fn flags_turn_off_only_with_a_no() {
        for off in ["false", "0", "NO", " off "] {
            assert!(!parse_flag(off), "{off}");
        }
        for on in ["true", "1", "yes", ""] {
            assert!(parse_flag(on), "{on}");
        }
    }
}
