//! A small client of the admin API for tests: raw calls returning status and JSON, and the
//! few operations most tests need (create, trigger, read runs, wait for a final run).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::wait_for;

/// A client of the admin API.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// An API answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Api {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Waits until `/healthz` answers 200.
    pub async fn wait_ready(&self) {
        let api = self.clone();
        wait_for("the API to answer", Duration::from_secs(60), || {
            let api = api.clone();
            async move {
                let r = api
                    .http
                    .get(format!("{}/healthz", api.base))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// Sends a request with an optional JSON body (`/api/v1` is prepended to `path`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.raw(
            method,
            &format!("/api/v1{path}"),
            body.map(Value::to_string),
        )
        .await
    }

    /// Sends a request to any path with an optional raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.context("request")?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body })
    }

    /// Creates a job; panics unless 201.
    pub async fn create_job(&self, job: &Value) -> Value {
        let a = self
            .call("POST", "/jobs", Some(job))
            .await
            .expect("create job");
        assert_eq!(a.status, 201, "create job: {:?}", a.body);
        a.body
    }

    /// Triggers a job; returns the run id.
    pub async fn trigger(&self, job_id: &str, params: Option<&Value>) -> String {
        let body = params.map(|p| serde_json::json!({ "params": p }));
        let a = self
            .call("POST", &format!("/jobs/{job_id}/trigger"), body.as_ref())
            .await
            .expect("trigger");
        assert_eq!(a.status, 202, "trigger: {:?}", a.body);
        a.body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// One run.
    pub async fn run(&self, run_id: &str) -> Value {
        let a = self
            .call("GET", &format!("/runs/{run_id}"), None)
            .await
            .expect("get run");
        assert_eq!(a.status, 200, "get run: {:?}", a.body);
        a.body
    }

    /// Every run of a job (all pages), newest first.
    pub async fn runs(&self, job_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/jobs/{job_id}/runs?limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let a = self.call("GET", &path, None).await.expect("list runs");
            assert_eq!(a.status, 200, "list runs: {:?}", a.body);
            out.extend(a.body["items"].as_array().cloned().unwrap_or_default());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Waits until run `run_id` is running; returns it.
    pub async fn wait_run_running(&self, run_id: &str, timeout: Duration) -> Value {
        self.wait_run(run_id, "start", timeout, |r| r["status"] == "running")
            .await
    }

    /// Waits until run `run_id` has a final status; returns it.
    pub async fn wait_run_final(&self, run_id: &str, timeout: Duration) -> Value {
        self.wait_run(run_id, "finish", timeout, |r| {
            let st = r["status"].as_str().unwrap_or("");
            let retrying = !r["retry_at"].is_null();
            !matches!(st, "queued" | "running") && !retrying
        })
        .await
    }

    /// Waits until run `run_id` is as `reached` wants (`what` it waits for, to report a
    /// timeout); returns it.
    async fn wait_run(
        &self,
        run_id: &str,
        what: &str,
        timeout: Duration,
        reached: fn(&Value) -> bool,
    ) -> Value {
        let api = self.clone();
        let id = run_id.to_owned();
        wait_for(&format!("run {run_id} to {what}"), timeout, || {
            let api = api.clone();
            let id = id.clone();
            async move {
                let r = api.run(&id).await;
                reached(&r).then_some(r)
            }
        })
        .await
    }
}
