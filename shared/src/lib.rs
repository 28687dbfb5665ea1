//! dotjob's core: the model (jobs, runs), the Redis key layout, the Lua scripts that make
//! firing and completion atomic, schedules with time zones, shared configuration and the
//! Redis connection. The scheduler and the worker are built on this crate; see the design
//! notes in the README for the invariants these pieces uphold.

pub mod config;
pub mod conn;
pub mod error;
pub mod events;
pub mod groups;
pub mod keys;
pub mod model;
pub mod schedule;
pub mod scripts;
pub mod store;
pub mod time;

pub use conn::Redis;
pub use error::{Error, Result};
pub use keys::Keys;
pub use store::Store;
