//! `start.lua` and `mark.lua`: run records marked `running` — before a later attempt starts
//! (with the poison check), and once a first attempt has run a while.

use redis::aio::ConnectionLike;

use super::{MARK, START, ScriptArgs, bad_reply};
use crate::error::Result;
use crate::model::run::RunStatus;

/// Checks and marks runs `running` before their attempts start.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    /// The worker starting them.
    pub worker: &'a str,
    /// How many attempts interrupted by their executor's death make a run poison.
    pub poison_after: u32,
    /// The runs with the attempt number each starts.
    pub runs: &'a [(&'a str, u32)],
}

/// Whether a run may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartVerdict {
    /// Marked running: start it.
    Start,
    /// Its record is gone (recalled or deleted).
    Gone,
    /// Its executors died during too many attempts: it must not run again.
    Poison,
    /// It must not run: it is in this status (e.g. cancelled while queued).
    NotStartable(RunStatus),
}

/// What [`Start`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartReply {
    /// The Redis clock when the script ran (ms).
    pub now_ms: i64,
    /// One verdict per run, in order.
    pub verdicts: Vec<StartVerdict>,
}

impl Start<'_> {
    /// Runs `start.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<StartReply> {
        let mut inv = START.prepare_invoke();
        self.encode(&mut inv, prefix);
        let raw: Vec<String> = inv.invoke_async(c).await?;
        decode(&raw, self.runs.len())
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix).arg(self.worker).arg(self.poison_after);
        for (run, attempt) in self.runs {
            inv.arg(run).arg(attempt);
        }
    }
}

fn decode(raw: &[String], runs: usize) -> Result<StartReply> {
    let bad = |what: String| bad_reply("start.lua", what);
    let (now, verdicts) = raw.split_first().ok_or_else(|| bad("empty".to_owned()))?;
    if verdicts.len() != runs {
        return Err(bad(format!("{} verdicts for {runs} runs", verdicts.len())));
    }
    Ok(StartReply {
        now_ms: now.parse().map_err(|_| bad(format!("now {now:?}")))?,
        verdicts: verdicts
            .iter()
            .map(|v| match v.as_str() {
                "ok" => Ok(StartVerdict::Start),
                "gone" => Ok(StartVerdict::Gone),
                "poison" => Ok(StartVerdict::Poison),
                st => RunStatus::parse(st)
                    .map(StartVerdict::NotStartable)
                    .ok_or_else(|| bad(format!("verdict {st:?}"))),
            })
            .collect::<Result<_>>()?,
    })
}

/// Marks first attempts `running` once they have run a while (a quick run skips this
/// write: its record goes from queued to final at once). Only still-queued records change.
#[derive(Clone, Copy, Debug)]
pub struct MarkRunning<'a> {
    /// The worker running them.
    pub worker: &'a str,
    /// The runs: run id, attempt number, ms since the attempt started.
    pub runs: &'a [(&'a str, u32, u64)],
}

impl MarkRunning<'_> {
    /// Runs `mark.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(&self, c: &mut C, prefix: &str) -> Result<()> {
        let mut inv = MARK.prepare_invoke();
        self.encode(&mut inv, prefix);
        let _: i64 = inv.invoke_async(c).await?;
        Ok(())
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix).arg(self.worker);
        for (run, attempt, ago_ms) in self.runs {
            inv.arg(run).arg(attempt).arg(ago_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn runs_encode_as_the_scripts_read_them() {
        let mut r = Recorder::default();
        Start {
            worker: "w1",
            poison_after: 5,
            runs: &[("01a-5", 2), ("01a-6", 3)],
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args, ["w1", "5", "01a-5", "2", "01a-6", "3"]);
        let mut r = Recorder::default();
        MarkRunning {
            worker: "w1",
            runs: &[("01a-5", 1, 250)],
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args, ["w1", "01a-5", "1", "250"]);
    }

    #[test]
    fn verdicts_read_as_outcomes() {
        let raw = ["17", "ok", "gone", "poison", "cancelled"].map(str::to_owned);
        let r = decode(&raw, 4).unwrap();
        assert_eq!(r.now_ms, 17);
        assert_eq!(
            r.verdicts,
            [
                StartVerdict::Start,
                StartVerdict::Gone,
                StartVerdict::Poison,
                StartVerdict::NotStartable(RunStatus::Cancelled)
            ]
        );
        assert!(decode(&raw, 3).is_err());
        assert!(decode(&["17".to_owned(), "odd".to_owned()], 1).is_err());
        assert!(decode(&[], 0).is_err());
    }
}
