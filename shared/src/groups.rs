//! Group-level state the admin API shows and changes: the groups themselves, their executors
//! (list, disable, enable) and their dead letters (list, requeue).

use std::collections::{HashMap, HashSet};

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::keys::CONSUMER_GROUP;
use crate::scripts::TriggerKind;
use crate::scripts::fields::{dead, run as run_field};
use crate::store::{PAGE_MAX, Page, Store};
use crate::time::{opt_ms_rfc3339, rfc3339};

/// One group.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Group))]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Jobs in it.
    pub jobs: u64,
    /// Entries in the stream (queued, pending and acknowledged but not trimmed yet).
    pub stream_length: u64,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Entries not delivered yet.
    pub lag: Option<u64>,
    /// Registered executors.
    pub executors: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// One executor (worker process) of a group, with what it registered (`group`, `host`,
/// `pid`, `version`, `handlers`, `concurrency`, `lease_ms`, `started_at`).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Executor))]
pub struct ExecutorView {
    /// Its id (consumer name).
    pub id: String,
    /// What it registered: host, pid, version, handlers, concurrency, lease, start.
    #[serde(flatten)]
    pub registration: serde_json::Map<String, Value>,
    /// Its last heartbeat.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_heartbeat: Option<i64>,
    /// Whether the heartbeat is recent (within three leases).
    pub alive: bool,
    /// Whether an admin disabled it (it then claims nothing new).
    pub disabled: bool,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
}

/// One dead letter.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// Its entry id in the dead-letter stream (used to requeue it).
    pub entry: String,
    /// The run that died.
    pub run: String,
    /// Its job.
    pub job: String,
    /// Attempts made.
    pub attempts: u64,
    /// The last error.
    pub error: String,
    /// When it died.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub failed_at: String,
}

/// Registrations, heartbeats and disabled ids of a group's executors.
type ExecutorRows = (HashMap<String, String>, Vec<(String, f64)>, HashSet<String>);

fn field<'a>(m: &'a HashMap<String, String>, k: &str) -> &'a str {
    m.get(k).map_or("", String::as_str)
}

impl Store {
    /// Fails with `NotFound` unless `group` has (or had) jobs.
    pub async fn check_group(&self, group: &str) -> Result<()> {
        crate::model::job::validate_group(group)?;
        let mut c = self.redis().conn().await?;
        let known: bool = c.sismember(self.redis().keys().groups(), group).await?;
        if known {
            Ok(())
        } else {
            Err(Error::NotFound(format!("group {group}")))
        }
    }

    /// Every group with its counts.
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        let keys = self.redis().keys();
        let mut c = self.redis().conn().await?;
        let mut groups: Vec<String> = c.smembers(keys.groups()).await?;
        groups.sort();
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let (jobs, len, executors, dead): (u64, u64, u64, u64) = redis::pipe()
                .zcard(keys.group_jobs(&g))
                .xlen(keys.stream(&g))
                .hlen(keys.executors(&g))
                .xlen(keys.dead(&g))
                .query_async(&mut c)
                .await?;
            let info: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                c.xinfo_groups(keys.stream(&g)).await;
            let cg = info
                .ok()
                .and_then(|i| i.groups.into_iter().find(|x| x.name == CONSUMER_GROUP));
            out.push(GroupInfo {
                name: g,
                jobs,
                stream_length: len,
                pending: cg.as_ref().map_or(0, |x| x.pending as u64),
                lag: cg.and_then(|x| x.lag.map(|l| l as u64)),
                executors,
                dead_letters: dead,
            });
        }
        Ok(out)
    }

    /// The executors of a group.
    pub async fn list_executors(&self, group: &str) -> Result<Vec<ExecutorView>> {
        self.check_group(group).await?;
        let keys = self.redis().keys();
        let mut c = self.redis().conn().await?;
        let now = crate::conn::now_ms(&mut c).await?;
        let (regs, beats, disabled): ExecutorRows = redis::pipe()
            .hgetall(keys.executors(group))
            .zrange_withscores(keys.heartbeats(group), 0, -1)
            .smembers(keys.disabled(group))
            .query_async(&mut c)
            .await?;
        let beats: HashMap<String, i64> = beats.into_iter().map(|(k, v)| (k, v as i64)).collect();
        let consumers: redis::RedisResult<redis::streams::StreamInfoConsumersReply> =
            c.xinfo_consumers(keys.stream(group), CONSUMER_GROUP).await;
        let pending: HashMap<String, u64> = consumers
            .map(|r| {
                r.consumers
                    .into_iter()
                    .map(|x| (x.name, x.pending as u64))
                    .collect()
            })
            .unwrap_or_default();
        let mut out: Vec<ExecutorView> = regs
            .into_iter()
            .map(|(id, json)| {
                let mut registration =
                    serde_json::from_str::<serde_json::Map<String, Value>>(&json)
                        .unwrap_or_default();
                registration.remove("id"); // shown once, from the key
                let lease = registration
                    .get("lease_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(10_000);
                let last = beats.get(&id).copied();
                ExecutorView {
                    alive: last.is_some_and(|b| now - b <= (3 * lease).max(10_000)),
                    disabled: disabled.contains(&id),
                    pending: pending.get(&id).copied().unwrap_or(0),
                    last_heartbeat: last,
                    registration,
                    id,
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Disables (it claims nothing new, finishes what it holds) or enables an executor.
    pub async fn set_executor_disabled(
        &self,
        group: &str,
        executor: &str,
        disabled: bool,
    ) -> Result<ExecutorView> {
        self.check_group(group).await?;
        let keys = self.redis().keys();
        let mut c = self.redis().conn().await?;
        let known: bool = c.hexists(keys.executors(group), executor).await?;
        if !known {
            return Err(Error::NotFound(format!(
                "executor {executor} in group {group}"
            )));
        }
        if disabled {
            let _: i64 = c.sadd(keys.disabled(group), executor).await?;
        } else {
            let _: i64 = c.srem(keys.disabled(group), executor).await?;
        }
        self.list_executors(group)
            .await?
            .into_iter()
            .find(|e| e.id == executor)
            .ok_or_else(|| Error::NotFound(format!("executor {executor}")))
    }

    /// Dead letters of a group, newest first. The cursor is the last entry id seen.
    pub async fn list_dead(
        &self,
        group: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        self.check_group(group).await?;
        let limit = limit.clamp(1, PAGE_MAX);
        let start = match cursor {
            Some(c) if valid_entry_id(c) => format!("({c}"),
            Some(_) => return Err(Error::invalid("cursor", "not a cursor from this listing")),
            None => "+".to_owned(),
        };
        let mut c = self.redis().conn().await?;
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(self.redis().keys().dead(group))
            .arg(&start)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut c)
            .await?;
        let next_cursor = (rows.len() == limit).then(|| rows[rows.len() - 1].0.clone());
        let items = rows
            .into_iter()
            .map(|(entry, f)| DeadLetter {
                run: field(&f, dead::RUN).to_owned(),
                job: field(&f, dead::JOB).to_owned(),
                attempts: field(&f, dead::ATTEMPTS).parse().unwrap_or(0),
                error: field(&f, dead::ERROR).to_owned(),
                failed_at: field(&f, dead::FAILED_AT)
                    .parse::<i64>()
                    .map(rfc3339)
                    .unwrap_or_default(),
                entry,
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    /// Runs a dead letter's job again (with the dead run's params override, if it had one),
    /// then removes the dead letter. Returns the new run id.
    pub async fn requeue_dead(&self, group: &str, entry: &str) -> Result<String> {
        self.check_group(group).await?;
        if !valid_entry_id(entry) {
            return Err(Error::NotFound(format!("dead letter {entry}")));
        }
        let keys = self.redis().keys();
        let mut c = self.redis().conn().await?;
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(keys.dead(group))
            .arg(entry)
            .arg(entry)
            .query_async(&mut c)
            .await?;
        let (_, f) = rows
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("dead letter {entry}")))?;
        let (run, job) = (field(&f, dead::RUN), field(&f, dead::JOB));
        let (params, shard, shards, shard_param): (
            Option<String>,
            Option<u32>,
            Option<u32>,
            Option<String>,
        ) = redis::cmd("HMGET")
            .arg(keys.run(group, run))
            .arg(&[
                run_field::PARAMS,
                run_field::SHARD,
                run_field::SHARDS,
                run_field::SHARD_PARAM,
            ])
            .query_async(&mut c)
            .await?;
        let new_run = match (shard, shards) {
            // A dead shard is requeued as that shard alone.
            (Some(index), Some(n)) => {
                self.trigger_shard(
                    job,
                    params.as_deref(),
                    TriggerKind::Requeue,
                    Some(run),
                    (index, n, shard_param.unwrap_or_default()),
                )
                .await?
            }
            _ => {
                let params = params.and_then(|p| serde_json::from_str::<Value>(&p).ok());
                self.trigger(job, params.as_ref(), TriggerKind::Requeue, Some(run))
                    .await?
            }
        };
        let _: i64 = c.xdel(keys.dead(group), &[entry]).await?;
        Ok(new_run)
    }
}

/// `<ms>-<seq>`.
fn valid_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}
