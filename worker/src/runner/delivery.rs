//! A run as this worker received it: a stream entry (read by the reader, claimed by the
//! claimer) parsed into a [`Delivery`]. Pure parsing, no I/O; a delivery then moves by value
//! from task to task (holding, dispatch, execution) and is never shared.

use std::collections::HashMap;

use dotjob_shared::model::run::{RunIdShape, job_of_run};
use redis::Value as RValue;
use serde_json::Value;

/// A run taken from the stream.
#[derive(Debug)]
pub(super) struct Delivery {
    /// The stream entry id (acknowledged once the run reached a final state).
    pub(super) entry: String,
    pub(super) run: String,
    pub(super) job: String,
    /// The job version the run was fired with: the definition used is at least this new.
    pub(super) version: u64,
    /// The tick (ms, Redis clock): a run fired ahead starts at it, not before.
    pub(super) at: i64,
    /// A manual trigger's params override (else the job's params).
    pub(super) params: Option<Value>,
    /// A sharded job's (index, count, shard parameter).
    pub(super) shard: Option<(u32, u32, Value)>,
    /// The attempt number: the entry's delivery count.
    pub(super) attempt: u32,
}

#[cfg(test)]
impl Delivery {
    /// A first delivery of `run` (of job `j`, fired with `version`) for tick `at`.
    pub(super) fn sample(run: &str, at: i64, version: u64) -> Self {
        Self {
            entry: format!("{at}-0"),
            run: run.to_owned(),
            job: "j".to_owned(),
            version,
            at,
            params: None,
            shard: None,
            attempt: 1,
        }
    }
}

impl Delivery {
    /// Reads an entry's fields through `get`; `None` when the entry is malformed (no run id,
    /// no version, a shard that is not a number).
    pub(super) fn parse_with(
        entry: String,
        attempt: u32,
        get: impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        let run = get("run")?;
        // The run id names the job and the tick; older entries also carried them as fields.
        let job = match get("job") {
            Some(j) => j,
            None => job_of_run(&run)?.to_owned(),
        };
        let at = get("at")
            .and_then(|a| a.parse().ok())
            .or_else(|| RunIdShape::of(&run).tick)
            .unwrap_or(0);
        let shard = match (get("shard"), get("shards")) {
            (Some(i), Some(n)) => Some((
                i.parse().ok()?,
                n.parse().ok()?,
                get("sp")
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or(Value::Null),
            )),
            _ => None,
        };
        Some(Self {
            job,
            at,
            run,
            version: get("v")?.parse().ok()?,
            params: get("p").and_then(|p| serde_json::from_str(&p).ok()),
            shard,
            entry,
            attempt,
        })
    }

    /// Parses an entry whose fields are already text (as `claim.lua`'s typed call returns
    /// them).
    pub(super) fn parse(
        entry: String,
        attempt: u32,
        fields: &HashMap<String, String>,
    ) -> Option<Self> {
        Self::parse_with(entry, attempt, |k| fields.get(k).cloned())
    }

    /// Parses an entry as `XREADGROUP` returns it (a first delivery).
    pub(super) fn from_read(entry: String, fields: &HashMap<String, RValue>) -> Option<Self> {
        Self::parse_with(entry, 1, |k| fields.get(k).map(value_text))
    }
}

/// A Redis reply value as text (empty for anything that is not a string or a number).
pub(super) fn value_text(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::Int(i) => i.to_string(),
        RValue::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RValue {
        RValue::BulkString(s.as_bytes().to_vec())
    }

    fn fields(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_lean_entry_takes_job_and_tick_from_its_run_id() {
        let f = fields(&[("run", "01jabc-1790000000000"), ("v", "7")]);
        let d = Delivery::parse("1790000000001-0".to_owned(), 3, &f).unwrap();
        assert_eq!(d.entry, "1790000000001-0");
        assert_eq!(
            (d.run.as_str(), d.job.as_str()),
            ("01jabc-1790000000000", "01jabc")
        );
        assert_eq!((d.version, d.at, d.attempt), (7, 1_790_000_000_000, 3));
        assert!(d.params.is_none() && d.shard.is_none());
    }

    #[test]
    fn explicit_fields_win_over_the_run_id() {
        let f = fields(&[
            ("run", "01jabc-m1790000000000-4"),
            ("job", "01jxyz"),
            ("at", "1790000000500"),
            ("v", "2"),
            ("p", r#"{"to":"ops"}"#),
            ("shard", "1"),
            ("shards", "3"),
            ("sp", r#""eu""#),
        ]);
        let d = Delivery::parse("5-0".to_owned(), 1, &f).unwrap();
        assert_eq!(d.job, "01jxyz");
        assert_eq!(d.at, 1_790_000_000_500);
        assert_eq!(d.params, Some(serde_json::json!({"to": "ops"})));
        assert_eq!(d.shard, Some((1, 3, Value::String("eu".to_owned()))));
    }

    #[test]
    fn a_manual_run_id_gives_its_trigger_instant() {
        let f = fields(&[("run", "01jabc-m1790000000000-4"), ("v", "1")]);
        let d = Delivery::parse("5-0".to_owned(), 1, &f).unwrap();
        assert_eq!((d.job.as_str(), d.at), ("01jabc", 1_790_000_000_000));
    }

    #[test]
    fn malformed_entries_are_refused() {
        let no_run = fields(&[("v", "1")]);
        assert!(Delivery::parse("1-0".to_owned(), 1, &no_run).is_none());
        let no_version = fields(&[("run", "01jabc-1790000000000")]);
        assert!(Delivery::parse("1-0".to_owned(), 1, &no_version).is_none());
        let bad_version = fields(&[("run", "01jabc-1790000000000"), ("v", "x")]);
        assert!(Delivery::parse("1-0".to_owned(), 1, &bad_version).is_none());
        let no_job = fields(&[("run", "nojob"), ("v", "1")]);
        assert!(Delivery::parse("1-0".to_owned(), 1, &no_job).is_none());
        let bad_shard = fields(&[
            ("run", "01jabc-1790000000000"),
            ("v", "1"),
            ("shard", "one"),
            ("shards", "3"),
        ]);
        assert!(Delivery::parse("1-0".to_owned(), 1, &bad_shard).is_none());
    }

    #[test]
    fn a_shard_without_its_parameter_gets_null_and_bad_params_are_dropped() {
        let f = fields(&[
            ("run", "01jabc-1790000000000"),
            ("v", "1"),
            ("shard", "0"),
            ("shards", "2"),
            ("p", "{not json"),
        ]);
        let d = Delivery::parse("1-0".to_owned(), 1, &f).unwrap();
        assert_eq!(d.shard, Some((0, 2, Value::Null)));
        assert!(d.params.is_none());
    }

    #[test]
    fn read_entries_are_first_attempts_with_any_value_type() {
        let f: HashMap<String, RValue> = [
            ("run".to_owned(), bulk("01jabc-1790000000000")),
            ("v".to_owned(), RValue::Int(4)),
        ]
        .into_iter()
        .collect();
        let d = Delivery::from_read("9-1".to_owned(), &f).unwrap();
        assert_eq!((d.attempt, d.version, d.job.as_str()), (1, 4, "01jabc"));
    }

    #[test]
    fn values_read_as_text() {
        assert_eq!(value_text(&bulk("a")), "a");
        assert_eq!(value_text(&RValue::SimpleString("OK".to_owned())), "OK");
        assert_eq!(value_text(&RValue::Int(-3)), "-3");
        assert_eq!(value_text(&RValue::Nil), "");
    }
}
