//! Secrets in params: a job stores only a reference, `{"$secret": "NAME"}`, anywhere in its
//! params; the worker replaces it with the value at run time, and masks the value (`***`)
//! in everything the run records.
//!
//! A value comes from the secrets file (`DOTJOB_SECRETS_FILE`: `NAME=value` lines, `#`
//! comments, or one JSON object of strings; read again for every run that needs a secret,
//! so it can be rotated without a restart), else from the worker's environment variable
//! `DOTJOB_SECRET_<NAME>` (only that prefix, so a job cannot read arbitrary variables of
//! the worker). A missing secret fails the run without retry, naming the secret.
//!
//! [`guard`] wraps every handler of a worker: it resolves the references into the params
//! the handler sees, installs a [`Masker`] on the run's log buffer (so every line is masked
//! as it is logged), and masks the handler's result, error and panic message. Runs whose
//! params reference no secret go to the handler untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use dotjob_shared::model::stock_params::{SECRET_KEY, secret_ref};
use futures::FutureExt;
use serde_json::Value;

use crate::handler::HandlerFuture;
use crate::{Handler, HandlerError, RunContext};

pub use crate::mask::{MASK, Masker};

/// Prefix of the environment variables secrets are read from.
pub const ENV_PREFIX: &str = "DOTJOB_SECRET_";

/// Where a worker reads secret values.
#[derive(Clone, Debug, Default)]
pub struct SecretSource {
    /// The secrets file, if any; read when a run needs a secret.
    pub file: Option<PathBuf>,
}

/// Parses a secrets file: a JSON object of strings, or `NAME=value` lines.
fn parse_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|e| format!("not a JSON object of strings: {e}"));
    }
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=value", n + 1))?;
        out.insert(name.trim().to_owned(), value.to_owned());
    }
    Ok(out)
}

impl SecretSource {
    /// Checks that the secrets file (if any) can be read and parsed; for worker start.
    pub fn check(&self) -> Result<(), String> {
        match &self.file {
            None => Ok(()),
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_file(&t).map(drop))
                .map_err(|e| format!("DOTJOB_SECRETS_FILE {}: {e}", f.display())),
        }
    }

    /// The values of `names`. A missing name is fatal; an unreadable file may be transient.
    async fn lookup(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, HandlerError> {
        let from_file = match &self.file {
            None => BTreeMap::new(),
            Some(f) => {
                let text = tokio::fs::read_to_string(f).await.map_err(|e| {
                    HandlerError::retry(format!("cannot read DOTJOB_SECRETS_FILE: {e}"))
                })?;
                parse_file(&text)
                    .map_err(|e| HandlerError::retry(format!("DOTJOB_SECRETS_FILE: {e}")))?
            }
        };
        names
            .iter()
            .map(|n| {
                let v = from_file
                    .get(n)
                    .cloned()
                    .or_else(|| std::env::var(format!("{ENV_PREFIX}{n}")).ok())
                    .ok_or_else(|| {
                        HandlerError::fatal(format!(
                            "params: secret `{n}` is not set on this worker \
                             ({ENV_PREFIX}{n} or DOTJOB_SECRETS_FILE)"
                        ))
                    })?;
                Ok((n.clone(), v))
            })
            .collect()
    }
}

/// Collects the secret names referenced in `v`; a malformed reference is an error naming
/// its place.
fn collect(v: &Value, path: &str, out: &mut BTreeSet<String>) -> Result<(), String> {
    match v {
        Value::Object(o) if o.contains_key(SECRET_KEY) => match secret_ref(v) {
            Some(n) => {
                out.insert(n.to_owned());
                Ok(())
            }
            None => Err(format!("{path}: malformed secret reference")),
        },
        Value::Object(o) => o
            .iter()
            .try_for_each(|(k, v)| collect(v, &format!("{path}.{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| collect(v, &format!("{path}[{i}]"), out)),
        _ => Ok(()),
    }
}

/// `v` with every reference replaced by its value.
fn substitute(v: &Value, values: &BTreeMap<String, String>) -> Value {
    if let Some(n) = secret_ref(v) {
        return values
            .get(n)
            .map_or(Value::Null, |s| Value::String(s.clone()));
    }
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, values)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, values)).collect()),
        _ => v.clone(),
    }
}

/// `e` with every secret value in its message masked, retryable as it was.
fn mask_error(masker: &Masker, e: &HandlerError) -> HandlerError {
    let msg = masker.mask(e.message());
    if e.is_retryable() {
        HandlerError::retry(msg)
    } else {
        HandlerError::fatal(msg)
    }
}

/// A handler whose runs get their secrets resolved and masked.
struct Guarded {
    inner: Arc<dyn Handler>,
    source: Arc<SecretSource>,
}

/// Wraps `inner` so secret references in its runs' params are resolved and their values
/// masked in everything the run records.
pub fn guard(inner: Arc<dyn Handler>, source: &Arc<SecretSource>) -> Arc<dyn Handler> {
    Arc::new(Guarded {
        inner,
        source: source.clone(),
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

impl Handler for Guarded {
    fn call(&self, ctx: RunContext) -> HandlerFuture {
        let mut names = BTreeSet::new();
        if let Err(e) = collect(ctx.params(), "params", &mut names) {
            return Box::pin(async move { Err(HandlerError::fatal(e)) });
        }
        if names.is_empty() {
            return self.inner.call(ctx);
        }
        let inner = self.inner.clone();
        let source = self.source.clone();
        Box::pin(async move {
            let values = source.lookup(&names).await?;
            let masker = Arc::new(Masker::new(values.values()));
            let mut ctx = ctx;
            ctx.params = Arc::new(substitute(ctx.params(), &values));
            ctx.set_masker(masker.clone());
            match std::panic::AssertUnwindSafe(inner.call(ctx))
                .catch_unwind()
                .await
            {
                Ok(Ok(v)) => Ok(masker.mask_value(v)),
                Ok(Err(e)) => Err(mask_error(&masker, &e)),
                Err(p) => Err(HandlerError::retry(format!(
                    "handler panicked: {}",
                    masker.mask(&panic_message(p.as_ref()))
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file_with(text: &str) -> (tempdir::Dir, SecretSource) {
        let d = tempdir::Dir::new();
        let f = d.0.join("secrets");
        std::fs::write(&f, text).unwrap();
        (d, SecretSource { file: Some(f) })
    }

    /// A folder removed when dropped.
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let d = std::env::temp_dir().join(format!(
                    "dotjob-secrets-{}-{}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&d).unwrap();
                Self(d)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn echo_and_leak() -> Arc<dyn Handler> {
        Arc::new(|ctx: RunContext| async move {
            let key: String = ctx.param("key")?;
            ctx.log(format!("using {key} now"));
            if ctx.param::<bool>("fail").unwrap_or(false) {
                return Err(HandlerError::fatal(format!("rejected {key}")));
            }
            if ctx.param::<bool>("panic").unwrap_or(false) {
                panic!("boom with {key}");
            }
            Ok::<_, HandlerError>(ctx.params().clone())
        })
    }

    #[tokio::test]
    async fn references_resolve_from_the_file_and_values_are_masked_everywhere() {
        let (_d, source) = file_with("# comment\nAPI_KEY=hunter2-very-secret\nOTHER = x\n");
        let h = guard(echo_and_leak(), &Arc::new(source));
        let params =
            json!({"key": {"$secret": "API_KEY"}, "nested": [{"k": {"$secret": "API_KEY"}}]});
        let ctx = RunContext::for_test(params.clone());
        let out = h.call(ctx.clone()).await.unwrap();
        assert_eq!(out, json!({"key": "***", "nested": [{"k": "***"}]}));
        assert_eq!(ctx.unflushed_log(), ["using *** now"]);

        let mut failing = params.clone();
        failing["fail"] = json!(true);
        let err = h.call(RunContext::for_test(failing)).await.unwrap_err();
        assert_eq!(err.message(), "rejected ***");
        assert!(!err.is_retryable());

        let mut panicking = params;
        panicking["panic"] = json!(true);
        let err = h.call(RunContext::for_test(panicking)).await.unwrap_err();
        assert_eq!(err.message(), "handler panicked: boom with ***");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn json_files_work_and_a_missing_secret_is_fatal_and_named() {
        let (_d, source) = file_with(r#"{"TOKEN": "abc-123"}"#);
        assert!(source.check().is_ok());
        let h = guard(echo_and_leak(), &Arc::new(source));
        let ok = h
            .call(RunContext::for_test(json!({"key": {"$secret": "TOKEN"}})))
            .await
            .unwrap();
        assert_eq!(ok["key"], "***");
        let err = h
            .call(RunContext::for_test(
                json!({"key": {"$secret": "NOPE_MISSING"}}),
            ))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("`NOPE_MISSING` is not set"), "{err}");
        let bad = h
            .call(RunContext::for_test(json!({"key": {"$secret": 7}})))
            .await
            .unwrap_err();
        assert!(bad.message().starts_with("params.key: malformed"), "{bad}");
    }

    #[tokio::test]
    async fn params_without_references_pass_untouched() {
        let h = guard(echo_and_leak(), &Arc::new(SecretSource::default()));
        let out = h
            .call(RunContext::for_test(json!({"key": "plain ***-free"})))
            .await
            .unwrap();
        assert_eq!(out, json!({"key": "plain ***-free"}));
    }

    #[test]
    fn masking_hides_longest_values_first_and_lines_of_multiline_values() {
        let values = [
            "abc".to_owned(),
            "abcdef".to_owned(),
            "line1\nline2".to_owned(),
        ];
        let m = Masker::new(values.iter());
        assert_eq!(m.mask("x abcdef y abc"), "x *** y ***");
        assert_eq!(m.mask("got line2"), "got ***");
        assert!(file_with("no equals sign").1.check().is_err());
    }
}
