//! Job definitions: read, create, update, pause, delete and list.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{JobFilter, PAGE_MAX, Page, Store};
use crate::conn::{Conn, now_ms};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::job::{JobInput, JobSpec, JobView};
use crate::scripts::{DeleteJob, NextFire, SaveJob, SaveMode, SaveReply};

impl Store {
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

    /// Writes a job with `save_job.lua`.
    async fn save(
        &self,
        c: &mut Conn,
        spec: &JobSpec,
        mode: SaveMode,
        next: NextFire,
    ) -> Result<SaveReply> {
        let mut fields = spec.to_fields();
        fields.push(("updated_at", spec.updated_at.to_string()));
        let on_cluster = self.redis.is_cluster();
        if on_cluster && mode == SaveMode::Create {
            self.index_job(c, spec).await?;
        }
        let reply = SaveJob {
            id: &spec.id,
            group: &spec.group,
            mode,
            next,
            fields: &fields,
            indexes: !on_cluster,
        }
        .call(c, self.redis.keys())
        .await;
        if on_cluster && mode == SaveMode::Create && !matches!(reply, Ok(SaveReply::Saved(_))) {
            // Nothing was created: take the index entries back (best effort; a leftover
            // points at no job and reads as not found).
            let _ = self.unindex_job(c, &spec.id).await;
        }
        reply
    }

    /// On a Redis Cluster: a new job into the global indexes, before its group's script
    /// creates it (each index is its own slot, so one command each), so a created job is
    /// always findable by id.
    async fn index_job(&self, c: &mut Conn, spec: &JobSpec) -> Result<()> {
        let keys = self.redis.keys();
        let () = c.hset(keys.job_index(), &spec.id, &spec.group).await?;
        let () = c.zadd(keys.job_ids(), &spec.id, 0).await?;
        let () = c.sadd(keys.groups(), &spec.group).await?;
        Ok(())
    }

    /// On a Redis Cluster: a deleted job out of the global indexes, after its group's
    /// script deleted it.
    async fn unindex_job(&self, c: &mut Conn, id: &str) -> Result<()> {
        let keys = self.redis.keys();
        let () = c.zrem(keys.job_ids(), id).await?;
        let () = c.hdel(keys.job_index(), id).await?;
        Ok(())
    }

    /// The schedule score for a job's next fire instant after `now`.
    fn next_fire(spec: &JobSpec, now: i64) -> Result<NextFire> {
        Ok(spec
            .next_fire_after(now)?
            .map_or(NextFire::Unschedule, NextFire::At))
    }

    /// Validates and creates a job; returns it as stored.
    pub async fn create_job(&self, input: JobInput) -> Result<JobSpec> {
        let mut c = self.redis.conn().await?;
        let now = now_ms(&mut c).await?;
        let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
        let mut spec = input.into_spec(None, &id, now)?;
        let next = Self::next_fire(&spec, now)?;
        spec.version = match self.save(&mut c, &spec, SaveMode::Create, next).await? {
            SaveReply::Saved(v) => v,
            _ => return Err(Error::Conflict(format!("job {id} exists already"))),
        };
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
            if spec.children != old.children {
                self.check_no_cycle(id, &spec.children).await?;
            }
            let timing_changed = spec.schedule != old.schedule
                || spec.timezone != old.timezone
                || spec.enabled != old.enabled;
            let next = if timing_changed {
                Self::next_fire(&spec, now)?
            } else {
                NextFire::Keep
            };
            let mode = SaveMode::Update {
                expected_version: Some(old.version),
            };
            match self.save(&mut c, &spec, mode, next).await? {
                SaveReply::Saved(v) => {
                    spec.version = v;
                    let event = Event::Job {
                        group: spec.group.clone(),
                        id: spec.id.clone(),
                        version: v,
                    };
                    self.publish_on(&mut c, &event).await;
                    return Ok(spec);
                }
                SaveReply::Conflict => {}
                SaveReply::NotFound | SaveReply::Exists => {
                    return Err(Error::NotFound(format!("job {id}")));
                }
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
        let mut c = self.redis.conn().await?;
        let on_cluster = self.redis.is_cluster();
        let existed = DeleteJob {
            id,
            group: &group,
            indexes: !on_cluster,
        }
        .call(&mut c, self.redis.keys())
        .await?;
        if on_cluster {
            self.unindex_job(&mut c, id).await?;
        }
        if !existed {
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
            let ids: Vec<String> = super::ids_from(&index, &from, limit)
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
}
