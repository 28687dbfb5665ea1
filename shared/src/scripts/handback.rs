//! `handback.lua`: a worker shutting down hands its unfinished runs back.

use redis::aio::ConnectionLike;

use super::{HANDBACK, ScriptArgs};
use crate::error::Result;

/// Hands runs back: their entries stay pending but look idle past any lease, so a live
/// worker's next scan takes them at once.
#[derive(Clone, Copy, Debug)]
pub struct Handback<'a> {
    /// The worker shutting down (consumer name).
    pub consumer: &'a str,
    /// The idle time to give the entries (ms).
    pub idle_ms: u64,
    /// The runs: (entry id, run id).
    pub runs: &'a [(&'a str, &'a str)],
}

impl Handback<'_> {
    /// Runs `handback.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(&self, c: &mut C, prefix: &str) -> Result<()> {
        let mut inv = HANDBACK.prepare_invoke();
        self.encode(&mut inv, prefix);
        let _: i64 = inv.invoke_async(c).await?;
        Ok(())
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix).arg(self.consumer).arg(self.idle_ms);
        for (entry, run) in self.runs {
            inv.arg(entry).arg(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_handback_encodes_as_the_script_reads_it() {
        let mut r = Recorder::default();
        Handback {
            consumer: "w1",
            idle_ms: 100_000,
            runs: &[("17-0", "01a-5"), ("18-0", "01a-6")],
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args, ["w1", "100000", "17-0", "01a-5", "18-0", "01a-6"]);
    }
}
