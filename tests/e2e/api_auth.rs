//! Access control, generated from the OpenAPI document: every operation it lists is tried
//! without a token, with a wrong one, with the read token and with the admin token, so a
//! route added later is covered without touching this file. Plus the start-up refusal on a
//! non-loopback address without an admin token, tokens kept out of the logs, and CORS.

use std::time::Duration;

use dotjob_scheduler::ApiOptions;
use dotjob_scheduler::api::auth::Secret;
use dotjob_tests::{Api, InProcess, Proc, delete_prefix, free_port, shared_redis, unique_prefix};
use serde_json::Value;

use crate::api_doc::{Doc, fill};

const ADMIN: &str = "admin-7f3a9c1e5b2d";
const READ: &str = "read-2c8e6a4f0d1b";

/// Status, `WWW-Authenticate` and JSON body of one request.
async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    auth: Option<&str>,
) -> (u16, String, Value) {
    let mut req = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url,
    );
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test]
async fn api_every_documented_operation_checks_its_token() {
    let url = shared_redis();
    let prefix = unique_prefix("api-auth");
    let sched = InProcess::start_api(
        &url,
        &prefix,
        ApiOptions {
            admin_token: Some(Secret::new(ADMIN)),
            read_token: Some(Secret::new(READ)),
            ..ApiOptions::default()
        },
    )
    .await;
    Api::new(&sched.base).wait_ready().await;
    let doc = Doc::fetch(&sched.base).await;
    let http = reqwest::Client::new();
    let (mut public, mut readable, mut admin_only) = (Vec::new(), Vec::new(), Vec::new());
    for op in doc.ops() {
        let name = format!("{} {}", op.method, op.path);
        let target = format!(
            "{}{}",
            sched.base,
            fill(&op.path, |p| if p == "entry" {
                "1-0".into()
            } else {
                "01zzzz".into()
            })
        );
        let (status, _, _) = send(&http, &op.method, &target, None).await;
        if op.public() {
            assert!(
                (200..300).contains(&status),
                "{name} is public but answered {status}"
            );
            public.push(op.path.clone());
            continue;
        }
        let (status, challenge, body) = send(&http, &op.method, &target, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{name} without a token"
        );
        assert!(
            challenge.starts_with("Bearer"),
            "{name}: WWW-Authenticate is `{challenge}`"
        );
        for wrong in [
            "Bearer not-the-token",
            "Basic YWRtaW46YWRtaW4=",
            "Bearer",
            &format!("Bearer {ADMIN}x"),
        ] {
            let (status, challenge, _) = send(&http, &op.method, &target, Some(wrong)).await;
            assert_eq!(status, 401, "{name} with `{wrong}`");
            assert!(
                challenge.contains("invalid_token"),
                "{name} with `{wrong}`: `{challenge}`"
            );
        }
        let (status, _, body) =
            send(&http, &op.method, &target, Some(&format!("Bearer {READ}"))).await;
        if op.readable() {
            assert!(
                status != 401 && status != 403,
                "{name} with the read token → {status} {body}"
            );
            readable.push(name.clone());
        } else {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{name} with the read token"
            );
            admin_only.push(name.clone());
        }
        let (status, _, body) =
            send(&http, &op.method, &target, Some(&format!("bearer {ADMIN}"))).await;
        assert!(
            status != 401 && status != 403,
            "{name} with the admin token → {status} {body}"
        );
    }
    public.sort();
    assert_eq!(
        public,
        [
            "/",
            "/api/docs",
            "/api/v1/openapi.json",
            "/healthz",
            "/metrics"
        ],
        "only the pages, the document, health and metrics are public"
    );
    // Every read is readable with the read token; every change needs the admin token.
    for r in &readable {
        assert!(
            r.starts_with("GET ") || r == "POST /api/v1/schedule/preview",
            "{r} is readable"
        );
    }
    for a in &admin_only {
        assert!(
            !a.starts_with("GET ") || a == "GET /api/v1/audit",
            "{a} needs the admin token"
        );
    }
    assert!(
        readable.len() >= 10 && admin_only.len() >= 10,
        "{readable:?} {admin_only:?}"
    );
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn api_scheduler_refuses_an_open_api_on_a_public_address_and_never_logs_tokens() {
    let url = shared_redis();
    let prefix = unique_prefix("api-bind");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let base_env = [
        ("REDIS_URL", url.as_str()),
        ("DOTJOB_PREFIX", prefix.as_str()),
        ("DOTJOB_LISTEN", listen.as_str()),
        ("DOTJOB_EMBEDDED_WORKER", "off"),
        ("DOTJOB_ADMIN_TOKEN", ""),
        ("DOTJOB_READ_TOKEN", ""),
    ];

    let mut open = Proc::spawn("dotjob-scheduler", &[], &base_env);
    let code = open.wait_exit(Duration::from_secs(20)).expect("it exits");
    assert_eq!(code, Some(2), "exit code");
    let log = open.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line: {log}");
    assert!(
        lines[0].contains("DOTJOB_ADMIN_TOKEN") && lines[0].contains(&listen),
        "{log}"
    );

    let loopback = format!("127.0.0.1:{port}");
    let mut read_only = Proc::spawn(
        "dotjob-scheduler",
        &[],
        &[
            ("DOTJOB_LISTEN", loopback.as_str()),
            ("DOTJOB_READ_TOKEN", READ),
            ("REDIS_URL", url.as_str()),
        ],
    );
    assert_eq!(
        read_only
            .wait_exit(Duration::from_secs(20))
            .expect("it exits"),
        Some(2)
    );
    assert!(
        read_only.log().contains("DOTJOB_READ_TOKEN"),
        "{}",
        read_only.log()
    );

    // With an admin token it serves on 0.0.0.0; debug logs of its requests hold no token.
    let mut env = base_env.to_vec();
    env.retain(|(k, _)| !k.ends_with("_TOKEN"));
    env.extend([
        ("DOTJOB_ADMIN_TOKEN", ADMIN),
        ("DOTJOB_READ_TOKEN", READ),
        ("RUST_LOG", "debug"),
    ]);
    let mut served = Proc::spawn("dotjob-scheduler", &[], &env);
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    api.wait_ready().await;
    assert_eq!(
        api.call("GET", "/jobs", None).await.expect("call").status,
        401
    );
    assert_eq!(
        api.with_token("wrong-token-123")
            .call("GET", "/jobs", None)
            .await
            .expect("call")
            .status,
        401
    );
    assert_eq!(
        api.with_token(READ)
            .call("GET", "/jobs", None)
            .await
            .expect("call")
            .status,
        200
    );
    let a = api
        .with_token(ADMIN)
        .call(
            "POST",
            "/jobs",
            Some(&serde_json::json!({"name": "n", "handler": "h"})),
        )
        .await
        .expect("call");
    assert_eq!(a.status, 201);
    served.term();
    served.wait_exit(Duration::from_secs(30)).expect("it stops");
    let log = served.log();
    assert!(log.contains("listening"), "the log is captured: {log}");
    for secret in [ADMIN, READ, "wrong-token-123"] {
        assert!(!log.contains(secret), "a token is in the log");
    }
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn api_cors_is_off_by_default_and_allows_only_the_configured_origins() {
    let url = shared_redis();
    let prefix = unique_prefix("api-cors");
    let closed = InProcess::start(&url, &prefix).await;
    let open = InProcess::start_api(
        &url,
        &prefix,
        ApiOptions {
            admin_token: Some(Secret::new(ADMIN)),
            cors_origins: vec!["https://console.example.com".into()],
            ..ApiOptions::default()
        },
    )
    .await;
    Api::new(&closed.base).wait_ready().await;
    Api::new(&open.base).wait_ready().await;
    let http = reqwest::Client::new();
    let preflight = |base: &str, origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/api/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allow = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let r = preflight(&closed.base, "https://console.example.com")
        .await
        .expect("preflight");
    assert_eq!(allow(&r), None, "no CORS unless configured");
    let r = http
        .get(format!("{}/api/v1/jobs", closed.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("get");
    assert_eq!(allow(&r), None);

    let r = preflight(&open.base, "https://console.example.com")
        .await
        .expect("preflight");
    assert!(
        r.status().is_success(),
        "a preflight needs no token: {}",
        r.status()
    );
    assert_eq!(allow(&r).as_deref(), Some("https://console.example.com"));
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    let r = preflight(&open.base, "https://evil.example")
        .await
        .expect("preflight");
    assert_eq!(allow(&r), None, "other origins get nothing");
    let r = http
        .get(format!("{}/api/v1/jobs", open.base))
        .header("origin", "https://console.example.com")
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    assert_eq!(
        (r.status().as_u16(), allow(&r).as_deref()),
        (200, Some("https://console.example.com"))
    );

    closed.shutdown().await;
    open.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
