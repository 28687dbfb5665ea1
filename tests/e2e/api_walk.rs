//! A walk through the whole admin API on a real listener, with real workers: every answer is
//! also validated against the OpenAPI document (status documented, body matching its
//! schema). Plus following a live run's log over Server-Sent Events.

use std::time::{Duration, Instant};

use dotjob_tests::{Answer, Api, InProcess, delete_prefix, shared_redis, unique_prefix, wait_for};
use serde_json::{Value, json};

use crate::api_doc::{Doc, fill};
use crate::common::TestWorker;

/// An API client that checks every answer against the document.
struct Checked {
    api: Api,
    doc: Doc,
}

impl Checked {
    /// `method template?query` with the template's parameters filled from `args` in order.
    async fn go(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        query: &str,
        body: Option<Value>,
    ) -> Answer {
        let it = std::cell::RefCell::new(args.iter());
        let path = fill(template, |_| {
            (*it.borrow_mut().next().expect("a value per path parameter")).to_owned()
        });
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let a = self
            .api
            .raw(method, &uri, body.map(|b| b.to_string()))
            .await
            .expect("request");
        self.doc
            .check_answer(method, template, a.status, &a.body)
            .unwrap_or_else(|e| panic!("{e}"));
        a
    }

    async fn ok(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let a = self.go(method, template, args, query, body).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {template} {args:?} ?{query} → {}: {}",
            a.status,
            a.body
        );
        a.body
    }

    async fn final_run(&self, run: &str) -> Value {
        let r = self.api.wait_run_final(run, Duration::from_secs(60)).await;
        self.doc
            .check_answer("GET", "/api/v1/runs/{id}", 200, &r)
            .unwrap_or_else(|e| panic!("{e}"));
        r
    }

    async fn running(&self, run: &str) {
        let api = self.api.clone();
        let run = run.to_owned();
        wait_for("the run to start", Duration::from_secs(30), || {
            let api = api.clone();
            let run = run.clone();
            async move { (api.run(&run).await["status"] == "running").then_some(()) }
        })
        .await;
    }
}

const JOBS: &str = "/api/v1/jobs";
const JOB: &str = "/api/v1/jobs/{id}";
const RUNS: &str = "/api/v1/jobs/{id}/runs";
const RUN: &str = "/api/v1/runs/{id}";
const LOGS: &str = "/api/v1/runs/{id}/logs";

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every item of a listing, page by page (`limit` per page); asserts the pages do not
/// overlap and the last one says so.
async fn all_pages(
    c: &Checked,
    template: &str,
    args: &[&str],
    query: &str,
    limit: usize,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(cur) = &cursor {
            q.push_str(&format!("&cursor={}", crate::api_doc::encode(cur)));
        }
        let page = c
            .ok("GET", template, args, q.trim_start_matches('&'), None)
            .await;
        let got = ids(&page);
        assert!(got.len() <= limit, "page larger than limit");
        for id in got {
            assert!(!out.contains(&id), "{id} is on two pages");
            out.push(id);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

/// One Server-Sent Event.
#[derive(Debug, Default)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads SSE frames from `resp` until the stream ends, calling `seen` on each event as it
/// arrives.
async fn read_events(mut resp: reqwest::Response, mut seen: impl AsyncFnMut(&Sse)) -> Vec<Sse> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("stream chunk") {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut ev = Sse::default();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    ev.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    ev.data = serde_json::from_str(v.trim()).expect("data is JSON");
                }
            }
            if ev.event.is_empty() {
                continue; // keep-alive comment
            }
            seen(&ev).await;
            out.push(ev);
        }
    }
    out
}

#[tokio::test]
async fn api_walk_through_every_operation_with_real_workers() {
    let url = shared_redis();
    let prefix = unique_prefix("api-walk");
    // The embedded stock worker serves `default` (shell allowed: `sh`, `true`); the test
    // worker serves `work` (echo, sleep, fail, …).
    let sched = InProcess::start_with(&url, &prefix, Some("default")).await;
    let worker = TestWorker::start(&url, &prefix, "work");
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let c = Checked {
        doc: Doc::fetch(&sched.base).await,
        api: api.clone(),
    };

    // Create (and a refused create, which writes nothing).
    let bad = c
        .go(
            "POST",
            JOBS,
            &[],
            "",
            Some(json!({"name": "x", "handler": "echo", "schedule": "61 * * * *"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("schedule"))
    );
    let mut created = Vec::new();
    for name in ["walk-a", "walk-b", "walk-c", "walk-d", "Nightly-REPORT"] {
        let j = c
            .ok(
                "POST",
                JOBS,
                &[],
                "",
                Some(json!({"name": name, "group": "work", "handler": "echo", "params": {"v": 1}})),
            )
            .await;
        assert_eq!(
            (j["version"].as_u64(), j["enabled"].as_bool()),
            (Some(1), Some(true))
        );
        created.push(j["id"].as_str().expect("id").to_owned());
    }
    let a = created[0].clone();

    // List, page, filter.
    let listed = all_pages(&c, JOBS, &[], "group=work", 2).await;
    assert_eq!(
        listed, created,
        "pages of 2 list every job once, in creation order"
    );
    let hit = c.ok("GET", JOBS, &[], "name=report", None).await;
    assert_eq!(
        ids(&hit),
        vec![created[4].clone()],
        "name filter is a case-insensitive substring"
    );
    let first = c
        .ok("GET", JOBS, &[], "group=work&cursor=&limit=2", None)
        .await;
    assert_eq!(
        ids(&first),
        created[..2].to_vec(),
        "an empty cursor is the first page"
    );
    let none = c
        .ok("GET", JOBS, &[], "group=work&enabled=false", None)
        .await;
    assert!(ids(&none).is_empty());
    for q in [
        "limit=0",
        "limit=501",
        "limit=99999999999999999999999",
        "cursor=..%2F",
        "bogus=1",
        "enabled=maybe",
        "group=a%20b",
    ] {
        let r = c.go("GET", JOBS, &[], q, None).await;
        assert_eq!(r.status, 400, "?{q}: {}", r.body);
    }

    // Read, update.
    let got = c.ok("GET", JOB, &[&a], "", None).await;
    assert_eq!(got["params"], json!({"v": 1}));
    let patched = c
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
    assert_eq!(patched["name"], "walk-a", "unmentioned fields are kept");
    let refused = c
        .go("PATCH", JOB, &[&a], "", Some(json!({"group": "elsewhere"})))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"]["field"].as_str()),
        (400, Some("group"))
    );

    // Pause and resume.
    let paused = c
        .ok("POST", "/api/v1/jobs/{id}/pause", &[&a], "", None)
        .await;
    assert_eq!(
        (
            paused["enabled"].as_bool(),
            paused["next_fire_at"].is_null()
        ),
        (Some(false), true)
    );
    let only_paused = c
        .ok("GET", JOBS, &[], "group=work&enabled=false", None)
        .await;
    assert_eq!(ids(&only_paused), vec![a.clone()]);
    let resumed = c
        .ok("POST", "/api/v1/jobs/{id}/resume", &[&a], "", None)
        .await;
    assert_eq!(resumed["enabled"].as_bool(), Some(true));

    // Trigger, with and without params.
    let t = c
        .ok(
            "POST",
            "/api/v1/jobs/{id}/trigger",
            &[&a],
            "",
            Some(json!({"params": {"by": "hand"}})),
        )
        .await;
    let by_hand = t["run_id"].as_str().expect("run_id").to_owned();
    let r = c.final_run(&by_hand).await;
    assert_eq!(
        (r["status"].as_str(), &r["result"], &r["params"]),
        (
            Some("succeeded"),
            &json!({"by": "hand"}),
            &json!({"by": "hand"})
        )
    );
    let mut runs = vec![by_hand];
    for _ in 0..3 {
        let id = c
            .ok("POST", "/api/v1/jobs/{id}/trigger", &[&a], "", None)
            .await["run_id"]
            .as_str()
            .expect("run_id")
            .to_owned();
        let r = c.final_run(&id).await;
        assert_eq!(
            r["result"],
            json!({"v": 2}),
            "a trigger without params runs with the job's"
        );
        runs.push(id);
    }

    // Runs: one, paged, filtered.
    let one = c.ok("GET", RUN, &[&runs[0]], "", None).await;
    assert_eq!(
        (
            one["job_id"].as_str(),
            one["group"].as_str(),
            one["code"].as_u64()
        ),
        (Some(a.as_str()), Some("work"), Some(200))
    );
    let mut newest_first = runs.clone();
    newest_first.reverse();
    assert_eq!(all_pages(&c, RUNS, &[&a], "", 1).await, newest_first);
    assert_eq!(
        all_pages(&c, RUNS, &[&a], "status=succeeded", 3).await,
        newest_first
    );
    assert!(
        all_pages(&c, RUNS, &[&a], "status=failed", 3)
            .await
            .is_empty()
    );
    assert!(
        all_pages(&c, RUNS, &[&a], "from=2999-01-01T00:00:00Z", 3)
            .await
            .is_empty()
    );
    assert!(
        all_pages(&c, RUNS, &[&a], "to=2001-01-01T00:00:00Z", 3)
            .await
            .is_empty()
    );
    assert_eq!(
        all_pages(
            &c,
            RUNS,
            &[&a],
            "from=2001-01-01T00:00:00Z&to=2999-01-01T00:00:00Z",
            3
        )
        .await
        .len(),
        4
    );
    for (q, field) in [
        ("from=yesterday", "from"),
        ("status=sleepy", "status"),
        ("cursor=nonsense", "cursor"),
    ] {
        let r = c.go("GET", RUNS, &[&a], q, None).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "?{q}"
        );
    }
    assert_eq!(c.go("GET", RUN, &["nope"], "", None).await.status, 404);

    // Cancel a running run; a finished run cannot be cancelled.
    let sleeper = c
        .ok("POST", JOBS, &[], "", Some(json!({"name": "sleeper", "group": "work", "handler": "sleep", "params": {"ms": 60000}, "timeout_ms": 120000})))
        .await;
    let s_id = sleeper["id"].as_str().expect("id").to_owned();
    let s_run = c
        .ok("POST", "/api/v1/jobs/{id}/trigger", &[&s_id], "", None)
        .await["run_id"]
        .as_str()
        .expect("run_id")
        .to_owned();
    c.running(&s_run).await;
    c.ok("POST", "/api/v1/runs/{id}/cancel", &[&s_run], "", None)
        .await;
    let r = c.final_run(&s_run).await;
    assert_eq!(r["status"], "cancelled");
    let again = c
        .ok("POST", "/api/v1/runs/{id}/cancel", &[&s_run], "", None)
        .await;
    assert_eq!(
        again["status"], "cancelled",
        "cancelling a cancelled run changes nothing"
    );
    let done = c
        .go("POST", "/api/v1/runs/{id}/cancel", &[&runs[0]], "", None)
        .await;
    assert_eq!(done.status, 409, "a succeeded run cannot be cancelled");

    // Executors: list, disable, enable.
    let execs = c
        .ok(
            "GET",
            "/api/v1/groups/{group}/executors",
            &["work"],
            "",
            None,
        )
        .await;
    let exec = execs[0]["id"].as_str().expect("an executor").to_owned();
    assert_eq!(execs[0]["alive"].as_bool(), Some(true));
    let d = c
        .ok(
            "POST",
            "/api/v1/groups/{group}/executors/{executor}/disable",
            &["work", &exec],
            "",
            None,
        )
        .await;
    assert_eq!(d["disabled"].as_bool(), Some(true));
    let e = c
        .ok(
            "POST",
            "/api/v1/groups/{group}/executors/{executor}/enable",
            &["work", &exec],
            "",
            None,
        )
        .await;
    assert_eq!(e["disabled"].as_bool(), Some(false));
    assert_eq!(
        c.go(
            "POST",
            "/api/v1/groups/{group}/executors/{executor}/disable",
            &["work", "ghost"],
            "",
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.go(
            "GET",
            "/api/v1/groups/{group}/executors",
            &["nogroup"],
            "",
            None
        )
        .await
        .status,
        404
    );

    // Dead letters: a run that always fails dies after 2 attempts; requeue it.
    let failing = c
        .ok("POST", JOBS, &[], "", Some(json!({"name": "doomed", "group": "work", "handler": "fail", "max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 100}})))
        .await;
    let f_id = failing["id"].as_str().expect("id").to_owned();
    let f_run = c
        .ok("POST", "/api/v1/jobs/{id}/trigger", &[&f_id], "", None)
        .await["run_id"]
        .as_str()
        .expect("run_id")
        .to_owned();
    assert_eq!(c.final_run(&f_run).await["status"], "dead");
    let dead = c
        .ok("GET", "/api/v1/groups/{group}/dead", &["work"], "", None)
        .await;
    let letter = dead["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["run"] == f_run.as_str())
        .expect("the dead run is a dead letter")
        .clone();
    assert_eq!(letter["attempts"].as_u64(), Some(2));
    let entry = letter["entry"].as_str().expect("entry").to_owned();
    let again = c
        .ok(
            "POST",
            "/api/v1/groups/{group}/dead/{entry}/requeue",
            &["work", &entry],
            "",
            None,
        )
        .await;
    assert!(
        again["run_id"]
            .as_str()
            .is_some_and(|r| r.starts_with(&f_id))
    );
    let dead = c
        .ok(
            "GET",
            "/api/v1/groups/{group}/dead",
            &["work"],
            "limit=500",
            None,
        )
        .await;
    assert!(
        !dead["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|d| d["entry"] == entry.as_str())
    );
    assert_eq!(
        c.go(
            "POST",
            "/api/v1/groups/{group}/dead/{entry}/requeue",
            &["work", &entry],
            "",
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.go(
            "GET",
            "/api/v1/groups/{group}/dead",
            &["work"],
            "cursor=x",
            None
        )
        .await
        .status,
        400
    );

    // Groups.
    let groups = c.ok("GET", "/api/v1/groups", &[], "", None).await;
    let work = groups
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "work")
        .expect("work")
        .clone();
    assert_eq!(work["jobs"].as_u64(), Some(7));

    // Stats: of one job, of a group, of everything.
    let st = c
        .ok("GET", "/api/v1/stats", &[], &format!("job={a}"), None)
        .await;
    let g = &st["groups"][0];
    assert_eq!(
        (g["group"].as_str(), g["job_stats"].as_array().map(Vec::len)),
        (Some("work"), Some(1))
    );
    let js = &g["job_stats"][0];
    assert_eq!(js["job_id"].as_str(), Some(a.as_str()));
    let w = &js["runs"]["last_5m"];
    assert_eq!(
        (
            w["runs"].as_u64(),
            w["by_status"]["succeeded"].as_u64(),
            w["success_rate"].as_f64()
        ),
        (Some(4), Some(4), Some(1.0))
    );
    assert!(
        w["duration_p50_ms"].is_u64() && w["duration_p95_ms"].is_u64() && w["complete"] == true
    );
    let st = c.ok("GET", "/api/v1/stats", &[], "group=work", None).await;
    let g = &st["groups"][0];
    assert_eq!(
        (
            g["jobs"].as_u64(),
            g["jobs_sampled"].as_u64(),
            g["jobs_truncated"].as_bool()
        ),
        (Some(7), Some(7), Some(false))
    );
    assert!(g["executors"]["live"].as_u64() >= Some(1));
    assert!(g["runs"]["last_1h"]["by_status"]["dead"].as_u64() >= Some(1));
    assert!(g["runs"]["last_1h"]["by_status"]["cancelled"].as_u64() >= Some(1));
    let rate = g["runs"]["last_1h"]["success_rate"]
        .as_f64()
        .expect("a rate");
    assert!(rate > 0.0 && rate < 1.0, "{rate}");
    let everything = c.ok("GET", "/api/v1/stats", &[], "", None).await;
    let names: Vec<&str> = everything["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["group"].as_str())
        .collect();
    assert!(names.contains(&"work"));
    assert_eq!(
        c.go("GET", "/api/v1/stats", &[], "group=nogroup", None)
            .await
            .status,
        404
    );
    assert_eq!(
        c.go("GET", "/api/v1/stats", &[], "window=1h", None)
            .await
            .status,
        400
    );

    // Preview.
    let p = c
        .ok(
            "POST",
            "/api/v1/schedule/preview",
            &[],
            "",
            Some(json!({"schedule": "0 9 * * *", "timezone": "Europe/Berlin", "count": 3})),
        )
        .await;
    assert_eq!(p["fires"].as_array().map(Vec::len), Some(3));

    // Delete: the job and its runs are gone.
    for id in created.iter().chain([&s_id, &f_id]) {
        assert_eq!(c.go("DELETE", JOB, &[id], "", None).await.status, 204);
    }
    assert_eq!(c.go("GET", JOB, &[&a], "", None).await.status, 404);
    assert_eq!(c.go("GET", RUNS, &[&a], "", None).await.status, 404);
    assert_eq!(c.go("GET", RUN, &[&runs[1]], "", None).await.status, 404);
    assert_eq!(c.go("DELETE", JOB, &[&a], "", None).await.status, 404);

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn api_logs_of_a_live_run_can_be_followed_as_server_sent_events() {
    let url = shared_redis();
    let prefix = unique_prefix("api-follow");
    let sched = InProcess::start_with(&url, &prefix, Some("default")).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let doc = Doc::fetch(&sched.base).await;
    // The stock shell handler logs each stdout line as it comes: 6 lines, 300 ms apart.
    let job = api
        .create_job(&json!({
            "name": "ticker", "handler": "shell", "timeout_ms": 30000,
            "params": {"command": ["sh", "-c", "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.3; done"]}
        }))
        .await;
    let run = api.trigger(job["id"].as_str().expect("id"), None).await;

    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http
        .get(format!("{}/api/v1/runs/{run}/logs?follow=true", sched.base))
        .send()
        .await
        .expect("follow");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let mut status_at_first_line = None;
    let events = read_events(resp, async |ev: &Sse| {
        if ev.event == "line" && status_at_first_line.is_none() {
            status_at_first_line = Some(
                api.run(&run).await["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    })
    .await;
    assert_eq!(
        status_at_first_line.as_deref(),
        Some("running"),
        "the first line arrives while the run still runs (the stream is live)"
    );
    let lines: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "line")
        .map(|e| &e.data["line"])
        .collect();
    let want: Vec<Value> = (1..=6).map(|i| json!(format!("line-{i}"))).collect();
    assert_eq!(
        lines,
        want.iter().collect::<Vec<_>>(),
        "every line once, in order"
    );
    let ids: Vec<Option<&str>> = events
        .iter()
        .filter(|e| e.event == "line")
        .map(|e| e.id.as_deref())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"].map(Some).to_vec());
    let end = events.last().expect("events");
    assert_eq!(end.event, "end", "the stream ends with `end`: {events:?}");
    assert_eq!(
        (
            end.data["status"].as_str(),
            end.data["next"].as_u64(),
            end.data["complete"].as_bool()
        ),
        (Some("succeeded"), Some(6), Some(true))
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The same lines by plain reads, and resuming a follow with Last-Event-ID.
    let a = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .expect("logs");
    doc.check_answer("GET", LOGS, a.status, &a.body)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            a.body["lines"].as_array().map(Vec::len),
            a.body["next"].as_u64(),
            a.body["complete"].as_bool()
        ),
        (Some(6), Some(6), Some(true))
    );
    let a = api
        .call("GET", &format!("/runs/{run}/logs?from=4"), None)
        .await
        .expect("logs");
    assert_eq!(a.body["lines"], json!(["line-5", "line-6"]));
    let resp = http
        .get(format!("{}/api/v1/runs/{run}/logs?follow=true", sched.base))
        .header("last-event-id", "4")
        .send()
        .await
        .expect("resume");
    let events = read_events(resp, async |_: &Sse| {}).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["line", "line", "end"]);
    assert_eq!(events[0].data, json!({"n": 4, "line": "line-5"}));
    for q in [
        "from=-1",
        "from=18446744073709551615",
        "follow=perhaps",
        "tail=1",
    ] {
        let a = api
            .call("GET", &format!("/runs/{run}/logs?{q}"), None)
            .await
            .expect("logs");
        assert_eq!(a.status, 400, "?{q}");
    }
    let a = api
        .call("GET", "/runs/nope-1/logs?follow=true", None)
        .await
        .expect("logs");
    assert_eq!(
        a.status, 404,
        "an unknown run is a 404, not an empty stream"
    );

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
