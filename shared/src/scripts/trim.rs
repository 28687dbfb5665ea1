//! `trim_runs.lua` and `trim_stream.lua`: retention of run records and of the group stream.

use redis::aio::ConnectionLike;

use super::{TRIM_RUNS, TRIM_STREAM};
use crate::error::Result;

/// Deletes old run records of a batch of a group's jobs.
#[derive(Clone, Copy, Debug)]
pub struct TrimRuns<'a> {
    /// Runs kept per job.
    pub keep: u64,
    /// Oldest run kept (ms of age, on its scheduled instant).
    pub max_age_ms: u64,
    /// Start after this job id (the previous call's [`TrimRunsReply::next`]); `None` for the
    /// first job.
    pub after: Option<&'a str>,
    /// Jobs examined per call.
    pub jobs: usize,
}

/// What [`TrimRuns`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrimRunsReply {
    /// Where the next call starts; `None` once every job was seen.
    pub next: Option<String>,
    /// Runs deleted.
    pub deleted: u64,
}

impl TrimRuns<'_> {
    /// Runs `trim_runs.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<TrimRunsReply> {
        let (next, deleted): (String, u64) = TRIM_RUNS
            .key(prefix)
            .arg(self.keep)
            .arg(self.max_age_ms)
            .arg(self.after.unwrap_or(""))
            .arg(self.jobs)
            .invoke_async(c)
            .await?;
        Ok(TrimRunsReply {
            next: (!next.is_empty()).then_some(next),
            deleted,
        })
    }
}

/// Trims the group stream below the oldest entry still pending or undelivered.
#[derive(Clone, Copy, Debug)]
pub struct TrimStream;

/// What [`TrimStream`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrimStreamReply {
    /// Entries removed.
    pub removed: u64,
    /// The lowest id kept, when the stream could be trimmed at all.
    pub kept_from: Option<String>,
}

impl TrimStream {
    /// Runs `trim_stream.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        self,
        c: &mut C,
        prefix: &str,
    ) -> Result<TrimStreamReply> {
        let (removed, kept_from): (u64, String) = TRIM_STREAM.key(prefix).invoke_async(c).await?;
        Ok(TrimStreamReply {
            removed,
            kept_from: (!kept_from.is_empty()).then_some(kept_from),
        })
    }
}
