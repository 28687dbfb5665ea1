//! Jobs and runs in Redis: the operations the admin API and the processes share.
//!
//! Writes go through the typed script calls of [`crate::scripts`] so each is atomic within
//! its group; every job write bumps the job's version and publishes an [`Event`] after it
//! is durable. Reads are plain `HGETALL`s, pipelined for pages. The operations are split by
//! what they touch: job definitions (`jobs`), manual enqueues (`trigger`) and run
//! records (`runs`).

use redis::AsyncCommands;
use serde::Serialize;

use crate::conn::{Conn, Redis, now_ms};
use crate::error::Result;
use crate::events::Event;
use crate::model::job::valid_job_id;
use crate::model::run::RunStatus;

mod cycles;
mod jobs;
mod runs;
mod trigger;

pub use trigger::{IDEMPOTENCY_KEY_MAX, Triggered, check_idempotency_key};

/// Most items on one page.
pub const PAGE_MAX: usize = 500;

/// `ZRANGE index from + BYLEX LIMIT 0 n`: up to `n` members of a lexically ordered index
/// (job ids), from `from` (`-`, or `(<id>` for after a cursor).
pub(crate) fn ids_from(index: &str, from: &str, n: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(index)
        .arg(from)
        .arg("+")
        .arg("BYLEX")
        .arg("LIMIT")
        .arg(0)
        .arg(n);
    cmd
}

/// One page of a listing; pass `next_cursor` back as `cursor` for the next one.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Filters for [`Store::list_jobs`].
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only this group.
    pub group: Option<String>,
    /// Name contains this (case-insensitive).
    pub name: Option<String>,
    /// Only enabled / only paused.
    pub enabled: Option<bool>,
}

/// Filters for [`Store::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Scheduled at or after (ms).
    pub from_ms: Option<i64>,
    /// Scheduled at or before (ms).
    pub to_ms: Option<i64>,
}

/// Job and run operations over one Redis.
#[derive(Clone, Debug)]
pub struct Store {
    redis: Redis,
}

impl Store {
    /// A store over `redis`.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis handle.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Publishes a change notification (a hint; failures are logged, not returned).
    pub async fn publish(&self, event: &Event) {
        match self.redis.conn().await {
            Ok(mut c) => self.publish_on(&mut c, event).await,
            Err(e) => tracing::warn!(error = %e, "could not publish event"),
        }
    }

    async fn publish_on(&self, c: &mut Conn, event: &Event) {
        let payload = serde_json::to_string(event).unwrap_or_default();
        let res: redis::RedisResult<i64> = c.publish(self.redis.keys().events(), payload).await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "could not publish event");
        }
    }

    /// The group a job lives in.
    pub async fn job_group(&self, id: &str) -> Result<Option<String>> {
        if !valid_job_id(id) {
            return Ok(None);
        }
        let mut c = self.redis.conn().await?;
        Ok(c.hget(self.redis.keys().job_index(), id).await?)
    }

    /// The Redis clock.
    pub async fn now_ms(&self) -> Result<i64> {
        let mut c = self.redis.conn().await?;
        now_ms(&mut c).await
    }
}
