//! The data model: job definitions and run records, and strict JSON parsing for both.

pub mod job;
pub mod run;
pub mod stock_params;

use crate::error::{Error, Result};

/// Parses JSON into `T`; an error names the offending field (dotted path), or `body` when
/// the JSON itself is malformed.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = if inner.is_syntax() || inner.is_eof() {
            "body".to_owned()
        } else if path == "." || path.is_empty() {
            // Missing / unknown fields at the top: serde puts the name in backticks.
            msg.split('`').nth(1).unwrap_or("body").to_owned()
        } else if msg.starts_with("missing field") {
            format!("{path}.{}", msg.split('`').nth(1).unwrap_or(""))
        } else {
            path
        };
        Error::invalid(field, msg)
    })
}
