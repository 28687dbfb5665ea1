//! `complete.lua`: records finished attempts and acknowledges their entries, batched.

use redis::aio::ConnectionLike;

use super::{COMPLETE, ScriptArgs, bad_reply, stream_id_lt};
use crate::error::Result;
use crate::keys::OwnStream;
use crate::model::run::RunStatus;

/// How an attempt ended, as the worker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Succeeded,
    /// The handler failed; retried while attempts are left.
    Failed,
    /// The attempt outlived its deadline (code 502); retried like a failure.
    TimedOut,
    /// Cancelled on request (or by `replace`).
    Cancelled,
    /// The handler failed and asked not to be retried.
    Fatal,
    /// Not run (recalled, job deleted, malformed entry): acknowledge the entry and leave
    /// the run record alone.
    Skip,
    /// Not finished at shutdown: given back to the group with `handback.lua`; never passed
    /// to [`Complete`], which records ended attempts only.
    Handback,
}

impl AttemptOutcome {
    /// The outcomes `complete.lua` reads (a hand-back is not one of them).
    const ALL: [Self; 6] = [
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Fatal,
        Self::Skip,
    ];

    /// Its name, as the script reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Fatal => "fatal",
            Self::Skip => "skip",
            Self::Handback => "handback",
        }
    }

    /// Whether the attempt is retried after the job's backoff (if attempts are left).
    pub fn retries(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }

    /// The status a final attempt with this outcome leaves (attempts exhausted aside).
    fn final_status(self) -> Option<RunStatus> {
        match self {
            Self::Succeeded => Some(RunStatus::Succeeded),
            Self::Failed | Self::Fatal => Some(RunStatus::Failed),
            Self::TimedOut => Some(RunStatus::TimedOut),
            Self::Cancelled => Some(RunStatus::Cancelled),
            Self::Skip | Self::Handback => None,
        }
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = String;

    /// Reads an outcome by its name ([`AttemptOutcome::as_str`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("not an attempt outcome: {s:?}"))
    }
}

/// One finished attempt to record.
#[derive(Clone, Debug)]
pub struct Attempt<'a> {
    /// Its stream entry.
    pub entry: &'a str,
    /// Its run ("" for an entry that names none).
    pub run: &'a str,
    /// Its job.
    pub job: &'a str,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The attempt number.
    pub attempt: u32,
    /// The job's attempt limit.
    pub max_attempts: u32,
    /// When to retry a failure; `None` never retries.
    pub retry_delay_ms: Option<u64>,
    /// Result code (200, 500, 502).
    pub code: u16,
    /// How long it ran (ms).
    pub duration_ms: u64,
    /// The handler's result (JSON, "" for none).
    pub result: &'a str,
    /// The error ("" for none).
    pub error: &'a str,
    /// The job has a concurrency policy: a final attempt releases its in-flight marker.
    pub guarded: bool,
    /// How long ago it started (ms): the script dates it on the Redis clock.
    pub started_ago_ms: u64,
}

impl Attempt<'_> {
    /// The common case, sent in a compact form: a first attempt that succeeded without a
    /// result, of a job without a concurrency policy.
    fn plain_success(&self) -> bool {
        self.outcome == AttemptOutcome::Succeeded
            && self.attempt <= 1
            && self.result.is_empty()
            && !self.guarded
    }
}

/// Records a batch of one worker's finished attempts.
#[derive(Clone, Copy, Debug)]
pub struct Complete<'a> {
    /// The worker (consumer name): only entries still pending for it are recorded.
    pub worker: &'a str,
    /// The attempts.
    pub attempts: &'a [Attempt<'a>],
}

/// What became of one recorded attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The run ended in this status (`dead` when its attempts were exhausted); its entry
    /// was acknowledged.
    Final(RunStatus),
    /// A failure with attempts left: pending until its backoff passed.
    Retry,
    /// The entry is no longer this worker's (reclaimed, finished or deleted elsewhere):
    /// nothing was recorded.
    Stale,
    /// A skipped entry, acknowledged.
    Skipped,
}

impl Complete<'_> {
    /// Runs `complete.lua` for the group `prefix`; one [`Recorded`] per attempt, in order.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<Vec<Recorded>> {
        self.call_on(c, prefix, None).await
    }

    /// [`Complete::call`] for entries of the worker's own stream (broadcast runs) when
    /// `own` is given, else of the group stream.
    pub async fn call_on<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
        own: Option<&OwnStream>,
    ) -> Result<Vec<Recorded>> {
        if self.attempts.is_empty() {
            return Ok(Vec::new());
        }
        debug_assert!(
            self.attempts
                .iter()
                .all(|a| a.outcome != AttemptOutcome::Handback),
            "hand-backs go to handback.lua"
        );
        let mut inv = COMPLETE.prepare_invoke();
        let order = self.encode(&mut inv, prefix, own);
        let verdicts: Vec<String> = inv.invoke_async(c).await?;
        self.decode(&order, &verdicts)
    }

    /// Writes the batch, plain successes first; returns the attempts' indexes in the order
    /// they were written (the order of the verdicts).
    fn encode(
        &self,
        inv: &mut impl ScriptArgs,
        prefix: &str,
        own: Option<&OwnStream>,
    ) -> Vec<usize> {
        let (mut lo, mut hi) = (self.attempts[0].entry, self.attempts[0].entry);
        for a in self.attempts {
            if stream_id_lt(a.entry, lo) {
                lo = a.entry;
            }
            if stream_id_lt(hi, a.entry) {
                hi = a.entry;
            }
        }
        let (fast, slow): (Vec<usize>, Vec<usize>) =
            (0..self.attempts.len()).partition(|&i| self.attempts[i].plain_success());
        inv.key(prefix);
        if let Some(own) = own {
            inv.key(&own.stream).key(&own.retry);
        }
        inv.arg(self.worker).arg(lo).arg(hi).arg(fast.len());
        for &i in &fast {
            let a = &self.attempts[i];
            inv.arg(a.entry)
                .arg(a.run)
                .arg(a.duration_ms)
                .arg(a.started_ago_ms);
        }
        for &i in &slow {
            let a = &self.attempts[i];
            inv.arg(a.entry)
                .arg(a.run)
                .arg(a.job)
                .arg(a.outcome.as_str())
                .arg(a.attempt)
                .arg(a.max_attempts)
                .arg(a.retry_delay_ms.map(|v| v.to_string()).unwrap_or_default())
                .arg(a.code)
                .arg(a.duration_ms)
                .arg(a.result)
                .arg(a.error)
                .arg(if a.guarded { "1" } else { "0" })
                .arg(a.started_ago_ms);
        }
        let mut order = fast;
        order.extend(slow);
        order
    }

    fn decode(&self, order: &[usize], verdicts: &[String]) -> Result<Vec<Recorded>> {
        if verdicts.len() != order.len() {
            return Err(bad_reply(
                "complete.lua",
                format!("{} verdicts for {} attempts", verdicts.len(), order.len()),
            ));
        }
        let mut out = vec![Recorded::Stale; order.len()];
        for (&i, verdict) in order.iter().zip(verdicts) {
            let outcome = self.attempts[i].outcome;
            out[i] = match verdict.as_str() {
                "final" => outcome
                    .final_status()
                    .map_or(Recorded::Skipped, Recorded::Final),
                "dead" => Recorded::Final(RunStatus::Dead),
                "retry" => Recorded::Retry,
                "stale" => Recorded::Stale,
                "skip" => Recorded::Skipped,
                other => return Err(bad_reply("complete.lua", format!("verdict {other:?}"))),
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    fn attempt(entry: &'static str, outcome: AttemptOutcome) -> Attempt<'static> {
        Attempt {
            entry,
            run: "01a-5",
            job: "01a",
            outcome,
            attempt: 1,
            max_attempts: 3,
            retry_delay_ms: None,
            code: 200,
            duration_ms: 12,
            result: "",
            error: "",
            guarded: false,
            started_ago_ms: 40,
        }
    }

    #[test]
    fn plain_successes_go_first_in_the_compact_form() {
        let failed = Attempt {
            retry_delay_ms: Some(600),
            code: 500,
            error: "boom",
            ..attempt("9-0", AttemptOutcome::Failed)
        };
        let guarded = Attempt {
            guarded: true,
            ..attempt("11-2", AttemptOutcome::Succeeded)
        };
        let attempts = [failed, attempt("10-1", AttemptOutcome::Succeeded), guarded];
        let batch = Complete {
            worker: "w1",
            attempts: &attempts,
        };
        let mut r = Recorder::default();
        let order = batch.encode(&mut r, "p:{g}:", None);
        assert_eq!(order, [1, 0, 2]);
        assert_eq!(r.keys, ["p:{g}:"]);
        #[rustfmt::skip]
        let expected = [
            "w1", "9-0", "11-2", "1",
            "10-1", "01a-5", "12", "40",
            "9-0", "01a-5", "01a", "failed", "1", "3", "600", "500", "12", "", "boom", "0", "40",
            "11-2", "01a-5", "01a", "succeeded", "1", "3", "", "200", "12", "", "", "1", "40",
        ];
        assert_eq!(r.args, expected);
        // Verdicts come back in the written order and are put back in the batch's order.
        let verdicts = ["final", "retry", "stale"].map(str::to_owned);
        assert_eq!(
            batch.decode(&order, &verdicts).unwrap(),
            [
                Recorded::Retry,
                Recorded::Final(RunStatus::Succeeded),
                Recorded::Stale
            ]
        );
        assert!(batch.decode(&order, &verdicts[..2]).is_err());
    }

    #[test]
    fn an_own_stream_batch_names_its_stream_and_retry_set() {
        let attempts = [attempt("10-1", AttemptOutcome::Succeeded)];
        let batch = Complete {
            worker: "w1",
            attempts: &attempts,
        };
        let own = crate::Keys::new("p").own_stream("g", "w1");
        let mut r = Recorder::default();
        batch.encode(&mut r, "p:{g}:", Some(&own));
        assert_eq!(r.keys, ["p:{g}:", "p:{g}:stream:w1", "p:{g}:retry:w1"]);
        assert_eq!(r.args[..4], ["w1", "10-1", "10-1", "1"]);
    }

    #[test]
    fn final_verdicts_carry_the_status_left() {
        let attempts = [
            attempt("1-0", AttemptOutcome::Fatal),
            attempt("2-0", AttemptOutcome::TimedOut),
            attempt("3-0", AttemptOutcome::Cancelled),
            attempt("4-0", AttemptOutcome::Skip),
        ];
        let batch = Complete {
            worker: "w1",
            attempts: &attempts,
        };
        let verdicts = ["final", "dead", "final", "skip"].map(str::to_owned);
        assert_eq!(
            batch.decode(&[0, 1, 2, 3], &verdicts).unwrap(),
            [
                Recorded::Final(RunStatus::Failed),
                Recorded::Final(RunStatus::Dead),
                Recorded::Final(RunStatus::Cancelled),
                Recorded::Skipped
            ]
        );
        assert!(batch.decode(&[0], &["fine".to_owned()]).is_err());
    }

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for o in AttemptOutcome::ALL {
            assert_eq!(o.as_str().parse::<AttemptOutcome>(), Ok(o));
        }
        assert!("handback".parse::<AttemptOutcome>().is_err());
    }
}
