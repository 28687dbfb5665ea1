//! Built-in handlers for services not written in Rust: `http` (call a URL) and `shell` (run an
//! allow-listed program). `dotjob-worker` and the scheduler's embedded worker register both.

use std::sync::Arc;

use crate::{Handler, WorkerBuilder};

pub mod http;
pub mod shell;
pub mod shell_policy;

pub use shell_policy::ShellConfig;

/// Settings of the stock handlers.
#[derive(Clone, Debug, Default)]
pub struct StockConfig {
    /// What the `shell` handler may run.
    pub shell: ShellConfig,
}

impl From<Vec<String>> for StockConfig {
    /// Stock settings allowing the `shell` handler exactly these programs, nothing else
    /// configured.
    fn from(shell_allow: Vec<String>) -> Self {
        Self {
            shell: ShellConfig {
                allow: shell_allow,
                ..ShellConfig::default()
            },
        }
    }
}

/// Registers `http` and `shell`. Resolves the `shell` allow-list now (programs on this
/// process's `PATH`); a malformed setting is an error naming its variable.
pub fn register(builder: WorkerBuilder, cfg: &StockConfig) -> anyhow::Result<WorkerBuilder> {
    let http: Arc<dyn Handler> = Arc::new(http::HttpHandler::new());
    let shell: Arc<dyn Handler> =
        Arc::new(shell::ShellHandler::with_config(&cfg.shell).map_err(anyhow::Error::msg)?);
    Ok(builder
        .handler_arc("http", http)
        .handler_arc("shell", shell))
}
