//! Alert rules in Redis: the hash `<prefix>:{~alerts}:rules` (rule id → rule JSON).
//! Written by the API, read by every replica's evaluator and deliverer.

use std::collections::HashMap;

use dotjob_shared::Redis;
use redis::AsyncCommands;

use super::rule::Rule;

/// Every rule, by id (rules that do not parse are skipped and logged).
pub async fn all(redis: &Redis) -> dotjob_shared::Result<Vec<Rule>> {
    let mut c = redis.conn().await?;
    let raw: HashMap<String, String> = c.hgetall(redis.keys().alert_rules()).await?;
    let mut rules: Vec<Rule> = raw
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str(&json) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(rule = id, error = %e, "an alert rule cannot be read; skipped");
                None
            }
        })
        .collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

/// One rule.
pub async fn get(redis: &Redis, id: &str) -> dotjob_shared::Result<Option<Rule>> {
    let mut c = redis.conn().await?;
    let raw: Option<String> = c.hget(redis.keys().alert_rules(), id).await?;
    Ok(raw.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Writes a rule (created or changed).
pub async fn put(redis: &Redis, rule: &Rule) -> dotjob_shared::Result<()> {
    let json =
        serde_json::to_string(rule).map_err(|e| dotjob_shared::Error::Config(e.to_string()))?;
    let mut c = redis.conn().await?;
    let _: i64 = c.hset(redis.keys().alert_rules(), &rule.id, json).await?;
    Ok(())
}

/// Deletes a rule; whether it existed.
pub async fn delete(redis: &Redis, id: &str) -> dotjob_shared::Result<bool> {
    let mut c = redis.conn().await?;
    let n: i64 = c.hdel(redis.keys().alert_rules(), id).await?;
    Ok(n > 0)
}

/// How many rules exist.
pub async fn count(redis: &Redis) -> dotjob_shared::Result<usize> {
    let mut c = redis.conn().await?;
    Ok(c.hlen(redis.keys().alert_rules()).await?)
}
