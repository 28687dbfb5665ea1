//! Firing views of jobs: what firing needs of a definition, read with one `HMGET` and
//! cached by (id, version).

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;
use dotjob_shared::model::job::{ConcurrencyPolicy, Routing};
use dotjob_shared::schedule::Schedule;
use dotjob_shared::scripts::DueJob;

use super::Engine;
use crate::plan::Rules;

/// What firing needs of a job: read with one `HMGET` of these fields, not the whole
/// definition (params and the rest are the workers' business).
const FIRE_FIELDS: [&str; 10] = [
    "version",
    "enabled",
    "schedule",
    "timezone",
    "created_at",
    "misfire_policy",
    "misfire_threshold_ms",
    "catch_up_limit",
    "concurrency",
    "routing",
];

/// A cached firing view of a job.
pub(super) struct Cached {
    pub(super) version: u64,
    pub(super) enabled: bool,
    pub(super) rules: Rules,
    pub(super) policy: ConcurrencyPolicy,
    /// Parsed schedule and zone, shared by every job with the same pair; `None` = by hand.
    pub(super) schedule: Option<Arc<(Schedule, Tz)>>,
    /// A sharded job's per-shard parameters as JSON ("" where it has none), one per shard.
    pub(super) shards: Option<Vec<String>>,
    /// A broadcast job (one run per live executor, fired at its instant).
    pub(super) broadcast: bool,
}

/// Reads a unit enum stored as its bare snake_case name.
fn word<T: serde::de::DeserializeOwned>(v: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).ok()
}

impl Engine {
    /// The firing views of a round's due jobs at the versions `due.lua` reported: from the
    /// cache, and the misses with one pipelined `HMGET` each. A job missing from Redis maps
    /// to `None`; an unreadable one to its error message.
    pub(super) async fn jobs(
        &self,
        c: &mut dotjob_shared::conn::Conn,
        group: &str,
        due: &[DueJob],
    ) -> dotjob_shared::Result<HashMap<String, Result<Arc<Cached>, String>>> {
        let mut out = HashMap::with_capacity(due.len());
        let mut misses = Vec::new();
        if let Ok(mut cache) = self.cache.lock() {
            for job in due {
                match cache.get(&job.id).filter(|c| c.version == job.version) {
                    Some(hit) => {
                        out.insert(job.id.clone(), Ok(hit.clone()));
                    }
                    None => misses.push(job.id.as_str()),
                }
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let keys = self.redis.keys();
        let mut pipe = redis::pipe();
        for id in &misses {
            pipe.cmd("HMGET")
                .arg(keys.job(group, id))
                .arg(&FIRE_FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(c).await?;
        for (id, fields) in misses.into_iter().zip(rows) {
            if fields.iter().all(Option::is_none) {
                continue;
            }
            let entry = match self.parse(&fields) {
                Ok(job) => {
                    let job = Arc::new(job);
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.put(id.to_owned(), job.clone());
                    }
                    Ok(job)
                }
                Err(e) => Err(format!("{}: {e}", keys.job(group, id))),
            };
            out.insert(id.to_owned(), entry);
        }
        Ok(out)
    }

    /// A firing view from [`FIRE_FIELDS`] values.
    fn parse(&self, f: &[Option<String>]) -> Result<Cached, String> {
        let get = |i: usize| f.get(i).and_then(Option::as_deref).unwrap_or("");
        let num = |i: usize| -> Result<i64, String> {
            get(i)
                .parse()
                .map_err(|_| format!("field {} is not a number", FIRE_FIELDS[i]))
        };
        let schedule = match get(2) {
            "" => None,
            s => {
                let key = (s.to_owned(), get(3).to_owned());
                let hit = self
                    .schedules
                    .lock()
                    .ok()
                    .and_then(|mut c| c.get(&key).cloned());
                match hit {
                    Some(parsed) => Some(parsed),
                    None => {
                        let sched = Schedule::parse(s)?;
                        let tz = dotjob_shared::schedule::parse_timezone(get(3))?;
                        let parsed = Arc::new((sched, tz));
                        if let Ok(mut c) = self.schedules.lock() {
                            c.put(key, parsed.clone());
                        }
                        Some(parsed)
                    }
                }
            }
        };
        Ok(Cached {
            version: num(0)? as u64,
            enabled: get(1) == "true",
            schedule,
            rules: Rules {
                created_at: num(4)?,
                misfire_policy: word(get(5)).ok_or("bad misfire_policy")?,
                misfire_threshold_ms: num(6)? as u64,
                catch_up_limit: num(7)? as u32,
            },
            policy: word(get(8)).ok_or("bad concurrency")?,
            broadcast: get(9).contains("\"broadcast\""),
            shards: match get(9) {
                "" => None,
                r => {
                    match serde_json::from_str::<Routing>(r).map_err(|e| format!("routing: {e}"))? {
                        Routing::Sharded {
                            shards,
                            shard_params,
                        } => Some(
                            (0..shards as usize)
                                .map(|k| {
                                    shard_params
                                        .get(k)
                                        .map(serde_json::Value::to_string)
                                        .unwrap_or_default()
                                })
                                .collect(),
                        ),
                        _ => None,
                    }
                }
            },
        })
    }
}
