//! Job definitions: what the admin API accepts, what a job hash in Redis holds, and the rules
//! that keep bad input out (invariant 9: a bad request is refused before anything is written).
//!
//! A [`JobInput`] is what a client sends (every field optional, unknown fields refused); it is
//! validated against a base (defaults for a create, the stored job for a PATCH) into a
//! [`JobSpec`], which round-trips through the job hash as readable string fields.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::schedule::{Schedule, parse_timezone};
use crate::time::{ms_to_rfc3339, opt_ms_rfc3339};

/// Limits on job fields; bad input beyond them is a 4xx naming the field.
pub mod limits {
    /// Longest job name, in characters.
    pub const NAME_MAX: usize = 200;
    /// Longest group name.
    pub const GROUP_MAX: usize = 64;
    /// Longest handler name.
    pub const HANDLER_MAX: usize = 128;
    /// Largest `params`, as compact JSON bytes.
    pub const PARAMS_MAX_BYTES: usize = 64 * 1024;
    /// Longest description.
    pub const DESCRIPTION_MAX: usize = 2_000;
    /// Most labels on a job.
    pub const LABELS_MAX: usize = 32;
    /// Longest label key / value.
    pub const LABEL_KEY_MAX: usize = 64;
    /// Longest label value.
    pub const LABEL_VALUE_MAX: usize = 256;
    /// Longest timeout (7 days).
    pub const TIMEOUT_MAX_MS: u64 = 7 * 24 * 3_600_000;
    /// Most attempts of one run.
    pub const ATTEMPTS_MAX: u32 = 100;
    /// Most shards of a sharded job.
    pub const SHARDS_MAX: u32 = 1_024;
    /// Most child jobs.
    pub const CHILDREN_MAX: usize = 32;
    /// Most ticks one misfire catch-up may fire.
    pub const CATCH_UP_MAX: u32 = 10_000;
}

/// Defaults applied on create.
pub mod defaults {
    /// Run deadline.
    pub const TIMEOUT_MS: u64 = 300_000;
    /// Attempts (1 = no retries).
    pub const MAX_ATTEMPTS: u32 = 1;
    /// First retry delay.
    pub const BACKOFF_BASE_MS: u64 = 1_000;
    /// Longest retry delay.
    pub const BACKOFF_MAX_MS: u64 = 300_000;
    /// How late a tick may be found and still simply fire late.
    pub const MISFIRE_THRESHOLD_MS: u64 = 30_000;
    /// Most missed ticks `catch_up` fires.
    pub const CATCH_UP_LIMIT: u32 = 100;
    /// Group when none is given.
    pub const GROUP: &str = "default";
    /// Time zone when none is given.
    pub const TIMEZONE: &str = "UTC";
}

/// What to do with ticks found due later than the misfire threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// One run now for the whole gap.
    #[default]
    FireOnce,
    /// No run for the gap.
    Skip,
    /// Every missed tick, up to `catch_up_limit`.
    CatchUp,
}

/// What a tick does while a run of the same job is still in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// The new tick is recorded `skipped`.
    Forbid,
    /// The in-flight run is cancelled, the new one runs.
    Replace,
}

/// Where a run executes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Routing {
    /// One run on any executor of the group.
    #[default]
    Any,
    /// One run on every live executor of the group.
    Broadcast,
    /// `shards` runs, each with its shard index and parameter.
    Sharded {
        /// Number of shards.
        shards: u32,
        /// Per-shard parameter (as many as shards) or empty.
        #[serde(default)]
        shard_params: Vec<Value>,
    },
}

/// Retry delays: `base_ms · 2^(attempt-1)`, capped at `max_ms`, with ±20 % jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_ms: defaults::BACKOFF_BASE_MS,
            max_ms: defaults::BACKOFF_MAX_MS,
        }
    }
}

impl Backoff {
    /// Delay before attempt `next_attempt` (2 = first retry), jittered by `jitter` in [-1, 1].
    pub fn delay_ms(&self, next_attempt: u32, jitter: f64) -> u64 {
        let exp = next_attempt.saturating_sub(2).min(40);
        let raw = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        let j = (raw as f64 * 0.2 * jitter.clamp(-1.0, 1.0)) as i64;
        (raw as i64 + j).max(0) as u64
    }
}

/// A stored, valid job definition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobSpec {
    /// Server-assigned id (lowercase ULID).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Executor group whose workers run it.
    pub group: String,
    /// Handler name the workers dispatch on.
    pub handler: String,
    /// Schedule string; `None` = only by hand.
    pub schedule: Option<String>,
    /// IANA zone the schedule is read in.
    pub timezone: String,
    /// Parameters given to the handler.
    pub params: Value,
    /// Deadline of one attempt.
    pub timeout_ms: u64,
    /// Attempts per run (1 = no retry).
    pub max_attempts: u32,
    /// Scheduled ticks fire only while enabled.
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
    /// Jobs fired when a run of this one succeeds.
    pub children: Vec<String>,
    /// Free text.
    pub description: String,
    /// Free key/value labels.
    pub labels: BTreeMap<String, String>,
    /// Bumped by every write; stream entries carry the version they were fired with.
    pub version: u64,
    /// Creation instant (ms, Redis clock); also the anchor of `@every`.
    #[serde(serialize_with = "ms_to_rfc3339")]
    pub created_at: i64,
    /// Last write (ms, Redis clock).
    #[serde(serialize_with = "ms_to_rfc3339")]
    pub updated_at: i64,
}

/// A nullable field in a PATCH: absent, `null`, or a value.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Nullable<T> {
    /// Not in the request.
    #[default]
    Absent,
    /// Explicit `null`.
    Null,
    /// A value.
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Self::Value(v),
            None => Self::Null,
        })
    }
}

/// A job as a client sends it to create or PATCH. Every field is optional here; which are
/// required is decided by [`JobInput::into_spec`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// Refused: ids are server-assigned.
    pub id: Option<Value>,
    /// Name.
    pub name: Option<String>,
    /// Group (immutable after create).
    pub group: Option<String>,
    /// Handler.
    pub handler: Option<String>,
    /// Schedule; `null` or `""` means only by hand.
    #[serde(default)]
    pub schedule: Nullable<String>,
    /// IANA zone.
    pub timezone: Option<String>,
    /// Handler parameters.
    #[serde(default)]
    pub params: Nullable<Value>,
    /// Deadline per attempt.
    pub timeout_ms: Option<u64>,
    /// Attempts per run.
    pub max_attempts: Option<u32>,
    /// Enabled flag.
    pub enabled: Option<bool>,
    /// Retry delays.
    pub backoff: Option<Backoff>,
    /// Misfire policy.
    pub misfire_policy: Option<MisfirePolicy>,
    /// Misfire threshold.
    pub misfire_threshold_ms: Option<u64>,
    /// Catch-up bound.
    pub catch_up_limit: Option<u32>,
    /// Overlap policy.
    pub concurrency: Option<ConcurrencyPolicy>,
    /// Routing.
    pub routing: Option<Routing>,
    /// Child job ids.
    pub children: Option<Vec<String>>,
    /// Description.
    #[serde(default)]
    pub description: Nullable<String>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Refused: server-managed.
    pub version: Option<Value>,
    /// Refused: server-managed.
    pub created_at: Option<Value>,
    /// Refused: server-managed.
    pub updated_at: Option<Value>,
}

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

impl JobInput {
    /// Parses a request body, naming the field of a type error.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        crate::model::parse_json(body)
    }

    /// Validates this input over `base` (a stored job for PATCH, `None` for create) into a
    /// full spec. `now_ms` is the Redis clock, used to refuse an `@once` in the past.
    pub fn into_spec(self, base: Option<&JobSpec>, id: &str, now_ms: i64) -> Result<JobSpec> {
        for (field, v) in [
            ("id", &self.id),
            ("version", &self.version),
            ("created_at", &self.created_at),
            ("updated_at", &self.updated_at),
        ] {
            if v.is_some() {
                return Err(Error::invalid(field, "is assigned by the server"));
            }
        }
        let name = match (self.name, base) {
            (Some(n), _) => n,
            (None, Some(b)) => b.name.clone(),
            (None, None) => return Err(Error::invalid("name", "is required")),
        };
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
        let group = match (self.group, base) {
            (Some(g), Some(b)) if g != b.group => {
                return Err(Error::invalid(
                    "group",
                    "cannot be changed; create the job in the new group instead",
                ));
            }
            (Some(g), _) => g,
            (None, Some(b)) => b.group.clone(),
            (None, None) => defaults::GROUP.to_owned(),
        };
        validate_group(&group)?;
        let handler = match (self.handler, base) {
            (Some(h), _) => h,
            (None, Some(b)) => b.handler.clone(),
            (None, None) => return Err(Error::invalid("handler", "is required")),
        };
        check_name_chars("handler", &handler, limits::HANDLER_MAX, ":/")?;
        let timezone = self
            .timezone
            .or_else(|| base.map(|b| b.timezone.clone()))
            .unwrap_or_else(|| defaults::TIMEZONE.to_owned());
        let tz = parse_timezone(&timezone).map_err(|m| Error::invalid("timezone", m))?;
        let schedule = match self.schedule {
            Nullable::Absent => base.and_then(|b| b.schedule.clone()),
            Nullable::Null => None,
            Nullable::Value(s) if s.trim().is_empty() => None,
            Nullable::Value(s) => Some(s.trim().to_owned()),
        };
        let created_at = base.map_or(now_ms, |b| b.created_at);
        if let Some(s) = &schedule {
            let parsed = Schedule::parse(s).map_err(|m| Error::invalid("schedule", m))?;
            if parsed.next_after(now_ms, tz, created_at).is_none() {
                let why = if parsed.is_once() {
                    "the @once instant is in the past"
                } else {
                    "never fires"
                };
                return Err(Error::invalid("schedule", why));
            }
        }
        let params = match self.params {
            Nullable::Absent => {
                base.map_or(Value::Object(Default::default()), |b| b.params.clone())
            }
            Nullable::Null => Value::Null,
            Nullable::Value(v) => v,
        };
        let params_len = serde_json::to_vec(&params).map_or(usize::MAX, |v| v.len());
        if params_len > limits::PARAMS_MAX_BYTES {
            return Err(Error::invalid(
                "params",
                format!(
                    "{params_len} bytes of JSON; the limit is {}",
                    limits::PARAMS_MAX_BYTES
                ),
            ));
        }
        crate::model::stock_params::validate_stock_params(&handler, &params)?;
        let timeout_ms = self
            .timeout_ms
            .or(base.map(|b| b.timeout_ms))
            .unwrap_or(defaults::TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > limits::TIMEOUT_MAX_MS {
            return Err(Error::invalid(
                "timeout_ms",
                format!("must be between 1 and {}", limits::TIMEOUT_MAX_MS),
            ));
        }
        let max_attempts = self
            .max_attempts
            .or(base.map(|b| b.max_attempts))
            .unwrap_or(defaults::MAX_ATTEMPTS);
        if max_attempts == 0 || max_attempts > limits::ATTEMPTS_MAX {
            return Err(Error::invalid(
                "max_attempts",
                format!("must be between 1 and {}", limits::ATTEMPTS_MAX),
            ));
        }
        let backoff = self.backoff.or(base.map(|b| b.backoff)).unwrap_or_default();
        if backoff.base_ms == 0
            || backoff.max_ms < backoff.base_ms
            || backoff.max_ms > limits::TIMEOUT_MAX_MS
        {
            return Err(Error::invalid(
                "backoff",
                "needs 0 < base_ms <= max_ms <= 7 days",
            ));
        }
        let misfire_threshold_ms = self
            .misfire_threshold_ms
            .or(base.map(|b| b.misfire_threshold_ms))
            .unwrap_or(defaults::MISFIRE_THRESHOLD_MS);
        if misfire_threshold_ms > limits::TIMEOUT_MAX_MS {
            return Err(Error::invalid(
                "misfire_threshold_ms",
                "must be at most 7 days",
            ));
        }
        let catch_up_limit = self
            .catch_up_limit
            .or(base.map(|b| b.catch_up_limit))
            .unwrap_or(defaults::CATCH_UP_LIMIT);
        if catch_up_limit == 0 || catch_up_limit > limits::CATCH_UP_MAX {
            return Err(Error::invalid(
                "catch_up_limit",
                format!("must be between 1 and {}", limits::CATCH_UP_MAX),
            ));
        }
        let routing = self
            .routing
            .or_else(|| base.map(|b| b.routing.clone()))
            .unwrap_or_default();
        if let Routing::Sharded {
            shards,
            shard_params,
        } = &routing
        {
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
        }
        let concurrency = self
            .concurrency
            .or(base.map(|b| b.concurrency))
            .unwrap_or_default();
        let children = self
            .children
            .or_else(|| base.map(|b| b.children.clone()))
            .unwrap_or_default();
        match routing {
            Routing::Any => {}
            Routing::Broadcast => {
                return Err(Error::invalid(
                    "routing.mode",
                    "`broadcast` is not supported yet; use `any` or `sharded`",
                ));
            }
            Routing::Sharded { .. } => {
                if concurrency != ConcurrencyPolicy::Allow {
                    return Err(Error::invalid(
                        "concurrency",
                        "a sharded job needs concurrency `allow`",
                    ));
                }
                if !children.is_empty() {
                    return Err(Error::invalid(
                        "children",
                        "a sharded job cannot have child jobs yet",
                    ));
                }
            }
        }
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
        let description = match self.description {
            Nullable::Absent => base.map(|b| b.description.clone()).unwrap_or_default(),
            Nullable::Null => String::new(),
            Nullable::Value(d) => d,
        };
        if description.chars().count() > limits::DESCRIPTION_MAX {
            return Err(Error::invalid(
                "description",
                format!("longer than {} characters", limits::DESCRIPTION_MAX),
            ));
        }
        let labels = self
            .labels
            .or_else(|| base.map(|b| b.labels.clone()))
            .unwrap_or_default();
        if labels.len() > limits::LABELS_MAX {
            return Err(Error::invalid(
                "labels",
                format!("at most {} labels", limits::LABELS_MAX),
            ));
        }
        for (k, v) in &labels {
            if k.is_empty() || k.len() > limits::LABEL_KEY_MAX || v.len() > limits::LABEL_VALUE_MAX
            {
                return Err(Error::invalid(
                    format!("labels.{k}"),
                    "keys are 1-64 characters, values at most 256",
                ));
            }
        }
        Ok(JobSpec {
            id: id.to_owned(),
            name,
            group,
            handler,
            schedule,
            timezone,
            params,
            timeout_ms,
            max_attempts,
            enabled: self.enabled.or(base.map(|b| b.enabled)).unwrap_or(true),
            backoff,
            misfire_policy: self
                .misfire_policy
                .or(base.map(|b| b.misfire_policy))
                .unwrap_or_default(),
            misfire_threshold_ms,
            catch_up_limit,
            concurrency,
            routing,
            children,
            description,
            labels,
            version: base.map_or(0, |b| b.version),
            created_at,
            updated_at: now_ms,
        })
    }
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

/// Compact JSON of a value that cannot fail to serialise.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Typed reads of hash fields, reporting the key and field of anything unreadable.
pub(crate) struct FieldReader<'a> {
    pub(crate) key: &'a str,
    pub(crate) f: &'a HashMap<String, String>,
}

impl FieldReader<'_> {
    fn corrupt(&self, field: &str, e: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            key: self.key.to_owned(),
            message: format!("field {field}: {e}"),
        }
    }

    pub(crate) fn str(&self, field: &str) -> Result<&str> {
        self.f
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| self.corrupt(field, "missing"))
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, field: &str) -> Result<T> {
        self.str(field)?
            .parse()
            .map_err(|_| self.corrupt(field, "not a number"))
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, field: &str) -> Result<T> {
        serde_json::from_str(self.str(field)?).map_err(|e| self.corrupt(field, e))
    }

    /// A unit enum stored as its bare snake_case name.
    pub(crate) fn word<T: serde::de::DeserializeOwned>(&self, field: &str) -> Result<T> {
        serde_json::from_value(Value::String(self.str(field)?.to_owned()))
            .map_err(|e| self.corrupt(field, e))
    }
}

/// The API view of a job: the spec plus its next fire instant.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// The definition.
    #[serde(flatten)]
    pub spec: JobSpec,
    /// When it fires next (absent when paused or manual-only).
    #[serde(serialize_with = "opt_ms_rfc3339")]
    pub next_fire_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_790_000_000_000;

    fn input(v: Value) -> Result<JobSpec> {
        JobInput::from_json(v.to_string().as_bytes())?.into_spec(None, "01test", NOW)
    }

    fn field_of(r: Result<JobSpec>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn minimal_job_gets_defaults() {
        let j = input(json!({"name": "n", "handler": "h"})).unwrap();
        assert_eq!(j.group, "default");
        assert_eq!(j.timezone, "UTC");
        assert_eq!(j.max_attempts, 1);
        assert!(j.enabled);
        assert_eq!(j.schedule, None);
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let base = json!({"name": "n", "handler": "h"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            input(b)
        };
        assert_eq!(field_of(with("schedule", json!("61 * * * *"))), "schedule");
        assert_eq!(field_of(with("timezone", json!("Mars/Base"))), "timezone");
        assert_eq!(field_of(with("name", json!(""))), "name");
        assert_eq!(field_of(with("name", json!("x".repeat(201)))), "name");
        assert_eq!(field_of(with("group", json!("bad group"))), "group");
        assert_eq!(field_of(with("group", json!("{tag}"))), "group");
        assert_eq!(
            field_of(with("params", json!({"blob": "x".repeat(70_000)}))),
            "params"
        );
        assert_eq!(field_of(with("timeout_ms", json!("soon"))), "timeout_ms");
        assert_eq!(field_of(with("max_attempts", json!(-1))), "max_attempts");
        assert_eq!(field_of(with("enabled", json!("yes"))), "enabled");
        assert_eq!(field_of(with("id", json!("mine"))), "id");
        assert_eq!(field_of(with("bogus", json!(1))), "bogus");
        assert_eq!(
            field_of(with("routing", json!({"mode": "sharded", "shards": 0}))),
            "routing.shards"
        );
        assert_eq!(
            field_of(with("routing", json!({"mode": "broadcast"}))),
            "routing.mode"
        );
        let sharded_with = |k: &str, v: Value| {
            input(json!({"name": "n", "handler": "h", k: v,
                "routing": {"mode": "sharded", "shards": 2}}))
        };
        assert_eq!(
            field_of(sharded_with("concurrency", json!("replace"))),
            "concurrency"
        );
        assert_eq!(
            field_of(sharded_with("children", json!(["01abc"]))),
            "children"
        );
        assert!(sharded_with("concurrency", json!("allow")).is_ok());
        assert_eq!(field_of(input(json!({"handler": "h"}))), "name");
        assert_eq!(field_of(input(json!({"name": "n"}))), "handler");
        assert_eq!(
            field_of(with("schedule", json!("@once 2001-01-01T00:00:00Z"))),
            "schedule"
        );
    }

    #[test]
    fn round_trips_through_hash_fields() {
        let mut j = input(json!({
            "name": "report", "group": "billing", "handler": "http",
            "schedule": "0 9 * * MON-FRI", "timezone": "Europe/Berlin",
            "params": {"url": "http://x"}, "labels": {"team": "a"},
            "routing": {"mode": "sharded", "shards": 2, "shard_params": [1, 2]},
            "misfire_policy": "catch_up", "concurrency": "allow"
        }))
        .unwrap();
        j.version = 3;
        let mut f: HashMap<String, String> = j
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        f.insert("version".into(), "3".into());
        f.insert("updated_at".into(), j.updated_at.to_string());
        assert_eq!(JobSpec::from_fields("k", &f).unwrap(), j);
    }

    #[test]
    fn patch_keeps_unmentioned_fields_and_refuses_group_change() {
        let j = input(json!({"name": "n", "handler": "h", "schedule": "@hourly"})).unwrap();
        let p = JobInput::from_json(br#"{"params": {"a": 1}}"#).unwrap();
        let j2 = p.into_spec(Some(&j), &j.id, NOW + 5).unwrap();
        assert_eq!(j2.schedule.as_deref(), Some("@hourly"));
        assert_eq!(j2.params, json!({"a": 1}));
        assert_eq!(j2.created_at, j.created_at);
        let p = JobInput::from_json(br#"{"group": "other"}"#).unwrap();
        assert!(p.into_spec(Some(&j), &j.id, NOW).is_err());
        let p = JobInput::from_json(br#"{"schedule": null}"#).unwrap();
        assert_eq!(p.into_spec(Some(&j), &j.id, NOW).unwrap().schedule, None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
        };
        assert_eq!(b.delay_ms(2, 0.0), 100);
        assert_eq!(b.delay_ms(3, 0.0), 200);
        assert_eq!(b.delay_ms(10, 0.0), 1_000);
        assert_eq!(b.delay_ms(2, 1.0), 120);
    }
}
