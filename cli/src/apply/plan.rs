//! What `apply` has to do: compare the input's jobs with the server's, keyed by
//! group + name.
//!
//! A job the server lacks is created. For a job it has, only the fields the file sets are
//! compared, each normalised the way the server stores it (a blank `schedule` is `null`, a
//! `null` description is `""`, a sharded routing without `shard_params` has `[]`, numbers
//! compare by value); only differing fields are sent, so an unchanged job is not written
//! and keeps its version. With `--prune`, server jobs carrying every label of the selector
//! that the input does not name are deleted; jobs without those labels never are.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Map, Value};

use super::load::FileJob;
use crate::error::Failure;

/// Labels that scope `--prune`: `key=value[,key=value]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector(Vec<(String, String)>);

impl Selector {
    /// Parses `key=value[,key=value]`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    pairs.push((k.trim().to_owned(), v.trim().to_owned()));
                }
                _ => {
                    return Err(
                        Failure::usage(format!("--selector `{part}`: expected key=value")).into(),
                    );
                }
            }
        }
        if pairs.is_empty() {
            return Err(Failure::usage("--selector needs at least one key=value").into());
        }
        Ok(Self(pairs))
    }

    /// Whether a server job carries every label of the selector.
    pub fn matches(&self, job: &Value) -> bool {
        self.0
            .iter()
            .all(|(k, v)| job["labels"][k].as_str() == Some(v.as_str()))
    }
}

/// One field to change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The field.
    pub field: String,
    /// The server's value.
    pub old: Value,
    /// The file's value (sent as written).
    pub new: Value,
}

/// A job to change.
#[derive(Clone, Debug)]
pub struct Update {
    /// The input's job.
    pub job: FileJob,
    /// The server's job as read.
    pub current: Value,
    /// The fields that differ.
    pub changes: Vec<Change>,
}

impl Update {
    /// The server's id of the job.
    pub fn id(&self) -> &str {
        self.current["id"].as_str().unwrap_or_default()
    }

    /// The PATCH body: the changed fields, as the file writes them.
    pub fn body(&self) -> Value {
        let m: Map<String, Value> = self
            .changes
            .iter()
            .map(|c| (c.field.clone(), c.new.clone()))
            .collect();
        Value::Object(m)
    }
}

/// Everything `apply` would do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Jobs to create, in input order.
    pub creates: Vec<FileJob>,
    /// Jobs to change, in input order.
    pub updates: Vec<Update>,
    /// Server jobs to delete (`--prune`), by group and name.
    pub deletes: Vec<Value>,
    /// Jobs already as the input says.
    pub unchanged: usize,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }
}

/// Fields where `null` means "not given" (the server keeps its value); for the others
/// (`schedule`, `params`, `description`) `null` is a value.
fn null_is_absent(field: &str) -> bool {
    !matches!(field, "schedule" | "params" | "description")
}

/// A file value as the server would store it.
pub fn normalise(field: &str, v: &Value) -> Value {
    match (field, v) {
        ("schedule", Value::String(s)) if s.trim().is_empty() => Value::Null,
        ("schedule", Value::String(s)) => Value::String(s.trim().to_owned()),
        ("description", Value::Null) => Value::String(String::new()),
        ("routing", Value::Object(m))
            if m.get("mode").and_then(Value::as_str) == Some("sharded")
                && !m.contains_key("shard_params") =>
        {
            let mut m = m.clone();
            m.insert("shard_params".to_owned(), Value::Array(Vec::new()));
            Value::Object(m)
        }
        _ => v.clone(),
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The fields of `job` that differ from the server's `current`.
pub fn changes(job: &FileJob, current: &Value) -> Vec<Change> {
    job.fields
        .iter()
        .filter(|(k, v)| !(v.is_null() && null_is_absent(k)))
        .filter(|(k, _)| !matches!(k.as_str(), "name" | "group"))
        .filter_map(|(k, v)| {
            let old = current.get(k).cloned().unwrap_or(Value::Null);
            (!same(&normalise(k, v), &old)).then(|| Change {
                field: k.clone(),
                old,
                new: v.clone(),
            })
        })
        .collect()
}

/// Compares the input with the server's jobs.
pub fn plan(files: Vec<FileJob>, server: &[Value], prune: Option<&Selector>) -> Result<Plan> {
    let mut index: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for j in server {
        let key = (
            j["group"].as_str().unwrap_or_default(),
            j["name"].as_str().unwrap_or_default(),
        );
        index.entry(key).or_default().push(j);
    }
    let named: HashSet<(String, String)> = files
        .iter()
        .map(|j| (j.group.clone(), j.name.clone()))
        .collect();
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for job in files {
        let found = index
            .get(&(job.group.as_str(), job.name.as_str()))
            .cloned()
            .unwrap_or_default();
        match found.as_slice() {
            [] => {
                if job.fields.get("handler").is_none_or(Value::is_null) {
                    problems.push(format!(
                        "{}: job {}: `handler` is required to create it",
                        job.source,
                        job.key()
                    ));
                }
                plan.creates.push(job);
            }
            [current] => {
                let changes = changes(&job, current);
                if changes.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.updates.push(Update {
                        job,
                        current: (*current).clone(),
                        changes,
                    });
                }
            }
            many => {
                let ids: Vec<&str> = many.iter().filter_map(|j| j["id"].as_str()).collect();
                problems.push(format!(
                    "{}: job {}: the server has {} jobs of that name ({}); delete all but one",
                    job.source,
                    job.key(),
                    many.len(),
                    ids.join(", ")
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure::usage(format!(
            "{} problem(s); nothing was written:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
        .into());
    }
    if let Some(sel) = prune {
        plan.deletes = server
            .iter()
            .filter(|j| sel.matches(j))
            .filter(|j| {
                let key = (
                    j["group"].as_str().unwrap_or_default().to_owned(),
                    j["name"].as_str().unwrap_or_default().to_owned(),
                );
                !named.contains(&key)
            })
            .cloned()
            .collect();
        plan.deletes.sort_by_key(|j| {
            (
                j["group"].as_str().unwrap_or_default().to_owned(),
                j["name"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file_job(v: Value) -> FileJob {
        let fields = v.as_object().unwrap().clone();
        FileJob {
            source: "f.yaml".into(),
            group: v["group"].as_str().unwrap_or("default").into(),
            name: v["name"].as_str().unwrap().into(),
            fields,
        }
    }

    fn server_job(id: &str, extra: Value) -> Value {
        let mut j = json!({
            "id": id, "name": "n", "group": "default", "handler": "h", "schedule": null,
            "timezone": "UTC", "params": {}, "timeout_ms": 300000, "max_attempts": 1,
            "enabled": true, "backoff": {"base_ms": 1000, "max_ms": 300000},
            "routing": {"mode": "any"}, "children": [], "description": "", "labels": {},
            "version": 1
        });
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        j
    }

    #[test]
    fn values_the_server_normalises_are_unchanged() {
        let current = server_job(
            "01a",
            json!({"schedule": "*/5 * * * * *", "routing": {"mode": "sharded", "shards": 2, "shard_params": []}}),
        );
        let job = file_job(json!({
            "name": "n", "handler": "h", "schedule": " */5 * * * * * ", "description": null,
            "timeout_ms": 300000.0, "labels": {}, "routing": {"mode": "sharded", "shards": 2},
            "enabled": null
        }));
        assert_eq!(changes(&job, &current), vec![]);
        let blank = file_job(json!({"name": "n", "schedule": ""}));
        assert_eq!(changes(&blank, &server_job("01a", json!({}))), vec![]);
    }

    #[test]
    fn only_differing_fields_are_sent() {
        let current = server_job("01a", json!({"labels": {"team": "ops"}}));
        let job = file_job(json!({"name": "n", "handler": "h", "timeout_ms": 5000,
                                   "labels": {"team": "ops"}, "params": null}));
        let mut c = changes(&job, &current);
        c.sort_by(|a, b| a.field.cmp(&b.field));
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].field, "params");
        assert_eq!(
            (c[0].old.clone(), c[0].new.clone()),
            (json!({}), json!(null))
        );
        assert_eq!(c[1].field, "timeout_ms");
        assert_eq!(
            (c[1].old.clone(), c[1].new.clone()),
            (json!(300000), json!(5000))
        );
    }

    #[test]
    fn prune_deletes_only_selected_jobs_the_input_does_not_name() {
        let server = vec![
            server_job("01a", json!({"name": "kept", "labels": {"team": "ops"}})),
            server_job("01b", json!({"name": "gone", "labels": {"team": "ops"}})),
            server_job(
                "01c",
                json!({"name": "other-team", "labels": {"team": "web"}}),
            ),
            server_job("01d", json!({"name": "unlabelled"})),
        ];
        let files = vec![
            file_job(json!({"name": "kept", "handler": "h"})),
            file_job(json!({"name": "new", "handler": "h"})),
        ];
        let sel = Selector::parse("team=ops").unwrap();
        let p = plan(files.clone(), &server, Some(&sel)).unwrap();
        assert_eq!(p.creates.len(), 1);
        assert_eq!(p.unchanged, 1);
        let deleted: Vec<&str> = p
            .deletes
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(deleted, vec!["01b"]);
        let p = plan(files, &server, None).unwrap();
        assert!(p.deletes.is_empty());
    }

    #[test]
    fn ambiguous_names_and_missing_handlers_are_refused() {
        let server = vec![server_job("01a", json!({})), server_job("01b", json!({}))];
        let e = plan(vec![file_job(json!({"name": "n"}))], &server, None).unwrap_err();
        assert!(e.to_string().contains("the server has 2 jobs"), "{e}");
        let e = plan(vec![file_job(json!({"name": "x"}))], &server, None).unwrap_err();
        assert!(e.to_string().contains("`handler` is required"), "{e}");
    }

    #[test]
    fn selectors_parse() {
        let s = Selector::parse("team=ops, env=prod").unwrap();
        assert!(s.matches(&json!({"labels": {"team": "ops", "env": "prod", "x": "y"}})));
        assert!(!s.matches(&json!({"labels": {"team": "ops"}})));
        assert!(Selector::parse("team").is_err());
        assert!(Selector::parse("").is_err());
    }
}
