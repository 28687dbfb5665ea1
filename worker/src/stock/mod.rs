//! Built-in handlers for services not written in Rust: `http` (call a URL) and `shell` (run an
//! allow-listed program). `dotjob-worker` and the scheduler's embedded worker register both.

use std::sync::Arc;

use crate::{Handler, WorkerBuilder};

pub mod http;
pub mod http_policy;
pub mod shell;
pub mod shell_policy;

pub use shell_policy::ShellConfig;

/// Settings of the stock handlers.
#[derive(Clone, Debug, Default)]
pub struct StockConfig {
    /// What the `shell` handler may run.
    pub shell: ShellConfig,
    /// Where the `http` handler may connect (`DOTJOB_HTTP_ALLOW`; empty = any public
    /// address).
    pub http_allow: Vec<String>,
    /// The secrets file `{"$secret": "NAME"}` references are resolved from
    /// (`DOTJOB_SECRETS_FILE`); `DOTJOB_SECRET_<NAME>` variables work without it.
    pub secrets_file: Option<std::path::PathBuf>,
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
            ..Self::default()
        }
    }
}

/// Registers `http` and `shell`, and sets the secrets file. Resolves the `shell` allow-list
/// now (programs on this process's `PATH`); a malformed setting is an error naming its
/// variable.
pub fn register(builder: WorkerBuilder, cfg: &StockConfig) -> anyhow::Result<WorkerBuilder> {
    let policy = http_policy::HostPolicy::parse(&cfg.http_allow).map_err(anyhow::Error::msg)?;
    let http: Arc<dyn Handler> =
        Arc::new(http::HttpHandler::with_policy(policy).map_err(anyhow::Error::msg)?);
    let shell: Arc<dyn Handler> =
        Arc::new(shell::ShellHandler::with_config(&cfg.shell).map_err(anyhow::Error::msg)?);
    Ok(builder
        .secrets_file(cfg.secrets_file.clone())
        .handler_arc("http", http)
        .handler_arc("shell", shell))
}
