//! `/alerts`: alert rules (create, list, get, change, delete, send a test alert) and the
//! log of delivery attempts. Rules are read by every replica's evaluator
//! ([`crate::alerts`]); the webhook secret is write-only (`target.secret_set`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dotjob_shared::model::job::valid_job_id;
use dotjob_shared::time::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::schema;
use crate::alerts::rule::{MAX_RULES, Scope};
use crate::alerts::{Alert, Rule, RuleInput, RuleView, store};

fn invalid((field, message): (String, String)) -> ApiError {
    ApiError::invalid(field, message)
}

/// A rule id from a path: anything that cannot be one is simply not found.
async fn load(s: &AppState, id: &str) -> Result<Rule, ApiError> {
    let missing = || ApiError::not_found(format!("alert rule {id}"));
    if !valid_job_id(id) {
        return Err(missing());
    }
    store::get(s.store.redis(), id).await?.ok_or_else(missing)
}

/// The group or job a rule's scope names must exist.
async fn check_scope(s: &AppState, rule: &Rule) -> Result<(), ApiError> {
    match rule.scope() {
        Scope::Global => Ok(()),
        Scope::Group(g) => match s.store.check_group(g).await {
            Err(dotjob_shared::Error::NotFound(_)) => Err(ApiError::invalid(
                "scope",
                format!("there is no group named {g} (it exists once a job is created in it)"),
            )),
            other => Ok(other?),
        },
        Scope::Job(j) => match s.store.job_group(j).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::invalid("scope", format!("there is no job {j}"))),
        },
    }
}

/// Create an alert rule.
#[utoipa::path(post, path = "/alerts/rules", operation_id = "create_alert_rule", tag = "alerts",
    request_body = RuleInput,
    responses(
        (status = 201, description = "Created", body = RuleView),
        (status = 400, description = "Invalid field (named in `error.field`); nothing written", body = schema::ErrorBody),
        (status = 409, description = "Too many rules", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn create(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<RuleInput>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let redis = s.store.redis();
    let now = s.store.now_ms().await?;
    let id = crate::alerts::delivery_id();
    let rule = input.into_new(id, now).map_err(invalid)?;
    check_scope(&s, &rule).await?;
    if store::count(redis).await? >= MAX_RULES {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("there are already {MAX_RULES} alert rules; delete one first"),
        ));
    }
    store::put(redis, &rule).await?;
    Ok((StatusCode::CREATED, Json(RuleView::from(&rule))))
}

/// List every alert rule, by id (creation order).
#[utoipa::path(get, path = "/alerts/rules", operation_id = "list_alert_rules", tag = "alerts",
    responses((status = 200, description = "Every rule", body = Vec<RuleView>)),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<RuleView>>, ApiError> {
    let rules = store::all(s.store.redis()).await?;
    Ok(Json(rules.iter().map(RuleView::from).collect()))
}

/// Get one alert rule.
#[utoipa::path(get, path = "/alerts/rules/{id}", operation_id = "get_alert_rule", tag = "alerts",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 404, description = "No such rule", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(RuleView::from(&load(&s, &id).await?)))
}

/// Change an alert rule: the fields given replace the current ones (a webhook target
/// without `secret` keeps the current secret).
#[utoipa::path(patch, path = "/alerts/rules/{id}", operation_id = "update_alert_rule", tag = "alerts",
    params(("id" = String, Path, description = "Rule id")),
    request_body = RuleInput,
    responses(
        (status = 200, description = "The rule after the change", body = RuleView),
        (status = 400, description = "Invalid field (named in `error.field`); nothing written", body = schema::ErrorBody),
        (status = 404, description = "No such rule", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn update(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<RuleInput>,
) -> Result<Json<RuleView>, ApiError> {
    let current = load(&s, &id).await?;
    let now = s.store.now_ms().await?;
    let rule = input.apply(&current, now).map_err(invalid)?;
    if rule.scope != current.scope {
        check_scope(&s, &rule).await?;
    }
    if rule != current {
        store::put(s.store.redis(), &rule).await?;
    }
    Ok(Json(RuleView::from(&rule)))
}

/// Delete an alert rule (its queued deliveries are dropped at their next attempt).
#[utoipa::path(delete, path = "/alerts/rules/{id}", operation_id = "delete_alert_rule", tag = "alerts",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !valid_job_id(&id) || !store::delete(s.store.redis(), &id).await? {
        return Err(ApiError::not_found(format!("alert rule {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of a test alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// The delivery: follow it in `GET /alerts/deliveries?delivery=<id>`.
    delivery_id: String,
}

/// Send a test alert (event `test`) to the rule's target now, through the delivery queue
/// (retried like any alert, never silenced); works on a disabled rule too.
#[utoipa::path(post, path = "/alerts/rules/{id}/test", operation_id = "test_alert_rule", tag = "alerts",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 202, description = "Queued for delivery", body = TestQueued),
        (status = 404, description = "No such rule", body = schema::ErrorBody),
    ),
    security(("admin_token" = [])))]
pub async fn test(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let rule = load(&s, &id).await?;
    let now = s.store.now_ms().await?;
    let alert = Alert {
        event: "test",
        rule: (rule.id.clone(), rule.name.clone()),
        at: now,
        text: format!(
            "Test alert from dotjob rule \"{}\": this target receives its alerts.",
            rule.name
        ),
        details: serde_json::json!({}),
        ..Alert::default()
    };
    let (_, delivery_id) =
        crate::alerts::enqueue(s.store.redis(), &rule, "test", None, &alert, false).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id })))
}

/// Query of `GET /alerts/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only attempts for this rule.
    rule: Option<String>,
    /// Only attempts of this delivery.
    delivery: Option<String>,
    /// Only attempts with this outcome: `delivered`, `retrying` or `failed`.
    status: Option<String>,
    /// Only attempts for this event (`dead`, `missed`, ..., `test`).
    event: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AlertDeliveryAttempt)]
pub struct DeliveryAttempt {
    /// Entry id in the delivery log (`<ms>-<n>`).
    id: String,
    /// When the attempt ended.
    #[schema(format = DateTime)]
    at: String,
    /// The delivery (the same for every attempt; sent as `X-Dotjob-Delivery`).
    delivery: String,
    /// The rule.
    rule: String,
    /// The event (`dead`, `timed_out`, `consecutive_failures`, `missed`, `long_running`,
    /// `no_executor`, `no_lease_holder`, `test`).
    event: String,
    /// What the silence window is kept for: a job id, a run id or `group:<name>`.
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    /// The attempt's number, from 1.
    attempt: u32,
    /// `delivered`, `retrying` (another attempt is scheduled) or `failed` (none is).
    status: String,
    /// The receiver's HTTP status, when one answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl DeliveryAttempt {
    fn parse(id: String, flat: Vec<String>) -> Self {
        use dotjob_shared::scripts::fields::alert as f;
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            m.insert(k, v);
        }
        let ms = id
            .split('-')
            .next()
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(0);
        let mut take = |k: &str| m.remove(k).filter(|v| !v.is_empty());
        Self {
            at: rfc3339(ms),
            delivery: take(f::DELIVERY).unwrap_or_default(),
            rule: take(f::RULE).unwrap_or_default(),
            event: take(f::EVENT).unwrap_or_default(),
            subject: take(f::SUBJECT).unwrap_or_default(),
            group: take(f::GROUP),
            job: take(f::JOB),
            attempt: take(f::ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
            status: take(f::STATUS).unwrap_or_default(),
            code: take(f::CODE).and_then(|c| c.parse().ok()),
            error: take(f::ERROR),
            id,
        }
    }
}

/// A page of delivery attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AlertDeliveryPage)]
pub struct DeliveryPage {
    items: Vec<DeliveryAttempt>,
    /// Pass as `cursor` for the next page; `null` on the last one. A page may hold fewer
    /// than `limit` attempts (a selective filter) and still have a next one.
    next_cursor: Option<String>,
}

/// A stream entry id `<ms>-<seq>`.
fn is_stream_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        [a, b].iter().all(|p| {
            !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u64>().is_ok()
        })
    })
}

/// List delivery attempts, newest first, filtered and paginated.
#[utoipa::path(get, path = "/alerts/deliveries", operation_id = "list_alert_deliveries", tag = "alerts",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "One page, newest first", body = DeliveryPage),
        (status = 400, description = "Bad query parameter", body = schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn deliveries(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = super::jobs::page_limit(q.limit)?;
    for (field, v) in [("rule", &q.rule), ("delivery", &q.delivery)] {
        if v.as_deref().is_some_and(|r| !valid_job_id(r)) {
            return Err(ApiError::invalid(field, "not an id"));
        }
    }
    if q.status
        .as_deref()
        .is_some_and(|st| !["delivered", "retrying", "failed"].contains(&st))
    {
        return Err(ApiError::invalid(
            "status",
            "must be delivered, retrying or failed",
        ));
    }
    if q.event.as_deref().is_some_and(|e| {
        e.is_empty() || e.len() > 32 || !e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }) {
        return Err(ApiError::invalid("event", "not an event name"));
    }
    let cursor = q.cursor.filter(|c| !c.is_empty());
    if cursor.as_deref().is_some_and(|c| !is_stream_id(c)) {
        return Err(ApiError::invalid(
            "cursor",
            "not a cursor from this listing",
        ));
    }
    let end = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
    let key = s.store.redis().keys().alert_deliveries();
    let (items, next_cursor) = super::stream_page::newest_first(
        s.store.redis(),
        &key,
        end,
        "-",
        limit,
        DeliveryAttempt::parse,
        |a| {
            q.rule.as_ref().is_none_or(|r| *r == a.rule)
                && q.delivery.as_ref().is_none_or(|d| *d == a.delivery)
                && q.status.as_ref().is_none_or(|st| *st == a.status)
                && q.event.as_ref().is_none_or(|e| *e == a.event)
        },
    )
    .await?;
    Ok(Json(DeliveryPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_parse_back() {
        let a = DeliveryAttempt::parse(
            "1700000000000-0".into(),
            [
                "delivery",
                "d1",
                "rule",
                "r1",
                "event",
                "dead",
                "subject",
                "01j",
                "group",
                "g",
                "job",
                "",
                "attempts",
                "3",
                "status",
                "delivered",
                "code",
                "200",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        assert_eq!(
            (a.attempt, a.code, a.status.as_str()),
            (3, Some(200), "delivered")
        );
        assert_eq!((a.group.as_deref(), a.job.as_deref()), (Some("g"), None));
        assert!(is_stream_id("1-0") && !is_stream_id("1-") && !is_stream_id("-1"));
    }
}
