//! `alert_enqueue.lua`: queues one alert delivery unless its event was already taken for the
//! rule or the rule is silent for the subject.

use redis::aio::ConnectionLike;

use super::{ALERT_ENQUEUE, ScriptArgs};
use crate::error::Result;

/// How long the marker that an event was taken for a rule is kept (ms): far longer than an
/// event can wait for evaluation.
pub const SEEN_TTL_MS: u64 = 24 * 3_600 * 1_000;

/// One alert to queue.
#[derive(Clone, Copy, Debug)]
pub struct EnqueueAlert<'a> {
    /// New delivery id.
    pub id: &'a str,
    /// The rule that matched.
    pub rule: &'a str,
    /// What the silence window is kept for (a job, a run, a group).
    pub subject: &'a str,
    /// The rule's silence window (ms); 0 for none.
    pub silence_ms: u64,
    /// The event it comes from (group, event id), or `None` for a state check or a test.
    pub event: Option<(&'a str, &'a str)>,
    /// The event name (`dead`, `missed`, ..., `test`).
    pub kind: &'a str,
    /// The group it is about ("" for none).
    pub group: &'a str,
    /// The job it is about ("" for none).
    pub job: &'a str,
    /// The alert's JSON payload.
    pub payload: &'a str,
}

/// What [`EnqueueAlert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueReply {
    /// Queued for delivery.
    Queued,
    /// The event was already taken for this rule (by this or another replica).
    Seen,
    /// The rule is silent for this subject.
    Silenced,
}

impl EnqueueAlert<'_> {
    /// Runs `alert_enqueue.lua` under the alerts prefix `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<EnqueueReply> {
        let mut inv = ALERT_ENQUEUE.prepare_invoke();
        self.encode(&mut inv, prefix);
        let r: String = inv.invoke_async(c).await?;
        decode(&r)
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        let event = self
            .event
            .map(|(g, e)| format!("{g}:{e}"))
            .unwrap_or_default();
        inv.key(prefix)
            .arg(self.id)
            .arg(self.rule)
            .arg(self.subject)
            .arg(self.silence_ms)
            .arg(event)
            .arg(self.kind)
            .arg(self.group)
            .arg(self.job)
            .arg(self.payload)
            .arg(SEEN_TTL_MS);
    }
}

fn decode(r: &str) -> Result<EnqueueReply> {
    match r {
        "queued" => Ok(EnqueueReply::Queued),
        "seen" => Ok(EnqueueReply::Seen),
        "silenced" => Ok(EnqueueReply::Silenced),
        other => Err(super::bad_reply("alert_enqueue.lua", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn encodes_in_the_scripts_order_and_decodes_every_reply() {
        let mut r = Recorder::default();
        EnqueueAlert {
            id: "d1",
            rule: "r1",
            subject: "01job",
            silence_ms: 600_000,
            event: Some(("billing", "5-0")),
            kind: "dead",
            group: "billing",
            job: "01job",
            payload: "{}",
        }
        .encode(&mut r, "p:{~alerts}:");
        assert_eq!(r.keys, ["p:{~alerts}:"]);
        assert_eq!(
            r.args,
            [
                "d1",
                "r1",
                "01job",
                "600000",
                "billing:5-0",
                "dead",
                "billing",
                "01job",
                "{}",
                "86400000"
            ]
        );
        assert_eq!(decode("queued").unwrap(), EnqueueReply::Queued);
        assert_eq!(decode("seen").unwrap(), EnqueueReply::Seen);
        assert_eq!(decode("silenced").unwrap(), EnqueueReply::Silenced);
        assert!(decode("what").is_err());
    }
}
