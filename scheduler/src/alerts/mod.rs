//! Alerts: rules watch runs, ticks and groups, and send signed webhooks or Slack messages.
//!
//! - **Events** are written where they happen, by scripts that already run: `complete.lua`
//!   adds one to the group's capped stream `alert-events` for a run that ends failed, dead
//!   or timed out (and for each timed-out attempt), with the job's failure streak
//!   (`fail-streaks`, reset by a success); `fire.lua` adds one for each tick it records
//!   `skipped` (misfire `skip`, `forbid`). No extra round trip on the hot path.
//! - **Evaluation** ([`evaluate`]) runs on its own task in every replica, never in the
//!   firing loops: the replica holding a group's lease reads the group's events after the
//!   group's cursor, queues an alert per matching rule, and advances the cursor with
//!   `alert_cursor.lua`, fenced by the lease epoch like `fire.lua`. `alert_enqueue.lua`
//!   keeps a `seen` marker per (rule, event) and a silence key per (rule, subject), so an
//!   event read twice (a lease moving, a crash before the cursor moved) is still alerted
//!   once, and a flapping job alerts once per silence window. State checks (long-running
//!   runs, no live executor) run on the lease holder every `check_every`; groups without a
//!   lease holder are checked by every replica, the silence key letting one alert through.
//! - **Delivery** ([`deliver`]) runs on its own task in every replica: `alert_claim.lua`
//!   hands each due delivery to one replica at a time; each attempt is recorded in the
//!   capped stream `deliveries` (`alert_record.lua`) and a failed one is retried after the
//!   next delay of `retry_delays`. The queue is in Redis, so a replica dying mid-send loses
//!   nothing: its claim lapses and another replica sends again (at least once; receivers
//!   de-duplicate by `X-Dotjob-Delivery`).

use std::sync::Arc;
use std::time::Duration;

use dotjob_shared::Redis;
use dotjob_shared::scripts::{EnqueueAlert, EnqueueReply};
use tokio_util::sync::CancellationToken;

use crate::lease::Leases;

pub mod deliver;
pub mod evaluate;
pub mod missed;
pub mod payload;
pub mod rule;
pub mod store;

pub use payload::Alert;
pub use rule::{EventRule, Rule, RuleInput, RuleView};

/// Alerting tunables.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// How often new events are evaluated.
    pub interval: Duration,
    /// How often the state checks run (long-running runs, no executor, no lease holder).
    pub check_every: Duration,
    /// Delays before the 2nd, 3rd, ... attempt of a delivery; attempts = delays + 1.
    pub retry_delays: Vec<Duration>,
    /// Time limit of one delivery attempt.
    pub timeout: Duration,
    /// The delivery log is trimmed to about this many attempts.
    pub log_max: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            check_every: Duration::from_secs(5),
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            timeout: Duration::from_secs(10),
            log_max: 10_000,
        }
    }
}

/// Runs the evaluator and the deliverer until `stop`.
pub async fn run(
    redis: Redis,
    leases: Arc<Leases>,
    settings: AlertSettings,
    lease_ttl: Duration,
    stop: CancellationToken,
) {
    let evaluator = tokio::spawn(
        evaluate::Evaluator::new(redis.clone(), leases, settings.clone(), lease_ttl)
            .run(stop.clone()),
    );
    deliver::run(redis, settings, stop).await;
    let _ = evaluator.await;
}

/// A new delivery id (a lowercase ULID: sorts by creation).
pub fn delivery_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// Queues `alert` for `rule` unless the event was already taken for it or the rule is
/// silent for `subject`; `event` names the group event it comes from. Returns what
/// happened and the delivery id.
pub async fn enqueue(
    redis: &Redis,
    rule: &Rule,
    subject: &str,
    event: Option<(&str, &str)>,
    alert: &Alert,
    silence: bool,
) -> dotjob_shared::Result<(EnqueueReply, String)> {
    let id = delivery_id();
    let payload = alert.payload(&id);
    let mut c = redis.conn().await?;
    let reply = EnqueueAlert {
        id: &id,
        rule: &rule.id,
        subject,
        silence_ms: if silence { rule.silence_ms } else { 0 },
        event,
        kind: alert.event,
        group: alert.group.as_deref().unwrap_or(""),
        job: alert.job.as_ref().map_or("", |j| j.0.as_str()),
        payload: &payload,
    }
    .call(&mut c, &redis.keys().alerts_prefix())
    .await?;
    let label = match reply {
        EnqueueReply::Queued => "queued",
        EnqueueReply::Seen => "seen",
        EnqueueReply::Silenced => "silenced",
    };
    metrics::counter!(dotjob_shared::metrics::ALERTS, "event" => alert.event, "result" => label)
        .increment(1);
    Ok((reply, id))
}
