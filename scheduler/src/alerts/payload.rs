//! What an alert says and how it is signed.
//!
//! The payload is built once, when the alert is queued ([`Alert::payload`]), and stored with
//! the delivery; each attempt posts it as is to a webhook, signed afresh
//! ([`signature_header`]), or wraps its `text` for Slack ([`slack_body`]).
//!
//! Signature: `X-Dotjob-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`. A receiver recomputes the HMAC over the timestamp, a dot and the raw
//! body, compares in constant time, and refuses a timestamp far from its clock (replays).

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use dotjob_shared::time::rfc3339;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Dotjob-Signature";
/// The delivery id header (the same on every attempt: a receiver de-duplicates by it).
pub const DELIVERY_HEADER: &str = "X-Dotjob-Delivery";
/// The event header.
pub const EVENT_HEADER: &str = "X-Dotjob-Event";

/// One alert, before it is queued.
#[derive(Clone, Debug, Default)]
pub struct Alert {
    /// The event (`dead`, `timed_out`, `consecutive_failures`, `missed`, `long_running`,
    /// `no_executor`, `no_lease_holder`, `test`).
    pub event: &'static str,
    /// The rule's id and name.
    pub rule: (String, String),
    /// The group it is about.
    pub group: Option<String>,
    /// The job it is about (id, name).
    pub job: Option<(String, String)>,
    /// The run it is about.
    pub run: Option<String>,
    /// The scheduled slot it is about (ms).
    pub slot: Option<i64>,
    /// When it happened (ms, Redis clock).
    pub at: i64,
    /// One line for people.
    pub text: String,
    /// Event-specific details (error, attempt, streak, ...).
    pub details: Value,
}

impl Alert {
    /// The webhook body of delivery `id`.
    pub fn payload(&self, id: &str) -> String {
        json!({
            "id": id,
            "event": self.event,
            "rule": {"id": self.rule.0, "name": self.rule.1},
            "group": self.group,
            "job": self.job.as_ref().map(|(id, name)| json!({"id": id, "name": name})),
            "run": self.run,
            "slot": self.slot.map(rfc3339),
            "at": rfc3339(self.at),
            "text": self.text,
            "details": self.details,
        })
        .to_string()
    }
}

/// The Slack incoming-webhook body for a stored payload: its `text`.
pub fn slack_body(payload: &str) -> String {
    let text = serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "dotjob alert".to_owned());
    json!({ "text": text }).to_string()
}

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The value of [`SIGNATURE_HEADER`] at unix time `t` (seconds).
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A duration for people (`45s`, `12m`, `3h 5m`).
pub fn human_ms(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        _ if s % 3_600 / 60 == 0 => format!("{}h", s / 3_600),
        _ => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // What the README's Python check computes: hmac(k, "1700000000.{}").
        assert_eq!(
            sign("k", 1_700_000_000, "{}"),
            "c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
        let h = signature_header("k", 1_700_000_000, "{}");
        assert_eq!(
            h,
            format!("t=1700000000,v1={}", sign("k", 1_700_000_000, "{}"))
        );
        assert_ne!(
            sign("k", 1_700_000_000, "{}"),
            sign("k", 1_700_000_001, "{}")
        );
    }

    #[test]
    fn the_payload_names_what_happened_and_slack_gets_its_text() {
        let a = Alert {
            event: "missed",
            rule: ("01r".into(), "ops".into()),
            group: Some("billing".into()),
            job: Some(("01j".into(), "nightly".into())),
            slot: Some(1_790_000_000_000),
            at: 1_790_000_001_000,
            text: "job nightly missed its slot".into(),
            ..Alert::default()
        };
        let p: Value = serde_json::from_str(&a.payload("d1")).unwrap();
        assert_eq!(p["event"], "missed");
        assert_eq!(p["job"]["name"], "nightly");
        assert_eq!(p["slot"], rfc3339(1_790_000_000_000));
        let s: Value = serde_json::from_str(&slack_body(&a.payload("d1"))).unwrap();
        assert_eq!(s, json!({"text": "job nightly missed its slot"}));
        assert_eq!(human_ms(45_000), "45s");
        assert_eq!(human_ms(3_900_000), "1h 5m");
        assert_eq!(human_ms(7_200_000), "2h");
    }
}
