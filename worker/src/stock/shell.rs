//! The `shell` handler: runs an allow-listed program, with no shell in between.
//!
//! Params: `command` (argv array, required), `env` (object of strings), `cwd` (absolute
//! folder). What may run is decided by a [`ShellPolicy`] resolved once at worker start:
//! `command[0]` must be an allowed name exactly (or an allowed absolute path, or the path a
//! name resolved to), and the resolved absolute path is what gets executed; `env` names
//! that change how programs load are refused; `cwd` must exist (and lie inside the allowed
//! folders, when configured). A refusal is a fatal error naming the field: no retry.
//!
//! The program inherits the worker's environment except the variables that could carry
//! the worker's own credentials (every `DOTJOB_*` and `REDIS_*` variable), then gets the
//! job's `env`, then `DOTJOB_RUN_ID`, `DOTJOB_JOB_ID`, `DOTJOB_GROUP`, `DOTJOB_ATTEMPT` and
//! `DOTJOB_EXECUTOR`. stdout and stderr lines go to the run's log (bounded like every run
//! log). Exit status 0 succeeds; the child is killed when the run times out or is
//! cancelled.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::shell_policy::{ShellConfig, ShellPolicy};
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
    policy: Arc<ShellPolicy>,
}

impl ShellHandler {
    /// A handler allowing exactly the programs in `allow` (names resolved on this
    /// process's `PATH` now), with no further env or cwd restriction. Panics on a malformed
    /// entry; use [`ShellHandler::with_config`] to handle that.
    pub fn new(allow: &[String]) -> Self {
        match Self::with_config(&ShellConfig {
            allow: allow.to_vec(),
            ..ShellConfig::default()
        }) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// A handler with every setting; resolves the allowed programs now. Names not found
    /// on the `PATH` are logged (their runs are refused); malformed settings are an error.
    pub fn with_config(cfg: &ShellConfig) -> Result<Self, String> {
        let (policy, missing) = ShellPolicy::resolve(cfg)?;
        for name in missing {
            tracing::warn!(
                program = name,
                "DOTJOB_SHELL_ALLOW names a program not found on this worker's PATH; its runs will be refused"
            );
        }
        Ok(Self {
            policy: Arc::new(policy),
        })
    }
}

/// Worker variables a program must not see: they may hold the worker's credentials
/// (Redis URL with a password, API tokens, secrets).
fn inherited_but_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with("DOTJOB_") || n.starts_with("REDIS_"))
}

async fn pipe_lines(r: impl tokio::io::AsyncRead + Unpin, prefix: &'static str, ctx: RunContext) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.log(format!("{prefix}{line}"));
    }
}

async fn call(policy: Arc<ShellPolicy>, ctx: RunContext) -> HandlerResult {
    let p: Params = ctx.params_as()?;
    let Some(program) = p.command.first() else {
        return Err(HandlerError::fatal(
            "params.command: needs at least the program",
        ));
    };
    let path = policy.program(program).map_err(HandlerError::fatal)?;
    for name in p.env.keys() {
        policy.check_env(name).map_err(HandlerError::fatal)?;
    }
    let cwd = match &p.cwd {
        Some(c) => Some(policy.cwd(c).await.map_err(HandlerError::fatal)?),
        None => None,
    };
    let mut cmd = Command::new(path);
    cmd.arg0(program);
    for (name, _) in std::env::vars_os() {
        if inherited_but_hidden(&name) {
            cmd.env_remove(name);
        }
    }
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
    if let Some(cwd) = cwd {
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
        Box::pin(call(self.policy.clone(), ctx))
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

    /// Each refusal is fatal, names its field, and runs nothing.
    #[tokio::test]
    async fn loader_variables_relative_paths_and_bad_cwd_are_refused() {
        let h = ShellHandler::new(&["sh".to_owned()]);
        for (params, field) in [
            (
                json!({"command": ["sh", "-c", "echo ran"], "env": {"PATH": "/tmp"}}),
                "params.env.PATH",
            ),
            (
                json!({"command": ["sh", "-c", "echo ran"], "env": {"LD_PRELOAD": "/tmp/x.so"}}),
                "params.env.LD_PRELOAD",
            ),
            (
                json!({"command": ["sh", "-c", "echo ran"], "env": {"BASH_ENV": "/tmp/x"}}),
                "params.env.BASH_ENV",
            ),
            (
                json!({"command": ["./sh", "-c", "echo ran"], "cwd": "/bin"}),
                "params.command",
            ),
            (
                json!({"command": ["bin/sh", "-c", "echo ran"], "cwd": "/"}),
                "params.command",
            ),
            (
                json!({"command": ["sh", "-c", "echo ran"], "cwd": "/no/such/folder"}),
                "params.cwd",
            ),
        ] {
            let ctx = RunContext::for_test(params.clone());
            let err = h.call(ctx.clone()).await.unwrap_err();
            assert!(!err.is_retryable(), "{params}");
            assert!(
                err.message().starts_with(field),
                "{params}: {}",
                err.message()
            );
            assert!(ctx.unflushed_log().is_empty(), "{params} ran something");
        }
    }

    /// The resolved path runs even when the job names the program by that path, and
    /// argv[0] stays what the job wrote.
    #[tokio::test]
    async fn runs_the_resolved_path_with_allowed_variables() {
        let h = ShellHandler::new(&["sh".to_owned()]);
        let ctx = RunContext::for_test(json!({
            "command": ["sh", "-c", "echo \"$0 $GREETING\""],
            "env": {"GREETING": "hi"},
            "cwd": "/",
        }));
        h.call(ctx.clone()).await.unwrap();
        assert_eq!(ctx.unflushed_log(), ["sh hi"]);
    }
}
