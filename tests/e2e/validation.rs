//! Bad input never corrupts state (invariant 9): every invalid job gets a 4xx JSON error
//! naming the field, and nothing is written to Redis.

use dotjob_tests::{Api, InProcess, delete_prefix, raw_conn, shared_redis, unique_prefix};
use serde_json::{Value, json};

/// Keys under `prefix`, but the scheduler replicas' own liveness registry (written by any
/// running scheduler, whatever the requests) and the audit trail (which records refused
/// writes too).
async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let mut c = raw_conn(url).await;
    let mut k: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    let layout = dotjob_shared::Keys::new(prefix);
    k.retain(|k| *k != layout.schedulers() && *k != layout.audit());
    k
}

fn valid() -> Value {
    json!({"name": "n", "group": "val", "handler": "noop", "schedule": "*/5 * * * * *"})
}

fn with(field: &str, v: Value) -> Value {
    let mut j = valid();
    j[field] = v;
    j
}

#[tokio::test]
async fn invalid_jobs_are_refused_with_the_field_named_and_nothing_written() {
    let url = shared_redis();
    let prefix = unique_prefix("val");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let cases: Vec<(&str, Value)> = vec![
        ("schedule", with("schedule", json!("61 * * * *"))),
        ("schedule", with("schedule", json!("* * *"))),
        ("schedule", with("schedule", json!("@every never"))),
        (
            "schedule",
            with("schedule", json!("@once 2001-01-01T00:00:00Z")),
        ),
        ("schedule", with("schedule", json!("0 0 30 2 *"))),
        ("schedule", with("schedule", json!(5))),
        ("timezone", with("timezone", json!("Mars/Olympus_Mons"))),
        ("timezone", with("timezone", json!(""))),
        ("name", with("name", json!(""))),
        ("name", with("name", json!("   "))),
        ("name", with("name", json!("x".repeat(201)))),
        ("name", with("name", json!(42))),
        ("name", json!({"group": "val", "handler": "noop"})),
        ("group", with("group", json!("has space"))),
        ("group", with("group", json!("{tag}"))),
        ("group", with("group", json!(""))),
        ("group", with("group", json!("g".repeat(65)))),
        ("handler", with("handler", json!(""))),
        ("handler", json!({"name": "n", "group": "val"})),
        (
            "params",
            with("params", json!({"blob": "x".repeat(70 * 1024)})),
        ),
        ("timeout_ms", with("timeout_ms", json!("fast"))),
        ("timeout_ms", with("timeout_ms", json!(0))),
        ("timeout_ms", with("timeout_ms", json!(-5))),
        ("max_attempts", with("max_attempts", json!(0))),
        ("max_attempts", with("max_attempts", json!(1.5))),
        ("enabled", with("enabled", json!("yes"))),
        ("id", with("id", json!("chosen-by-me"))),
        ("version", with("version", json!(7))),
        ("misfire_policy", with("misfire_policy", json!("sometimes"))),
        ("concurrency", with("concurrency", json!("maybe"))),
        (
            "routing.shards",
            with("routing", json!({"mode": "sharded", "shards": 0})),
        ),
        (
            "routing.mode",
            with("routing", json!({"mode": "everywhere"})),
        ),
        (
            "concurrency",
            with("routing", json!({"mode": "broadcast"}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("concurrency".into(), json!("replace"));
                    Value::Object(o)
                })
                .unwrap(),
        ),
        ("labels", with("labels", json!(["not", "a", "map"]))),
        ("children", with("children", json!(["not a job id"]))),
        ("surprise", with("surprise", json!(true))),
        ("body", json!("just a string")),
    ];
    for (field, body) in &cases {
        let a = api.call("POST", "/jobs", Some(body)).await.unwrap();
        assert!(
            (400..500).contains(&a.status),
            "{field}: expected 4xx, got {} {:?}",
            a.status,
            a.body
        );
        let err = &a.body["error"];
        assert_eq!(err["field"], json!(field), "wrong field for {body}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert!(err["code"].is_string(), "{err}");
    }
    // Malformed JSON, a body over the limit, a non-JSON content type.
    let a = api
        .raw("POST", "/api/v1/jobs", Some("{\"name\": ".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("body"))
    );
    let huge = format!(
        "{{\"name\":\"n\",\"handler\":\"h\",\"description\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let a = api.raw("POST", "/api/v1/jobs", Some(huge)).await.unwrap();
    assert_eq!(a.status, 413, "{:?}", a.body);
    assert_eq!(
        keys(&url, &prefix).await,
        Vec::<String>::new(),
        "invalid input wrote keys"
    );

    // A valid job, then invalid changes to it: refused, job unchanged.
    let job = api.create_job(&valid()).await;
    let id = job["id"].as_str().unwrap();
    let before = keys(&url, &prefix).await;
    for (field, patch) in [
        ("schedule", json!({"schedule": "not cron"})),
        ("timezone", json!({"timezone": "Nowhere/City"})),
        ("group", json!({"group": "other"})),
        ("params", json!({"params": {"blob": "x".repeat(70 * 1024)}})),
        ("max_attempts", json!({"max_attempts": "three"})),
    ] {
        let a = api
            .call("PATCH", &format!("/jobs/{id}"), Some(&patch))
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{patch}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], json!(field));
    }
    let after = api.call("GET", &format!("/jobs/{id}"), None).await.unwrap();
    assert_eq!(
        after.body["version"], job["version"],
        "a refused PATCH changed the job"
    );
    assert_eq!(after.body["schedule"], job["schedule"]);
    let mut k1 = before.clone();
    let mut k2 = keys(&url, &prefix).await;
    k1.sort();
    k2.sort();
    // Only what the job's ticks write may have appeared meanwhile: run records and their
    // indexes, the stream and its index of unacknowledged entries; and the group's backfill
    // marker, which its scheduler writes once it holds the new group.
    let layout = dotjob_shared::Keys::new(prefix.as_str());
    let (runs, job_runs) = (layout.run("val", ""), layout.job_runs("val", ""));
    let (stream, active) = (layout.stream("val"), layout.active("val"));
    let of_ticks = |k: &String| {
        k.starts_with(&runs)
            || k.starts_with(&job_runs)
            || *k == layout.group_runs("val")
            || *k == layout.backfilled("val")
            || *k == stream
            || *k == active
    };
    k2.retain(|k| !of_ticks(k));
    k1.retain(|k| !of_ticks(k));
    assert_eq!(k1, k2);

    // Unknown ids are 404 with the same error shape; unknown routes too.
    for path in [
        "/jobs/01nosuchjob",
        "/jobs/NOT%20AN%20ID",
        "/runs/01nosuchjob-1",
        "/nope",
    ] {
        let a = api.call("GET", path, None).await.unwrap();
        assert_eq!(a.status, 404, "{path}: {:?}", a.body);
        assert_eq!(a.body["error"]["code"], "not_found", "{path}");
    }
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test]
async fn schedule_preview_shows_next_fires_in_the_zone() {
    let url = shared_redis();
    let prefix = unique_prefix("preview");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    let a = api
        .call(
            "POST",
            "/schedule/preview",
            Some(&json!({"schedule": "30 9 * * MON-FRI", "timezone": "Europe/Berlin", "count": 5})),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    let local = a.body["fires_local"].as_array().unwrap();
    assert_eq!(local.len(), 5);
    assert!(
        local
            .iter()
            .all(|t| t.as_str().unwrap().contains("T09:30:00.000+0")),
        "{local:?}"
    );
    let a = api
        .call(
            "POST",
            "/schedule/preview",
            Some(&json!({"schedule": "bad", "count": 5})),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("schedule"))
    );
    sched.shutdown().await;
}

#[tokio::test]
async fn every_lua_script_compiles_in_redis() {
    let mut c = raw_conn(&shared_redis()).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/lua");
    let on_disk = std::fs::read_dir(&dir).unwrap().count() - 1; // prelude.lua is prepended to the others
    let all = dotjob_shared::scripts::all();
    assert_eq!(
        all.len(),
        on_disk,
        "a script in {} is not listed in scripts::all()",
        dir.display()
    );
    for (name, script) in all {
        let loaded: redis::RedisResult<String> = script.prepare_invoke().load_async(&mut c).await;
        assert!(loaded.is_ok(), "{name} does not compile: {loaded:?}");
    }
}
