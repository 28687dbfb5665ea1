//! `alert_cursor.lua`: advances a group's alert-event cursor, fenced by the group lease.

use redis::aio::ConnectionLike;

use super::{ALERT_CURSOR, Fence, ScriptArgs};
use crate::error::Result;

/// Moves a group's alert-event cursor to `last` (never backwards).
#[derive(Clone, Copy, Debug)]
pub struct AdvanceAlertCursor<'a> {
    /// The lease the caller holds (`None`: an unfenced single scheduler).
    pub fence: Option<&'a Fence>,
    /// Id of the last event evaluated.
    pub last: &'a str,
}

/// Whether the cursor moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorReply {
    /// Moved (or already past `last`).
    Ok,
    /// The caller no longer holds the group's lease.
    Fenced,
}

impl AdvanceAlertCursor<'_> {
    /// Runs `alert_cursor.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<CursorReply> {
        let mut inv = ALERT_CURSOR.prepare_invoke();
        self.encode(&mut inv, prefix);
        let r: String = inv.invoke_async(c).await?;
        Ok(if r == "fenced" {
            CursorReply::Fenced
        } else {
            CursorReply::Ok
        })
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        let token = self.fence.map(Fence::token).unwrap_or_default();
        inv.key(prefix).arg(token).arg(self.last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn the_fence_encodes_as_fire_does() {
        let f = Fence {
            holder: "r1".to_owned(),
            epoch: 7,
        };
        let mut r = Recorder::default();
        AdvanceAlertCursor {
            fence: Some(&f),
            last: "5-0",
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(
            (r.keys, r.args),
            (
                vec!["p:{g}:".to_owned()],
                vec!["r1|7".to_owned(), "5-0".to_owned()]
            )
        );
        let mut r = Recorder::default();
        AdvanceAlertCursor {
            fence: None,
            last: "5-0",
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args[0], "");
    }
}
