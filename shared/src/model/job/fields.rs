//! Hash fields: jobs and runs are stored as Redis hashes of readable strings (numbers as
//! decimal text, nested values as compact JSON). These helpers write and read them, and
//! report anything unreadable as a corrupt record naming its key and field.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Compact JSON of a value that cannot fail to serialise.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Typed reads of hash fields, reporting the key and field of anything unreadable.
pub(crate) struct FieldReader<'a> {
    /// The hash's key, for error messages only.
    pub(crate) key: &'a str,
    /// The hash's fields.
    pub(crate) f: &'a HashMap<String, String>,
}

impl FieldReader<'_> {
    fn corrupt(&self, field: &str, e: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            key: self.key.to_owned(),
            message: format!("field {field}: {e}"),
        }
    }

    pub(crate) fn str(&self, field: &str) -> Result<&str> {
        self.f
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| self.corrupt(field, "missing"))
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, field: &str) -> Result<T> {
        self.str(field)?
            .parse()
            .map_err(|_| self.corrupt(field, "not a number"))
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, field: &str) -> Result<T> {
        serde_json::from_str(self.str(field)?).map_err(|e| self.corrupt(field, e))
    }

    /// A unit enum stored as its bare snake_case name.
    pub(crate) fn word<T: serde::de::DeserializeOwned>(&self, field: &str) -> Result<T> {
        serde_json::from_value(Value::String(self.str(field)?.to_owned()))
            .map_err(|e| self.corrupt(field, e))
    }
}
