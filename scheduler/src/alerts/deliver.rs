//! The delivery task (one per replica): claims due deliveries from the queue in Redis,
//! posts each to its rule's target, records the attempt and schedules the next one.
//!
//! A claim holds a delivery for three attempt timeouts (at least 30 s): another replica
//! sends it again only if this one died before recording the attempt. Redirects are not
//! followed, and an error never shows the URL (a Slack webhook URL is a credential).

use std::time::Duration;

use dotjob_shared::Redis;
use dotjob_shared::scripts::{AttemptStatus, ClaimAlerts, ClaimedAlert, RecordAlertAttempt};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::AlertSettings;
use super::payload::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header, slack_body,
};
use super::rule::Target;

/// How often the queue is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Most deliveries sent at once by one replica.
const BATCH: usize = 16;

/// How one attempt went.
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    /// The receiver's status, if one answered.
    code: Option<u16>,
    /// What went wrong, if anything ("" for a 2xx).
    error: String,
    /// Whether another attempt can help (a deleted rule: no).
    retry: bool,
}

/// Delivers until `stop`.
pub async fn run(redis: Redis, settings: AlertSettings, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dotjob/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the alert HTTP client; alerts are not delivered");
            return;
        }
    };
    let hold_ms = (settings.timeout * 3)
        .max(Duration::from_secs(30))
        .as_millis() as u64;
    loop {
        let claimed = async {
            let mut c = redis.conn().await?;
            ClaimAlerts {
                max: BATCH,
                hold_ms,
            }
            .call(&mut c, &redis.keys().alerts_prefix())
            .await
        }
        .await;
        let wait = match claimed {
            Ok(batch) if !batch.is_empty() => {
                let full = batch.len() == BATCH;
                join_all(
                    batch
                        .into_iter()
                        .map(|d| attempt(&redis, &client, &settings, d)),
                )
                .await;
                if full { Duration::ZERO } else { POLL }
            }
            Ok(_) => POLL,
            Err(e) => {
                debug!(error = %e, "cannot claim alert deliveries; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One attempt of one delivery, recorded.
async fn attempt(
    redis: &Redis,
    client: &reqwest::Client,
    settings: &AlertSettings,
    d: ClaimedAlert,
) {
    let number = d.attempts + 1;
    let sent = match super::store::get(redis, &d.rule).await {
        Ok(Some(rule)) => post(client, &rule.target, &d).await,
        Ok(None) => Sent {
            code: None,
            error: "the rule was deleted".to_owned(),
            retry: false,
        },
        Err(e) => Sent {
            code: None,
            error: format!("cannot read the rule: {e}"),
            retry: true,
        },
    };
    let status = if sent.error.is_empty() {
        AttemptStatus::Delivered
    } else {
        match settings.retry_delays.get(d.attempts as usize) {
            Some(delay) if sent.retry => AttemptStatus::Retrying(delay.as_millis() as u64),
            _ => AttemptStatus::Failed,
        }
    };
    metrics::counter!(dotjob_shared::metrics::ALERTS_SENT, "result" => status.name()).increment(1);
    match status {
        AttemptStatus::Delivered => {
            debug!(
                delivery = d.id,
                rule = d.rule,
                event = d.event,
                attempt = number,
                "alert delivered"
            );
        }
        AttemptStatus::Retrying(_) => {
            debug!(
                delivery = d.id,
                rule = d.rule,
                attempt = number,
                error = sent.error,
                "alert delivery failed; retrying"
            );
        }
        AttemptStatus::Failed => {
            info!(
                delivery = d.id,
                rule = d.rule,
                event = d.event,
                attempts = number,
                error = sent.error,
                "alert not delivered; giving up"
            );
        }
    }
    let recorded = async {
        let mut c = redis.conn().await?;
        RecordAlertAttempt {
            id: &d.id,
            attempt: number,
            status,
            code: sent.code,
            error: &sent.error,
            log_max: settings.log_max,
        }
        .call(&mut c, &redis.keys().alerts_prefix())
        .await
    }
    .await;
    if let Err(e) = recorded {
        warn!(delivery = d.id, error = %e, "cannot record an alert delivery attempt; it is sent again");
    }
}

/// Posts the delivery to `target`.
async fn post(client: &reqwest::Client, target: &Target, d: &ClaimedAlert) -> Sent {
    let req = match target {
        Target::Webhook { url, secret } => {
            let t = chrono::Utc::now().timestamp();
            client
                .post(url)
                .header(SIGNATURE_HEADER, signature_header(secret, t, &d.payload))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(d.payload.clone())
        }
        Target::Slack { url } => client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(slack_body(&d.payload)),
    };
    let req = req
        .header(DELIVERY_HEADER, &d.id)
        .header(EVENT_HEADER, &d.event);
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Sent {
            code: Some(resp.status().as_u16()),
            error: String::new(),
            retry: false,
        },
        Ok(resp) => Sent {
            code: Some(resp.status().as_u16()),
            error: format!("the receiver answered HTTP {}", resp.status().as_u16()),
            retry: true,
        },
        Err(e) => Sent {
            code: None,
            error: describe(&e),
            retry: true,
        },
    }
}

/// A transport error in plain words, without the URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the time limit".to_owned()
    } else if e.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        let mut text = e.to_string();
        if let Some(url) = e.url() {
            text = text.replace(url.as_str(), "<url>");
        }
        format!("cannot send: {text}")
    }
}
