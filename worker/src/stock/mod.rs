//! Built-in handlers for services not written in Rust: `http` (call a URL) and `shell` (run an
//! allow-listed program). `dotjob-worker` and the scheduler's embedded worker register both.

use std::sync::Arc;

use crate::{Handler, WorkerBuilder};

pub mod http;
pub mod shell;

/// Registers `http` and `shell` (the latter refusing programs not in `shell_allow`).
pub fn register(builder: WorkerBuilder, shell_allow: &[String]) -> WorkerBuilder {
    let http: Arc<dyn Handler> = Arc::new(http::HttpHandler::new());
    let shell: Arc<dyn Handler> = Arc::new(shell::ShellHandler::new(shell_allow));
    builder
        .handler_arc("http", http)
        .handler_arc("shell", shell)
}
