//! A bounded cache of job definitions, checked against the version each stream entry carries
//! (invariant 8): an entry fired with version 7 is never run with a cached version 6, even
//! when the invalidation message was missed.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use dotjob_shared::model::job::JobSpec;

/// A cached definition, with the parts every run shares ready to hand out.
pub(crate) struct CachedJob {
    pub(crate) spec: JobSpec,
    /// The job's params, shared by its runs (no copy per run).
    pub(crate) params: Arc<serde_json::Value>,
    /// The job's name.
    pub(crate) name: Arc<str>,
}

/// Job definitions by id, least recently used evicted first.
pub(crate) struct JobCache {
    inner: Mutex<lru::LruCache<String, Arc<CachedJob>>>,
}

impl JobCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Definitions for a batch of runs: cache hits, then every miss in one pipelined read.
    /// Maps each job id to its definition (`None` when the job is gone).
    pub(crate) async fn get_many(
        &self,
        redis: &dotjob_shared::Redis,
        group: &str,
        wanted: &[(&str, u64)],
    ) -> dotjob_shared::Result<std::collections::HashMap<String, Option<Arc<CachedJob>>>> {
        let mut out = std::collections::HashMap::with_capacity(wanted.len());
        let mut misses: Vec<&str> = Vec::new();
        if let Ok(mut c) = self.inner.lock() {
            for (id, min_version) in wanted {
                if out.contains_key(*id) || misses.contains(id) {
                    continue;
                }
                match c.get(*id).filter(|j| j.spec.version >= *min_version) {
                    Some(hit) => {
                        out.insert((*id).to_owned(), Some(hit.clone()));
                    }
                    None => misses.push(id),
                }
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let keys = redis.keys();
        let mut pipe = redis::pipe();
        for id in &misses {
            pipe.hgetall(keys.job(group, id));
        }
        let mut conn = redis.conn().await?;
        let rows: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut conn).await?;
        for (id, fields) in misses.into_iter().zip(rows) {
            if fields.is_empty() {
                self.invalidate(id);
                out.insert(id.to_owned(), None);
                continue;
            }
            let spec = JobSpec::from_fields(&keys.job(group, id), &fields)?;
            let job = Arc::new(CachedJob {
                params: Arc::new(spec.params.clone()),
                name: spec.name.as_str().into(),
                spec,
            });
            if let Ok(mut c) = self.inner.lock() {
                c.put(id.to_owned(), job.clone());
            }
            out.insert(id.to_owned(), Some(job));
        }
        Ok(out)
    }

    pub(crate) fn invalidate(&self, id: &str) {
        if let Ok(mut c) = self.inner.lock() {
            c.pop(id);
        }
    }
}
