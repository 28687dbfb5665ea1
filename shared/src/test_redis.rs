//! Test support for the tests that run scripts and views against a real Redis: a handle on
//! the machine's Redis (`DOTJOB_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) under a
//! prefix of its own, so tests share the server without seeing each other's keys, and the
//! cleanup of that prefix.

use std::time::Duration;

use redis::AsyncCommands;

use crate::config::RedisConfig;
use crate::conn::Redis;

/// A handle under the prefix `t-<name>-<random>`.
pub(crate) fn handle(name: &str) -> Redis {
    let url = std::env::var("DOTJOB_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    Redis::new(&RedisConfig {
        url,
        prefix: format!("t-{name}-{:08x}", rand::random::<u32>()),
        timeout: Duration::from_secs(5),
        ..RedisConfig::default()
    })
    .expect("redis handle")
}

/// Deletes every key of the handle's prefix.
pub(crate) async fn cleanup(redis: &Redis) {
    let mut c = redis.conn().await.expect("conn");
    let all: Vec<String> = c
        .keys(format!("{}*", redis.keys().prefix()))
        .await
        .expect("keys");
    if !all.is_empty() {
        let _: () = c.del(all).await.expect("cleanup");
    }
}
