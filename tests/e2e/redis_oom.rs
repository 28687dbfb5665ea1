//! A Redis pushed over `maxmemory`: job writes answer 503 naming the cause, `/readyz` turns
//! 503, and both recover once memory is freed.

use std::time::Duration;

use dotjob_tests::{Api, RedisServer, raw_conn, spawn_scheduler, wait_for};
use serde_json::json;

#[tokio::test]
async fn a_full_redis_gives_503_on_writes_and_readyz_until_memory_is_freed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (_s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let job = json!({"name": "j", "group": "oom", "handler": "noop"});
    api.create_job(&job).await;
    let readyz = async || {
        let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    // Fill Redis with junk past a small limit.
    let mut c = raw_conn(&url).await;
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 2_000_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let junk = "x".repeat(100_000);
    for i in 0..40 {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("junk:{i}"))
            .arg(&junk)
            .query_async(&mut c)
            .await;
        if r.is_err() {
            break;
        }
    }

    let a = api.call("POST", "/jobs", Some(&job)).await.unwrap();
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "unavailable", "{:?}", a.body);
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("out of memory"), "{msg}");
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("out of memory"), "{body}");

    // Freed: writes and readiness come back.
    for i in 0..40 {
        let _: () = redis::cmd("DEL")
            .arg(format!("junk:{i}"))
            .query_async(&mut c)
            .await
            .unwrap();
    }
    wait_for("readyz to turn 200", Duration::from_secs(10), || async {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
    let a = api.call("POST", "/jobs", Some(&job)).await.unwrap();
    assert_eq!(a.status, 201, "{:?}", a.body);
}
