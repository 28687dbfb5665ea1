//! [`JobView`]: a job as the API shows it, the stored definition plus its next fire instant.
//!
//! Its JSON is the spec's fields and `next_fire_at` side by side (`#[serde(flatten)]`). A
//! derived OpenAPI schema would describe that as an `allOf` of two partial objects, which a
//! strict validator rejects, so under the `openapi` feature the schema is built from
//! [`JobSpec`]'s derived one with `next_fire_at` added: still one source of truth.

use serde::Serialize;

use super::spec::JobSpec;
use crate::time::opt_ms_rfc3339;

/// A job as stored, with its next fire instant.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// The definition.
    #[serde(flatten)]
    pub spec: JobSpec,
    /// Next scheduled fire; `null` when paused or manual-only.
    #[serde(serialize_with = "opt_ms_rfc3339")]
    pub next_fire_at: Option<i64>,
}

#[cfg(feature = "openapi")]
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{
        KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::{AllOfBuilder, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{JobSpec, JobView};

    const DESCRIPTION: &str = "A job as stored, with its next fire instant.";

    fn next_fire_at() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "Next scheduled fire; `null` when paused or manual-only.",
            ))
    }

    impl PartialSchema for JobView {
        fn schema() -> RefOr<Schema> {
            match JobSpec::schema() {
                RefOr::T(Schema::Object(mut spec)) => {
                    spec.properties
                        .insert("next_fire_at".to_owned(), next_fire_at().into());
                    spec.description = Some(DESCRIPTION.to_owned());
                    RefOr::T(Schema::Object(spec))
                }
                // Not a plain object (it always is today): compose instead of merging.
                other => AllOfBuilder::new()
                    .item(other)
                    .item(ObjectBuilder::new().property("next_fire_at", next_fire_at()))
                    .description(Some(DESCRIPTION))
                    .into(),
            }
        }
    }

    impl ToSchema for JobView {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Job")
        }

        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            <JobSpec as ToSchema>::schemas(schemas);
        }
    }
}
