//! OpenAPI schemas of the model types the API sends and receives.
//!
//! The model lives in `dotjob-shared`, which knows nothing about HTTP or OpenAPI, so this
//! module describes its JSON forms (`JobView`, `JobInput`, `Run`, `GroupInfo`, …) with
//! schema-only types: nothing here is ever serialised, they exist for `utoipa` to read. The
//! end-to-end tests validate every answer of a walk through the whole API against these
//! schemas (unknown or missing fields fail), so a model change that is not mirrored here
//! breaks a test instead of the document silently drifting.
//!
//! Types the API layer owns itself (query strings, trigger and preview bodies, log and
//! stats answers) derive their schemas directly where they are defined.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// An error answer: every 4xx and 5xx has this body.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid`, `not_found`, `conflict`, `unauthorized`, `forbidden`,
    /// `too_large`, `unsupported_media_type`, `method_not_allowed`, `unavailable`, `internal`.
    #[schema(example = "invalid")]
    pub code: String,
    /// For people.
    pub message: String,
    /// The offending field or parameter (dotted path), when there is one.
    #[schema(example = "schedule")]
    pub field: Option<String>,
}

/// What to do with ticks found due later than the misfire threshold.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum MisfirePolicy {
    FireOnce,
    Skip,
    CatchUp,
}

/// What a tick does while a run of the same job is still in flight.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    Allow,
    Forbid,
    Replace,
}

/// Where runs execute: `any` one executor, or `sharded` into N runs (run ids end `-s<k>`),
/// each with its shard index and parameter (a sharded job needs concurrency `allow` and no
/// children). `broadcast` (every live executor) is not supported yet and is refused.
#[derive(ToSchema, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Routing {
    /// One run on any executor of the group.
    Any,
    /// `shards` runs per tick or trigger, each with its index and parameter.
    Sharded {
        /// Number of shards (1-1024).
        #[schema(minimum = 1, maximum = 1024, example = 2)]
        shards: u32,
        /// One parameter per shard, or none.
        #[serde(default)]
        shard_params: Vec<Value>,
    },
}

/// Retry delays: `base_ms · 2^(attempt-1)`, capped at `max_ms`, ±20 % jitter.
#[derive(ToSchema)]
pub struct Backoff {
    #[schema(minimum = 1, example = 1000)]
    pub base_ms: u64,
    #[schema(minimum = 1, example = 300000)]
    pub max_ms: u64,
}

/// A job as stored, with its next fire instant.
#[derive(ToSchema)]
pub struct Job {
    /// Server-assigned (lowercase ULID).
    #[schema(example = "01jcz3k8q2m7w4x9v6t5r0p1aa")]
    pub id: String,
    pub name: String,
    /// Executor group whose workers run it.
    pub group: String,
    /// Handler name the workers dispatch on.
    pub handler: String,
    /// Cron (6-field with seconds or 5-field), `@hourly`-style macro, `@every 30s` or
    /// `@once <RFC 3339>`; `null` = only when triggered.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub timezone: String,
    /// Parameters given to the handler (any JSON).
    pub params: Value,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    /// Scheduled ticks fire only while enabled (pause / resume).
    pub enabled: bool,
    pub backoff: Backoff,
    pub misfire_policy: MisfirePolicy,
    pub misfire_threshold_ms: u64,
    pub catch_up_limit: u32,
    pub concurrency: ConcurrencyPolicy,
    pub routing: Routing,
    /// Jobs triggered (trigger `child`, `parent_run` set) each time a run of this one
    /// succeeds, before that run is acknowledged: at least once per succeeded run.
    pub children: Vec<String>,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    /// Bumped by every write; runs record the version they were fired with.
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Next scheduled fire; `null` when paused or manual-only.
    #[schema(format = DateTime)]
    pub next_fire_at: Option<String>,
}

/// A job to create, or the fields to change (PATCH: only the fields sent change). `name`
/// and `handler` are required on create; `group` cannot change after it; `id`, `version`,
/// `created_at` and `updated_at` are assigned by the server and refused here. Unknown
/// fields are refused.
#[derive(ToSchema)]
#[schema(example = json!({"name": "nightly-report", "handler": "http", "schedule": "0 2 * * *",
    "timezone": "Europe/Berlin", "params": {"url": "http://reports.internal/run"}}))]
pub struct JobInput {
    /// 1-200 characters, no control characters.
    #[schema(max_length = 200, example = "nightly-report")]
    pub name: Option<String>,
    /// 1-64 of `[A-Za-z0-9_.-]`; default `default`.
    #[schema(
        max_length = 64,
        pattern = "^[A-Za-z0-9_.-]{1,64}$",
        example = "default"
    )]
    pub group: Option<String>,
    /// 1-128 of `[A-Za-z0-9_.:/-]`.
    #[schema(max_length = 128, example = "echo")]
    pub handler: Option<String>,
    /// `null` or `""` = only when triggered.
    #[schema(example = "*/10 * * * * *")]
    pub schedule: Option<String>,
    /// IANA zone, default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// Any JSON, at most 64 KiB compact.
    pub params: Option<Value>,
    /// 1 to 604800000 (7 days); default 300000.
    #[schema(minimum = 1, maximum = 604800000_u64, example = 5000)]
    pub timeout_ms: Option<u64>,
    /// 1-100; default 1 (no retry).
    #[schema(minimum = 1, maximum = 100, example = 3)]
    pub max_attempts: Option<u32>,
    pub enabled: Option<bool>,
    pub backoff: Option<Backoff>,
    pub misfire_policy: Option<MisfirePolicy>,
    /// At most 7 days; default 30000.
    #[schema(maximum = 604800000_u64)]
    pub misfire_threshold_ms: Option<u64>,
    /// 1-10000; default 100.
    #[schema(minimum = 1, maximum = 10000)]
    pub catch_up_limit: Option<u32>,
    pub concurrency: Option<ConcurrencyPolicy>,
    pub routing: Option<Routing>,
    /// Jobs triggered when a run of this one succeeds; at most 32 job ids, any group.
    pub children: Option<Vec<String>>,
    /// At most 2000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// At most 32; keys 1-64 characters, values at most 256.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Where a run is in its life.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Dead,
    Skipped,
    Cancelled,
    Lost,
}

/// One earlier attempt of a run.
#[derive(ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    pub status: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub worker: Option<String>,
    pub code: Option<u16>,
    pub error: Option<String>,
}

/// One run: an execution of a tick (or of a manual trigger).
#[derive(ToSchema)]
pub struct Run {
    /// `<job id>-<tick ms>` for a scheduled tick, `<job id>-m<ms>-<n>` for a manual run.
    pub id: String,
    pub job_id: String,
    /// Job version it was fired with.
    pub job_version: u64,
    pub group: String,
    pub status: RunStatus,
    /// Attempt number (the stream delivery count); 0 while queued.
    pub attempt: u32,
    /// The tick; for a manual run, the trigger instant.
    #[schema(format = DateTime)]
    pub scheduled_at: Option<String>,
    #[schema(format = DateTime)]
    pub enqueued_at: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Executor of the last attempt.
    pub worker: Option<String>,
    /// 200 ok, 500 failed, 502 timed out.
    pub code: Option<u16>,
    /// Handler result (any JSON).
    pub result: Option<Value>,
    pub error: Option<String>,
    /// `schedule`, `manual`, `child` or `requeue`.
    pub trigger: String,
    /// Params override of a manual trigger.
    pub params: Option<Value>,
    /// When the next attempt is due, while a retry is pending.
    #[schema(format = DateTime)]
    pub retry_at: Option<String>,
    /// Stream entry id.
    pub entry: Option<String>,
    /// Scheduler replica and lease epoch that fired it (`<replica>|<epoch>`).
    pub fired_by: Option<String>,
    pub shard: Option<u32>,
    pub shards: Option<u32>,
    pub shard_param: Option<Value>,
    /// Run whose success fired this one.
    pub parent_run: Option<String>,
    /// Earlier attempts, oldest first.
    pub attempts: Vec<Attempt>,
}

/// A page of jobs.
#[derive(ToSchema)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A page of runs.
#[derive(ToSchema)]
pub struct RunPage {
    pub items: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// One executor group.
#[derive(ToSchema)]
pub struct Group {
    pub name: String,
    /// Jobs in it.
    pub jobs: u64,
    /// Entries in the stream (queued, pending, and done but not trimmed yet).
    pub stream_length: u64,
    /// Delivered, not acknowledged.
    pub pending: u64,
    /// Not delivered yet (queue depth); `null` when Redis cannot tell.
    pub lag: Option<u64>,
    /// Registered executors.
    pub executors: u64,
    pub dead_letters: u64,
}

/// One executor (worker process) of a group, with what it registered.
#[derive(ToSchema)]
pub struct Executor {
    /// Its consumer name.
    pub id: String,
    pub group: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u64>,
    /// Worker library version.
    pub version: Option<String>,
    /// Handlers it runs.
    pub handlers: Option<Vec<String>>,
    pub concurrency: Option<u64>,
    pub lease_ms: Option<u64>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_heartbeat: Option<String>,
    /// Heartbeat within three leases.
    pub alive: bool,
    /// Disabled by an admin: claims nothing new.
    pub disabled: bool,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
}

/// One dead letter: a run whose attempts were exhausted.
#[derive(ToSchema)]
pub struct DeadLetter {
    /// Entry id in the dead-letter stream (requeue by it).
    pub entry: String,
    pub run: String,
    pub job: String,
    pub attempts: u64,
    pub error: String,
    #[schema(format = DateTime)]
    pub failed_at: String,
}

/// A page of dead letters.
#[derive(ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}
