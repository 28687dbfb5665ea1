//! Server-side checks of a plan that write nothing, so that `apply` refuses bad input before
//! its first write: every schedule and time zone it would send is run through
//! `POST /schedule/preview` (read-only), once per distinct pair.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::plan::{Plan, normalise};
use crate::client::Client;
use crate::error::ApiError;
use crate::error::Failure;

/// A schedule that always fires, used to check a time zone sent without a schedule.
const ZONE_PROBE: &str = "@daily";
/// Preview requests in flight at once.
const FAN_OUT: usize = 8;

/// A schedule to check: `(schedule, timezone)`.
type Pair = (String, String);

/// The string a field holds after normalisation, if any.
fn text(field: &str, v: Option<&Value>) -> Option<String> {
    v.map(|v| normalise(field, v))
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// Every pair the plan would send, with the jobs (`source: job key`) sending it.
fn pairs(plan: &Plan) -> BTreeMap<Pair, Vec<String>> {
    let mut out: BTreeMap<Pair, Vec<String>> = BTreeMap::new();
    let mut add = |sched: Option<String>, tz: Option<String>, tz_sent: bool, who: String| {
        let pair = match (sched, tz) {
            (Some(s), tz) => (s, tz.unwrap_or_else(|| "UTC".to_owned())),
            (None, Some(tz)) if tz_sent => (ZONE_PROBE.to_owned(), tz),
            _ => return,
        };
        out.entry(pair).or_default().push(who);
    };
    for j in &plan.creates {
        let sched = text("schedule", j.fields.get("schedule"));
        let tz = text("timezone", j.fields.get("timezone"));
        let sent = tz.is_some();
        add(sched, tz, sent, format!("{}: job {}", j.source, j.key()));
    }
    for u in &plan.updates {
        let changed: BTreeSet<&str> = u.changes.iter().map(|c| c.field.as_str()).collect();
        if !changed.contains("schedule") && !changed.contains("timezone") {
            continue;
        }
        let sched = if changed.contains("schedule") {
            text("schedule", u.job.fields.get("schedule"))
        } else {
            u.current["schedule"].as_str().map(str::to_owned)
        };
        let tz = text("timezone", u.job.fields.get("timezone"))
            .or_else(|| u.current["timezone"].as_str().map(str::to_owned));
        let sent = changed.contains("timezone");
        add(
            sched,
            tz,
            sent,
            format!("{}: job {}", u.job.source, u.job.key()),
        );
    }
    out
}

/// Checks every schedule and zone of the plan on the server; all problems at once.
pub async fn schedules(client: &Client, plan: &Plan) -> Result<()> {
    let pairs = pairs(plan);
    let verdicts: Vec<(Pair, Option<String>)> = futures::stream::iter(pairs.keys().cloned())
        .map(|(sched, tz)| async move {
            let body = json!({"schedule": sched, "timezone": tz, "count": 1});
            let verdict = match client.post(&["schedule", "preview"], Some(&body)).await {
                Ok(p) if p["fires"].as_array().is_some_and(|f| f.is_empty()) => {
                    Some("never fires: an @once instant in the past? (field: schedule)".to_owned())
                }
                Ok(_) => None,
                Err(e) => match e.downcast_ref::<ApiError>() {
                    Some(a) if a.status == 400 => {
                        // The preview names its own body's fields; say which job field.
                        let field = a.field.as_deref().unwrap_or("schedule");
                        // Some messages (cron parse errors) span lines.
                        let message: Vec<&str> = a.message.lines().map(str::trim).collect();
                        Some(format!("{} (field: {field})", message.join(" ")))
                    }
                    _ => return Err(e),
                },
            };
            Ok(((sched, tz), verdict))
        })
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await?;
    let mut problems: Vec<String> = verdicts
        .into_iter()
        .filter_map(|(pair, v)| v.map(|v| (pair, v)))
        .flat_map(|(pair, v)| {
            pairs[&pair]
                .iter()
                .map(|who| format!("{who}: {v}"))
                .collect::<Vec<_>>()
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    Err(Failure::usage(format!(
        "{} problem(s); nothing was written:\n  {}",
        problems.len(),
        problems.join("\n  ")
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::load::FileJob;
    use super::super::plan::{Change, Update};
    use super::*;

    fn job(v: Value) -> FileJob {
        FileJob {
            source: "f.yaml".into(),
            group: "default".into(),
            name: v["name"].as_str().unwrap().into(),
            fields: v.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn only_what_would_be_sent_is_checked() {
        let plan = Plan {
            creates: vec![
                job(json!({"name": "a", "schedule": "@hourly"})),
                job(json!({"name": "b", "schedule": "@hourly", "timezone": "UTC"})),
                job(json!({"name": "c", "timezone": "Mars/Base"})),
                job(json!({"name": "d"})),
            ],
            updates: vec![
                Update {
                    job: job(json!({"name": "e", "timezone": "Europe/Berlin"})),
                    current: json!({"schedule": "0 9 * * *", "timezone": "UTC"}),
                    changes: vec![Change {
                        field: "timezone".into(),
                        old: json!("UTC"),
                        new: json!("Europe/Berlin"),
                    }],
                },
                Update {
                    job: job(json!({"name": "f", "timeout_ms": 1})),
                    current: json!({"schedule": "bad", "timezone": "UTC"}),
                    changes: vec![Change {
                        field: "timeout_ms".into(),
                        old: json!(2),
                        new: json!(1),
                    }],
                },
            ],
            ..Plan::default()
        };
        let p = pairs(&plan);
        let keys: Vec<(&str, &str)> = p.keys().map(|(s, t)| (s.as_str(), t.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                ("0 9 * * *", "Europe/Berlin"),
                ("@daily", "Mars/Base"),
                ("@hourly", "UTC")
            ]
        );
        assert_eq!(p[&("@hourly".to_owned(), "UTC".to_owned())].len(), 2);
    }
}
