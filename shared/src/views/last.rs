//! The job table's last-status index: per group a sorted set (`last`) holding every job of
//! the group with, as its score, the code of its newest run's status (0 for a job without
//! runs), so "jobs whose last run failed" reads only those jobs.
//!
//! One set scored by code rather than one set per status: a script that changes a job's
//! newest run writes one `ZADD` (the new code replaces the old score) without first
//! reading which status the job had. The members of one code share a score, so they sit
//! together in id order; `scan_last.lua` finds them by rank (`ZCOUNT` for where they start
//! and how many there are, a binary search for a cursor), and the job table's total for a
//! last-status filter is one `ZCOUNT` per group.
//!
//! Writers: every script that adds a job's newest run (`fire.lua`, `trigger.lua`), changes
//! the status of a run that is its job's newest (`start.lua`, `mark.lua`, `complete.lua`,
//! `claim.lua`, `handback.lua`, `cancel_run` in the prelude), or removes runs
//! (`save_job.lua` recalls, `trim_runs.lua`) checks `ZRANGE runs:<job> -1 -1` and writes
//! the job's code; `save_job.lua` adds a new job with code 0 and `delete_job.lua` removes
//! it. Jobs that existed before the index are filled in once by `backfill_last.lua`
//! ([`crate::backfill`]); until a group's marker (`last-backfilled`) is set, the job table
//! checks that group's jobs one by one instead ([`super::jobs`]).

use std::sync::LazyLock;

use redis::Script;

use crate::conn::Conn;
use crate::error::Result;
use crate::keys::Keys;
use crate::model::run::RunStatus;

/// The status of a job's newest run, or that it never ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastStatus {
    /// Its newest run is in this status.
    Is(RunStatus),
    /// It has no run (kept).
    Never,
}

/// In OpenAPI: a string, one of the run statuses or `none` (derived from [`RunStatus::ALL`]).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LastStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let names = RunStatus::ALL.map(RunStatus::as_str);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A run status, or `none` (the job has no run)."))
            .enum_values(Some(names.into_iter().chain(["none"])))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LastStatus {}

impl LastStatus {
    /// A run status name, or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "none" {
            Some(Self::Never)
        } else {
            RunStatus::parse(s).map(Self::Is)
        }
    }

    /// Its code in the last-status index: 0 for `none`, else one more than the status's
    /// place in [`RunStatus::ALL`].
    pub fn code(self) -> u8 {
        match self {
            Self::Never => 0,
            Self::Is(s) => {
                let at = RunStatus::ALL.iter().position(|v| *v == s).unwrap_or(0);
                u8::try_from(at + 1).unwrap_or(u8::MAX)
            }
        }
    }

    /// The status of a code ([`Self::code`]); `None` for a code no status has.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Never),
            n => RunStatus::ALL
                .get(usize::from(n) - 1)
                .copied()
                .map(Self::Is),
        }
    }
}

/// The Lua function `last_code(status)` the script loader puts before the prelude of every
/// script: the index code of a run status name (0 for `none`, a missing record or anything
/// else), written out from [`LastStatus::code`] so Rust and Lua cannot disagree.
pub(crate) fn lua_last_code() -> String {
    let mut f = String::from(
        "-- The last-status index code of a run status (views/last.rs, LastStatus::code).\n\
         local function last_code(st)\n",
    );
    for (i, s) in RunStatus::ALL.into_iter().enumerate() {
        let kw = if i == 0 { "if" } else { "elseif" };
        f.push_str(&format!(
            "  {kw} st == '{}' then return {}\n",
            s.as_str(),
            LastStatus::Is(s).code()
        ));
    }
    f.push_str("  end\n  return 0\nend\n");
    f
}

/// `scan_last.lua`: which jobs of a group's last-status index match the other filters.
static SCAN_LAST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scan_last.lua")));

/// One call of `scan_last.lua` on `group`: `status`'s jobs after `start` (at most
/// `per_call` checked when a name or enabled filter is given), with the matching ids after
/// `collect_after` (at most `want`). Returns the job to resume after (empty when the code
/// was read to its end), the matches among the jobs checked (all of the code's jobs
/// without a name or enabled filter), and the ids collected.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn scan_call(
    c: &mut Conn,
    keys: &Keys,
    group: &str,
    status: LastStatus,
    start: &str,
    per_call: usize,
    needle: &str,
    enabled: &str,
    collect_after: &str,
    want: usize,
) -> Result<Vec<String>> {
    Ok(SCAN_LAST
        .key(keys.last_status(group))
        .arg(status.code())
        .arg(keys.job(group, ""))
        .arg(start)
        .arg(per_call)
        .arg(needle)
        .arg(enabled)
        .arg(collect_after)
        .arg(want)
        .invoke_async(c)
        .await?)
}

/// Whether each group's last-status index was backfilled (so it holds every job).
pub(crate) async fn ready(c: &mut Conn, keys: &Keys, groups: &[String]) -> Result<Vec<bool>> {
    if groups.is_empty() {
        return Ok(vec![]);
    }
    let mut pipe = redis::pipe();
    for g in groups {
        pipe.exists(keys.last_backfilled(g));
    }
    Ok(pipe.query_async(c).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_code_and_reads_back() {
        let all: Vec<LastStatus> = std::iter::once(LastStatus::Never)
            .chain(RunStatus::ALL.map(LastStatus::Is))
            .collect();
        for (i, s) in all.iter().enumerate() {
            assert_eq!(usize::from(s.code()), i);
            assert_eq!(LastStatus::from_code(s.code()), Some(*s));
        }
        assert_eq!(LastStatus::from_code(200), None);
    }

    #[test]
    fn the_lua_function_gives_the_rust_codes() {
        let f = lua_last_code();
        for s in RunStatus::ALL {
            let line = format!(
                "st == '{}' then return {}\n",
                s.as_str(),
                LastStatus::Is(s).code()
            );
            assert!(f.contains(&line), "{f}");
        }
        assert!(f.contains("return 0\nend"), "{f}");
    }
}

#[cfg(test)]
mod redis_tests;
