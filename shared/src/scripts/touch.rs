//! `touch.lua`: a live executor's heartbeat, which keeps its entries from being reclaimed.

use redis::aio::ConnectionLike;

use super::{ScriptArgs, TOUCH, bad_reply};
use crate::error::Result;
use crate::keys::OwnStream;

/// Touches the entries a worker holds and records its heartbeat.
#[derive(Clone, Copy, Debug)]
pub struct Touch<'a> {
    /// The worker (consumer name).
    pub consumer: &'a str,
    /// The runs it holds: (entry id, run id).
    pub held: &'a [(String, String)],
}

/// What [`Touch`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TouchReply {
    /// An admin disabled this executor: it claims nothing new.
    pub disabled: bool,
    /// Entries no longer its own (reclaimed or finished elsewhere).
    pub not_ours: Vec<String>,
    /// Runs whose cancellation was requested.
    pub cancel: Vec<String>,
    /// The Redis clock when the script ran (ms).
    pub now_ms: i64,
}

impl Touch<'_> {
    /// Runs `touch.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<TouchReply> {
        self.call_on(c, prefix, None).await
    }

    /// [`Touch::call`] for entries of the worker's own stream (broadcast runs) when `own`
    /// is given, else of the group stream.
    pub async fn call_on<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
        own: Option<&OwnStream>,
    ) -> Result<TouchReply> {
        let mut inv = TOUCH.prepare_invoke();
        self.encode(&mut inv, prefix, own);
        let raw: (i64, Vec<String>, Vec<String>, String) = inv.invoke_async(c).await?;
        decode(raw)
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str, own: Option<&OwnStream>) {
        inv.key(prefix);
        if let Some(own) = own {
            inv.key(&own.stream);
        }
        inv.arg(self.consumer);
        for (entry, run) in self.held {
            inv.arg(entry).arg(run);
        }
    }
}

fn decode(
    (disabled, not_ours, cancel, now): (i64, Vec<String>, Vec<String>, String),
) -> Result<TouchReply> {
    Ok(TouchReply {
        disabled: disabled == 1,
        not_ours,
        cancel,
        now_ms: now
            .parse()
            .map_err(|_| bad_reply("touch.lua", format!("now {now:?}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_touch_encodes_and_reads_back() {
        let held = [("17-0".to_owned(), "01a-5".to_owned())];
        let mut r = Recorder::default();
        Touch {
            consumer: "w1",
            held: &held,
        }
        .encode(&mut r, "p:{g}:", None);
        assert_eq!(r.args, ["w1", "17-0", "01a-5"]);
        assert_eq!(r.keys, ["p:{g}:"]);
        let mut r = Recorder::default();
        let own = crate::Keys::new("p").own_stream("g", "w1");
        Touch {
            consumer: "w1",
            held: &held,
        }
        .encode(&mut r, "p:{g}:", Some(&own));
        assert_eq!(r.keys, ["p:{g}:", "p:{g}:stream:w1"]);
        let reply = decode((1, vec!["16-0".to_owned()], vec![], "99".to_owned())).unwrap();
        assert!(reply.disabled);
        assert_eq!((reply.not_ours.len(), reply.now_ms), (1, 99));
        assert!(decode((0, vec![], vec![], String::new())).is_err());
    }
}
