//! The `shell` handler: runs a program, refused unless it is allow-listed.
//!
//! Params: `command` (argv array, required), `env` (object of strings), `cwd`. The program
//! (`command[0]`, compared exactly) must be listed in `DOTJOB_SHELL_ALLOW`; no shell is
//! involved, so there is no quoting or expansion. The program sees `DOTJOB_RUN_ID`,
//! `DOTJOB_JOB_ID`, `DOTJOB_GROUP`, `DOTJOB_ATTEMPT` and `DOTJOB_EXECUTOR` in its
//! environment. stdout and stderr lines go to the run's
//! log (bounded like every run log). Exit status 0 succeeds; the child is killed when the run
//! times out or is cancelled.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::{Handler, HandlerError, HandlerResult, RunContext, handler::HandlerFuture};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
}

/// Runs allow-listed programs.
pub struct ShellHandler {
    allow: Arc<HashSet<String>>,
}

impl ShellHandler {
    /// A handler allowing exactly the programs in `allow`.
    pub fn new(allow: &[String]) -> Self {
        Self {
            allow: Arc::new(
                allow
                    .iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }
}

async fn pipe_lines(r: impl tokio::io::AsyncRead + Unpin, prefix: &'static str, ctx: RunContext) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.log(format!("{prefix}{line}"));
    }
}

async fn call(allow: Arc<HashSet<String>>, ctx: RunContext) -> HandlerResult {
    let p: Params = ctx.params_as()?;
    let Some(program) = p.command.first() else {
        return Err(HandlerError::fatal(
            "params.command: needs at least the program",
        ));
    };
    if !allow.contains(program) {
        return Err(HandlerError::fatal(format!(
            "params.command: `{program}` is not in DOTJOB_SHELL_ALLOW on this worker"
        )));
    }
    let mut cmd = Command::new(program);
    cmd.args(&p.command[1..])
        .envs(&p.env)
        .env("DOTJOB_RUN_ID", ctx.run_id())
        .env("DOTJOB_JOB_ID", ctx.job_id())
        .env("DOTJOB_GROUP", ctx.group())
        .env("DOTJOB_ATTEMPT", ctx.attempt().to_string())
        .env("DOTJOB_EXECUTOR", ctx.executor())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &p.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| HandlerError::fatal(format!("cannot start `{program}`: {e}")))?;
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(pipe_lines(o, "", ctx.clone())));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(pipe_lines(e, "[stderr] ", ctx.clone())));
    let status = child
        .wait()
        .await
        .map_err(|e| HandlerError::retry(format!("waiting for `{program}`: {e}")))?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    match status.code() {
        Some(0) => Ok(json!({ "exit_code": 0 })),
        Some(c) => Err(HandlerError::retry(format!(
            "`{program}` exited with status {c}"
        ))),
        None => Err(HandlerError::retry(format!(
            "`{program}` was killed by a signal"
        ))),
    }
}

impl Handler for ShellHandler {
    fn call(&self, ctx: RunContext) -> HandlerFuture {
        Box::pin(call(self.allow.clone(), ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_programs_not_allowed() {
        let h = ShellHandler::new(&["echo".to_owned()]);
        let err = h
            .call(RunContext::for_test(
                json!({"command": ["rm", "-rf", "/tmp/x"]}),
            ))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("DOTJOB_SHELL_ALLOW"));
    }

    #[tokio::test]
    async fn runs_allowed_programs_and_logs_output() {
        let h = ShellHandler::new(&["sh".to_owned()]);
        let ctx = RunContext::for_test(
            json!({"command": ["sh", "-c", "echo hello; echo oops >&2; exit 3"]}),
        );
        let err = h.call(ctx.clone()).await.unwrap_err();
        assert!(err.message().contains("status 3"));
        let log = ctx.unflushed_log();
        assert!(log.contains(&"hello".to_owned()), "{log:?}");
        assert!(log.contains(&"[stderr] oops".to_owned()), "{log:?}");
        let ok = h
            .call(RunContext::for_test(
                json!({"command": ["sh", "-c", "true"]}),
            ))
            .await
            .unwrap();
        assert_eq!(ok["exit_code"], 0);
    }
}
