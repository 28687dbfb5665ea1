//! `fire.lua`: fires due ticks of a group atomically, fenced by the group lease.

use redis::aio::ConnectionLike;

use super::{FIRE, ScriptArgs, bad_reply};
use crate::error::Result;
use crate::keys::Keys;
use crate::model::job::ConcurrencyPolicy;

/// The lease a fire call must still hold: `fire.lua` refuses it once another replica took
/// the group (a newer epoch) or the lease expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The scheduler replica holding the lease.
    pub holder: String,
    /// The lease epoch it holds.
    pub epoch: u64,
}

impl Fence {
    /// The token as the script and the run records (`fired_by`) spell it:
    /// `<holder>|<epoch>`.
    pub fn token(&self) -> String {
        format!("{}|{}", self.holder, self.epoch)
    }
}

/// One job's ticks to fire.
#[derive(Clone, Debug)]
pub struct FireJob<'a> {
    /// The job id.
    pub id: &'a str,
    /// Its schedule score as read: it is fired only if the score still equals this.
    pub expected_score: i64,
    /// Its following fire instant; `None` removes it from the schedule.
    pub next_score: Option<i64>,
    /// Its definition's version (carried by every run).
    pub version: u64,
    /// How its runs may overlap.
    pub policy: ConcurrencyPolicy,
    /// Its schedule has no instant left: the job disables itself (like a fired `@once`).
    pub exhausted: bool,
    /// Ticks to fire (ms).
    pub ticks: Vec<i64>,
    /// A missed tick recorded `skipped` (misfire policy `skip`) instead of fired.
    pub skip: Option<i64>,
    /// A sharded job's per-shard parameters (JSON, "" for none): each tick becomes one run
    /// per shard.
    pub shards: Option<&'a [String]>,
    /// A broadcast job: each tick becomes one run per live, enabled executor, in its own
    /// stream (ignored for a sharded job).
    pub broadcast: bool,
}

/// Fires ticks of several jobs of one group in one call.
#[derive(Clone, Debug)]
pub struct Fire<'a> {
    /// The group.
    pub group: &'a str,
    /// The lease to check; `None` fires unfenced (a single scheduler).
    pub fence: Option<&'a Fence>,
    /// How early a tick may be fired (ms); it starts at its instant on the workers.
    pub fire_ahead_ms: u64,
    /// The jobs.
    pub jobs: &'a [FireJob<'a>],
}

/// What [`Fire`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireReply {
    /// The fence no longer holds the lease: nothing was written.
    Fenced,
    /// Fired.
    Fired {
        /// Runs enqueued.
        fired: u64,
        /// Jobs left alone because their score or version moved (fired or changed elsewhere);
        /// the next round fires them as they now are.
        stale: u64,
    },
}

impl Fire<'_> {
    /// Runs `fire.lua`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        keys: &Keys,
    ) -> Result<FireReply> {
        let mut inv = FIRE.prepare_invoke();
        self.encode(&mut inv, keys);
        let raw: (String, u64, u64) = inv.invoke_async(c).await?;
        decode(raw)
    }

    fn encode(&self, inv: &mut impl ScriptArgs, keys: &Keys) {
        inv.key(keys.group_prefix(self.group))
            .arg(self.group)
            .arg(self.fence.map(Fence::token).unwrap_or_default())
            .arg(keys.events())
            .arg(self.fire_ahead_ms);
        for job in self.jobs {
            let policy = match job.policy {
                ConcurrencyPolicy::Allow => 'a',
                ConcurrencyPolicy::Forbid => 'f',
                ConcurrencyPolicy::Replace => 'r',
            };
            let mut options = String::with_capacity(3);
            options.push(policy);
            options.push(if job.exhausted { '1' } else { '0' });
            if job.shards.is_some() {
                options.push('s');
            } else if job.broadcast {
                options.push('b');
            }
            inv.arg(job.id)
                .arg(job.expected_score)
                .arg(job.next_score.map(|n| n.to_string()).unwrap_or_default())
                .arg(job.version)
                .arg(options)
                .arg(job.ticks.len() + usize::from(job.skip.is_some()));
            for tick in &job.ticks {
                inv.arg(tick);
            }
            if let Some(skip) = job.skip {
                inv.arg(format!("~{skip}"));
            }
            if let Some(shards) = job.shards {
                inv.arg(shards.len()).arg(shards);
            }
        }
    }
}

fn decode((status, fired, stale): (String, u64, u64)) -> Result<FireReply> {
    match status.as_str() {
        "ok" => Ok(FireReply::Fired { fired, stale }),
        "fenced" => Ok(FireReply::Fenced),
        other => Err(bad_reply("fire.lua", format!("status {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    fn argv(fire: &Fire<'_>) -> Vec<String> {
        let mut r = Recorder::default();
        fire.encode(&mut r, &Keys::new("dotjob"));
        assert_eq!(r.keys, ["dotjob:{g}:"]);
        r.args
    }

    #[test]
    fn jobs_encode_as_the_script_reads_them() {
        let fence = Fence {
            holder: "replica-1".to_owned(),
            epoch: 7,
        };
        let shards = vec![String::new(), r#""eu""#.to_owned()];
        let plain = FireJob {
            id: "01a",
            expected_score: 1000,
            next_score: Some(2000),
            version: 4,
            policy: ConcurrencyPolicy::Allow,
            exhausted: false,
            ticks: vec![1000],
            skip: None,
            shards: None,
            broadcast: false,
        };
        let last = FireJob {
            next_score: None,
            policy: ConcurrencyPolicy::Forbid,
            exhausted: true,
            ticks: vec![],
            skip: Some(900),
            ..plain.clone()
        };
        let sharded = FireJob {
            policy: ConcurrencyPolicy::Replace,
            ticks: vec![1000, 2000],
            shards: Some(&shards),
            ..plain.clone()
        };
        let broadcast = FireJob {
            broadcast: true,
            ..plain.clone()
        };
        let jobs = [plain, last, sharded, broadcast];
        let fire = Fire {
            group: "g",
            fence: Some(&fence),
            fire_ahead_ms: 2500,
            jobs: &jobs,
        };
        #[rustfmt::skip]
        let expected = [
            "g", "replica-1|7", "dotjob:events", "2500",
            "01a", "1000", "2000", "4", "a0", "1", "1000",
            "01a", "1000", "", "4", "f1", "1", "~900",
            "01a", "1000", "2000", "4", "r0s", "2", "1000", "2000", "2", "", "\"eu\"",
            "01a", "1000", "2000", "4", "a0b", "1", "1000",
        ];
        assert_eq!(argv(&fire), expected);
        let unfenced = Fire {
            fence: None,
            jobs: &[],
            ..fire
        };
        assert_eq!(argv(&unfenced), ["g", "", "dotjob:events", "2500"]);
    }

    #[test]
    fn replies_read_as_outcomes() {
        assert_eq!(
            decode(("ok".to_owned(), 3, 1)).unwrap(),
            FireReply::Fired { fired: 3, stale: 1 }
        );
        assert_eq!(
            decode(("fenced".to_owned(), 0, 0)).unwrap(),
            FireReply::Fenced
        );
        assert!(decode(("nope".to_owned(), 0, 0)).is_err());
    }
}
