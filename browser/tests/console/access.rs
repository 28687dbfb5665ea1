//! What a read token sees (no enabled write control anywhere) and the narrow layout (no
//! horizontal scrolling at 390 px).

use std::time::Duration;

use dotjob_browser_tests::SERIAL;
use serde_json::{Value, json};

use crate::common::{ADMIN, GROUP, READ, Setup, s};

/// Visible, enabled controls that would change something.
const WRITE_CONTROLS: &str = r#"
const verbs = /^(New job|Create job|Create a job|Create the first job|Save changes|Pause selected|Resume selected|Pause|Resume|Clone|Delete|Run now|Trigger with params|Cancel run|Disable|Enable|Re-queue|Re-queue all shown)$/;
const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
return [...document.querySelectorAll('button, a, input, select, textarea, summary')]
  .filter((el) => shown(el) && !el.disabled)
  .filter((el) => el.classList.contains('w') || el.closest('.w') || el.closest('form.def') || verbs.test((el.innerText || '').trim()))
  .map((el) => el.outerHTML.slice(0, 100));
"#;

/// Pages of a job, a run and the group.
async fn pages(t: &Setup) -> Vec<String> {
    let job = t
        .job(json!({"name": "a-job-with-a-rather-long-name-that-must-wrap-on-a-phone-screen",
            "group": GROUP, "handler": "noop", "schedule": "0 0 3 * * *", "timezone": "America/New_York",
            "params": {"url": "https://reports.internal.example.com/a/very/long/path/that/does/not/break/the/layout"}}))
        .await;
    let id = s(&job["id"]);
    let run = t.api.trigger(&id, None).await;
    t.api.wait_run_final(&run, Duration::from_secs(30)).await;
    vec![
        "/".into(),
        "/jobs".into(),
        "/jobs/new".into(),
        format!("/jobs/{id}"),
        "/runs".into(),
        format!("/runs/{run}"),
        "/groups".into(),
        format!("/groups/{GROUP}"),
    ]
}

#[tokio::test]
async fn console_read_token_shows_no_enabled_write_control() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-read", 1280, 900, true).await else {
        return;
    };
    let b = &t.browser;
    let paths = pages(&t).await;
    let job_page = paths[3].clone();

    // The check finds the write controls an admin has.
    t.sign_in(ADMIN).await;
    b.goto(&job_page).await.unwrap();
    b.wait_ready().await.unwrap();
    let admin = b.js(WRITE_CONTROLS, vec![]).await.unwrap();
    assert!(
        admin.as_array().is_some_and(|a| a.len() > 10),
        "an admin has write controls: {admin}"
    );
    b.click_button("Sign out").await.unwrap();

    t.sign_in(READ).await;
    assert_eq!(b.wait_text("#who", "read-only").await.unwrap(), "read-only");
    for p in paths.iter().filter(|p| *p != "/jobs/new") {
        b.goto(p).await.unwrap();
        b.wait_ready().await.unwrap();
        let found = b.js(WRITE_CONTROLS, vec![]).await.unwrap();
        assert_eq!(
            found,
            Value::Array(vec![]),
            "write controls on {p} for a read token"
        );
    }
    // The job's definition is shown, read-only.
    b.goto(&job_page).await.unwrap();
    b.wait_ready().await.unwrap();
    let name = b
        .js(
            "const i = document.getElementById('f-name'); return [i.value, i.disabled];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(name[1], json!(true));
    assert!(s(&name[0]).starts_with("a-job-with"));
    t.finish().await;
}

#[tokio::test]
async fn console_at_390_px_has_no_horizontal_scroll() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-narrow", 390, 844, true).await else {
        return;
    };
    let b = &t.browser;
    let paths = pages(&t).await;
    t.sign_in(ADMIN).await;
    for p in &paths {
        b.goto(p).await.unwrap();
        b.wait_ready().await.unwrap();
        let v = b
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        assert!(inner <= 400, "the window is narrow: {inner}");
        assert!(
            scroll <= inner,
            "{p}: {scroll} px wide in a {inner} px window"
        );
    }
    b.goto(&paths[3]).await.unwrap();
    b.wait_ready().await.unwrap();
    b.shot("phone-job").await.unwrap();
    t.finish().await;
}
