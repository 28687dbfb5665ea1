//! `dotjob trigger` (with `--wait`, which follows the run and every shard of it until final,
//! then prints each one's status and log lines) and `dotjob runs …`: list (of one job, or merged across jobs), get, cancel.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::args::{RunsCmd, TriggerArgs};
use crate::client::Client;
use crate::commands::jobs::resolve;
use crate::error::{Exit, Failure};
use crate::outln;
use crate::output::{self, Format, cell, clip, when};

/// How often `--wait` looks at the runs.
const WAIT_POLL: Duration = Duration::from_millis(300);
/// Jobs whose runs are read at once when listing across jobs.
const FAN_OUT: usize = 8;

/// Whether a run is final: not queued or running, and no retry pending.
pub fn is_final(run: &Value) -> bool {
    !matches!(run["status"].as_str(), Some("queued" | "running")) && run["retry_at"].is_null()
}

/// The run ids of every shard of the run `first` (itself when not sharded).
fn shard_ids(first: &Value) -> Vec<String> {
    let id = first["id"].as_str().unwrap_or_default();
    let (Some(shard), Some(shards)) = (first["shard"].as_u64(), first["shards"].as_u64()) else {
        return vec![id.to_owned()];
    };
    let suffix = format!("-s{shard}");
    let base = id.strip_suffix(&suffix).unwrap_or(id);
    (0..shards).map(|k| format!("{base}-s{k}")).collect()
}

/// `dotjob trigger`.
pub async fn trigger(client: &Client, fmt: Format, args: TriggerArgs) -> Result<Exit> {
    let id = resolve(client, &args.job).await?;
    let mut body = serde_json::Map::new();
    if let Some(p) = &args.params {
        let params: Value = serde_json::from_str(p)
            .map_err(|e| Failure::usage(format!("--params is not JSON: {e}")))?;
        body.insert("params".to_owned(), params);
    }
    if let Some(k) = &args.idempotency_key {
        body.insert("idempotency_key".to_owned(), json!(k));
    }
    let body = (!body.is_empty()).then_some(Value::Object(body));
    let answer = client
        .post(&["jobs", &id, "trigger"], body.as_ref())
        .await?;
    let run_id = answer["run_id"]
        .as_str()
        .ok_or_else(|| Failure::server("the trigger answer has no run_id"))?
        .to_owned();
    if !args.wait {
        match fmt {
            Format::Json => output::print_json(&answer),
            Format::Table if answer["replayed"] == true => {
                outln!("run {run_id} was queued already by a trigger with this idempotency key");
            }
            Format::Table => outln!("run {run_id} queued"),
        }
        return Ok(Exit::Ok);
    }
    let runs = wait(client, &run_id, args.timeout).await?;
    let ok = runs.iter().all(|r| r["status"] == "succeeded");
    match fmt {
        Format::Json => output::print_json(&json!({
            "run_id": run_id,
            "status": if ok { "succeeded" } else { "failed" },
            "runs": runs,
        })),
        Format::Table => {
            for r in &runs {
                let mut line = format!(
                    "run {} {} (attempt {}, {} ms)",
                    cell(&r["id"]),
                    cell(&r["status"]),
                    cell(&r["attempt"]),
                    cell(&r["duration_ms"])
                );
                if let Some(e) = r["error"].as_str() {
                    line.push_str(&format!(": {}", clip(e, 200)));
                }
                outln!("{line}");
                // Then what the run logged, indented under it.
                let rid = r["id"].as_str().unwrap_or_default();
                match client.get(&["runs", rid, "logs"], &[]).await {
                    Ok(logs) => {
                        for l in logs["lines"].as_array().into_iter().flatten() {
                            outln!("  {}", l.as_str().unwrap_or_default());
                        }
                    }
                    // The outcome above stands; only its log could not be read.
                    Err(e) => output::eprint_line(&format!(
                        "warning: cannot read the log of run {rid}: {e:#}"
                    )),
                }
            }
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// Polls the run (and its sibling shards) until every one is final; returns them.
async fn wait(client: &Client, run_id: &str, timeout: Duration) -> Result<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    let first = client.get(&["runs", run_id], &[]).await?;
    let ids = shard_ids(&first);
    let mut done: Vec<Option<Value>> = vec![None; ids.len()];
    loop {
        for (slot, id) in done.iter_mut().zip(&ids) {
            if slot.is_some() {
                continue;
            }
            let run = match client.get(&["runs", id], &[]).await {
                Ok(r) => r,
                // A shard not recorded yet: look again at the next round.
                Err(e) if crate::error::exit_code(&e) == Exit::NotFound && id != run_id => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if is_final(&run) {
                *slot = Some(run);
            }
        }
        if done.iter().all(Option::is_some) {
            return Ok(done.into_iter().flatten().collect());
        }
        if Instant::now() >= deadline {
            let open = ids.len() - done.iter().flatten().count();
            return Err(Failure::failed(format!(
                "run {run_id}: {open} run(s) still not final after {}",
                humantime::format_duration(timeout)
            ))
            .into());
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Runs a `runs` command.
pub async fn run(client: &Client, fmt: Format, cmd: RunsCmd) -> Result<Exit> {
    match cmd {
        RunsCmd::List {
            job,
            group,
            status,
            limit,
        } => {
            let limit = limit as usize;
            let mut q = Vec::new();
            if let Some(s) = status {
                q.push(("status", s));
            }
            let runs = match job {
                Some(j) => {
                    let id = resolve(client, &j).await?;
                    client
                        .pages(&["jobs", &id, "runs"], &q, Some(limit))
                        .await?
                }
                None => across_jobs(client, group, &q, limit).await?,
            };
            print_runs(fmt, &runs);
        }
        RunsCmd::Get { run } => print_run(fmt, &client.get(&["runs", &run], &[]).await?),
        RunsCmd::Cancel { run } => {
            let r = client.post(&["runs", &run, "cancel"], None).await?;
            match fmt {
                Format::Json => output::print_json(&r),
                Format::Table => outln!("run {run} {}", cell(&r["status"])),
            }
        }
    }
    Ok(Exit::Ok)
}

/// The newest `limit` runs over every job (of `group`): each job's newest `limit`, merged.
async fn across_jobs(
    client: &Client,
    group: Option<String>,
    q: &[(&str, String)],
    limit: usize,
) -> Result<Vec<Value>> {
    let jq: Vec<(&str, String)> = group.into_iter().map(|g| ("group", g)).collect();
    let jobs = client.pages(&["jobs"], &jq, None).await?;
    let ids: Vec<String> = jobs
        .iter()
        .filter_map(|j| j["id"].as_str().map(str::to_owned))
        .collect();
    let per_job: Vec<Vec<Value>> = futures::stream::iter(ids)
        .map(|id| async move {
            match client.pages(&["jobs", &id, "runs"], q, Some(limit)).await {
                // Deleted since it was listed.
                Err(e) if crate::error::exit_code(&e) == Exit::NotFound => Ok(Vec::new()),
                other => other.with_context(|| format!("runs of job {id}")),
            }
        })
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await?;
    let mut runs: Vec<Value> = per_job.into_iter().flatten().collect();
    // RFC 3339 UTC instants of one format sort as text; newest first, then by id.
    runs.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["scheduled_at"].as_str().unwrap_or("").to_owned(),
                cell(&r["id"]),
            )
        };
        key(b).cmp(&key(a))
    });
    runs.truncate(limit);
    Ok(runs)
}

fn print_runs(fmt: Format, runs: &[Value]) {
    if fmt == Format::Json {
        return output::print_json(&Value::Array(runs.to_vec()));
    }
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                cell(&r["id"]),
                cell(&r["status"]),
                cell(&r["attempt"]),
                when(&r["scheduled_at"]),
                cell(&r["duration_ms"]),
                clip(&cell(&r["worker"]), 30),
                clip(&cell(&r["error"]), 60),
            ]
        })
        .collect();
    output::print_table(
        &[
            "RUN",
            "STATUS",
            "ATTEMPT",
            "SCHEDULED",
            "DURATION MS",
            "WORKER",
            "ERROR",
        ],
        rows,
        "no runs",
    );
}

/// Fields shown first by `runs get`; the others follow.
const RUN_FIRST: [&str; 12] = [
    "id",
    "job_id",
    "status",
    "attempt",
    "scheduled_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "worker",
    "code",
    "error",
    "result",
];

fn print_run(fmt: Format, run: &Value) {
    match (fmt, run.as_object()) {
        (Format::Table, Some(fields)) => output::print_object(fields, &RUN_FIRST, &["attempts"]),
        _ => output::print_json(run),
    }
    if fmt == Format::Table
        && let Some(attempts) = run["attempts"].as_array().filter(|a| !a.is_empty())
    {
        outln!();
        let rows = attempts
            .iter()
            .map(|a| {
                vec![
                    cell(&a["attempt"]),
                    cell(&a["status"]),
                    when(&a["started_at"]),
                    cell(&a["duration_ms"]),
                    clip(&cell(&a["error"]), 60),
                ]
            })
            .collect();
        output::print_table(
            &["ATTEMPT", "STATUS", "STARTED", "DURATION MS", "ERROR"],
            rows,
            "",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_means_no_retry_pending() {
        assert!(is_final(&json!({"status": "succeeded", "retry_at": null})));
        assert!(!is_final(&json!({"status": "running", "retry_at": null})));
        assert!(!is_final(&json!({"status": "queued"})));
        assert!(!is_final(
            &json!({"status": "failed", "retry_at": "2026-01-01T00:00:00Z"})
        ));
        assert!(is_final(&json!({"status": "dead", "retry_at": null})));
    }

    #[test]
    fn every_shard_of_a_sharded_run_is_followed() {
        let plain = json!({"id": "01abc-m17-3"});
        assert_eq!(shard_ids(&plain), vec!["01abc-m17-3"]);
        let sharded = json!({"id": "01abc-m17-3-s0", "shard": 0, "shards": 3});
        assert_eq!(
            shard_ids(&sharded),
            vec!["01abc-m17-3-s0", "01abc-m17-3-s1", "01abc-m17-3-s2"]
        );
    }
}
