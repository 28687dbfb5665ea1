//! dotjob's end-to-end suite: one binary, so its tests run concurrently under `cargo test`
//! (see `.cargo/config.toml`). Each test uses its own key prefix on the shared Redis or its
//! own `redis-server`.

mod common;
mod faults;
mod reliability;
mod spine;
mod validation;
