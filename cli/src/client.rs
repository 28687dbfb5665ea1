//! The HTTP client of the admin API (`/api/v1`), the only way `dotjob` reaches a scheduler.
//!
//! Paths are given as segments (each percent-encoded on its own), answers are JSON values.
//! A non-2xx answer becomes an [`ApiError`] (`{"error": {"code", "message", "field"}}`), a
//! transport failure a [`Failure`] with exit code 5. Write answers may carry a `warnings`
//! list: [`Client::request`] returns it apart, the short helpers print it on stderr.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, Url};
use serde_json::Value;

use crate::error::{ApiError, Failure};
use crate::output;

/// Page size used when following cursors.
pub const PAGE: usize = 500;

/// A successful answer: its body (`Null` when empty) and its `warnings`.
#[derive(Debug)]
pub struct Answer {
    /// The JSON body.
    pub body: Value,
    /// Warnings the server attached to a write.
    pub warnings: Vec<String>,
}

/// A client of one scheduler's admin API.
#[derive(Clone, Debug)]
pub struct Client {
    /// `<server>/api/v1`.
    api: Url,
    /// For ordinary requests (30 s timeout).
    http: reqwest::Client,
    /// For long-lived streams (no overall timeout).
    streaming: reqwest::Client,
    token: Option<String>,
}

/// The text of an error and its causes, one after the other.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// The `warnings` of an answer, as lines (strings as they are, objects by their `message`).
fn warnings_of(body: &Value) -> Vec<String> {
    body.get("warnings")
        .and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .map(|w| match w {
                    Value::String(s) => s.clone(),
                    other => other["message"]
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Client {
    /// A client of the scheduler at `server` (e.g. `http://127.0.0.1:8080`).
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let mut base = Url::parse(server.trim_end_matches('/'))
            .map_err(|e| Failure::usage(format!("--server `{server}` is not a URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(
                Failure::usage(format!("--server `{server}` is not an http(s) URL")).into(),
            );
        }
        base.path_segments_mut()
            .map_err(|()| Failure::usage(format!("--server `{server}` cannot be a base URL")))?
            .pop_if_empty()
            .extend(["api", "v1"]);
        let build = |timeout: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("dotjob-cli/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            b.build()
        };
        Ok(Self {
            api: base,
            http: build(Some(Duration::from_secs(30)))?,
            streaming: build(None)?,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The URL of an API path given as segments, with a query.
    pub fn url(&self, path: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        url
    }

    fn transport(&self, e: &reqwest::Error) -> anyhow::Error {
        let origin = self.api.origin().ascii_serialization();
        Failure::server(format!("cannot talk to {origin}: {}", chain(e))).into()
    }

    /// Sends a request; a non-2xx answer is an [`ApiError`].
    pub async fn request(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let mut req = self.http.request(method, self.url(path, query));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_body(status, &text).into());
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|e| Failure::server(format!("the server's answer is not JSON ({e})")))?
        };
        Ok(Answer {
            warnings: warnings_of(&body),
            body,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let a = self.request(method, path, query, body).await?;
        for w in &a.warnings {
            output::warn(w);
        }
        Ok(a.body)
    }

    /// `GET`.
    pub async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Value> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST` with an optional JSON body.
    pub async fn post(&self, path: &[&str], body: Option<&Value>) -> Result<Value> {
        self.call(Method::POST, path, &[], body).await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, path: &[&str], body: &Value) -> Result<Value> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &[&str]) -> Result<Value> {
        self.call(Method::DELETE, path, &[], None).await
    }

    /// Every item of a paginated listing, following `next_cursor` until it is `null`;
    /// stops early once `max` items are in.
    pub async fn pages(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        max: Option<usize>,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = max.map_or(PAGE, |m| (m - out.len()).clamp(1, PAGE));
            let mut q = query.to_vec();
            q.push(("limit", want.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self.get(path, &q).await?;
            if let Some(items) = page["items"].as_array() {
                out.extend(items.iter().cloned());
            }
            if max.is_some_and(|m| out.len() >= m) {
                out.truncate(max.unwrap_or(usize::MAX));
                return Ok(out);
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Opens a long-lived `GET` (an event stream); a non-2xx answer is an [`ApiError`].
    pub async fn stream(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        let mut req = self
            .streaming
            .get(self.url(path, query))
            .header("accept", "text/event-stream");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(ApiError::from_body(status, &text).into());
        }
        Ok(resp)
    }

    /// Reads one chunk of a stream opened by [`Client::stream`].
    pub async fn chunk(&self, resp: &mut reqwest::Response) -> Result<Option<Vec<u8>>> {
        let c = resp.chunk().await.map_err(|e| self.transport(&e))?;
        Ok(c.map(|b| b.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_are_encoded_segment_by_segment() {
        let c = Client::new("http://127.0.0.1:8080/", None).unwrap();
        let u = c.url(&["groups", "g", "executors", "host/1 x", "disable"], &[]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/api/v1/groups/g/executors/host%2F1%20x/disable"
        );
        let u = c.url(&["jobs"], &[("name", "a&b".to_owned())]);
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/api/v1/jobs?name=a%26b");
        let c = Client::new("https://ops.example.com/dotjob", None).unwrap();
        assert_eq!(
            c.url(&["jobs"], &[]).as_str(),
            "https://ops.example.com/dotjob/api/v1/jobs"
        );
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("not a url", None).is_err());
    }

    #[test]
    fn warnings_are_read_as_strings_or_messages() {
        let body = json!({"id": "x", "warnings": ["no executor", {"code": "c", "message": "m"}]});
        assert_eq!(warnings_of(&body), vec!["no executor", "m"]);
        assert!(warnings_of(&json!({"id": "x"})).is_empty());
    }
}
