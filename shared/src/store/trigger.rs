//! Runs enqueued by hand: a manual trigger (optionally with an idempotency key), a child
//! job (once per parent run), a dead letter requeued, a bulk load.

use redis::AsyncCommands;
use serde_json::Value;

use super::Store;
use crate::error::{Error, Result};
use crate::model::job::{Routing, limits};
use crate::model::run::child_run_id;
use crate::scripts::{Idempotency, ShardSpan, Trigger, TriggerKind, TriggerReply};

/// One shard of a sharded job to enqueue again: (index, shard count, parameter JSON or "").
pub type Shard = (u32, u32, String);

/// What a trigger did: the run it enqueued, or the one enqueued before for the same
/// derived run id or idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Triggered {
    /// The run (a sharded job's first shard run, a broadcast job's first executor run).
    pub run_id: String,
    /// Every run enqueued: one per shard of a sharded job, one per live executor of a
    /// broadcast job (or its one `skipped` run when none is live); `[run_id]` otherwise.
    pub runs: Vec<String>,
    /// Nothing was enqueued: `run_id` was enqueued by an earlier trigger.
    pub replayed: bool,
}

/// What one enqueue asks for (see [`Trigger`]; the group is looked up).
#[derive(Clone, Copy)]
struct Ask<'a> {
    params: Option<&'a str>,
    kind: TriggerKind<'a>,
    parent_run: Option<&'a str>,
    count: u64,
    shard: Option<&'a Shard>,
    run_id: Option<&'a str>,
    idempotency: Option<Idempotency<'a>>,
}

impl<'a> Ask<'a> {
    fn new(kind: TriggerKind<'a>) -> Self {
        Self {
            params: None,
            kind,
            parent_run: None,
            count: 1,
            shard: None,
            run_id: None,
            idempotency: None,
        }
    }
}

/// Longest idempotency key accepted, in characters.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// Checks an idempotency key: 1 to [`IDEMPOTENCY_KEY_MAX`] characters, no control
/// characters; a refusal names `field`.
pub fn check_idempotency_key(field: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if key.chars().count() > IDEMPOTENCY_KEY_MAX {
        return Err(Error::invalid(
            field,
            format!("longer than {IDEMPOTENCY_KEY_MAX} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Params override as stored: compact JSON within the size limit.
fn params_json(params: Option<&Value>) -> Result<Option<String>> {
    let Some(p) = params else { return Ok(None) };
    let s = serde_json::to_string(p).unwrap_or_default();
    if s.len() > limits::PARAMS_MAX_BYTES {
        return Err(Error::invalid(
            "params",
            format!(
                "{} bytes; the limit is {}",
                s.len(),
                limits::PARAMS_MAX_BYTES
            ),
        ));
    }
    Ok(Some(s))
}

impl Store {
    /// Enqueues a run by hand, with an optional params override; returns the run id (the
    /// first one of a sharded or broadcast job: [`Store::trigger_idempotent`] answers them all).
    pub async fn trigger<'k>(
        &self,
        id: &str,
        params: Option<&Value>,
        kind: impl Into<TriggerKind<'k>>,
        parent_run: Option<&str>,
    ) -> Result<String> {
        let params = params_json(params)?;
        let ask = Ask {
            params: params.as_deref(),
            parent_run,
            ..Ask::new(kind.into())
        };
        Ok(self.enqueue_one(id, ask).await?.run_id)
    }

    /// Enqueues a manual run with an optional idempotency key: a key this job saw within
    /// the window answers the run it enqueued then, and enqueues nothing.
    pub async fn trigger_idempotent(
        &self,
        id: &str,
        params: Option<&Value>,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Triggered> {
        if let Some(i) = &idempotency {
            check_idempotency_key("idempotency_key", i.key)?;
        }
        let params = params_json(params)?;
        let ask = Ask {
            params: params.as_deref(),
            idempotency,
            ..Ask::new(TriggerKind::Manual)
        };
        self.enqueue_one(id, ask).await
    }

    /// Enqueues the run of job `child` that the success of `parent_run` fires, at most once
    /// per parent run: its id derives from the parent ([`child_run_id`]), so a parent run
    /// again (its worker died before recording it) finds the child run enqueued already.
    pub async fn trigger_child(&self, child: &str, parent_run: &str) -> Result<Triggered> {
        let run_id = child_run_id(child, parent_run);
        let ask = Ask {
            parent_run: Some(parent_run),
            run_id: Some(&run_id),
            ..Ask::new(TriggerKind::Child)
        };
        self.enqueue_one(child, ask).await
    }

    /// Enqueues one shard of a sharded job again, e.g. a dead shard run being requeued.
    /// Returns the new run id.
    pub async fn trigger_shard(
        &self,
        id: &str,
        params: Option<&str>,
        kind: TriggerKind<'_>,
        parent_run: Option<&str>,
        shard: Shard,
    ) -> Result<String> {
        let ask = Ask {
            params,
            parent_run,
            shard: Some(&shard),
            ..Ask::new(kind)
        };
        Ok(self.enqueue_one(id, ask).await?.run_id)
    }

    /// Enqueues `count` runs of a job at once (bulk loads, benchmarks); the job must allow
    /// overlapping runs. Returns how many were enqueued.
    pub async fn trigger_many<'k>(
        &self,
        id: &str,
        count: u64,
        kind: impl Into<TriggerKind<'k>>,
    ) -> Result<u64> {
        if count == 0 || count > 10_000 {
            return Err(Error::invalid("count", "must be between 1 and 10000"));
        }
        let ask = Ask {
            count,
            ..Ask::new(kind.into())
        };
        self.enqueue(id, ask).await?;
        Ok(count)
    }

    /// Enqueues one run (one per shard of a sharded job): the first run's id.
    async fn enqueue_one(&self, id: &str, ask: Ask<'_>) -> Result<Triggered> {
        let (runs, replayed) = self.enqueue(id, ask).await?;
        let run_id = runs
            .first()
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        Ok(Triggered {
            run_id,
            runs,
            replayed,
        })
    }

    /// The runs enqueued, and whether they had been enqueued before (a replay).
    async fn enqueue(&self, id: &str, ask: Ask<'_>) -> Result<(Vec<String>, bool)> {
        let group = self
            .job_group(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        let keys = self.redis.keys();
        let mut c = self.redis.conn().await?;
        let asked = ask.shard.map(|(index, n, param)| ShardSpan {
            count: *n,
            first: *index,
            params: std::slice::from_ref(param),
        });
        let mut trigger = Trigger {
            group: &group,
            job_id: id,
            params: ask.params,
            kind: ask.kind,
            parent_run: ask.parent_run,
            count: ask.count,
            shards: asked,
            run_id: ask.run_id,
            idempotency: ask.idempotency,
        };
        // The script knows the job's routing: it answers NeedsShards when a single run of a
        // sharded job needs its shards spelled out, so other jobs pay no extra round trip.
        match trigger.call(&mut c, keys).await? {
            TriggerReply::NeedsShards => {}
            reply => return enqueued(reply, id),
        }
        if ask.count > 1 {
            return Err(Error::invalid("count", "bulk triggers need routing `any`"));
        }
        let routing: Option<String> = c.hget(keys.job(&group, id), "routing").await?;
        let Some(Routing::Sharded {
            shards,
            shard_params,
        }) = routing.and_then(|r| serde_json::from_str::<Routing>(&r).ok())
        else {
            return Err(Error::Conflict(format!("job {id} changed concurrently")));
        };
        let shard_params: Vec<String> = (0..shards as usize)
            .map(|k| {
                shard_params
                    .get(k)
                    .map(Value::to_string)
                    .unwrap_or_default()
            })
            .collect();
        trigger.shards = Some(ShardSpan {
            count: shards,
            first: 0,
            params: &shard_params,
        });
        enqueued(trigger.call(&mut c, keys).await?, id)
    }
}

/// The runs a trigger enqueued (or had enqueued before), or why it enqueued none.
fn enqueued(reply: TriggerReply, id: &str) -> Result<(Vec<String>, bool)> {
    match reply {
        TriggerReply::Enqueued(runs) => Ok((runs, false)),
        TriggerReply::Replayed(run) => Ok((vec![run], true)),
        TriggerReply::JobNotFound => Err(Error::NotFound(format!("job {id}"))),
        TriggerReply::InFlight(run) => Err(Error::Conflict(format!(
            "job {id} forbids overlapping runs and run {run} is still in flight"
        ))),
        TriggerReply::BulkNeedsAllow => Err(Error::Conflict(format!(
            "job {id}: bulk triggers need concurrency `allow` and routing `any`"
        ))),
        TriggerReply::NeedsShards => Err(Error::Conflict(format!("job {id} changed concurrently"))),
    }
}
