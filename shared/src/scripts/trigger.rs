//! `trigger.lua`: enqueues runs of a job by hand (manual trigger, child job, dead-letter
//! requeue, bulk load).

use redis::aio::ConnectionLike;

use super::{ScriptArgs, TRIGGER, refusal};
use crate::error::Result;
use crate::keys::Keys;

/// Why runs are enqueued by hand; recorded on each run (field `trigger`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerKind<'a> {
    /// Triggered through the API. A plain manual run (no params override, no parent) does
    /// not store its kind: its run id says it.
    Manual,
    /// Fired by the success of a parent run.
    Child,
    /// A dead letter run again.
    Requeue,
    /// Any other label (e.g. a benchmark's bulk load).
    Other(&'a str),
}

impl TriggerKind<'_> {
    /// The label stored on the run.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Manual => "manual",
            Self::Child => "child",
            Self::Requeue => "requeue",
            Self::Other(label) => label,
        }
    }
}

impl<'a> From<&'a str> for TriggerKind<'a> {
    fn from(label: &'a str) -> Self {
        match label {
            "manual" => Self::Manual,
            "child" => Self::Child,
            "requeue" => Self::Requeue,
            other => Self::Other(other),
        }
    }
}

/// The shards of a sharded job to enqueue: one run per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpan<'a> {
    /// The job's shard count.
    pub count: u32,
    /// Index of the first shard to enqueue.
    pub first: u32,
    /// The parameter (JSON, "" for none) of each shard to enqueue, from `first` on.
    pub params: &'a [String],
}

/// An idempotency key of a trigger: a repeat within the window answers the first run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency<'a> {
    /// The caller's key (per job).
    pub key: &'a str,
    /// How long the key answers its first run (ms).
    pub window_ms: u64,
}

/// Enqueues runs of a job.
#[derive(Clone, Debug)]
pub struct Trigger<'a> {
    /// The job's group.
    pub group: &'a str,
    /// The job.
    pub job_id: &'a str,
    /// Params override (JSON).
    pub params: Option<&'a str>,
    /// Why.
    pub kind: TriggerKind<'a>,
    /// The run whose success fired this one.
    pub parent_run: Option<&'a str>,
    /// How many runs (more than one only for jobs that allow overlap; at most 2000).
    pub count: u64,
    /// The shards to enqueue; `None` when not known: the script then refuses a sharded job
    /// with [`TriggerReply::NeedsShards`], so other jobs need no routing read first.
    pub shards: Option<ShardSpan<'a>>,
    /// The run id, when it is derived from what caused the run (a child job's run): it is
    /// enqueued at most once, a repeat answers [`TriggerReply::Replayed`]. `None`: a new
    /// id `<job>-m<ms>-<n>`.
    pub run_id: Option<&'a str>,
    /// The caller's idempotency key: a repeat within its window answers
    /// [`TriggerReply::Replayed`] with the first run.
    pub idempotency: Option<Idempotency<'a>>,
}

/// What [`Trigger`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerReply {
    /// Enqueued: the run id of a single run, one per shard of a sharded job, none for a bulk.
    Enqueued(Vec<String>),
    /// No such job.
    JobNotFound,
    /// The job is sharded and [`Trigger::shards`] was not given.
    NeedsShards,
    /// The job forbids overlapping runs and this run is in flight.
    InFlight(String),
    /// A bulk trigger of a job that does not allow overlapping runs.
    BulkNeedsAllow,
    /// Nothing enqueued: the run id given, or the run the idempotency key answered first,
    /// was enqueued already (for a sharded job, its first shard's run).
    Replayed(String),
}

impl Trigger<'_> {
    /// Runs `trigger.lua`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        keys: &Keys,
    ) -> Result<TriggerReply> {
        let mut inv = TRIGGER.prepare_invoke();
        self.encode(&mut inv, keys);
        match inv.invoke_async(c).await {
            Ok(runs) => Ok(TriggerReply::Enqueued(runs)),
            Err(e) => refused(refusal(&e)).ok_or_else(|| e.into()),
        }
    }

    fn encode(&self, inv: &mut impl ScriptArgs, keys: &Keys) {
        inv.key(keys.group_prefix(self.group))
            .arg(self.group)
            .arg(self.job_id)
            .arg(self.params.unwrap_or(""))
            .arg(self.kind.as_str())
            .arg(self.parent_run.unwrap_or(""))
            .arg(keys.events())
            .arg(self.count);
        match &self.shards {
            Some(s) => inv.arg(s.count).arg(s.first),
            None => inv.arg("").arg(""),
        };
        inv.arg(self.run_id.unwrap_or(""));
        match &self.idempotency {
            Some(i) => inv.arg(i.key).arg(i.window_ms),
            None => inv.arg("").arg(""),
        };
        if let Some(s) = &self.shards {
            inv.arg(s.params);
        }
    }
}

/// The refusal an error reply stands for, if it is one.
fn refused((code, detail): (Option<&str>, Option<&str>)) -> Option<TriggerReply> {
    Some(match code? {
        "NOTFOUND" => TriggerReply::JobNotFound,
        "SHARDED" => TriggerReply::NeedsShards,
        "INFLIGHT" => TriggerReply::InFlight(detail.unwrap_or_default().to_owned()),
        "BULK" => TriggerReply::BulkNeedsAllow,
        "REPLAYED" => TriggerReply::Replayed(detail.unwrap_or_default().to_owned()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    fn argv(t: &Trigger<'_>) -> Vec<String> {
        let mut r = Recorder::default();
        t.encode(&mut r, &Keys::new("dotjob"));
        assert_eq!(r.keys, ["dotjob:{g}:"]);
        r.args
    }

    #[test]
    fn triggers_encode_as_the_script_reads_them() {
        let plain = Trigger {
            group: "g",
            job_id: "01a",
            params: None,
            kind: TriggerKind::Manual,
            parent_run: None,
            count: 1,
            shards: None,
            run_id: None,
            idempotency: None,
        };
        assert_eq!(
            argv(&plain),
            [
                "g",
                "01a",
                "",
                "manual",
                "",
                "dotjob:events",
                "1",
                "",
                "",
                "",
                "",
                ""
            ]
        );
        let shard_params = [r#""eu""#.to_owned()];
        let requeue = Trigger {
            params: Some(r#"{"a":1}"#),
            kind: TriggerKind::Requeue,
            parent_run: Some("01a-5"),
            shards: Some(ShardSpan {
                count: 4,
                first: 2,
                params: &shard_params,
            }),
            ..plain.clone()
        };
        assert_eq!(
            argv(&requeue),
            [
                "g",
                "01a",
                r#"{"a":1}"#,
                "requeue",
                "01a-5",
                "dotjob:events",
                "1",
                "4",
                "2",
                "",
                "",
                "",
                r#""eu""#
            ]
        );
        let bulk = Trigger {
            kind: TriggerKind::Other("bench"),
            count: 500,
            ..plain.clone()
        };
        assert_eq!(argv(&bulk)[3..7], ["bench", "", "dotjob:events", "500"]);
        // A child's derived run id, and a caller's idempotency key with its window.
        let child = Trigger {
            kind: TriggerKind::Child,
            parent_run: Some("01p-5"),
            run_id: Some("01a-c01p-5"),
            ..plain.clone()
        };
        assert_eq!(argv(&child)[7..], ["", "", "01a-c01p-5", "", ""]);
        let keyed = Trigger {
            idempotency: Some(Idempotency {
                key: "order-42",
                window_ms: 86_400_000,
            }),
            ..plain
        };
        assert_eq!(argv(&keyed)[7..], ["", "", "", "order-42", "86400000"]);
    }

    #[test]
    fn kinds_round_trip_through_their_labels() {
        for kind in [
            TriggerKind::Manual,
            TriggerKind::Child,
            TriggerKind::Requeue,
            TriggerKind::Other("bench"),
        ] {
            assert_eq!(TriggerKind::from(kind.as_str()), kind);
        }
    }

    #[test]
    fn refusals_read_as_outcomes() {
        assert_eq!(
            refused((Some("NOTFOUND"), None)),
            Some(TriggerReply::JobNotFound)
        );
        assert_eq!(
            refused((Some("SHARDED"), None)),
            Some(TriggerReply::NeedsShards)
        );
        assert_eq!(
            refused((Some("INFLIGHT"), Some("01a-m5-1"))),
            Some(TriggerReply::InFlight("01a-m5-1".to_owned()))
        );
        assert_eq!(
            refused((Some("BULK"), Some("bulk triggers need concurrency `allow`"))),
            Some(TriggerReply::BulkNeedsAllow)
        );
        assert_eq!(
            refused((Some("REPLAYED"), Some("01a-m5-1-s0"))),
            Some(TriggerReply::Replayed("01a-m5-1-s0".to_owned()))
        );
        assert_eq!(refused((Some("WRONGTYPE"), None)), None);
        assert_eq!(refused((None, None)), None);
    }
}
