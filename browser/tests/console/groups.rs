//! A group's page: disabling and enabling an executor, re-queueing a dead letter.

use std::time::Duration;

use dotjob_browser_tests::{SERIAL, poll};
use serde_json::{Value, json};

use crate::common::{ADMIN, GROUP, Setup, s};

async fn executors(t: &Setup) -> Vec<Value> {
    let a = t
        .api
        .call("GET", &format!("/groups/{GROUP}/executors"), None)
        .await
        .unwrap();
    a.body.as_array().cloned().unwrap_or_default()
}

async fn dead(t: &Setup) -> Vec<Value> {
    let a = t
        .api
        .call("GET", &format!("/groups/{GROUP}/dead"), None)
        .await
        .unwrap();
    a.body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn console_disables_an_executor_and_requeues_a_dead_letter() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-groups", 1280, 900, true).await else {
        return;
    };
    let b = &t.browser;
    let job = t
        .job(
            json!({"name": "always-fails", "group": GROUP, "handler": "fail",
            "max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 200}}),
        )
        .await;
    let first = t.api.trigger(&s(&job["id"]), None).await;
    let letters = poll("a dead letter", Duration::from_secs(60), || async {
        let d = dead(&t).await;
        Ok((!d.is_empty()).then_some(d))
    })
    .await
    .unwrap();
    assert_eq!(s(&letters[0]["run"]), first);
    let executor = s(&executors(&t).await[0]["id"]);

    t.sign_in(ADMIN).await;
    b.goto(&format!("/groups/{GROUP}")).await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text("[aria-label=Executors] tbody", &executor)
        .await
        .unwrap();
    b.wait_text(
        "[aria-label='Dead letters'] tbody",
        "this handler always fails",
    )
    .await
    .unwrap();
    b.shot("groups").await.unwrap();

    // Disable the executor: the API says so, the row shows it and offers Enable.
    b.click_button("Disable").await.unwrap();
    b.wait_text("[aria-label=Executors] tbody", "disabled")
        .await
        .unwrap();
    assert_eq!(executors(&t).await[0]["disabled"], json!(true));
    b.find("button[aria-label^='Enable executor']")
        .await
        .unwrap();

    // Re-queue the dead letter: it leaves the list and a run re-queued from it exists.
    b.click_button("Re-queue").await.unwrap();
    b.wait_text("#notices", "Re-queued").await.unwrap();
    b.wait_text("[aria-label='Dead letters'] tbody", "No dead letters")
        .await
        .unwrap();
    assert!(dead(&t).await.is_empty());
    let runs = t.api.runs(&s(&job["id"])).await;
    let again = runs
        .iter()
        .find(|r| r["trigger"] == "requeue")
        .expect("a requeued run");
    assert_eq!(s(&again["parent_run"]), first);

    // Enable it again.
    b.click_button("Enable").await.unwrap();
    b.wait_text("[aria-label=Executors] tbody", "Disable")
        .await
        .unwrap();
    assert_eq!(executors(&t).await[0]["disabled"], json!(false));
    // The re-queued run fails again, as this handler does: its dead letter shows up in
    // the list without a reload.
    let again = s(&again["id"]);
    let run = t.api.wait_run_final(&again, Duration::from_secs(60)).await;
    assert_eq!(s(&run["status"]), "dead");
    let suffix = &again[again.find('-').unwrap()..];
    b.wait_text("[aria-label='Dead letters'] tbody", suffix)
        .await
        .unwrap();
    // A few successes beside the failures, for the overview's picture.
    let ok = t
        .job(
            json!({"name": "heartbeat", "group": GROUP, "handler": "sleep", "params": {"ms": 120}}),
        )
        .await;
    for _ in 0..6 {
        let r = t.api.trigger(&s(&ok["id"]), None).await;
        t.api.wait_run_final(&r, Duration::from_secs(30)).await;
    }
    b.goto("/").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text(".card", "dead letters").await.unwrap();
    b.shot("overview").await.unwrap();
    t.finish().await;
}
