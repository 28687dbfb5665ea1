//! `POST /schedule/preview`: the next fire instants of a schedule in a zone. It changes
//! nothing, so the read token may call it.

use axum::Json;
use axum::extract::State;
use dotjob_shared::schedule::{Schedule, parse_timezone};
use dotjob_shared::time::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;

/// Most instants one preview returns.
const COUNT_MAX: usize = 100;

/// Body of a preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// Any schedule a job accepts.
    #[schema(example = "30 9 * * MON-FRI")]
    schedule: String,
    /// IANA zone (default `UTC`).
    #[schema(example = "Europe/Berlin")]
    timezone: Option<String>,
    /// How many instants, 1-100 (default 10).
    #[schema(minimum = 1, maximum = 100, example = 3)]
    count: Option<usize>,
}

/// The instants, in UTC and in the zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    schedule: String,
    timezone: String,
    /// RFC 3339, UTC.
    fires: Vec<String>,
    /// The same instants with the zone's offset.
    fires_local: Vec<String>,
}

/// The next fire instants of a schedule in a time zone, from now (Redis clock).
#[utoipa::path(post, path = "/schedule/preview", operation_id = "preview_schedule", tag = "schedule",
    request_body = PreviewBody,
    responses(
        (status = 200, description = "The instants", body = Preview),
        (status = 400, description = "Invalid schedule, zone or count", body = super::schema::ErrorBody),
    ),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn preview(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<PreviewBody>,
) -> Result<Json<Preview>, ApiError> {
    let sched = Schedule::parse(&b.schedule).map_err(|m| ApiError::invalid("schedule", m))?;
    let timezone = b.timezone.unwrap_or_else(|| "UTC".to_owned());
    let tz = parse_timezone(&timezone).map_err(|m| ApiError::invalid("timezone", m))?;
    let count = b.count.unwrap_or(10);
    if count == 0 || count > COUNT_MAX {
        return Err(ApiError::invalid(
            "count",
            format!("must be between 1 and {COUNT_MAX}"),
        ));
    }
    let now = s.store.now_ms().await?;
    let fires = sched.preview(now, tz, now, count);
    let fires_local = fires
        .iter()
        .filter_map(|ms| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(*ms))
        .map(|d| {
            d.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        })
        .collect();
    Ok(Json(Preview {
        schedule: b.schedule,
        timezone,
        fires: fires.into_iter().map(rfc3339).collect(),
        fires_local,
    }))
}
