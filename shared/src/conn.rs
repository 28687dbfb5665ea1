//! Connections to Redis.
//!
//! Ordinary commands go through a deadpool-redis pool of multiplexed connections (checked
//! out per batch of work: every checkout costs a PING). Blocking reads (`XREADGROUP BLOCK`)
//! and pub/sub get connections of their own, never a shared multiplexed one, with a reply
//! timeout longer than the block (redis-rs 1.x defaults to 500 ms, shorter than our BLOCK).

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Handle to Redis: a connection pool, a client for dedicated connections, and the key names.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    client: redis::Client,
    keys: Keys,
    timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

/// A pooled connection.
pub type Conn = deadpool_redis::Connection;

impl Redis {
    /// Builds the pool. Does not connect yet: a process may start before Redis does.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| Error::Config(e.to_string()))?;
        let conn_cfg = AsyncConnectionConfig::new()
            .set_response_timeout(Some(cfg.timeout))
            .set_connection_timeout(Some(cfg.timeout));
        let manager = Manager::new_with_config(cfg.url.as_str(), conn_cfg)
            .map_err(|e| Error::Config(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(32)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.timeout))
            .create_timeout(Some(cfg.timeout))
            .recycle_timeout(Some(cfg.timeout))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            pool,
            client,
            keys: Keys::new(cfg.prefix.clone()),
            timeout: cfg.timeout,
        })
    }

    /// Key names under this prefix.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A pooled connection for ordinary commands.
    pub async fn conn(&self) -> Result<Conn> {
        Ok(self.pool.get().await?)
    }

    /// A connection of its own for a blocking command that blocks up to `block`.
    pub async fn dedicated(&self, block: Duration) -> Result<MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + self.timeout))
            .set_connection_timeout(Some(self.timeout));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// A pub/sub connection.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        Ok(
            tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
                .await
                .map_err(|_| {
                    Error::Redis(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "pub/sub connect timed out",
                    )))
                })??,
        )
    }

    /// The Redis server clock, in ms.
    pub async fn now_ms(&self) -> Result<i64> {
        let mut c = self.conn().await?;
        now_ms(&mut c).await
    }
}

/// The Redis server clock, in ms (`TIME`, plus the test clock offset if one is set).
pub async fn now_ms<C: redis::aio::ConnectionLike + Send>(c: &mut C) -> Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(c).await?;
    Ok(s * 1_000 + us / 1_000 + crate::scripts::clock_offset_ms())
}
