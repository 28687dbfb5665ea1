//! The OpenAPI 3.1 document, built from the code: each handler's `#[utoipa::path]`
//! annotation registers both its route and its operation (through `utoipa_axum::routes!`),
//! so the router and the document cannot disagree about what exists. This module adds what
//! is not a handler of the API itself (`/healthz`, `/metrics`, served by the telemetry
//! router), the security schemes, and the error answers every operation shares.
//!
//! The schemas of what the API sends and receives are the model types of `dotjob-shared`
//! themselves (derived under its `openapi` feature); only the error body is described in
//! [`super::schema`].
//!
//! The document also drives access control: [`super::auth::AccessTable`] reads each
//! operation's `security` from it.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Doc, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::auth::{ADMIN_SCHEME, Access, READ_SCHEME};
use super::schema;

/// `GET /healthz` (served by the telemetry router; documented here).
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta",
    responses(
        (status = 200, description = "Redis answers", body = String, content_type = "text/plain"),
        (status = 503, description = "Redis is unreachable", body = String, content_type = "text/plain"),
    ),
    security(()))]
#[allow(dead_code)]
fn healthz() {}

/// `GET /metrics`: Prometheus text (served by the telemetry router; documented here).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "meta",
    responses((status = 200, description = "Prometheus exposition format", body = String, content_type = "text/plain")),
    security(()))]
#[allow(dead_code)]
fn metrics() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dotjob admin API",
        description = "Jobs, runs, groups, executors, dead letters and stats of a dotjob \
            scheduler. Listings are paginated by cursor: pass `next_cursor` of one page as \
            `cursor` of the next (`null` = last page), with `limit` 1-500 (default 50). \
            Authenticate with `Authorization: Bearer <token>`: the admin token for \
            everything, the read token for operations that change nothing. Errors are \
            `{\"error\": {\"code\", \"message\", \"field\"}}`.",
        license(name = "Apache-2.0")
    ),
    paths(healthz, metrics),
    components(schemas(schema::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "jobs", description = "Job definitions: create, list, change, pause, resume, trigger"),
        (name = "runs", description = "Run history, one run, its log lines, cancelling"),
        (name = "groups", description = "Executor groups, executors, dead letters"),
        (name = "stats", description = "Figures per group and job"),
        (name = "schedule", description = "Schedule preview"),
        (name = "alerts", description = "Alert rules (signed webhooks, Slack), test alerts, the delivery log"),
        (name = "meta", description = "Health, metrics, this document, the console"),
    )
)]
struct Base;

/// The two bearer-token schemes.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (ADMIN_SCHEME, "DOTJOB_ADMIN_TOKEN: every operation"),
            (
                READ_SCHEME,
                "DOTJOB_READ_TOKEN: operations that change nothing",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

/// Answers every operation of a kind can give, added where the handler did not list them.
struct SharedAnswers;

fn error_answer(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Error")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error_answer(description));
}

impl Modify for SharedAnswers {
    fn modify(&self, doc: &mut Doc) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let access = serde_json::to_value(&*op)
                    .map_or(Access::Admin, |v| super::auth::access_of(&v));
                add(op, "414", "Query string over 8 KiB");
                if access == Access::Public {
                    continue;
                }
                add(op, "401", "No or unknown bearer token");
                if access == Access::Admin {
                    add(op, "403", "The read-only token cannot call this");
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add(
                        op,
                        "400",
                        "Malformed path or query parameter (named in `error.field`)",
                    );
                }
                if op.request_body.is_some() {
                    add(op, "400", "Malformed body or invalid field");
                    add(op, "413", "Body over 1 MiB");
                    add(op, "415", "Body is not JSON");
                }
                add(op, "500", "Internal error (logged by the server)");
                add(op, "503", "Redis is unavailable; retry");
            }
        }
    }
}

/// The base document: meta operations and security schemes (the shared answers are added
/// by [`finish`] once every operation is in).
pub fn base() -> Doc {
    Base::openapi()
}

/// Applies the modifiers that need every operation present.
pub fn finish(mut doc: Doc) -> Doc {
    SharedAnswers.modify(&mut doc);
    doc
}

/// The served document, serialised once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let doc = super::document();
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned())
    })
}

/// The OpenAPI document of this server.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi_document", tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)),
    security(()))]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use dotjob_shared::model::job::{JobInput, JobView, limits};
    use dotjob_shared::model::run::Run;
    use serde_json::{Value, json};

    fn schema(name: &str) -> Value {
        let doc: Value = serde_json::from_str(super::json()).expect("document is JSON");
        let s = doc["components"]["schemas"][name].clone();
        assert!(s.is_object(), "no schema {name}");
        s
    }

    /// The keys of a serialised value fit its schema: none undocumented, none required
    /// missing.
    fn fits(name: &str, v: &Value) {
        let s = schema(name);
        let props: BTreeSet<&str> = s["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        let keys: BTreeSet<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let undocumented: Vec<_> = keys.difference(&props).collect();
        assert!(
            undocumented.is_empty(),
            "{name}: {undocumented:?} not documented"
        );
        for r in s["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or("");
            assert!(keys.contains(r), "{name}: required `{r}` not sent");
        }
    }

    #[test]
    fn the_job_schema_is_the_spec_plus_its_next_fire() {
        let spec = JobInput::from_json(br#"{"name": "n", "handler": "h", "schedule": "@hourly"}"#)
            .and_then(|i| i.into_spec(None, "01test", 1_790_000_000_000))
            .expect("valid job");
        let view = JobView {
            spec,
            next_fire_at: Some(1_790_000_000_000),
        };
        let v = serde_json::to_value(&view).expect("serialises");
        fits("Job", &v);
        assert_eq!(
            schema("Job")["properties"]["next_fire_at"]["format"],
            "date-time"
        );
        assert_eq!(
            schema("Job")["properties"]["created_at"]["format"],
            "date-time"
        );
        let props = schema("Job")["properties"]
            .as_object()
            .map_or(0, |p| p.len());
        assert_eq!(
            props,
            v.as_object().map_or(0, |o| o.len()),
            "every field is sent"
        );
    }

    #[test]
    fn the_run_schema_fits_a_full_run() {
        let f: HashMap<String, String> = [
            ("status", "failed"),
            ("job_version", "2"),
            ("entry", "1790000000123-0"),
            ("started_at", "1790000000200"),
            ("finished_at", "1790000000300"),
            ("attempt", "2"),
            ("params", "{}"),
            ("fired_by", "r|1"),
            ("shard", "0"),
            ("shards", "2"),
            ("shard_param", "1"),
            ("parent_run", "01abc-1"),
            (
                "history",
                r#"[{"attempt": 1, "status": "failed", "started_at": 1790000000000}]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let run = Run::from_fields("dotjob:{g}:run:01abc-1790000000000", &f).expect("run");
        let v = serde_json::to_value(&run).expect("serialises");
        fits("Run", &v);
        assert_eq!(
            schema("Run")["properties"]["retry_at"]["format"],
            "date-time"
        );
    }

    #[test]
    fn job_input_bounds_are_the_validation_limits() {
        let p = schema("JobInput")["properties"].clone();
        let max = |f: &str, k: &str| p[f][k].as_u64().unwrap_or_else(|| panic!("{f}.{k}"));
        assert_eq!(max("name", "maxLength"), limits::NAME_MAX as u64);
        assert_eq!(max("group", "maxLength"), limits::GROUP_MAX as u64);
        assert_eq!(max("handler", "maxLength"), limits::HANDLER_MAX as u64);
        assert_eq!(
            max("description", "maxLength"),
            limits::DESCRIPTION_MAX as u64
        );
        assert_eq!(max("timeout_ms", "maximum"), limits::TIMEOUT_MAX_MS);
        assert_eq!(
            max("misfire_threshold_ms", "maximum"),
            limits::TIMEOUT_MAX_MS
        );
        assert_eq!(
            max("max_attempts", "maximum"),
            u64::from(limits::ATTEMPTS_MAX)
        );
        assert_eq!(
            max("catch_up_limit", "maximum"),
            u64::from(limits::CATCH_UP_MAX)
        );
        let sharded = &schema("Routing")["oneOf"]
            .as_array()
            .and_then(|v| {
                v.iter()
                    .find(|s| s["properties"]["mode"]["enum"] == json!(["sharded"]))
                    .cloned()
            })
            .expect("a sharded variant");
        assert_eq!(
            sharded["properties"]["shards"]["maximum"],
            json!(limits::SHARDS_MAX)
        );
        // Server-assigned fields are refused, so they are not offered.
        for f in ["id", "version", "created_at", "updated_at"] {
            assert!(p.get(f).is_none(), "{f} is documented as input");
        }
        assert_eq!(schema("JobInput")["additionalProperties"], json!(false));
    }
}
