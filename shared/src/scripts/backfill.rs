//! `backfill.lua`: the one-time backfill of a group's run index (`group-runs`) from its job
//! run indexes, for runs recorded before `group-runs` existed; and `backfill_last.lua`: the
//! one-time backfill of the job table's last-status index (`last`) for jobs that existed
//! before it.

use redis::aio::ConnectionLike;

use super::{BACKFILL, BACKFILL_LAST, ScriptArgs};
use crate::error::Result;

/// Adds the entries of a batch of a group's job run indexes to the group run index; after
/// the last job, marks the group backfilled.
#[derive(Clone, Copy, Debug)]
pub struct Backfill<'a> {
    /// Start after this job id (the previous call's [`BackfillReply::Continue`]); `None`
    /// for the first job.
    pub after: Option<&'a str>,
    /// Jobs examined per call at most.
    pub jobs: usize,
    /// Entries read per call: the call ends after the job at which this many were read.
    pub entries: usize,
}

/// What [`Backfill`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackfillReply {
    /// The group was marked backfilled before this call: nothing was read.
    AlreadyDone,
    /// Runs added by this call; more jobs remain after `next`.
    Continue {
        /// Where the next call starts.
        next: String,
        /// Runs added to the group run index.
        added: u64,
    },
    /// Every job was seen and the group is now marked backfilled.
    Done {
        /// Runs added by this call.
        added: u64,
    },
}

impl Backfill<'_> {
    /// Runs `backfill.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<BackfillReply> {
        let mut inv = BACKFILL.prepare_invoke();
        self.encode(&mut inv, prefix);
        let reply: (String, u64, u8) = inv.invoke_async(c).await?;
        Ok(decode(reply))
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix)
            .arg(self.after.unwrap_or(""))
            .arg(self.jobs)
            .arg(self.entries);
    }
}

fn decode((next, added, done_before): (String, u64, u8)) -> BackfillReply {
    if done_before == 1 {
        BackfillReply::AlreadyDone
    } else if next.is_empty() {
        BackfillReply::Done { added }
    } else {
        BackfillReply::Continue { next, added }
    }
}

/// Sets the last-status index code of a batch of a group's jobs from their newest runs;
/// after the last job, marks the group's index backfilled.
#[derive(Clone, Copy, Debug)]
pub struct BackfillLast<'a> {
    /// Start after this job id (the previous call's [`BackfillReply::Continue`]); `None`
    /// for the first job.
    pub after: Option<&'a str>,
    /// Jobs indexed per call at most.
    pub jobs: usize,
}

impl BackfillLast<'_> {
    /// Runs `backfill_last.lua` for the group `prefix`. The reply's `added` counts the jobs
    /// indexed.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<BackfillReply> {
        let mut inv = BACKFILL_LAST.prepare_invoke();
        self.encode(&mut inv, prefix);
        let reply: (String, u64, u8) = inv.invoke_async(c).await?;
        Ok(decode(reply))
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix).arg(self.after.unwrap_or("")).arg(self.jobs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_backfill_encodes_as_the_script_reads_it() {
        let mut r = Recorder::default();
        Backfill {
            after: None,
            jobs: 500,
            entries: 20_000,
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.keys, ["p:{g}:"]);
        assert_eq!(r.args, ["", "500", "20000"]);
        let mut r = Recorder::default();
        Backfill {
            after: Some("01abc"),
            jobs: 2,
            entries: 1,
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args, ["01abc", "2", "1"]);
    }

    #[test]
    fn a_last_status_backfill_encodes_as_the_script_reads_it() {
        let mut r = Recorder::default();
        BackfillLast {
            after: Some("01abc"),
            jobs: 500,
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.keys, ["p:{g}:"]);
        assert_eq!(r.args, ["01abc", "500"]);
    }

    #[test]
    fn replies_decode_into_their_outcome() {
        assert_eq!(decode((String::new(), 0, 1)), BackfillReply::AlreadyDone);
        assert_eq!(
            decode((String::new(), 7, 0)),
            BackfillReply::Done { added: 7 }
        );
        assert_eq!(
            decode(("01abc".into(), 3, 0)),
            BackfillReply::Continue {
                next: "01abc".into(),
                added: 3
            }
        );
    }
}
