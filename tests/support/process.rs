//! dotjob binaries as child processes: building them once ([`binary`]: debug for the tests,
//! release for the bench), running one killed on drop ([`Proc`]), and finding the process
//! behind a replica or executor id ([`pid_of`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::free_port;

/// The workspace root, where `cargo build` runs.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Which build of the dotjob binaries to run: the tests run the debug one, the bench the
/// release one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build`.
    Debug,
    /// `cargo build --release`.
    Release,
}

impl Profile {
    /// Its folder under the target dir.
    fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

/// The target dir: the one this executable was built into (`<target>/<profile>/…`), else
/// `CARGO_TARGET_DIR`, else the workspace's `target`. The build below names it explicitly,
/// so the binaries are built where they are looked for.
fn target_dir() -> PathBuf {
    let workspace = Path::new(WORKSPACE);
    let beside_me = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|a| {
                a.file_name()
                    .is_some_and(|n| n == "debug" || n == "release")
            })
            .and_then(Path::parent)
            .map(Path::to_path_buf)
    });
    beside_me
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| workspace.join(d)))
        .unwrap_or_else(|| workspace.join("target"))
}

/// Builds the scheduler and worker binaries; returns the folder they are in.
fn build(profile: Profile) -> anyhow::Result<PathBuf> {
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "dotjob-scheduler",
        "-p",
        "dotjob-worker",
    ])
    .args(["--bins", "--target-dir"])
    .arg(&target)
    .current_dir(WORKSPACE);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo")?;
    ensure!(status.success(), "cargo build failed: {status}");
    Ok(target.join(profile.dir()))
}

/// Path of a dotjob binary (`dotjob-scheduler`, `dotjob-worker`) in the `profile` build,
/// built on first use in this process.
pub fn binary(name: &str, profile: Profile) -> anyhow::Result<PathBuf> {
    static BUILT: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let dir = BUILT[profile as usize]
        .get_or_init(|| build(profile).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("cannot build the dotjob binaries: {e}"))?;
    let path = dir.join(name);
    ensure!(path.exists(), "{} is missing", path.display());
    Ok(path)
}

/// Path of the debug build of a dotjob binary; panics if it cannot be built.
pub fn bin(name: &str) -> PathBuf {
    binary(name, Profile::Debug).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The pid inside a scheduler replica or executor id (`<host>-<pid>-<suffix>`).
pub fn pid_of(id: &str) -> Option<i32> {
    id.rsplit('-').nth(1)?.parse().ok()
}

/// A dotjob process, killed on drop. Its stderr goes to a log file in a temp dir, printed
/// when the test fails (on drop while panicking).
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts the debug build of `name` with `args` and `env`.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_built(Profile::Debug, name, args, env)
    }

    /// Starts the `profile` build of `name` with `args` and `env` (`RUST_LOG` is `info`
    /// unless `env` says otherwise).
    pub fn spawn_built(profile: Profile, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let program = binary(name, profile).unwrap_or_else(|e| panic!("{e:#}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("DOTJOB_PREFIX")
            .env_remove("REDIS_USERNAME")
            .env_remove("REDIS_PASSWORD")
            .env_remove("REDIS_CA_FILE")
            .env_remove("REDIS_CERT_FILE")
            .env_remove("REDIS_KEY_FILE")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn signal(&self, s: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), s);
        }
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM.
    pub fn term(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// SIGSTOP (freeze).
    pub fn stop(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// SIGCONT (thaw).
    pub fn cont(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Waits for it to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        let Some(c) = self.child.as_mut() else {
            bail!("not running");
        };
        loop {
            if let Some(status) = c.try_wait()? {
                self.child = None;
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system) it used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')':
        // state is the 1st there, utime the 12th and stime the 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        Duration::from_millis((num(11) + num(12)) * 10)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) stderr ----\n{}",
                self.name,
                self.pid(),
                self.log()
            );
        }
        self.cont();
        self.kill9();
    }
}

/// Starts the debug `dotjob-scheduler` as a process on a free port; returns it with its
/// base URL.
pub fn spawn_scheduler(
    redis_url: &str,
    prefix: &str,
    extra_env: &[(&str, &str)],
) -> (Proc, String) {
    spawn_scheduler_built(Profile::Debug, redis_url, prefix, extra_env)
}

/// Starts the `profile` build of `dotjob-scheduler` (no embedded worker) on a free port;
/// returns it with its base URL.
pub fn spawn_scheduler_built(
    profile: Profile,
    redis_url: &str,
    prefix: &str,
    extra_env: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // A comma-separated list is a cluster's seed nodes.
    let redis_var = if redis_url.contains(',') {
        "REDIS_CLUSTER_URLS"
    } else {
        "REDIS_URL"
    };
    let mut env: Vec<(&str, &str)> = vec![
        (redis_var, redis_url),
        ("DOTJOB_PREFIX", prefix),
        ("DOTJOB_LISTEN", &listen),
        ("DOTJOB_EMBEDDED_WORKER", "off"),
    ];
    env.extend_from_slice(extra_env);
    let p = Proc::spawn_built(profile, "dotjob-scheduler", &[], &env);
    (p, format!("http://{listen}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pid_in_process_ids() {
        assert_eq!(
            pid_of(&dotjob_shared::process_id()),
            Some(std::process::id() as i32)
        );
        assert_eq!(pid_of("ci-runner-7-4242-00af"), Some(4242));
        assert_eq!(pid_of("no-pid-here"), None);
        assert_eq!(pid_of(""), None);
    }

    #[test]
    fn finds_the_target_dir_this_test_runs_from() {
        let exe = std::env::current_exe().expect("exe");
        assert!(exe.starts_with(target_dir()), "{}", exe.display());
    }
}
