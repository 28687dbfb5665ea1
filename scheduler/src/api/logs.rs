//! `GET /runs/{id}/logs`: a run's log lines, read once or followed live.
//!
//! Workers append a run's lines to its log list (flushed every 500 ms while it runs and once
//! more before its result is recorded, bounded to 2 000 lines / 256 KiB). Reading from line
//! `from` returns the lines after it, `next` to continue from and `complete` once the run is
//! final. With `follow=true` the answer is a Server-Sent Events stream instead: one `line`
//! event per line (`id` = the line's `next`, so `Last-Event-ID` resumes), then one `end`
//! event when the run is final. Following polls Redis every [`FOLLOW_POLL`]; the status is
//! read before the lines, so the lines flushed before the final status are always sent
//! before `end`. Open follow streams are bounded per process and per token
//! ([`super::limits::FollowLimits`]): beyond, a 429.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dotjob_shared::Store;
use dotjob_shared::model::run::{Run, RunStatus};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{ANONYMOUS, CallerName};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::limits::{FollowLimits, FollowPermit};
use super::schema;

/// How often a follower looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Longest a follow stream stays open; it then ends with `complete: false` (reconnect
/// with `from` = its `next`).
pub const FOLLOW_MAX: Duration = Duration::from_secs(3_600);
/// Consecutive failed polls (Redis away) after which a follow stream gives up.
const FOLLOW_ERRORS_MAX: u32 = 40;
/// Largest `from` accepted (logs hold far fewer lines; this keeps the arithmetic small).
const FROM_MAX: usize = 1_000_000;

/// Query of `GET /runs/{id}/logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// First line to return (0-based); pass `next` of the previous answer to continue.
    #[param(minimum = 0, maximum = 1000000, example = 0)]
    from: Option<usize>,
    /// `true`: answer `text/event-stream` and keep sending lines until the run is final.
    follow: Option<bool>,
    /// Only the lines of this attempt (1-based; `from` then counts within it). A retry's
    /// lines start after a `--- attempt N ---` line in the whole log. Not with `follow`.
    #[param(minimum = 1, example = 2)]
    attempt: Option<u32>,
}

/// Log lines of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Logs {
    run_id: String,
    status: RunStatus,
    lines: Vec<String>,
    /// `from` for the next call.
    next: usize,
    /// True once the run is final: no more lines will come.
    complete: bool,
}

/// Whether no more lines can come: the run is final and no retry is pending.
fn is_complete(run: &Run) -> bool {
    !matches!(run.status, RunStatus::Queued | RunStatus::Running) && run.retry_at.is_none()
}

/// Read a run's log lines, or follow them live (`follow=true`, Server-Sent Events).
///
/// The event stream sends `event: line` with `data: {"n": <line index>, "line": "…"}`
/// and `id: <n + 1>` per line, then `event: end` with
/// `data: {"status": "…", "next": N, "complete": true}` when the run is final (or
/// `complete: false` after an hour or when the server shuts down: reconnect), then closes. `event: error` with
/// `data: {"code", "message"}` ends it early (e.g. the run was deleted). A reconnecting
/// client's `Last-Event-ID` takes precedence over `from`.
#[utoipa::path(get, path = "/runs/{id}/logs", operation_id = "run_logs", tag = "runs",
    params(("id" = String, Path, description = "Run id"), LogQuery),
    responses(
        (status = 200, description = "The lines (JSON), or with `follow=true` an event stream",
            content((Logs = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
        (status = 404, description = "No such run", body = schema::ErrorBody),
        (status = 429, description = "Too many log-follow streams open (on this server, or for this token)", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn logs(
    State(s): State<AppState>,
    Extension(limits): Extension<Arc<FollowLimits>>,
    caller: Option<Extension<CallerName>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.from.is_some_and(|f| f > FROM_MAX) {
        return Err(ApiError::invalid(
            "from",
            format!("must be at most {FROM_MAX}"),
        ));
    }
    if q.attempt == Some(0) {
        return Err(ApiError::invalid("attempt", "attempts count from 1"));
    }
    if q.attempt.is_some() && q.follow == Some(true) {
        return Err(ApiError::invalid(
            "attempt",
            "cannot be combined with follow=true",
        ));
    }
    let run = s.store.get_run(&id).await?;
    if q.follow == Some(true) {
        let token = caller.map_or_else(|| ANONYMOUS.into(), |Extension(CallerName(n))| n);
        let permit = limits.acquire(token)?;
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n <= FROM_MAX);
        let from = resume.or(q.from).unwrap_or(0);
        let stream = follow(s.store.clone(), id, from, permit, s.stopping.clone());
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let from = q.from.unwrap_or(0);
    let lines = match q.attempt {
        Some(n) => {
            let all = s.store.run_logs(&id, 0).await?;
            let mut mine = dotjob_shared::model::run::attempt_lines(&all, n);
            mine.drain(..from.min(mine.len()));
            mine
        }
        None => s.store.run_logs(&id, from).await?,
    };
    Ok(Json(Logs {
        next: from + lines.len(),
        complete: is_complete(&run),
        run_id: id,
        status: run.status,
        lines,
    })
    .into_response())
}

/// State of one follow stream.
struct Follower {
    store: Store,
    run_id: String,
    next: usize,
    queue: VecDeque<Event>,
    done: bool,
    first: bool,
    errors: u32,
    started: Instant,
    /// The server is shutting down: end the stream (`complete: false`).
    stopping: CancellationToken,
    /// This stream's place under the follow bounds, freed when the stream is dropped.
    _permit: FollowPermit,
}

impl Follower {
    /// One look at the run: queues its new lines, and `end` when it is final.
    async fn poll(&mut self) {
        let run = match self.store.get_run(&self.run_id).await {
            Ok(r) => r,
            Err(dotjob_shared::Error::NotFound(_)) => {
                return self.fail("not_found", "the run no longer exists");
            }
            Err(e) => return self.retry_later(&e),
        };
        let lines = match self.store.run_logs(&self.run_id, self.next).await {
            Ok(l) => l,
            Err(e) => return self.retry_later(&e),
        };
        self.errors = 0;
        for line in lines {
            let n = self.next;
            self.next += 1;
            self.queue.push_back(
                Event::default()
                    .event("line")
                    .id(self.next.to_string())
                    .data(json!({ "n": n, "line": line }).to_string()),
            );
        }
        let complete = is_complete(&run);
        if complete || self.started.elapsed() >= FOLLOW_MAX || self.stopping.is_cancelled() {
            self.queue.push_back(
                Event::default().event("end").data(
                    json!({ "status": run.status, "next": self.next, "complete": complete })
                        .to_string(),
                ),
            );
            self.done = true;
        }
    }

    fn retry_later(&mut self, e: &dotjob_shared::Error) {
        self.errors += 1;
        tracing::debug!(run = %self.run_id, error = %e, "log follow poll failed");
        if self.errors >= FOLLOW_ERRORS_MAX {
            self.fail("unavailable", "Redis is unavailable; reconnect later");
        }
    }

    fn fail(&mut self, code: &str, message: &str) {
        self.queue.push_back(
            Event::default()
                .event("error")
                .data(json!({ "code": code, "message": message }).to_string()),
        );
        self.done = true;
    }
}

/// The event stream of a followed run, starting at line `from`.
fn follow(
    store: Store,
    run_id: String,
    from: usize,
    permit: FollowPermit,
    stopping: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = Follower {
        store,
        run_id,
        next: from,
        queue: VecDeque::new(),
        done: false,
        first: true,
        errors: 0,
        started: Instant::now(),
        stopping,
        _permit: permit,
    };
    futures::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.done {
                return None;
            }
            if !f.first {
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                    () = f.stopping.cancelled() => {}
                }
            }
            f.first = false;
            f.poll().await;
        }
    })
}
