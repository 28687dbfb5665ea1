//! The web pages the scheduler serves: the console (`/`), which uses only the admin API,
//! and the API viewer (`/api/docs`), which renders `/api/v1/openapi.json` and can try
//! operations. Both are single static files with no external assets (they work offline);
//! the pages are public, their API calls carry the token typed into them.

use axum::response::Html;

/// The web console.
#[utoipa::path(get, path = "/", operation_id = "console", tag = "meta",
    responses((status = 200, description = "The console (HTML)", body = String, content_type = "text/html")),
    security(()))]
pub async fn page() -> Html<&'static str> {
    Html(include_str!("console/index.html"))
}

/// The API viewer: operations, parameters, schemas, and a form to try each operation.
#[utoipa::path(get, path = "/api/docs", operation_id = "api_docs", tag = "meta",
    responses((status = 200, description = "The API viewer (HTML)", body = String, content_type = "text/html")),
    security(()))]
pub async fn api_docs() -> Html<&'static str> {
    Html(include_str!("console/api-docs.html"))
}
