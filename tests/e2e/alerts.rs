//! Alerts end to end: a webhook receiver in the test (an axum server on 127.0.0.1:0 that
//! records every request and checks its HMAC signature itself) gets exactly one signed
//! alert for a dead run with two scheduler replicas, one naming a skipped slot, one per
//! silence window for a flapping job, one for a group left without a live executor, and the
//! alert on the third attempt when it failed twice, each attempt listed by the API. The
//! rules API validates, guards writes with the admin token and records them in the audit
//! trail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dotjob_scheduler::alerts::AlertSettings;
use dotjob_scheduler::{ApiOptions, EngineSettings};
use dotjob_tests::{
    Api, InProcess, Spawned, delete_prefix, redis_handle, shared_redis, unique_prefix, wait_for,
};
use dotjob_worker::{HandlerError, RunContext, Worker};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::TestWorker;

const SECRET: &str = "test-secret-0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    /// When it arrived.
    at: Instant,
    /// `X-Dotjob-Delivery`.
    delivery: String,
    /// The parsed body.
    body: Value,
    /// The answer it got.
    status: u16,
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// Requests still to fail with a 500.
    fail: AtomicU32,
    /// Requests whose signature did not verify (they also get a 401).
    bad_signatures: AtomicU32,
}

/// A webhook receiver on 127.0.0.1:0 that verifies `X-Dotjob-Signature` as the README says.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    _server: Spawned,
}

/// Verifies `t=<unix s>,v1=<hex>` over `"<t>.<body>"`, with the timestamp within 5 minutes.
fn verify(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let Some(sig) = (0..v1.len())
        .step_by(2)
        .map(|i| {
            v1.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn hook(State(s): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let signed = verify(&header("x-dotjob-signature"), &body);
    if !signed {
        s.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    let failing = s
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if !signed {
        StatusCode::UNAUTHORIZED
    } else if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    s.got.lock().unwrap().push(Received {
        at: Instant::now(),
        delivery: header("x-dotjob-delivery"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
    });
    status
}

/// A Slack incoming webhook: records `{"event": "slack", "text": …}`.
async fn slack(State(s): State<Arc<ReceiverState>>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let only_text = v.as_object().is_some_and(|o| o.len() == 1) && v["text"].is_string();
    s.got.lock().unwrap().push(Received {
        at: Instant::now(),
        delivery: String::new(),
        body: json!({"event": "slack", "text": v["text"], "only_text": only_text}),
        status: 200,
    });
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .route("/slack", axum::routing::post(slack))
            .with_state(state.clone());
        let server = Spawned::new(|shutdown| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
            Ok(())
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Requests about `event`.
    fn of(&self, event: &str) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.body["event"] == event)
            .collect()
    }

    /// Waits for at least `n` requests about `event`.
    async fn wait(&self, event: &str, n: usize, timeout: Duration) -> Vec<Received> {
        wait_for(&format!("{n} `{event}` alerts"), timeout, || async {
            let got = self.of(event);
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Asserts no further `event` request comes within `quiet` (after `n` came).
    async fn stays_at(&self, event: &str, n: usize, quiet: Duration) {
        let until = Instant::now() + quiet;
        while Instant::now() < until {
            assert_eq!(
                self.of(event).len(),
                n,
                "more `{event}` alerts than expected: {:?}",
                self.of(event)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            self.state.bad_signatures.load(Ordering::SeqCst),
            0,
            "a request was not signed right"
        );
    }
}

/// Fast alerting for tests: events every 100 ms, checks every 500 ms, retries after 300 ms
/// and 600 ms.
fn fast() -> EngineSettings {
    EngineSettings {
        alerts: AlertSettings {
            interval: Duration::from_millis(100),
            check_every: Duration::from_millis(500),
            retry_delays: vec![Duration::from_millis(300), Duration::from_millis(600)],
            ..AlertSettings::default()
        },
        ..EngineSettings::default()
    }
}

async fn scheduler(url: &str, prefix: &str) -> InProcess {
    InProcess::start_full(url, prefix, None, fast()).await
}

/// Creates a rule; returns its id.
async fn rule(
    api: &Api,
    receiver: &Receiver,
    scope: &str,
    events: Value,
    silence_ms: u64,
) -> String {
    let a = api
        .call(
            "POST",
            "/alerts/rules",
            Some(
                &json!({"name": format!("rule {scope}"), "scope": scope, "events": events,
                "silence_ms": silence_ms,
                "target": {"type": "webhook", "url": receiver.url, "secret": SECRET}}),
            ),
        )
        .await
        .expect("create rule");
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().expect("id").to_owned()
}

/// Every attempt listed for `delivery`, oldest first.
async fn attempts(api: &Api, delivery: &str) -> Vec<Value> {
    let a = api
        .call(
            "GET",
            &format!("/alerts/deliveries?delivery={delivery}&limit=2"),
            None,
        )
        .await
        .expect("deliveries");
    assert_eq!(a.status, 200, "{}", a.body);
    let mut items = a.body["items"].as_array().cloned().unwrap_or_default();
    let mut cursor = a.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let a = api
            .call(
                "GET",
                &format!("/alerts/deliveries?delivery={delivery}&limit=2&cursor={c}"),
                None,
            )
            .await
            .expect("deliveries");
        items.extend(a.body["items"].as_array().cloned().unwrap_or_default());
        cursor = a.body["next_cursor"].as_str().map(str::to_owned);
    }
    items.reverse();
    items
}

#[tokio::test]
async fn a_dead_run_alerts_once_signed_with_two_replicas() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-dead");
    let (s1, s2) = (
        scheduler(&url, &prefix).await,
        scheduler(&url, &prefix).await,
    );
    let worker = TestWorker::start(&url, &prefix, "al-dead");
    let api = Api::new(&s1.base);
    api.wait_ready().await;
    Api::new(&s2.base).wait_ready().await;
    let job = api
        .create_job(
            &json!({"name": "doomed", "group": "al-dead", "handler": "fail",
            "max_attempts": 2, "backoff": {"base_ms": 100, "max_ms": 100}}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let receiver = Receiver::start().await;
    rule(
        &api,
        &receiver,
        "group:al-dead",
        json!([{"event": "dead"}]),
        600_000,
    )
    .await;
    let run = api.trigger(&job, None).await;
    let final_run = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(final_run["status"], "dead");

    let got = receiver.wait("dead", 1, Duration::from_secs(20)).await;
    let body = &got[0].body;
    assert_eq!(body["job"]["id"], job.as_str());
    assert_eq!(body["job"]["name"], "doomed");
    assert_eq!(body["run"], run.as_str());
    assert_eq!(body["group"], "al-dead");
    assert!(
        body["text"].as_str().unwrap_or("").contains("dead"),
        "{body}"
    );
    assert_eq!(got[0].delivery, body["id"].as_str().unwrap_or(""));
    // Both replicas keep evaluating: still exactly one.
    receiver.stays_at("dead", 1, Duration::from_secs(3)).await;
    assert_eq!(receiver.got().len(), 1, "{:?}", receiver.got());

    worker.stop().await;
    s1.shutdown().await;
    s2.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_forbid_skip_alerts_naming_the_slot() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-missed");
    let sched = scheduler(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "al-miss");
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let receiver = Receiver::start().await;
    // Created paused, so the rule exists before its first tick.
    let job = api
        .create_job(
            &json!({"name": "slow", "group": "al-miss", "handler": "sleep",
            "params": {"ms": 2_500}, "schedule": "*/1 * * * * *", "concurrency": "forbid",
            "enabled": false}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    rule(
        &api,
        &receiver,
        &format!("job:{job}"),
        json!([{"event": "missed"}]),
        600_000,
    )
    .await;
    let a = api
        .call("POST", &format!("/jobs/{job}/resume"), None)
        .await
        .expect("resume");
    assert_eq!(a.status, 200, "{}", a.body);

    let got = receiver.wait("missed", 1, Duration::from_secs(30)).await;
    let skipped: Vec<Value> = wait_for("two skipped ticks", Duration::from_secs(30), || async {
        let runs = api.runs(&job).await;
        let s: Vec<Value> = runs
            .into_iter()
            .filter(|r| r["status"] == "skipped")
            .collect();
        (s.len() >= 2).then_some(s)
    })
    .await;
    api.call("POST", &format!("/jobs/{job}/pause"), None)
        .await
        .expect("pause");
    let body = &got[0].body;
    let slot = body["slot"].as_str().expect("slot").to_owned();
    let run = body["run"].as_str().expect("run");
    let named = skipped
        .iter()
        .find(|r| r["id"] == run)
        .unwrap_or_else(|| panic!("the alert names run {run}, not a skipped one: {skipped:?}"));
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(named["scheduled_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&slot).unwrap(),
        "the alert names the skipped slot"
    );
    let text = body["text"].as_str().unwrap_or("");
    assert!(text.contains(&slot) && text.contains("slow"), "{text}");
    // More ticks were skipped, within the silence window: still one alert.
    receiver.stays_at("missed", 1, Duration::from_secs(1)).await;

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_flapping_job_alerts_once_per_silence_window() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-flap");
    let sched = scheduler(&url, &prefix).await;
    // Fails, succeeds, fails, ... one run each.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let worker = Worker::builder(redis_handle(&url, &prefix), "al-flap")
        .handler("flap", move |_ctx: RunContext| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    Err(HandlerError::fatal("flapping"))
                } else {
                    Ok(json!({}))
                }
            }
        })
        .build()
        .expect("worker");
    let worker = Spawned::worker(worker);
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let receiver = Receiver::start().await;
    let job = api
        .create_job(
            &json!({"name": "flappy", "group": "al-flap", "handler": "flap",
            "schedule": "*/1 * * * * *", "max_attempts": 1, "enabled": false}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let silence = Duration::from_millis(3_000);
    rule(
        &api,
        &receiver,
        &format!("job:{job}"),
        json!([{"event": "consecutive_failures", "count": 1}]),
        silence.as_millis() as u64,
    )
    .await;
    // Never 2 in a row: a streak is reset by each success.
    rule(
        &api,
        &receiver,
        "group:al-flap",
        json!([{"event": "consecutive_failures", "count": 2}]),
        1_000,
    )
    .await;
    api.call("POST", &format!("/jobs/{job}/resume"), None)
        .await
        .expect("resume");
    let start = Instant::now();
    let got = receiver
        .wait("consecutive_failures", 3, Duration::from_secs(30))
        .await;
    api.call("POST", &format!("/jobs/{job}/pause"), None)
        .await
        .expect("pause");
    let span = start.elapsed();
    let runs = api.runs(&job).await;
    let failed = runs.iter().filter(|r| r["status"] == "failed").count();
    assert!(
        failed > got.len(),
        "{failed} failed runs and {} alerts: the silence window let every failure through",
        got.len()
    );
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    for g in &gaps {
        assert!(
            *g >= silence - Duration::from_millis(500),
            "two alerts {g:?} apart, within one window"
        );
        // A failure comes every 2 s: the next window's first failure alerts.
        assert!(
            *g <= silence + Duration::from_millis(3_500),
            "a window without its alert: {g:?}"
        );
    }
    assert!(
        got.iter()
            .all(|r| r.body["rule"]["name"] == format!("rule job:{job}")),
        "the count-2 rule alerted on a job that never failed twice in a row: {:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(span < Duration::from_secs(30));

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_group_left_without_a_live_executor_alerts() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-noexec");
    let sched = scheduler(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "al-noexec");
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let receiver = Receiver::start().await;
    let job = api
        .create_job(
            &json!({"name": "ticker", "group": "al-noexec", "handler": "noop",
            "schedule": "*/1 * * * * *"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    rule(
        &api,
        &receiver,
        "group:al-noexec",
        json!([{"event": "no_executor"}]),
        600_000,
    )
    .await;
    wait_for("runs to succeed", Duration::from_secs(20), || async {
        api.runs(&job)
            .await
            .iter()
            .any(|r| r["status"] == "succeeded")
            .then_some(())
    })
    .await;
    assert!(
        receiver.of("no_executor").is_empty(),
        "alerted while a worker ran"
    );
    worker.stop().await;
    let got = receiver
        .wait("no_executor", 1, Duration::from_secs(40))
        .await;
    assert_eq!(got[0].body["group"], "al-noexec");
    assert!(
        got[0].body["text"]
            .as_str()
            .unwrap_or("")
            .contains("no live executor")
    );
    receiver
        .stays_at("no_executor", 1, Duration::from_secs(2))
        .await;

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_alert_on_the_third_attempt_and_every_attempt_is_listed()
{
    let url = shared_redis();
    let prefix = unique_prefix("alert-retry");
    let sched = scheduler(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let receiver = Receiver::start().await;
    receiver.state.fail.store(2, Ordering::SeqCst);
    let id = rule(
        &api,
        &receiver,
        "global",
        json!([{"event": "dead"}]),
        60_000,
    )
    .await;
    let a = api
        .call("POST", &format!("/alerts/rules/{id}/test"), None)
        .await
        .expect("test");
    assert_eq!(a.status, 202, "{}", a.body);
    let delivery = a.body["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_owned();

    let got = receiver.wait("test", 3, Duration::from_secs(20)).await;
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(
        got.iter().all(|r| r.delivery == delivery),
        "one delivery id on every attempt"
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(250),
        "no backoff"
    );
    let listed = wait_for("three attempts listed", Duration::from_secs(10), || async {
        let l = attempts(&api, &delivery).await;
        (l.len() >= 3).then_some(l)
    })
    .await;
    let seen: Vec<(u64, &str, u64)> = listed
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap_or(0),
                a["status"].as_str().unwrap_or(""),
                a["code"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "retrying", 500),
            (2, "retrying", 500),
            (3, "delivered", 200)
        ]
    );
    assert!(
        listed
            .iter()
            .all(|a| a["rule"] == id.as_str() && a["event"] == "test")
    );
    let failed = api
        .call(
            "GET",
            &format!("/alerts/deliveries?rule={id}&status=delivered"),
            None,
        )
        .await
        .expect("filter");
    assert_eq!(
        failed.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        failed.body
    );
    receiver.stays_at("test", 3, Duration::from_secs(1)).await;

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn alert_rules_are_validated_guarded_and_audited() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-api");
    let sched = InProcess::start_exposed(
        &url,
        &prefix,
        None,
        fast(),
        ApiOptions {
            admin_token: Some(dotjob_scheduler::api::auth::Secret::new(
                "admin-alerts-71c2",
            )),
            read_token: Some(dotjob_scheduler::api::auth::Secret::new("read-alerts-3b9e")),
            ..ApiOptions::default()
        },
    )
    .await;
    let base = Api::new(&sched.base);
    base.wait_ready().await;
    let (admin, read) = (
        base.with_token("admin-alerts-71c2"),
        base.with_token("read-alerts-3b9e"),
    );
    let receiver = Receiver::start().await;
    let job = admin
        .create_job(&json!({"name": "audited", "group": "al-api", "handler": "noop"}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let good = json!({"name": "ops", "scope": "group:al-api",
        "events": [{"event": "dead"}, {"event": "consecutive_failures", "count": 3}],
        "target": {"type": "webhook", "url": receiver.url, "secret": SECRET}});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    // Bad input: a 400 naming the field, nothing written.
    for (body, field) in [
        (
            with(
                "target",
                json!({"type": "webhook", "url": "ftp://example.com/x", "secret": SECRET}),
            ),
            "target.url",
        ),
        (
            with("target", json!({"type": "slack", "url": "not a url"})),
            "target.url",
        ),
        (
            with("target", json!({"type": "webhook", "url": receiver.url})),
            "target.secret",
        ),
        (with("events", json!([{"event": "explodes"}])), "events"),
        (
            with(
                "events",
                json!([{"event": "consecutive_failures", "count": 0}]),
            ),
            "events[0].count",
        ),
        (with("events", json!([])), "events"),
        (with("scope", json!("group:nope")), "scope"),
        (with("scope", json!("team:x")), "scope"),
        (with("silence_ms", json!(5)), "silence_ms"),
        (with("name", json!("")), "name"),
    ] {
        let a = admin
            .call("POST", "/alerts/rules", Some(&body))
            .await
            .expect("post");
        assert_eq!(a.status, 400, "{body} → {}", a.body);
        let named = a.body["error"]["field"].as_str().unwrap_or("");
        assert!(
            named.starts_with(field),
            "{body}: field {named}, want {field}"
        );
    }
    let none = read.call("GET", "/alerts/rules", None).await.expect("list");
    assert_eq!(none.body, json!([]), "a refused write wrote something");

    // A read token cannot write rules; it reads them, without the secret.
    let refused = read
        .call("POST", "/alerts/rules", Some(&good))
        .await
        .expect("post");
    assert_eq!(refused.status, 403, "{}", refused.body);
    let created = admin
        .call("POST", "/alerts/rules", Some(&good))
        .await
        .expect("post");
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let shown = read
        .call("GET", &format!("/alerts/rules/{id}"), None)
        .await
        .expect("get");
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["target"]["secret_set"], true);
    assert!(
        !shown.body.to_string().contains(SECRET),
        "the secret was shown"
    );
    for (method, path, body) in [
        (
            "PATCH",
            format!("/alerts/rules/{id}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/alerts/rules/{id}"), None),
        ("POST", format!("/alerts/rules/{id}/test"), None),
    ] {
        let a = read.call(method, &path, body.as_ref()).await.expect("call");
        assert_eq!(
            a.status, 403,
            "{method} {path} with a read token: {}",
            a.body
        );
    }
    let deliveries = read
        .call("GET", "/alerts/deliveries", None)
        .await
        .expect("list");
    assert_eq!(deliveries.status, 200);

    // Changes keep the secret; the test action delivers a signed test alert.
    let patched = admin
        .call("PATCH", &format!("/alerts/rules/{id}"),
            Some(&json!({"scope": format!("job:{job}"), "target": {"type": "webhook", "url": receiver.url}})))
        .await
        .expect("patch");
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        (
            patched.body["version"].as_u64(),
            patched.body["target"]["secret_set"].as_bool()
        ),
        (Some(2), Some(true))
    );
    let bad = admin
        .call(
            "PATCH",
            &format!("/alerts/rules/{id}"),
            Some(&json!({"events": [{"event": "consecutive_failures", "count": 0}]})),
        )
        .await
        .expect("patch");
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("events[0].count"))
    );
    let t = admin
        .call("POST", &format!("/alerts/rules/{id}/test"), None)
        .await
        .expect("test");
    assert_eq!(t.status, 202, "{}", t.body);
    let got = receiver.wait("test", 1, Duration::from_secs(20)).await;
    assert_eq!(got[0].status, 200, "the test alert did not verify");
    assert_eq!(got[0].body["rule"]["id"], id.as_str());
    let gone = admin
        .call("DELETE", &format!("/alerts/rules/{id}"), None)
        .await
        .expect("delete");
    assert_eq!(gone.status, 204);
    let again = admin
        .call("GET", &format!("/alerts/rules/{id}"), None)
        .await
        .expect("get");
    assert_eq!(again.status, 404);

    // The audit trail lists each write once with the token's name, and no refused one.
    let trail = admin
        .call("GET", "/audit?limit=500", None)
        .await
        .expect("audit");
    let rows: Vec<(String, String, String, u64)> = trail.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or("").contains("alert_rule"))
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["token"].as_str().unwrap_or("").to_owned(),
                e["rule"].as_str().unwrap_or("").to_owned(),
                e["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let ok: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r.3 < 400)
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        ok,
        [
            ("delete_alert_rule", "admin", id.as_str()),
            ("test_alert_rule", "admin", id.as_str()),
            ("update_alert_rule", "admin", id.as_str()),
            ("create_alert_rule", "admin", id.as_str()),
        ],
        "{rows:?}"
    );
    let about = admin
        .call("GET", &format!("/audit?rule={id}"), None)
        .await
        .expect("audit by rule");
    assert_eq!(
        about.body["items"].as_array().map(Vec::len),
        Some(5),
        "{}",
        about.body
    );
    let rejected = rows.iter().filter(|r| r.3 == 400).count();
    assert_eq!(rejected, 11, "each rejected write once: {rows:?}");
    assert!(
        rows.iter().all(|r| r.1 == "admin"),
        "a read token's refused write was recorded: {rows:?}"
    );

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn a_long_run_alerts_naming_it_and_a_timeout_reaches_slack() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-long");
    let sched = scheduler(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "al-long");
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let receiver = Receiver::start().await;
    let long = api
        .create_job(
            &json!({"name": "long", "group": "al-long", "handler": "sleep",
            "params": {"ms": 4_000}, "timeout_ms": 20_000}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let slow = api
        .create_job(
            &json!({"name": "slow", "group": "al-long", "handler": "sleep",
            "params": {"ms": 5_000}, "timeout_ms": 300, "max_attempts": 1}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    rule(
        &api,
        &receiver,
        "group:al-long",
        json!([{"event": "long_running", "after_ms": 1_500}]),
        600_000,
    )
    .await;
    let a = api
        .call(
            "POST",
            "/alerts/rules",
            Some(&json!({"name": "to slack", "scope": format!("job:{slow}"),
            "events": [{"event": "timed_out"}],
            "target": {"type": "slack", "url": receiver.url.replace("/hook", "/slack")}})),
        )
        .await
        .expect("slack rule");
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["target"]["secret_set"], false);

    let run = api.trigger(&long, None).await;
    let timed = api.trigger(&slow, None).await;
    let got = receiver
        .wait("long_running", 1, Duration::from_secs(20))
        .await;
    assert_eq!(got[0].body["run"], run.as_str());
    let text = got[0].body["text"].as_str().unwrap_or("");
    assert!(
        text.contains("running for") && text.contains("\"long\""),
        "{text}"
    );
    let slack = receiver.wait("slack", 1, Duration::from_secs(20)).await;
    assert_eq!(
        slack[0].body["only_text"], true,
        "a Slack body is {{\"text\": …}} only"
    );
    let text = slack[0].body["text"].as_str().unwrap_or("");
    assert!(
        text.contains("timed out") && text.contains(&timed),
        "{text}"
    );
    let done = api.wait_run_final(&run, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "succeeded");
    receiver
        .stays_at("long_running", 1, Duration::from_millis(500))
        .await;
    assert_eq!(receiver.of("slack").len(), 1);

    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

/// Whether the scheduler at `base` holds the lease of `group` (its `/readyz` says).
async fn holds(base: &str, group: &str) -> bool {
    let a = Api::new(base)
        .raw("GET", "/readyz", None)
        .await
        .expect("readyz");
    a.body["leases"]["held"]
        .as_array()
        .is_some_and(|h| h.iter().any(|g| g == group))
}

#[tokio::test]
async fn each_event_alerts_once_across_a_lease_handover() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-handover");
    let (s1, s2) = (
        scheduler(&url, &prefix).await,
        scheduler(&url, &prefix).await,
    );
    let worker = TestWorker::start(&url, &prefix, "al-hand");
    let (a1, a2) = (Api::new(&s1.base), Api::new(&s2.base));
    a1.wait_ready().await;
    a2.wait_ready().await;
    let dead_job = |name: &'static str| {
        let api = a1.clone();
        async move {
            api.create_job(&json!({"name": name, "group": "al-hand", "handler": "fail"}))
                .await["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    let (first, second) = (dead_job("first").await, dead_job("second").await);
    let receiver = Receiver::start().await;
    // The shortest silence: a repeat after the handover would not be silenced.
    rule(
        &a1,
        &receiver,
        "group:al-hand",
        json!([{"event": "consecutive_failures", "count": 1}]),
        1_000,
    )
    .await;
    let holder = wait_for(
        "a replica to hold the group",
        Duration::from_secs(30),
        || async {
            if holds(&s1.base, "al-hand").await {
                Some(1)
            } else if holds(&s2.base, "al-hand").await {
                Some(2)
            } else {
                None
            }
        },
    )
    .await;
    let run = a1.trigger(&first, None).await;
    a1.wait_run_final(&run, Duration::from_secs(30)).await;
    receiver
        .wait("consecutive_failures", 1, Duration::from_secs(20))
        .await;

    // The holder stops; the other replica takes the group and its cursor.
    let (survivor, api) = if holder == 1 {
        s1.shutdown().await;
        (s2, a2)
    } else {
        s2.shutdown().await;
        (s1, a1)
    };
    wait_for(
        "the survivor to hold the group",
        Duration::from_secs(30),
        || async { holds(&survivor.base, "al-hand").await.then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the first job's silence
    let run = api.trigger(&second, None).await;
    api.wait_run_final(&run, Duration::from_secs(30)).await;
    let got = receiver
        .wait("consecutive_failures", 2, Duration::from_secs(20))
        .await;
    receiver
        .stays_at("consecutive_failures", 2, Duration::from_secs(2))
        .await;
    let jobs: Vec<&str> = got
        .iter()
        .map(|r| r.body["job"]["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        jobs,
        [first.as_str(), second.as_str()],
        "one alert per event, none repeated"
    );

    worker.stop().await;
    survivor.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn slots_dropped_by_a_fire_once_misfire_alert_naming_the_first() {
    let url = shared_redis();
    let prefix = unique_prefix("alert-misfire");
    // Ticks fired at their instant, not ahead: the outage below then misses them.
    let at_instant = || EngineSettings {
        fire_ahead: Duration::ZERO,
        ..fast()
    };
    let first = InProcess::start_full(&url, &prefix, None, at_instant()).await;
    let worker = TestWorker::start(&url, &prefix, "al-misfire");
    let api = Api::new(&first.base);
    api.wait_ready().await;
    let job = api
        .create_job(
            &json!({"name": "every-second", "group": "al-misfire", "handler": "noop",
            "schedule": "*/1 * * * * *", "misfire_threshold_ms": 1_000,
            "misfire_policy": "fire_once"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let receiver = Receiver::start().await;
    rule(
        &api,
        &receiver,
        &format!("job:{job}"),
        json!([{"event": "missed"}]),
        600_000,
    )
    .await;
    wait_for("a run", Duration::from_secs(20), || async {
        (!api.runs(&job).await.is_empty()).then_some(())
    })
    .await;
    // Every scheduler down for 3 s: the slots of that time are missed beyond the threshold.
    first.shutdown().await;
    let down = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = InProcess::start_full(&url, &prefix, None, at_instant()).await;
    let got = receiver.wait("missed", 1, Duration::from_secs(30)).await;
    let slot = chrono::DateTime::parse_from_rfc3339(got[0].body["slot"].as_str().expect("slot"))
        .expect("rfc3339")
        .timestamp_millis();
    assert!(
        (down - 2_000..down + 2_000).contains(&slot),
        "the alert names the first missed slot, near {down}: {}",
        got[0].body
    );
    let text = got[0].body["text"].as_str().unwrap_or("");
    assert!(text.contains("fire_once"), "{text}");
    receiver.stays_at("missed", 1, Duration::from_secs(1)).await;

    api.call("POST", &format!("/jobs/{job}/pause"), None)
        .await
        .ok();
    worker.stop().await;
    second.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
