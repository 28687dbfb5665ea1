//! `dotjob groups`, `dotjob executors GROUP [disable|enable ID]` and
//! `dotjob dead GROUP [requeue ID|--all]`.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::args::{DeadAction, DeadArgs, ExecutorAction, ExecutorsArgs};
use crate::client::Client;
use crate::error::{Exit, Failure};
use crate::outln;
use crate::output::{self, Format, cell, clip, when};

/// `dotjob groups`.
pub async fn groups(client: &Client, fmt: Format) -> Result<Exit> {
    let groups = client.get(&["groups"], &[]).await?;
    if fmt == Format::Json {
        output::print_json(&groups);
        return Ok(Exit::Ok);
    }
    let rows = groups
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            [
                "name",
                "jobs",
                "stream_length",
                "pending",
                "lag",
                "executors",
                "dead_letters",
            ]
            .iter()
            .map(|k| cell(&g[*k]))
            .collect()
        })
        .collect();
    output::print_table(
        &[
            "GROUP",
            "JOBS",
            "STREAM",
            "PENDING",
            "LAG",
            "EXECUTORS",
            "DEAD",
        ],
        rows,
        "no groups",
    );
    Ok(Exit::Ok)
}

/// `dotjob executors`.
pub async fn executors(client: &Client, fmt: Format, args: ExecutorsArgs) -> Result<Exit> {
    let group = args.group.as_str();
    if let (Some(action), Some(id)) = (args.action, args.id.as_deref()) {
        let verb = match action {
            ExecutorAction::Disable => "disable",
            ExecutorAction::Enable => "enable",
        };
        let e = client
            .post(&["groups", group, "executors", id, verb], None)
            .await?;
        match fmt {
            Format::Json => output::print_json(&e),
            Format::Table => outln!("executor {id} {verb}d"),
        }
        return Ok(Exit::Ok);
    }
    let list = client.get(&["groups", group, "executors"], &[]).await?;
    if fmt == Format::Json {
        output::print_json(&list);
        return Ok(Exit::Ok);
    }
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                cell(&e["id"]),
                cell(&e["host"]),
                cell(&e["pid"]),
                if e["alive"] == true { "yes" } else { "no" }.to_owned(),
                if e["disabled"] == true { "yes" } else { "no" }.to_owned(),
                cell(&e["pending"]),
                when(&e["last_heartbeat"]),
                clip(&cell(&e["handlers"]), 50),
            ]
        })
        .collect();
    output::print_table(
        &[
            "EXECUTOR",
            "HOST",
            "PID",
            "ALIVE",
            "DISABLED",
            "PENDING",
            "LAST HEARTBEAT",
            "HANDLERS",
        ],
        rows,
        "no executors",
    );
    Ok(Exit::Ok)
}

/// `dotjob dead`.
pub async fn dead(client: &Client, fmt: Format, args: DeadArgs) -> Result<Exit> {
    let group = args.group.as_str();
    let Some(DeadAction::Requeue) = args.action else {
        if args.entry.is_some() {
            return Err(Failure::usage("an entry id goes with `requeue`").into());
        }
        let letters = client.pages(&["groups", group, "dead"], &[], None).await?;
        print_letters(fmt, &letters);
        return Ok(Exit::Ok);
    };
    let entries: Vec<String> = match (&args.entry, args.all) {
        (Some(e), false) => vec![e.clone()],
        (None, true) => client
            .pages(&["groups", group, "dead"], &[], None)
            .await?
            .iter()
            .filter_map(|d| d["entry"].as_str().map(str::to_owned))
            .collect(),
        _ => return Err(Failure::usage("requeue needs an entry id or --all").into()),
    };
    let mut requeued = Vec::new();
    for entry in &entries {
        let a = client
            .post(&["groups", group, "dead", entry, "requeue"], None)
            .await
            .with_context(|| format!("requeueing dead letter {entry}"))?;
        let run = cell(&a["run_id"]);
        if fmt == Format::Table {
            outln!("dead letter {entry} requeued as run {run}");
        }
        requeued.push(json!({"entry": entry, "run_id": a["run_id"]}));
    }
    match fmt {
        Format::Json => output::print_json(&Value::Array(requeued)),
        Format::Table if entries.is_empty() => outln!("no dead letters"),
        Format::Table => {}
    }
    Ok(Exit::Ok)
}

fn print_letters(fmt: Format, letters: &[Value]) {
    if fmt == Format::Json {
        return output::print_json(&Value::Array(letters.to_vec()));
    }
    let rows = letters
        .iter()
        .map(|d| {
            vec![
                cell(&d["entry"]),
                cell(&d["run"]),
                cell(&d["job"]),
                cell(&d["attempts"]),
                when(&d["failed_at"]),
                clip(&cell(&d["error"]), 60),
            ]
        })
        .collect();
    output::print_table(
        &["ENTRY", "RUN", "JOB", "ATTEMPTS", "FAILED AT", "ERROR"],
        rows,
        "no dead letters",
    );
}
