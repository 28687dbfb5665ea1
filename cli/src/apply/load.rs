//! Reading the jobs of `apply`/`diff` input and checking them before anything is written.
//!
//! The input is one file, a folder of `*.yaml`/`*.yml`/`*.json` files (not recursive, in
//! name order) or standard input. A file (or YAML document) holds one job, a list of jobs,
//! or `{jobs: [...]}`. Each job is keyed by group (default `default`) + name. Fields the
//! server assigns (`id`, `version`, `created_at`, `updated_at`, `next_fire_at`) are
//! ignored, so the output of `dotjob jobs get -o json` can be applied. Every problem of the
//! whole input is reported at once, each naming its file and job.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Map, Value};

use crate::error::Failure;
use crate::input;

/// Fields the server assigns; ignored in input.
pub const SERVER_MANAGED: [&str; 5] = ["id", "version", "created_at", "updated_at", "next_fire_at"];

/// The job fields a client may send, when the server's document does not list them.
pub const INPUT_FIELDS: [&str; 18] = [
    "name",
    "group",
    "handler",
    "schedule",
    "timezone",
    "params",
    "timeout_ms",
    "max_attempts",
    "enabled",
    "backoff",
    "misfire_policy",
    "misfire_threshold_ms",
    "catch_up_limit",
    "concurrency",
    "routing",
    "children",
    "description",
    "labels",
];

/// Group of a job that names none.
pub const DEFAULT_GROUP: &str = "default";

/// One job of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct FileJob {
    /// Where it came from: the file, with `#n` (1-based) when the file holds several jobs.
    pub source: String,
    /// Its group (the default filled in).
    pub group: String,
    /// Its name.
    pub name: String,
    /// The fields the file sets (server-assigned ones removed).
    pub fields: Map<String, Value>,
}

impl FileJob {
    /// `group/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

/// The files to read for `path`.
fn sources(path: &Path) -> Result<Vec<PathBuf>> {
    if path.as_os_str() == "-" || !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json")
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Failure::usage(format!(
            "{}: no .yaml, .yml or .json files in this folder",
            path.display()
        ))
        .into());
    }
    Ok(files)
}

/// The jobs of one document: a job, a list of jobs, or `{jobs: [...]}`.
fn jobs_of(doc: Value) -> std::result::Result<Vec<Value>, String> {
    match doc {
        Value::Array(items) => Ok(items),
        Value::Object(mut m) if m.contains_key("jobs") => match (m.remove("jobs"), m.is_empty()) {
            (Some(Value::Array(items)), true) => Ok(items),
            (Some(Value::Array(_)), false) => {
                let other: Vec<&String> = m.keys().collect();
                Err(format!("next to `jobs`, unexpected keys {other:?}"))
            }
            _ => Err("`jobs` must be a list of jobs".to_owned()),
        },
        v @ Value::Object(_) => Ok(vec![v]),
        _ => Err("expected a job, a list of jobs or {jobs: [...]}".to_owned()),
    }
}

/// Checks the type of a field this client knows; `None` when fine.
fn type_problem(field: &str, v: &Value) -> Option<&'static str> {
    let ok = match field {
        "name" | "group" | "handler" | "timezone" | "misfire_policy" | "concurrency" => {
            v.is_string()
        }
        "schedule" | "description" => v.is_string() || v.is_null(),
        "timeout_ms" | "max_attempts" | "misfire_threshold_ms" | "catch_up_limit" => v.is_u64(),
        "enabled" => v.is_boolean(),
        "backoff" | "routing" => v.is_object(),
        "children" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "labels" => v
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match field {
        "schedule" | "description" => "must be a string or null",
        "timeout_ms" | "max_attempts" | "misfire_threshold_ms" | "catch_up_limit" => {
            "must be a whole number >= 0"
        }
        "enabled" => "must be true or false",
        "backoff" | "routing" => "must be a mapping",
        "children" => "must be a list of job ids",
        "labels" => "must map keys to strings (quote numbers and booleans)",
        _ => "must be a string",
    })
}

/// Checks one job; returns it or its problems.
fn check(
    source: String,
    job: Value,
    known: &BTreeSet<String>,
) -> std::result::Result<FileJob, Vec<String>> {
    let Value::Object(mut fields) = job else {
        return Err(vec![format!("{source}: a job must be a mapping of fields")]);
    };
    for f in SERVER_MANAGED {
        fields.remove(f);
    }
    let who = match fields.get("name").and_then(Value::as_str) {
        Some(n) => format!("{source}: job `{n}`"),
        None => source.clone(),
    };
    let mut problems = Vec::new();
    for (k, v) in &fields {
        if !known.contains(k) {
            problems.push(format!("{who}: unknown field `{k}`"));
        } else if let Some(p) = type_problem(k, v) {
            problems.push(format!("{who}: `{k}` {p}"));
        }
    }
    let name = fields.get("name").and_then(Value::as_str).unwrap_or("");
    if name.trim().is_empty() {
        problems.push(format!(
            "{who}: `name` is required (jobs are keyed by group + name)"
        ));
    }
    let group = match fields.get("group") {
        None => DEFAULT_GROUP,
        Some(g) => g.as_str().unwrap_or(""),
    };
    let group_ok = !group.is_empty()
        && group.len() <= 64
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !group_ok && fields.get("group").is_some_and(Value::is_string) {
        problems.push(format!(
            "{who}: `group` must be 1-64 letters, digits or `_-.`"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(FileJob {
        source,
        group: group.to_owned(),
        name: name.to_owned(),
        fields,
    })
}

/// Reads and checks every job under `path`; `known` are the fields a job may set.
pub fn load(path: &Path, known: &BTreeSet<String>) -> Result<Vec<FileJob>> {
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    for file in sources(path)? {
        let label = if file.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            file.display().to_string()
        };
        let text = input::read_text(&file)?;
        let mut found = Vec::new();
        for doc in input::parse_documents(&text, input::is_json(&file), &label)? {
            match jobs_of(doc) {
                Ok(js) => found.extend(js),
                Err(e) => problems.push(format!("{label}: {e}")),
            }
        }
        let several = found.len() > 1;
        for (i, job) in found.into_iter().enumerate() {
            let source = if several {
                format!("{label}#{}", i + 1)
            } else {
                label.clone()
            };
            match check(source, job, known) {
                Ok(j) => jobs.push(j),
                Err(p) => problems.extend(p),
            }
        }
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for j in &jobs {
        if let Some(first) = seen.insert(j.key(), &j.source) {
            problems.push(format!(
                "{}: job {} is also defined in {first}",
                j.source,
                j.key()
            ));
        }
    }
    if problems.is_empty() {
        Ok(jobs)
    } else {
        Err(Failure::usage(format!(
            "{} problem(s) in the input; nothing was written:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn known() -> BTreeSet<String> {
        INPUT_FIELDS.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn three_shapes_of_file() {
        let one = json!({"name": "a", "handler": "h"});
        assert_eq!(jobs_of(one.clone()).unwrap(), vec![one.clone()]);
        assert_eq!(jobs_of(json!([one, one])).unwrap().len(), 2);
        assert_eq!(jobs_of(json!({"jobs": [one]})).unwrap().len(), 1);
        assert!(jobs_of(json!({"jobs": [one], "x": 1})).is_err());
        assert!(jobs_of(json!("text")).is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "jobs:\n  - {name: ok, handler: h, labels: {team: ops}}\n  - {handler: h}\n  - {name: n2, handler: h, timeout_ms: -1, colour: red}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"name": "ok", "handler": "h"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let e = load(dir.path(), &known()).unwrap_err().to_string();
        assert!(e.starts_with("4 problem(s)"), "{e}");
        assert!(e.contains("a.yaml#2: `name` is required"), "{e}");
        assert!(
            e.contains("a.yaml#3: job `n2`: unknown field `colour`"),
            "{e}"
        );
        assert!(
            e.contains("a.yaml#3: job `n2`: `timeout_ms` must be a whole number"),
            "{e}"
        );
        assert!(
            e.contains("b.json: job default/ok is also defined in"),
            "{e}"
        );
        assert!(!e.contains("notes.txt"), "{e}");
    }

    #[test]
    fn server_fields_are_ignored_and_the_group_defaults() {
        let job = json!({"id": "01x", "version": 3, "name": "n", "handler": "h",
                         "next_fire_at": null, "labels": {"team": "ops"}});
        let j = check("f.yaml".into(), job, &known()).unwrap();
        assert_eq!(j.key(), "default/n");
        assert!(!j.fields.contains_key("id") && !j.fields.contains_key("version"));
        let bad = json!({"name": "n", "group": "{bad}", "labels": {"n": 1}});
        let p = check("f.yaml".into(), bad, &known()).unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
