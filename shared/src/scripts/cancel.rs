//! `cancel.lua`: cancels a run by hand.

use redis::aio::ConnectionLike;

use super::{CANCEL, bad_reply};
use crate::error::Result;
use crate::keys::Keys;
use crate::model::run::RunStatus;

/// Cancels one run.
#[derive(Clone, Copy, Debug)]
pub struct Cancel<'a> {
    /// The run's group.
    pub group: &'a str,
    /// The run.
    pub run: &'a str,
}

/// What [`Cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It had not started (or was waiting for a retry): cancelled at once.
    Cancelled,
    /// A worker holds it: its executor was asked to cancel the handler.
    Cancelling,
    /// It had already ended in this status; nothing changed.
    AlreadyEnded(RunStatus),
    /// No such run.
    NotFound,
}

impl Cancel<'_> {
    /// Runs `cancel.lua`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        keys: &Keys,
    ) -> Result<CancelOutcome> {
        let raw: String = CANCEL
            .key(keys.group_prefix(self.group))
            .arg(self.group)
            .arg(self.run)
            .arg(keys.events())
            .invoke_async(c)
            .await?;
        decode(&raw)
    }
}

fn decode(raw: &str) -> Result<CancelOutcome> {
    match raw {
        "cancelled" => Ok(CancelOutcome::Cancelled),
        "cancelling" => Ok(CancelOutcome::Cancelling),
        "" => Ok(CancelOutcome::NotFound),
        _ => raw
            .strip_prefix("final:")
            .and_then(RunStatus::parse)
            .map(CancelOutcome::AlreadyEnded)
            .ok_or_else(|| bad_reply("cancel.lua", format!("{raw:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_outcomes() {
        assert_eq!(decode("cancelled").unwrap(), CancelOutcome::Cancelled);
        assert_eq!(decode("cancelling").unwrap(), CancelOutcome::Cancelling);
        assert_eq!(decode("").unwrap(), CancelOutcome::NotFound);
        assert_eq!(
            decode("final:succeeded").unwrap(),
            CancelOutcome::AlreadyEnded(RunStatus::Succeeded)
        );
        assert_eq!(
            decode("final:cancelled").unwrap(),
            CancelOutcome::AlreadyEnded(RunStatus::Cancelled)
        );
        assert!(decode("final:nonsense").is_err());
        assert!(decode("what").is_err());
    }
}
