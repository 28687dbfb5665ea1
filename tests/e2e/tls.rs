//! TLS and ACL: a scheduler and a stock worker on a TLS-only Redis (mutual TLS), logged in
//! as the ACL user the README documents, run the spine's flow; a wrong password, a bad CA
//! file, an untrusted server certificate or a Sentinel setting is one clear line and exit
//! code 2.

use std::collections::HashMap;
use std::time::Duration;

use dotjob_tests::{Api, Proc, TlsRedis, spawn_scheduler, wait_for};
use serde_json::json;

pub(crate) const PASSWORD: &str = "tls-test-pass";

/// The README's `ACL SETUSER` block for `prefix`, as command arguments (password set).
pub(crate) fn documented_acl(prefix: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let section = readme
        .split("### Redis TLS and ACL")
        .nth(1)
        .expect("a Redis TLS and ACL section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a text block");
    assert!(block.starts_with("ACL SETUSER dotjob "), "{block}");
    block
        .split_whitespace()
        .skip(1)
        .map(|w| {
            w.replace(">CHANGE-ME", &format!(">{PASSWORD}"))
                .replace("dotjob:*", &format!("{prefix}:*"))
        })
        .collect()
}

/// Creates the documented user on `redis`.
async fn create_user(redis: &TlsRedis, prefix: &str) {
    let mut admin = redis.admin().await;
    let args = documented_acl(prefix);
    let _: () = redis::cmd("ACL")
        .arg(&args)
        .query_async(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("ACL {args:?}: {e}"));
}

/// `ACL LOG` as (reason, object) pairs.
async fn acl_log(redis: &TlsRedis) -> Vec<(String, String)> {
    let mut admin = redis.admin().await;
    let entries: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .arg(1000)
        .query_async(&mut admin)
        .await
        .expect("ACL LOG");
    let text = |v: Option<&redis::Value>| {
        v.and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .unwrap_or_default()
    };
    entries
        .iter()
        .map(|e| (text(e.get("reason")), text(e.get("object"))))
        .collect()
}

/// TLS environment for a process: CA, client certificate and key.
fn tls_env(redis: &TlsRedis) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_CA_FILE", redis.file("ca.crt").display().to_string()),
        (
            "REDIS_CERT_FILE",
            redis.file("client.crt").display().to_string(),
        ),
        (
            "REDIS_KEY_FILE",
            redis.file("client.key").display().to_string(),
        ),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn spine_runs_over_mutual_tls_as_the_documented_acl_user() {
    let redis = TlsRedis::start(true);
    let prefix = "tlsjob";
    create_user(&redis, prefix).await;

    // The user can do nothing outside the prefix, nor anything dotjob does not need.
    let mut user = redis
        .conn_as(&redis.url_as("dotjob", PASSWORD))
        .await
        .expect("the documented user logs in");
    let other: redis::RedisResult<Option<String>> = redis::cmd("HGET")
        .arg("other:key")
        .arg("f")
        .query_async(&mut user)
        .await;
    assert!(
        other.as_ref().is_err_and(|e| e.code() == Some("NOPERM")),
        "{other:?}"
    );
    let flush: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut user).await;
    assert!(
        flush.as_ref().is_err_and(|e| e.code() == Some("NOPERM")),
        "{flush:?}"
    );
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut redis.admin().await)
        .await
        .expect("ACL LOG RESET");

    // Scheduler: user and password from the variables; worker: from the URL.
    let mut env = tls_env(&redis);
    env.push(("REDIS_USERNAME", "dotjob".to_owned()));
    env.push(("REDIS_PASSWORD", PASSWORD.to_owned()));
    // Housekeeping (trimming, retention, reaping) every second, so its commands run too.
    env.push(("DOTJOB_HOUSEKEEPING_INTERVAL", "1s".to_owned()));
    let (sched, base) = spawn_scheduler(&redis.url(), prefix, &refs(&env));
    let mut wenv = tls_env(&redis);
    wenv.push(("REDIS_URL", redis.url_as("dotjob", PASSWORD)));
    wenv.push(("DOTJOB_PREFIX", prefix.to_owned()));
    wenv.push(("DOTJOB_SHELL_ALLOW", "true,false,echo".to_owned()));
    let worker = Proc::spawn("dotjob-worker", &["--group", "secure"], &refs(&wenv));

    let api = Api::new(&base);
    api.wait_ready().await;
    let job = api
        .create_job(
            &json!({"name": "tick", "group": "secure", "handler": "shell",
            "params": {"command": ["true"]}, "schedule": "*/1 * * * * *"}),
        )
        .await;
    let id = job["id"].as_str().expect("job id").to_owned();
    let runs = wait_for("3 succeeded runs over TLS", Duration::from_secs(30), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let runs = api.runs(&id).await;
            (runs.iter().filter(|r| r["status"] == "succeeded").count() >= 3).then_some(runs)
        }
    })
    .await;
    let mut ticks: Vec<&str> = runs
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["scheduled_at"].as_str().unwrap_or(""))
        .collect();
    let n = ticks.len();
    ticks.sort_unstable();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "a tick ran twice: {runs:?}");
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        assert!(r["worker"].as_str().is_some_and(|w| !w.is_empty()), "{r}");
    }
    // A manual trigger, and the cross-group views, go through the same user.
    let run = api.trigger(&id, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    // Log lines, a retry and a dead letter.
    let say = api
        .create_job(
            &json!({"name": "say", "group": "secure", "handler": "shell",
            "params": {"command": ["echo", "over tls"]}}),
        )
        .await;
    let run = api.trigger(say["id"].as_str().expect("id"), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let logs = api
        .call("GET", &format!("/runs/{run}/logs"), None)
        .await
        .expect("logs");
    assert!(logs.body.to_string().contains("over tls"), "{}", logs.body);
    let fail = api
        .create_job(
            &json!({"name": "fail", "group": "secure", "handler": "shell",
            "params": {"command": ["false"]}, "max_attempts": 2,
            "backoff": {"base_ms": 100, "max_ms": 200}}),
        )
        .await;
    let run = api.trigger(fail["id"].as_str().expect("id"), None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(30)).await;
    assert_eq!(r["status"], "dead", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
    for path in [
        "/groups",
        "/stats",
        "/jobs",
        "/groups/secure/executors",
        "/groups/secure/dead",
    ] {
        let a = api.call("GET", path, None).await.expect("answer");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }

    // Nothing was refused but the documented CONFIG GET of the eviction guard (and the
    // client's CLIENT SETINFO on Redis 7.2+).
    let log = acl_log(&redis).await;
    let refused: Vec<&(String, String)> = log
        .iter()
        .filter(|(_, object)| object != "config|get")
        .collect();
    assert!(refused.is_empty(), "refused by the ACL: {refused:?}");
    assert!(
        log.iter().any(|(_, o)| o == "config|get"),
        "the eviction guard's CONFIG GET was not refused (is the user restricted?): {log:?}"
    );
    for p in [&sched, &worker] {
        let log = p.log();
        assert!(!log.contains("NOPERM") && !log.contains("NoPerm"), "{log}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_line_and_exit_2() {
    let redis = TlsRedis::start(false);
    create_user(&redis, "dotjob").await;
    let mut env = tls_env(&redis);
    env.push(("REDIS_USERNAME", "dotjob".to_owned()));
    env.push(("REDIS_PASSWORD", "not-the-password".to_owned()));
    let (mut sched, _) = spawn_scheduler(&redis.url(), "dotjob", &refs(&env));
    let mut wenv = env.clone();
    wenv.push(("REDIS_URL", redis.url()));
    let mut worker = Proc::spawn("dotjob-worker", &["--group", "g"], &refs(&wenv));
    let line = "Redis refused the credentials for user `dotjob` (WRONGPASS)";
    for p in [&mut sched, &mut worker] {
        let code = p
            .wait_exit(Duration::from_secs(10))
            .expect("exits within 10 s");
        assert_eq!(code, Some(2), "{}", p.log());
        let log = p.log();
        let hits: Vec<&str> = log.lines().filter(|l| l.contains("WRONGPASS")).collect();
        assert_eq!(hits.len(), 1, "one line: {log}");
        assert!(hits[0].contains(line), "{log}");
        assert!(
            !log.contains("not-the-password"),
            "password in the log: {log}"
        );
    }
}

#[tokio::test]
async fn bad_tls_files_and_an_untrusted_server_are_refused_at_start() {
    let redis = TlsRedis::start(false);
    // A CA file that does not exist: refused before connecting.
    let (mut p, _) = spawn_scheduler(
        &redis.url(),
        "dotjob",
        &[("REDIS_CA_FILE", "/nonexistent/ca.pem")],
    );
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).expect("exits"),
        Some(2)
    );
    assert!(
        p.log()
            .contains("REDIS_CA_FILE: cannot read /nonexistent/ca.pem"),
        "{}",
        p.log()
    );
    // Sentinel is refused with the reason, not ignored.
    let (mut p, _) = spawn_scheduler(
        &redis.url(),
        "dotjob",
        &[("REDIS_SENTINEL_URLS", "redis://127.0.0.1:26379")],
    );
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).expect("exits"),
        Some(2)
    );
    assert!(
        p.log()
            .contains("REDIS_SENTINEL_URLS: Redis Sentinel is not supported yet"),
        "{}",
        p.log()
    );
    // A CA that did not sign the server's certificate: one line about TLS.
    let other = redis.file("other-ca.crt").display().to_string();
    let (mut p, _) = spawn_scheduler(&redis.url(), "dotjob", &[("REDIS_CA_FILE", &other)]);
    assert_eq!(
        p.wait_exit(Duration::from_secs(15)).expect("exits"),
        Some(2),
        "{}",
        p.log()
    );
    let log = p.log();
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS to Redis failed"))
        .collect();
    assert_eq!(hits.len(), 1, "{log}");
    assert!(hits[0].contains("REDIS_CA_FILE"), "{log}");
}
