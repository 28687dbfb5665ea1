//! The rules that keep bad input out (invariant 9): one check per field or concern, each
//! refusing with an [`Error::Invalid`] that names the field. [`super::JobInput::into_spec`]
//! runs them in a fixed order, so the first broken field of a request is the one reported.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde_json::Value;

use super::limits;
use super::policy::{Backoff, ConcurrencyPolicy, Routing};
use crate::error::{Error, Result};
use crate::schedule::{Schedule, parse_timezone};

fn check_name_chars(field: &str, v: &str, max: usize, extra: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c) || extra.contains(c))
    {
        return Err(Error::invalid(
            field,
            format!("only letters, digits and `_-.{extra}` are allowed"),
        ));
    }
    Ok(())
}

/// Checks a group name: 1–64 of `[A-Za-z0-9_.-]` (no braces: it is a Redis hash tag).
pub fn validate_group(group: &str) -> Result<()> {
    check_name_chars("group", group, limits::GROUP_MAX, "")
}

/// Checks a job id's shape (lowercase ULID-like: `[0-9a-z]{1,32}`).
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Refuses a field the server assigns (`id`, `version`, `created_at`, `updated_at`).
pub(super) fn server_assigned(field: &str, given: Option<&Value>) -> Result<()> {
    match given {
        Some(_) => Err(Error::invalid(field, "is assigned by the server")),
        None => Ok(()),
    }
}

/// A field without default that neither the request nor the stored job supplies.
pub(super) fn required<T>(field: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::invalid(field, "is required"))
}

/// Name: not blank, at most 200 characters, no control characters.
pub(super) fn name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    if name.chars().count() > limits::NAME_MAX {
        return Err(Error::invalid(
            "name",
            format!("longer than {} characters", limits::NAME_MAX),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Group of a PATCH: the job's own group, or none (a group is fixed at create).
pub(super) fn group_unchanged(given: Option<&str>, stored: Option<&str>) -> Result<()> {
    match (given, stored) {
        (Some(g), Some(s)) if g != s => Err(Error::invalid(
            "group",
            "cannot be changed; create the job in the new group instead",
        )),
        _ => Ok(()),
    }
}

/// Handler: 1–128 of `[A-Za-z0-9_.:/-]`.
pub(super) fn handler(handler: &str) -> Result<()> {
    check_name_chars("handler", handler, limits::HANDLER_MAX, ":/")
}

/// Time zone: a known IANA name.
pub(super) fn timezone(timezone: &str) -> Result<Tz> {
    parse_timezone(timezone).map_err(|m| Error::invalid("timezone", m))
}

/// Schedule: parses, and fires at least once more after `now_ms` (`@every` counts from
/// `anchor_ms`, the job's creation).
pub(super) fn schedule(schedule: &str, tz: Tz, now_ms: i64, anchor_ms: i64) -> Result<()> {
    let parsed = Schedule::parse(schedule).map_err(|m| Error::invalid("schedule", m))?;
    if parsed.next_after(now_ms, tz, anchor_ms).is_none() {
        let why = if parsed.is_once() {
            "the @once instant is in the past"
        } else {
            "never fires"
        };
        return Err(Error::invalid("schedule", why));
    }
    Ok(())
}

/// Params: at most 64 KiB of compact JSON.
pub(super) fn params(params: &Value) -> Result<()> {
    let params_len = serde_json::to_vec(params).map_or(usize::MAX, |v| v.len());
    if params_len > limits::PARAMS_MAX_BYTES {
        return Err(Error::invalid(
            "params",
            format!(
                "{params_len} bytes of JSON; the limit is {}",
                limits::PARAMS_MAX_BYTES
            ),
        ));
    }
    Ok(())
}

/// Timeout: 1 ms to 7 days.
pub(super) fn timeout_ms(timeout_ms: u64) -> Result<()> {
    if timeout_ms == 0 || timeout_ms > limits::TIMEOUT_MAX_MS {
        return Err(Error::invalid(
            "timeout_ms",
            format!("must be between 1 and {}", limits::TIMEOUT_MAX_MS),
        ));
    }
    Ok(())
}

/// Attempts: 1 to 100.
pub(super) fn max_attempts(max_attempts: u32) -> Result<()> {
    if max_attempts == 0 || max_attempts > limits::ATTEMPTS_MAX {
        return Err(Error::invalid(
            "max_attempts",
            format!("must be between 1 and {}", limits::ATTEMPTS_MAX),
        ));
    }
    Ok(())
}

/// Backoff: `0 < base_ms <= max_ms <= 7 days`.
pub(super) fn backoff(backoff: &Backoff) -> Result<()> {
    if backoff.base_ms == 0
        || backoff.max_ms < backoff.base_ms
        || backoff.max_ms > limits::TIMEOUT_MAX_MS
    {
        return Err(Error::invalid(
            "backoff",
            "needs 0 < base_ms <= max_ms <= 7 days",
        ));
    }
    Ok(())
}

/// Misfire threshold: at most 7 days.
pub(super) fn misfire_threshold_ms(threshold_ms: u64) -> Result<()> {
    if threshold_ms > limits::TIMEOUT_MAX_MS {
        return Err(Error::invalid(
            "misfire_threshold_ms",
            "must be at most 7 days",
        ));
    }
    Ok(())
}

/// Catch-up bound: 1 to 10 000 ticks.
pub(super) fn catch_up_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > limits::CATCH_UP_MAX {
        return Err(Error::invalid(
            "catch_up_limit",
            format!("must be between 1 and {}", limits::CATCH_UP_MAX),
        ));
    }
    Ok(())
}

/// Sharded routing: 1 to 1024 shards, and one parameter per shard or none.
pub(super) fn shards(routing: &Routing) -> Result<()> {
    let Routing::Sharded {
        shards,
        shard_params,
    } = routing
    else {
        return Ok(());
    };
    if *shards == 0 || *shards > limits::SHARDS_MAX {
        return Err(Error::invalid(
            "routing.shards",
            format!("must be between 1 and {}", limits::SHARDS_MAX),
        ));
    }
    if !shard_params.is_empty() && shard_params.len() != *shards as usize {
        return Err(Error::invalid(
            "routing.shard_params",
            "needs one parameter per shard (or none)",
        ));
    }
    Ok(())
}

/// What a routing mode allows: a broadcast job (see [`broadcast`]) needs concurrency `allow`
/// and no children. A sharded job takes any concurrency policy (applied to a tick as a whole)
/// and children (fired once every shard of a tick succeeded).
pub(super) fn routing_mode(
    routing: &Routing,
    concurrency: ConcurrencyPolicy,
    children: &[String],
) -> Result<()> {
    match routing {
        Routing::Any => Ok(()),
        Routing::Broadcast => broadcast(concurrency, children),
        Routing::Sharded { .. } => Ok(()),
    }
}

/// A broadcast job runs once per live executor per tick: an overlap policy (`forbid`,
/// `replace`) would have to weigh one executor's run against another's, and children would
/// fire once per executor; both are refused rather than guessed.
fn broadcast(concurrency: ConcurrencyPolicy, children: &[String]) -> Result<()> {
    if concurrency != ConcurrencyPolicy::Allow {
        return Err(Error::invalid(
            "concurrency",
            "a broadcast job needs concurrency `allow` (each executor runs its own copy of every tick)",
        ));
    }
    if !children.is_empty() {
        return Err(Error::invalid(
            "children",
            "a broadcast job cannot have child jobs (they would fire once per executor)",
        ));
    }
    Ok(())
}

/// Children: at most 32 job ids, none of them the job itself (`id`).
pub(super) fn children(children: &[String], id: &str) -> Result<()> {
    if children.len() > limits::CHILDREN_MAX {
        return Err(Error::invalid(
            "children",
            format!("at most {} child jobs", limits::CHILDREN_MAX),
        ));
    }
    if let Some(bad) = children.iter().find(|c| !valid_job_id(c) || *c == id) {
        return Err(Error::invalid(
            "children",
            format!("`{bad}` is not a job id (or is the job itself)"),
        ));
    }
    Ok(())
}

/// Description: at most 2 000 characters.
pub(super) fn description(description: &str) -> Result<()> {
    if description.chars().count() > limits::DESCRIPTION_MAX {
        return Err(Error::invalid(
            "description",
            format!("longer than {} characters", limits::DESCRIPTION_MAX),
        ));
    }
    Ok(())
}

/// Labels: at most 32; keys 1–64 bytes, values at most 256 (the field named is the label's).
pub(super) fn labels(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > limits::LABELS_MAX {
        return Err(Error::invalid(
            "labels",
            format!("at most {} labels", limits::LABELS_MAX),
        ));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > limits::LABEL_KEY_MAX || v.len() > limits::LABEL_VALUE_MAX {
            return Err(Error::invalid(
                format!("labels.{k}"),
                "keys are 1-64 characters, values at most 256",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field a refusal names (panics on success).
    fn field(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_groups_handlers_and_ids() {
        assert!(name("nightly report").is_ok());
        assert_eq!(field(name("  ")), "name");
        assert_eq!(field(name(&"é".repeat(201))), "name");
        assert!(name(&"é".repeat(200)).is_ok());
        assert_eq!(field(name("a\u{7}b")), "name");
        assert!(validate_group("billing-eu.1").is_ok());
        assert_eq!(field(validate_group("")), "group");
        assert_eq!(field(validate_group(&"g".repeat(65))), "group");
        assert_eq!(field(validate_group("a:b")), "group");
        assert!(handler("acme:billing/run").is_ok());
        assert_eq!(field(handler("a b")), "handler");
        assert_eq!(field(handler(&"h".repeat(129))), "handler");
        assert!(valid_job_id("01jcz3k8q2m7w4x9v6t5r0p1aa"));
        assert!(!valid_job_id("01J") && !valid_job_id("") && !valid_job_id(&"a".repeat(33)));
        assert_eq!(
            field(server_assigned("version", Some(&Value::Null))),
            "version"
        );
        assert!(server_assigned("id", None).is_ok());
        assert_eq!(field(required::<String>("handler", None)), "handler");
        assert_eq!(field(group_unchanged(Some("b"), Some("a"))), "group");
        assert!(group_unchanged(Some("a"), Some("a")).is_ok());
        assert!(group_unchanged(Some("b"), None).is_ok());
    }

    #[test]
    fn zones_and_schedules() {
        assert_eq!(field(timezone("Mars/Base")), "timezone");
        let tz = timezone("Europe/Berlin").unwrap();
        let now = 1_790_000_000_000;
        assert!(schedule("0 9 * * MON-FRI", tz, now, now).is_ok());
        assert_eq!(field(schedule("61 * * * *", tz, now, now)), "schedule");
        let past = schedule("@once 2001-01-01T00:00:00Z", tz, now, now);
        assert!(matches!(past, Err(Error::Invalid { ref message, .. })
            if message.contains("in the past")));
        // A 7-field cron whose only year is over.
        let never = schedule("0 0 0 1 1 * 2001", tz, now, now);
        assert!(
            matches!(never, Err(Error::Invalid { ref field, ref message })
            if field == "schedule" && message == "never fires")
        );
    }

    #[test]
    fn sizes_and_ranges() {
        assert!(params(&serde_json::json!({"a": "x".repeat(60_000)})).is_ok());
        assert_eq!(
            field(params(&serde_json::json!({"a": "x".repeat(70_000)}))),
            "params"
        );
        assert_eq!(field(timeout_ms(0)), "timeout_ms");
        assert_eq!(field(timeout_ms(limits::TIMEOUT_MAX_MS + 1)), "timeout_ms");
        assert!(timeout_ms(limits::TIMEOUT_MAX_MS).is_ok());
        assert_eq!(field(max_attempts(0)), "max_attempts");
        assert_eq!(field(max_attempts(101)), "max_attempts");
        assert!(max_attempts(100).is_ok());
        let b = |base_ms, max_ms| backoff(&Backoff { base_ms, max_ms });
        assert!(b(1, 1).is_ok());
        assert_eq!(field(b(0, 10)), "backoff");
        assert_eq!(field(b(10, 5)), "backoff");
        assert_eq!(field(b(10, limits::TIMEOUT_MAX_MS + 1)), "backoff");
        assert!(misfire_threshold_ms(0).is_ok());
        assert_eq!(
            field(misfire_threshold_ms(limits::TIMEOUT_MAX_MS + 1)),
            "misfire_threshold_ms"
        );
        assert_eq!(field(catch_up_limit(0)), "catch_up_limit");
        assert_eq!(field(catch_up_limit(10_001)), "catch_up_limit");
        assert_eq!(field(description(&"d".repeat(2_001))), "description");
        assert!(description(&"é".repeat(2_000)).is_ok());
    }

    #[test]
    fn routing_and_children() {
        let sharded = |shards, n: usize| Routing::Sharded {
            shards,
            shard_params: vec![Value::Null; n],
        };
        assert!(shards(&sharded(3, 3)).is_ok() && shards(&sharded(3, 0)).is_ok());
        assert_eq!(field(shards(&sharded(0, 0))), "routing.shards");
        assert_eq!(field(shards(&sharded(1_025, 0))), "routing.shards");
        assert_eq!(field(shards(&sharded(3, 2))), "routing.shard_params");
        let allow = ConcurrencyPolicy::Allow;
        assert!(routing_mode(&Routing::Any, ConcurrencyPolicy::Forbid, &["01a".into()]).is_ok());
        assert!(routing_mode(&Routing::Broadcast, allow, &[]).is_ok());
        assert_eq!(
            field(routing_mode(
                &Routing::Broadcast,
                ConcurrencyPolicy::Forbid,
                &[]
            )),
            "concurrency"
        );
        assert_eq!(
            field(routing_mode(&Routing::Broadcast, allow, &["01a".into()])),
            "children"
        );
        // A sharded job takes any overlap policy and children.
        assert!(routing_mode(&sharded(2, 0), ConcurrencyPolicy::Replace, &[]).is_ok());
        assert!(routing_mode(&sharded(2, 0), ConcurrencyPolicy::Forbid, &["01a".into()]).is_ok());
        assert!(routing_mode(&sharded(2, 0), allow, &[]).is_ok());
        assert!(children(&["01a".into(), "01b".into()], "01c").is_ok());
        assert_eq!(field(children(&["01c".into()], "01c")), "children");
        assert_eq!(field(children(&["Not-An-Id".into()], "01c")), "children");
        assert_eq!(field(children(&vec!["01a".into(); 33], "01c")), "children");
    }

    #[test]
    fn labels_name_the_bad_one() {
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(labels(&l(&[("team", "billing")])).is_ok());
        assert_eq!(field(labels(&l(&[("", "v")]))), "labels.");
        let long_key = "k".repeat(65);
        assert_eq!(
            field(labels(&l(&[(long_key.as_str(), "v")]))),
            format!("labels.{long_key}")
        );
        let many: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(field(labels(&many)), "labels");
    }
}
