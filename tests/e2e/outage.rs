//! Redis down for 10 s under a scheduler and a worker: each logs the loss once with the
//! error, then at most once per backoff step with the attempt count, and "reconnected after
//! N s" when Redis is back; `/readyz` answers 503 meanwhile and 200 after.

use std::time::{Duration, Instant};

use dotjob_tests::{Api, Proc, RedisServer, free_port, spawn_scheduler, wait_for};

async fn readyz(base: &str) -> u16 {
    match reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// The log lines written after the first `skip` bytes.
fn lines_after(log: &str, skip: usize) -> Vec<String> {
    log.get(skip..)
        .unwrap_or("")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What one process logged about the outage.
fn check_outage_log(name: &str, lines: &[String]) {
    let all = lines.join("\n");
    let count = |s: &str| lines.iter().filter(|l| l.contains(s)).count();
    assert_eq!(count("lost the connection to Redis"), 1, "{name}:\n{all}");
    let lost = lines
        .iter()
        .find(|l| l.contains("lost the connection to Redis"))
        .unwrap();
    assert!(lost.contains("error="), "{name}: no error in {lost}");
    // Once per backoff step (1, 2, 4, 8 s) in ~10 s: at most 4 more, each with the count.
    let again: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Redis still unreachable"))
        .collect();
    assert!(
        (1..=4).contains(&again.len()),
        "{name}: {} repeats:\n{all}",
        again.len()
    );
    assert!(
        again.iter().all(|l| l.contains("attempts=")),
        "{name}:\n{all}"
    );
    assert_eq!(count("reconnected to Redis after"), 1, "{name}:\n{all}");
    // Nothing else floods: every warning of the outage is one of the lines above.
    let warnings = lines.iter().filter(|l| l.contains("WARN")).count();
    assert!(
        warnings <= 1 + again.len() + 2,
        "{name}: {warnings} warnings:\n{all}"
    );
}

#[tokio::test]
async fn a_redis_outage_is_logged_per_backoff_step_and_readyz_follows() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (s, base) = spawn_scheduler(&url, "dotjob", &[]);
    let api = Api::new(&base);
    api.wait_ready().await;
    let wlisten = format!("127.0.0.1:{}", free_port());
    let w = Proc::spawn(
        "dotjob-worker",
        &["--group", "out"],
        &[
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_METRICS_LISTEN", wlisten.as_str()),
        ],
    );
    let wbase = format!("http://{wlisten}");
    for b in [&base, &wbase] {
        wait_for("readyz 200", Duration::from_secs(30), || async {
            (readyz(b).await == 200).then_some(())
        })
        .await;
    }
    let (s_skip, w_skip) = (s.log().len(), w.log().len());

    let down = Instant::now();
    redis.kill();
    for b in [&base, &wbase] {
        wait_for(
            "readyz 503 while Redis is down",
            Duration::from_secs(5),
            || async { (readyz(b).await == 503).then_some(()) },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    redis.restart();
    for b in [&base, &wbase] {
        wait_for(
            "readyz 200 after Redis is back",
            Duration::from_secs(20),
            || async { (readyz(b).await == 200).then_some(()) },
        )
        .await;
    }
    wait_for(
        "both to log the reconnection",
        Duration::from_secs(20),
        || async {
            (s.log().contains("reconnected to Redis after")
                && w.log().contains("reconnected to Redis after"))
            .then_some(())
        },
    )
    .await;
    // A second for a stray line to show up before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_outage_log("scheduler", &lines_after(&s.log(), s_skip));
    check_outage_log("worker", &lines_after(&w.log(), w_skip));
    let back = lines_after(&w.log(), w_skip)
        .into_iter()
        .find(|l| l.contains("reconnected to Redis after"))
        .unwrap();
    let secs: f64 = back
        .split("reconnected to Redis after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {back}"));
    assert!((8.0..30.0).contains(&secs), "{back}");
}
