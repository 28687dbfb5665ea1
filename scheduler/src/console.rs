//! The web console: one static page that uses only the admin API.

use axum::response::Html;

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("console/index.html"))
}
