//! Job definitions: what the admin API accepts, what a job hash in Redis holds, and the rules
//! that keep bad input out (invariant 9: a bad request is refused before anything is written).
//!
//! A [`JobInput`] is what a client sends (every field optional, unknown fields refused); it is
//! validated against a base (defaults for a create, the stored job for a PATCH) into a
//! [`JobSpec`], which round-trips through the job hash as readable string fields. The API
//! shows a job as a [`JobView`]. The pieces: `policy` (misfire, overlap, routing, backoff),
//! `input` (the request and its merge over the base), `validate` (one check per field),
//! `spec` (the stored form), `fields` (hash field reading), `view` (the API form). With the
//! `openapi` feature these types also describe themselves to the OpenAPI document.

mod fields;
mod input;
mod policy;
mod spec;
mod validate;
mod view;

pub(crate) use fields::FieldReader;
pub use input::{JobInput, Nullable};
pub use policy::{Backoff, ConcurrencyPolicy, MisfirePolicy, Routing};
pub use spec::JobSpec;
pub use validate::{valid_job_id, validate_group};
pub use view::JobView;

/// Limits on job fields; bad input beyond them is a 4xx naming the field.
pub mod limits {
    /// Longest job name, in characters.
    pub const NAME_MAX: usize = 200;
    /// Longest group name.
    pub const GROUP_MAX: usize = 64;
    /// Longest handler name.
    pub const HANDLER_MAX: usize = 128;
    /// Largest `params`, as compact JSON bytes.
    pub const PARAMS_MAX_BYTES: usize = 64 * 1024;
    /// Longest description.
    pub const DESCRIPTION_MAX: usize = 2_000;
    /// Most labels on a job.
    pub const LABELS_MAX: usize = 32;
    /// Longest label key / value.
    pub const LABEL_KEY_MAX: usize = 64;
    /// Longest label value.
    pub const LABEL_VALUE_MAX: usize = 256;
    /// Longest timeout (7 days).
    pub const TIMEOUT_MAX_MS: u64 = 7 * 24 * 3_600_000;
    /// Most attempts of one run.
    pub const ATTEMPTS_MAX: u32 = 100;
    /// Most shards of a sharded job.
    pub const SHARDS_MAX: u32 = 1_024;
    /// Most child jobs.
    pub const CHILDREN_MAX: usize = 32;
    /// Most ticks one misfire catch-up may fire.
    pub const CATCH_UP_MAX: u32 = 10_000;
}

/// Defaults applied on create.
pub mod defaults {
    /// Run deadline.
    pub const TIMEOUT_MS: u64 = 300_000;
    /// Attempts (1 = no retries).
    pub const MAX_ATTEMPTS: u32 = 1;
    /// First retry delay.
    pub const BACKOFF_BASE_MS: u64 = 1_000;
    /// Longest retry delay.
    pub const BACKOFF_MAX_MS: u64 = 300_000;
    /// How late a tick may be found and still simply fire late.
    pub const MISFIRE_THRESHOLD_MS: u64 = 30_000;
    /// Most missed ticks `catch_up` fires.
    pub const CATCH_UP_LIMIT: u32 = 100;
    /// Group when none is given.
    pub const GROUP: &str = "default";
    /// Time zone when none is given.
    pub const TIMEZONE: &str = "UTC";
}
