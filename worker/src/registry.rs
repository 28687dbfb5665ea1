//! The executor table (the seeds' executor registry): each worker registers itself with its
//! group, host, pid, version, handlers and concurrency, and beats while it lives.
//!
//! `<prefix>:{<group>}:executors` holds the registration JSON, `…:heartbeats` the last beat
//! (Redis clock) of each executor; the scheduler's janitor removes executors whose beat is
//! older than the executor timeout, once their pending entries have been claimed.

use dotjob_shared::keys::CONSUMER_GROUP;
use redis::AsyncCommands;
use serde_json::json;
use tracing::warn;

use crate::runner::Engine;

fn registration(e: &Engine) -> String {
    let mut handlers: Vec<&String> = e.handlers.keys().collect();
    handlers.sort();
    json!({
        "id": e.id,
        "group": e.group,
        "host": dotjob_shared::hostname(),
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "handlers": handlers,
        "concurrency": e.settings.concurrency,
        "lease_ms": e.settings.lease.as_millis() as u64,
        "started_at": dotjob_shared::time::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default()
        ),
    })
    .to_string()
}

/// Registers the executor (retried by every heartbeat if Redis is away now).
pub(crate) async fn register(e: &Engine) {
    let res: dotjob_shared::Result<()> = async {
        let mut c = e.redis.conn().await?;
        // Heartbeat first: a reader never sees the registration without it (not alive).
        let now = dotjob_shared::conn::now_ms(&mut c).await?;
        let _: i64 = c
            .zadd(e.redis.keys().heartbeats(&e.group), &e.id, now)
            .await?;
        beat(e, &mut c).await?;
        Ok(())
    }
    .await;
    if let Err(err) = res {
        warn!(error = %err, "cannot register executor yet; the heartbeat will");
    }
}

/// Refreshes the registration (so it reappears after a Redis restart without persistence).
pub(crate) async fn beat(
    e: &Engine,
    c: &mut dotjob_shared::conn::Conn,
) -> dotjob_shared::Result<()> {
    let _: i64 = c
        .hset(e.redis.keys().executors(&e.group), &e.id, registration(e))
        .await?;
    Ok(())
}

/// Removes the registration at shutdown; the consumer goes too unless it still holds
/// pending entries (handed back), which live workers claim first.
pub(crate) async fn deregister(e: &Engine) {
    let keys = e.redis.keys();
    let res: dotjob_shared::Result<()> = async {
        let mut c = e.redis.conn().await?;
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(keys.stream(&e.group))
            .arg(CONSUMER_GROUP)
            .query_async(&mut c)
            .await
            .unwrap_or((0, redis::Value::Nil, redis::Value::Nil, redis::Value::Nil));
        let mine: Vec<redis::Value> = if pending.0 > 0 {
            redis::cmd("XPENDING")
                .arg(keys.stream(&e.group))
                .arg(CONSUMER_GROUP)
                .arg("-")
                .arg("+")
                .arg(1)
                .arg(&e.id)
                .query_async(&mut c)
                .await?
        } else {
            vec![]
        };
        let mut p = redis::pipe();
        p.hdel(keys.executors(&e.group), &e.id)
            .ignore()
            .zrem(keys.heartbeats(&e.group), &e.id)
            .ignore()
            .srem(keys.disabled(&e.group), &e.id)
            .ignore();
        if mine.is_empty() {
            p.cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(keys.stream(&e.group))
                .arg(CONSUMER_GROUP)
                .arg(&e.id)
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
