//! Settings every dotjob process shares: where Redis is and which key prefix to use.
//!
//! Binaries flatten [`RedisArgs`] into their clap parser, so each setting is both a flag and
//! an environment variable (`REDIS_URL`, `REDIS_CLUSTER_URLS`, `DOTJOB_PREFIX`).

use std::time::Duration;

use crate::error::{Error, Result};

/// Default Redis address.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `url` with any password replaced by `***`, for logs.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split_once(':').map_or("", |(u, _)| u);
            if creds.contains(':') {
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            } else {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        use super::redacted_url as r;
        assert_eq!(r("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(r("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(r("rediss://app:s3cret@h:6380"), "rediss://app:***@h:6380");
        assert_eq!(r("redis://token@h"), "redis://***@h");
    }

    fn args(cluster: &[&str], wait: u32, wait_ms: u64) -> super::RedisArgs {
        super::RedisArgs {
            redis_url: None,
            redis_cluster_urls: cluster.iter().map(|s| (*s).to_owned()).collect(),
            wait_replicas: wait,
            wait_timeout_ms: wait_ms,
            prefix: "dotjob".to_owned(),
            redis_timeout_ms: 5_000,
            allow_eviction: false,
            secure: Default::default(),
            redis_sentinel_urls: None,
            redis_sentinel_master: None,
        }
    }

    #[test]
    fn cluster_seeds_and_the_durable_setting_are_checked() {
        let cfg = args(&["redis://a:7000", " redis://b:7001 "], 0, 1_000)
            .validate()
            .expect("valid");
        assert_eq!(cfg.cluster, ["redis://a:7000", "redis://b:7001"]);
        assert_eq!(cfg.wait, None);
        assert_eq!(cfg.describe(), "cluster redis://a:7000, redis://b:7001");
        let bad = args(&["redis://a:7000", "nope://b"], 0, 1_000).validate();
        assert!(bad.is_err_and(|e| e.to_string().contains("REDIS_CLUSTER_URLS: `nope://b`")),);
        assert!(args(&[""], 0, 1_000).validate().is_err());
        let durable = args(&[], 1, 1_500).validate().expect("valid");
        assert_eq!(
            durable.wait,
            Some(super::WaitReplicas {
                replicas: 1,
                timeout: std::time::Duration::from_millis(1_500)
            })
        );
        let too_long = args(&[], 1, 5_000).validate();
        assert!(too_long.is_err_and(|e| e.to_string().contains("DOTJOB_WAIT_TIMEOUT_MS")));
    }
}

/// Redis connection settings.
#[derive(clap::Args, Clone, Debug)]
pub struct RedisArgs {
    /// Redis URL (`redis://` or `rediss://` for TLS) [default: redis://127.0.0.1:6379]
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis Cluster seed node URLs, comma-separated (`redis://host:port,...`); when set,
    /// every command goes through the cluster-aware client and `REDIS_URL` is not used.
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub redis_cluster_urls: Vec<String>,
    /// Durable firing and completion: after `fire.lua` and `complete.lua`, `WAIT` for this
    /// many replicas of the node that ran the script (0: off).
    #[arg(long, env = "DOTJOB_WAIT_REPLICAS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub wait_replicas: u32,
    /// Longest `WAIT` for those replicas; past it the run goes on, counted in
    /// `dotjob_redis_wait_short_total`.
    #[arg(long, env = "DOTJOB_WAIT_TIMEOUT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub wait_timeout_ms: u64,
    /// Prefix of every Redis key.
    #[arg(long, env = "DOTJOB_PREFIX", default_value = "dotjob")]
    pub prefix: String,
    /// Longest wait for one Redis reply before the command fails and is retried.
    #[arg(long, env = "DOTJOB_REDIS_TIMEOUT_MS", default_value_t = 5_000)]
    pub redis_timeout_ms: u64,
    /// Run against a Redis whose `maxmemory-policy` may evict keys (warned on every start);
    /// without it such a Redis is refused, since eviction deletes jobs and run records.
    #[arg(long, env = "DOTJOB_ALLOW_EVICTION", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub allow_eviction: bool,
    /// TLS files and ACL credentials.
    #[command(flatten)]
    pub secure: crate::secure::SecureArgs,
    /// Redis Sentinel addresses, comma-separated (not supported: see the README).
    #[arg(long, env = "REDIS_SENTINEL_URLS")]
    pub redis_sentinel_urls: Option<String>,
    /// Redis Sentinel master name (not supported: see the README).
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
}

/// Validated Redis settings.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// URL to connect to (a single Redis; unused when `cluster` is set).
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// Reply timeout for ordinary commands.
    pub timeout: Duration,
    /// Redis Cluster seed node URLs; empty for a single Redis.
    pub cluster: Vec<String>,
    /// `WAIT` after firing and completing, if asked for.
    pub wait: Option<WaitReplicas>,
    /// TLS files and ACL credentials applied to every connection.
    pub secure: crate::secure::Secure,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_REDIS_URL.to_owned(),
            prefix: "dotjob".to_owned(),
            timeout: Duration::from_secs(5),
            secure: crate::secure::Secure::default(),
            cluster: Vec::new(),
            wait: None,
        }
    }
}

impl RedisConfig {
    /// Where Redis is, for logs (passwords redacted): the URL, or `cluster <seed>, …`.
    pub fn describe(&self) -> String {
        if self.cluster.is_empty() {
            return redacted_url(&self.url);
        }
        let seeds: Vec<String> = self.cluster.iter().map(|u| redacted_url(u)).collect();
        format!("cluster {}", seeds.join(", "))
    }
}

/// The durable setting: how many replicas must hold a firing or a completion before it
/// counts as done, and how long to wait for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitReplicas {
    /// Replicas to wait for (`WAIT numreplicas`).
    pub replicas: u32,
    /// Longest wait (`WAIT … timeout`).
    pub timeout: Duration,
}

impl RedisArgs {
    /// Checks the settings.
    pub fn validate(&self) -> Result<RedisConfig> {
        let cluster: Vec<String> = self
            .redis_cluster_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        for u in &cluster {
            redis::Client::open(u.as_str()).map_err(|e| {
                Error::Config(format!(
                    "REDIS_CLUSTER_URLS: `{}` is not a Redis URL: {e}",
                    redacted_url(u)
                ))
            })?;
        }
        if !self.redis_cluster_urls.is_empty() && cluster.is_empty() {
            return Err(Error::Config(
                "REDIS_CLUSTER_URLS: no node URL given (comma-separated redis://host:port)".into(),
            ));
        }
        if self.redis_sentinel_urls.is_some() || self.redis_sentinel_master.is_some() {
            let var = if self.redis_sentinel_urls.is_some() {
                "REDIS_SENTINEL_URLS"
            } else {
                "REDIS_SENTINEL_MASTER"
            };
            return Err(Error::Config(format!(
                "{var}: Redis Sentinel is not supported yet (see the README, \
                 \"Redis Sentinel\"); point REDIS_URL at the master, or use Redis Cluster"
            )));
        }
        let url = self
            .redis_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        redis::Client::open(url.as_str())
            .map_err(|e| Error::Config(format!("REDIS_URL `{}`: {e}", redacted_url(&url))))?;
        // The TLS files and credentials apply to the cluster's seed nodes, or to REDIS_URL.
        let checked: Vec<&str> = if cluster.is_empty() {
            vec![url.as_str()]
        } else {
            cluster.iter().map(String::as_str).collect()
        };
        let secure = self.secure.validate(&checked)?;
        let p = &self.prefix;
        if p.is_empty() || p.len() > 64 || p.contains(['{', '}', ' ', ':']) {
            return Err(Error::Config(format!(
                "DOTJOB_PREFIX `{p}`: 1-64 characters without spaces, braces or colons"
            )));
        }
        if self.redis_timeout_ms == 0 {
            return Err(Error::Config("DOTJOB_REDIS_TIMEOUT_MS must be > 0".into()));
        }
        if self.wait_replicas > 0 && self.wait_timeout_ms >= self.redis_timeout_ms {
            return Err(Error::Config(format!(
                "DOTJOB_WAIT_TIMEOUT_MS ({}) must be shorter than DOTJOB_REDIS_TIMEOUT_MS ({}), \
                 or every WAIT that runs to its end fails as a timed-out reply",
                self.wait_timeout_ms, self.redis_timeout_ms
            )));
        }
        Ok(RedisConfig {
            url,
            prefix: p.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms),
            cluster,
            wait: (self.wait_replicas > 0).then(|| WaitReplicas {
                replicas: self.wait_replicas,
                timeout: Duration::from_millis(self.wait_timeout_ms),
            }),
            secure,
        })
    }
}

/// Parses a binary's flags and environment. On a bad value prints one line naming what the
/// user set (the environment variable, or the flag if it was given on the command line) and
/// answers the exit code to return, 2; `--help` and `--version` print as usual and answer 0.
pub fn parse_args<T: clap::Parser>(bin: &str) -> std::result::Result<T, std::process::ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match T::try_parse_from(&args) {
        Ok(t) => Ok(t),
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return Err(std::process::ExitCode::SUCCESS);
            }
            let set_in = |env: &str| std::env::var_os(env).is_some();
            let line = one_line(&e, &T::command(), &args, set_in);
            eprintln!("{bin}: {line}");
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// The one-line form of a parse error: `NAME: "value" is not …`, where NAME is the
/// environment variable when the value came from it (`set_in(var)` and the flag absent from
/// `args`), else the flag.
fn one_line(
    e: &clap::Error,
    cmd: &clap::Command,
    args: &[std::ffi::OsString],
    set_in: impl Fn(&str) -> bool,
) -> String {
    use clap::error::{ContextKind, ContextValue};
    let ctx = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let (Some(arg), Some(value)) = (ctx(ContextKind::InvalidArg), ctx(ContextKind::InvalidValue))
    else {
        // Not a bad value (e.g. an unknown flag): clap's first line, without its tips.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid arguments");
        return first.trim_start_matches("error: ").to_owned();
    };
    let long = arg
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or("")
        .to_owned();
    let found = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()));
    let on_command_line = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}") || a.starts_with(&format!("--{long}="))
    });
    let env = found
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned());
    let name = match env {
        Some(env) if !on_command_line && set_in(&env) => env,
        _ => format!("--{long}"),
    };
    let source = std::error::Error::source(e).map(ToString::to_string);
    let is_duration = std::error::Error::source(e)
        .is_some_and(|s| s.downcast_ref::<humantime::DurationError>().is_some());
    let why = if is_duration {
        "is not a duration like 7d or 12h".to_owned()
    } else if let Some(possible) = ctx(ContextKind::ValidValue) {
        format!("is not one of: {possible}")
    } else {
        match source {
            Some(s) if s.contains("invalid digit") || s.contains("empty string") => {
                "is not a whole number".to_owned()
            }
            Some(s) if s.contains(" is not in ") => {
                let range = s.rsplit(" is not in ").next().unwrap_or("").to_owned();
                format!("must be in {}", range.replace("..=", " to "))
            }
            Some(s) => format!("is not valid: {s}"),
            None => "is not valid".to_owned(),
        }
    };
    format!("{name}: \"{value}\" {why}")
}

#[cfg(test)]
mod parse_tests {
    use clap::{CommandFactory, Parser};
    use std::ffi::OsString;
    use std::time::Duration;

    #[derive(Parser, Debug)]
    struct Demo {
        #[arg(long, env = "DEMO_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
        max_age: Duration,
        #[arg(long, env = "DEMO_LEASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(500..=600_000))]
        lease_ms: u64,
        #[arg(long, env = "DEMO_MODE", default_value = "auto", value_parser = ["auto", "never"])]
        mode: String,
    }

    fn line(args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let e = Demo::try_parse_from(&args).expect_err("parse fails");
        super::one_line(&e, &Demo::command(), &args, |v| v == "DEMO_MAX_AGE")
    }

    #[test]
    fn a_bad_value_is_one_line_naming_what_was_set() {
        let l = line(&["demo", "--max-age", "abc"]);
        assert_eq!(l, "--max-age: \"abc\" is not a duration like 7d or 12h");
        assert_eq!(
            line(&["demo", "--lease-ms", "5"]),
            "--lease-ms: \"5\" must be in 500 to 600000"
        );
        assert_eq!(
            line(&["demo", "--lease-ms", "x"]),
            "--lease-ms: \"x\" is not a whole number"
        );
        assert_eq!(
            line(&["demo", "--mode", "sometimes"]),
            "--mode: \"sometimes\" is not one of: auto, never"
        );
        assert!(!line(&["demo", "--nope"]).contains('\n'));
    }

    #[test]
    fn a_value_from_the_environment_names_the_variable() {
        let e = clap::Error::raw(clap::error::ErrorKind::InvalidValue, "x");
        // Without context clap's own line is kept, on one line.
        let l = super::one_line(&e, &Demo::command(), &[], |_| true);
        assert!(!l.contains('\n'), "{l}");
        // With the variable set and no flag given, the variable is named.
        let args = vec![OsString::from("demo"), OsString::from("--max-age=abc")];
        let err = Demo::try_parse_from(&args).expect_err("fails");
        let from_env = super::one_line(&err, &Demo::command(), &[OsString::from("demo")], |v| {
            v == "DEMO_MAX_AGE"
        });
        assert_eq!(
            from_env,
            "DEMO_MAX_AGE: \"abc\" is not a duration like 7d or 12h"
        );
    }
}
