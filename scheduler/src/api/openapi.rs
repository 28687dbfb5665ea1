//! The OpenAPI 3.1 document, built from the code: each handler's `#[utoipa::path]`
//! annotation registers both its route and its operation (through `utoipa_axum::routes!`),
//! so the router and the document cannot disagree about what exists. This module adds what
//! is not a handler of the API itself (`/healthz`, `/metrics`, served by the telemetry
//! router), the security schemes, and the error answers every operation shares.
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
