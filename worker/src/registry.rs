//! The executor table (the seeds' executor registry): each worker registers itself with its
//! group, host, pid, version, handlers and concurrency, and beats while it lives.
//!
//! `<prefix>:{<group>}:executors` holds the registration JSON, `…:heartbeats` the last beat
//! (Redis clock) of each executor; the scheduler's janitor removes executors whose beat is
//! older than the executor timeout, once their pending entries have been claimed.
//!
//! A [`Registry`] is built from plain data when the worker is built; the runner calls
//! [`Registry::register`] at start, [`Registry::beat`] from its heartbeat and
//! [`Registry::deregister`] at shutdown.

use std::time::Duration;

use dotjob_shared::Redis;
use dotjob_shared::keys::CONSUMER_GROUP;
use redis::AsyncCommands;
use serde_json::json;
use tracing::warn;

/// What an executor says about itself.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) group: String,
    /// The executor id (its consumer name).
    pub(crate) id: String,
    /// Its handler names, sorted.
    pub(crate) handlers: Vec<String>,
    pub(crate) concurrency: usize,
    /// After how long without a heartbeat its runs are reclaimed.
    pub(crate) reclaim_after: Duration,
}

impl Registration {
    /// The registration JSON (`lease_ms` is the reclaim time, the name readers know).
    fn to_json(&self, started_at_ms: i64) -> String {
        json!({
            "id": self.id,
            "group": self.group,
            "host": dotjob_shared::hostname(),
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "handlers": self.handlers,
            "concurrency": self.concurrency,
            "lease_ms": self.reclaim_after.as_millis() as u64,
            "started_at": dotjob_shared::time::rfc3339(started_at_ms),
        })
        .to_string()
    }
}

/// One executor's entry in its group's executor table.
#[derive(Debug)]
pub(crate) struct Registry {
    redis: Redis,
    me: Registration,
    /// When this executor started (ms, local clock): written by every beat unchanged.
    started_at_ms: i64,
}

impl Registry {
    pub(crate) fn new(redis: Redis, mut me: Registration) -> Self {
        me.handlers.sort();
        let started_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Self {
            redis,
            me,
            started_at_ms,
        }
    }

    /// The registration JSON every beat writes (the same start instant each time).
    fn registration_json(&self) -> String {
        self.me.to_json(self.started_at_ms)
    }

    /// Registers the executor (retried by every heartbeat if Redis is away now).
    pub(crate) async fn register(&self) {
        let res: dotjob_shared::Result<()> = async {
            let mut c = self.redis.conn().await?;
            // Heartbeat first: a reader never sees the registration without it (not alive).
            let now = dotjob_shared::conn::now_ms(&mut c).await?;
            let _: i64 = c
                .zadd(
                    self.redis.keys().heartbeats(&self.me.group),
                    &self.me.id,
                    now,
                )
                .await?;
            self.beat(&mut c).await?;
            Ok(())
        }
        .await;
        if let Err(err) = res {
            warn!(error = %err, "cannot register executor yet; the heartbeat will");
        }
    }

    /// Refreshes the registration (so it reappears after a Redis restart without persistence).
    pub(crate) async fn beat(
        &self,
        c: &mut dotjob_shared::conn::Conn,
    ) -> dotjob_shared::Result<()> {
        let _: i64 = c
            .hset(
                self.redis.keys().executors(&self.me.group),
                &self.me.id,
                self.registration_json(),
            )
            .await?;
        Ok(())
    }

    /// Removes the registration at shutdown; the consumer goes too unless it still holds
    /// pending entries (handed back), which live workers claim first.
    pub(crate) async fn deregister(&self) {
        let keys = self.redis.keys();
        let (group, id) = (&self.me.group, &self.me.id);
        let res: dotjob_shared::Result<()> = async {
            let mut c = self.redis.conn().await?;
            let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
                .arg(keys.stream(group))
                .arg(CONSUMER_GROUP)
                .query_async(&mut c)
                .await
                .unwrap_or((0, redis::Value::Nil, redis::Value::Nil, redis::Value::Nil));
            let mine: Vec<redis::Value> = if pending.0 > 0 {
                redis::cmd("XPENDING")
                    .arg(keys.stream(group))
                    .arg(CONSUMER_GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(1)
                    .arg(id)
                    .query_async(&mut c)
                    .await?
            } else {
                vec![]
            };
            let mut p = redis::pipe();
            p.hdel(keys.executors(group), id)
                .ignore()
                .zrem(keys.heartbeats(group), id)
                .ignore()
                .srem(keys.disabled(group), id)
                .ignore();
            if mine.is_empty() {
                p.cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(keys.stream(group))
                    .arg(CONSUMER_GROUP)
                    .arg(id)
                    .ignore();
            }
            p.query_async::<()>(&mut c).await?;
            Ok(())
        }
        .await;
        if let Err(err) = res {
            warn!(error = %err, "could not deregister executor");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn started_at_is_the_start_not_the_last_beat() {
        let me = Registration {
            group: "g".to_owned(),
            id: "e".to_owned(),
            handlers: vec![],
            concurrency: 1,
            reclaim_after: Duration::from_secs(1),
        };
        let cfg = dotjob_shared::config::RedisConfig {
            url: dotjob_shared::config::DEFAULT_REDIS_URL.to_owned(),
            prefix: "started-at-test".to_owned(),
            timeout: Duration::from_secs(1),
            ..dotjob_shared::config::RedisConfig::default()
        };
        let reg = Registry::new(Redis::new(&cfg).expect("redis handle"), me);
        let first = reg.registration_json();
        tokio::time::sleep(Duration::from_millis(15)).await;
        assert_eq!(
            reg.registration_json(),
            first,
            "a later beat moved started_at"
        );
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(
            v["started_at"],
            dotjob_shared::time::rfc3339(reg.started_at_ms)
        );
    }

    #[test]
    fn registration_names_the_executor_and_its_reclaim_time() {
        let me = Registration {
            group: "billing".to_owned(),
            id: "host-1-abc".to_owned(),
            handlers: vec!["b".to_owned(), "a".to_owned()],
            concurrency: 8,
            reclaim_after: Duration::from_millis(2_500),
        };
        let v: serde_json::Value = serde_json::from_str(&me.to_json(0)).unwrap();
        assert_eq!(v["id"], "host-1-abc");
        assert_eq!(v["group"], "billing");
        assert_eq!(v["concurrency"], 8);
        assert_eq!(v["lease_ms"], 2_500);
        assert_eq!(v["pid"], std::process::id());
        assert_eq!(v["started_at"], dotjob_shared::time::rfc3339(0));
    }
}
