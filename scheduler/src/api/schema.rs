//! The OpenAPI schema of the one body the API layer owns itself: the error answer.
//!
//! Everything else the API sends and receives is described by the model types in
//! `dotjob-shared` (`JobInput`, `JobView`, `Run`, `GroupInfo`, `Page`, …), which derive their
//! schemas under that crate's `openapi` feature, so the document cannot drift from the JSON.
//! The error body is built by [`super::error::ApiError`] as JSON, so its shape is written
//! here, and the end-to-end document test checks real error answers against it.

#![allow(dead_code)]

use utoipa::ToSchema;

/// An error answer: every 4xx and 5xx has this body.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid`, `not_found`, `conflict`, `unauthorized`, `forbidden`,
    /// `too_large`, `unsupported_media_type`, `method_not_allowed`, `unavailable`, `internal`.
    #[schema(example = "invalid")]
    pub code: String,
    /// For people.
    pub message: String,
    /// The offending field or parameter (dotted path), when there is one.
    #[schema(example = "schedule")]
    pub field: Option<String>,
}
