//! `shard_done.lua`: notes a succeeded shard of a sharded tick whose job has children, and
//! says whether every shard of the tick has succeeded (the children then fire).

use redis::aio::ConnectionLike;

use super::{SHARD_DONE, ScriptArgs};
use crate::error::Result;
use crate::keys::Keys;

/// How long a tick's set of succeeded shards is kept after its last change: a shard
/// retried later than this (backoffs are capped at 7 days) starts a new count.
pub const SHARDS_OK_KEEP_MS: u64 = 8 * 24 * 3_600 * 1_000;

/// One shard of a tick succeeded.
#[derive(Clone, Debug)]
pub struct ShardDone<'a> {
    /// The job's group.
    pub group: &'a str,
    /// The tick's base run id (the shard run ids without `-s<k>`).
    pub base_run: &'a str,
    /// The shard that succeeded.
    pub shard: u32,
    /// The tick's shard count.
    pub shards: u32,
}

impl ShardDone<'_> {
    /// Runs `shard_done.lua`: `true` once every shard of the tick has succeeded.
    pub async fn call<C: ConnectionLike + Send>(&self, c: &mut C, keys: &Keys) -> Result<bool> {
        let mut inv = SHARD_DONE.prepare_invoke();
        self.encode(&mut inv, keys);
        let complete: i64 = inv.invoke_async(c).await?;
        Ok(complete == 1)
    }

    fn encode(&self, inv: &mut impl ScriptArgs, keys: &Keys) {
        inv.key(keys.group_prefix(self.group))
            .arg(self.base_run)
            .arg(self.shard)
            .arg(self.shards)
            .arg(SHARDS_OK_KEEP_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_shard_encodes_as_the_script_reads_it() {
        let mut r = Recorder::default();
        ShardDone {
            group: "g",
            base_run: "01a-1000",
            shard: 2,
            shards: 4,
        }
        .encode(&mut r, &Keys::new("dotjob"));
        assert_eq!(r.keys, ["dotjob:{g}:"]);
        assert_eq!(r.args, ["01a-1000", "2", "4", "691200000"]);
    }
}
