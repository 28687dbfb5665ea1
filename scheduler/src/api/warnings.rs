//! Write-time warnings: a write that succeeds but will not do what the user probably expects
//! says so in a `warnings` list of its answer, instead of failing silently at run time.
//!
//! Two cases are checked against the group's executor table: a job whose handler no executor
//! of its group has registered (live, or seen in the last 24 hours), and a trigger into a group
//! with no live executor (the run waits in the stream until one starts). A failure to read the
//! table never fails the write; it only means no warning.

use dotjob_shared::groups::ExecutorView;
use dotjob_shared::model::job::JobView;
use dotjob_shared::store::Store;
use serde::Serialize;
use serde_json::Value;

/// How long an executor that stopped beating still counts as "recently seen".
const RECENT_MS: i64 = 24 * 60 * 60 * 1000;

/// A job as answered by a create or an update, with its warnings.
#[derive(Debug, Serialize)]
pub struct JobWritten {
    /// The job as stored.
    #[serde(flatten)]
    pub job: JobView,
    /// What may not work as expected (e.g. no executor serves the handler); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The documented shape: the `Job` object with one more property, merged (not composed) so
/// a strict reader of the document sees every field in one object.
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
    use utoipa::openapi::{AllOfBuilder, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{JobView, JobWritten};

    fn warnings() -> ArrayBuilder {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "What may not work as expected (e.g. no executor of the group serves the \
                 handler); absent when none.",
            ))
    }

    impl PartialSchema for JobWritten {
        fn schema() -> RefOr<Schema> {
            match JobView::schema() {
                RefOr::T(Schema::Object(mut job)) => {
                    job.properties
                        .insert("warnings".to_owned(), warnings().into());
                    RefOr::T(Schema::Object(job))
                }
                other => AllOfBuilder::new()
                    .item(other)
                    .item(ObjectBuilder::new().property("warnings", warnings()))
                    .into(),
            }
        }
    }

    impl ToSchema for JobWritten {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("JobWritten")
        }

        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            <JobView as ToSchema>::schemas(schemas);
        }
    }
}

fn handlers_of(e: &ExecutorView) -> impl Iterator<Item = &str> {
    e.registration
        .get("handlers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Whether `e` is alive or beat within [`RECENT_MS`] of `now_ms`.
fn recently_seen(e: &ExecutorView, now_ms: i64) -> bool {
    e.alive || e.last_heartbeat.is_some_and(|b| now_ms - b <= RECENT_MS)
}

/// The warning for `handler` in `group` given the group's executors, if any.
pub fn handler_warning(
    executors: &[ExecutorView],
    group: &str,
    handler: &str,
    now_ms: i64,
) -> Option<String> {
    let seen: Vec<&ExecutorView> = executors
        .iter()
        .filter(|e| recently_seen(e, now_ms))
        .collect();
    if seen.iter().any(|e| handlers_of(e).any(|h| h == handler)) {
        return None;
    }
    if seen.is_empty() {
        return Some(format!(
            "no executor of group \"{group}\" has been seen in the last 24 hours; runs wait until \
             a worker serving handler \"{handler}\" starts"
        ));
    }
    let mut known: Vec<&str> = seen.iter().flat_map(|e| handlers_of(e)).collect();
    known.sort_unstable();
    known.dedup();
    Some(format!(
        "no executor of group \"{group}\" registers handler \"{handler}\" (its executors serve: \
         {}); runs will fail until one does",
        known.join(", ")
    ))
}

/// The warning for a trigger into `group` given its executors, if any.
pub fn trigger_warning(executors: &[ExecutorView], group: &str) -> Option<String> {
    if executors.iter().any(|e| e.alive && !e.disabled) {
        return None;
    }
    Some(format!(
        "no live executor in group \"{group}\"; the run is queued until one starts"
    ))
}

/// The warning for a trigger of a broadcast job into `group` with no live executor: the
/// trigger is recorded as the skipped run `run`, not queued.
pub fn broadcast_nowhere(group: &str, run: &str) -> String {
    format!(
        "no live executor in group \"{group}\"; a broadcast runs only on executors live when it \
         fires, so run {run} is recorded as skipped"
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Warnings for a job just written with `group` and `handler`.
pub async fn for_job(store: &Store, group: &str, handler: &str) -> Vec<String> {
    match store.list_executors(group).await {
        Ok(ex) => handler_warning(&ex, group, handler, now_ms())
            .into_iter()
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Warnings for a trigger into `group`.
pub async fn for_trigger(store: &Store, group: &str) -> Vec<String> {
    match store.list_executors(group).await {
        Ok(ex) => trigger_warning(&ex, group).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn executor(handlers: &[&str], alive: bool, last: i64) -> ExecutorView {
        let registration = json!({ "handlers": handlers })
            .as_object()
            .cloned()
            .unwrap_or_default();
        ExecutorView {
            id: "e1".to_owned(),
            registration,
            last_heartbeat: Some(last),
            alive,
            disabled: false,
            pending: 0,
        }
    }

    #[test]
    fn a_registered_handler_gives_no_warning() {
        let ex = [executor(&["a", "b"], true, 0)];
        assert_eq!(handler_warning(&ex, "g", "b", 0), None);
        assert_eq!(trigger_warning(&ex, "g"), None);
    }

    #[test]
    fn an_unknown_handler_names_what_the_group_serves() {
        let ex = [executor(&["a", "b"], true, 0)];
        let w = handler_warning(&ex, "g", "nope", 0).unwrap();
        assert!(w.contains("\"nope\"") && w.contains("a, b"), "{w}");
    }

    #[test]
    fn executors_gone_for_a_day_do_not_count() {
        let ex = [executor(&["a"], false, 0)];
        assert_eq!(handler_warning(&ex, "g", "a", RECENT_MS), None);
        let w = handler_warning(&ex, "g", "a", RECENT_MS + 1).unwrap();
        assert!(w.contains("24 hours"), "{w}");
        assert!(
            trigger_warning(&ex, "g")
                .unwrap()
                .contains("no live executor")
        );
    }
}
