//! What the CLI tests share: a scheduler per test, a worker with test handlers, and a way to
//! run the `dotjob` binary and capture its exit code and output.

use std::time::{Duration, Instant};

use dotjob_tests::{Api, InProcess, delete_prefix, redis_handle, shared_redis, unique_prefix};
use dotjob_worker::{HandlerError, RunContext, Worker};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

/// Lines the `chatty` handler logs, one every [`CHATTY_EVERY`].
pub const CHATTY_LINES: usize = 10;
/// Pause between two `chatty` lines (10 lines over about 2 s).
pub const CHATTY_EVERY: Duration = Duration::from_millis(200);

/// A scheduler of the test's own (and its keys, deleted at the end).
pub struct Setup {
    pub base: String,
    pub api: Api,
    pub redis: String,
    pub prefix: String,
    sched: Option<InProcess>,
}

impl Setup {
    /// Starts a scheduler on a fresh key prefix.
    pub async fn start(test: &str) -> Self {
        let redis = shared_redis();
        let prefix = unique_prefix(test);
        let sched = InProcess::start(&redis, &prefix).await;
        let api = Api::new(&sched.base);
        api.wait_ready().await;
        Self {
            base: sched.base.clone(),
            api,
            redis,
            prefix,
            sched: Some(sched),
        }
    }

    /// `dotjob ARGS` against this scheduler.
    pub async fn dotjob(&self, args: &[&str]) -> Out {
        dotjob(&self.base, args, None).await
    }

    /// `dotjob ARGS` with `stdin` as standard input.
    pub async fn dotjob_stdin(&self, args: &[&str], stdin: &str) -> Out {
        dotjob(&self.base, args, Some(stdin)).await
    }

    /// Stops the scheduler and deletes its keys.
    pub async fn finish(mut self) {
        if let Some(s) = self.sched.take() {
            s.shutdown().await;
        }
        delete_prefix(&self.redis, &self.prefix).await;
    }
}

/// What one `dotjob` process did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    /// Its stdout as JSON (panics, showing the output, if it is not one document).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The last line of stdout.
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

/// The binary's command, aimed at `server`, with no token from the environment.
pub fn command(server: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotjob"));
    cmd.args(args)
        .env("DOTJOB_SERVER", server)
        .env_remove("DOTJOB_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `dotjob ARGS` against `server` (60 s at most).
pub async fn dotjob(server: &str, args: &[&str], stdin: Option<&str>) -> Out {
    let started = Instant::now();
    let mut child = command(server, args).spawn().expect("spawn dotjob");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("dotjob {args:?} did not finish within 60 s"))
        .expect("dotjob output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// A running in-process worker of one group; stops when dropped.
pub struct TestWorker {
    stop: Option<oneshot::Sender<()>>,
}

impl TestWorker {
    /// A worker of `group` with handlers `ok` (returns `{"ok": true}`), `fail` (fails, no
    /// retry), `retry` (fails, retryable), `chatty` (logs [`CHATTY_LINES`] lines `line <i>`,
    /// one every [`CHATTY_EVERY`]) and `flaky` (logs `attempt <n> starts`, then fails
    /// retryably on attempt 1 and succeeds on later ones).
    pub fn start(setup: &Setup, group: &str) -> Self {
        let worker = Worker::builder(redis_handle(&setup.redis, &setup.prefix), group)
            .handler("ok", |_ctx: RunContext| async {
                Ok::<_, HandlerError>(json!({"ok": true}))
            })
            .handler("fail", |_ctx: RunContext| async {
                Err::<(), _>(HandlerError::fatal("failing on purpose"))
            })
            .handler("retry", |_ctx: RunContext| async {
                Err::<(), _>(HandlerError::retry("failing every attempt"))
            })
            .handler("chatty", |ctx: RunContext| async move {
                for i in 0..CHATTY_LINES {
                    ctx.log(format!("line {i}"));
                    tokio::time::sleep(CHATTY_EVERY).await;
                }
                Ok::<_, HandlerError>(json!({"lines": CHATTY_LINES}))
            })
            .handler("flaky", |ctx: RunContext| async move {
                ctx.log(format!("attempt {} starts", ctx.attempt()));
                if ctx.attempt() == 1 {
                    return Err(HandlerError::retry("the first attempt always fails"));
                }
                Ok(json!({"attempt": ctx.attempt()}))
            })
            .reclaim_after(Duration::from_secs(2))
            .grace(Duration::from_secs(2))
            .build()
            .expect("worker");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        Self { stop: Some(tx) }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Every job of a group, through the API (all pages).
pub async fn jobs_of(api: &Api, group: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let a = api
            .call(
                "GET",
                &format!("/jobs?group={group}&limit=500&cursor={cursor}"),
                None,
            )
            .await
            .expect("list jobs");
        assert_eq!(a.status, 200, "{:?}", a.body);
        out.extend(a.body["items"].as_array().cloned().unwrap_or_default());
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return out,
        }
    }
}
