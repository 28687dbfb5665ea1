//! The web pages the scheduler serves: the console, which uses only the admin API, and the
//! API viewer (`/api/docs`), which renders `/api/v1/openapi.json` and can try operations.
//!
//! The console is one HTML shell, one stylesheet and a few plain ES modules, embedded in
//! the binary (no build step, no external assets: it works offline). The shell is served
//! at `/` and at every console route (`/jobs`, `/jobs/{id}`, `/runs/{id}`, …) so links can
//! be shared and reloaded; the browser's History API does the rest. Assets live under
//! `/console/<version>/`, where the version is a hash of their content: they are cached
//! for a year (`immutable`) and a new build changes every URL, while the shell itself is
//! revalidated on each load. The pages are public; their API calls carry the token typed
//! into them.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// One embedded file: its path under the asset root, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($(($path:literal, $ct:expr)),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!("console/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything the console loads besides the shell.
static ASSETS: &[Asset] = assets![
    ("app.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
    ("js/main.js", JS),
    ("js/api.js", JS),
    ("js/ui.js", JS),
    ("js/time.js", JS),
    ("js/chart.js", JS),
    ("js/overview.js", JS),
    ("js/jobs.js", JS),
    ("js/job.js", JS),
    ("js/jobform.js", JS),
    ("js/runs.js", JS),
    ("js/run.js", JS),
    ("js/groups.js", JS),
];

/// The shell, with `{{V}}` standing for the asset version.
const SHELL: &str = include_str!("console/index.html");

/// Console routes that answer the shell (the page itself is chosen in the browser).
const PAGES: &[&str] = &[
    "/jobs",
    "/jobs/new",
    "/jobs/{id}",
    "/runs",
    "/runs/{id}",
    "/groups",
    "/groups/{group}",
];

/// A hash of every asset (FNV-1a, 64 bits), as 12 hex digits.
fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for a in ASSETS {
            for b in a.path.bytes().chain(a.body.iter().copied()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", h >> 16)
    })
}

fn shell_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| SHELL.replace("{{V}}", version()))
}

/// What the shell may load and call: only this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console shell.
fn shell() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(CSP),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(shell_html()),
    )
        .into_response()
}

/// The web console (its overview page; the other pages are routes of the same shell).
#[utoipa::path(get, path = "/", operation_id = "console", tag = "meta",
    responses((status = 200, description = "The console (HTML)", body = String, content_type = "text/html")),
    security(()))]
pub async fn page() -> Response {
    shell()
}

/// An asset of this build; another version is gone (404), so a stale shell never mixes
/// old and new files.
async fn asset(Path((v, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let found = ASSETS.iter().find(|a| a.path == path);
    let (true, Some(a)) = (v == version(), found) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let etag = format!("\"{}\"", version());
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.split(',').any(|t| t.trim() == etag));
    let cache = [
        (
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(CONTENT_TYPE, HeaderValue::from_static(a.content_type))],
        a.body,
    )
        .into_response()
}

/// `/favicon.ico` for browsers that ask for it regardless: the SVG icon.
async fn favicon() -> Response {
    let icon = ASSETS
        .iter()
        .find(|a| a.path == "favicon.svg")
        .map_or(&[][..], |a| a.body);
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("image/svg+xml")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        icon,
    )
        .into_response()
}

/// The console's routes besides `/`: its pages (the shell) and its assets. Public.
pub fn router() -> Router {
    let mut r = Router::new()
        .route("/console/{v}/{*path}", get(asset))
        .route("/favicon.ico", get(favicon));
    for p in PAGES {
        r = r.route(p, get(|| async { shell() }));
    }
    r
}

/// The API viewer: operations, parameters, schemas, and a form to try each operation.
#[utoipa::path(get, path = "/api/docs", operation_id = "api_docs", tag = "meta",
    responses((status = 200, description = "The API viewer (HTML)", body = String, content_type = "text/html")),
    security(()))]
pub async fn api_docs() -> Html<&'static str> {
    Html(include_str!("console/api-docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Total size of the console's scripts and stylesheet.
    fn script_and_style_bytes() -> usize {
        ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".js") || a.path.ends_with(".css"))
            .map(|a| a.body.len())
            .sum()
    }

    /// The console's scripts and stylesheet stay small: under 150 KB uncompressed.
    #[test]
    fn scripts_and_style_fit_the_budget() {
        let total = script_and_style_bytes();
        assert!(total > 10_000, "assets look missing: {total} bytes");
        assert!(total < 150 * 1024, "console JS + CSS is {total} bytes");
    }

    #[test]
    fn the_shell_names_only_assets_that_exist() {
        let html = shell_html();
        assert!(!html.contains("{{V}}"));
        let prefix = format!("/console/{}/", version());
        let mut named = 0;
        for part in html.split(&prefix).skip(1) {
            let path = part.split('"').next().unwrap_or("");
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "{path} is not embedded"
            );
            named += 1;
        }
        assert!(
            named >= 3,
            "the shell loads the stylesheet, the icon and main.js"
        );
        // Every module a script imports is embedded too.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for imp in text
                .split("from './")
                .skip(1)
                .chain(text.split("import('./").skip(1))
            {
                let file = imp.split('\'').next().unwrap_or("");
                let path = format!("js/{file}");
                assert!(
                    ASSETS.iter().any(|x| x.path == path),
                    "{} imports {path}",
                    a.path
                );
            }
        }
    }

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn assets_are_served_with_types_and_long_caching() {
        let v = version();
        let r = get(&format!("/console/{v}/js/main.js"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], JS);
        assert!(
            r.headers()[CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let css = get(&format!("/console/{v}/app.css"), &[]).await;
        assert!(
            css.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
        let again = get(
            &format!("/console/{v}/js/main.js"),
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let stale = get("/console/000000000000/js/main.js", &[]).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
        let missing = get(&format!("/console/{v}/js/nope.js"), &[]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn deep_links_answer_the_shell_revalidated() {
        for uri in [
            "/jobs",
            "/jobs/01abc",
            "/jobs/new",
            "/runs/01abc-5",
            "/groups/billing",
        ] {
            let r = get(uri, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
            assert!(
                r.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("'self'")
            );
        }
    }
}
