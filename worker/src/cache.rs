//! A bounded cache of job definitions, checked against the version each stream entry carries
//! (invariant 8): an entry fired with version 7 is never run with a cached version 6, even
//! when the invalidation message was missed.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use dotjob_shared::Store;
use dotjob_shared::model::job::JobSpec;

/// Job definitions by id, least recently used evicted first.
pub(crate) struct JobCache {
    inner: Mutex<lru::LruCache<String, Arc<JobSpec>>>,
}

impl JobCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The definition of `id` at `min_version` or newer; `None` when the job is gone.
    pub(crate) async fn get(
        &self,
        store: &Store,
        group: &str,
        id: &str,
        min_version: u64,
    ) -> dotjob_shared::Result<Option<Arc<JobSpec>>> {
        if let Some(hit) = self
            .inner
            .lock()
            .ok()
            .and_then(|mut c| c.get(id).cloned())
            .filter(|j| j.version >= min_version)
        {
            return Ok(Some(hit));
        }
        let Some(spec) = store.get_job_in(group, id).await? else {
            self.invalidate(id);
            return Ok(None);
        };
        let spec = Arc::new(spec);
        if let Ok(mut c) = self.inner.lock() {
            c.put(id.to_owned(), spec.clone());
        }
        Ok(Some(spec))
    }

    pub(crate) fn invalidate(&self, id: &str) {
        if let Ok(mut c) = self.inner.lock() {
            c.pop(id);
        }
    }
}
