//! dotjob's core: the model (jobs, runs), the Redis key layout, the Lua scripts that make
//! firing and completion atomic, schedules with time zones, shared configuration and the
//! Redis connection. The scheduler and the worker are built on this crate; see the design
//! notes in the README for the invariants these pieces uphold.

#![warn(missing_docs)]

pub mod backfill;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod error;
pub mod events;
pub mod eviction;
pub mod groups;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod scripts;
pub mod secure;
pub mod store;
#[cfg(test)]
mod test_redis;
pub mod time;
pub mod views;

pub use conn::Redis;

/// This machine's host name.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// An id no other process shares: host, pid and a random suffix (`<host>-<pid>-<hex>`).
/// Workers use it as their consumer name, schedulers as their replica id.
pub fn process_id() -> String {
    let host: String = hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
pub use error::{Error, Result};
pub use keys::Keys;
pub use store::Store;
