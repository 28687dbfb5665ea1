//! The stock handlers as an attacker who may only define and trigger jobs sees them: the
//! `shell` allow-list runs the listed programs' own code and nothing else, whatever the
//! job's `env`, `cwd` or `command[0]` say, and statically bad `shell` and `http` params are
//! refused when the job is written.

use std::path::Path;
use std::time::Duration;

use dotjob_tests::{Api, InProcess, Proc, delete_prefix, shared_redis, unique_prefix};
use serde_json::{Value, json};

/// Writes an executable script `name` into `dir` that creates `marker` when run.
fn plant(dir: &Path, name: &str, marker: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\ntouch '{}'\necho planted\n", marker.display()),
    )
    .expect("plant");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Triggers `job` with `params` and waits for the run's final record.
async fn run_with(api: &Api, job: &str, params: &Value) -> Value {
    let run = api.trigger(job, Some(params)).await;
    api.wait_run_final(&run, Duration::from_secs(20)).await
}

async fn log_of(api: &Api, run: &Value) -> Vec<String> {
    let id = run["id"].as_str().expect("run id");
    let a = api
        .call("GET", &format!("/runs/{id}/logs"), None)
        .await
        .expect("logs");
    serde_json::from_value(a.body["lines"].clone()).expect("lines")
}

#[tokio::test]
async fn shell_runs_only_the_allowed_programs_own_code() {
    let url = shared_redis();
    let prefix = unique_prefix("sec-shell");
    let planted = tempfile::tempdir().expect("tempdir");
    let allowed_cwd = tempfile::tempdir().expect("tempdir");
    let marker = planted.path().join("marker");
    plant(planted.path(), "date", &marker);
    plant(allowed_cwd.path(), "date", &marker);
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;

    // Statically bad params are refused at write time, naming the field.
    for (params, field) in [
        (
            json!({"command": ["date"], "env": {"PATH": planted.path()}}),
            "params.env.PATH",
        ),
        (
            json!({"command": ["date"], "env": {"LD_PRELOAD": "/tmp/x.so"}}),
            "params.env.LD_PRELOAD",
        ),
        (json!({"command": ["./date"]}), "params.command[0]"),
        (json!({"command": "date -u"}), "params.command"),
        (json!({"command": []}), "params.command"),
    ] {
        let a = api
            .call(
                "POST",
                "/jobs",
                Some(&json!({"name": "bad", "group": "sec", "handler": "shell", "params": params})),
            )
            .await
            .expect("create");
        assert_eq!(a.status, 400, "{params}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], field, "{params}: {:?}", a.body);
    }
    let listed = api
        .call("GET", "/jobs?group=sec", None)
        .await
        .expect("list");
    assert_eq!(
        listed.body["items"],
        json!([]),
        "a refused write wrote something"
    );

    let job = api
        .create_job(&json!({"name": "clock", "group": "sec", "handler": "shell",
            "max_attempts": 3, "params": {"command": ["date", "-u"]}}))
        .await;
    let job = job["id"].as_str().expect("id").to_owned();
    let cwd_allow = allowed_cwd.path().to_str().expect("utf-8 path");
    let _worker = Proc::spawn(
        "dotjob-worker",
        &["--group", "sec"],
        &[
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_PREFIX", prefix.as_str()),
            ("DOTJOB_SHELL_ALLOW", "date,sh"),
            ("DOTJOB_SHELL_CWD_ALLOW", cwd_allow),
        ],
    );

    // Trigger overrides reach the worker unchecked by the API: the worker refuses them.
    let planted_dir = planted.path().to_str().expect("utf-8 path");
    let planted_date = planted.path().join("date");
    for (params, why) in [
        (
            json!({"command": ["date"], "env": {"PATH": planted_dir}}),
            "params.env.PATH",
        ),
        (
            json!({"command": ["date"], "env": {"LD_PRELOAD": planted.path().join("evil.so")}}),
            "params.env.LD_PRELOAD",
        ),
        (
            json!({"command": ["./date"], "cwd": planted_dir}),
            "relative path",
        ),
        (
            json!({"command": ["date"], "cwd": planted_dir}),
            "outside the folders in DOTJOB_SHELL_CWD_ALLOW",
        ),
        (
            json!({"command": [planted_date]}),
            "not in DOTJOB_SHELL_ALLOW",
        ),
        (
            json!({"command": ["date"], "cwd": planted.path().join("missing")}),
            "not an existing folder",
        ),
    ] {
        let r = run_with(&api, &job, &params).await;
        assert_eq!(r["status"], "failed", "{params}: {r}");
        assert_eq!(r["attempt"], 1, "a refusal is not retried: {r}");
        let err = r["error"].as_str().unwrap_or("");
        assert!(
            err.contains(why),
            "{params}: error {err:?} should say {why:?}"
        );
        assert!(!marker.exists(), "{params} ran the planted program");
    }

    // An allowed cwd holding a same-named program still runs the allow-listed one.
    let r = run_with(
        &api,
        &job,
        &json!({"command": ["date", "-u"], "cwd": cwd_allow}),
    )
    .await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(!marker.exists(), "the cwd's planted program ran");
    assert!(!log_of(&api, &r).await.contains(&"planted".to_owned()));

    // An allowed program runs with the variables a job may set, and does not see the
    // worker's own credentials.
    let r = run_with(
        &api,
        &job,
        &json!({"command": ["sh", "-c", "echo \"greeting=$GREETING\"; env"], "env": {"GREETING": "hello"}}),
    )
    .await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let log = log_of(&api, &r).await;
    assert!(log.contains(&"greeting=hello".to_owned()), "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with("DOTJOB_RUN_ID=")),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.starts_with("REDIS_URL=") || l.starts_with("DOTJOB_PREFIX=")),
        "the worker's settings leaked into the program: {log:?}"
    );
    assert!(!marker.exists());

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
