//! `dotjob jobs …`: list, get, create, edit (file and/or `--set`), delete, pause, resume;
//! and [`resolve`], which turns a `JOB` argument (an id or `group/name`) into an id.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::args::JobsCmd;
use crate::client::Client;
use crate::error::{Exit, Failure};
use crate::input;
use crate::outln;
use crate::output::{self, Format, cell, when};

/// The id of a job given as an id or as `group/name` (exact name, looked up by listing).
pub async fn resolve(client: &Client, job: &str) -> Result<String> {
    let Some((group, name)) = job.split_once('/') else {
        return Ok(job.to_owned());
    };
    if group.is_empty() || name.is_empty() {
        return Err(Failure::usage(format!("`{job}` is neither a job id nor group/name")).into());
    }
    let q = [("group", group.to_owned()), ("name", name.to_owned())];
    let found = client
        .pages(&["jobs"], &q, None)
        .await
        .with_context(|| format!("looking up job {job}"))?;
    let ids: Vec<&str> = found
        .iter()
        .filter(|j| j["name"] == name)
        .filter_map(|j| j["id"].as_str())
        .collect();
    match ids.as_slice() {
        [id] => Ok((*id).to_owned()),
        [] => Err(Failure::not_found(format!("no job named `{name}` in group `{group}`")).into()),
        many => Err(Failure::usage(format!(
            "{} jobs are named `{name}` in group `{group}` ({}); give an id",
            many.len(),
            many.join(", ")
        ))
        .into()),
    }
}

/// Runs a `jobs` command.
pub async fn run(client: &Client, fmt: Format, cmd: JobsCmd) -> Result<Exit> {
    match cmd {
        JobsCmd::List {
            group,
            name,
            enabled,
        } => {
            let mut q = Vec::new();
            if let Some(g) = group {
                q.push(("group", g));
            }
            if let Some(n) = name {
                q.push(("name", n));
            }
            if let Some(e) = enabled {
                q.push(("enabled", e.to_string()));
            }
            let jobs = client.pages(&["jobs"], &q, None).await?;
            print_list(fmt, &jobs);
        }
        JobsCmd::Get { job } => {
            let id = resolve(client, &job).await?;
            print_job(fmt, &client.get(&["jobs", &id], &[]).await?);
        }
        JobsCmd::Create { file } => {
            let body = input::read_object(Path::new(&file))?;
            let job = client.post(&["jobs"], Some(&Value::Object(body))).await?;
            print_job(fmt, &job);
        }
        JobsCmd::Edit { job, file, set } => {
            let id = resolve(client, &job).await?;
            let body = edit_body(client, &id, file.as_deref(), &set).await?;
            let job = client.patch(&["jobs", &id], &Value::Object(body)).await?;
            print_job(fmt, &job);
        }
        JobsCmd::Delete { job, yes } => {
            let id = resolve(client, &job).await?;
            if !yes {
                confirm_delete(client, &id).await?;
            }
            client.delete(&["jobs", &id]).await?;
            match fmt {
                Format::Json => output::print_json(&serde_json::json!({"deleted": id})),
                Format::Table => outln!("deleted job {id}"),
            }
        }
        JobsCmd::Pause { job } => set_enabled(client, fmt, &job, "pause").await?,
        JobsCmd::Resume { job } => set_enabled(client, fmt, &job, "resume").await?,
    }
    Ok(Exit::Ok)
}

async fn set_enabled(client: &Client, fmt: Format, job: &str, action: &str) -> Result<()> {
    let id = resolve(client, job).await?;
    let job = client.post(&["jobs", &id, action], None).await?;
    match fmt {
        Format::Json => output::print_json(&job),
        Format::Table => outln!(
            "job {id} ({}/{}) {}; next fire {}",
            cell(&job["group"]),
            cell(&job["name"]),
            if job["enabled"] == true {
                "enabled"
            } else {
                "paused"
            },
            when(&job["next_fire_at"])
        ),
    }
    Ok(())
}

/// Asks on the terminal; refuses when nobody can answer.
async fn confirm_delete(client: &Client, id: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "refusing to delete without --yes (standard input is not a terminal)",
        )
        .into());
    }
    let job = client.get(&["jobs", id], &[]).await?;
    eprint!(
        "delete job {id} ({}/{}) and its runs? [y/N] ",
        cell(&job["group"]),
        cell(&job["name"])
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::failed("not deleted").into())
    }
}

/// Fields (and label entries) whose values are text: `--set` never reads them as JSON,
/// so `labels.tier=1` is the label `"1"`.
const TEXT_FIELDS: [&str; 9] = [
    "name",
    "group",
    "handler",
    "schedule",
    "timezone",
    "description",
    "misfire_policy",
    "concurrency",
    "labels",
];

/// A `--set` value: text for text fields (`null` aside), else JSON when it parses, else
/// the text itself.
fn set_value(field: &str, text: &str) -> Value {
    let top = field.split('.').next().unwrap_or(field);
    let labels_whole = field == "labels";
    if TEXT_FIELDS.contains(&top) && !labels_whole && text != "null" {
        return Value::String(text.to_owned());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Puts `value` at the dotted `path` inside `target` (creating objects on the way).
fn set_path(target: &mut Value, path: &[&str], value: Value) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        *target = value;
        return Ok(());
    };
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    let Some(obj) = target.as_object_mut() else {
        return Err(
            Failure::usage(format!("`{first}` is inside a field that is not an object")).into(),
        );
    };
    set_path(obj.entry(*first).or_insert(Value::Null), rest, value)
}

/// The PATCH body of `jobs edit`: the file's fields, then each `--set`. A dotted field
/// changes one entry of the job's current value (PATCH replaces whole fields).
async fn edit_body(
    client: &Client,
    id: &str,
    file: Option<&str>,
    sets: &[String],
) -> Result<Map<String, Value>> {
    if file.is_none() && sets.is_empty() {
        return Err(Failure::usage("give -f FILE and/or --set field=value").into());
    }
    let mut body = match file {
        Some(f) => input::read_object(Path::new(f))?,
        None => Map::new(),
    };
    let mut current: Option<Value> = None;
    for s in sets {
        let Some((field, text)) = s.split_once('=').filter(|(f, _)| !f.is_empty()) else {
            return Err(Failure::usage(format!("--set `{s}`: expected field=value")).into());
        };
        let value = set_value(field, text);
        let parts: Vec<&str> = field.split('.').collect();
        let (top, rest) = (parts[0], &parts[1..]);
        if rest.is_empty() {
            body.insert(top.to_owned(), value);
            continue;
        }
        if !body.contains_key(top) {
            if current.is_none() {
                current = Some(client.get(&["jobs", id], &[]).await?);
            }
            let base = current.as_ref().map_or(Value::Null, |c| c[top].clone());
            body.insert(top.to_owned(), base);
        }
        let slot = body.entry(top).or_insert(Value::Null);
        set_path(slot, rest, value).with_context(|| format!("--set {field}"))?;
    }
    Ok(body)
}

fn print_list(fmt: Format, jobs: &[Value]) {
    if fmt == Format::Json {
        return output::print_json(&Value::Array(jobs.to_vec()));
    }
    let rows = jobs
        .iter()
        .map(|j| {
            vec![
                cell(&j["id"]),
                cell(&j["group"]),
                output::clip(&cell(&j["name"]), 40),
                cell(&j["handler"]),
                cell(&j["schedule"]),
                if j["enabled"] == true { "yes" } else { "no" }.to_owned(),
                when(&j["next_fire_at"]),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID",
            "GROUP",
            "NAME",
            "HANDLER",
            "SCHEDULE",
            "ENABLED",
            "NEXT FIRE",
        ],
        rows,
        "no jobs",
    );
}

/// Fields shown first by `jobs get`; the others follow.
const FIRST: [&str; 9] = [
    "id",
    "name",
    "group",
    "handler",
    "schedule",
    "timezone",
    "enabled",
    "next_fire_at",
    "version",
];

/// One job: every field the server sent, the most telling first.
pub fn print_job(fmt: Format, job: &Value) {
    match (fmt, job.as_object()) {
        (Format::Table, Some(fields)) => output::print_object(fields, &FIRST, &[]),
        _ => output::print_json(job),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_values_are_json_or_text() {
        assert_eq!(set_value("timeout_ms", "5000"), json!(5000));
        assert_eq!(set_value("enabled", "false"), json!(false));
        assert_eq!(set_value("params", "null"), json!(null));
        assert_eq!(set_value("schedule", "null"), json!(null));
        assert_eq!(set_value("params", r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(set_value("params.x", "text"), json!("text"));
        assert_eq!(
            set_value("schedule", "*/5 * * * * *"),
            json!("*/5 * * * * *")
        );
        assert_eq!(set_value("name", "123"), json!("123"));
        assert_eq!(set_value("labels.tier", "1"), json!("1"));
        assert_eq!(set_value("labels", r#"{"a":"b"}"#), json!({"a": "b"}));
    }

    #[test]
    fn dotted_paths_change_one_entry() {
        let mut labels = json!({"team": "ops", "tier": "1"});
        set_path(&mut labels, &["team"], json!("billing")).unwrap();
        assert_eq!(labels, json!({"team": "billing", "tier": "1"}));
        let mut none = Value::Null;
        set_path(&mut none, &["a", "b"], json!(1)).unwrap();
        assert_eq!(none, json!({"a": {"b": 1}}));
        let mut scalar = json!(3);
        assert!(set_path(&mut scalar, &["x"], json!(1)).is_err());
    }
}
