//! Alert rules and the delivery log, operation by operation: create, list, read, change,
//! send a test alert, list its delivery attempts, delete; unknown ids and bad bodies. Every
//! answer is checked against the document.

use std::time::Duration;

use dotjob_tests::wait_for;
use serde_json::json;

use super::{GROUP, Walk, Workers};

const RULES: &str = "/api/v1/alerts/rules";
const RULE: &str = "/api/v1/alerts/rules/{id}";
const TEST: &str = "/api/v1/alerts/rules/{id}/test";
const DELIVERIES: &str = "/api/v1/alerts/deliveries";

#[tokio::test]
async fn alert_rules_are_created_read_changed_tested_and_deleted() {
    let w = Walk::start("walk-alerts", Workers::None).await;
    w.job("walk-alerted", json!({})).await; // the group exists once it has a job
    // Nothing listens on port 9 of loopback: the test alert is refused, and its attempts
    // are recorded.
    let created = w
        .ok(
            "POST",
            RULES,
            &[],
            "",
            Some(json!({"name": "walk", "scope": format!("group:{GROUP}"),
            "events": [{"event": "dead"}, {"event": "long_running", "after_ms": 60000}],
            "target": {"type": "slack", "url": "http://127.0.0.1:9/hook"}})),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["silence_ms"], 600_000);
    assert_eq!(created["enabled"], true);
    let listed = w.ok("GET", RULES, &[], "", None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let read = w.ok("GET", RULE, &[&id], "", None).await;
    assert_eq!(read["events"][1]["after_ms"], 60_000);
    let changed = w
        .ok(
            "PATCH",
            RULE,
            &[&id],
            "",
            Some(json!({"enabled": false, "silence_ms": 5000})),
        )
        .await;
    assert_eq!(
        (changed["enabled"].as_bool(), changed["version"].as_u64()),
        (Some(false), Some(2))
    );
    let test = w.ok("POST", TEST, &[&id], "", None).await;
    let delivery = test["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_owned();
    let attempts = wait_for(
        "the test alert's first attempt",
        Duration::from_secs(20),
        || async {
            let page = w
                .ok(
                    "GET",
                    DELIVERIES,
                    &[],
                    &format!("delivery={delivery}"),
                    None,
                )
                .await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(attempts[0]["status"], "retrying", "{attempts:?}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| !e.contains("127.0.0.1:9")),
        "the URL is not shown"
    );
    for bad in [
        "status=nope",
        "limit=0",
        "cursor=x",
        "rule=NOT-AN-ID",
        "what=1",
    ] {
        let a = w.go("GET", DELIVERIES, &[], bad, None).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    let bad = w
        .go("POST", RULES, &[], "", Some(json!({"name": "x", "events": [{"event": "dead"}],
            "target": {"type": "webhook", "url": "file:///etc/passwd", "secret": "0123456789abcdef"}})))
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("target.url"))
    );
    w.ok("DELETE", RULE, &[&id], "", None).await;
    for (method, template) in [
        ("GET", RULE),
        ("PATCH", RULE),
        ("DELETE", RULE),
        ("POST", TEST),
    ] {
        let body = (method == "PATCH").then(|| json!({"enabled": true}));
        let a = w.go(method, template, &[&id], "", body).await;
        assert_eq!(
            a.status, 404,
            "{method} {template} after delete: {}",
            a.body
        );
    }
    w.finish().await;
}
