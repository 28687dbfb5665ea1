//! How a plan is shown by `dotjob diff`: one line per job to create (`+`), update (`~`,
//! followed by `field: old → new` per changed field) or delete (`-`), then a count line;
//! or, with `-o json`, one document with the same content.

use std::fmt::Write;

use serde_json::{Value, json};

use super::plan::Plan;

/// A value on one line (compact JSON; strings quoted so `""` and `null` stay apart).
fn show(v: &Value) -> String {
    v.to_string()
}

fn key_of(j: &Value) -> String {
    format!(
        "{}/{}",
        j["group"].as_str().unwrap_or_default(),
        j["name"].as_str().unwrap_or_default()
    )
}

/// The counts line.
pub fn counts(plan: &Plan) -> String {
    format!(
        "{} to create, {} to update, {} to delete, {} unchanged",
        plan.creates.len(),
        plan.updates.len(),
        plan.deletes.len(),
        plan.unchanged
    )
}

/// The plan as text for people.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for j in &plan.creates {
        let _ = writeln!(out, "+ {}  ({})", j.key(), j.source);
    }
    for u in &plan.updates {
        let _ = writeln!(out, "~ {} [{}]  ({})", u.job.key(), u.id(), u.job.source);
        for c in &u.changes {
            let _ = writeln!(out, "    {}: {} → {}", c.field, show(&c.old), show(&c.new));
        }
    }
    for j in &plan.deletes {
        let _ = writeln!(
            out,
            "- {} [{}]",
            key_of(j),
            j["id"].as_str().unwrap_or_default()
        );
    }
    out.push_str(&counts(plan));
    out
}

/// The plan as one JSON document.
pub fn json(plan: &Plan) -> Value {
    json!({
        "create": plan.creates.iter().map(|j| json!({
            "group": j.group, "name": j.name, "source": j.source, "fields": j.fields,
        })).collect::<Vec<_>>(),
        "update": plan.updates.iter().map(|u| json!({
            "id": u.id(), "group": u.job.group, "name": u.job.name, "source": u.job.source,
            "changes": u.changes.iter().map(|c| json!({
                "field": c.field, "old": c.old, "new": c.new,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "delete": plan.deletes.iter().map(|j| json!({
            "id": j["id"], "group": j["group"], "name": j["name"],
        })).collect::<Vec<_>>(),
        "unchanged": plan.unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load::FileJob;
    use super::super::plan::{Change, Update};
    use super::*;

    #[test]
    fn a_diff_names_each_change() {
        let job = |name: &str| FileJob {
            source: "jobs.yaml#2".into(),
            group: "default".into(),
            name: name.into(),
            fields: serde_json::Map::new(),
        };
        let plan = Plan {
            creates: vec![job("new")],
            updates: vec![Update {
                job: job("changed"),
                current: json!({"id": "01a"}),
                changes: vec![Change {
                    field: "timeout_ms".into(),
                    old: json!(300000),
                    new: json!(5000),
                }],
            }],
            deletes: vec![json!({"id": "01b", "group": "g", "name": "old"})],
            unchanged: 7,
        };
        assert_eq!(
            text(&plan),
            "+ default/new  (jobs.yaml#2)\n\
             ~ default/changed [01a]  (jobs.yaml#2)\n    timeout_ms: 300000 → 5000\n\
             - g/old [01b]\n\
             1 to create, 1 to update, 1 to delete, 7 unchanged"
        );
        let j = json(&plan);
        assert_eq!(j["update"][0]["changes"][0]["new"], 5000);
        assert_eq!(j["delete"][0]["id"], "01b");
        assert_eq!(j["unchanged"], 7);
    }
}
