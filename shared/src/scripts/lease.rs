//! `lease.lua`: a group's scheduling lease, acquired, renewed and released with fencing.

use redis::aio::ConnectionLike;

use super::{LEASE, ScriptArgs};
use crate::error::Result;

/// What to do with the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction<'a> {
    /// Take it if free or expired, renew it if held, or ask for it (`want`).
    Acquire {
        /// This replica is the one chosen for the group: it takes an expired lease at once
        /// and asks the holder of a live one to hand it over; another replica waits a
        /// further ttl before taking an expired lease.
        chosen: bool,
    },
    /// Renew it if held, else take it if free, expired, or held by a replica that is not
    /// in `live` (its heartbeat lapsed); else ask for it (`want`). For the chosen replica.
    TakeOver {
        /// The live replicas, this one included.
        live: &'a [String],
    },
    /// Give it up if held.
    Release,
}

/// Acts on one group's lease.
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    /// This scheduler replica.
    pub replica: &'a str,
    /// How long a hold lasts without renewal (ms).
    pub ttl_ms: u64,
    /// What to do.
    pub action: LeaseAction<'a>,
}

/// The lease after a [`Lease`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseReply {
    /// The epoch this replica holds, `None` when it does not hold the lease.
    pub epoch: Option<u64>,
    /// The holder ("" when free).
    pub holder: String,
    /// When the hold expires (ms, Redis clock).
    pub expires_ms: i64,
    /// The replica that asked for the lease, if any.
    pub want: Option<String>,
}

impl Lease<'_> {
    /// Runs `lease.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<LeaseReply> {
        let mut inv = LEASE.prepare_invoke();
        self.encode(&mut inv, prefix);
        let raw: (u64, String, i64, String) = inv.invoke_async(c).await?;
        Ok(decode(raw))
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        let (mode, chosen, live) = match self.action {
            LeaseAction::Acquire { chosen } => ("acquire", chosen, &[][..]),
            LeaseAction::TakeOver { live } => ("acquire", true, live),
            LeaseAction::Release => ("release", false, &[][..]),
        };
        inv.key(prefix)
            .arg(self.replica)
            .arg(self.ttl_ms)
            .arg(mode)
            .arg(if chosen { "1" } else { "0" });
        for r in live {
            inv.arg(r.as_str());
        }
    }
}

fn decode((epoch, holder, expires_ms, want): (u64, String, i64, String)) -> LeaseReply {
    LeaseReply {
        epoch: (epoch > 0).then_some(epoch),
        holder,
        expires_ms,
        want: (!want.is_empty()).then_some(want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn actions_encode_as_the_script_reads_them() {
        let argv = |action| {
            let mut r = Recorder::default();
            Lease {
                replica: "r1",
                ttl_ms: 5000,
                action,
            }
            .encode(&mut r, "p:{g}:");
            assert_eq!(r.keys, ["p:{g}:"]);
            r.args
        };
        assert_eq!(
            argv(LeaseAction::Acquire { chosen: true }),
            ["r1", "5000", "acquire", "1"]
        );
        assert_eq!(
            argv(LeaseAction::Acquire { chosen: false }),
            ["r1", "5000", "acquire", "0"]
        );
        assert_eq!(argv(LeaseAction::Release), ["r1", "5000", "release", "0"]);
        let live = ["r1".to_owned(), "r2".to_owned()];
        assert_eq!(
            argv(LeaseAction::TakeOver { live: &live }),
            ["r1", "5000", "acquire", "1", "r1", "r2"]
        );
    }

    #[test]
    fn replies_read_as_holds() {
        let held = decode((3, "r1".to_owned(), 99, String::new()));
        assert_eq!((held.epoch, held.want), (Some(3), None));
        let other = decode((0, "r2".to_owned(), 99, "r1".to_owned()));
        assert_eq!((other.epoch, other.holder.as_str()), (None, "r2"));
        assert_eq!(other.want.as_deref(), Some("r1"));
    }
}
