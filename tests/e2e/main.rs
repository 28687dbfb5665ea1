//! dotjob's end-to-end suite: one binary, so its tests run concurrently under `cargo test`
//! (see `.cargo/config.toml`). Each test uses its own key prefix on the shared Redis or its
//! own `redis-server`.

mod alerts;
mod api_auth;
mod api_doc;
mod api_fresh;
mod api_fuzz;
mod api_walk;
mod attempts;
mod audit;
mod backfill;
mod broadcast;
mod children;
mod cluster;
mod common;
mod dashboards;
mod declared;
mod errors;
mod faults;
mod ha;
mod idempotency;
mod idle_groups;
mod inflight;
mod last_status;
mod logs_json;
mod memory;
mod metrics;
mod outage;
mod readme_tour;
mod reliability;
mod routing;
mod security;
mod sharding;
mod shutdown;
mod spine;
mod tls;
mod tls_cluster;
mod validation;
mod warnings;
