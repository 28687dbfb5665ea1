//! Reading JSON and YAML input (`-f FILE`, `-` for standard input) into JSON values.
//!
//! A `.json` file is read as JSON; anything else as YAML (which also reads JSON), where a
//! file may hold several documents separated by `---`. YAML is parsed with `serde_norway`,
//! the maintained fork of `serde_yaml`.

use std::io::Read;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Failure;

/// Reads `path` (or standard input for `-`) whole.
pub fn read_text(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::usage(format!("reading standard input: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())).into())
}

/// Parses text into its documents: JSON when `json` is true, else YAML documents (empty
/// documents are skipped).
pub fn parse_documents(text: &str, json: bool, label: &str) -> Result<Vec<Value>> {
    if json {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Failure::usage(format!("{label}: not valid JSON: {e}")))?;
        return Ok(vec![v]);
    }
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc)
            .map_err(|e| Failure::usage(format!("{label}: not valid YAML: {e}")))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Whether a path names a JSON file.
pub fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Reads one JSON object from a file or standard input (a create or PATCH body).
pub fn read_object(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let label = if path.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let text = read_text(path)?;
    let mut docs = parse_documents(&text, is_json(path), &label)?;
    match (docs.pop(), docs.is_empty()) {
        (Some(Value::Object(m)), true) => Ok(m),
        (None, _) => Err(Failure::usage(format!("{label}: empty")).into()),
        (Some(_), false) => {
            Err(Failure::usage(format!("{label}: holds several documents; give one")).into())
        }
        (Some(_), true) => Err(Failure::usage(format!("{label}: must be one object")).into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn yaml_and_json_read_alike() {
        let y = "name: n\nhandler: h\nschedule: '*/5 * * * * *'\nparams:\n  a: [1, 2]\n";
        let j = r#"{"name":"n","handler":"h","schedule":"*/5 * * * * *","params":{"a":[1,2]}}"#;
        let a = parse_documents(y, false, "y").unwrap();
        let b = parse_documents(j, true, "j").unwrap();
        assert_eq!(a, b);
        // YAML reads JSON too.
        assert_eq!(parse_documents(j, false, "j").unwrap(), b);
    }

    #[test]
    fn several_yaml_documents() {
        let docs = parse_documents("name: a\n---\nname: b\n---\n", false, "f").unwrap();
        assert_eq!(docs, vec![json!({"name": "a"}), json!({"name": "b"})]);
    }

    #[test]
    fn bad_input_names_the_source() {
        let e = parse_documents("{", true, "x.json").unwrap_err();
        assert!(e.to_string().starts_with("x.json: not valid JSON"), "{e}");
        let e = parse_documents("a: [", false, "x.yaml").unwrap_err();
        assert!(e.to_string().starts_with("x.yaml: not valid YAML"), "{e}");
    }
}
