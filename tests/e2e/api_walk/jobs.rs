//! Jobs: create, list (pages and filters), read, update, pause and resume, delete.

use serde_json::json;

use super::{
    GROUP, JOB, JOBS, PAUSE, RESUME, RUN, RUNS, Walk, Workers, all_pages, id_of, ids, refusal,
};

#[tokio::test]
async fn create_returns_201_with_id_version_1_and_enabled() {
    let w = Walk::start("walk-create", Workers::None).await;
    let body = json!({"name": "walk-a", "group": GROUP, "handler": "echo", "params": {"v": 1}});
    let a = w.go("POST", JOBS, &[], "", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().expect("a server-assigned id");
    assert!(!id.is_empty());
    assert_eq!(
        (a.body["version"].as_u64(), a.body["enabled"].as_bool()),
        (Some(1), Some(true))
    );
    let got = w.ok("GET", JOB, &[id], "", None).await;
    assert_eq!(got["name"], "walk-a");
    w.finish().await;
}

#[tokio::test]
async fn create_refuses_an_invalid_schedule_naming_the_field_and_writes_nothing() {
    let w = Walk::start("walk-create-bad", Workers::None).await;
    let bad = json!({"name": "x", "group": GROUP, "handler": "echo", "schedule": "61 * * * *"});
    assert_eq!(
        refusal(&w.go("POST", JOBS, &[], "", Some(bad)).await),
        (400, Some("schedule"))
    );
    assert!(all_pages(&w, JOBS, &[], "", 10).await.is_empty());
    w.finish().await;
}

#[tokio::test]
async fn list_pages_every_job_once_in_creation_order() {
    let w = Walk::start("walk-list", Workers::None).await;
    let mut created = Vec::new();
    for name in ["walk-a", "walk-b", "walk-c", "walk-d", "walk-e"] {
        created.push(w.job(name, json!({})).await);
    }
    assert_eq!(
        all_pages(&w, JOBS, &[], "group=work", 2).await,
        created,
        "pages of 2 list every job once, in creation order"
    );
    w.finish().await;
}

#[tokio::test]
async fn list_with_an_empty_cursor_is_the_first_page() {
    let w = Walk::start("walk-list-cursor", Workers::None).await;
    let mut created = Vec::new();
    for name in ["walk-a", "walk-b", "walk-c"] {
        created.push(w.job(name, json!({})).await);
    }
    let first = w
        .ok("GET", JOBS, &[], "group=work&cursor=&limit=2", None)
        .await;
    assert_eq!(
        ids(&first),
        created[..2].to_vec(),
        "an empty cursor is the first page"
    );
    w.finish().await;
}

#[tokio::test]
async fn list_filters_by_group() {
    let w = Walk::start("walk-list-group", Workers::None).await;
    let mine = vec![
        w.job("walk-a", json!({})).await,
        w.job("walk-b", json!({})).await,
    ];
    let other = w.job("walk-c", json!({"group": "other"})).await;
    assert_eq!(all_pages(&w, JOBS, &[], "group=work", 10).await, mine);
    assert_eq!(all_pages(&w, JOBS, &[], "group=other", 10).await, [other]);
    w.finish().await;
}

#[tokio::test]
async fn list_filters_by_name_as_a_case_insensitive_substring() {
    let w = Walk::start("walk-list-name", Workers::None).await;
    w.job("walk-a", json!({})).await;
    let report = w.job("Nightly-REPORT", json!({})).await;
    let hit = w.ok("GET", JOBS, &[], "name=report", None).await;
    assert_eq!(
        ids(&hit),
        vec![report],
        "name filter is a case-insensitive substring"
    );
    w.finish().await;
}

#[tokio::test]
async fn list_filters_by_enabled() {
    let w = Walk::start("walk-list-enabled", Workers::None).await;
    let paused = w.job("walk-a", json!({})).await;
    let running = w.job("walk-b", json!({})).await;
    let none = w
        .ok("GET", JOBS, &[], "group=work&enabled=false", None)
        .await;
    assert!(ids(&none).is_empty(), "no job is paused yet: {none}");
    w.ok("POST", PAUSE, &[&paused], "", None).await;
    let only_paused = w
        .ok("GET", JOBS, &[], "group=work&enabled=false", None)
        .await;
    assert_eq!(ids(&only_paused), vec![paused]);
    let only_enabled = w
        .ok("GET", JOBS, &[], "group=work&enabled=true", None)
        .await;
    assert_eq!(ids(&only_enabled), vec![running]);
    w.finish().await;
}

#[tokio::test]
async fn list_refuses_bad_query_parameters() {
    let w = Walk::start("walk-list-bad", Workers::None).await;
    for q in [
        "limit=0",
        "limit=501",
        "limit=99999999999999999999999",
        "cursor=..%2F",
        "bogus=1",
        "enabled=maybe",
        "group=a%20b",
    ] {
        let r = w.go("GET", JOBS, &[], q, None).await;
        assert_eq!(r.status, 400, "?{q}: {}", r.body);
    }
    w.finish().await;
}

#[tokio::test]
async fn get_returns_the_job_as_created() {
    let w = Walk::start("walk-get", Workers::None).await;
    let created = w.create("walk-a", json!({"params": {"v": 1}})).await;
    let got = w.ok("GET", JOB, &[&id_of(&created)], "", None).await;
    assert_eq!(got["params"], json!({"v": 1}));
    for field in [
        "id",
        "name",
        "group",
        "handler",
        "version",
        "enabled",
        "created_at",
    ] {
        assert_eq!(got[field], created[field], "{field}");
    }
    w.finish().await;
}

#[tokio::test]
async fn patch_bumps_version_and_keeps_unmentioned_fields() {
    let w = Walk::start("walk-patch", Workers::None).await;
    let a = w.job("walk-a", json!({})).await;
    let patched = w
        .ok(
            "PATCH",
            JOB,
            &[&a],
            "",
            Some(json!({"params": {"v": 2}, "description": "changed"})),
        )
        .await;
    assert_eq!(
        (patched["version"].as_u64(), &patched["params"]),
        (Some(2), &json!({"v": 2}))
    );
    assert_eq!(patched["description"], "changed");
    assert_eq!(patched["name"], "walk-a", "unmentioned fields are kept");
    w.finish().await;
}

#[tokio::test]
async fn patch_refuses_moving_a_job_to_another_group() {
    let w = Walk::start("walk-patch-group", Workers::None).await;
    let a = w.job("walk-a", json!({})).await;
    assert_eq!(
        refusal(
            &w.go("PATCH", JOB, &[&a], "", Some(json!({"group": "elsewhere"})))
                .await
        ),
        (400, Some("group"))
    );
    let got = w.ok("GET", JOB, &[&a], "", None).await;
    assert_eq!(
        (got["group"].as_str(), got["version"].as_u64()),
        (Some(GROUP), Some(1))
    );
    w.finish().await;
}

#[tokio::test]
async fn pause_and_resume() {
    let w = Walk::start("walk-pause", Workers::None).await;
    let a = w.job("walk-a", json!({"schedule": "@yearly"})).await;
    let paused = w.ok("POST", PAUSE, &[&a], "", None).await;
    assert_eq!(
        (
            paused["enabled"].as_bool(),
            paused["next_fire_at"].is_null()
        ),
        (Some(false), true)
    );
    let resumed = w.ok("POST", RESUME, &[&a], "", None).await;
    assert_eq!(resumed["enabled"].as_bool(), Some(true));
    assert!(
        resumed["next_fire_at"].is_string(),
        "a resumed job is scheduled again: {resumed}"
    );
    w.finish().await;
}

#[tokio::test]
async fn delete_removes_the_job_and_its_runs_whatever_they_became() {
    let w = Walk::start("walk-delete", Workers::Test).await;
    let idle = w.job("idle", json!({})).await;
    let a = w.job("walk-a", json!({})).await;
    let run = id_of(&w.run_to_end(&a).await);
    let (sleeper, s_run) = w.running_sleeper().await;
    w.ok("POST", super::CANCEL, &[&s_run], "", None).await;
    w.final_run(&s_run).await;
    let (doomed, _) = w.dead_run().await;
    for id in [&idle, &a, &sleeper, &doomed] {
        assert_eq!(w.go("DELETE", JOB, &[id], "", None).await.status, 204);
    }
    assert_eq!(w.go("GET", JOB, &[&a], "", None).await.status, 404);
    assert_eq!(w.go("GET", RUNS, &[&a], "", None).await.status, 404);
    assert_eq!(w.go("GET", RUN, &[&run], "", None).await.status, 404);
    assert_eq!(w.go("DELETE", JOB, &[&a], "", None).await.status, 404);
    w.finish().await;
}
