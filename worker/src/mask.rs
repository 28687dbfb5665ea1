//! Masking of secret values in what a run records (log lines, results, errors): a
//! [`Masker`] knows the values a run's params referenced and replaces each with `***`. It
//! depends on nothing else in the worker, so the run context can hold one.

use serde_json::Value;

/// What a secret value is replaced with in logs, results and errors.
pub const MASK: &str = "***";

/// Replaces secret values in text.
#[derive(Debug, Default)]
pub struct Masker {
    /// Values to hide, longest first (so a value containing another is hidden whole); a
    /// multi-line value also adds each of its lines, since logs arrive line by line.
    values: Vec<String>,
}

impl Masker {
    /// A masker hiding `values`.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a String>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for v in values {
            all.push(v.clone());
            all.extend(v.lines().map(str::to_owned));
        }
        all.retain(|v| !v.trim().is_empty());
        all.sort_by_key(|v| std::cmp::Reverse(v.len()));
        all.dedup();
        Self { values: all }
    }

    /// `s` with every secret value replaced by `***`.
    pub fn mask(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// `v` with every string (keys too) masked.
    pub fn mask_value(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.mask(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| self.mask_value(v)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (self.mask(&k), self.mask_value(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}
