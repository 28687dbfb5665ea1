//! The `http` handler: one HTTP request per run.
//!
//! Params: `url` (http or https, required), `method` (default `POST`), `headers` (object of
//! strings), `body` (a string is sent as is, any other JSON as `application/json`). A 2xx
//! response succeeds with `{status, body}` (body cut at 16 KiB). Other statuses fail; 4xx
//! other than 408 and 429 fail without retry, since repeating the request cannot help.
//!
//! Where the request may go is a [`HostPolicy`] (`DOTJOB_HTTP_ALLOW`), enforced on the
//! address connected to and on every redirect (at most 5); a refused destination fails the
//! run without retry. No proxy is used (a proxy would connect on the handler's behalf,
//! out of the policy's sight). The connection must be made within 10 s and each read of
//! the response must progress within 60 s; the run's own timeout bounds the whole exchange
//! (the handler is cancelled at the deadline). The response body is read only up to the
//! 16 KiB kept, then the connection is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http_policy::{GuardedResolver, HostPolicy, refusal};
use crate::{Handler, HandlerError, HandlerResult, RunContext, handler::HandlerFuture};

/// Time to establish a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const BODY_MAX: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// Calls a URL the policy allows.
pub struct HttpHandler {
    client: reqwest::Client,
    policy: Arc<HostPolicy>,
}

impl HttpHandler {
    /// A handler with its own connection pool, connecting only where `policy` allows.
    /// Fails only when the TLS backend cannot initialise.
    pub fn with_policy(policy: HostPolicy) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .user_agent(concat!("dotjob-worker/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(policy.redirect_policy())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
            .map_err(|e| format!("cannot build the http handler's client: {e}"))?;
        Ok(Self { client, policy })
    }
}

fn cut(mut s: String) -> String {
    if s.len() > BODY_MAX {
        let mut at = BODY_MAX;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
    s
}

/// The run's error for a failed request: a policy refusal is fatal, anything else may
/// succeed on a later attempt.
fn request_error(e: &reqwest::Error) -> HandlerError {
    if let Some(r) = refusal(e) {
        return HandlerError::fatal(format!("refused: {r}"));
    }
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    HandlerError::retry(format!("request failed: {msg}"))
}

/// Reads at most `BODY_MAX` bytes of the body (then stops reading), as text.
async fn read_body(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    let mut more = false;
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > BODY_MAX {
            more = true;
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    if more { cut(text) } else { text }
}

async fn call(client: reqwest::Client, policy: Arc<HostPolicy>, ctx: RunContext) -> HandlerResult {
    let p: Params = ctx.params_as()?;
    let url =
        reqwest::Url::parse(&p.url).map_err(|e| HandlerError::fatal(format!("params.url: {e}")))?;
    policy
        .check_url(&url)
        .map_err(|e| HandlerError::fatal(format!("params.url: refused: {e}")))?;
    let method = p.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| HandlerError::fatal(format!("params.method: `{method}` is not a method")))?;
    let mut req = client.request(method.clone(), url.clone());
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    req = match p.body {
        None | Some(Value::Null) => req,
        Some(Value::String(s)) => req.body(s),
        Some(v) => req.json(&v),
    };
    ctx.log(format!("{method} {url}"));
    let mut resp = req.send().await.map_err(|e| request_error(&e))?;
    let status = resp.status();
    let body = read_body(&mut resp).await;
    drop(resp);
    ctx.log(format!("HTTP {}", status.as_u16()));
    if status.is_success() {
        return Ok(json!({ "status": status.as_u16(), "body": body }));
    }
    let msg = format!("HTTP {}: {}", status.as_u16(), body);
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(HandlerError::fatal(msg))
    } else {
        Err(HandlerError::retry(msg))
    }
}

impl Handler for HttpHandler {
    fn call(&self, ctx: RunContext) -> HandlerFuture {
        Box::pin(call(self.client.clone(), self.policy.clone(), ctx))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::any;

    use super::*;

    /// A local server counting the requests it answers: `/ok`, `/big` (1 MiB), `/loop/{n}`
    /// (redirects to `/loop/{n+1}`) and `/to/{port}` (redirects to 127.0.0.2 on `port`).
    async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/ok",
                any(|State(h): State<Arc<AtomicUsize>>| async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    "fine"
                }),
            )
            .route(
                "/big",
                any(|State(h): State<Arc<AtomicUsize>>| async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    "x".repeat(1 << 20)
                }),
            )
            .route(
                "/loop/{n}",
                any(
                    |State(h): State<Arc<AtomicUsize>>, Path(n): Path<u32>| async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        Redirect::temporary(&format!("/loop/{}", n + 1)).into_response()
                    },
                ),
            )
            .route(
                "/to/{port}",
                any(
                    |State(h): State<Arc<AtomicUsize>>, Path(port): Path<u16>| async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        Redirect::temporary(&format!("http://127.0.0.2:{port}/ok")).into_response()
                    },
                ),
            )
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, hits)
    }

    fn handler(allow: &[&str]) -> HttpHandler {
        let list: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        HttpHandler::with_policy(HostPolicy::parse(&list).unwrap()).unwrap()
    }

    async fn get(h: &HttpHandler, url: &str) -> HandlerResult {
        h.call(RunContext::for_test(json!({"url": url, "method": "GET"})))
            .await
    }

    #[tokio::test]
    async fn loopback_metadata_and_local_names_are_refused_by_default() {
        let (addr, hits) = server().await;
        let h = handler(&[]);
        for url in [
            format!("http://{addr}/ok"),
            format!("http://localhost:{}/ok", addr.port()),
            format!("http://[::ffff:127.0.0.1]:{}/ok", addr.port()),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
        ] {
            let err = get(&h, &url).await.unwrap_err();
            assert!(!err.is_retryable(), "{url}: {err}");
            assert!(err.message().contains("refused"), "{url}: {err}");
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "a refused request reached the server"
        );
    }

    #[tokio::test]
    async fn listed_hosts_are_called() {
        let (addr, hits) = server().await;
        let by_name = handler(&["localhost"]);
        let ok = get(&by_name, &format!("http://localhost:{}/ok", addr.port()))
            .await
            .unwrap();
        assert_eq!(ok, json!({"status": 200, "body": "fine"}));
        let by_addr = handler(&["127.0.0.1"]);
        get(&by_addr, &format!("http://{addr}/ok")).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn redirects_are_checked_and_bounded() {
        let (addr, hits) = server().await;
        let h = handler(&["127.0.0.1"]);
        let err = get(&h, &format!("http://{addr}/to/{}", addr.port()))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.message().contains("redirect to http://127.0.0.2"),
            "{err}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "only the allowed host was called"
        );
        let err = get(&h, &format!("http://{addr}/loop/0")).await.unwrap_err();
        assert!(err.message().contains("more than 5 redirects"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1 + 6);
    }

    #[tokio::test]
    async fn the_response_body_is_read_only_up_to_the_cap() {
        let (addr, _) = server().await;
        let h = handler(&["127.0.0.1"]);
        let ok = get(&h, &format!("http://{addr}/big")).await.unwrap();
        let body = ok["body"].as_str().unwrap();
        assert!(body.len() <= BODY_MAX + '…'.len_utf8(), "{}", body.len());
        assert!(body.ends_with('…'));
    }
}
