//! One attempt's execution, a task per run: the handler runs in a task of its own (a panic is
//! a failed attempt, and a handler that never yields cannot stop the deadline), raced
//! against the deadline, a cancel request and a hard shutdown; its log lines are flushed
//! meanwhile. A run fired ahead starts at its tick on the Redis clock.
//!
//! It holds its execution slot until the handler is done, sets its entry's start and finish
//! in the in-flight table, fires child jobs on success, and sends the attempt to the
//! completer.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use dotjob_shared::model::job::ConcurrencyPolicy;
use dotjob_shared::scripts::ShardDone;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use super::delivery::Delivery;
use super::outcome::{self, Done, Ended, Outcome, Settled};
use super::shared::Shared;
use crate::cache::CachedJob;
use crate::handler::{HandlerError, LogBuffer, RunContext};

/// How often a running handler's log lines are flushed.
const LOG_FLUSH: Duration = Duration::from_millis(500);

/// Executes one attempt of `d` and sends it to the completer.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut d: Delivery,
    job: Arc<CachedJob>,
    permit: OwnedSemaphorePermit,
) {
    // A run fired ahead starts at its tick on the Redis clock. Everything is prepared before
    // that instant and the handler's own task waits for it, so at the tick only timers fire
    // and handlers start.
    let started = match shared.clock.now() {
        Some(now) if d.at > now => shared.clock.instant_of(d.at),
        _ => Instant::now(),
    };
    // One token per run: a cancel request, the deadline and a hard shutdown all cancel it,
    // and the handler sees it through its context.
    let cancel = shared.inflight.start(&d.entry, started);
    crate::metrics::start_lag(&shared.group, shared.clock.now(), d.at);
    let log = Arc::new(Mutex::new(LogBuffer::default()));
    if d.attempt > 1
        && let Ok(mut l) = log.lock()
    {
        // A retry's lines follow the earlier attempts' in one log: mark where it starts.
        l.push(&dotjob_shared::model::run::attempt_marker(d.attempt));
    }
    // A shard's position, for its tick's children (the context takes the shard).
    let shard_of = d.shard.as_ref().map(|(k, n, _)| (*k, *n));
    let ctx = RunContext {
        run_id: d.run.as_str().into(),
        job_id: d.job.as_str().into(),
        job_name: job.name.clone(),
        group: shared.group_name.clone(),
        attempt: d.attempt,
        max_attempts: job.spec.max_attempts,
        scheduled_at_ms: d.at,
        params: d.params.take().map_or_else(|| job.params.clone(), Arc::new),
        shard: d.shard.take(),
        executor: shared.id_name.clone(),
        cancel: cancel.clone(),
        log: log.clone(),
    };
    let deadline = started + Duration::from_millis(job.spec.timeout_ms);
    let ended: Ended = match shared.handlers.get(&job.spec.handler) {
        None => {
            tokio::time::sleep_until(started.into()).await;
            Err((
                Outcome::Failed,
                HandlerError::retry(format!(
                    "no handler `{}` on worker {} (it has: {})",
                    job.spec.handler,
                    shared.id,
                    shared.handler_names()
                )),
            ))
        }
        Some(h) => {
            // The handler runs in a task of its own: a panic is caught, and a handler that
            // never yields still cannot stop this task from recording its timeout.
            let h = h.clone();
            let mut task = tokio::spawn(async move {
                tokio::time::sleep_until(started.into()).await;
                h.call(ctx).await
            });
            loop {
                let wake = (Instant::now() + LOG_FLUSH).min(deadline);
                tokio::select! {
                    biased;
                    r = &mut task => break outcome::from_join(r),
                    () = cancel.cancelled() => {
                        task.abort();
                        break Err((Outcome::Cancelled, HandlerError::fatal("cancelled on request")));
                    }
                    () = shared.hard.cancelled() => {
                        cancel.cancel();
                        task.abort();
                        break Err((Outcome::Handback, HandlerError::retry("worker shut down")));
                    }
                    () = tokio::time::sleep_until(wake.into()) => {
                        if Instant::now() >= deadline {
                            cancel.cancel();
                            task.abort();
                            let late = format!("timed out after {} ms", job.spec.timeout_ms);
                            break Err((Outcome::TimedOut, HandlerError::retry(late)));
                        }
                        Box::pin(flush_log(&shared, &d.run, &log)).await;
                    }
                }
            }
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    // Recording waits behind handlers that are due to start now (many runs share a tick):
    // the runtime would otherwise run this task first, delaying their start.
    tokio::task::yield_now().await;
    if ended.is_ok() && !job.spec.children.is_empty() {
        // Before this run is recorded and acknowledged, so none is lost: a worker dying in
        // between re-runs the parent, whose children then have the same derived run ids and
        // are not enqueued twice.
        if let Some(parent) = children_parent(&shared, &d.run, shard_of, &log).await {
            fire_children(&shared, &parent, &job.spec.children, &log).await;
        }
        hold_before_recording().await;
    }
    shared.inflight.finish(&d.entry);
    Box::pin(flush_log(&shared, &d.run, &log)).await;
    drop(permit);
    let Settled {
        outcome,
        code,
        result,
        error,
    } = outcome::settle(ended);
    match outcome {
        Outcome::Succeeded => debug!(duration_ms, "run succeeded"),
        Outcome::Handback => {}
        _ => {
            let outcome = outcome.as_str();
            info!(outcome, duration_ms, error = %error, "run attempt did not succeed");
        }
    }
    let retry_delay_ms = outcome.retries().then(|| {
        job.spec
            .backoff
            .delay_ms(d.attempt + 1, rand::random_range(-1.0..=1.0))
    });
    crate::metrics::run_duration(&shared.group, &d.job, duration_ms as f64 / 1_000.0);
    shared.send(Done {
        entry: d.entry,
        run: d.run,
        job: d.job,
        outcome,
        attempt: d.attempt,
        max_attempts: job.spec.max_attempts,
        retry_delay_ms,
        code,
        duration_ms,
        result,
        error,
        guarded: job.spec.concurrency != ConcurrencyPolicy::Allow,
        started: Some(started),
    });
}

/// The parent run of a succeeded run's children: the run itself, or for a shard the tick's
/// base run once every shard of the tick has succeeded (`None` before: a shard that ends
/// otherwise means no children for its tick).
async fn children_parent(
    shared: &Shared,
    run: &str,
    shard: Option<(u32, u32)>,
    log: &Mutex<LogBuffer>,
) -> Option<String> {
    let Some((k, n)) = shard else {
        return Some(run.to_owned());
    };
    let base = run.strip_suffix(&format!("-s{k}")).unwrap_or(run);
    let done = ShardDone {
        group: &shared.group,
        base_run: base,
        shard: k,
        shards: n,
    };
    let complete = async {
        let mut c = shared.redis.conn().await?;
        done.call(&mut c, shared.redis.keys()).await
    };
    let line = match complete.await {
        Ok(true) => return Some(base.to_owned()),
        Ok(false) => "child jobs fire once every shard of this tick has succeeded".to_owned(),
        Err(e) => {
            warn!(run, error = %e, "cannot count the succeeded shards of a tick");
            format!("child jobs not fired: cannot count the succeeded shards: {e}")
        }
    };
    if let Ok(mut l) = log.lock() {
        l.push(&line);
    }
    None
}

/// `DOTJOB_TEST_HOLD_AFTER_CHILDREN_MS`, for fault tests only: a run that fired its children
/// waits this long before it is recorded, so a test can kill its worker in between. Read
/// once; no wait when unset.
async fn hold_before_recording() {
    static HOLD: LazyLock<Option<Duration>> = LazyLock::new(|| {
        std::env::var("DOTJOB_TEST_HOLD_AFTER_CHILDREN_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(hold) = *HOLD {
        tokio::time::sleep(hold).await;
    }
}

/// Enqueues a succeeded run's child jobs (trigger `child`, `parent_run` = `parent`, once per
/// parent run) and notes each outcome in the run's log.
async fn fire_children(shared: &Shared, parent: &str, children: &[String], log: &Mutex<LogBuffer>) {
    let run = parent;
    let store = dotjob_shared::Store::new(shared.redis.clone());
    for child in children {
        let line = match store.trigger_child(child, parent).await {
            Ok(t) if t.replayed => {
                format!("child job {child}: run {} was fired already", t.run_id)
            }
            Ok(t) => {
                crate::metrics::child_fired(&shared.group);
                format!("fired child job {child}: run {}", t.run_id)
            }
            Err(e) => {
                warn!(run, child = %child, error = %e, "cannot fire a child job");
                format!("child job {child} not fired: {e}")
            }
        };
        if let Ok(mut l) = log.lock() {
            l.push(&line);
        }
    }
}

/// Appends the lines logged since the last flush to the run's log list.
async fn flush_log(shared: &Shared, run: &str, log: &Mutex<LogBuffer>) {
    let lines = match log.lock() {
        Ok(mut b) if !b.pending.is_empty() => std::mem::take(&mut b.pending),
        _ => return,
    };
    let key = shared.redis.keys().run_log(&shared.group, run);
    let res: dotjob_shared::Result<()> = async {
        let mut c = shared.redis.conn().await?;
        redis::pipe()
            .rpush(&key, &lines)
            .ignore()
            .pexpire(&key, shared.settings.log_ttl.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        warn!(error = %e, lines = lines.len(), "could not store log lines");
    }
}
