//! `alert_record.lua`: records one delivery attempt, then schedules the next one or forgets
//! the delivery.

use redis::aio::ConnectionLike;

use super::{ALERT_RECORD, ScriptArgs};
use crate::error::Result;

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; the next attempt is due after this many ms.
    Retrying(u64),
    /// It failed and no attempt is left (or the rule is gone).
    Failed,
}

impl AttemptStatus {
    /// The name the delivery log shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying(_) => "retrying",
            Self::Failed => "failed",
        }
    }
}

/// One attempt to record.
#[derive(Clone, Copy, Debug)]
pub struct RecordAlertAttempt<'a> {
    /// Delivery id.
    pub id: &'a str,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: AttemptStatus,
    /// The receiver's HTTP status, if one answered.
    pub code: Option<u16>,
    /// What went wrong ("" for nothing).
    pub error: &'a str,
    /// Bound of the delivery log.
    pub log_max: u64,
}

impl RecordAlertAttempt<'_> {
    /// Runs `alert_record.lua` under the alerts prefix `prefix`; `false` when the delivery
    /// was no longer queued.
    pub async fn call<C: ConnectionLike + Send>(&self, c: &mut C, prefix: &str) -> Result<bool> {
        let mut inv = ALERT_RECORD.prepare_invoke();
        self.encode(&mut inv, prefix);
        let r: String = inv.invoke_async(c).await?;
        Ok(r == "ok")
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        let delay = match self.status {
            AttemptStatus::Retrying(ms) => ms,
            _ => 0,
        };
        inv.key(prefix)
            .arg(self.id)
            .arg(self.attempt)
            .arg(self.status.name())
            .arg(delay)
            .arg(self.code.map(|c| c.to_string()).unwrap_or_default())
            .arg(self.error)
            .arg(self.log_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn encodes_in_the_scripts_order() {
        let mut r = Recorder::default();
        RecordAlertAttempt {
            id: "d1",
            attempt: 2,
            status: AttemptStatus::Retrying(5_000),
            code: Some(500),
            error: "HTTP 500",
            log_max: 10_000,
        }
        .encode(&mut r, "p:{~alerts}:");
        assert_eq!(
            r.args,
            ["d1", "2", "retrying", "5000", "500", "HTTP 500", "10000"]
        );
        assert_eq!(AttemptStatus::Delivered.name(), "delivered");
        assert_eq!(AttemptStatus::Failed.name(), "failed");
    }
}
