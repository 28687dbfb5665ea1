//! [`JobSpec`]: a stored, valid job definition, its schedule, and its round trip through the
//! job hash in Redis (every field a readable string).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::fields::{FieldReader, to_json};
use super::policy::{Backoff, ConcurrencyPolicy, MisfirePolicy, Routing};
use crate::error::{Error, Result};
use crate::schedule::{Schedule, parse_timezone};
use crate::time::ms_to_rfc3339;

/// A stored, valid job definition.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSpec {
    /// Server-assigned id (lowercase ULID).
    #[cfg_attr(feature = "openapi", schema(example = "01jcz3k8q2m7w4x9v6t5r0p1aa"))]
    pub id: String,
    /// Human name.
    pub name: String,
    /// Executor group whose workers run it.
    pub group: String,
    /// Handler name the workers dispatch on.
    pub handler: String,
    /// Cron (6-field with seconds or 5-field), `@hourly`-style macro, `@every 30s` or
    /// `@once <RFC 3339>`; `null` = only when triggered.
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in.
    pub timezone: String,
    /// Parameters given to the handler (any JSON).
    pub params: Value,
    /// Deadline of one attempt.
    pub timeout_ms: u64,
    /// Attempts per run (1 = no retry).
    pub max_attempts: u32,
    /// Scheduled ticks fire only while enabled (pause / resume).
    pub enabled: bool,
    /// Retry delays.
    pub backoff: Backoff,
    /// Policy for ticks found later than the threshold.
    pub misfire_policy: MisfirePolicy,
    /// How late a tick may fire before it counts as missed.
    pub misfire_threshold_ms: u64,
    /// Most ticks a `catch_up` fires at once.
    pub catch_up_limit: u32,
    /// Overlap policy.
    pub concurrency: ConcurrencyPolicy,
    /// Routing mode.
    pub routing: Routing,
    /// Jobs triggered (trigger `child`, `parent_run` set) each time a run of this one
    /// succeeds (a sharded job: once every shard of a tick succeeded), before that run is
    /// acknowledged; once per parent run (the child's run id derives from it). No cycles.
    pub children: Vec<String>,
    /// Free text.
    pub description: String,
    /// Free key/value labels.
    pub labels: BTreeMap<String, String>,
    /// Bumped by every write; stream entries and runs carry the version they were fired with.
    pub version: u64,
    /// Creation instant (Redis clock; RFC 3339 in JSON, ms here); also the anchor of `@every`.
    #[serde(serialize_with = "ms_to_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    /// Last write (Redis clock; RFC 3339 in JSON, ms here).
    #[serde(serialize_with = "ms_to_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

impl JobSpec {
    /// The parsed schedule (`None` = manual only). Stored specs were validated, so a parse
    /// error here means someone edited the hash by hand; it is reported as corrupt.
    pub fn parsed_schedule(&self) -> Result<Option<(Schedule, chrono_tz::Tz)>> {
        let Some(s) = &self.schedule else {
            return Ok(None);
        };
        let corrupt = |message: String| Error::Corrupt {
            key: format!("job {}", self.id),
            message,
        };
        let sched = Schedule::parse(s).map_err(corrupt)?;
        let tz = parse_timezone(&self.timezone).map_err(corrupt)?;
        Ok(Some((sched, tz)))
    }

    /// The next fire instant after `after_ms`, if the job is enabled and scheduled.
    pub fn next_fire_after(&self, after_ms: i64) -> Result<Option<i64>> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(self
            .parsed_schedule()?
            .and_then(|(s, tz)| s.next_after(after_ms, tz, self.created_at)))
    }

    /// The hash fields of this job, as written to Redis (all readable strings).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("name", self.name.clone()),
            ("group", self.group.clone()),
            ("handler", self.handler.clone()),
            ("schedule", self.schedule.clone().unwrap_or_default()),
            ("timezone", self.timezone.clone()),
            ("params", to_json(&self.params)),
            ("timeout_ms", self.timeout_ms.to_string()),
            ("max_attempts", self.max_attempts.to_string()),
            ("enabled", self.enabled.to_string()),
            ("backoff_base_ms", self.backoff.base_ms.to_string()),
            ("backoff_max_ms", self.backoff.max_ms.to_string()),
            (
                "misfire_policy",
                to_json(&self.misfire_policy).trim_matches('"').to_owned(),
            ),
            (
                "misfire_threshold_ms",
                self.misfire_threshold_ms.to_string(),
            ),
            ("catch_up_limit", self.catch_up_limit.to_string()),
            (
                "concurrency",
                to_json(&self.concurrency).trim_matches('"').to_owned(),
            ),
            ("routing", to_json(&self.routing)),
            ("children", to_json(&self.children)),
            ("description", self.description.clone()),
            ("labels", to_json(&self.labels)),
            ("created_at", self.created_at.to_string()),
        ]
    }

    /// Reads a job back from its hash fields. `key` is only for error messages.
    pub fn from_fields(key: &str, f: &HashMap<String, String>) -> Result<Self> {
        let r = FieldReader { key, f };
        let schedule = r.str("schedule")?;
        Ok(Self {
            id: r.str("id")?.to_owned(),
            name: r.str("name")?.to_owned(),
            group: r.str("group")?.to_owned(),
            handler: r.str("handler")?.to_owned(),
            schedule: (!schedule.is_empty()).then(|| schedule.to_owned()),
            timezone: r.str("timezone")?.to_owned(),
            params: r.json("params")?,
            timeout_ms: r.num("timeout_ms")?,
            max_attempts: r.num("max_attempts")?,
            enabled: r.str("enabled")? == "true",
            backoff: Backoff {
                base_ms: r.num("backoff_base_ms")?,
                max_ms: r.num("backoff_max_ms")?,
            },
            misfire_policy: r.word("misfire_policy")?,
            misfire_threshold_ms: r.num("misfire_threshold_ms")?,
            catch_up_limit: r.num("catch_up_limit")?,
            concurrency: r.word("concurrency")?,
            routing: r.json("routing")?,
            children: r.json("children")?,
            description: f.get("description").cloned().unwrap_or_default(),
            labels: r.json("labels")?,
            version: r.num("version")?,
            created_at: r.num("created_at")?,
            updated_at: r.num("updated_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::JobInput;
    use serde_json::json;

    const NOW: i64 = 1_790_000_000_000;

    fn spec(v: Value) -> JobSpec {
        JobInput::from_json(v.to_string().as_bytes())
            .unwrap()
            .into_spec(None, "01test", NOW)
            .unwrap()
    }

    #[test]
    fn round_trips_through_hash_fields() {
        let mut j = spec(json!({
            "name": "report", "group": "billing", "handler": "http",
            "schedule": "0 9 * * MON-FRI", "timezone": "Europe/Berlin",
            "params": {"url": "http://x"}, "labels": {"team": "a"},
            "routing": {"mode": "sharded", "shards": 2, "shard_params": [1, 2]},
            "misfire_policy": "catch_up", "concurrency": "allow"
        }));
        j.version = 3;
        let mut f: HashMap<String, String> = j
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        f.insert("version".into(), "3".into());
        f.insert("updated_at".into(), j.updated_at.to_string());
        assert_eq!(JobSpec::from_fields("k", &f).unwrap(), j);
        f.insert("timeout_ms".into(), "soon".into());
        assert!(matches!(
            JobSpec::from_fields("k", &f),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn next_fire_only_while_enabled() {
        let mut j = spec(json!({"name": "n", "handler": "h", "schedule": "@every 10s"}));
        assert_eq!(j.next_fire_after(NOW).unwrap(), Some(NOW + 10_000));
        j.enabled = false;
        assert_eq!(j.next_fire_after(NOW).unwrap(), None);
        j.enabled = true;
        j.schedule = Some("bogus".into());
        assert!(matches!(j.next_fire_after(NOW), Err(Error::Corrupt { .. })));
    }
}
