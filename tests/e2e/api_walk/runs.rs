//! Runs: manual triggers (with and without params), a job's run history (pages and
//! filters), one run, and cancelling.

use serde_json::json;

use super::{CANCEL, GROUP, JOB, RUN, RUNS, TRIGGER, Walk, Workers, all_pages, id_of, refusal};

#[tokio::test]
async fn trigger_returns_run_id() {
    let w = Walk::start("walk-trigger", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    let t = w.go("POST", TRIGGER, &[&a], "", None).await;
    assert_eq!(t.status, 202, "{}", t.body);
    let run = t.body["run_id"].as_str().expect("run_id");
    assert!(run.starts_with(&format!("{a}-")), "{run} names its job");
    let r = w.final_run(run).await;
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some(run), Some("succeeded"))
    );
    w.finish().await;
}

#[tokio::test]
async fn trigger_with_params_runs_with_them() {
    let w = Walk::start("walk-trigger-params", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    let run = w.trigger(&a, Some(json!({"params": {"by": "hand"}}))).await;
    let r = w.final_run(&run).await;
    assert_eq!(
        (r["status"].as_str(), &r["result"], &r["params"]),
        (
            Some("succeeded"),
            &json!({"by": "hand"}),
            &json!({"by": "hand"})
        )
    );
    w.finish().await;
}

#[tokio::test]
async fn trigger_without_params_runs_with_the_jobs_current_params() {
    let w = Walk::start("walk-trigger-job-params", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    w.ok("PATCH", JOB, &[&a], "", Some(json!({"params": {"v": 2}})))
        .await;
    for _ in 0..3 {
        let r = w.run_to_end(&a).await;
        assert_eq!(
            r["result"],
            json!({"v": 2}),
            "a trigger without params runs with the job's"
        );
    }
    w.finish().await;
}

#[tokio::test]
async fn get_run_names_its_job_group_and_code() {
    let w = Walk::start("walk-run", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    let run = id_of(&w.run_to_end(&a).await);
    let one = w.ok("GET", RUN, &[&run], "", None).await;
    assert_eq!(
        (
            one["job_id"].as_str(),
            one["group"].as_str(),
            one["code"].as_u64()
        ),
        (Some(a.as_str()), Some(GROUP), Some(200))
    );
    assert_eq!(w.go("GET", RUN, &["nope"], "", None).await.status, 404);
    w.finish().await;
}

/// Four finished runs of a new job, newest first.
async fn four_runs(w: &Walk) -> (String, Vec<String>) {
    let a = w.job("walk-a", json!({})).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(id_of(&w.run_to_end(&a).await));
    }
    runs.reverse();
    (a, runs)
}

#[tokio::test]
async fn job_runs_page_newest_first() {
    let w = Walk::start("walk-runs", Workers::Test).await;
    let (a, newest_first) = four_runs(&w).await;
    assert_eq!(all_pages(&w, RUNS, &[&a], "", 1).await, newest_first);
    w.finish().await;
}

#[tokio::test]
async fn job_runs_filter_by_status_and_time() {
    let w = Walk::start("walk-runs-filter", Workers::Test).await;
    let (a, newest_first) = four_runs(&w).await;
    assert_eq!(
        all_pages(&w, RUNS, &[&a], "status=succeeded", 3).await,
        newest_first
    );
    for q in [
        "status=failed",
        "from=2999-01-01T00:00:00Z",
        "to=2001-01-01T00:00:00Z",
    ] {
        assert!(all_pages(&w, RUNS, &[&a], q, 3).await.is_empty(), "?{q}");
    }
    assert_eq!(
        all_pages(
            &w,
            RUNS,
            &[&a],
            "from=2001-01-01T00:00:00Z&to=2999-01-01T00:00:00Z",
            3
        )
        .await,
        newest_first
    );
    w.finish().await;
}

#[tokio::test]
async fn job_runs_refuse_bad_filters_naming_the_field() {
    let w = Walk::start("walk-runs-bad", Workers::None).await;
    let a = w.job("walk-a", json!({})).await;
    for (q, field) in [
        ("from=yesterday", "from"),
        ("status=sleepy", "status"),
        ("cursor=nonsense", "cursor"),
    ] {
        assert_eq!(
            refusal(&w.go("GET", RUNS, &[&a], q, None).await),
            (400, Some(field)),
            "?{q}"
        );
    }
    w.finish().await;
}

#[tokio::test]
async fn cancel_stops_a_running_run_and_repeating_it_changes_nothing() {
    let w = Walk::start("walk-cancel", Workers::Test).await;
    let (_, run) = w.running_sleeper().await;
    w.ok("POST", CANCEL, &[&run], "", None).await;
    assert_eq!(w.final_run(&run).await["status"], "cancelled");
    let again = w.ok("POST", CANCEL, &[&run], "", None).await;
    assert_eq!(
        again["status"], "cancelled",
        "cancelling a cancelled run changes nothing"
    );
    w.finish().await;
}

#[tokio::test]
async fn cancel_refuses_a_finished_run_with_409() {
    let w = Walk::start("walk-cancel-done", Workers::Test).await;
    let a = w.job("walk-a", json!({})).await;
    let run = id_of(&w.run_to_end(&a).await);
    let done = w.go("POST", CANCEL, &[&run], "", None).await;
    assert_eq!(done.status, 409, "a succeeded run cannot be cancelled");
    assert_eq!(w.final_run(&run).await["status"], "succeeded");
    w.finish().await;
}
