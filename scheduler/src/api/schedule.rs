//! `POST /schedule/preview`: the next fire instants of a schedule in a zone.

use axum::Json;
use axum::extract::State;
use dotjob_shared::schedule::{Schedule, parse_timezone};
use dotjob_shared::time::rfc3339;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;

/// Most instants one preview returns.
const COUNT_MAX: usize = 100;

/// Body of a preview.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    schedule: String,
    timezone: Option<String>,
    count: Option<usize>,
}

/// The instants, in UTC and in the zone.
#[derive(Debug, Serialize)]
pub struct Preview {
    schedule: String,
    timezone: String,
    fires: Vec<String>,
    fires_local: Vec<String>,
}

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
