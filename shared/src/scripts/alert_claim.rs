//! `alert_claim.lua`: claims the alert deliveries whose next attempt is due.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::ALERT_CLAIM;
use super::fields::alert;
use crate::error::Result;

/// Claims due deliveries for `hold_ms` (another replica takes one again only after that).
#[derive(Clone, Copy, Debug)]
pub struct ClaimAlerts {
    /// Most deliveries to claim.
    pub max: usize,
    /// How long a claim holds (ms): longer than an attempt can take.
    pub hold_ms: u64,
}

/// One claimed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedAlert {
    /// Delivery id.
    pub id: String,
    /// The rule it is for.
    pub rule: String,
    /// Its event (`dead`, `missed`, ..., `test`).
    pub event: String,
    /// Its JSON payload.
    pub payload: String,
    /// Attempts already made.
    pub attempts: u32,
}

impl ClaimAlerts {
    /// Runs `alert_claim.lua` under the alerts prefix `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        self,
        c: &mut C,
        prefix: &str,
    ) -> Result<Vec<ClaimedAlert>> {
        let raw: Vec<(String, HashMap<String, String>)> = ALERT_CLAIM
            .key(prefix)
            .arg(self.max)
            .arg(self.hold_ms)
            .invoke_async(c)
            .await?;
        Ok(raw.into_iter().map(decode).collect())
    }
}

fn decode((id, mut f): (String, HashMap<String, String>)) -> ClaimedAlert {
    let mut take = |k: &str| f.remove(k).unwrap_or_default();
    ClaimedAlert {
        rule: take(alert::RULE),
        event: take(alert::EVENT),
        payload: take(alert::PAYLOAD),
        attempts: take(alert::ATTEMPTS).parse().unwrap_or(0),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_delivery_reads_back() {
        let f: HashMap<String, String> = [
            (alert::RULE, "r1"),
            (alert::EVENT, "dead"),
            (alert::PAYLOAD, "{}"),
            (alert::ATTEMPTS, "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let d = decode(("d1".to_owned(), f));
        assert_eq!(
            (d.id.as_str(), d.rule.as_str(), d.event.as_str(), d.attempts),
            ("d1", "r1", "dead", 2)
        );
    }
}
