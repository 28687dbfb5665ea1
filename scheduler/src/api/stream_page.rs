//! One page of a stream read newest first through a filter: the shared loop of the listings
//! kept as streams (`GET /audit`, `GET /alerts/deliveries`). It reads `XREVRANGE` batches
//! from `end` down to `start`, keeps the entries the filter accepts, and stops at a full
//! page, at the stream's start, or after scanning [`SCAN_MAX`] entries (a selective filter
//! then answers a short page with a cursor to go on from).

use dotjob_shared::Redis;

use super::error::ApiError;

/// Entries read from the stream per `XREVRANGE`.
const BATCH: usize = 500;
/// Most entries one request scans.
const SCAN_MAX: usize = 5_000;

/// The entries kept, newest first, and the cursor of the next page (`None` at the end).
pub(super) async fn newest_first<T>(
    redis: &Redis,
    key: &str,
    mut end: String,
    start: &str,
    limit: usize,
    parse: impl Fn(String, Vec<String>) -> T,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let mut conn = redis.conn().await?;
    let mut items = Vec::new();
    let mut scanned = 0;
    loop {
        let batch: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(key)
            .arg(&end)
            .arg(start)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut conn)
            .await
            .map_err(dotjob_shared::Error::from)?;
        let exhausted = batch.len() < BATCH;
        for (id, fields) in batch {
            scanned += 1;
            end = format!("({id}");
            let item = parse(id.clone(), fields);
            if keep(&item) {
                items.push(item);
                if items.len() == limit {
                    return Ok((items, Some(id)));
                }
            }
        }
        if exhausted {
            return Ok((items, None));
        }
        if scanned >= SCAN_MAX {
            let next = end.trim_start_matches('(').to_owned();
            return Ok((items, Some(next)));
        }
    }
}
