//! Worker settings as flags and environment variables (used by `dotjob-worker` and by the
//! scheduler's embedded worker).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Settings;
use crate::stock::{ShellConfig, StockConfig};

/// The reclaim time when neither `DOTJOB_RECLAIM_AFTER_MS` nor its former name is set.
const RECLAIM_AFTER_MS: u64 = 10_000;

/// Worker flags; each also reads an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// Runs executed at once.
    #[arg(long, env = "DOTJOB_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// A dead worker's runs are reclaimed after this long without its heartbeat
    /// [default: 10000].
    #[arg(long, env = "DOTJOB_RECLAIM_AFTER_MS")]
    pub reclaim_after_ms: Option<u64>,
    /// Former name of `--reclaim-after-ms` / `DOTJOB_RECLAIM_AFTER_MS`, used when that is
    /// unset.
    #[arg(long = "lease-ms", env = "DOTJOB_LEASE_MS", hide = true)]
    pub lease_ms: Option<u64>,
    /// On SIGTERM / Ctrl-C, how long in-flight runs may take to finish before being handed back.
    #[arg(long, env = "DOTJOB_SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// Programs the `shell` handler may run (comma-separated; empty = shell disabled): plain
    /// names, resolved on this process's PATH at start, or absolute paths.
    #[arg(long, env = "DOTJOB_SHELL_ALLOW", value_delimiter = ',')]
    pub shell_allow: Vec<String>,
    /// When set, the only environment variables `shell` jobs may set (comma-separated;
    /// `PREFIX_*` for a prefix). Loader variables (PATH, LD_*, ...) are refused regardless.
    #[arg(long, env = "DOTJOB_SHELL_ENV_ALLOW", value_delimiter = ',')]
    pub shell_env_allow: Vec<String>,
    /// When set, folders a `shell` job's `cwd` must lie inside (comma-separated).
    #[arg(long, env = "DOTJOB_SHELL_CWD_ALLOW", value_delimiter = ',')]
    pub shell_cwd_allow: Vec<PathBuf>,
    /// Where the `http` handler may connect (comma-separated host names, `*.domain`
    /// suffixes, IPs, CIDR ranges, `public`); empty = any public address.
    #[arg(long, env = "DOTJOB_HTTP_ALLOW", value_delimiter = ',')]
    pub http_allow: Vec<String>,
    /// File of secret values (`NAME=value` lines or a JSON object) for params'
    /// `{"$secret": "NAME"}` references; `DOTJOB_SECRET_<NAME>` variables work without it.
    #[arg(long, env = "DOTJOB_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
}

impl WorkerArgs {
    /// The reclaim time: the new name when set, else the former one, else the default.
    pub fn reclaim_after(&self) -> Duration {
        Duration::from_millis(
            self.reclaim_after_ms
                .or(self.lease_ms)
                .unwrap_or(RECLAIM_AFTER_MS),
        )
    }

    /// The runner settings these flags describe.
    pub fn settings(&self) -> Settings {
        Settings {
            concurrency: self.concurrency,
            reclaim_after: self.reclaim_after(),
            grace: Duration::from_millis(self.shutdown_grace_ms),
            ..Settings::default()
        }
    }

    /// The stock handlers' settings these flags describe.
    pub fn stock(&self) -> StockConfig {
        StockConfig {
            shell: ShellConfig {
                allow: self.shell_allow.clone(),
                env_allow: self.shell_env_allow.clone(),
                cwd_allow: self
                    .shell_cwd_allow
                    .iter()
                    .filter(|p| !p.as_os_str().is_empty())
                    .cloned()
                    .collect(),
            },
            http_allow: self.http_allow.clone(),
            secrets_file: self
                .secrets_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
        }
    }
}

/// Where `/metrics` and `/healthz` are served (`DOTJOB_METRICS_LISTEN`).
#[derive(clap::Args, Clone, Debug)]
pub struct MetricsArgs {
    /// Address for `/metrics` and `/healthz` (off when unset).
    #[arg(long, env = "DOTJOB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn reclaim_ms(args: &[&str]) -> u128 {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        cli.worker.settings().reclaim_after.as_millis()
    }

    fn env_of(id: &str) -> Option<String> {
        Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    }

    #[test]
    fn each_name_reads_its_variable() {
        assert_eq!(
            env_of("reclaim_after_ms").as_deref(),
            Some("DOTJOB_RECLAIM_AFTER_MS")
        );
        assert_eq!(env_of("lease_ms").as_deref(), Some("DOTJOB_LEASE_MS"));
    }

    /// Runs this test binary again with `env` (both names unset otherwise) to check, in the
    /// child, that the settings read `want` ms: the process environment is never changed.
    fn child_reads(env: &[(&str, &str)], want: &str) {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "--exact",
            "config::tests::the_former_variable_works_when_the_new_one_is_unset",
        ])
        .env_remove("DOTJOB_RECLAIM_AFTER_MS")
        .env_remove("DOTJOB_LEASE_MS")
        .env(CHILD, want);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{env:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    const CHILD: &str = "DOTJOB_WORKER_CONFIG_TEST_WANT_MS";

    #[test]
    fn the_former_variable_works_when_the_new_one_is_unset() {
        if let Some(want) = std::env::var_os(CHILD) {
            assert_eq!(reclaim_ms(&[]).to_string(), want.to_string_lossy());
            return;
        }
        child_reads(&[("DOTJOB_LEASE_MS", "2500")], "2500");
        child_reads(&[("DOTJOB_RECLAIM_AFTER_MS", "1500")], "1500");
        child_reads(
            &[
                ("DOTJOB_RECLAIM_AFTER_MS", "1500"),
                ("DOTJOB_LEASE_MS", "2500"),
            ],
            "1500",
        );
        child_reads(&[], "10000");
    }

    #[test]
    fn the_former_flag_works_when_the_new_one_is_unset() {
        if std::env::var_os("DOTJOB_RECLAIM_AFTER_MS").is_some()
            || std::env::var_os("DOTJOB_LEASE_MS").is_some()
        {
            return; // the environment would decide instead of the flags
        }
        assert_eq!(reclaim_ms(&[]), 10_000);
        assert_eq!(reclaim_ms(&["--reclaim-after-ms", "1500"]), 1_500);
        assert_eq!(reclaim_ms(&["--lease-ms", "2500"]), 2_500);
        assert_eq!(
            reclaim_ms(&["--lease-ms", "2500", "--reclaim-after-ms", "1500"]),
            1_500
        );
        assert!(Cli::try_parse_from(["t", "--lease-ms", "soon"]).is_err());
    }

    #[test]
    fn the_former_name_is_not_advertised() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--reclaim-after-ms"), "{help}");
        assert!(!help.contains("--lease-ms"), "{help}");
    }
}
