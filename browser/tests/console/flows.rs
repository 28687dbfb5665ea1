//! An operator's day: sign in, create a job (an invalid cron is refused at the schedule
//! field, the fixed one previews its next fires), watch a run succeed while its log is
//! written, edit the job (new version), pause it, cancel a running run, and open a run
//! from a deep link; the back button returns where it was.

use std::time::Duration;

use dotjob_browser_tests::{SERIAL, poll};
use serde_json::{Value, json};

use crate::common::{ADMIN, GROUP, Setup, s};

/// Line count and status shown on the run page.
async fn log_state(b: &dotjob_browser_tests::Browser) -> anyhow::Result<(usize, String, String)> {
    let v = b
        .js(
            "const log = document.getElementById('run-log'); const st = document.querySelector('.pagehead .badge');
             const state = document.querySelector('.logbar [role=status]');
             return [log ? log.textContent.split('\\n').filter(Boolean).length : 0, st ? st.innerText : '', state ? state.innerText : ''];",
            vec![],
        )
        .await?;
    Ok((v[0].as_u64().unwrap_or(0) as usize, s(&v[1]), s(&v[2])))
}

#[tokio::test]
async fn console_create_edit_pause_trigger_follow_and_cancel() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-flows", 1280, 900, true).await else {
        return;
    };
    let b = &t.browser;

    // Sign in: the admin token shows an admin console.
    b.goto("/jobs").await.unwrap();
    b.find("#token").await.unwrap();
    t.sign_in(ADMIN).await;
    assert_eq!(b.wait_text("#who", "admin").await.unwrap(), "admin");

    // Create with an invalid cron: the error is shown at the schedule field, nothing is
    // created, the page stays.
    b.click_button("New job").await.unwrap();
    b.find("#f-name").await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/jobs/new");
    b.fill("#f-name", "nightly-report").await.unwrap();
    b.fill("#f-group", GROUP).await.unwrap();
    b.fill("#f-handler", "talk").await.unwrap();
    b.fill("#f-schedule", "every morning at nine")
        .await
        .unwrap();
    b.fill("#f-params", r#"{"lines": 12, "every_ms": 500}"#)
        .await
        .unwrap();
    b.click_button("Create job").await.unwrap();
    let err = b.wait_text("#f-schedule-err", " ").await.unwrap();
    assert!(!err.trim().is_empty());
    let invalid = b
        .js(
            "return document.getElementById('f-schedule').getAttribute('aria-invalid');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        invalid,
        json!("true"),
        "the schedule input is marked invalid"
    );
    assert_eq!(b.path().await.unwrap(), "/jobs/new");
    let none = t.api.call("GET", "/jobs", None).await.unwrap();
    assert_eq!(none.body["items"], json!([]), "nothing was created");

    // Fix it: the preview under the field lists the next 5 fires, the error goes away.
    b.fill("#f-schedule", "0 30 9 * * MON-FRI").await.unwrap();
    b.fill("#f-timezone", "Europe/Berlin").await.unwrap();
    let fires = b
        .wait_js(
            "5 previewed fires",
            "const li = document.querySelectorAll('form.def .preview li'); return li.length === 5 ? [...li].map(x => x.innerText) : null;",
        )
        .await
        .unwrap();
    assert!(
        fires[0].as_str().unwrap().contains("09:30:00"),
        "shown in the job's zone: {fires}"
    );
    b.wait_js(
        "the schedule error to clear",
        "return document.getElementById('f-schedule-err').textContent === '' || null;",
    )
    .await
    .unwrap();
    b.click_button("Create job").await.unwrap();
    let path = poll("the job page", Duration::from_secs(10), || async {
        let p = b.path().await?;
        Ok((p.starts_with("/jobs/") && p != "/jobs/new").then_some(p))
    })
    .await
    .unwrap();
    let id = path.trim_start_matches("/jobs/").to_owned();
    let job = t
        .api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(
        (s(&job["name"]), s(&job["schedule"]), s(&job["timezone"])),
        (
            "nightly-report".into(),
            "0 30 9 * * MON-FRI".into(),
            "Europe/Berlin".into()
        )
    );
    assert_eq!(job["params"], json!({"lines": 12, "every_ms": 500}));
    b.wait_ready().await.unwrap();
    b.wait_text("h1", "nightly-report").await.unwrap();

    // Trigger it and follow its log while it is written: some lines show while the run is
    // still running, then all of them and the end.
    b.click("details summary").await.unwrap();
    b.click_button("Run now").await.unwrap();
    b.find("details p[role=status] a")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let run_path = b.path().await.unwrap();
    assert!(run_path.starts_with(&format!("/runs/{id}-m")), "{run_path}");
    let run_id = run_path.trim_start_matches("/runs/").to_owned();
    let partial = poll(
        "a partial log of a running run",
        Duration::from_secs(20),
        || async {
            let (n, status, _) = log_state(b).await?;
            Ok((n > 0 && n < 12 && status == "running").then_some(n))
        },
    )
    .await
    .unwrap();
    assert!(partial < 12);
    poll("the whole log", Duration::from_secs(20), || async {
        let (n, status, state) = log_state(b).await?;
        Ok((n == 12 && status == "succeeded" && state.contains("Complete")).then_some(()))
    })
    .await
    .unwrap();
    let text = b
        .js(
            "return document.getElementById('run-log').textContent;",
            vec![],
        )
        .await
        .unwrap();
    let lines: Vec<&str> = text.as_str().unwrap().lines().collect();
    let want: Vec<String> = (1..=12).map(|i| format!("line {i} of 12")).collect();
    assert_eq!(lines, want, "each line once, in order");
    assert_eq!(s(&t.api.run(&run_id).await["status"]), "succeeded");
    b.shot("run").await.unwrap();

    // Edit: a new version, shown on the page and stored.
    b.goto(&format!("/jobs/{id}")).await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_js(
        "the run in the recent runs",
        "return document.querySelector('[aria-label=\"Recent runs\"] .st-succeeded') ? true : null;",
    )
    .await
    .unwrap();
    b.shot("job").await.unwrap();
    let v1 = job["version"].as_u64().unwrap();
    b.fill("#f-timeout_ms", "45000").await.unwrap();
    b.fill("#f-description", "Sends the nightly report.")
        .await
        .unwrap();
    b.click_button("Save changes").await.unwrap();
    b.wait_text(
        "form.def [role=status]",
        &format!("Saved: version {}", v1 + 1),
    )
    .await
    .unwrap();
    b.wait_text(".pagehead + p", &format!("version {}", v1 + 1))
        .await
        .unwrap();
    let job = t
        .api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(job["version"].as_u64(), Some(v1 + 1));
    assert_eq!(job["timeout_ms"], json!(45000));
    assert_eq!(job["description"], json!("Sends the nightly report."));

    // Pause it.
    b.click_button("Pause").await.unwrap();
    b.wait_text(".pagehead .badge", "paused").await.unwrap();
    let job = t
        .api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .unwrap()
        .body;
    assert_eq!(
        (job["enabled"].clone(), job["next_fire_at"].clone()),
        (json!(false), Value::Null)
    );

    // Cancel a running run.
    let sleeper = t
        .job(json!({"name": "long-sleep", "group": GROUP, "handler": "sleep", "params": {"ms": 60000}}))
        .await;
    let run = t.api.trigger(&s(&sleeper["id"]), None).await;
    b.goto(&format!("/runs/{run}")).await.unwrap();
    b.wait_text(".pagehead .badge", "running").await.unwrap();
    b.click_button("Cancel run").await.unwrap();
    b.click_button("Stop the run").await.unwrap();
    b.wait_text(".pagehead .badge", "cancelled").await.unwrap();
    assert_eq!(s(&t.api.run(&run).await["status"]), "cancelled");

    // A deep link to a run opens that run (a fresh load of its URL).
    b.goto(&format!("/runs/{run_id}")).await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text("h1", &run_id).await.unwrap();
    b.wait_text(".pagehead .badge", "succeeded").await.unwrap();

    // In-page navigation keeps history: jobs → a job → back.
    b.goto("/jobs").await.unwrap();
    b.wait_ready().await.unwrap();
    b.find("a[href^='/jobs/0']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    poll("the job page", Duration::from_secs(10), || async {
        Ok(b.path().await?.starts_with("/jobs/0").then_some(()))
    })
    .await
    .unwrap();
    b.client.back().await.unwrap();
    poll("back on the jobs page", Duration::from_secs(10), || async {
        Ok((b.path().await? == "/jobs").then_some(()))
    })
    .await
    .unwrap();
    b.wait_text("h1", "Jobs").await.unwrap();
    t.finish().await;
}
