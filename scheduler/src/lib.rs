//! dotjob scheduler: fires due jobs into each group's Redis stream, and serves the admin HTTP
//! API, `/metrics`, `/healthz` and the web console. Any number of replicas may run: each tick
//! is enqueued at most once (the firing script compares and moves the job's score
//! atomically).
//!
//! [`run`] wires the parts together; the binary only parses flags and calls it.

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use dotjob_shared::{Redis, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod alerts;
pub mod api;
pub mod config;
mod console;
pub mod engine;
pub mod janitor;
pub mod lease;
pub mod local_redis;
pub mod metrics;
pub mod plan;
pub mod settings;
pub mod stats;

pub use api::ApiOptions;
pub use engine::Engine;
pub use settings::EngineSettings;

/// What [`run`] needs besides the listener.
#[derive(Debug)]
pub struct Options {
    /// Redis handle.
    pub redis: Redis,
    /// Scheduling settings.
    pub engine: EngineSettings,
    /// In-process worker: its group, settings and stock handler settings.
    pub embedded_worker: Option<(
        String,
        dotjob_worker::Settings,
        dotjob_worker::stock::StockConfig,
    )>,
}

/// Runs the scheduler on `listener` until `shutdown` resolves, then stops serving, lets the
/// embedded worker drain, and returns. The admin API is open (no tokens): see [`run_with`].
pub async fn run(
    opts: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(opts, ApiOptions::default(), listener, shutdown).await
}

/// [`run`] with the admin API's tokens and CORS settings; refuses (before starting
/// anything) to serve an open API on a non-loopback address.
pub async fn run_with(
    opts: Options,
    api_opts: ApiOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_until(opts, api_opts, listener, shutdown, std::future::pending()).await
}

/// [`run_with`], and `force` resolving (a second Ctrl-C / SIGTERM: see
/// [`dotjob_worker::telemetry::Signals`]) stops at once: the embedded worker hands every
/// unfinished run back now instead of at the end of its grace period, and open API
/// connections (a log being followed) are no longer waited for. The leases are still
/// released. `force` resolving first stops as `shutdown` would, then forced.
pub async fn run_until(
    opts: Options,
    api_opts: ApiOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    force: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    api_opts
        .check(listener.local_addr()?)
        .map_err(anyhow::Error::msg)?;
    // `stop`: the first signal (graceful); `forced`: the second (now). Cancelled by the two
    // signal tasks below, read by every part.
    let stop = CancellationToken::new();
    let forced = CancellationToken::new();
    let leases = Arc::new(lease::Leases::new(
        opts.redis.clone(),
        dotjob_shared::process_id(),
        opts.engine.lease,
    ));
    let engine = Engine::new(opts.redis.clone(), leases, opts.engine.clone());
    let state = api::AppState {
        store: Store::new(opts.redis.clone()),
        engine: engine.clone(),
        stopping: stop.clone(),
    };
    let engine_task = tokio::spawn({
        let stop = stop.clone();
        engine.run(async move { stop.cancelled().await })
    });
    let worker_task = match opts.embedded_worker {
        Some((group, settings, stock)) => {
            let builder =
                dotjob_worker::Worker::builder(opts.redis.clone(), group).settings(settings);
            let worker = dotjob_worker::stock::register(builder, &stock)?.build()?;
            Some(tokio::spawn(worker.run_until(
                stop.clone().cancelled_owned(),
                forced.clone().cancelled_owned(),
            )))
        }
        None => None,
    };
    info!(listen = %listener.local_addr()?, "admin API and console listening");
    let app = api::router_with(state, &api_opts);
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    tokio::spawn({
        let (stop, forced) = (stop.clone(), forced.clone());
        async move {
            force.await;
            stop.cancel();
            forced.cancel();
        }
    });
    let serve = axum::serve(listener, app)
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
    tokio::select! {
        r = serve => r?,
        () = forced.cancelled() => {
            info!("second signal: not waiting for open API connections");
        }
    }
    let _ = engine_task.await;
    if let Some(w) = worker_task {
        w.await??;
    }
    Ok(())
}
