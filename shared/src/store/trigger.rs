//! Runs enqueued by hand: a manual trigger, a child job, a dead letter requeued, a bulk load.

use redis::AsyncCommands;
use serde_json::Value;

use super::Store;
use crate::error::{Error, Result};
use crate::model::job::{Routing, limits};
use crate::scripts::{ShardSpan, Trigger, TriggerKind, TriggerReply};

/// One shard of a sharded job to enqueue again: (index, shard count, parameter JSON or "").
pub type Shard = (u32, u32, String);

impl Store {
    /// Enqueues a run by hand, with an optional params override; returns the run id (the
    /// first one of a sharded or broadcast job: see [`Store::trigger_runs`]).
    pub async fn trigger<'k>(
        &self,
        id: &str,
        params: Option<&Value>,
        kind: impl Into<TriggerKind<'k>>,
        parent_run: Option<&str>,
    ) -> Result<String> {
        let runs = self.trigger_runs(id, params, kind, parent_run).await?;
        runs.into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// [`Store::trigger`], answering every run enqueued: one per shard of a sharded job, one
    /// per live executor of a broadcast job (or its one `skipped` run when none is live).
    pub async fn trigger_runs<'k>(
        &self,
        id: &str,
        params: Option<&Value>,
        kind: impl Into<TriggerKind<'k>>,
        parent_run: Option<&str>,
    ) -> Result<Vec<String>> {
        let params = match params {
            Some(p) => {
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
                Some(s)
            }
            None => None,
        };
        self.enqueue(id, params.as_deref(), kind.into(), parent_run, 1, None)
            .await
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
        let runs = self
            .enqueue(id, params, kind, parent_run, 1, Some(shard))
            .await?;
        runs.into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
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
        self.enqueue(id, None, kind.into(), None, count, None)
            .await?;
        Ok(count)
    }

    async fn enqueue(
        &self,
        id: &str,
        params: Option<&str>,
        kind: TriggerKind<'_>,
        parent_run: Option<&str>,
        count: u64,
        shard: Option<Shard>,
    ) -> Result<Vec<String>> {
        let group = self
            .job_group(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        let keys = self.redis.keys();
        let mut c = self.redis.conn().await?;
        let asked = shard.as_ref().map(|(index, n, param)| ShardSpan {
            count: *n,
            first: *index,
            params: std::slice::from_ref(param),
        });
        let mut trigger = Trigger {
            group: &group,
            job_id: id,
            params,
            kind,
            parent_run,
            count,
            shards: asked,
        };
        // The script knows the job's routing: it answers NeedsShards when a single run of a
        // sharded job needs its shards spelled out, so other jobs pay no extra round trip.
        match trigger.call(&mut c, keys).await? {
            TriggerReply::NeedsShards => {}
            reply => return enqueued(reply, id),
        }
        if count > 1 {
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

/// The runs a trigger enqueued, or why it enqueued none.
fn enqueued(reply: TriggerReply, id: &str) -> Result<Vec<String>> {
    match reply {
        TriggerReply::Enqueued(runs) => Ok(runs),
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
