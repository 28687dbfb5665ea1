//! [`JobInput`]: a job as a client sends it to create or PATCH, and its validation into a
//! [`JobSpec`]. Each field is taken from the request, else from the stored job (PATCH), else
//! from the defaults, then checked by its rule in [`super::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::policy::{Backoff, ConcurrencyPolicy, MisfirePolicy, Routing};
use super::spec::JobSpec;
use super::{defaults, validate};
use crate::error::Result;

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

/// A job to create, or the fields to change (PATCH: only the fields sent change). `name`
/// and `handler` are required on create; `group` cannot change after it; `id`, `version`,
/// `created_at` and `updated_at` are assigned by the server and refused here. Unknown
/// fields are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "nightly-report",
    "handler": "http", "schedule": "0 2 * * *", "timezone": "Europe/Berlin",
    "params": {"url": "http://reports.internal/run"}})))]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// Refused: ids are server-assigned.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<Value>,
    /// 1-200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, example = "nightly-report")
    )]
    pub name: Option<String>,
    /// 1-64 of `[A-Za-z0-9_.-]`; default `default`. Cannot change after create.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[A-Za-z0-9_.-]{1,64}$",
            example = "default"
        )
    )]
    pub group: Option<String>,
    /// 1-128 of `[A-Za-z0-9_.:/-]`.
    #[cfg_attr(feature = "openapi", schema(max_length = 128, example = "echo"))]
    pub handler: Option<String>,
    /// `null` or `""` = only when triggered.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, example = "*/10 * * * * *")
    )]
    pub schedule: Nullable<String>,
    /// IANA zone, default `UTC`.
    #[cfg_attr(feature = "openapi", schema(example = "Europe/Berlin"))]
    pub timezone: Option<String>,
    /// Any JSON, at most 64 KiB compact.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub params: Nullable<Value>,
    /// 1 to 604800000 (7 days); default 300000.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 604800000_u64, example = 5000)
    )]
    pub timeout_ms: Option<u64>,
    /// 1-100; default 1 (no retry).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100, example = 3))]
    pub max_attempts: Option<u32>,
    /// Enabled flag (pause / resume).
    pub enabled: Option<bool>,
    /// Retry delays.
    pub backoff: Option<Backoff>,
    /// Misfire policy.
    pub misfire_policy: Option<MisfirePolicy>,
    /// At most 7 days; default 30000.
    #[cfg_attr(feature = "openapi", schema(maximum = 604800000_u64))]
    pub misfire_threshold_ms: Option<u64>,
    /// 1-10000; default 100.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub catch_up_limit: Option<u32>,
    /// Overlap policy.
    pub concurrency: Option<ConcurrencyPolicy>,
    /// Routing.
    pub routing: Option<Routing>,
    /// Jobs triggered when a run of this one succeeds (a sharded job: once every shard of a
    /// tick succeeded), once per run; at most 32 job ids, any group, leading back to this
    /// job at no depth.
    pub children: Option<Vec<String>>,
    /// At most 2000 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 2000))]
    pub description: Nullable<String>,
    /// At most 32; keys 1-64 characters, values at most 256.
    pub labels: Option<BTreeMap<String, String>>,
    /// Refused: server-managed.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub version: Option<Value>,
    /// Refused: server-managed.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub created_at: Option<Value>,
    /// Refused: server-managed.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub updated_at: Option<Value>,
}

/// The request's value, else the stored job's, else none.
fn or_stored<T>(
    given: Option<T>,
    base: Option<&JobSpec>,
    stored: impl Fn(&JobSpec) -> T,
) -> Option<T> {
    given.or_else(|| base.map(stored))
}

impl JobInput {
    /// Parses a request body, naming the field of a type error.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        crate::model::parse_json(body)
    }

    /// Validates this input over `base` (a stored job for PATCH, `None` for create) into a
    /// full spec. `now_ms` is the Redis clock, used to refuse an `@once` in the past.
    pub fn into_spec(self, base: Option<&JobSpec>, id: &str, now_ms: i64) -> Result<JobSpec> {
        validate::server_assigned("id", self.id.as_ref())?;
        validate::server_assigned("version", self.version.as_ref())?;
        validate::server_assigned("created_at", self.created_at.as_ref())?;
        validate::server_assigned("updated_at", self.updated_at.as_ref())?;

        let name = validate::required("name", or_stored(self.name, base, |b| b.name.clone()))?;
        validate::name(&name)?;
        validate::group_unchanged(self.group.as_deref(), base.map(|b| b.group.as_str()))?;
        let group = or_stored(self.group, base, |b| b.group.clone())
            .unwrap_or_else(|| defaults::GROUP.to_owned());
        validate::validate_group(&group)?;
        let handler = validate::required(
            "handler",
            or_stored(self.handler, base, |b| b.handler.clone()),
        )?;
        validate::handler(&handler)?;

        let timezone = or_stored(self.timezone, base, |b| b.timezone.clone())
            .unwrap_or_else(|| defaults::TIMEZONE.to_owned());
        let tz = validate::timezone(&timezone)?;
        let schedule = schedule_over(self.schedule, base);
        let created_at = base.map_or(now_ms, |b| b.created_at);
        if let Some(s) = &schedule {
            validate::schedule(s, tz, now_ms, created_at)?;
        }
        let params = params_over(self.params, base);
        validate::params(&params)?;
        crate::model::stock_params::validate_stock_params(&handler, &params)?;

        let timeout_ms =
            or_stored(self.timeout_ms, base, |b| b.timeout_ms).unwrap_or(defaults::TIMEOUT_MS);
        validate::timeout_ms(timeout_ms)?;
        let max_attempts = or_stored(self.max_attempts, base, |b| b.max_attempts)
            .unwrap_or(defaults::MAX_ATTEMPTS);
        validate::max_attempts(max_attempts)?;
        let backoff = or_stored(self.backoff, base, |b| b.backoff).unwrap_or_default();
        validate::backoff(&backoff)?;
        let misfire_threshold_ms =
            or_stored(self.misfire_threshold_ms, base, |b| b.misfire_threshold_ms)
                .unwrap_or(defaults::MISFIRE_THRESHOLD_MS);
        validate::misfire_threshold_ms(misfire_threshold_ms)?;
        let catch_up_limit = or_stored(self.catch_up_limit, base, |b| b.catch_up_limit)
            .unwrap_or(defaults::CATCH_UP_LIMIT);
        validate::catch_up_limit(catch_up_limit)?;

        let routing = or_stored(self.routing, base, |b| b.routing.clone()).unwrap_or_default();
        validate::shards(&routing)?;
        let concurrency = or_stored(self.concurrency, base, |b| b.concurrency).unwrap_or_default();
        let children = or_stored(self.children, base, |b| b.children.clone()).unwrap_or_default();
        validate::routing_mode(&routing, concurrency, &children)?;
        validate::children(&children, id)?;

        let description = description_over(self.description, base);
        validate::description(&description)?;
        let labels = or_stored(self.labels, base, |b| b.labels.clone()).unwrap_or_default();
        validate::labels(&labels)?;

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
            enabled: or_stored(self.enabled, base, |b| b.enabled).unwrap_or(true),
            backoff,
            misfire_policy: or_stored(self.misfire_policy, base, |b| b.misfire_policy)
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

/// The schedule after an input: absent keeps the stored one, `null` or blank clears it.
fn schedule_over(given: Nullable<String>, base: Option<&JobSpec>) -> Option<String> {
    match given {
        Nullable::Absent => base.and_then(|b| b.schedule.clone()),
        Nullable::Null => None,
        Nullable::Value(s) if s.trim().is_empty() => None,
        Nullable::Value(s) => Some(s.trim().to_owned()),
    }
}

/// The params after an input: absent keeps the stored ones (`{}` on create), `null` is kept
/// as the JSON value `null`.
fn params_over(given: Nullable<Value>, base: Option<&JobSpec>) -> Value {
    match given {
        Nullable::Absent => base.map_or(Value::Object(Default::default()), |b| b.params.clone()),
        Nullable::Null => Value::Null,
        Nullable::Value(v) => v,
    }
}

/// The description after an input: absent keeps the stored one, `null` clears it.
fn description_over(given: Nullable<String>, base: Option<&JobSpec>) -> String {
    match given {
        Nullable::Absent => base.map(|b| b.description.clone()).unwrap_or_default(),
        Nullable::Null => String::new(),
        Nullable::Value(d) => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
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
        assert_eq!(j.timeout_ms, defaults::TIMEOUT_MS);
        assert_eq!(j.params, json!({}));
        assert!(j.enabled);
        assert_eq!(j.schedule, None);
        assert_eq!((j.created_at, j.updated_at, j.version), (NOW, NOW, 0));
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
        assert_eq!(field_of(with("handler", json!("a b"))), "handler");
        assert_eq!(
            field_of(with("params", json!({"blob": "x".repeat(70_000)}))),
            "params"
        );
        assert_eq!(field_of(with("timeout_ms", json!("soon"))), "timeout_ms");
        assert_eq!(field_of(with("timeout_ms", json!(0))), "timeout_ms");
        assert_eq!(field_of(with("max_attempts", json!(-1))), "max_attempts");
        assert_eq!(field_of(with("max_attempts", json!(101))), "max_attempts");
        assert_eq!(
            field_of(with("backoff", json!({"base_ms": 5, "max_ms": 1}))),
            "backoff"
        );
        assert_eq!(
            field_of(with("misfire_threshold_ms", json!(604_800_001))),
            "misfire_threshold_ms"
        );
        assert_eq!(field_of(with("catch_up_limit", json!(0))), "catch_up_limit");
        assert_eq!(field_of(with("enabled", json!("yes"))), "enabled");
        assert_eq!(field_of(with("id", json!("mine"))), "id");
        assert_eq!(field_of(with("version", json!(2))), "version");
        assert_eq!(field_of(with("created_at", json!(2))), "created_at");
        assert_eq!(field_of(with("updated_at", json!(2))), "updated_at");
        assert_eq!(field_of(with("bogus", json!(1))), "bogus");
        assert_eq!(
            field_of(with("routing", json!({"mode": "sharded", "shards": 0}))),
            "routing.shards"
        );
        assert!(with("routing", json!({"mode": "broadcast"})).is_ok());
        assert_eq!(field_of(with("children", json!(["01test"]))), "children");
        assert_eq!(
            field_of(with("description", json!("d".repeat(2_001)))),
            "description"
        );
        assert_eq!(
            field_of(with("labels", json!({"k": "v".repeat(257)}))),
            "labels.k"
        );
        let sharded_with = |k: &str, v: Value| {
            input(json!({"name": "n", "handler": "h", k: v,
                "routing": {"mode": "sharded", "shards": 2}}))
        };
        assert!(sharded_with("concurrency", json!("replace")).is_ok());
        assert!(sharded_with("children", json!(["01abc"])).is_ok());
        assert!(sharded_with("concurrency", json!("allow")).is_ok());
        assert_eq!(field_of(input(json!({"handler": "h"}))), "name");
        assert_eq!(field_of(input(json!({"name": "n"}))), "handler");
        assert_eq!(
            field_of(with("schedule", json!("@once 2001-01-01T00:00:00Z"))),
            "schedule"
        );
    }

    #[test]
    fn the_first_broken_field_is_reported() {
        // Checked in order: server fields, name, group, handler, timezone, schedule, …
        let r = input(json!({"id": "x", "name": "", "handler": "a b"}));
        assert_eq!(field_of(r), "id");
        let r = input(json!({"name": "", "group": "a b", "timezone": "Mars/Base"}));
        assert_eq!(field_of(r), "name");
        let r = input(json!({"name": "n", "handler": "h", "timezone": "Mars/Base",
            "schedule": "bogus"}));
        assert_eq!(field_of(r), "timezone");
        let r = input(
            json!({"name": "n", "handler": "h", "routing": {"mode": "sharded", "shards": 0},
            "children": ["NOT-AN-ID"]}),
        );
        assert_eq!(field_of(r), "routing.shards");
    }

    #[test]
    fn patch_keeps_unmentioned_fields_and_refuses_group_change() {
        let j = input(json!({"name": "n", "handler": "h", "schedule": "@hourly",
            "description": "d", "labels": {"a": "b"}}))
        .unwrap();
        let p = JobInput::from_json(br#"{"params": {"a": 1}}"#).unwrap();
        let j2 = p.into_spec(Some(&j), &j.id, NOW + 5).unwrap();
        assert_eq!(j2.schedule.as_deref(), Some("@hourly"));
        assert_eq!(j2.params, json!({"a": 1}));
        assert_eq!((j2.description.as_str(), j2.labels.len()), ("d", 1));
        assert_eq!((j2.created_at, j2.updated_at), (j.created_at, NOW + 5));
        let p = JobInput::from_json(br#"{"group": "other"}"#).unwrap();
        assert_eq!(field_of(p.into_spec(Some(&j), &j.id, NOW)), "group");
        let p = JobInput::from_json(br#"{"group": "default"}"#).unwrap();
        assert!(p.into_spec(Some(&j), &j.id, NOW).is_ok());
        let p = JobInput::from_json(br#"{"schedule": null}"#).unwrap();
        assert_eq!(p.into_spec(Some(&j), &j.id, NOW).unwrap().schedule, None);
        let p = JobInput::from_json(br#"{"schedule": "  "}"#).unwrap();
        assert_eq!(p.into_spec(Some(&j), &j.id, NOW).unwrap().schedule, None);
        let p = JobInput::from_json(br#"{"params": null, "description": null}"#).unwrap();
        let j3 = p.into_spec(Some(&j), &j.id, NOW).unwrap();
        assert_eq!((j3.params, j3.description.as_str()), (Value::Null, ""));
    }
}
