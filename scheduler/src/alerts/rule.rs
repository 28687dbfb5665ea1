//! Alert rules: what to watch (a scope and a list of events), where to send it (a signed
//! webhook or a Slack incoming webhook) and how often at most (a silence window per rule and
//! subject). The API writes them, the evaluator reads them; both go through this model.
//!
//! A rule is stored whole as JSON in the hash `<prefix>:{~alerts}:rules`, the webhook secret
//! included (the evaluator signs with it); [`RuleView`] is what the API shows, without the
//! secret (`secret_set` instead).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use dotjob_shared::model::job::{valid_job_id, validate_group};

/// Default silence window: one alert per rule and subject per 10 minutes.
pub const DEFAULT_SILENCE_MS: u64 = 10 * 60 * 1_000;
/// Shortest silence window (a state check is evaluated every few seconds).
pub const MIN_SILENCE_MS: u64 = 1_000;
/// Longest silence window: a week.
pub const MAX_SILENCE_MS: u64 = 7 * 24 * 3_600 * 1_000;
/// Most rules.
pub const MAX_RULES: usize = 500;
/// Longest rule name.
const NAME_MAX: usize = 200;
/// Longest target URL.
const URL_MAX: usize = 2_048;
/// Shortest and longest webhook secret.
const SECRET_MIN: usize = 16;
const SECRET_MAX: usize = 512;
/// Shortest `long_running` threshold.
const LONG_RUNNING_MIN_MS: u64 = 1_000;

/// One kind of event a rule alerts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventRule {
    /// A run ended `dead` (its attempts exhausted).
    Dead,
    /// An attempt timed out.
    TimedOut,
    /// A job's runs failed `count` times in a row (each further failure alerts again,
    /// within the silence window).
    ConsecutiveFailures {
        /// How many failed runs in a row, at least 1.
        count: u32,
    },
    /// A scheduled slot was skipped: missed by more than the misfire threshold under the
    /// `skip` policy, or skipped by `forbid` while the previous run was in flight.
    Missed,
    /// A run has been running longer than `after_ms`.
    LongRunning {
        /// Milliseconds, at least 1000.
        after_ms: u64,
    },
    /// The group has due jobs or waiting runs and no live, enabled executor.
    NoExecutor,
    /// No scheduler replica holds the group's lease (nothing fires in it).
    NoLeaseHolder,
}

impl EventRule {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dead => "dead",
            Self::TimedOut => "timed_out",
            Self::ConsecutiveFailures { .. } => "consecutive_failures",
            Self::Missed => "missed",
            Self::LongRunning { .. } => "long_running",
            Self::NoExecutor => "no_executor",
            Self::NoLeaseHolder => "no_lease_holder",
        }
    }
}

/// Where alerts go, as stored (with the secret; `Debug` never prints it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A JSON `POST` signed with HMAC-SHA256 (`X-Dotjob-Signature`).
    Webhook {
        /// http or https URL.
        url: String,
        /// The HMAC key.
        secret: String,
    },
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack {
        /// The incoming-webhook URL.
        url: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &"<redacted>")
                .finish(),
            Self::Slack { url } => f.debug_struct("Slack").field("url", url).finish(),
        }
    }
}

impl Target {
    /// The URL alerts are posted to.
    pub fn url(&self) -> &str {
        match self {
            Self::Webhook { url, .. } | Self::Slack { url } => url,
        }
    }
}

/// A rule as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Server-assigned id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// `global`, `group:<name>` or `job:<id>`.
    pub scope: String,
    /// What it alerts on.
    pub events: Vec<EventRule>,
    /// Where alerts go.
    pub target: Target,
    /// One alert per subject per this many ms at most.
    pub silence_ms: u64,
    /// Off: it alerts on nothing.
    pub enabled: bool,
    /// Bumped by every change.
    pub version: u64,
    /// When created (ms, Redis clock); events older than this are not alerted on.
    pub created_at: i64,
    /// When last changed (ms, Redis clock).
    pub updated_at: i64,
}

/// The scope of a rule, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every group and job.
    Global,
    /// One group.
    Group(&'a str),
    /// One job.
    Job(&'a str),
}

impl<'a> Scope<'a> {
    /// Parses `global`, `group:<name>` or `job:<id>`.
    pub fn parse(s: &'a str) -> Result<Self, String> {
        const HOW: &str = "must be `global`, `group:<group name>` or `job:<job id>`";
        if s == "global" {
            return Ok(Self::Global);
        }
        if let Some(g) = s.strip_prefix("group:") {
            validate_group(g).map_err(|_| format!("{HOW}; `{g}` is not a group name"))?;
            return Ok(Self::Group(g));
        }
        if let Some(j) = s.strip_prefix("job:") {
            if !valid_job_id(j) {
                return Err(format!("{HOW}; `{j}` is not a job id"));
            }
            return Ok(Self::Job(j));
        }
        Err(HOW.to_owned())
    }
}

impl Rule {
    /// Its scope, parsed (a stored rule's scope was validated when written).
    pub fn scope(&self) -> Scope<'_> {
        Scope::parse(&self.scope).unwrap_or(Scope::Global)
    }

    /// Whether it covers `group` (and, for a job event, `job`).
    pub fn covers(&self, group: &str, job: Option<&str>) -> bool {
        match self.scope() {
            Scope::Global => true,
            Scope::Group(g) => g == group,
            Scope::Job(j) => job == Some(j),
        }
    }

    /// Whether it covers anything of `group` (a job rule: maybe; checked per event).
    pub fn may_cover_group(&self, group: &str) -> bool {
        match self.scope() {
            Scope::Global | Scope::Job(_) => true,
            Scope::Group(g) => g == group,
        }
    }

    /// The first of its events that `pred` accepts.
    pub fn find(&self, pred: impl Fn(&EventRule) -> bool) -> Option<&EventRule> {
        self.events.iter().find(|e| pred(e))
    }
}

/// Where alerts go, as written by a client.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetInput {
    /// A JSON `POST` signed with HMAC-SHA256 (header `X-Dotjob-Signature`).
    Webhook {
        /// http or https URL.
        url: String,
        /// The HMAC key, 16-512 characters; write-only. Required when creating; left out of
        /// a change, the current secret is kept.
        secret: Option<String>,
    },
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack {
        /// The incoming-webhook URL (http or https).
        url: String,
    },
}

impl std::fmt::Debug for TargetInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url, .. } => f.debug_struct("Webhook").field("url", url).finish(),
            Self::Slack { url } => f.debug_struct("Slack").field("url", url).finish(),
        }
    }
}

/// A rule as written (`POST` creates: `name`, `events` and `target` required; `PATCH`
/// changes the fields given).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// A name for people, 1-200 characters.
    pub name: Option<String>,
    /// `global` (default), `group:<group name>` or `job:<job id>`.
    #[schema(example = "group:billing")]
    pub scope: Option<String>,
    /// What it alerts on: at least one event, each at most once.
    pub events: Option<Vec<EventRule>>,
    /// Where alerts go.
    pub target: Option<TargetInput>,
    /// One alert per rule and subject (a job, run or group) per this many ms at most:
    /// 1000 to 604800000, default 600000 (10 minutes).
    pub silence_ms: Option<u64>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A client mistake: the field and what is wrong with it.
pub type Invalid = (String, String);

fn invalid(field: &str, msg: impl Into<String>) -> Invalid {
    (field.to_owned(), msg.into())
}

/// Checks a target URL: http or https, with a host, no longer than 2048 characters.
fn check_url(field: &str, url: &str) -> Result<(), Invalid> {
    if url.len() > URL_MAX {
        return Err(invalid(field, format!("longer than {URL_MAX} characters")));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid(field, format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!("must be an http or https URL, not {}", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must name a host"));
    }
    Ok(())
}

fn check_events(events: &[EventRule]) -> Result<(), Invalid> {
    if events.is_empty() {
        return Err(invalid("events", "must name at least one event"));
    }
    for (i, e) in events.iter().enumerate() {
        match e {
            EventRule::ConsecutiveFailures { count } if *count == 0 => {
                return Err(invalid(&format!("events[{i}].count"), "must be at least 1"));
            }
            EventRule::LongRunning { after_ms } if *after_ms < LONG_RUNNING_MIN_MS => {
                return Err(invalid(
                    &format!("events[{i}].after_ms"),
                    format!("must be at least {LONG_RUNNING_MIN_MS}"),
                ));
            }
            _ => {}
        }
        if events[..i].iter().any(|o| o.name() == e.name()) {
            return Err(invalid(
                &format!("events[{i}]"),
                format!("`{}` is listed twice", e.name()),
            ));
        }
    }
    Ok(())
}

fn target(input: TargetInput, current: Option<&Target>) -> Result<Target, Invalid> {
    match input {
        TargetInput::Webhook { url, secret } => {
            check_url("target.url", &url)?;
            let secret = match (secret, current) {
                (Some(s), _) => {
                    let n = s.chars().count();
                    if !(SECRET_MIN..=SECRET_MAX).contains(&n) {
                        return Err(invalid(
                            "target.secret",
                            format!("must be {SECRET_MIN} to {SECRET_MAX} characters"),
                        ));
                    }
                    s
                }
                (None, Some(Target::Webhook { secret, .. })) => secret.clone(),
                (None, _) => {
                    return Err(invalid(
                        "target.secret",
                        "a webhook needs a secret to sign its alerts with",
                    ));
                }
            };
            Ok(Target::Webhook { url, secret })
        }
        TargetInput::Slack { url } => {
            check_url("target.url", &url)?;
            Ok(Target::Slack { url })
        }
    }
}

impl RuleInput {
    /// A new rule `id` at `now`; scope existence is checked by the caller.
    pub fn into_new(self, id: String, now: i64) -> Result<Rule, Invalid> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| invalid("name", "is required"))?;
        let events = self
            .events
            .clone()
            .ok_or_else(|| invalid("events", "is required"))?;
        let target_in = self
            .target
            .clone()
            .ok_or_else(|| invalid("target", "is required"))?;
        let rule = Rule {
            id,
            name,
            scope: self.scope.clone().unwrap_or_else(|| "global".to_owned()),
            events,
            target: target(target_in, None)?,
            silence_ms: self.silence_ms.unwrap_or(DEFAULT_SILENCE_MS),
            enabled: self.enabled.unwrap_or(true),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        check(&rule)?;
        Ok(rule)
    }

    /// `current` with the given fields changed at `now`.
    pub fn apply(self, current: &Rule, now: i64) -> Result<Rule, Invalid> {
        let mut rule = current.clone();
        if let Some(n) = self.name {
            rule.name = n;
        }
        if let Some(s) = self.scope {
            rule.scope = s;
        }
        if let Some(e) = self.events {
            rule.events = e;
        }
        if let Some(t) = self.target {
            rule.target = target(t, Some(&current.target))?;
        }
        if let Some(s) = self.silence_ms {
            rule.silence_ms = s;
        }
        if let Some(e) = self.enabled {
            rule.enabled = e;
        }
        check(&rule)?;
        if rule != *current {
            rule.version += 1;
            rule.updated_at = now;
        }
        Ok(rule)
    }
}

/// Every check of a whole rule but the existence of its scope's group or job.
fn check(rule: &Rule) -> Result<(), Invalid> {
    let name = rule.name.trim();
    if name.is_empty() || rule.name.chars().count() > NAME_MAX {
        return Err(invalid(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    }
    if rule.name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    Scope::parse(&rule.scope).map_err(|m| invalid("scope", m))?;
    check_events(&rule.events)?;
    if !(MIN_SILENCE_MS..=MAX_SILENCE_MS).contains(&rule.silence_ms) {
        return Err(invalid(
            "silence_ms",
            format!("must be between {MIN_SILENCE_MS} and {MAX_SILENCE_MS}"),
        ));
    }
    let global_only = rule
        .events
        .iter()
        .any(|e| matches!(e, EventRule::NoExecutor | EventRule::NoLeaseHolder));
    if global_only && matches!(rule.scope(), Scope::Job(_)) {
        return Err(invalid(
            "events",
            "`no_executor` and `no_lease_holder` are about groups: use a global or group scope",
        ));
    }
    Ok(())
}

/// Where alerts go, as the API shows it (never the secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TargetView {
    /// `webhook` or `slack`.
    #[serde(rename = "type")]
    #[schema(example = "webhook")]
    pub kind: &'static str,
    /// The URL alerts are posted to.
    pub url: String,
    /// Whether a signing secret is set (webhooks; never shown).
    pub secret_set: bool,
}

/// A rule as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = AlertRule)]
pub struct RuleView {
    /// Server-assigned id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// `global`, `group:<group name>` or `job:<job id>`.
    pub scope: String,
    /// What it alerts on.
    pub events: Vec<EventRule>,
    /// Where alerts go.
    pub target: TargetView,
    /// One alert per rule and subject per this many ms at most.
    pub silence_ms: u64,
    /// Whether it alerts.
    pub enabled: bool,
    /// Bumped by every change.
    pub version: u64,
    /// When created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&Rule> for RuleView {
    fn from(r: &Rule) -> Self {
        let (kind, secret_set) = match &r.target {
            Target::Webhook { secret, .. } => ("webhook", !secret.is_empty()),
            Target::Slack { .. } => ("slack", false),
        };
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            scope: r.scope.clone(),
            events: r.events.clone(),
            target: TargetView {
                kind,
                url: r.target.url().to_owned(),
                secret_set,
            },
            silence_ms: r.silence_ms,
            enabled: r.enabled,
            version: r.version,
            created_at: dotjob_shared::time::rfc3339(r.created_at),
            updated_at: dotjob_shared::time::rfc3339(r.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> RuleInput {
        serde_json::from_value(v).unwrap()
    }

    fn field(r: Result<Rule, Invalid>) -> String {
        r.unwrap_err().0
    }

    fn good() -> serde_json::Value {
        json!({"name": "dead billing runs", "scope": "group:billing",
            "events": [{"event": "dead"}, {"event": "consecutive_failures", "count": 3}],
            "target": {"type": "webhook", "url": "https://hooks.example.com/a",
                "secret": "0123456789abcdef"}})
    }

    #[test]
    fn a_good_rule_is_created_with_defaults() {
        let r = input(good()).into_new("01r".into(), 5).unwrap();
        assert_eq!(r.silence_ms, DEFAULT_SILENCE_MS);
        assert!(r.enabled && r.version == 1);
        assert_eq!(r.scope(), Scope::Group("billing"));
        assert!(r.covers("billing", None) && !r.covers("other", None));
        assert!(
            !format!("{r:?}").contains("0123456789abcdef"),
            "Debug shows the secret"
        );
        let view = serde_json::to_value(RuleView::from(&r)).unwrap();
        assert_eq!(view["target"]["secret_set"], true);
        assert!(!view.to_string().contains("0123456789abcdef"));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let with = |k: &str, v: serde_json::Value| {
            let mut g = good();
            g[k] = v;
            input(g).into_new("01r".into(), 5)
        };
        assert_eq!(field(with("name", json!(" "))), "name");
        assert_eq!(field(with("scope", json!("team:x"))), "scope");
        assert_eq!(field(with("scope", json!("group:a:b"))), "scope");
        assert_eq!(field(with("events", json!([]))), "events");
        assert_eq!(
            field(with(
                "events",
                json!([{"event": "consecutive_failures", "count": 0}])
            )),
            "events[0].count"
        );
        assert_eq!(
            field(with(
                "events",
                json!([{"event": "dead"}, {"event": "dead"}])
            )),
            "events[1]"
        );
        assert_eq!(
            field(with(
                "events",
                json!([{"event": "long_running", "after_ms": 5}])
            )),
            "events[0].after_ms"
        );
        assert_eq!(
            field(with(
                "target",
                json!({"type": "webhook", "url": "ftp://x/y", "secret": "0123456789abcdef"})
            )),
            "target.url"
        );
        assert_eq!(
            field(with("target", json!({"type": "slack", "url": "not a url"}))),
            "target.url"
        );
        assert_eq!(
            field(with(
                "target",
                json!({"type": "webhook", "url": "http://x/y"})
            )),
            "target.secret"
        );
        assert_eq!(field(with("silence_ms", json!(10))), "silence_ms");
        assert_eq!(
            field(with("scope", json!("job:01abc")).and_then(|r| {
                let mut r = r;
                r.events = vec![EventRule::NoExecutor];
                check(&r).map(|()| r)
            })),
            "events"
        );
        assert!(
            serde_json::from_value::<RuleInput>(json!({"events": [{"event": "deadd"}]})).is_err()
        );
    }

    #[test]
    fn a_change_keeps_the_secret_and_bumps_the_version_only_when_something_changed() {
        let r = input(good()).into_new("01r".into(), 5).unwrap();
        let same = input(json!({"name": "dead billing runs"}))
            .apply(&r, 9)
            .unwrap();
        assert_eq!((same.version, same.updated_at), (1, 5));
        let moved =
            input(json!({"target": {"type": "webhook", "url": "https://other.example.com/"}}))
                .apply(&r, 9)
                .unwrap();
        assert_eq!(moved.version, 2);
        assert_eq!(
            moved.target,
            Target::Webhook {
                url: "https://other.example.com/".into(),
                secret: "0123456789abcdef".into()
            }
        );
        let slack = input(
            json!({"target": {"type": "slack", "url": "https://hooks.slack.com/services/x"}}),
        )
        .apply(&r, 9)
        .unwrap();
        assert!(matches!(slack.target, Target::Slack { .. }));
    }
}
