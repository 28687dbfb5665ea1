//! The handler API: what a service author writes and what a handler sees of its run.
//!
//! A handler is any `async fn(RunContext) -> Result<impl Serialize, HandlerError>`. The
//! context gives the run's params, ids, attempt number, a cancellation token (cancelled on
//! timeout, on shutdown hand-back and on `POST /runs/{id}/cancel`) and [`RunContext::log`],
//! which appends lines to the run's log in Redis.
//!
//! ```no_run
//! use dotjob_worker::{HandlerError, RunContext};
//!
//! async fn send_report(ctx: RunContext) -> Result<serde_json::Value, HandlerError> {
//!     let to: String = ctx.param("to")?;
//!     ctx.log(format!("sending to {to}, attempt {}", ctx.attempt()));
//!     Ok(serde_json::json!({ "sent": true }))
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Why a handler failed, and whether the failure is worth a retry.
///
/// Any error converts into a retryable `HandlerError` with `?`; use [`HandlerError::fatal`]
/// for failures a retry cannot fix (bad params, a refused request).
#[derive(Debug)]
pub struct HandlerError {
    message: String,
    retry: bool,
}

impl HandlerError {
    /// A failure that may succeed on a later attempt.
    pub fn retry(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retry: true,
        }
    }

    /// A failure no retry can fix: the run ends `failed` at once.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retry: false,
        }
    }

    /// The message recorded on the run.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        self.retry
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: Into<anyhow::Error>> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self::retry(format!("{:#}", e.into()))
    }
}

/// What a handler returns.
pub type HandlerResult = Result<Value, HandlerError>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// A named unit of work. Implemented for every suitable async function or closure.
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt.
    fn call(&self, ctx: RunContext) -> HandlerFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(RunContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    R: Serialize,
{
    fn call(&self, ctx: RunContext) -> HandlerFuture {
        let fut = self(ctx);
        Box::pin(async move {
            let r = fut.await?;
            serde_json::to_value(r)
                .map_err(|e| HandlerError::fatal(format!("result is not JSON: {e}")))
        })
    }
}

/// Lines a handler logged that are not in Redis yet, with the caps that bound a run's log.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pub(crate) pending: Vec<String>,
    pub(crate) lines: usize,
    pub(crate) bytes: usize,
    pub(crate) truncated: bool,
    /// Hides the run's secret values in every line (set when the params reference secrets).
    pub(crate) mask: Option<Arc<crate::mask::Masker>>,
}

/// Most log lines kept per run.
pub const LOG_MAX_LINES: usize = 2_000;
/// Most log bytes kept per run.
pub const LOG_MAX_BYTES: usize = 256 * 1024;
/// Longest single log line.
pub const LOG_LINE_MAX: usize = 4 * 1024;

impl LogBuffer {
    pub(crate) fn push(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        let mut line = match &self.mask {
            Some(m) => m.mask(line),
            None => line.to_owned(),
        };
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if self.lines >= LOG_MAX_LINES || self.bytes + line.len() > LOG_MAX_BYTES {
            self.truncated = true;
            self.pending
                .push("[log truncated: the run's log limit was reached]".to_owned());
            return;
        }
        self.lines += 1;
        self.bytes += line.len();
        self.pending.push(line);
    }
}

/// Everything a handler knows about the run it executes.
#[derive(Clone, Debug)]
pub struct RunContext {
    pub(crate) run_id: Arc<str>,
    pub(crate) job_id: Arc<str>,
    pub(crate) job_name: Arc<str>,
    pub(crate) group: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) scheduled_at_ms: i64,
    pub(crate) params: Arc<Value>,
    pub(crate) shard: Option<(u32, u32, Value)>,
    pub(crate) executor: Arc<str>,
    pub(crate) cancel: CancellationToken,
    pub(crate) log: Arc<Mutex<LogBuffer>>,
}

impl RunContext {
    /// A context for calling a handler outside a worker (unit tests of handlers).
    pub fn for_test(params: Value) -> Self {
        Self {
            run_id: "test-run".into(),
            job_id: "test".into(),
            job_name: "test".into(),
            group: "test".into(),
            attempt: 1,
            max_attempts: 1,
            scheduled_at_ms: 0,
            params: Arc::new(params),
            shard: None,
            executor: "test-executor".into(),
            cancel: CancellationToken::new(),
            log: Arc::default(),
        }
    }

    /// The run's parameters (a manual trigger's override, or the job's).
    pub fn params(&self) -> &Value {
        &self.params
    }

    /// The parameters as a typed value; a mismatch is a fatal error naming the problem.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_value(Value::clone(&self.params))
            .map_err(|e| HandlerError::fatal(format!("params: {e}")))
    }

    /// One parameter as a typed value; missing or mistyped is a fatal error.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, HandlerError> {
        let v = self
            .params
            .get(name)
            .ok_or_else(|| HandlerError::fatal(format!("params.{name} is required")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| HandlerError::fatal(format!("params.{name}: {e}")))
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The job's name.
    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    /// The id of the executor running this attempt.
    pub fn executor(&self) -> &str {
        &self.executor
    }

    /// The executor group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This attempt's number, from 1 (the stream delivery count).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many attempts the job allows.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The tick this run is for (ms since the epoch).
    pub fn scheduled_at_ms(&self) -> i64 {
        self.scheduled_at_ms
    }

    /// `(index, count, parameter)` of a sharded job's shard.
    pub fn shard(&self) -> Option<(u32, u32, &Value)> {
        self.shard.as_ref().map(|(i, n, p)| (*i, *n, p))
    }

    /// Cancelled when the run must stop (timeout, cancel request, shutdown hand-back).
    /// Long handlers should check it or `select!` on `cancelled()`.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// True once the run should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Appends a line to the run's log (flushed to Redis in the background, bounded).
    pub fn log(&self, line: impl AsRef<str>) {
        if let Ok(mut b) = self.log.lock() {
            b.push(line.as_ref());
        }
    }

    /// Masks `masker`'s values in every line logged from now on.
    pub(crate) fn set_masker(&self, masker: Arc<crate::mask::Masker>) {
        if let Ok(mut b) = self.log.lock() {
            b.mask = Some(masker);
        }
    }

    /// Lines logged so far that have not been flushed (for handler unit tests).
    pub fn unflushed_log(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|b| b.pending.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_convert_with_question_mark() {
        fn parse(s: &str) -> Result<i32, HandlerError> {
            Ok(s.parse::<i32>()?)
        }
        let e = parse("x").unwrap_err();
        assert!(e.is_retryable());
        assert!(e.message().contains("invalid digit"));
        assert!(!HandlerError::fatal("no").is_retryable());
    }

    #[test]
    fn typed_params() {
        let ctx = RunContext::for_test(serde_json::json!({"n": 3}));
        assert_eq!(ctx.param::<u32>("n").unwrap(), 3);
        assert!(!ctx.param::<u32>("m").unwrap_err().is_retryable());
        assert!(ctx.param::<String>("n").is_err());
    }

    #[test]
    fn log_is_bounded() {
        let ctx = RunContext::for_test(Value::Null);
        for _ in 0..(LOG_MAX_LINES + 10) {
            ctx.log("line");
        }
        let lines = ctx.unflushed_log();
        assert_eq!(lines.len(), LOG_MAX_LINES + 1);
        assert!(lines.last().unwrap().contains("truncated"));
    }
}
