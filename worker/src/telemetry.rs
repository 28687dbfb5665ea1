//! Logs, metrics and health for dotjob processes (and for services embedding the worker):
//! tracing to stderr (human or JSON lines, `DOTJOB_LOG_FORMAT`), a Prometheus recorder (every
//! family described), `/metrics`, `/healthz` (the process is up) and `/readyz` (Redis answers a
//! PING; a scheduler adds its leases), and the shutdown signals (a first one stops gracefully,
//! a second forces).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dotjob_shared::Redis;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How log lines are written (`DOTJOB_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, coloured on a terminal (the default).
    #[default]
    Human,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's fields
    /// (`message` …) at the top level, and the current span's fields (a run's `job.id`,
    /// `job.group`, `run.id`, `run.attempt`) under `span`.
    Json,
}

impl LogFormat {
    /// Reads `DOTJOB_LOG_FORMAT` (`human` or `json`; unset or empty is `human`).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("DOTJOB_LOG_FORMAT") {
            Err(_) => Ok(Self::Human),
            Ok(v) => Self::parse(&v),
        }
    }

    fn parse(v: &str) -> Result<Self, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "human" | "text" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "DOTJOB_LOG_FORMAT: \"{v}\" is not a log format; use `human` or `json`"
            )),
        }
    }
}

/// Logs to stderr in the format of `DOTJOB_LOG_FORMAT` (human when unset or unknown: a
/// binary checks [`LogFormat::from_env`] first and refuses a bad value), filtered by
/// `RUST_LOG` (default `info`).
pub fn init_tracing() {
    init_logs(LogFormat::from_env().unwrap_or_default());
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                dotjob_shared::metrics::describe();
            }
            handle
        })
        .clone()
}

/// What a process adds to its `/readyz` body (a scheduler: the leases it holds or waits for).
pub type ReadyDetail = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// How long `/readyz` waits for Redis to answer its PING.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Probe {
    redis: Redis,
    metrics: PrometheusHandle,
    detail: Option<ReadyDetail>,
}

/// `GET /healthz`: the process is up and serving (a liveness probe; Redis is not asked).
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when Redis answers a PING within a second, else 503; the JSON body
/// says why, and what the process adds (a scheduler's leases).
async fn readyz(State(p): State<Probe>) -> Response {
    let ping = tokio::time::timeout(READY_PING_TIMEOUT, p.redis.ping()).await;
    let full = matches!(p.redis.memory_full().await, Ok(true));
    let (ok, redis) = match ping {
        Ok(Ok(_)) if full => (
            false,
            serde_json::json!({"ok": false, "error": "Redis is out of memory (maxmemory reached); writes are refused"}),
        ),
        Ok(Ok(rtt)) => (
            true,
            serde_json::json!({"ok": true, "roundtrip_ms": rtt.as_secs_f64() * 1_000.0}),
        ),
        Ok(Err(e)) => (
            false,
            serde_json::json!({"ok": false, "error": e.to_string()}),
        ),
        Err(_) => (
            false,
            serde_json::json!({"ok": false, "error": "no answer to PING within 1 s"}),
        ),
    };
    let mut body = serde_json::json!({
        "status": if ok { "ready" } else { "unavailable" },
        "redis": redis,
    });
    if let Some(d) = &p.detail
        && let (Some(b), serde_json::Value::Object(extra)) = (body.as_object_mut(), d())
    {
        b.extend(extra);
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(p): State<Probe>) -> String {
    p.metrics.render()
}

/// `GET /healthz` (200 while the process serves), `GET /readyz` (200 when Redis answers,
/// else 503, JSON) and `GET /metrics` (Prometheus text).
pub fn router(redis: Redis) -> Router {
    router_with(redis, None)
}

/// [`router`] with what a process adds to the `/readyz` body.
pub fn router_with(redis: Redis, detail: Option<ReadyDetail>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Probe {
            redis,
            metrics: metrics_handle(),
            detail,
        })
}

/// Serves [`router`] on `addr` in the background.
pub async fn serve_metrics(addr: SocketAddr, redis: Redis) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(redis)).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

/// Ctrl-C and SIGTERM, counted from the moment [`Signals::listen`] is called: the first
/// asks for a graceful stop, a second for an immediate one.
#[derive(Clone, Debug)]
pub struct Signals {
    count: tokio::sync::watch::Receiver<u32>,
}

impl Signals {
    /// Starts counting signals (a background task).
    pub fn listen() -> Self {
        let (tx, count) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                shutdown_signal().await;
                tx.send_modify(|n| *n += 1);
                if tx.is_closed() {
                    break;
                }
            }
        });
        Self { count }
    }

    /// Resolves once `n` signals arrived.
    async fn nth(mut self, n: u32) {
        let _ = self.count.wait_for(|c| *c >= n).await;
    }

    /// Resolves on the first signal (stop gracefully).
    pub fn first(&self) -> impl Future<Output = ()> + Send + 'static {
        self.clone().nth(1)
    }

    /// Resolves on the second signal (stop now).
    pub fn second(&self) -> impl Future<Output = ()> + Send + 'static {
        self.clone().nth(2)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn log_formats_parse() {
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(" JSON "), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Human));
        assert_eq!(LogFormat::parse("human"), Ok(LogFormat::Human));
        assert!(
            LogFormat::parse("yaml")
                .unwrap_err()
                .contains("DOTJOB_LOG_FORMAT")
        );
    }
}
