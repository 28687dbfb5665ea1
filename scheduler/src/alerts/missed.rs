//! Slots missed beyond the misfire threshold under `fire_once` or `catch_up`: the firing
//! round fires the latest (or the latest few) and drops the others, so it notes the oldest
//! dropped slot here and, once its fire calls went through, adds one alert event per such
//! job to the group's `alert-events` stream (the same stream the scripts write). Misfires
//! happen after an outage, not on every tick: this costs one pipelined round trip in a
//! round that found any, none otherwise. (Ticks recorded `skipped` — misfire `skip`,
//! `forbid` — are written by `fire.lua` itself.)

use dotjob_shared::Redis;
use dotjob_shared::model::job::MisfirePolicy;
use dotjob_shared::scripts::fields::alert;

/// The events stream's bound (`XADD MAXLEN ~`), as in the scripts.
const EVENTS_MAX: u64 = 10_000;

/// One job whose slots were missed beyond the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missed {
    /// The job.
    pub job: String,
    /// The oldest missed slot (ms).
    pub slot: i64,
    /// What the policy did instead.
    pub reason: String,
}

/// The missed slots of a job planned at `score` (its oldest due slot) at `now`, if it is
/// late beyond `threshold_ms` and `policy` fires instead of recording a skip; `fired` are
/// the ticks the plan fires.
pub fn missed(
    job: &str,
    score: i64,
    now: i64,
    threshold_ms: u64,
    policy: MisfirePolicy,
    fired: &[i64],
) -> Option<Missed> {
    if now - score <= threshold_ms as i64 || policy == MisfirePolicy::Skip {
        return None;
    }
    if fired.first() == Some(&score) {
        return None; // catch_up fired every missed slot
    }
    let what = match (policy, fired.len()) {
        (_, 0) => "none of them was fired".to_owned(),
        (MisfirePolicy::FireOnce, _) => "misfire policy fire_once fired the latest only".to_owned(),
        (_, n) => format!("misfire policy catch_up fired the latest {n}"),
    };
    Some(Missed {
        job: job.to_owned(),
        slot: score,
        reason: format!(
            "misfire: the slots from this one on were missed by more than the threshold ({threshold_ms} ms); {what}"
        ),
    })
}

/// Adds one `missed` alert event per entry of `missed` to the group's events stream.
pub async fn record(redis: &Redis, group: &str, missed: &[Missed]) -> dotjob_shared::Result<()> {
    if missed.is_empty() {
        return Ok(());
    }
    let key = redis.keys().alert_events(group);
    let mut pipe = redis::pipe();
    for m in missed {
        pipe.cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAX)
            .arg("*")
            .arg(alert::KIND)
            .arg("missed")
            .arg(alert::RUN)
            .arg(format!("{}-{}", m.job, m.slot))
            .arg(alert::ERROR)
            .arg(&m.reason)
            .ignore();
    }
    let mut c = redis.conn().await?;
    let () = pipe.query_async(&mut c).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slots_dropped_beyond_the_threshold_are_missed() {
        let p = MisfirePolicy::FireOnce;
        assert_eq!(
            missed("j", 1_000, 5_000, 30_000, p, &[5_000]),
            None,
            "within the threshold"
        );
        let m = missed("j", 1_000, 50_000, 30_000, p, &[50_000]).unwrap();
        assert_eq!(m.slot, 1_000);
        assert!(m.reason.contains("fire_once"), "{}", m.reason);
        assert_eq!(
            missed("j", 1_000, 50_000, 30_000, MisfirePolicy::Skip, &[]),
            None
        );
        let all = [1_000, 2_000];
        assert_eq!(
            missed("j", 1_000, 50_000, 30_000, MisfirePolicy::CatchUp, &all),
            None
        );
        let some = missed(
            "j",
            1_000,
            50_000,
            30_000,
            MisfirePolicy::CatchUp,
            &[40_000],
        )
        .unwrap();
        assert!(
            some.reason.contains("catch_up fired the latest 1"),
            "{}",
            some.reason
        );
    }
}
