//! Redis that can lose data or fill up: an evicting `maxmemory-policy` is refused at start
//! (exit code 2 and one line) unless `DOTJOB_ALLOW_EVICTION` is set; a Redis over its
//! `maxmemory` makes job writes and triggers answer 503 naming the cause, `/readyz` 503,
//! is counted and logged once per backoff step, and once memory is freed every tick that
//! came due meanwhile fires exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use dotjob_tests::{Api, Proc, RedisServer, free_port, ms, raw_conn, spawn_scheduler, wait_for};
use serde_json::json;

async fn config_set(url: &str, name: &str, value: &str) {
    let mut c = raw_conn(url).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(&mut c)
        .await
        .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
}

/// `dotjob-scheduler` and `dotjob-worker` against `url`, with `env` added.
fn start_both(url: &str, env: &[(&str, &str)]) -> (Proc, Proc) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut s_env = vec![
        ("REDIS_URL", url),
        ("DOTJOB_LISTEN", listen.as_str()),
        ("DOTJOB_EMBEDDED_WORKER", "off"),
    ];
    s_env.extend_from_slice(env);
    let s = Proc::spawn("dotjob-scheduler", &[], &s_env);
    let mut w_env = vec![("REDIS_URL", url)];
    w_env.extend_from_slice(env);
    let w = Proc::spawn("dotjob-worker", &["--group", "ev"], &w_env);
    (s, w)
}

/// The refusal: exit code 2, one line naming the policy and the reason.
fn assert_refused(p: &mut Proc, policy: &str) {
    let code = p.wait_exit(Duration::from_secs(30)).unwrap();
    let log = p.log();
    assert_eq!(code, Some(2), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("maxmemory-policy"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(&format!("`{policy}`")), "{log}");
    assert!(
        lines[0].contains("silently delete job definitions and run records"),
        "{log}"
    );
    assert!(lines[0].contains("DOTJOB_ALLOW_EVICTION"), "{log}");
}

#[tokio::test]
async fn an_evicting_redis_is_refused_at_start_unless_allowed() {
    let redis = RedisServer::start();
    let url = redis.url();
    config_set(&url, "maxmemory-policy", "allkeys-lru").await;

    let (mut s, mut w) = start_both(&url, &[]);
    assert_refused(&mut s, "allkeys-lru");
    assert_refused(&mut w, "allkeys-lru");

    // A user without CONFIG (managed Redis, ACLs): the policy is read from INFO memory.
    let mut c = raw_conn(&url).await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all", "-config",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let app_url = format!("redis://app:app-pw@127.0.0.1:{}", redis.port());
    let (mut s, mut w) = start_both(&app_url, &[]);
    assert_refused(&mut s, "allkeys-lru");
    assert_refused(&mut w, "allkeys-lru");
    assert!(w.log().contains("INFO memory"), "{}", w.log());

    // With the override both start, and warn.
    let (s, mut w) = start_both(&url, &[("DOTJOB_ALLOW_EVICTION", "1")]);
    let started = |p: &Proc, what: &'static str| {
        let log = p.log();
        (log.contains(what) && log.contains("allowed by DOTJOB_ALLOW_EVICTION")).then_some(())
    };
    wait_for("the worker to start", Duration::from_secs(30), || async {
        started(&w, "worker started")
    })
    .await;
    wait_for(
        "the scheduler to start",
        Duration::from_secs(30),
        || async { started(&s, "admin API and console listening") },
    )
    .await;
    assert!(w.is_running(), "{}", w.log());

    // `noeviction` needs no override and draws no warning.
    config_set(&url, "maxmemory-policy", "noeviction").await;
    let w2 = Proc::spawn("dotjob-worker", &["--group", "ev"], &[("REDIS_URL", &url)]);
    wait_for("a worker to start", Duration::from_secs(30), || async {
        w2.log().contains("worker started").then_some(())
    })
    .await;
    assert!(!w2.log().contains("maxmemory-policy"), "{}", w2.log());

    // The policy changes under a running worker, which loses its connections: it checks
    // again on reconnecting, and stops.
    let mut w2 = w2;
    config_set(&url, "maxmemory-policy", "volatile-lru").await;
    let mut c = raw_conn(&url).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_refused(&mut w2, "volatile-lru");
    assert!(w.is_running(), "the allowed worker stopped:\n{}", w.log());
}

/// `used_memory` of the server.
async fn used_memory(url: &str) -> u64 {
    let mut c = raw_conn(url).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// The Redis server clock, in ms.
async fn redis_now(url: &str) -> i64 {
    let mut c = raw_conn(url).await;
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    s * 1_000 + us / 1_000
}

#[tokio::test]
async fn a_full_redis_answers_503_and_every_tick_fires_once_after() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let other = api
        .create_job(&json!({"name": "other", "group": "oom", "handler": "noop"}))
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    let ticking = api
        .create_job(
            &json!({"name": "tick", "group": "oom", "handler": "noop", "schedule": "@every 1s"}),
        )
        .await;
    let ticking = ticking["id"].as_str().unwrap().to_owned();
    wait_for("two ticks", Duration::from_secs(20), || async {
        (api.runs(&ticking).await.len() >= 2).then_some(())
    })
    .await;
    let readyz = async || {
        let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    // Over the limit: `maxmemory` below what is used, so no write can slip in when a
    // client's buffers are freed (what let writes through when the limit was set just
    // above the usage and junk pushed it over: Redis refused the junk's last write, freed
    // its 100 KB query buffer, and was under the limit again).
    let used = used_memory(&url).await;
    config_set(&url, "maxmemory", &(used / 2).to_string()).await;
    let full_at = redis_now(&url).await;

    // The same job write, refused while Redis is full and accepted once it is not.
    let new_job = json!({"name": "new", "group": "oom", "handler": "noop"});
    let a = api.call("POST", "/jobs", Some(&new_job)).await.unwrap();
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "unavailable", "{:?}", a.body);
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Redis is out of memory"), "{msg}");
    let a = api
        .call("POST", &format!("/jobs/{other}/trigger"), None)
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Redis is out of memory"),
        "{:?}",
        a.body
    );
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("out of memory"), "{body}");

    // Full for 6 s: ticks come due and cannot be fired.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let oom = metrics
        .lines()
        .find(|l| l.starts_with("dotjob_redis_errors_total{") && l.contains("kind=\"oom\""))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // Two API refusals and the scheduling rounds refused meanwhile.
    assert!(
        oom >= 4.0,
        "dotjob_redis_errors_total{{kind=oom}} = {oom}\n{metrics}"
    );
    // Logged once, then once per backoff step (at 0, 1, 3 s …), not once per round.
    let log = s.log();
    let first = log
        .matches("Redis is out of memory (maxmemory reached) and refuses")
        .count();
    let again = log.matches("Redis is still out of memory").count();
    assert!(first >= 1, "{log}");
    assert!(
        first + again <= 5,
        "{first} + {again} lines about memory in 6 s:\n{log}"
    );

    // Freed: writes and readiness come back; the ticks that came due fire, each once.
    config_set(&url, "maxmemory", "0").await;
    let freed_at = redis_now(&url).await;
    wait_for("readyz to turn 200", Duration::from_secs(10), || async {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
    let a = api.call("POST", "/jobs", Some(&new_job)).await.unwrap();
    assert_eq!(a.status, 201, "{:?}", a.body);
    let runs = wait_for(
        "the missed ticks to fire",
        Duration::from_secs(20),
        || async {
            let runs = api.runs(&ticking).await;
            runs.iter()
                .any(|r| ms(&r["scheduled_at"]) > freed_at + 1_000)
                .then_some(runs)
        },
    )
    .await;
    let ids: BTreeSet<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), runs.len(), "a run id twice");
    let mut ticks: Vec<i64> = runs.iter().map(|r| ms(&r["scheduled_at"])).collect();
    ticks.sort_unstable();
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1_000,
            "ticks missing or fired twice: {ticks:?}"
        );
    }
    let during = ticks
        .iter()
        .filter(|&&t| t > full_at && t <= freed_at)
        .count();
    assert!(during >= 5, "{during} ticks came due while full: {ticks:?}");
}
