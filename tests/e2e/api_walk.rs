//! The admin API operation by operation, on a real listener with real workers: each case
//! starts its own scheduler on its own key prefix, and every answer is also validated against
//! the OpenAPI document (status documented, body matching its schema).
//!
//! The cases are grouped by resource: [`jobs`] (create, list, read, update, pause, delete),
//! [`runs`] (trigger, run history, cancel), [`groups`] (executors, dead letters, groups,
//! stats, schedule preview) and [`logs`] (reading and following a run's log lines).

use std::time::Duration;

use dotjob_tests::{Answer, Api, InProcess, delete_prefix, shared_redis, unique_prefix};
use serde_json::{Value, json};

use crate::api_doc::{Doc, encode, fill};
use crate::common::TestWorker;

mod alerts;
mod groups;
mod jobs;
mod logs;
mod runs;

const JOBS: &str = "/api/v1/jobs";
const JOB: &str = "/api/v1/jobs/{id}";
const PAUSE: &str = "/api/v1/jobs/{id}/pause";
const RESUME: &str = "/api/v1/jobs/{id}/resume";
const TRIGGER: &str = "/api/v1/jobs/{id}/trigger";
const RUNS: &str = "/api/v1/jobs/{id}/runs";
const RUN: &str = "/api/v1/runs/{id}";
const CANCEL: &str = "/api/v1/runs/{id}/cancel";
const LOGS: &str = "/api/v1/runs/{id}/logs";

/// The group the cases' jobs belong to, served by the test worker.
const GROUP: &str = "work";

/// Which workers a case runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workers {
    /// None: the case runs nothing.
    None,
    /// A test worker of [`GROUP`] (`echo`, `sleep`, `fail`, …).
    Test,
    /// The scheduler's embedded stock worker of `default` (shell allowed: `sh`, `true`).
    Stock,
}

/// One case's surroundings: a scheduler on a key prefix of its own, its workers, and a
/// client that checks every answer against the document.
struct Walk {
    api: Api,
    doc: Doc,
    url: String,
    prefix: String,
    sched: InProcess,
    worker: Option<TestWorker>,
}

impl Walk {
    /// Starts the scheduler (and `workers`) of case `case`.
    async fn start(case: &str, workers: Workers) -> Self {
        let url = shared_redis();
        let prefix = unique_prefix(case);
        let embedded = (workers == Workers::Stock).then_some("default");
        let sched = InProcess::start_with(&url, &prefix, embedded).await;
        let worker = (workers == Workers::Test).then(|| TestWorker::start(&url, &prefix, GROUP));
        let api = Api::new(&sched.base);
        api.wait_ready().await;
        Self {
            doc: Doc::fetch(&sched.base).await,
            api,
            url,
            prefix,
            sched,
            worker,
        }
    }

    /// Stops everything and deletes the case's keys.
    async fn finish(self) {
        if let Some(w) = self.worker {
            w.stop().await;
        }
        self.sched.shutdown().await;
        delete_prefix(&self.url, &self.prefix).await;
    }

    /// `method template?query` with the template's parameters filled from `args` in order;
    /// the answer must be documented.
    async fn go(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        query: &str,
        body: Option<Value>,
    ) -> Answer {
        let it = std::cell::RefCell::new(args.iter());
        let path = fill(template, |_| {
            (*it.borrow_mut().next().expect("a value per path parameter")).to_owned()
        });
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let a = self
            .api
            .raw(method, &uri, body.map(|b| b.to_string()))
            .await
            .expect("request");
        self.doc
            .check_answer(method, template, a.status, &a.body)
            .unwrap_or_else(|e| panic!("{e}"));
        a
    }

    /// Like [`go`](Self::go), and the answer must be a success; returns its body.
    async fn ok(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let a = self.go(method, template, args, query, body).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {template} {args:?} ?{query} → {}: {}",
            a.status,
            a.body
        );
        a.body
    }

    /// Creates a job of [`GROUP`] with handler `echo` and params `{"v": 1}`, `fields`
    /// overriding; returns it.
    async fn create(&self, name: &str, fields: Value) -> Value {
        let mut job = json!({"name": name, "group": GROUP, "handler": "echo", "params": {"v": 1}});
        for (k, v) in fields.as_object().expect("fields are an object") {
            job[k] = v.clone();
        }
        self.ok("POST", JOBS, &[], "", Some(job)).await
    }

    /// Creates a job like [`create`](Self::create); returns its id.
    async fn job(&self, name: &str, fields: Value) -> String {
        id_of(&self.create(name, fields).await)
    }

    /// Triggers a job (with `body`, e.g. a params override); returns the run id.
    async fn trigger(&self, job: &str, body: Option<Value>) -> String {
        let t = self.ok("POST", TRIGGER, &[job], "", body).await;
        t["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Triggers a job and waits for the run to end; returns the run.
    async fn run_to_end(&self, job: &str) -> Value {
        let run = self.trigger(job, None).await;
        self.final_run(&run).await
    }

    /// Waits until a run has a final status; returns it (validated against the document).
    async fn final_run(&self, run: &str) -> Value {
        let r = self.api.wait_run_final(run, Duration::from_secs(60)).await;
        self.doc
            .check_answer("GET", RUN, 200, &r)
            .unwrap_or_else(|e| panic!("{e}"));
        r
    }

    /// A job whose run sleeps a minute, and that run, running.
    async fn running_sleeper(&self) -> (String, String) {
        let job = self
            .job(
                "sleeper",
                json!({"handler": "sleep", "params": {"ms": 60000}, "timeout_ms": 120000}),
            )
            .await;
        let run = self.trigger(&job, None).await;
        self.api
            .wait_run_running(&run, Duration::from_secs(30))
            .await;
        (job, run)
    }

    /// A job that always fails (2 attempts, 100 ms apart), and its run, dead.
    async fn dead_run(&self) -> (String, String) {
        let job = self
            .job(
                "doomed",
                json!({"handler": "fail", "max_attempts": 2,
                    "backoff": {"base_ms": 100, "max_ms": 100}}),
            )
            .await;
        let run = self.trigger(&job, None).await;
        assert_eq!(self.final_run(&run).await["status"], "dead");
        (job, run)
    }
}

/// Status and `error.field` of a refused request.
fn refusal(a: &Answer) -> (u16, Option<&str>) {
    (a.status, a.body["error"]["field"].as_str())
}

/// The `id` of a job or run.
fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// The ids of a listing page.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

/// Every item of a listing, page by page (`limit` per page); asserts the pages do not
/// overlap and the last one says so.
async fn all_pages(
    w: &Walk,
    template: &str,
    args: &[&str],
    query: &str,
    limit: usize,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(cur) = &cursor {
            q.push_str(&format!("&cursor={}", encode(cur)));
        }
        let page = w
            .ok("GET", template, args, q.trim_start_matches('&'), None)
            .await;
        let got = ids(&page);
        assert!(got.len() <= limit, "page larger than limit");
        for id in got {
            assert!(!out.contains(&id), "{id} is on two pages");
            out.push(id);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}
