//! The OpenAPI document as the tests use it: its operations, and a strict validator of
//! answers against it (the status must be documented for the operation; a JSON body must
//! match the documented schema, with no undocumented fields and no missing required ones).
//! Plus the test that the document matches the server on a real listener.

use std::time::Duration;

use dotjob_tests::{Api, InProcess, delete_prefix, shared_redis, unique_prefix};
use serde_json::{Value, json};

use crate::common::TestWorker;

/// One documented operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// `GET`, `POST`, …
    pub method: String,
    /// Route template, e.g. `/api/v1/jobs/{id}`.
    pub path: String,
    /// The operation object.
    pub op: Value,
}

impl Op {
    /// Names of its path parameters, in order.
    pub fn path_params(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect()
    }

    /// Its query parameters (name, schema).
    pub fn query_params(&self) -> Vec<(String, Value)> {
        self.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_owned(),
                    p["schema"].clone(),
                )
            })
            .collect()
    }

    /// The JSON schema of its request body, if it takes one.
    pub fn body_schema(&self) -> Option<Value> {
        let s = &self.op["requestBody"]["content"]["application/json"]["schema"];
        (!s.is_null()).then(|| s.clone())
    }

    /// Whether it needs no token.
    pub fn public(&self) -> bool {
        self.op["security"].as_array().is_some_and(|a| {
            a.is_empty()
                || a.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        })
    }

    /// Whether the read-only token may call it.
    pub fn readable(&self) -> bool {
        self.op["security"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r.get("read_token").is_some()))
    }
}

/// The served document.
#[derive(Clone, Debug)]
pub struct Doc {
    pub json: Value,
}

impl Doc {
    /// Fetches `/api/v1/openapi.json` (public).
    pub async fn fetch(base: &str) -> Self {
        let a = Api::new(base)
            .raw("GET", "/api/v1/openapi.json", None)
            .await
            .expect("fetch openapi.json");
        assert_eq!(a.status, 200, "openapi.json: {:?}", a.body);
        Self { json: a.body }
    }

    /// Every operation, sorted by path then method.
    pub fn ops(&self) -> Vec<Op> {
        let mut out = Vec::new();
        for (path, item) in self.json["paths"].as_object().expect("paths") {
            for (m, op) in item.as_object().expect("path item") {
                if ["get", "post", "patch", "put", "delete"].contains(&m.as_str()) {
                    out.push(Op {
                        method: m.to_ascii_uppercase(),
                        path: path.clone(),
                        op: op.clone(),
                    });
                }
            }
        }
        out
    }

    /// A component schema by name.
    pub fn component(&self, name: &str) -> &Value {
        &self.json["components"]["schemas"][name]
    }

    fn resolve<'a>(&'a self, s: &'a Value) -> &'a Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => self.component(r.rsplit('/').next().unwrap_or("")),
            None => s,
        }
    }

    /// Validates `v` against `schema`, strictly: objects may hold only documented fields
    /// (unless the schema allows more), must hold the required ones.
    pub fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema);
        let obj = s
            .as_object()
            .ok_or_else(|| format!("{at}: schema is not an object"))?;
        if obj.is_empty() {
            return Ok(());
        }
        if let Some(all) = s["allOf"].as_array() {
            for sub in all {
                self.validate(sub, v, at)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = s[key].as_array() {
                let errors: Vec<String> = any
                    .iter()
                    .filter_map(|sub| self.validate(sub, v, at).err())
                    .collect();
                if errors.len() == any.len() {
                    return Err(format!("{at}: matches no variant of {key}: {errors:?}"));
                }
            }
        }
        if let Some(options) = s["enum"].as_array()
            && !options.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {options:?}"));
        }
        let types: Vec<&str> = match &s["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() {
            let fits = |t: &str| match t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "string" => v.is_string(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            };
            if !types.iter().any(|t| fits(t)) {
                return Err(format!("{at}: {v} is not {types:?}"));
            }
        }
        if s["format"] == "date-time"
            && let Some(text) = v.as_str()
        {
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("{at}: `{text}` is not RFC 3339: {e}"))?;
        }
        let shaped = s.get("properties").is_some() || s.get("additionalProperties").is_some();
        if let (true, Some(o)) = (shaped, v.as_object()) {
            let props = s["properties"].as_object();
            for req in s["required"].as_array().into_iter().flatten() {
                let name = req.as_str().unwrap_or("");
                if !o.contains_key(name) {
                    return Err(format!("{at}: required field `{name}` is missing"));
                }
            }
            for (k, val) in o {
                let at = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), &s["additionalProperties"]) {
                    (Some(ps), _) => self.validate(ps, val, &at)?,
                    (None, extra @ Value::Object(_)) => self.validate(extra, val, &at)?,
                    (None, Value::Bool(true)) => {}
                    (None, _) => return Err(format!("{at}: field is not documented")),
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    /// Checks one answer of `method path` against the document: its status is documented
    /// for the operation, and a JSON body matches the status's schema.
    pub fn check_answer(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let op = &self.json["paths"][path][method.to_ascii_lowercase()];
        if !op.is_object() {
            return Err(format!("{method} {path} is not documented"));
        }
        let resp = &op["responses"][status.to_string()];
        if !resp.is_object() {
            return Err(format!(
                "{method} {path} answered {status}, which the document does not list: {body}"
            ));
        }
        if let Some(schema) = resp["content"]["application/json"].get("schema")
            && !(body.is_string() && resp["content"].get("text/event-stream").is_some())
        {
            self.validate(schema, body, "body")
                .map_err(|e| format!("{method} {path} → {status}: {e}"))?;
        }
        Ok(())
    }
}

/// `path` with `{name}` replaced by `value(name)`, percent-encoded.
pub fn fill(path: &str, value: impl Fn(&str) -> String) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => encode(&value(name)),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn api_document_matches_the_server_on_a_real_listener() {
    let url = shared_redis();
    let prefix = unique_prefix("api-doc");
    let sched = InProcess::start(&url, &prefix).await;
    let worker = TestWorker::start(&url, &prefix, "default");
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let doc = Doc::fetch(&sched.base).await;

    // Real ids for the path parameters, so every operation gets past its lookups.
    let job = api
        .create_job(&json!({"name": "doc", "handler": "echo", "params": {"a": 1}}))
        .await;
    let job_id = job["id"].as_str().expect("id").to_owned();
    let run_id = api.trigger(&job_id, None).await;
    api.wait_run_final(&run_id, Duration::from_secs(30)).await;
    let api2 = api.clone();
    let executor =
        dotjob_tests::wait_for("the worker to register", Duration::from_secs(20), || {
            let api = api2.clone();
            async move {
                let a = api
                    .call("GET", "/groups/default/executors", None)
                    .await
                    .ok()?;
                a.body[0]["id"].as_str().map(str::to_owned)
            }
        })
        .await;

    // The validator itself: it must catch a missing, an extra and a mistyped field.
    let error = json!({"$ref": "#/components/schemas/Error"});
    let good = json!({"error": {"code": "invalid", "message": "m", "field": null}});
    doc.validate(&error, &good, "body")
        .expect("a valid error body");
    for bad in [
        json!({"error": {"code": "invalid", "field": null}}),
        json!({"error": {"code": "invalid", "message": "m", "field": null, "extra": 1}}),
        json!({"error": {"code": 7, "message": "m", "field": null}}),
    ] {
        assert!(doc.validate(&error, &bad, "body").is_err(), "{bad} passed");
    }

    let ops = doc.ops();
    assert!(ops.len() >= 25, "only {} operations documented", ops.len());
    let mut validated = 0;
    // Deleting comes last: the other operations need the job.
    let (mut later, mut first): (Vec<Op>, Vec<Op>) =
        ops.into_iter().partition(|o| o.method == "DELETE");
    first.append(&mut later);
    for op in first {
        let path = fill(&op.path, |name| match name {
            "id" if op.path.starts_with("/api/v1/runs/") => run_id.clone(),
            "id" => job_id.clone(),
            "group" => "default".to_owned(),
            "executor" => executor.clone(),
            "entry" => "1-0".to_owned(),
            other => panic!("unexpected path parameter {other}"),
        });
        let body = match op.path.as_str() {
            "/api/v1/jobs" => Some(json!({"name": "doc-2", "handler": "echo"}).to_string()),
            "/api/v1/jobs/{id}" => Some(json!({"description": "patched"}).to_string()),
            "/api/v1/schedule/preview" => Some(json!({"schedule": "@hourly"}).to_string()),
            _ => None,
        };
        let a = api.raw(&op.method, &path, body).await.expect("request");
        assert_ne!(
            a.status, 405,
            "{} {} is documented but not served",
            op.method, op.path
        );
        assert!(
            !(a.status == 404 && a.body["error"]["message"] == "route not found"),
            "{} {} is documented but not served",
            op.method,
            op.path
        );
        assert!(
            a.status < 500,
            "{} {path} → {}: {:?}",
            op.method,
            a.status,
            a.body
        );
        if a.body.is_object() || a.body.is_array() {
            doc.check_answer(&op.method, &op.path, a.status, &a.body)
                .unwrap_or_else(|e| panic!("{e}"));
            validated += 1;
        }
    }
    assert!(validated >= 20, "only {validated} JSON answers validated");
    worker.stop().await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
