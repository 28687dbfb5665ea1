//! Components running inside the test (or bench) process as tokio tasks: [`Spawned`] runs
//! one until it is stopped or dropped; [`InProcess`] is a whole scheduler run that way.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{init_tracing, redis_handle};

/// The shutdown signal a [`Spawned`] component gets: completes when it is to stop.
pub type Shutdown = BoxFuture<'static, ()>;

/// How long [`Spawned::stop`] waits for the component to finish.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// A component (scheduler, worker) running as a tokio task until [`stop`](Self::stop)
/// (which waits for it) or drop (which only signals it).
pub struct Spawned {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Spawned {
    /// Spawns `run(shutdown)`; `shutdown` completes when this is stopped or dropped.
    pub fn new<F, Fut>(run: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(rx.map(drop).boxed()));
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// A worker running until stopped.
    pub fn worker(worker: dotjob_worker::Worker) -> Self {
        Self::new(|shutdown| worker.run(shutdown))
    }

    /// Signals it to stop and waits (at most a minute) for it to finish.
    pub async fn stop(mut self) {
        self.signal();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(STOP_WAIT, t).await;
        }
    }

    fn signal(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.signal();
    }
}

/// A scheduler running inside the test process.
pub struct InProcess {
    /// Base URL of its API.
    pub base: String,
    task: Spawned,
}

impl InProcess {
    /// Starts a scheduler on 127.0.0.1:0 without an embedded worker.
    pub async fn start(redis_url: &str, prefix: &str) -> Self {
        Self::start_with(redis_url, prefix, None).await
    }

    /// Starts one with an embedded stock worker of `group`.
    pub async fn start_with(redis_url: &str, prefix: &str, embedded: Option<&str>) -> Self {
        Self::start_full(
            redis_url,
            prefix,
            embedded,
            dotjob_scheduler::EngineSettings::default(),
        )
        .await
    }

    /// Starts one with scheduling settings of the test's choice.
    pub async fn start_full(
        redis_url: &str,
        prefix: &str,
        embedded: Option<&str>,
        engine: dotjob_scheduler::EngineSettings,
    ) -> Self {
        Self::start_exposed(
            redis_url,
            prefix,
            embedded,
            engine,
            dotjob_scheduler::ApiOptions::default(),
        )
        .await
    }

    /// Starts one without an embedded worker whose admin API has the tokens and CORS
    /// origins of `api`.
    pub async fn start_api(
        redis_url: &str,
        prefix: &str,
        api: dotjob_scheduler::ApiOptions,
    ) -> Self {
        Self::start_exposed(
            redis_url,
            prefix,
            None,
            dotjob_scheduler::EngineSettings::default(),
            api,
        )
        .await
    }

    /// Starts one with every setting of the test's choice.
    pub async fn start_exposed(
        redis_url: &str,
        prefix: &str,
        embedded: Option<&str>,
        engine: dotjob_scheduler::EngineSettings,
        api: dotjob_scheduler::ApiOptions,
    ) -> Self {
        init_tracing();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let opts = dotjob_scheduler::Options {
            redis: redis_handle(redis_url, prefix),
            engine,
            embedded_worker: embedded.map(|g| {
                (
                    g.to_owned(),
                    dotjob_worker::Settings::default(),
                    vec!["true".to_owned(), "sh".to_owned()].into(),
                )
            }),
        };
        let task =
            Spawned::new(|shutdown| dotjob_scheduler::run_with(opts, api, listener, shutdown));
        Self { base, task }
    }

    /// Stops it and waits.
    pub async fn shutdown(self) {
        self.task.stop().await;
    }
}
