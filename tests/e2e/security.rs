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

/// Every string Redis holds under `prefix`: key names and the values of every type.
async fn redis_dump(url: &str, prefix: &str) -> Vec<String> {
    let mut c = dotjob_tests::raw_conn(url).await;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .expect("scan");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(keys.len() > 5, "too few keys to be a real scan: {keys:?}");
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .expect("type");
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .expect("get"),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("hgetall"),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await
                .expect("lrange"),
            "set" => redis::cmd("SMEMBERS")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("smembers"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut c)
                .await
                .expect("zrange"),
            "stream" => {
                let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut c)
                    .await
                    .expect("xrange");
                entries
                    .into_iter()
                    .flat_map(|(id, f)| std::iter::once(id).chain(f))
                    .collect()
            }
            other => panic!("key {k} of unexpected type {other}"),
        };
        out.push(k);
        out.extend(values);
    }
    out
}

#[tokio::test]
async fn secrets_reach_the_handler_and_nothing_else() {
    let url = shared_redis();
    let prefix = unique_prefix("sec-secret");
    let env_value = format!("env-canary-{}", rand::random::<u64>());
    let file_value = format!("file-canary-{}", rand::random::<u64>());
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets_file = dir.path().join("secrets");
    std::fs::write(
        &secrets_file,
        format!("# test secrets\nFILE_TOKEN={file_value}\n"),
    )
    .expect("write");
    let seen = dir.path().join("seen");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let job = api
        .create_job(&json!({"name": "uses-secrets", "group": "secret", "handler": "shell",
            "params": {
                "command": ["sh", "-c",
                    format!("printf '%s %s' \"$ENV_TOKEN\" \"$FILE_TOKEN\" > '{}'; echo \"token=$ENV_TOKEN\"; echo \"$FILE_TOKEN\" >&2", seen.display())],
                "env": {"ENV_TOKEN": {"$secret": "ENV_TOKEN"}, "FILE_TOKEN": {"$secret": "FILE_TOKEN"}},
            }}))
        .await;
    let job = job["id"].as_str().expect("id").to_owned();
    let secret_env = format!("DOTJOB_SECRET_ENV_TOKEN={env_value}");
    let (secret_var, secret_val) = secret_env.split_once('=').expect("=");
    let _worker = Proc::spawn(
        "dotjob-worker",
        &["--group", "secret"],
        &[
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_PREFIX", prefix.as_str()),
            ("DOTJOB_SHELL_ALLOW", "sh"),
            (
                "DOTJOB_SECRETS_FILE",
                secrets_file.to_str().expect("utf-8 path"),
            ),
            (secret_var, secret_val),
        ],
    );
    let run = api.trigger(&job, None).await;
    let r = api.wait_run_final(&run, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    // The handler had the values...
    let got = std::fs::read_to_string(&seen).expect("the program wrote what it saw");
    assert_eq!(got, format!("{env_value} {file_value}"));
    // ... the log shows them masked ...
    let mut log = log_of(&api, &r).await;
    log.sort();
    assert_eq!(log, ["[stderr] ***", "token=***"], "{log:?}");
    // ... and a missing secret fails the run, naming it, not retried.
    let missing = run_with(
        &api,
        &job,
        &json!({"command": ["sh", "-c", "true"], "env": {"X": {"$secret": "NOT_CONFIGURED"}}}),
    )
    .await;
    assert_eq!(missing["status"], "failed", "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .unwrap_or("")
            .contains("`NOT_CONFIGURED` is not set"),
        "{missing}"
    );

    // No trace of either value in Redis or in any API answer about the job and its runs.
    let mut seen_text = redis_dump(&url, &prefix).await;
    let missing_id = missing["id"].as_str().expect("id");
    for path in [
        format!("/jobs/{job}"),
        format!("/jobs/{job}/runs"),
        format!("/runs/{run}"),
        format!("/runs/{run}/logs"),
        format!("/runs/{missing_id}"),
        format!("/runs/{missing_id}/logs"),
        "/jobs?group=secret".to_owned(),
        "/groups".to_owned(),
        "/groups/secret/executors".to_owned(),
        "/groups/secret/dead".to_owned(),
        format!("/stats?job={job}"),
    ] {
        let a = api.call("GET", &path, None).await.expect("get");
        assert_eq!(a.status, 200, "{path}: {:?}", a.body);
        seen_text.push(a.body.to_string());
    }
    let job_answer = api
        .call("GET", &format!("/jobs/{job}"), None)
        .await
        .expect("job");
    assert_eq!(
        job_answer.body["params"]["env"]["ENV_TOKEN"],
        json!({"$secret": "ENV_TOKEN"}),
        "the API shows the reference"
    );
    for text in &seen_text {
        assert!(
            !text.contains(&env_value) && !text.contains(&file_value),
            "a secret value leaked: {text}"
        );
    }

    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
