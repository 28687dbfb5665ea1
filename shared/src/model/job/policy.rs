//! The small value types of a job definition: misfire and overlap policies, routing and
//! retry backoff. They appear unchanged in the API's JSON, in the job hash and, under the
//! `openapi` feature, in the OpenAPI document.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::defaults;

/// What to do with ticks found due later than the misfire threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// One run now for the whole gap.
    #[default]
    FireOnce,
    /// No run for the gap.
    Skip,
    /// Every missed tick, up to `catch_up_limit`.
    CatchUp,
}

/// What a tick does while a run of the same job is still in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// The new tick is recorded `skipped`.
    Forbid,
    /// The in-flight run is cancelled, the new one runs.
    Replace,
}

/// Where runs execute: `any` one executor, `broadcast` to every live, enabled executor (one
/// run per executor, run ids end `-e<executor>`; it needs concurrency `allow` and no
/// children), or `sharded` into N runs (run ids end `-s<k>`), each with its shard index and
/// parameter (overlap policies apply to a tick as a whole; children fire once every shard of
/// a tick succeeded).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Routing {
    /// One run on any executor of the group.
    #[default]
    Any,
    /// One run on every live, enabled executor of the group at fire time, run by that
    /// executor only.
    Broadcast,
    /// `shards` runs per tick or trigger, each with its index and parameter.
    Sharded {
        /// Number of shards (1-1024).
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024, example = 2))]
        shards: u32,
        /// One parameter per shard, or none.
        #[serde(default)]
        shard_params: Vec<Value>,
    },
}

/// Retry delays: `base_ms · 2^(attempt-1)`, capped at `max_ms`, ±20 % jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay before the first retry.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, example = 1000))]
    pub base_ms: u64,
    /// Longest delay.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, example = 300000))]
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_ms: defaults::BACKOFF_BASE_MS,
            max_ms: defaults::BACKOFF_MAX_MS,
        }
    }
}

impl Backoff {
    /// Delay before attempt `next_attempt` (2 = first retry), jittered by `jitter` in [-1, 1].
    pub fn delay_ms(&self, next_attempt: u32, jitter: f64) -> u64 {
        let exp = next_attempt.saturating_sub(2).min(40);
        let raw = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        let j = (raw as f64 * 0.2 * jitter.clamp(-1.0, 1.0)) as i64;
        (raw as i64 + j).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
        };
        assert_eq!(b.delay_ms(2, 0.0), 100);
        assert_eq!(b.delay_ms(3, 0.0), 200);
        assert_eq!(b.delay_ms(10, 0.0), 1_000);
        assert_eq!(b.delay_ms(2, 1.0), 120);
    }

    #[test]
    fn routing_json_forms() {
        assert_eq!(
            serde_json::to_value(Routing::Any).unwrap(),
            json!({"mode": "any"})
        );
        let sharded: Routing =
            serde_json::from_value(json!({"mode": "sharded", "shards": 2})).unwrap();
        assert_eq!(
            sharded,
            Routing::Sharded {
                shards: 2,
                shard_params: vec![]
            }
        );
        assert!(serde_json::from_value::<Routing>(json!({"mode": "everywhere"})).is_err());
    }
}
