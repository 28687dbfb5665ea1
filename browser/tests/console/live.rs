//! The console while things change under it: the header's "last updated / disconnected"
//! indicator when the scheduler stops and comes back (the page then shows what changed
//! meanwhile), and bulk pause / resume of the jobs selected in the jobs list.

use std::time::Duration;

use dotjob_browser_tests::{Browser, SERIAL, poll};
use dotjob_scheduler::api::auth::Secret;
use dotjob_scheduler::{ApiOptions, EngineSettings, Options};
use dotjob_shared::Store;
use dotjob_shared::model::job::JobInput;
use dotjob_tests::{Api, Spawned, delete_prefix, redis_handle, shared_redis, unique_prefix};
use serde_json::json;

use crate::common::{ADMIN, GROUP, READ, Setup, s};

/// A scheduler serving the API on `addr` (a fixed address, so it can come back on it).
async fn scheduler_on(url: &str, prefix: &str, addr: std::net::SocketAddr) -> Spawned {
    let listener = poll(
        "the address to be free",
        Duration::from_secs(20),
        || async { Ok(tokio::net::TcpListener::bind(addr).await.ok()) },
    )
    .await
    .expect("bind the scheduler's address");
    let opts = Options {
        redis: redis_handle(url, prefix),
        engine: EngineSettings::default(),
        embedded_worker: None,
    };
    let api = ApiOptions {
        admin_token: Some(Secret::new(ADMIN)),
        read_token: Some(Secret::new(READ)),
        cors_origins: vec![],
        ..ApiOptions::default()
    };
    Spawned::new(|shutdown| dotjob_scheduler::run_with(opts, api, listener, shutdown))
}

/// The header's connection indicator: its text and whether it shows the connection down.
async fn indicator(b: &Browser) -> anyhow::Result<(String, bool)> {
    let v = b
        .js(
            "const l = document.getElementById('live'); return [l.innerText, l.classList.contains('down')];",
            vec![],
        )
        .await?;
    Ok((s(&v[0]), v[1].as_bool().unwrap_or(false)))
}

#[tokio::test]
async fn console_shows_disconnected_while_the_scheduler_is_down_and_recovers() {
    let _turn = SERIAL.lock().await;
    let url = shared_redis();
    let prefix = unique_prefix("console-live");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let base = format!("http://{addr}");
    let sched = scheduler_on(&url, &prefix, addr).await;
    let api = Api::new(&base).with_token(ADMIN);
    api.wait_ready().await;
    let Some(b) = Browser::launch(&base, 1280, 900).await.expect("launch") else {
        sched.stop().await;
        return;
    };
    api.create_job(&json!({"name": "before-the-outage", "group": GROUP, "handler": "noop"}))
        .await;

    b.goto("/").await.unwrap();
    b.fill("#token", ADMIN).await.unwrap();
    b.click_button("Sign in").await.unwrap();
    b.wait_ready().await.unwrap();
    b.goto("/jobs").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text("[aria-label=Jobs] tbody", "before-the-outage")
        .await
        .unwrap();
    let (text, down) = poll(
        "the indicator to show an update",
        Duration::from_secs(10),
        || async {
            let (text, down) = indicator(&b).await?;
            Ok(text.starts_with("Updated").then_some((text, down)))
        },
    )
    .await
    .unwrap();
    assert!(!down, "{text}");

    // The scheduler stops: within a refresh or two the indicator says so, keeping the time
    // of the last update, and the table still shows what it had.
    sched.stop().await;
    let (text, _) = poll(
        "the indicator to show disconnected",
        Duration::from_secs(15),
        || async {
            let (text, down) = indicator(&b).await?;
            Ok((down && text.starts_with("Disconnected")).then_some((text, down)))
        },
    )
    .await
    .unwrap();
    assert!(text.contains("last update"), "{text}");
    let rows = b
        .js(
            "return document.querySelector('[aria-label=Jobs] tbody').innerText;",
            vec![],
        )
        .await
        .unwrap();
    assert!(s(&rows).contains("before-the-outage"), "{rows}");

    // A job is written while the API is down (straight to Redis, as another replica
    // would); the scheduler comes back on the same address: the indicator recovers and
    // the page shows the new job without a reload.
    let input: JobInput = serde_json::from_value(
        json!({"name": "during-the-outage", "group": GROUP, "handler": "noop"}),
    )
    .unwrap();
    Store::new(redis_handle(&url, &prefix))
        .create_job(input)
        .await
        .unwrap();
    let sched = scheduler_on(&url, &prefix, addr).await;
    poll(
        "the indicator to recover",
        Duration::from_secs(15),
        || async {
            let (text, down) = indicator(&b).await?;
            Ok((!down && text.starts_with("Updated")).then_some(()))
        },
    )
    .await
    .unwrap();
    b.wait_text("[aria-label=Jobs] tbody", "during-the-outage")
        .await
        .unwrap();
    b.wait_text(".pager [role=status]", "of 2 jobs")
        .await
        .unwrap();

    b.quit().await;
    sched.stop().await;
    delete_prefix(&url, &prefix).await;
}

/// `enabled` of each job, by name.
async fn enabled(t: &Setup) -> Vec<(String, bool)> {
    let a = t.api.call("GET", "/jobs?limit=100", None).await.unwrap();
    let mut v: Vec<(String, bool)> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (s(&j["name"]), j["enabled"].as_bool().unwrap_or(false)))
        .collect();
    v.sort();
    v
}

/// Ticks the row checkboxes of the jobs named `names`.
async fn select(b: &Browser, names: &[&str]) {
    for name in names {
        b.click(&format!("input[aria-label='Select {name}']"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn console_pauses_and_resumes_the_selected_jobs() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-bulk", 1280, 900, false).await else {
        return;
    };
    let b = &t.browser;
    for name in ["alpha", "bravo", "charlie", "delta"] {
        t.job(json!({"name": name, "group": GROUP, "handler": "noop", "schedule": "@every 1h"}))
            .await;
    }
    t.sign_in(ADMIN).await;
    b.goto("/jobs").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text(".pager [role=status]", "1–4 of 4 jobs")
        .await
        .unwrap();

    // Select two: the bulk bar counts them; pause them: only those two are paused.
    select(b, &["bravo", "delta"]).await;
    b.wait_text(".bulk", "2 selected").await.unwrap();
    b.click_button("Pause selected").await.unwrap();
    b.wait_text("#notices", "Paused 2 jobs").await.unwrap();
    let want = |paused: &[&str]| -> Vec<(String, bool)> {
        ["alpha", "bravo", "charlie", "delta"]
            .iter()
            .map(|n| ((*n).to_owned(), !paused.contains(n)))
            .collect()
    };
    assert_eq!(enabled(&t).await, want(&["bravo", "delta"]));
    // The table shows it in place.
    let states = b
        .wait_js(
            "two rows paused",
            "const r = [...document.querySelectorAll('[aria-label=Jobs] tbody tr[data-key]')].map(tr => tr.innerText.includes('paused'));
             return r.filter(Boolean).length === 2 ? r : null;",
        )
        .await
        .unwrap();
    assert_eq!(
        states,
        json!([false, true, false, true]),
        "rows in creation order"
    );

    // Select every job shown (one checkbox), resume: every job is enabled again, with its
    // next fire back.
    b.click_button("Clear selection").await.unwrap();
    b.click("input[aria-label='Select every job shown']")
        .await
        .unwrap();
    b.wait_text(".bulk", "4 selected").await.unwrap();
    b.click_button("Resume selected").await.unwrap();
    b.wait_text("#notices", "Resumed 4 jobs").await.unwrap();
    assert_eq!(enabled(&t).await, want(&[]));
    let jobs = t.api.call("GET", "/jobs?limit=100", None).await.unwrap();
    for j in jobs.body["items"].as_array().unwrap() {
        assert!(j["next_fire_at"].is_string(), "{j}");
    }
    b.wait_js(
        "no row paused",
        "return [...document.querySelectorAll('[aria-label=Jobs] tbody tr[data-key]')].every(tr => !tr.innerText.includes('paused')) || null;",
    )
    .await
    .unwrap();
    t.finish().await;
}
