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
}

/// Redis connection settings.
#[derive(clap::Args, Clone, Debug)]
pub struct RedisArgs {
    /// Redis URL (`redis://` or `rediss://` for TLS) [default: redis://127.0.0.1:6379]
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis Cluster seed URLs, comma-separated (not supported yet).
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub redis_cluster_urls: Vec<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "DOTJOB_PREFIX", default_value = "dotjob")]
    pub prefix: String,
    /// Longest wait for one Redis reply before the command fails and is retried.
    #[arg(long, env = "DOTJOB_REDIS_TIMEOUT_MS", default_value_t = 5_000)]
    pub redis_timeout_ms: u64,
}

/// Validated Redis settings.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// URL to connect to.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// Reply timeout for ordinary commands.
    pub timeout: Duration,
}

impl RedisArgs {
    /// Checks the settings.
    pub fn validate(&self) -> Result<RedisConfig> {
        if !self.redis_cluster_urls.is_empty() {
            return Err(Error::Config(
                "REDIS_CLUSTER_URLS: Redis Cluster is not supported yet; use REDIS_URL".into(),
            ));
        }
        let url = self
            .redis_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        redis::Client::open(url.as_str())
            .map_err(|e| Error::Config(format!("REDIS_URL `{url}`: {e}")))?;
        let p = &self.prefix;
        if p.is_empty() || p.len() > 64 || p.contains(['{', '}', ' ', ':']) {
            return Err(Error::Config(format!(
                "DOTJOB_PREFIX `{p}`: 1-64 characters without spaces, braces or colons"
            )));
        }
        if self.redis_timeout_ms == 0 {
            return Err(Error::Config("DOTJOB_REDIS_TIMEOUT_MS must be > 0".into()));
        }
        Ok(RedisConfig {
            url,
            prefix: p.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms),
        })
    }
}
