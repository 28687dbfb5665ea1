//! Jobs and runs in Redis: the operations the admin API and the processes share.
//!
//! Writes go through the Lua scripts so each is atomic within its group; every job write
//! bumps the job's version and publishes an [`Event`] after it is durable. Reads are plain
//! `HGETALL`s, pipelined for pages.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::conn::{Conn, Redis, now_ms};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::job::{JobInput, JobSpec, JobView, Routing, limits, valid_job_id};
use crate::model::run::{Run, RunStatus, job_of_run};
use crate::scripts;

/// Most items on one page.
pub const PAGE_MAX: usize = 500;

/// One page of a listing; pass `next_cursor` back as `cursor` for the next one.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Filters for [`Store::list_jobs`].
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only this group.
    pub group: Option<String>,
    /// Name contains this (case-insensitive).
    pub name: Option<String>,
    /// Only enabled / only paused.
    pub enabled: Option<bool>,
}

/// Filters for [`Store::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Scheduled at or after (ms).
    pub from_ms: Option<i64>,
    /// Scheduled at or before (ms).
    pub to_ms: Option<i64>,
}

/// Job and run operations over one Redis.
#[derive(Clone, Debug)]
pub struct Store {
    redis: Redis,
}

/// A script's error code and detail. Redis 7 prefixes an error reply that is a single word
/// with `ERR` (`ERR NOTFOUND`), so the code may arrive as the first word of the detail.
fn script_code(e: &redis::RedisError) -> (Option<&str>, Option<&str>) {
    match (e.code(), e.detail()) {
        (Some("ERR"), Some(d)) => {
            let mut words = d.splitn(2, ' ');
            (words.next(), words.next())
        }
        (code, detail) => (code, detail),
    }
}

fn script_error(e: redis::RedisError, what: &str) -> Error {
    let (code, detail) = script_code(&e);
    match code {
        Some("NOTFOUND") => Error::NotFound(what.to_owned()),
        Some("INFLIGHT") => Error::Conflict(format!(
            "{what} forbids overlapping runs and run {} is still in flight",
            detail.unwrap_or("?")
        )),
        Some("CONFLICT") => Error::Conflict(format!("{what} changed concurrently")),
        Some("EXISTS") => Error::Conflict(format!("{what} exists already")),
        _ => Error::Redis(e),
    }
}

impl Store {
    /// A store over `redis`.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis handle.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Publishes a change notification (a hint; failures are logged, not returned).
    pub async fn publish(&self, event: &Event) {
        match self.redis.conn().await {
            Ok(mut c) => self.publish_on(&mut c, event).await,
            Err(e) => tracing::warn!(error = %e, "could not publish event"),
        }
    }

    async fn publish_on(&self, c: &mut Conn, event: &Event) {
        let payload = serde_json::to_string(event).unwrap_or_default();
        let res: redis::RedisResult<i64> = c.publish(self.redis.keys().events(), payload).await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "could not publish event");
        }
    }

    /// The group a job lives in.
    pub async fn job_group(&self, id: &str) -> Result<Option<String>> {
        if !valid_job_id(id) {
            return Ok(None);
        }
        let mut c = self.redis.conn().await?;
        Ok(c.hget(self.redis.keys().job_index(), id).await?)
    }

    /// A job of a known group, if it exists.
    pub async fn get_job_in(&self, group: &str, id: &str) -> Result<Option<JobSpec>> {
        let key = self.redis.keys().job(group, id);
        let mut c = self.redis.conn().await?;
        let f: HashMap<String, String> = c.hgetall(&key).await?;
        if f.is_empty() {
            return Ok(None);
        }
        JobSpec::from_fields(&key, &f).map(Some)
    }

    /// A job by id.
    pub async fn get_job(&self, id: &str) -> Result<JobSpec> {
        let not_found = || Error::NotFound(format!("job {id}"));
        let group = self.job_group(id).await?.ok_or_else(not_found)?;
        self.get_job_in(&group, id).await?.ok_or_else(not_found)
    }

    /// A job with its next fire instant.
    pub async fn view_job(&self, id: &str) -> Result<JobView> {
        let spec = self.get_job(id).await?;
        let mut c = self.redis.conn().await?;
        let next: Option<f64> = c
            .zscore(self.redis.keys().schedule(&spec.group), id)
            .await?;
        Ok(JobView {
            spec,
            next_fire_at: next.map(|s| s as i64),
        })
    }

    async fn save(
        &self,
        c: &mut Conn,
        spec: &JobSpec,
        mode: &str,
        expected_version: Option<u64>,
        next: &str,
    ) -> Result<u64> {
        let keys = self.redis.keys();
        let mut inv = scripts::SAVE_JOB.prepare_invoke();
        inv.key(keys.group_prefix(&spec.group))
            .key(keys.job_index())
            .key(keys.job_ids())
            .key(keys.groups())
            .arg(&spec.id)
            .arg(&spec.group)
            .arg(mode)
            .arg(expected_version.map(|v| v.to_string()).unwrap_or_default())
            .arg(next);
        for (k, v) in spec.to_fields() {
            inv.arg(k).arg(v);
        }
        inv.arg("updated_at").arg(spec.updated_at);
        inv.invoke_async(c)
            .await
            .map_err(|e| script_error(e, &format!("job {}", spec.id)))
    }

    /// Validates and creates a job; returns it as stored.
    pub async fn create_job(&self, input: JobInput) -> Result<JobSpec> {
        let mut c = self.redis.conn().await?;
        let now = now_ms(&mut c).await?;
        let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
        let mut spec = input.into_spec(None, &id, now)?;
        let next = spec
            .next_fire_after(now)?
            .map(|n| n.to_string())
            .unwrap_or_default();
        spec.version = self.save(&mut c, &spec, "create", None, &next).await?;
        let event = Event::Job {
            group: spec.group.clone(),
            id: spec.id.clone(),
            version: spec.version,
        };
        self.publish_on(&mut c, &event).await;
        Ok(spec)
    }

    /// Validates a change over the stored job and writes it (optimistic, retried on a
    /// concurrent change). The schedule score is recomputed only when what decides it changed,
    /// so a tick that is due right now is never lost to an unrelated edit.
    pub async fn update_job(&self, id: &str, input: JobInput) -> Result<JobSpec> {
        for _ in 0..5 {
            let old = self.get_job(id).await?;
            let mut c = self.redis.conn().await?;
            let now = now_ms(&mut c).await?;
            let mut spec = input.clone().into_spec(Some(&old), id, now)?;
            let timing_changed = spec.schedule != old.schedule
                || spec.timezone != old.timezone
                || spec.enabled != old.enabled;
            let next = if timing_changed {
                spec.next_fire_after(now)?
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            } else {
                "keep".to_owned()
            };
            match self
                .save(&mut c, &spec, "update", Some(old.version), &next)
                .await
            {
                Ok(v) => {
                    spec.version = v;
                    let event = Event::Job {
                        group: spec.group.clone(),
                        id: spec.id.clone(),
                        version: v,
                    };
                    self.publish_on(&mut c, &event).await;
                    return Ok(spec);
                }
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "job {id} is being changed concurrently"
        )))
    }

    /// Pauses or resumes a job.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<JobSpec> {
        self.update_job(
            id,
            JobInput {
                enabled: Some(enabled),
                ..JobInput::default()
            },
        )
        .await
    }

    /// Deletes a job with its schedule and run history.
    pub async fn delete_job(&self, id: &str) -> Result<()> {
        let group = self
            .job_group(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        let keys = self.redis.keys();
        let mut c = self.redis.conn().await?;
        let existed: i64 = scripts::DELETE_JOB
            .key(keys.group_prefix(&group))
            .key(keys.job_index())
            .key(keys.job_ids())
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        if existed == 0 {
            return Err(Error::NotFound(format!("job {id}")));
        }
        self.publish(&Event::Job {
            group,
            id: id.to_owned(),
            version: 0,
        })
        .await;
        Ok(())
    }

    /// Enqueues a run by hand, with an optional params override; returns the run id.
    pub async fn trigger(
        &self,
        id: &str,
        params: Option<&Value>,
        kind: &str,
        parent_run: Option<&str>,
    ) -> Result<String> {
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
                s
            }
            None => String::new(),
        };
        let runs = self.enqueue(id, &params, kind, parent_run, 1, None).await?;
        runs.into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Enqueues one shard of a sharded job again (`(index, shards, parameter JSON or "")`),
    /// e.g. a dead shard run being requeued. Returns the new run id.
    pub async fn trigger_shard(
        &self,
        id: &str,
        params: Option<&str>,
        kind: &str,
        parent_run: Option<&str>,
        shard: (u32, u32, String),
    ) -> Result<String> {
        let runs = self
            .enqueue(id, params.unwrap_or(""), kind, parent_run, 1, Some(shard))
            .await?;
        runs.into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Enqueues `count` runs of a job at once (bulk loads, benchmarks); the job must allow
    /// overlapping runs. Returns how many were enqueued.
    pub async fn trigger_many(&self, id: &str, count: u64, kind: &str) -> Result<u64> {
        if count == 0 || count > 10_000 {
            return Err(Error::invalid("count", "must be between 1 and 10000"));
        }
        self.enqueue(id, "", kind, None, count, None).await?;
        Ok(count)
    }

    async fn enqueue(
        &self,
        id: &str,
        params: &str,
        kind: &str,
        parent_run: Option<&str>,
        count: u64,
        shard: Option<(u32, u32, String)>,
    ) -> Result<Vec<String>> {
        let group = self
            .job_group(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        let mut c = self.redis.conn().await?;
        let invoke = |shards: Option<(u32, u32, Vec<String>)>| {
            let mut inv = scripts::TRIGGER.prepare_invoke();
            inv.key(self.redis.keys().group_prefix(&group))
                .arg(&group)
                .arg(id)
                .arg(params)
                .arg(kind)
                .arg(parent_run.unwrap_or(""))
                .arg(self.redis.keys().events())
                .arg(count);
            match shards {
                Some((n, first, shard_params)) => inv.arg(n).arg(first).arg(shard_params),
                None => inv.arg(""),
            };
            inv
        };
        // The script knows the job's routing: it answers SHARDED when a single run of a
        // sharded job needs its shards spelled out, so other jobs pay no extra round trip.
        let asked = shard.map(|(index, n, param)| (n, index, vec![param]));
        let err = match invoke(asked).invoke_async(&mut c).await {
            Ok(runs) => return Ok(runs),
            Err(e) if script_code(&e).0 == Some("SHARDED") => e,
            Err(e) => return Err(script_error(e, &format!("job {id}"))),
        };
        if count > 1 {
            return Err(Error::invalid("count", "bulk triggers need routing `any`"));
        }
        let routing: Option<String> = c.hget(self.redis.keys().job(&group, id), "routing").await?;
        let Some(Routing::Sharded {
            shards,
            shard_params,
        }) = routing.and_then(|r| serde_json::from_str::<Routing>(&r).ok())
        else {
            return Err(script_error(err, &format!("job {id}")));
        };
        let shard_params = (0..shards as usize)
            .map(|k| {
                shard_params
                    .get(k)
                    .map(Value::to_string)
                    .unwrap_or_default()
            })
            .collect();
        invoke(Some((shards, 0, shard_params)))
            .invoke_async(&mut c)
            .await
            .map_err(|e| script_error(e, &format!("job {id}")))
    }

    /// Lists jobs, ordered by id (= creation order), with filters.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<JobView>> {
        let keys = self.redis.keys();
        let limit = limit.clamp(1, PAGE_MAX);
        let index = match &filter.group {
            Some(g) => keys.group_jobs(g),
            None => keys.job_ids(),
        };
        let needle = filter.name.as_ref().map(|n| n.to_lowercase());
        let mut c = self.redis.conn().await?;
        let mut items = Vec::new();
        let mut from = cursor.map_or("-".to_owned(), |c| format!("({c}"));
        // Scan at most a few chunks per request so a narrow filter cannot make it unbounded.
        for _ in 0..20 {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(&from)
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut c)
                .await?;
            if ids.is_empty() {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            let groups: Vec<Option<String>> = match &filter.group {
                Some(g) => vec![Some(g.clone()); ids.len()],
                None => {
                    redis::cmd("HMGET")
                        .arg(keys.job_index())
                        .arg(&ids)
                        .query_async(&mut c)
                        .await?
                }
            };
            let mut pipe = redis::pipe();
            for (id, g) in ids.iter().zip(&groups) {
                let g = g.as_deref().unwrap_or("");
                pipe.hgetall(keys.job(g, id)).zscore(keys.schedule(g), id);
            }
            let rows: Vec<(HashMap<String, String>, Option<f64>)> =
                pipe.query_async(&mut c).await?;
            for ((id, g), (f, next)) in ids.iter().zip(&groups).zip(rows) {
                if f.is_empty() {
                    continue;
                }
                let spec = JobSpec::from_fields(&keys.job(g.as_deref().unwrap_or(""), id), &f)?;
                if filter.enabled.is_some_and(|e| e != spec.enabled)
                    || needle
                        .as_ref()
                        .is_some_and(|n| !spec.name.to_lowercase().contains(n))
                {
                    continue;
                }
                items.push(JobView {
                    spec,
                    next_fire_at: next.map(|s| s as i64),
                });
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next_cursor: Some(id.clone()),
                    });
                }
            }
            let last = ids.last().cloned().unwrap_or_default();
            if ids.len() < limit {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            from = format!("({last}");
        }
        let next_cursor = from.strip_prefix('(').map(str::to_owned);
        Ok(Page { items, next_cursor })
    }

    /// One run by id.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let not_found = || Error::NotFound(format!("run {run_id}"));
        let job = job_of_run(run_id).ok_or_else(not_found)?;
        let group = self.job_group(job).await?.ok_or_else(not_found)?;
        let key = self.redis.keys().run(&group, run_id);
        let mut c = self.redis.conn().await?;
        let f: HashMap<String, String> = c.hgetall(&key).await?;
        if f.is_empty() {
            return Err(not_found());
        }
        Run::from_fields(&key, &f)
    }

    /// A job's runs, newest first. The cursor is `<scheduled ms>:<run id>` of the last item.
    pub async fn list_runs(
        &self,
        job_id: &str,
        filter: &RunFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Run>> {
        let group = self
            .job_group(job_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?;
        let keys = self.redis.keys();
        let limit = limit.clamp(1, PAGE_MAX);
        let index = keys.job_runs(&group, job_id);
        let (mut max_score, mut after_member) = match cursor {
            Some(c) => {
                let (s, m) = c
                    .split_once(':')
                    .and_then(|(s, m)| Some((s.parse::<i64>().ok()?, m.to_owned())))
                    .ok_or_else(|| Error::invalid("cursor", "not a cursor from this listing"))?;
                (s.min(filter.to_ms.unwrap_or(i64::MAX)), Some(m))
            }
            None => (filter.to_ms.unwrap_or(i64::MAX), None),
        };
        let min = filter.from_ms.map_or("-inf".to_owned(), |m| m.to_string());
        let mut c = self.redis.conn().await?;
        let mut items: Vec<Run> = Vec::new();
        let mut last: Option<(i64, String)> = None;
        for _ in 0..20 {
            let chunk = limit + 16;
            let max = if max_score == i64::MAX {
                "+inf".to_owned()
            } else {
                max_score.to_string()
            };
            let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(&max)
                .arg(&min)
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(chunk)
                .arg("WITHSCORES")
                .query_async(&mut c)
                .await?;
            let exhausted = rows.len() < chunk;
            // Members tied on the cursor's score come in reverse lexical order.
            let rows: Vec<(String, i64)> = rows
                .into_iter()
                .map(|(m, s)| (m, s as i64))
                .filter(|(m, s)| {
                    !(*s == max_score && after_member.as_ref().is_some_and(|a| m >= a))
                })
                .collect();
            let mut pipe = redis::pipe();
            for (m, _) in &rows {
                pipe.hgetall(keys.run(&group, m));
            }
            let hashes: Vec<HashMap<String, String>> = if rows.is_empty() {
                vec![]
            } else {
                pipe.query_async(&mut c).await?
            };
            for ((m, s), f) in rows.iter().zip(hashes) {
                last = Some((*s, m.clone()));
                if f.is_empty() {
                    continue;
                }
                let run = Run::from_fields(&keys.run(&group, m), &f)?;
                if filter.status.is_some_and(|st| st != run.status) {
                    continue;
                }
                items.push(run);
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next_cursor: Some(format!("{s}:{m}")),
                    });
                }
            }
            if exhausted {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            match &last {
                Some((s, m)) => {
                    max_score = *s;
                    after_member = Some(m.clone());
                }
                None => break,
            }
        }
        Ok(Page {
            items,
            next_cursor: last.map(|(s, m)| format!("{s}:{m}")),
        })
    }

    /// Cancels a run: a queued run (or one waiting for a retry) at once, a running one by
    /// telling its executor. Returns the run as it is after the request.
    pub async fn cancel_run(&self, run_id: &str) -> Result<Run> {
        let run = self.get_run(run_id).await?;
        let mut c = self.redis.conn().await?;
        let outcome: String = scripts::CANCEL
            .key(self.redis.keys().group_prefix(&run.group))
            .arg(&run.group)
            .arg(run_id)
            .arg(self.redis.keys().events())
            .invoke_async(&mut c)
            .await?;
        match outcome.as_str() {
            // Cancelling a cancelled run changes nothing and is not an error.
            "cancelled" | "cancelling" | "final:cancelled" => self.get_run(run_id).await,
            "" => Err(Error::NotFound(format!("run {run_id}"))),
            st => Err(Error::Conflict(format!(
                "run {run_id} is already {}",
                st.trim_start_matches("final:")
            ))),
        }
    }

    /// Log lines of a run from line `from` on.
    pub async fn run_logs(&self, run_id: &str, from: usize) -> Result<Vec<String>> {
        let run = self.get_run(run_id).await?;
        let mut c = self.redis.conn().await?;
        Ok(c.lrange(
            self.redis.keys().run_log(&run.group, run_id),
            from as isize,
            -1,
        )
        .await?)
    }

    /// The Redis clock.
    pub async fn now_ms(&self) -> Result<i64> {
        let mut c = self.redis.conn().await?;
        now_ms(&mut c).await
    }
}
