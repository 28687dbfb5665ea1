//! The error type of the core crate.
//!
//! Callers tell client mistakes (`Invalid`, `NotFound`, `Conflict`) from infrastructure failures
//! (`Redis`, `Pool`) by variant; the admin API maps the first kind to 4xx and the second to 5xx.

/// Result alias for the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Redis command failed (connection lost, script error, timeout).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool.
    #[error("redis connection pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// Input that breaks a rule; `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON field (dotted path) the problem is in.
        field: String,
        /// What is wrong, for humans.
        message: String,
    },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. a concurrent change).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored record could not be read back (someone wrote it by hand?).
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// Redis key of the record.
        key: String,
        /// What could not be parsed.
        message: String,
    },
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// An `Invalid` error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether Redis refused a write because it is out of memory (`OOM` reply).
    pub fn is_oom(&self) -> bool {
        matches!(self, Self::Redis(r)
            if r.code() == Some("OOM") || r.to_string().contains("OOM command not allowed"))
    }

    /// True when the failure is about reaching Redis rather than about the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.code(),
                        Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN")
                    )
            }
            _ => false,
        }
    }
}
