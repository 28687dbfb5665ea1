//! The `http` handler: one HTTP request per run.
//!
//! Params: `url` (http or https, required), `method` (default `POST`), `headers` (object of
//! strings), `body` (a string is sent as is, any other JSON as `application/json`). A 2xx
//! response succeeds with `{status, body}` (body cut at 16 KiB). Other statuses fail; 4xx
//! other than 408 and 429 fail without retry, since repeating the request cannot help.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Handler, HandlerError, HandlerResult, RunContext, handler::HandlerFuture};

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

/// Calls a URL.
pub struct HttpHandler {
    client: reqwest::Client,
}

impl HttpHandler {
    /// A handler with its own connection pool.
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .user_agent(concat!("dotjob-worker/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Default for HttpHandler {
    fn default() -> Self {
        Self::new()
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

async fn call(client: reqwest::Client, ctx: RunContext) -> HandlerResult {
    let p: Params = ctx.params_as()?;
    let url =
        reqwest::Url::parse(&p.url).map_err(|e| HandlerError::fatal(format!("params.url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HandlerError::fatal(
            "params.url: only http and https are allowed",
        ));
    }
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
    let resp = req
        .send()
        .await
        .map_err(|e| HandlerError::retry(format!("request failed: {e}")))?;
    let status = resp.status();
    let body = cut(resp.text().await.unwrap_or_default());
    ctx.log(format!("HTTP {}", status.as_u16()));
    if status.is_success() {
        return Ok(json!({ "status": status.as_u16(), "body": body }));
    }
    let msg = format!("HTTP {}: {}", status.as_u16(), cut(body));
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(HandlerError::fatal(msg))
    } else {
        Err(HandlerError::retry(msg))
    }
}

impl Handler for HttpHandler {
    fn call(&self, ctx: RunContext) -> HandlerFuture {
        Box::pin(call(self.client.clone(), ctx))
    }
}
