//! TLS and ACL credentials for every connection to Redis.
//!
//! A `rediss://` URL connects over TLS. [`SecureArgs`] (flattened into
//! [`crate::config::RedisArgs`]) adds the files and credentials a URL cannot carry: the CA
//! that signs the server's certificate (`REDIS_CA_FILE`; without it the web PKI roots), a
//! client certificate and key for mutual TLS (`REDIS_CERT_FILE`, `REDIS_KEY_FILE`), and an
//! ACL user and password (`REDIS_USERNAME`, `REDIS_PASSWORD`, or in the URL
//! `rediss://user:pass@host:port`). [`SecureArgs::validate`] reads and checks the files once
//! at start (a missing or unreadable file is one line, exit code 2), and [`client`] is the
//! one function that turns a URL plus these settings into a `redis::Client`: the pool, the
//! dedicated connections and pub/sub of a single Redis are all built from it, and so can
//! each node of a cluster.
//!
//! [`check_access`] makes one connection at start and turns a refusal that retrying cannot
//! cure (wrong password, unknown user, untrusted certificate) into one clear line; an
//! unreachable Redis is left to the usual retry loops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};

use crate::conn::Redis;
use crate::error::{Error, Result};

/// TLS files and ACL credentials (flags and environment variables).
#[derive(clap::Args, Clone, Default)]
pub struct SecureArgs {
    /// CA certificate (PEM) that signed the Redis server's certificate, for `rediss://`
    /// [default: the web PKI roots]
    #[arg(long, env = "REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with `REDIS_KEY_FILE`).
    #[arg(long, env = "REDIS_CERT_FILE")]
    pub redis_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, env = "REDIS_KEY_FILE")]
    pub redis_key_file: Option<PathBuf>,
    /// Redis ACL user (instead of one in the URL).
    #[arg(long, env = "REDIS_USERNAME")]
    pub redis_username: Option<String>,
    /// Password of the ACL user (instead of one in the URL).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
}

impl std::fmt::Debug for SecureArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureArgs")
            .field("redis_ca_file", &self.redis_ca_file)
            .field("redis_cert_file", &self.redis_cert_file)
            .field("redis_key_file", &self.redis_key_file)
            .field("redis_username", &self.redis_username)
            .field(
                "redis_password",
                &self.redis_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// Checked TLS material and credentials, applied to every connection.
#[derive(Clone, Default)]
pub struct Secure {
    /// PEM of the CA certificate(s), if given.
    ca: Option<Vec<u8>>,
    /// PEM of the client certificate and key, if given.
    client: Option<(Vec<u8>, Vec<u8>)>,
    /// ACL user overriding the URL's.
    username: Option<String>,
    /// Password overriding the URL's.
    password: Option<String>,
}

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Reads a PEM file named by `var`, checking that it holds a `what` block.
fn read_pem(var: &str, path: &Path, marker: &str, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("{var}: cannot read {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&bytes).contains(marker) {
        return Err(Error::Config(format!(
            "{var}: {} holds no PEM {what} (no `{marker}` line)",
            path.display()
        )));
    }
    Ok(bytes)
}

impl SecureArgs {
    /// Reads the files and checks the settings against the URLs they apply to (`urls`: the
    /// single Redis, or a cluster's nodes).
    pub fn validate(&self, urls: &[&str]) -> Result<Secure> {
        let ca = self
            .redis_ca_file
            .as_deref()
            .map(|p| {
                read_pem(
                    "REDIS_CA_FILE",
                    p,
                    "-----BEGIN CERTIFICATE-----",
                    "certificate",
                )
            })
            .transpose()?;
        let client = match (&self.redis_cert_file, &self.redis_key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((
                read_pem(
                    "REDIS_CERT_FILE",
                    c,
                    "-----BEGIN CERTIFICATE-----",
                    "certificate",
                )?,
                read_pem("REDIS_KEY_FILE", k, "PRIVATE KEY-----", "private key")?,
            )),
            (Some(_), None) => {
                return Err(Error::Config(
                    "REDIS_CERT_FILE is set without REDIS_KEY_FILE: mutual TLS needs both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "REDIS_KEY_FILE is set without REDIS_CERT_FILE: mutual TLS needs both".into(),
                ));
            }
        };
        let empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let secure = Secure {
            ca,
            client,
            username: empty(&self.redis_username),
            password: empty(&self.redis_password),
        };
        for url in urls {
            let info = url
                .into_connection_info()
                .map_err(|e| Error::Config(format!("`{}`: {e}", redact(url))))?;
            let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            if !tls && (secure.ca.is_some() || secure.client.is_some()) {
                let var = if secure.ca.is_some() {
                    "REDIS_CA_FILE"
                } else {
                    "REDIS_CERT_FILE"
                };
                return Err(Error::Config(format!(
                    "{var} is set but `{}` is not a TLS URL: use rediss://",
                    redact(url)
                )));
            }
            let rs = info.redis_settings();
            if let (Some(a), Some(b)) = (rs.username(), secure.username.as_deref())
                && a != b
            {
                return Err(Error::Config(format!(
                    "REDIS_USERNAME `{b}` differs from the user `{a}` in `{}`: set one of them",
                    redact(url)
                )));
            }
            if let (Some(a), Some(b)) = (rs.password(), secure.password.as_deref())
                && a != b
            {
                return Err(Error::Config(format!(
                    "REDIS_PASSWORD differs from the password in `{}`: set one of them",
                    redact(url)
                )));
            }
            self::client(url, &secure)?;
        }
        Ok(secure)
    }
}

fn redact(url: &str) -> String {
    crate::config::redacted_url(url)
}

impl Secure {
    /// The ACL user connections log in as (from the settings or `url`), for messages.
    pub fn user_for(&self, url: &str) -> String {
        self.username
            .clone()
            .or_else(|| {
                url.into_connection_info()
                    .ok()
                    .and_then(|i| i.redis_settings().username().map(str::to_owned))
            })
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The certificates in redis-rs's form.
    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }
}

impl Secure {
    /// A Redis Cluster client builder for the seed `urls` with these TLS files (when given)
    /// and credentials (when given; else each URL's own) applied to every node.
    pub(crate) fn cluster_builder(&self, urls: &[String]) -> redis::cluster::ClusterClientBuilder {
        let mut b = redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str));
        if let Some(u) = &self.username {
            b = b.username(u.clone());
        }
        if let Some(p) = &self.password {
            b = b.password(p.clone());
        }
        if self.ca.is_some() || self.client.is_some() {
            b = b.certs(self.certificates());
        }
        b
    }
}

/// A client for `url` with the TLS files and credentials of `secure` applied: the one place
/// where they meet a connection.
pub fn client(url: &str, secure: &Secure) -> Result<redis::Client> {
    let bad = |e: redis::RedisError| Error::Config(format!("Redis URL `{}`: {e}", redact(url)));
    let mut info = url.into_connection_info().map_err(bad)?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &secure.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &secure.password {
        settings = settings.set_password(p);
    }
    info = info.set_redis_settings(settings);
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    if tls && (secure.ca.is_some() || secure.client.is_some()) {
        redis::Client::build_with_tls(info, secure.certificates()).map_err(|e| {
            Error::Config(format!(
                "TLS files (REDIS_CA_FILE, REDIS_CERT_FILE, REDIS_KEY_FILE): {e}"
            ))
        })
    } else {
        redis::Client::open(info).map_err(bad)
    }
}

/// Connects once and answers the line to stop with when Redis refuses this process in a way
/// retrying cannot cure: wrong credentials, a user without `PING`, a certificate the CA
/// does not vouch for (or a server that refuses ours). `None` when it answered or is merely
/// unreachable (the retry loops then wait for it as usual).
pub async fn check_access(redis: &Redis, url: &str, secure: &Secure) -> Option<String> {
    let attempt = async {
        let mut c = redis.dedicated(Duration::ZERO).await?;
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok::<(), Error>(())
    };
    let err = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(())) | Err(_) => return None,
        Ok(Err(e)) => e,
    };
    refusal(&err, &secure.user_for(url))
}

/// The line for an error that retrying cannot cure, if `e` is one.
fn refusal(e: &Error, user: &str) -> Option<String> {
    let Error::Redis(r) = e else {
        return None;
    };
    let text = r.to_string();
    if r.kind() == redis::ErrorKind::AuthenticationFailed || r.code() == Some("WRONGPASS") {
        Some(format!(
            "Redis refused the credentials for user `{user}` (WRONGPASS): check REDIS_USERNAME \
             and REDIS_PASSWORD (or the user and password in the URL)"
        ))
    } else if r.code() == Some("NOAUTH") {
        Some(
            "Redis requires a password (NOAUTH): set REDIS_PASSWORD (and REDIS_USERNAME for an \
             ACL user) or put them in the URL"
                .to_owned(),
        )
    } else if r.code() == Some("NOPERM") {
        Some(format!(
            "Redis user `{user}` lacks a permission dotjob needs ({}): grant the rules in the \
             README's \"Redis TLS and ACL\" section",
            text.trim()
        ))
    } else if ["certificate", "handshake", "TLS", "tls"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(format!(
            "TLS to Redis failed: {} (check REDIS_CA_FILE, and REDIS_CERT_FILE/REDIS_KEY_FILE \
             if the server asks for a client certificate)",
            text.trim()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dotjob-secure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn files_are_read_and_checked_at_start() {
        let args = SecureArgs {
            redis_ca_file: Some("/nonexistent/ca.pem".into()),
            ..SecureArgs::default()
        };
        let e = args.validate(&["rediss://h:6380"]).unwrap_err().to_string();
        assert!(
            e.contains("REDIS_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let args = SecureArgs {
            redis_ca_file: Some(tmp("junk.pem", "not a certificate")),
            ..SecureArgs::default()
        };
        let e = args.validate(&["rediss://h:6380"]).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let args = SecureArgs {
            redis_cert_file: Some(tmp("c.pem", "-----BEGIN CERTIFICATE-----")),
            ..SecureArgs::default()
        };
        let e = args.validate(&["rediss://h:6380"]).unwrap_err().to_string();
        assert!(e.contains("without REDIS_KEY_FILE"), "{e}");
    }

    #[test]
    fn a_ca_file_needs_a_tls_url_and_credentials_must_agree() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let args = SecureArgs {
            redis_ca_file: Some(tmp("ca.pem", ca)),
            ..SecureArgs::default()
        };
        let e = args.validate(&["redis://h:6379"]).unwrap_err().to_string();
        assert!(e.contains("is not a TLS URL: use rediss://"), "{e}");
        let args = SecureArgs {
            redis_password: Some("b".into()),
            ..SecureArgs::default()
        };
        let e = args
            .validate(&["redis://u:a@h:6379"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("REDIS_PASSWORD differs"), "{e}");
        assert!(!e.contains(":a@"), "password leaked: {e}");
        let ok = args
            .validate(&["redis://u:b@h:6379"])
            .expect("same password");
        assert_eq!(ok.user_for("redis://u:b@h:6379"), "u");
    }

    #[test]
    fn credentials_from_the_settings_reach_the_connection() {
        let secure = Secure {
            username: Some("dotjob".into()),
            password: Some("s3cret".into()),
            ..Secure::default()
        };
        let c = client("redis://127.0.0.1:6379", &secure).expect("client");
        let rs = c.get_connection_info().redis_settings();
        assert_eq!(rs.username(), Some("dotjob"));
        assert_eq!(rs.password(), Some("s3cret"));
        assert!(!format!("{secure:?}").contains("s3cret"));
    }

    #[test]
    fn refusals_that_retrying_cannot_cure_are_one_line() {
        let wrong = Error::Redis(redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        )));
        let line = refusal(&wrong, "dotjob").expect("a refusal");
        assert!(line.contains("user `dotjob` (WRONGPASS)"), "{line}");
        assert!(!line.contains('\n'));
        let io = Error::Redis(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert_eq!(refusal(&io, "dotjob"), None);
    }
}
