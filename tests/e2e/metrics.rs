//! `/metrics` of a scheduler and a worker process after a known set of runs: each family
//! carries values equal to those runs, and every family has its HELP line.

use std::time::Duration;

use crate::common::{sample, scrape};
use dotjob_tests::{Api, Proc, free_port, shared_redis, spawn_scheduler, unique_prefix, wait_for};
use serde_json::json;

/// Every `# TYPE` family of `text` has a `# HELP` line; returns the families.
fn families_with_help(text: &str) -> Vec<String> {
    let typed: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    for f in &typed {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {f} ")) && l.len() > 8 + f.len()),
            "{f} has no HELP line:\n{text}"
        );
    }
    typed
}

#[tokio::test]
async fn scheduler_and_worker_metrics_count_known_runs() {
    let url = shared_redis();
    let prefix = unique_prefix("metrics");
    let (_s, base) = spawn_scheduler(&url, &prefix, &[("DOTJOB_HOUSEKEEPING_INTERVAL", "300ms")]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let wport = free_port();
    let wlisten = format!("127.0.0.1:{wport}");
    let env = [
        ("REDIS_URL", url.as_str()),
        ("DOTJOB_PREFIX", prefix.as_str()),
        ("DOTJOB_SHELL_ALLOW", "true,false,sleep"),
        ("DOTJOB_METRICS_LISTEN", wlisten.as_str()),
    ];
    let _w = Proc::spawn("dotjob-worker", &["--group", "mx"], &env);
    let wbase = format!("http://{wlisten}");

    let crate::common::KnownJobs {
        ok,
        fail,
        dead,
        slow,
    } = crate::common::known_jobs(&api, "mx").await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let once = crate::common::shell_job(
        &api,
        "mx",
        "once",
        json!(["true"]),
        json!({"schedule": format!("@once {}", at.format("%Y-%m-%dT%H:%M:%SZ"))}),
    )
    .await;

    let mut runs = vec![];
    for id in [&ok, &ok, &fail, &dead, &slow] {
        runs.push(api.trigger(id, None).await);
    }
    for r in &runs {
        api.wait_run_final(r, Duration::from_secs(30)).await;
    }
    let once_run = wait_for("the @once tick to fire", Duration::from_secs(20), || {
        let api = api.clone();
        let once = once.clone();
        async move {
            api.runs(&once)
                .await
                .first()
                .map(|r| r["id"].as_str().unwrap().to_owned())
        }
    })
    .await;
    let r = api.wait_run_final(&once_run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "succeeded", "{r}");

    // The worker: runs by job and final status, retries, dead letters, durations, start lag.
    let g = ("group", "mx");
    let text = wait_for("the worker's counters", Duration::from_secs(10), || {
        let wbase = wbase.clone();
        let once = once.clone();
        async move {
            let t = scrape(&wbase).await;
            (sample(&t, "dotjob_worker_runs", &[g, ("state", "executing")]) == Some(0.0)
                && sample(
                    &t,
                    "dotjob_runs_total",
                    &[("job", &once), ("status", "succeeded")],
                ) == Some(1.0))
            .then_some(t)
        }
    })
    .await;
    let runs_of = |job: &str, status: &str| {
        sample(
            &text,
            "dotjob_runs_total",
            &[g, ("job", job), ("status", status)],
        )
    };
    assert_eq!(runs_of(&ok, "succeeded"), Some(2.0), "{text}");
    assert_eq!(runs_of(&fail, "failed"), Some(1.0), "{text}");
    assert_eq!(runs_of(&dead, "dead"), Some(1.0), "{text}");
    assert_eq!(runs_of(&slow, "timed_out"), Some(1.0), "{text}");
    assert_eq!(runs_of(&dead, "failed"), None, "{text}");
    assert_eq!(
        sample(&text, "dotjob_run_retries_total", &[g, ("job", &dead)]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dotjob_dead_letters_total", &[g, ("job", &dead)]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dotjob_run_retries_total", &[g, ("job", &ok)]),
        None
    );
    let count = |job: &str| {
        sample(
            &text,
            "dotjob_run_duration_seconds_count",
            &[g, ("job", job)],
        )
    };
    assert_eq!(count(&ok), Some(2.0), "{text}");
    assert_eq!(count(&dead), Some(2.0), "{text}");
    let slow_sum = sample(
        &text,
        "dotjob_run_duration_seconds_sum",
        &[g, ("job", &slow)],
    )
    .unwrap();
    assert!(
        (0.25..3.0).contains(&slow_sum),
        "timed-out attempt took {slow_sum} s"
    );
    // Six manual attempts (ok ×2, fail, dead ×2, slow) and the scheduled one.
    assert_eq!(
        sample(&text, "dotjob_start_lag_seconds_count", &[g]),
        Some(7.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dotjob_worker_runs", &[g, ("state", "held")]),
        Some(0.0)
    );
    assert_eq!(sample(&text, "dotjob_runs_lost_total", &[g]), None);

    // The scheduler: ticks fired by kind, fire lag, leases, stream and executor gauges,
    // HTTP requests by matched route.
    let text = wait_for("the scheduler's samples", Duration::from_secs(10), || {
        let base = base.clone();
        async move {
            let t = scrape(&base).await;
            (sample(&t, "dotjob_stream_pending", &[g]) == Some(0.0)
                && sample(&t, "dotjob_executors", &[g, ("state", "live")]) == Some(1.0))
            .then_some(t)
        }
    })
    .await;
    // One scheduled tick (the @once job); the five triggers by hand are `manual`, not ticks.
    let fired = ("kind", "schedule");
    assert_eq!(
        sample(&text, "dotjob_ticks_fired_total", &[g, fired]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dotjob_ticks_fired_total", &[g, ("kind", "manual")]),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dotjob_fire_lag_seconds_count", &[g]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dotjob_lease_held", &[g]),
        Some(1.0),
        "{text}"
    );
    let acquired = ("change", "acquired");
    assert_eq!(
        sample(&text, "dotjob_lease_changes_total", &[g, acquired]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dotjob_scheduler_groups_held", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dotjob_executors", &[g, ("state", "disabled")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "dotjob_stream_lag", &[g]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "dotjob_stream_oldest_pending_age_seconds", &[g]),
        Some(0.0)
    );
    assert!(
        sample(&text, "dotjob_stream_length", &[g]).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let created = [
        ("route", "/api/v1/jobs"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(
        sample(&text, "dotjob_http_requests_total", &created),
        Some(5.0),
        "{text}"
    );
    let triggered = [("route", "/api/v1/jobs/{id}/trigger"), ("status", "202")];
    assert_eq!(
        sample(&text, "dotjob_http_requests_total", &triggered),
        Some(5.0),
        "{text}"
    );
    assert!(
        !text.contains(&format!("route=\"/api/v1/jobs/{ok}")),
        "raw URL as a label"
    );

    // Both: a Redis round trip after a readiness probe; HELP on every family.
    for b in [&base, &wbase] {
        let ready = reqwest::get(format!("{b}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        let t = scrape(b).await;
        let rtt = sample(&t, "dotjob_redis_roundtrip_seconds_count", &[]);
        assert!(rtt.is_some_and(|n| n >= 1.0), "{t}");
        let fams = families_with_help(&t);
        assert!(
            fams.len() >= 5 && fams.iter().all(|f| f.starts_with("dotjob_")),
            "{fams:?}"
        );
    }
}
