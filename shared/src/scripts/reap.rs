//! `reap.lua`: forgets executors whose heartbeat stopped and deletes consumers that hold
//! nothing; ends the broadcast runs of executors no longer alive (`lost`).

use redis::aio::ConnectionLike;

use super::REAP;
use crate::error::Result;

/// Reaps one group's executors.
#[derive(Clone, Copy, Debug)]
pub struct Reap {
    /// An executor without a heartbeat for this long is forgotten (ms).
    pub executor_timeout_ms: u64,
}

/// What [`Reap`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReapReply {
    /// Executors forgotten.
    pub executors: u64,
    /// Consumers deleted from the consumer group.
    pub consumers: u64,
    /// Broadcast runs of executors no longer alive, recorded `lost`.
    pub lost: u64,
}

impl Reap {
    /// Runs `reap.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        self,
        c: &mut C,
        prefix: &str,
    ) -> Result<ReapReply> {
        let (executors, consumers, lost): (u64, u64, u64) = REAP
            .key(prefix)
            .arg(self.executor_timeout_ms)
            .invoke_async(c)
            .await?;
        Ok(ReapReply {
            executors,
            consumers,
            lost,
        })
    }
}
