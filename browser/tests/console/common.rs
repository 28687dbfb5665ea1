//! What every console test starts: a scheduler with an admin and a read token, a worker
//! of group `web` with test handlers, an API client and a browser signed in (or not).

use std::time::Duration;

use dotjob_browser_tests::Browser;
use dotjob_scheduler::ApiOptions;
use dotjob_scheduler::api::auth::Secret;
use dotjob_tests::{Api, InProcess, delete_prefix, redis_handle, shared_redis, unique_prefix};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN: &str = "admin-token-for-the-console-tests";
pub const READ: &str = "read-token-for-the-console-tests";
/// The group the test worker serves.
pub const GROUP: &str = "web";

/// A worker of `group` with handlers `noop`, `sleep` (params.ms; the worker drops it when
/// the run is cancelled),
/// `talk` (logs params.lines lines, one every params.every_ms) and `fail`.
pub fn start_worker(url: &str, prefix: &str, group: &str) -> oneshot::Sender<()> {
    let worker = Worker::builder(redis_handle(url, prefix), group)
        .handler("noop", |_ctx: RunContext| async {
            Ok::<_, HandlerError>(json!({"ok": true}))
        })
        .handler("sleep", |ctx: RunContext| async move {
            let ms: u64 = ctx.param("ms")?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(json!({"slept_ms": ms}))
        })
        .handler("talk", |ctx: RunContext| async move {
            let lines: u64 = ctx.param("lines")?;
            let every: u64 = ctx.param("every_ms")?;
            for i in 1..=lines {
                ctx.log(format!("line {i} of {lines}"));
                tokio::time::sleep(Duration::from_millis(every)).await;
            }
            Ok::<_, HandlerError>(json!({"lines": lines}))
        })
        .handler("fail", |_ctx: RunContext| async {
            Err::<(), _>(HandlerError::retry("this handler always fails"))
        })
        .reclaim_after(Duration::from_secs(2))
        .grace(Duration::from_secs(2))
        .build()
        .expect("worker");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    tx
}

/// A scheduler, a worker and a browser for one test.
pub struct Setup {
    pub sched: InProcess,
    /// The admin API client.
    pub api: Api,
    pub url: String,
    pub prefix: String,
    pub browser: Browser,
    worker: Option<oneshot::Sender<()>>,
}

impl Setup {
    /// Starts everything with a `width` × `height` window; `None` when the browser is not
    /// installed (outside CI).
    pub async fn start(test: &str, width: u32, height: u32, worker: bool) -> Option<Self> {
        let url = shared_redis();
        let prefix = unique_prefix(test);
        let sched = InProcess::start_api(
            &url,
            &prefix,
            ApiOptions {
                admin_token: Some(Secret::new(ADMIN)),
                read_token: Some(Secret::new(READ)),
                cors_origins: vec![],
                ..ApiOptions::default()
            },
        )
        .await;
        let api = Api::new(&sched.base).with_token(ADMIN);
        api.wait_ready().await;
        let browser = Browser::launch(&sched.base, width, height)
            .await
            .expect("launch the browser")?;
        let worker = worker.then(|| start_worker(&url, &prefix, GROUP));
        Some(Self {
            sched,
            api,
            url,
            prefix,
            browser,
            worker,
        })
    }

    /// Opens the console and signs in with `token`.
    pub async fn sign_in(&self, token: &str) {
        let b = &self.browser;
        b.goto("/").await.expect("open the console");
        b.fill("#token", token).await.expect("type the token");
        b.click_button("Sign in").await.expect("sign in");
        b.wait_ready().await.expect("the overview after signing in");
    }

    /// Creates a job through the API; returns it.
    pub async fn job(&self, body: Value) -> Value {
        self.api.create_job(&body).await
    }

    /// Stops everything and deletes the test's keys.
    pub async fn finish(mut self) {
        if let Some(tx) = self.worker.take() {
            let _ = tx.send(());
        }
        self.browser.quit().await;
        self.sched.shutdown().await;
        delete_prefix(&self.url, &self.prefix).await;
    }
}

/// The text of a JSON string field.
pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}
