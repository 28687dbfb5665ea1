//! OpenAPI schemas of the `/views` answers, whose types live in `dotjob_shared::views`
//! (which knows nothing about OpenAPI). Schema-only, never serialised, like
//! [`super::schema`]; the end-to-end walk validates real answers against them.

#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// A run status, or `none` (the job has no run).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum LastStatusFilter {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Dead,
    Skipped,
    Cancelled,
    Lost,
    None,
}

/// A job's newest run (by scheduled instant), in short.
#[derive(ToSchema)]
pub struct LastRun {
    pub id: String,
    pub status: dotjob_shared::model::run::RunStatus,
    #[schema(format = DateTime)]
    pub scheduled_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
}

/// One row of the job table.
#[derive(ToSchema)]
pub struct JobRow {
    pub job: dotjob_shared::model::job::JobView,
    /// `null` when the job has no run kept.
    pub last_run: Option<LastRun>,
}

/// A page of the job table.
#[derive(ToSchema)]
pub struct JobTable {
    pub items: Vec<JobRow>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
    /// Jobs matching the filters.
    pub total: u64,
}

/// Runs whose tick falls in one minute.
#[derive(ToSchema)]
pub struct Minute {
    /// Start of the minute.
    #[schema(format = DateTime)]
    pub at: String,
    /// Runs by status (statuses with none are left out).
    pub by_status: BTreeMap<String, u64>,
}

/// Run figures of a group's last hour.
#[derive(ToSchema)]
pub struct RunWindow {
    #[schema(format = DateTime)]
    pub from: String,
    /// Runs in the window (exact).
    pub total: u64,
    /// Runs the figures come from (the newest of the window, at most 500).
    pub sampled: u64,
    /// Whether they are every run of the window.
    pub complete: bool,
    /// 60 minutes, oldest first.
    pub minutes: Vec<Minute>,
    /// Share of the sampled finished runs that did not succeed.
    pub failure_rate: Option<f64>,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
}

/// Who holds a group's scheduling lease.
#[derive(ToSchema)]
pub struct LeaseView {
    /// Replica id (empty: nobody).
    pub owner: String,
    pub epoch: u64,
    /// Whether the lease is current.
    pub current: bool,
}

/// One group at a glance.
#[derive(ToSchema)]
pub struct GroupOverview {
    pub group: String,
    pub jobs: u64,
    /// Jobs with a next fire instant.
    pub scheduled: u64,
    /// Jobs whose next fire instant has passed.
    pub due: u64,
    /// Entries not delivered yet.
    pub queue_depth: Option<u64>,
    pub pending: u64,
    pub retrying: u64,
    pub dead_letters: u64,
    /// Age of the oldest undelivered entry, ms.
    pub lag_ms: Option<i64>,
    pub executors: u64,
    /// Live and enabled executors.
    pub live_executors: u64,
    /// Set when work is scheduled or waiting and no live executor can take it.
    pub warning: Option<String>,
    pub lease: LeaseView,
    pub runs: RunWindow,
}

/// A scheduler replica.
#[derive(ToSchema)]
pub struct Replica {
    pub id: String,
    #[schema(format = DateTime)]
    pub last_seen: String,
    /// Heartbeat within 15 s.
    pub alive: bool,
    /// Groups whose current lease it holds.
    pub groups: Vec<String>,
}

/// The overview.
#[derive(ToSchema)]
pub struct Overview {
    #[schema(format = DateTime)]
    pub generated_at: String,
    /// At most 100 groups, by name.
    pub groups: Vec<GroupOverview>,
    pub groups_truncated: bool,
    pub schedulers: Vec<Replica>,
}
