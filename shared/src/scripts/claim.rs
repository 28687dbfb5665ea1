//! `claim.lua`: takes over runs due for another attempt and runs whose worker died.

use std::collections::HashMap;

use redis::Value;
use redis::aio::ConnectionLike;

use super::{CLAIM, ScriptArgs};
use crate::error::Result;
use crate::keys::OwnStream;

/// The XAUTOCLAIM cursor that starts a scan over.
const START: &str = "0-0";

/// Claims entries for one worker.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// The claiming worker (consumer name).
    pub consumer: &'a str,
    /// An entry idle longer than this belongs to a worker that stopped (ms): the worker's
    /// reclaim time.
    pub reclaim_after_ms: u64,
    /// Most entries to claim.
    pub max_entries: usize,
    /// Also scan for entries idle past the reclaim time (XAUTOCLAIM), not only due retries.
    pub autoclaim: bool,
    /// Where that scan resumes (the previous [`ClaimReply::next_cursor`]); `None` starts over.
    pub cursor: Option<&'a str>,
}

/// An entry now owned by the claiming worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// Its stream entry id.
    pub entry: String,
    /// Its delivery count: the attempt number.
    pub deliveries: u32,
    /// Its stream entry fields ([`super::fields::entry`]).
    pub fields: HashMap<String, String>,
}

/// What [`Claim`] took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimReply {
    /// Where the next scan resumes; `None` when it went round.
    pub next_cursor: Option<String>,
    /// The entries claimed.
    pub entries: Vec<Claimed>,
    /// Entries Redis reported deleted while pending: their runs were recorded `lost`.
    pub lost: u64,
}

impl Claim<'_> {
    /// Runs `claim.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<ClaimReply> {
        self.call_on(c, prefix, None).await
    }

    /// [`Claim::call`] on the worker's own stream (broadcast runs: due retries, and entries
    /// it lost track of) when `own` is given, else on the group stream.
    pub async fn call_on<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
        own: Option<&OwnStream>,
    ) -> Result<ClaimReply> {
        let mut inv = CLAIM.prepare_invoke();
        self.encode(&mut inv, prefix, own);
        let raw: (String, Vec<(String, u32, Value)>, u64) = inv.invoke_async(c).await?;
        Ok(decode(raw))
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str, own: Option<&OwnStream>) {
        inv.key(prefix);
        if let Some(own) = own {
            inv.key(&own.stream).key(&own.retry);
        }
        inv.arg(self.consumer)
            .arg(self.reclaim_after_ms)
            .arg(self.max_entries)
            .arg(self.cursor.unwrap_or(START))
            .arg(if self.autoclaim { "1" } else { "0" });
    }
}

fn decode((next, claimed, lost): (String, Vec<(String, u32, Value)>, u64)) -> ClaimReply {
    ClaimReply {
        next_cursor: (next != START).then_some(next),
        entries: claimed
            .into_iter()
            .map(|(entry, deliveries, fields)| Claimed {
                entry,
                deliveries: deliveries.max(1),
                fields: field_map(&fields),
            })
            .collect(),
        lost,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

/// Stream entry fields as Redis returns them (a flat array, or a map under RESP3).
fn field_map(v: &Value) -> HashMap<String, String> {
    match v {
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|kv| (text(&kv[0]), text(&kv[1])))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        _ => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_claim_encodes_as_the_script_reads_it() {
        let argv = |cursor, autoclaim| {
            let mut r = Recorder::default();
            Claim {
                consumer: "w1",
                reclaim_after_ms: 10_000,
                max_entries: 128,
                autoclaim,
                cursor,
            }
            .encode(&mut r, "p:{g}:", None);
            assert_eq!(r.keys, ["p:{g}:"]);
            r.args
        };
        assert_eq!(argv(None, true), ["w1", "10000", "128", "0-0", "1"]);
        assert_eq!(
            argv(Some("17-3"), false),
            ["w1", "10000", "128", "17-3", "0"]
        );
        let mut r = Recorder::default();
        let own = crate::Keys::new("p").own_stream("g", "w1");
        Claim {
            consumer: "w1",
            reclaim_after_ms: 10_000,
            max_entries: 8,
            autoclaim: false,
            cursor: None,
        }
        .encode(&mut r, "p:{g}:", Some(&own));
        assert_eq!(r.keys, ["p:{g}:", "p:{g}:stream:w1", "p:{g}:retry:w1"]);
    }

    #[test]
    fn a_reply_reads_into_entries() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let fields = Value::Array(vec![bulk("run"), bulk("01a-5"), bulk("v"), bulk("2")]);
        let r = decode((
            "0-0".to_owned(),
            vec![
                ("17-0".to_owned(), 0, fields),
                ("18-0".to_owned(), 3, Value::Nil),
            ],
            2,
        ));
        assert_eq!((r.next_cursor, r.lost), (None, 2));
        assert_eq!(r.entries[0].deliveries, 1);
        assert_eq!(r.entries[0].fields["run"], "01a-5");
        assert_eq!(r.entries[0].fields["v"], "2");
        assert_eq!((r.entries[1].deliveries, r.entries[1].fields.len()), (3, 0));
        let more = decode(("17-3".to_owned(), vec![], 0));
        assert_eq!(more.next_cursor.as_deref(), Some("17-3"));
    }
}
