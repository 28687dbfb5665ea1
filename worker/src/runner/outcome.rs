//! What became of an attempt, as `complete.lua` wants to hear it. Pure mapping, no I/O:
//! a handler's result (or its task's panic or abort) → [`Outcome`], status code, stored
//! result and error; and the script's verdict → the status a run is counted under.
//!
//! A [`Done`] is built by whichever task ended the attempt (the execution, or the reader,
//! claimer, holder or dispatcher when a run is not run at all), sent over the completion
//! channel and read only by the completer.

use std::time::Instant;

use dotjob_shared::model::run::code;
use dotjob_shared::scripts::{self, Recorded};
use serde_json::Value;
use tokio::task::JoinError;

use crate::handler::{HandlerError, HandlerResult};

/// Largest result stored on a run; a larger one is replaced by a note of its size.
pub(super) const RESULT_MAX_BYTES: usize = 64 * 1024;

/// How an attempt ended: `complete.lua`'s outcomes, and `Handback` for one not finished at
/// shutdown (given back to the group, not recorded).
pub(super) use dotjob_shared::scripts::AttemptOutcome as Outcome;

/// A handler's attempt as the execution saw it end.
pub(super) type Ended = Result<Value, (Outcome, HandlerError)>;

/// Reads how the handler's task ended: its result, a panic (a failed attempt, not a dead
/// worker) or an abort.
pub(super) fn from_join(r: Result<HandlerResult, JoinError>) -> Ended {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.is_retryable() => Err((Outcome::Failed, e)),
        Ok(Err(e)) => Err((Outcome::Fatal, e)),
        Err(je) if je.is_panic() => {
            let msg = panic_message(&*je.into_panic());
            Err((
                Outcome::Failed,
                HandlerError::retry(format!("handler panicked: {msg}")),
            ))
        }
        Err(_) => Err((
            Outcome::Cancelled,
            HandlerError::fatal("handler task aborted"),
        )),
    }
}

/// The text of a panic's payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// An ended attempt as it is recorded.
#[derive(Debug, PartialEq)]
pub(super) struct Settled {
    pub(super) outcome: Outcome,
    pub(super) code: u16,
    /// The result as JSON (empty for `null` and for failures), bounded by
    /// [`RESULT_MAX_BYTES`].
    pub(super) result: String,
    pub(super) error: String,
}

/// Maps an ended attempt to what is recorded.
pub(super) fn settle(ended: Ended) -> Settled {
    match ended {
        Ok(Value::Null) => Settled {
            outcome: Outcome::Succeeded,
            code: code::OK,
            result: String::new(),
            error: String::new(),
        },
        Ok(v) => {
            let mut s = serde_json::to_string(&v).unwrap_or_default();
            if s.len() > RESULT_MAX_BYTES {
                s = serde_json::json!({"truncated": true, "bytes": s.len()}).to_string();
            }
            Settled {
                outcome: Outcome::Succeeded,
                code: code::OK,
                result: s,
                error: String::new(),
            }
        }
        Err((outcome, e)) => Settled {
            outcome,
            code: if outcome == Outcome::TimedOut {
                code::TIMEOUT
            } else {
                code::FAILED
            },
            result: String::new(),
            error: e.message().to_owned(),
        },
    }
}

/// The `dotjob_runs_total` status a recorded attempt is counted under (final statuses and
/// `retry`; stale and skipped entries are not counted).
pub(super) fn counted_status(recorded: Recorded) -> Option<&'static str> {
    match recorded {
        Recorded::Final(status) => Some(status.as_str()),
        Recorded::Retry => Some("retry"),
        Recorded::Stale | Recorded::Skipped => None,
    }
}

/// A finished attempt waiting to be recorded.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) entry: String,
    pub(super) run: String,
    pub(super) job: String,
    pub(super) outcome: Outcome,
    pub(super) attempt: u32,
    pub(super) max_attempts: u32,
    pub(super) retry_delay_ms: Option<u64>,
    pub(super) code: u16,
    pub(super) duration_ms: u64,
    pub(super) result: String,
    pub(super) error: String,
    /// The job has a concurrency policy: release its in-flight marker when final.
    pub(super) guarded: bool,
    /// When the attempt started (the record gets its Redis-clock time when sent).
    pub(super) started: Option<Instant>,
}

impl Done {
    /// Acknowledges an entry without recording a run.
    pub(super) fn skip(entry: String, run: String, job: String) -> Self {
        Self {
            entry,
            run,
            job,
            outcome: Outcome::Skip,
            attempt: 0,
            max_attempts: 1,
            retry_delay_ms: None,
            code: 0,
            duration_ms: 0,
            result: String::new(),
            error: String::new(),
            guarded: false,
            started: None,
        }
    }

    /// Gives an entry back to the group at shutdown.
    pub(super) fn handback(entry: String, run: String, job: String) -> Self {
        Self {
            outcome: Outcome::Handback,
            ..Self::skip(entry, run, job)
        }
    }

    /// The attempt as `complete.lua` records it; `None` for a hand-back, which is not an
    /// attempt's end.
    pub(super) fn attempt(&self) -> Option<scripts::Attempt<'_>> {
        if self.outcome == Outcome::Handback {
            return None;
        }
        Some(scripts::Attempt {
            entry: super::own::id(&self.entry),
            run: &self.run,
            job: &self.job,
            outcome: self.outcome,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            retry_delay_ms: self.retry_delay_ms,
            code: self.code,
            duration_ms: self.duration_ms,
            result: &self.result,
            error: &self.error,
            guarded: self.guarded,
            started_ago_ms: self.started.map_or(0, |t| t.elapsed().as_millis() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_use_the_scripts_words() {
        let all = [
            (Outcome::Succeeded, "succeeded"),
            (Outcome::Failed, "failed"),
            (Outcome::TimedOut, "timed_out"),
            (Outcome::Cancelled, "cancelled"),
            (Outcome::Fatal, "fatal"),
            (Outcome::Skip, "skip"),
            (Outcome::Handback, "handback"),
        ];
        for (o, word) in all {
            assert_eq!(o.as_str(), word);
            assert_eq!(o.retries(), matches!(word, "failed" | "timed_out"));
        }
    }

    #[test]
    fn results_and_failures_map_to_status_code_and_text() {
        let null = settle(Ok(Value::Null));
        assert_eq!((null.outcome, null.code), (Outcome::Succeeded, code::OK));
        assert!(null.result.is_empty() && null.error.is_empty());

        let value = settle(Ok(serde_json::json!({"sent": 3})));
        assert_eq!(value.result, r#"{"sent":3}"#);

        let huge = settle(Ok(Value::String("x".repeat(RESULT_MAX_BYTES + 1))));
        let note: Value = serde_json::from_str(&huge.result).unwrap();
        assert_eq!(note["truncated"], true);
        assert_eq!(note["bytes"], RESULT_MAX_BYTES + 3);

        let timeout = settle(Err((Outcome::TimedOut, HandlerError::retry("late"))));
        assert_eq!(
            (timeout.code, timeout.error.as_str()),
            (code::TIMEOUT, "late")
        );
        assert!(timeout.result.is_empty());
        let failed = settle(Err((Outcome::Fatal, HandlerError::fatal("bad"))));
        assert_eq!(
            (failed.outcome, failed.code),
            (Outcome::Fatal, code::FAILED)
        );
    }

    #[tokio::test]
    async fn handler_task_endings_map_to_outcomes() {
        let ok = tokio::spawn(async { Ok(Value::Bool(true)) }).await;
        assert_eq!(from_join(ok).unwrap(), Value::Bool(true));

        let retry = tokio::spawn(async { Err(HandlerError::retry("flaky")) }).await;
        assert_eq!(from_join(retry).unwrap_err().0, Outcome::Failed);
        let fatal = tokio::spawn(async { Err(HandlerError::fatal("no")) }).await;
        assert_eq!(from_join(fatal).unwrap_err().0, Outcome::Fatal);

        fn boom(n: u32) -> HandlerResult {
            panic!("boom {n}")
        }
        let panicked = tokio::spawn(async { boom(7) }).await;
        let (o, e) = from_join(panicked).unwrap_err();
        assert_eq!(
            (o, e.message()),
            (Outcome::Failed, "handler panicked: boom 7")
        );
        assert!(e.is_retryable());

        let task = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            Ok(Value::Null)
        });
        task.abort();
        let (o, e) = from_join(task.await).unwrap_err();
        assert_eq!(o, Outcome::Cancelled);
        assert!(!e.is_retryable());
    }

    #[test]
    fn panic_payloads_read_as_text() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&"owned".to_owned()), "owned");
        assert_eq!(panic_message(&42_u8), "non-string panic payload");
    }

    #[test]
    fn recorded_attempts_count_under_their_status() {
        use dotjob_shared::model::run::RunStatus;
        assert_eq!(
            counted_status(Recorded::Final(RunStatus::Failed)),
            Some("failed")
        );
        assert_eq!(
            counted_status(Recorded::Final(RunStatus::Dead)),
            Some("dead")
        );
        assert_eq!(counted_status(Recorded::Retry), Some("retry"));
        assert_eq!(counted_status(Recorded::Skipped), None);
        assert_eq!(counted_status(Recorded::Stale), None);
    }

    #[test]
    fn every_outcome_but_a_handback_is_an_attempt() {
        let done = |outcome| Done {
            outcome,
            attempt: 2,
            guarded: true,
            ..Done::skip("1-0".to_owned(), "r".to_owned(), "j".to_owned())
        };
        assert_eq!(
            done(Outcome::Fatal).attempt().map(|a| a.outcome),
            Some(Outcome::Fatal)
        );
        assert_eq!(
            done(Outcome::TimedOut)
                .attempt()
                .map(|a| (a.outcome, a.attempt, a.guarded)),
            Some((Outcome::TimedOut, 2, true))
        );
        assert!(done(Outcome::Handback).attempt().is_none());
        assert_eq!(
            Done::handback("1-0".to_owned(), String::new(), String::new()).outcome,
            Outcome::Handback
        );
    }
}
