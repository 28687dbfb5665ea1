//! Run records: one run, a job's runs page by page, cancelling a run, its log lines.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{PAGE_MAX, Page, RunFilter, Store};
use crate::error::{Error, Result};
use crate::model::run::{Run, RunStatus, job_of_run};
use crate::scripts::{Cancel, CancelOutcome};

impl Store {
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
        let outcome = Cancel {
            group: &run.group,
            run: run_id,
        }
        .call(&mut c, self.redis.keys())
        .await?;
        match outcome {
            // Cancelling a cancelled run changes nothing and is not an error.
            CancelOutcome::Cancelled
            | CancelOutcome::Cancelling
            | CancelOutcome::AlreadyEnded(RunStatus::Cancelled) => self.get_run(run_id).await,
            CancelOutcome::NotFound => Err(Error::NotFound(format!("run {run_id}"))),
            CancelOutcome::AlreadyEnded(st) => Err(Error::Conflict(format!(
                "run {run_id} is already {}",
                st.as_str()
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
}
