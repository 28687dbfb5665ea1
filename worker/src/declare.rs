//! Jobs declared in code: a worker can say which scheduled jobs it serves
//! ([`crate::WorkerBuilder::schedule`], [`crate::WorkerBuilder::schedule_job`]), like periodic
//! jobs in Sidekiq, Oban or River, instead of creating them over the admin API.
//!
//! When the worker starts, each declared job is upserted by group + name: created if no job of
//! the group has that name, changed if its declared fields differ from the stored ones, and
//! left alone (version unchanged) otherwise. Fields the declaration does not set (backoff,
//! misfire policy, …) keep what the API set.

use std::time::Duration;

use dotjob_shared::Store;
use dotjob_shared::model::job::{JobInput, JobSpec, Nullable};
use dotjob_shared::store::{JobFilter, PAGE_MAX};
use serde_json::Value;
use tracing::info;

/// A job definition a worker declares: name and schedule, and optionally a timezone,
/// params, a timeout and the number of attempts.
///
/// ```
/// use std::time::Duration;
/// use dotjob_worker::JobDef;
///
/// let def = JobDef::new("nightly-report", "0 2 * * *")
///     .timezone("Europe/Berlin")
///     .params(serde_json::json!({"format": "pdf"}))
///     .timeout(Duration::from_secs(600))
///     .max_attempts(3);
/// assert_eq!(def.name(), "nightly-report");
/// ```
#[derive(Clone, Debug)]
pub struct JobDef {
    name: String,
    schedule: String,
    timezone: String,
    params: Value,
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
}

impl JobDef {
    /// A job `name` firing on `schedule` (cron, `@every 10m`, `@daily`, …) in UTC, with
    /// empty params.
    pub fn new(name: impl Into<String>, schedule: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            schedule: schedule.into(),
            timezone: "UTC".to_owned(),
            params: Value::Object(serde_json::Map::new()),
            timeout: None,
            max_attempts: None,
        }
    }

    /// The IANA zone the schedule is read in (default UTC).
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// The params every run gets.
    pub fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// The run timeout (default: the server's default, kept unless set here).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Attempts per run, the first included (default: kept unless set here).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `stored` already matches this definition served by `handler`.
    fn matches(&self, stored: &JobSpec, handler: &str) -> bool {
        stored.handler == handler
            && stored.schedule.as_deref() == Some(self.schedule.as_str())
            && stored.timezone == self.timezone
            && stored.params == self.params
            && self
                .timeout
                .is_none_or(|t| stored.timeout_ms == t.as_millis() as u64)
            && self.max_attempts.is_none_or(|n| stored.max_attempts == n)
    }

    /// The fields to write (on create, with the group and name).
    fn input(&self, group: Option<&str>, handler: &str) -> JobInput {
        JobInput {
            name: group.map(|_| self.name.clone()),
            group: group.map(str::to_owned),
            handler: Some(handler.to_owned()),
            schedule: Nullable::Value(self.schedule.clone()),
            timezone: Some(self.timezone.clone()),
            params: Nullable::Value(self.params.clone()),
            timeout_ms: self.timeout.map(|t| t.as_millis() as u64),
            max_attempts: self.max_attempts,
            ..JobInput::default()
        }
    }
}

/// What happened to one declared job at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upserted {
    Created,
    Changed,
    Unchanged,
}

/// Upserts one declared job served by `handler` into `group`.
pub(crate) async fn upsert(
    store: &Store,
    group: &str,
    def: &JobDef,
    handler: &str,
) -> dotjob_shared::Result<Upserted> {
    let filter = JobFilter {
        group: Some(group.to_owned()),
        name: Some(def.name.clone()),
        enabled: None,
    };
    let mut cursor: Option<String> = None;
    let existing = loop {
        let page = store
            .list_jobs(&filter, cursor.as_deref(), PAGE_MAX)
            .await?;
        if let Some(v) = page.items.iter().find(|v| v.spec.name == def.name) {
            break Some(v.spec.clone());
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break None,
        }
    };
    let outcome = match existing {
        None => {
            store.create_job(def.input(Some(group), handler)).await?;
            Upserted::Created
        }
        Some(spec) if def.matches(&spec, handler) => Upserted::Unchanged,
        Some(spec) => {
            store.update_job(&spec.id, def.input(None, handler)).await?;
            Upserted::Changed
        }
    };
    info!(job.name = %def.name, job.group = %group, outcome = ?outcome, "declared job");
    Ok(outcome)
}
