//! The scheduler's metric updates: fire lag from the ticks a pass fires, lease changes,
//! per-group stream and executor gauges sampled by housekeeping for the groups this replica
//! holds (a few reads every housekeeping interval, never on the firing path), and a
//! middleware counting admin API requests by matched route and status.
//! Names and HELP texts live in [`dotjob_shared::metrics`].

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_shared::metrics as m;
use dotjob_shared::{Redis, Store};

/// Records the fire lag of `ticks` fired at `now_ms` (0 for ticks fired ahead).
pub fn fire_lag(group: &str, now_ms: i64, ticks: &[i64]) {
    let h = metrics::histogram!(m::FIRE_LAG, "group" => group.to_owned());
    for &t in ticks {
        h.record((now_ms - t).max(0) as f64 / 1_000.0);
    }
}

/// Counts ticks a scheduling pass fired for `group`.
pub fn ticks_fired(group: &str, n: u64) {
    metrics::counter!(m::TICKS_FIRED, "group" => group.to_owned(), "kind" => "schedule")
        .increment(n);
}

/// Counts a run enqueued through the API: `manual` (a trigger) or `requeue` (a dead
/// letter run again); never counted as a `schedule` tick.
pub fn triggered(group: &str, kind: &'static str) {
    metrics::counter!(m::TICKS_FIRED, "group" => group.to_owned(), "kind" => kind).increment(1);
}

/// Counts a fire call refused because the lease had moved.
pub fn fenced(group: &str) {
    metrics::counter!(m::FIRE_FENCED, "group" => group.to_owned()).increment(1);
}

/// Notes that this replica acquired (`held`) or lost the lease of `group`.
pub fn lease_changed(group: &str, held: bool) {
    let change = if held { "acquired" } else { "lost" };
    metrics::counter!(m::LEASE_CHANGES, "group" => group.to_owned(), "change" => change)
        .increment(1);
    metrics::gauge!(m::LEASE_HELD, "group" => group.to_owned()).set(f64::from(u8::from(held)));
}

/// What one group's stream looks like now.
#[derive(Debug, Default, PartialEq)]
pub struct StreamSample {
    pub length: u64,
    pub pending: u64,
    pub lag: u64,
    /// Age (s) of the oldest pending entry, from its id's time.
    pub oldest_pending_s: f64,
    /// Executors known to the group (live or not yet forgotten).
    pub executors: u64,
}

/// Samples `group`'s stream and executors into their gauges (housekeeping, lease holder).
pub async fn sample_group(redis: &Redis, group: &str) -> dotjob_shared::Result<StreamSample> {
    let stream = redis.keys().stream(group);
    let mut c = redis.conn().await?;
    let now = dotjob_shared::conn::now_ms(&mut c).await?;
    let (length, groups, pending): (u64, redis::Value, redis::Value) = redis::pipe()
        .cmd("XLEN")
        .arg(&stream)
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(&stream)
        .cmd("XPENDING")
        .arg(&stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut c)
        .await
        .or_else(|_| Ok::<_, redis::RedisError>((0, redis::Value::Nil, redis::Value::Nil)))?;
    let (pending_n, lag) = group_info(&groups);
    let oldest = oldest_pending_ms(&pending).map_or(0.0, |t| (now - t).max(0) as f64 / 1_000.0);
    let mut s = StreamSample {
        length,
        pending: pending_n,
        lag,
        oldest_pending_s: oldest,
        executors: 0,
    };
    let g = || group.to_owned();
    metrics::gauge!(m::STREAM_LENGTH, "group" => g()).set(s.length as f64);
    metrics::gauge!(m::STREAM_PENDING, "group" => g()).set(s.pending as f64);
    metrics::gauge!(m::STREAM_LAG, "group" => g()).set(s.lag as f64);
    metrics::gauge!(m::STREAM_OLDEST_PENDING, "group" => g()).set(s.oldest_pending_s);
    let execs = Store::new(redis.clone()).list_executors(group).await?;
    s.executors = execs.len() as u64;
    let live = execs.iter().filter(|e| e.alive && !e.disabled).count();
    let disabled = execs.iter().filter(|e| e.disabled).count();
    metrics::gauge!(m::EXECUTORS, "group" => g(), "state" => "live").set(live as f64);
    metrics::gauge!(m::EXECUTORS, "group" => g(), "state" => "disabled").set(disabled as f64);
    Ok(s)
}

/// `pending` and `lag` of the workers' consumer group in an `XINFO GROUPS` reply.
fn group_info(v: &redis::Value) -> (u64, u64) {
    let redis::Value::Array(groups) = v else {
        return (0, 0);
    };
    for g in groups {
        let fields: Vec<(String, redis::Value)> = match g {
            redis::Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|p| match p {
                    [k, v] => redis::from_redis_value_ref::<String>(k)
                        .ok()
                        .map(|k| (k, v.clone())),
                    _ => None,
                })
                .collect(),
            redis::Value::Map(kv) => kv
                .iter()
                .filter_map(|(k, v)| {
                    redis::from_redis_value_ref::<String>(k)
                        .ok()
                        .map(|k| (k, v.clone()))
                })
                .collect(),
            _ => continue,
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| redis::from_redis_value_ref::<u64>(v).ok())
        };
        let name = fields
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| redis::from_redis_value_ref::<String>(v).ok());
        if name.as_deref() == Some(CONSUMER_GROUP) {
            return (get("pending").unwrap_or(0), get("lag").unwrap_or(0));
        }
    }
    (0, 0)
}

/// The time (ms) of the smallest pending id in an `XPENDING` summary reply.
fn oldest_pending_ms(v: &redis::Value) -> Option<i64> {
    let redis::Value::Array(parts) = v else {
        return None;
    };
    let id: String = redis::from_redis_value_ref(parts.get(1)?).ok()?;
    id.split('-').next()?.parse().ok()
}

/// Counts each admin API request by its matched route (never the raw URL), method, status.
pub async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    metrics::counter!(
        m::HTTP_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => resp.status().as_u16().to_string()
    )
    .increment(1);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value as V;

    fn s(x: &str) -> V {
        V::BulkString(x.as_bytes().to_vec())
    }

    #[test]
    fn reads_pending_and_lag_of_the_workers_group() {
        let reply = V::Array(vec![
            V::Array(vec![s("name"), s("other"), s("pending"), V::Int(9)]),
            V::Array(vec![
                s("name"),
                s(CONSUMER_GROUP),
                s("pending"),
                V::Int(3),
                s("lag"),
                V::Int(5),
            ]),
        ]);
        assert_eq!(group_info(&reply), (3, 5));
        assert_eq!(group_info(&V::Nil), (0, 0));
    }

    #[test]
    fn reads_the_oldest_pending_id_time() {
        let reply = V::Array(vec![V::Int(2), s("1700-0"), s("1800-3"), V::Nil]);
        assert_eq!(oldest_pending_ms(&reply), Some(1700));
        let none = V::Array(vec![V::Int(0), V::Nil, V::Nil, V::Nil]);
        assert_eq!(oldest_pending_ms(&none), None);
    }
}
