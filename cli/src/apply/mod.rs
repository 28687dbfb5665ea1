//! Jobs as code: `dotjob apply -f PATH` makes the server match a file or folder of jobs
//! (keyed by group + name), `dotjob diff -f PATH` shows what that would do.
//!
//! Steps: read and check the whole input ([`load`]), list the server's jobs, compare
//! ([`plan`]), check every schedule and zone that would be sent on the server without
//! writing ([`check`]); only then write, `--concurrency` requests in flight (default 8), with
//! a progress bar on a terminal. A failed write does not stop the others: each failure is
//! reported with its file and job, and the exit code is that of the first one.

mod check;
mod load;
mod plan;
mod render;

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::ApplyArgs;
use crate::client::Client;
use crate::error::{Exit, exit_code};
use crate::outln;
use crate::output::{self, Format};
use load::FileJob;
use plan::{Plan, Selector, Update};

/// Fewest writes that get a progress bar.
const BAR_MIN: usize = 20;

/// The job fields the server accepts, from its OpenAPI document (a built-in list when the
/// document cannot be read).
async fn known_fields(client: &Client) -> BTreeSet<String> {
    let from_doc = client
        .get(&["openapi.json"], &[])
        .await
        .ok()
        .and_then(|doc| {
            doc["components"]["schemas"]["JobInput"]["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<BTreeSet<_>>())
        });
    from_doc
        .filter(|f| f.contains("name"))
        .unwrap_or_else(|| load::INPUT_FIELDS.iter().map(|f| (*f).to_owned()).collect())
}

/// Runs `apply` (or, with `dry`, `diff`).
pub async fn run(client: &Client, fmt: Format, args: ApplyArgs, dry: bool) -> Result<Exit> {
    let selector = args.selector.as_deref().map(Selector::parse).transpose()?;
    let known = known_fields(client).await;
    let files = load::load(&args.file, &known)?;
    let server = client
        .pages(&["jobs"], &[], None)
        .await
        .context("reading the server's jobs")?;
    let prune = if args.prune { selector.as_ref() } else { None };
    let plan = plan::plan(files, &server, prune)?;
    check::schedules(client, &plan).await?;
    if dry {
        match fmt {
            Format::Json => output::print_json(&render::json(&plan)),
            Format::Table => outln!("{}", render::text(&plan)),
        }
        return Ok(if plan.is_empty() {
            Exit::Ok
        } else {
            Exit::Failed
        });
    }
    execute(client, fmt, plan, usize::from(args.concurrency)).await
}

/// One write.
enum Op {
    Create(FileJob),
    Update(Update),
    Delete(Value),
}

impl Op {
    fn group_name(&self) -> (String, String) {
        match self {
            Op::Create(j) => (j.group.clone(), j.name.clone()),
            Op::Update(u) => (u.job.group.clone(), u.job.name.clone()),
            Op::Delete(j) => (
                j["group"].as_str().unwrap_or_default().to_owned(),
                j["name"].as_str().unwrap_or_default().to_owned(),
            ),
        }
    }

    /// `source: job group/name`, for messages.
    fn who(&self) -> String {
        let (g, n) = self.group_name();
        match self {
            Op::Create(j) => format!("{}: job {g}/{n}", j.source),
            Op::Update(u) => format!("{}: job {g}/{n}", u.job.source),
            Op::Delete(_) => format!("job {g}/{n}"),
        }
    }

    /// Sends it; returns the job's id.
    async fn perform(&self, client: &Client) -> Result<String> {
        let answer = match self {
            Op::Create(j) => {
                let body = Value::Object(j.fields.clone());
                client
                    .request(Method::POST, &["jobs"], &[], Some(&body))
                    .await
            }
            Op::Update(u) => {
                let path = ["jobs", u.id()];
                client
                    .request(Method::PATCH, &path, &[], Some(&u.body()))
                    .await
            }
            Op::Delete(j) => {
                let id = j["id"].as_str().unwrap_or_default();
                match client
                    .request(Method::DELETE, &["jobs", id], &[], None)
                    .await
                {
                    // Deleted meanwhile: the server matches.
                    Err(e) if exit_code(&e) == Exit::NotFound => return Ok(id.to_owned()),
                    other => other,
                }
            }
        }
        .with_context(|| self.who())?;
        for w in &answer.warnings {
            output::warn(&format!("{}: {w}", self.who()));
        }
        Ok(match self {
            Op::Create(_) => answer.body["id"].as_str().unwrap_or_default().to_owned(),
            Op::Update(u) => u.id().to_owned(),
            Op::Delete(j) => j["id"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// A progress bar on stderr when it is a terminal and there is enough to do.
fn progress(total: usize) -> ProgressBar {
    if total < BAR_MIN || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} jobs written ({eta})") {
        bar.set_style(style);
    }
    bar
}

/// Performs the plan's writes and reports them.
async fn execute(client: &Client, fmt: Format, plan: Plan, concurrency: usize) -> Result<Exit> {
    let unchanged = plan.unchanged;
    let ops: Vec<Op> = plan
        .creates
        .into_iter()
        .map(Op::Create)
        .chain(plan.updates.into_iter().map(Op::Update))
        .chain(plan.deletes.into_iter().map(Op::Delete))
        .collect();
    let bar = progress(ops.len());
    output::hold_bar(&bar);
    let done: Vec<(Op, Result<String>)> = futures::stream::iter(ops)
        .map(|op| {
            let bar = bar.clone();
            async move {
                let r = op.perform(client).await;
                bar.inc(1);
                (op, r)
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    bar.finish_and_clear();
    output::release_bar();

    let mut report =
        json!({"created": [], "updated": [], "deleted": [], "unchanged": unchanged, "failed": []});
    let mut exit = Exit::Ok;
    for (op, result) in done {
        let (group, name) = op.group_name();
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                if exit == Exit::Ok {
                    exit = exit_code(&e);
                }
                output::eprint_line(&format!("error: {e:#}"));
                push(
                    &mut report,
                    "failed",
                    json!({"group": group, "name": name, "error": format!("{e:#}")}),
                );
                continue;
            }
        };
        let (list, verb, extra) = match &op {
            Op::Create(_) => ("created", "created", String::new()),
            Op::Update(u) => {
                let fields: Vec<&str> = u.changes.iter().map(|c| c.field.as_str()).collect();
                ("updated", "updated", format!(": {}", fields.join(", ")))
            }
            Op::Delete(_) => ("deleted", "deleted", String::new()),
        };
        if fmt == Format::Table {
            outln!("{verb} {group}/{name} [{id}]{extra}");
        }
        push(
            &mut report,
            list,
            json!({"id": id, "group": group, "name": name}),
        );
    }
    let count = |k: &str| report[k].as_array().map_or(0, Vec::len);
    match fmt {
        Format::Json => output::print_json(&report),
        Format::Table => {
            let mut summary = format!(
                "{} created, {} updated, {} deleted, {unchanged} unchanged",
                count("created"),
                count("updated"),
                count("deleted")
            );
            if count("failed") > 0 {
                summary.push_str(&format!(", {} failed", count("failed")));
            }
            outln!("{summary}");
        }
    }
    Ok(exit)
}

fn push(report: &mut Value, list: &str, item: Value) {
    if let Some(a) = report[list].as_array_mut() {
        a.push(item);
    }
}
