//! `dotjob apply` / `dotjob diff`: import 1 000 jobs, re-apply without a write, a diff that
//! shows exactly one edit, and `--prune` scoped by a label selector.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::support::{Setup, jobs_of};

const JOBS: usize = 1_000;

/// A YAML file of jobs `job-0000`… of group `bulk`, labelled `suite: cli`; job
/// `job-0042` gets `extra` fields.
fn jobs_yaml(count: usize, extra: &str) -> String {
    let mut y = String::from("jobs:\n");
    for i in 0..count {
        let _ = write!(
            y,
            "  - name: job-{i:04}\n    group: bulk\n    handler: ok\n    schedule: \"0 0 1 1 *\"\n    params: {{n: {i}}}\n    labels: {{suite: cli}}\n"
        );
        if i == 42 {
            y.push_str(extra);
        }
    }
    y
}

/// id → version of every job of group `bulk`.
async fn versions(setup: &Setup) -> BTreeMap<String, u64> {
    jobs_of(&setup.api, "bulk")
        .await
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_owned(),
                j["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_imports_reapplies_diffs_and_prunes() {
    let setup = Setup::start("cli-apply").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.yaml");
    std::fs::write(&file, jobs_yaml(JOBS, "")).unwrap();
    let path = file.to_str().unwrap();

    // Import.
    let out = setup.dotjob(&["apply", "-f", path]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.last_line(),
        "1000 created, 0 updated, 0 deleted, 0 unchanged",
        "{}",
        out.stderr
    );
    // The time depends on the server and the machine; shown for the record.
    eprintln!("apply of {JOBS} jobs took {:?}", out.took);
    let before = versions(&setup).await;
    assert_eq!(before.len(), JOBS);
    let one = jobs_of(&setup.api, "bulk")
        .await
        .into_iter()
        .find(|j| j["name"] == "job-0007")
        .unwrap();
    assert_eq!(one["params"], json!({"n": 7}));
    assert_eq!(one["labels"], json!({"suite": "cli"}));

    // Re-applying the same file writes nothing: no version moves.
    let out = setup.dotjob(&["apply", "-f", path]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.last_line(),
        "0 created, 0 updated, 0 deleted, 1000 unchanged"
    );
    assert_eq!(versions(&setup).await, before);

    // One edit: the diff shows exactly it, exits 1 and changes nothing.
    std::fs::write(&file, jobs_yaml(JOBS, "    timeout_ms: 5000\n")).unwrap();
    let out = setup.dotjob(&["diff", "-f", path]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("~ bulk/job-0042 ["), "{}", out.stdout);
    assert_eq!(lines[1], "    timeout_ms: 300000 → 5000");
    assert_eq!(
        lines[2],
        "0 to create, 1 to update, 0 to delete, 999 unchanged"
    );
    let out = setup.dotjob(&["diff", "-f", path, "-o", "json"]).await;
    let d = out.json();
    assert_eq!(d["update"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(
        d["update"][0]["changes"],
        json!([{"field": "timeout_ms", "old": 300000, "new": 5000}])
    );
    assert_eq!(d["unchanged"], 999);
    assert_eq!(versions(&setup).await, before, "diff wrote something");

    // Applying it changes that job alone.
    let out = setup.dotjob(&["apply", "-f", path]).await;
    assert_eq!(
        out.last_line(),
        "0 created, 1 updated, 0 deleted, 999 unchanged",
        "{out:?}"
    );
    let after = versions(&setup).await;
    let moved: Vec<&String> = after
        .keys()
        .filter(|id| after[*id] != before[*id])
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(setup.dotjob(&["diff", "-f", path]).await.code, 0);

    // Prune: jobs with the label that the file no longer names go; others stay.
    for (name, labels) in [
        ("by-hand", json!({})),
        ("other-suite", json!({"suite": "web"})),
    ] {
        setup
            .api
            .create_job(&json!({"name": name, "group": "bulk", "handler": "ok", "labels": labels}))
            .await;
    }
    let refused = setup.dotjob(&["apply", "-f", path, "--prune"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--selector"), "{}", refused.stderr);
    let subset = dir.path().join("subset");
    std::fs::create_dir(&subset).unwrap();
    std::fs::write(
        subset.join("first.yaml"),
        jobs_yaml(900, "    timeout_ms: 5000\n"),
    )
    .unwrap();
    let sub = subset.to_str().unwrap();
    let out = setup
        .dotjob(&["diff", "-f", sub, "--prune", "--selector", "suite=cli"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.last_line(),
        "0 to create, 0 to update, 100 to delete, 900 unchanged"
    );
    let out = setup
        .dotjob(&["apply", "-f", sub, "--prune", "--selector", "suite=cli"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.last_line(),
        "0 created, 0 updated, 100 deleted, 900 unchanged"
    );
    let left = jobs_of(&setup.api, "bulk").await;
    let names: Vec<&str> = left.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(left.len(), 902, "{names:?}");
    assert!(names.contains(&"by-hand") && names.contains(&"other-suite"));
    assert!(!names.contains(&"job-0900") && names.contains(&"job-0899"));
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_bad_input_before_writing_anything() {
    let setup = Setup::start("cli-apply-bad").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "- {name: fine, group: bad, handler: ok, schedule: '@hourly'}\n- {name: broken, group: bad, handler: ok, schedule: '61 * * * *'}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        r#"{"jobs": [{"name": "zoned", "group": "bad", "handler": "ok", "timezone": "Mars/Base"}]}"#,
    )
    .unwrap();
    let out = setup
        .dotjob(&["apply", "-f", dir.path().to_str().unwrap()])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("a.yaml#2: job bad/broken:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(field: schedule)"), "{}", out.stderr);
    assert!(
        out.stderr.contains("b.json: job bad/zoned:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(field: timezone)"), "{}", out.stderr);
    assert!(
        jobs_of(&setup.api, "bad").await.is_empty(),
        "something was written"
    );

    // A refusal only the server can make names the file and the job; the rest is applied.
    std::fs::write(
        dir.path().join("a.yaml"),
        "- {name: fine, group: bad, handler: ok}\n- {name: backoff, group: bad, handler: ok, backoff: {base_ms: 0, max_ms: 1}}\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("b.json")).unwrap();
    let out = setup
        .dotjob(&["apply", "-f", dir.path().to_str().unwrap(), "-o", "json"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("a.yaml#2: job bad/backoff:")
            && out.stderr.contains("(field: backoff)"),
        "{}",
        out.stderr
    );
    let report: Value = out.json();
    assert_eq!(report["created"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["failed"][0]["name"], "backoff", "{report}");
    setup.finish().await;
}
