//! The audit trail: every admin write, recorded once, readable over the API.
//!
//! [`record`] is a middleware around every route: an operation that needs an admin token
//! and is not a `GET` (job create/update/delete/pause/resume/trigger, run cancel, executor
//! disable/enable, dead-letter requeue, alert rule create/update/delete/test, and any such
//! operation added later) is recorded
//! after it answered, with when (the entry id, on the Redis clock), which token (its
//! name), the action (the operation id), the targets (job, run, group, executor, dead
//! letter, alert rule), the HTTP status and outcome, and the job's version before and after
//! where a job is involved (a trigger answered by its idempotency key is recorded too, with
//! `replayed: true`: nothing was enqueued). Requests refused before reaching the operation
//! (no token, an unknown token: 401; a read token: 403) are not writes and are not recorded
//! (the 403 is logged with the token's name), so no one without an admin token can push entries out of the
//! bounded trail. Entries go to the stream `<prefix>:audit` (`XADD MAXLEN ~`), readable with
//! `redis-cli XREVRANGE dotjob:audit + - COUNT 10` and through `GET /audit` (admin only:
//! the trail shows who holds which token and what they did).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use dotjob_shared::Store;
use dotjob_shared::model::job::valid_job_id;
use dotjob_shared::time::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Access, AccessTable, CallerName};
use super::error::ApiError;
use super::extract::{ApiQuery, instant_param};
use super::schema;

/// Largest answer body read to find the targets of a write (answers of writes are far
/// smaller).
const ANSWER_MAX: usize = 4 * 1024 * 1024;

/// What the recording middleware needs.
#[derive(Debug)]
pub struct Auditor {
    /// Redis (the audit stream, and jobs' versions before a write).
    pub store: Store,
    /// Which operations are admin writes, and their ids.
    pub table: Arc<AccessTable>,
    /// `XADD MAXLEN ~` bound.
    pub maxlen: u64,
}

/// Targets and versions of one write.
#[derive(Debug, Default)]
struct Targets {
    job: Option<String>,
    run: Option<String>,
    group: Option<String>,
    executor: Option<String>,
    entry: Option<String>,
    rule: Option<String>,
    version_before: Option<u64>,
    version_after: Option<u64>,
    error: Option<String>,
    /// A trigger answered by its idempotency key: nothing was enqueued.
    replayed: bool,
}

impl Targets {
    fn from_path(template: &str, params: Option<&RawPathParams>) -> Self {
        let mut t = Self::default();
        for (k, v) in params.into_iter().flatten() {
            let slot = match k {
                "id" if template.starts_with("/api/v1/runs/") => &mut t.run,
                "id" if template.starts_with("/api/v1/alerts/") => &mut t.rule,
                "id" => &mut t.job,
                "group" => &mut t.group,
                "executor" => &mut t.executor,
                "entry" => &mut t.entry,
                _ => continue,
            };
            *slot = Some(v.to_owned());
        }
        t
    }

    /// Completes the targets from the answer: a created job's id, a new run's id, a run's
    /// job and group, a job's version after the change.
    fn complete(&mut self, action: &str, status: StatusCode, body: &Value) {
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        if status.is_success() {
            if action == "create_job" {
                self.job = self.job.take().or_else(|| s("id"));
            }
            if action == "create_alert_rule" {
                self.rule = self.rule.take().or_else(|| s("id"));
            }
            self.run = self.run.take().or_else(|| s("run_id"));
            self.replayed = body.get("replayed").and_then(Value::as_bool) == Some(true);
            self.job = self.job.take().or_else(|| s("job_id"));
            self.group = self.group.take().or_else(|| s("group"));
            let is_job = self.job.is_some() && s("id") == self.job;
            self.version_after = match body.get("version").and_then(Value::as_u64) {
                Some(v) if is_job => Some(v),
                _ if action == "delete_job" => None,
                _ => self.version_before,
            };
        } else {
            self.version_after = self.version_before;
            self.error = body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if self.job.is_none() {
            // Run ids start with their job's id.
            self.job = self
                .run
                .as_deref()
                .and_then(|r| r.split('-').next())
                .filter(|j| valid_job_id(j))
                .map(str::to_owned);
        }
    }
}

/// Records admin writes (see the module documentation).
pub async fn record(
    State(a): State<Arc<Auditor>>,
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let template = matched.as_ref().map_or("", MatchedPath::as_str).to_owned();
    let method = req.method().clone();
    let action = match a.table.operation(&method, &template) {
        Some(op)
            if method != Method::GET
                && method != Method::HEAD
                && a.table.access(&method, &template) == Access::Admin =>
        {
            op.to_owned()
        }
        _ => return next.run(req).await,
    };
    let path = req.uri().path().to_owned();
    let mut targets = Targets::from_path(&template, params.as_ref().ok());
    if let Some(job) = targets.job.as_deref().filter(|j| valid_job_id(j))
        && let Ok(before) = a.store.get_job(job).await
    {
        targets.version_before = Some(before.version);
        targets.group.get_or_insert(before.group);
    }
    let resp = next.run(req).await;
    let Some(CallerName(token)) = resp.extensions().get::<CallerName>().cloned() else {
        return resp; // refused before any token was accepted
    };
    if resp.status() == StatusCode::FORBIDDEN {
        return resp; // a read token: not a write
    }
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, ANSWER_MAX)
        .await
        .unwrap_or_default();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    targets.complete(&action, status, &answer);
    a.append(&action, &token, &method, &path, status, &targets)
        .await;
    Response::from_parts(parts, Body::from(bytes))
}

impl Auditor {
    async fn append(
        &self,
        action: &str,
        token: &str,
        method: &Method,
        path: &str,
        status: StatusCode,
        t: &Targets,
    ) {
        let outcome = if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "rejected"
        } else {
            "failed"
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("action", action.to_owned()),
            ("token", token.to_owned()),
            ("method", method.to_string()),
            ("path", path.to_owned()),
            ("status", status.as_u16().to_string()),
            ("outcome", outcome.to_owned()),
        ];
        for (k, v) in [
            ("job", &t.job),
            ("run", &t.run),
            ("group", &t.group),
            ("executor", &t.executor),
            ("entry", &t.entry),
            ("rule", &t.rule),
            ("error", &t.error),
        ] {
            if let Some(v) = v {
                fields.push((k, v.clone()));
            }
        }
        for (k, v) in [
            ("version_before", t.version_before),
            ("version_after", t.version_after),
        ] {
            if let Some(v) = v {
                fields.push((k, v.to_string()));
            }
        }
        if t.replayed {
            fields.push(("replayed", "true".to_owned()));
        }
        let key = self.store.redis().keys().audit();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*");
        for (k, v) in &fields {
            cmd.arg(*k).arg(v);
        }
        let done = match self.store.redis().conn().await {
            Ok(mut c) => cmd
                .query_async::<String>(&mut c)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = done {
            tracing::error!(action, token, path, error = %e, "cannot record the audit entry of an admin write");
        }
    }
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action (an operation id, e.g. `update_job`).
    #[param(example = "update_job")]
    action: Option<String>,
    /// Only writes made with the token of this name.
    token: Option<String>,
    /// Only writes about this job.
    job: Option<String>,
    /// Only writes about this alert rule.
    rule: Option<String>,
    /// Only entries at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only entries at or before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One admin write.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Entry id in the audit stream (`<ms>-<n>`).
    id: String,
    /// When it was recorded (Redis clock).
    #[schema(format = DateTime)]
    at: String,
    /// The operation id (`create_job`, `update_job`, `delete_job`, `pause_job`,
    /// `resume_job`, `trigger_job`, `cancel_run`, `disable_executor`, `enable_executor`,
    /// `requeue_dead_letter`, `create_alert_rule`, `update_alert_rule`,
    /// `delete_alert_rule`, `test_alert_rule`).
    action: String,
    /// Name of the token used (`anonymous` when the API is open).
    token: String,
    method: String,
    path: String,
    /// HTTP status of the answer.
    status: u16,
    /// `ok` (2xx), `rejected` (4xx) or `failed` (5xx).
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor: Option<String>,
    /// Dead-letter entry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    /// Alert rule id.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// The job's version before the write.
    #[serde(skip_serializing_if = "Option::is_none")]
    version_before: Option<u64>,
    /// The job's version after it (absent once deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    version_after: Option<u64>,
    /// Error code of a refused or failed write.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// A trigger answered by its idempotency key (`true`): recorded, but nothing was
    /// enqueued.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

impl AuditEntry {
    fn parse(id: String, flat: Vec<String>) -> Self {
        let mut f: BTreeMap<String, String> = BTreeMap::new();
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            f.insert(k, v);
        }
        let ms = id
            .split('-')
            .next()
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(0);
        let mut take = |k: &str| f.remove(k);
        Self {
            at: rfc3339(ms),
            action: take("action").unwrap_or_default(),
            token: take("token").unwrap_or_default(),
            method: take("method").unwrap_or_default(),
            path: take("path").unwrap_or_default(),
            status: take("status").and_then(|s| s.parse().ok()).unwrap_or(0),
            outcome: take("outcome").unwrap_or_default(),
            job: take("job"),
            run: take("run"),
            group: take("group"),
            executor: take("executor"),
            entry: take("entry"),
            rule: take("rule"),
            version_before: take("version_before").and_then(|s| s.parse().ok()),
            version_after: take("version_after").and_then(|s| s.parse().ok()),
            error: take("error"),
            replayed: take("replayed").as_deref() == Some("true"),
            id,
        }
    }
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; `null` on the last one. A page may hold fewer
    /// than `limit` entries (a selective filter) and still have a next one.
    next_cursor: Option<String>,
}

/// A stream entry id `<ms>-<seq>` (both `u64`).
fn is_stream_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u64>().is_ok())
    })
}

fn check_word(field: &str, v: Option<&str>, ok: impl Fn(u8) -> bool) -> Result<(), ApiError> {
    match v {
        Some(s) if s.is_empty() || s.len() > 64 || !s.bytes().all(ok) => Err(ApiError::invalid(
            field,
            "not a value this filter can match",
        )),
        _ => Ok(()),
    }
}

/// List the audit trail (admin writes), newest first, filtered and paginated.
#[utoipa::path(get, path = "/audit", operation_id = "list_audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page, newest first", body = AuditPage),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    check_word("action", q.action.as_deref(), |b| {
        b.is_ascii_lowercase() || b == b'_'
    })?;
    check_word("token", q.token.as_deref(), |b| {
        b.is_ascii_alphanumeric() || b"_.-".contains(&b)
    })?;
    if q.job.as_deref().is_some_and(|j| !valid_job_id(j)) {
        return Err(ApiError::invalid("job", "not a job id"));
    }
    if q.rule.as_deref().is_some_and(|r| !valid_job_id(r)) {
        return Err(ApiError::invalid("rule", "not an alert rule id"));
    }
    let from = instant_param("from", q.from.as_deref())?;
    let to = instant_param("to", q.to.as_deref())?;
    if from.zip(to).is_some_and(|(f, t)| f > t) {
        return Err(ApiError::invalid("from", "is after `to`"));
    }
    let cursor = q.cursor.filter(|c| !c.is_empty());
    if cursor.as_deref().is_some_and(|c| !is_stream_id(c)) {
        return Err(ApiError::invalid(
            "cursor",
            "not a cursor from this listing",
        ));
    }
    if cursor.as_deref() == Some("0-0") {
        return Ok(Json(AuditPage {
            items: vec![],
            next_cursor: None,
        })); // nothing is older than the first possible entry
    }
    let start = from.map_or("-".to_owned(), |f| f.max(0).to_string());
    let end = match (&cursor, to) {
        (Some(c), _) => format!("({c}"),
        (None, Some(t)) if t < 0 => {
            return Ok(Json(AuditPage {
                items: vec![],
                next_cursor: None,
            }));
        }
        (None, Some(t)) => t.to_string(),
        (None, None) => "+".to_owned(),
    };
    let key = s.store.redis().keys().audit();
    let (items, next_cursor) = super::stream_page::newest_first(
        s.store.redis(),
        &key,
        end,
        &start,
        limit,
        AuditEntry::parse,
        |e| {
            q.action.as_ref().is_none_or(|a| *a == e.action)
                && q.token.as_ref().is_none_or(|t| *t == e.token)
                && q.job.as_ref().is_none_or(|j| Some(j) == e.job.as_ref())
                && q.rule.as_ref().is_none_or(|r| Some(r) == e.rule.as_ref())
        },
    )
    .await?;
    Ok(Json(AuditPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_path_and_the_answer() {
        let mut t = Targets::default();
        t.complete(
            "create_job",
            StatusCode::CREATED,
            &serde_json::json!({"id": "01abc", "group": "g", "version": 1}),
        );
        assert_eq!(
            (t.job.as_deref(), t.group.as_deref(), t.version_after),
            (Some("01abc"), Some("g"), Some(1))
        );

        let mut t = Targets {
            job: Some("01abc".into()),
            version_before: Some(4),
            ..Targets::default()
        };
        t.complete(
            "trigger_job",
            StatusCode::ACCEPTED,
            &serde_json::json!({"run_id": "01abc-m1-1", "job_id": "01abc"}),
        );
        assert_eq!(
            (t.run.as_deref(), t.version_after, t.replayed),
            (Some("01abc-m1-1"), Some(4), false)
        );
        let mut t = Targets::default();
        t.complete(
            "trigger_job",
            StatusCode::ACCEPTED,
            &serde_json::json!({"run_id": "01abc-m1-1", "job_id": "01abc", "replayed": true}),
        );
        assert!(t.replayed, "a replayed trigger is not marked");

        let mut t = Targets {
            job: Some("01abc".into()),
            version_before: Some(4),
            ..Targets::default()
        };
        t.complete("delete_job", StatusCode::NO_CONTENT, &Value::Null);
        assert_eq!(t.version_after, None);

        let mut t = Targets {
            run: Some("01abc-m1-1".into()),
            ..Targets::default()
        };
        t.complete(
            "cancel_run",
            StatusCode::CONFLICT,
            &serde_json::json!({"error": {"code": "conflict"}}),
        );
        assert_eq!(
            (t.job.as_deref(), t.error.as_deref()),
            (Some("01abc"), Some("conflict"))
        );
    }

    #[test]
    fn entries_parse_back() {
        let e = AuditEntry::parse(
            "1700000000000-0".into(),
            [
                "action",
                "pause_job",
                "token",
                "ops",
                "status",
                "200",
                "job",
                "01abc",
                "version_before",
                "3",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        assert_eq!(
            (
                e.action.as_str(),
                e.token.as_str(),
                e.status,
                e.version_before
            ),
            ("pause_job", "ops", 200, Some(3))
        );
        assert!(e.at.starts_with("2023-11-14T22:13:20"));
        assert!(is_stream_id("1-0") && !is_stream_id("1-") && !is_stream_id("x-1"));
        assert!(!is_stream_id("99999999999999999999-0") && !is_stream_id("+1-0"));
    }
}
