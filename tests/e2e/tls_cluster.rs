//! TLS and ACL on a Redis Cluster: a TLS-only 3-master cluster (mutual TLS, cluster bus
//! over TLS) with the README's ACL user on every node; a scheduler and stock workers logged
//! in as that user run every-second jobs in groups on at least two masters, each tick once,
//! and no node's `ACL LOG` shows a refusal but the eviction guard's `CONFIG GET`.

use std::collections::BTreeSet;
use std::time::Duration;

use dotjob_shared::Keys;
use dotjob_tests::{Api, Proc, RedisCluster, spawn_scheduler, wait_for};
use serde_json::json;

use crate::common::assert_every_tick_once;
use crate::tls::{PASSWORD, documented_acl};

const PREFIX: &str = "tlsjob";

/// Runs `args` as a command on every node as the `default` user.
fn on_every_node(cluster: &RedisCluster, args: &[String]) {
    for port in cluster.ports() {
        let mut c = cluster.node(port).expect("connect to a node");
        let () = redis::cmd(&args[0])
            .arg(&args[1..])
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{args:?} on {port}: {e}"));
    }
}

/// `ACL LOG` objects of the node on `port`.
fn acl_log(cluster: &RedisCluster, port: u16) -> Vec<(String, String)> {
    let mut c = cluster.node(port).expect("connect to a node");
    let entries: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .arg(1000)
        .query(&mut c)
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

#[tokio::test]
async fn tls_cluster_runs_jobs_on_several_masters_as_the_documented_acl_user() {
    let cluster = RedisCluster::start_tls(3, true);
    // Three groups on at least two masters.
    let keys = Keys::new(PREFIX);
    let mut groups: Vec<(String, u16)> = Vec::new();
    for i in 0.. {
        let g = format!("g{i}");
        let master = cluster
            .master_of(cluster.keyslot(&keys.group_prefix(&g)))
            .expect("a master for the slot");
        groups.push((g, master));
        let masters: BTreeSet<u16> = groups.iter().map(|(_, m)| *m).collect();
        if groups.len() >= 3 && masters.len() >= 2 {
            break;
        }
    }
    let groups: Vec<String> = groups.into_iter().map(|(g, _)| g).collect();

    let mut acl = vec!["ACL".to_owned()];
    acl.extend(documented_acl(PREFIX));
    on_every_node(&cluster, &acl);
    on_every_node(&cluster, &["ACL".to_owned(), "LOG".into(), "RESET".into()]);

    let file = |n: &str| cluster.file(n).display().to_string();
    let url = cluster.url();
    assert!(url.starts_with("rediss://") && url.contains(','), "{url}");
    let env: Vec<(&str, String)> = vec![
        ("REDIS_CA_FILE", file("ca.crt")),
        ("REDIS_CERT_FILE", file("client.crt")),
        ("REDIS_KEY_FILE", file("client.key")),
        ("REDIS_USERNAME", "dotjob".to_owned()),
        ("REDIS_PASSWORD", PASSWORD.to_owned()),
        ("DOTJOB_HOUSEKEEPING_INTERVAL", "1s".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (sched, base) = spawn_scheduler(&url, PREFIX, &env);
    let mut wenv = env.clone();
    wenv.push(("REDIS_CLUSTER_URLS", &url));
    wenv.push(("DOTJOB_PREFIX", PREFIX));
    wenv.push(("DOTJOB_SHELL_ALLOW", "true"));
    let workers: Vec<Proc> = groups
        .iter()
        .map(|g| Proc::spawn("dotjob-worker", &["--group", g], &wenv))
        .collect();

    let api = Api::new(&base);
    api.wait_ready().await;
    let mut jobs = Vec::new();
    for g in &groups {
        let j = api
            .create_job(
                &json!({"name": format!("tick-{g}"), "group": g, "handler": "shell",
                "params": {"command": ["true"]}, "schedule": "*/1 * * * * *"}),
            )
            .await;
        jobs.push(j["id"].as_str().expect("job id").to_owned());
    }
    for j in &jobs {
        wait_for(
            &format!("3 succeeded runs of {j} over TLS"),
            Duration::from_secs(40),
            || {
                let api = api.clone();
                let j = j.clone();
                async move {
                    let runs = api.runs(&j).await;
                    (runs.iter().filter(|r| r["status"] == "succeeded").count() >= 3).then_some(())
                }
            },
        )
        .await;
    }
    // Pause, let the runs settle, and count: every run succeeded, each tick once.
    let mut total = 0;
    for j in &jobs {
        let a = api
            .call("POST", &format!("/jobs/{j}/pause"), None)
            .await
            .expect("pause");
        assert_eq!(a.status, 200, "{}", a.body);
    }
    for j in &jobs {
        let runs = crate::common::settled_runs(&api, j, Duration::from_secs(30)).await;
        for r in &runs {
            assert_eq!(r["status"], "succeeded", "job {j}: {r}");
            assert!(r["worker"].as_str().is_some_and(|w| !w.is_empty()), "{r}");
        }
        total += assert_every_tick_once(j, &runs).len();
    }
    assert!(total >= 9, "{total} runs");
    for path in ["/groups", "/stats", "/jobs"] {
        let a = api.call("GET", path, None).await.expect("answer");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }

    // No node refused anything but the eviction guard's CONFIG GET.
    let mut config_get = 0;
    for port in cluster.ports() {
        let log = acl_log(&cluster, port);
        let refused: Vec<&(String, String)> =
            log.iter().filter(|(_, o)| o != "config|get").collect();
        assert!(refused.is_empty(), "node {port} refused: {refused:?}");
        config_get += log.iter().filter(|(_, o)| o == "config|get").count();
    }
    assert!(
        config_get > 0,
        "no node refused the eviction guard's CONFIG GET (is the user restricted?)"
    );
    for p in workers.iter().chain([&sched]) {
        let log = p.log();
        assert!(!log.contains("NOPERM") && !log.contains("NoPerm"), "{log}");
    }
}
