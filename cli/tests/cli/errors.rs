//! Output and exit codes: `-o json` is one valid document, an API validation error is exit
//! code 2 with the server's message and field, not found is 3, a missing token 4, an
//! unreachable server 5.

use dotjob_scheduler::ApiOptions;
use dotjob_scheduler::api::auth::Secret;
use dotjob_tests::{InProcess, delete_prefix, shared_redis, unique_prefix};
use serde_json::json;

use crate::support::{Setup, dotjob};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_exit_codes() {
    let setup = Setup::start("cli-errors").await;
    let job = setup
        .api
        .create_job(
            &json!({"name": "listed", "group": "e", "handler": "ok", "schedule": "@hourly"}),
        )
        .await;
    let id = job["id"].as_str().unwrap();

    // -o json: one document with a final newline, for lists and single objects alike.
    for args in [
        vec!["jobs", "list", "--group", "e", "-o", "json"],
        vec!["jobs", "get", "e/listed", "-o", "json"],
        vec!["groups", "-o", "json"],
        vec!["preview", "@hourly", "-n", "3", "-o", "json"],
        vec!["runs", "list", "--job", id, "-o", "json"],
    ] {
        let out = setup.dotjob(&args).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(out.stdout.ends_with('\n'), "{args:?}: {:?}", out.stdout);
        out.json();
    }
    let list = setup
        .dotjob(&["jobs", "list", "--group", "e", "-o", "json"])
        .await
        .json();
    assert_eq!(list[0]["id"], id);
    let preview = setup
        .dotjob(&["preview", "@hourly", "-n", "3", "-o", "json"])
        .await
        .json();
    assert_eq!(preview["fires"].as_array().unwrap().len(), 3);

    // Quick edits: a typed value, a label entry; pause shows in the table answer.
    let out = setup
        .dotjob(&[
            "jobs",
            "edit",
            "e/listed",
            "--set",
            "timeout_ms=5000",
            "--set",
            "labels.tier=1",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let edited = out.json();
    assert_eq!(edited["timeout_ms"], 5000);
    assert_eq!(edited["labels"], json!({"tier": "1"}));
    let out = setup.dotjob(&["jobs", "pause", id]).await;
    assert!(out.stdout.contains("paused"), "{out:?}");

    // A validation error: exit 2, one line naming the message and the field.
    let out = setup
        .dotjob_stdin(
            &["jobs", "create", "-f", "-"],
            r#"{"name": "x", "handler": "ok", "timezone": "Mars/Base"}"#,
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: unknown IANA time zone"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.trim_end().ends_with("(field: timezone)"),
        "{}",
        out.stderr
    );

    // Not found: 3.
    let out = setup.dotjob(&["jobs", "get", "e/missing"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let out = setup.dotjob(&["runs", "get", "0nosuchrun-1"]).await;
    assert_eq!(out.code, 3, "{out:?}");

    // Delete refuses without --yes when nobody can confirm.
    let out = setup.dotjob(&["jobs", "delete", id]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(setup.dotjob(&["jobs", "delete", id, "--yes"]).await.code, 0);
    assert_eq!(setup.dotjob(&["jobs", "get", id]).await.code, 3);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_connection_failures_have_their_codes() {
    let redis = shared_redis();
    let prefix = unique_prefix("cli-auth");
    let opts = ApiOptions {
        admin_token: Some(Secret::new("cli-admin-token")),
        ..ApiOptions::default()
    };
    let sched = InProcess::start_api(&redis, &prefix, opts).await;
    dotjob_tests::Api::new(&sched.base).wait_ready().await;
    let out = dotjob(&sched.base, &["groups"], None).await;
    assert_eq!(out.code, 4, "{out:?}");
    let out = dotjob(&sched.base, &["groups", "--token", "cli-admin-token"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    sched.shutdown().await;
    delete_prefix(&redis, &prefix).await;

    // Nothing listens there any more.
    let port = dotjob_tests::free_port();
    let out = dotjob(&format!("http://127.0.0.1:{port}"), &["groups"], None).await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: cannot talk to http://127.0.0.1:"),
        "{}",
        out.stderr
    );
}
