//! The alert scripts against a real Redis (`DOTJOB_TEST_REDIS_URL`, default the local one)
//! under a key prefix of their own: an event is queued once per rule however often it is
//! evaluated, a rule is silent per subject, the cursor moves only under the current lease,
//! and a claimed delivery is recorded, retried and forgotten.

use redis::AsyncCommands;

use crate::conn::Redis;

use super::{
    AdvanceAlertCursor, AttemptStatus, ClaimAlerts, CursorReply, EnqueueAlert, EnqueueReply, Fence,
    RecordAlertAttempt,
};

fn redis() -> Redis {
    crate::test_redis::handle("alert")
}

use crate::test_redis::cleanup;

fn alert<'a>(id: &'a str, subject: &'a str, event: Option<(&'a str, &'a str)>) -> EnqueueAlert<'a> {
    EnqueueAlert {
        id,
        rule: "r1",
        subject,
        silence_ms: 60_000,
        event,
        kind: "dead",
        group: "g",
        job: subject,
        payload: "{}",
    }
}

#[tokio::test]
async fn an_event_is_queued_once_per_rule_and_a_rule_is_silent_per_subject() {
    let redis = redis();
    let prefix = redis.keys().alerts_prefix();
    let mut c = redis.conn().await.expect("conn");
    let q = |a: EnqueueAlert<'static>| {
        let prefix = prefix.clone();
        let redis = redis.clone();
        async move {
            a.call(&mut redis.conn().await.expect("conn"), &prefix)
                .await
                .expect("enqueue")
        }
    };
    assert_eq!(
        q(alert("d1", "01a", Some(("g", "5-0")))).await,
        EnqueueReply::Queued
    );
    // The same event again (another replica, or after a crash): taken already.
    assert_eq!(
        q(alert("d2", "01a", Some(("g", "5-0")))).await,
        EnqueueReply::Seen
    );
    // Another event of the same job within the window: silent.
    assert_eq!(
        q(alert("d3", "01a", Some(("g", "6-0")))).await,
        EnqueueReply::Silenced
    );
    // Another job: its own window.
    assert_eq!(
        q(alert("d4", "01b", Some(("g", "7-0")))).await,
        EnqueueReply::Queued
    );
    // No silence (a test alert): always queued.
    let mut test = alert("d5", "test", None);
    test.silence_ms = 0;
    assert_eq!(q(test).await, EnqueueReply::Queued);
    let queued: Vec<String> = c
        .zrange(redis.keys().alert_queue(), 0, -1)
        .await
        .expect("queue");
    assert_eq!(queued.len(), 3, "{queued:?}");
    cleanup(&redis).await;
}

#[tokio::test]
async fn the_cursor_moves_only_under_the_current_lease_and_never_back() {
    let redis = redis();
    let keys = redis.keys().clone();
    let prefix = keys.group_prefix("g");
    let mut c = redis.conn().await.expect("conn");
    let _: () = c
        .hset_multiple(
            keys.lease("g"),
            &[
                ("owner", "r2"),
                ("epoch", "3"),
                ("expires", "99999999999999"),
            ],
        )
        .await
        .expect("lease");
    let stale = Fence {
        holder: "r1".to_owned(),
        epoch: 2,
    };
    let current = Fence {
        holder: "r2".to_owned(),
        epoch: 3,
    };
    let advance = |fence: &Fence, last: &'static str| {
        let fence = fence.clone();
        let redis = redis.clone();
        let prefix = prefix.clone();
        async move {
            AdvanceAlertCursor {
                fence: Some(&fence),
                last,
            }
            .call(&mut redis.conn().await.expect("conn"), &prefix)
            .await
            .expect("advance")
        }
    };
    assert_eq!(advance(&stale, "9-0").await, CursorReply::Fenced);
    let cursor: Option<String> = c.get(keys.alert_cursor("g")).await.expect("get");
    assert_eq!(cursor, None, "a stale holder moved the cursor");
    assert_eq!(advance(&current, "10-1").await, CursorReply::Ok);
    assert_eq!(advance(&current, "10-0").await, CursorReply::Ok);
    let cursor: Option<String> = c.get(keys.alert_cursor("g")).await.expect("get");
    assert_eq!(cursor.as_deref(), Some("10-1"), "the cursor went back");
    cleanup(&redis).await;
}

#[tokio::test]
async fn a_claimed_delivery_is_held_recorded_retried_and_forgotten() {
    let redis = redis();
    let prefix = redis.keys().alerts_prefix();
    let mut c = redis.conn().await.expect("conn");
    alert("d1", "01a", None)
        .call(&mut c, &prefix)
        .await
        .expect("enqueue");
    let claim = ClaimAlerts {
        max: 10,
        hold_ms: 60_000,
    };
    let got = claim.call(&mut c, &prefix).await.expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].attempts), ("d1", 0));
    assert!(
        claim.call(&mut c, &prefix).await.expect("claim").is_empty(),
        "a held delivery was claimed twice"
    );
    let record = |attempt, status, code| RecordAlertAttempt {
        id: "d1",
        attempt,
        status,
        code,
        error: "",
        log_max: 1_000,
    };
    assert!(
        record(1, AttemptStatus::Retrying(0), Some(500))
            .call(&mut c, &prefix)
            .await
            .expect("record")
    );
    let again = claim.call(&mut c, &prefix).await.expect("claim");
    assert_eq!(again.len(), 1, "a retry due now is claimed again");
    assert_eq!(again[0].attempts, 1);
    assert!(
        record(2, AttemptStatus::Delivered, Some(200))
            .call(&mut c, &prefix)
            .await
            .expect("record")
    );
    assert!(
        !record(3, AttemptStatus::Delivered, Some(200))
            .call(&mut c, &prefix)
            .await
            .expect("record"),
        "recorded after it was done"
    );
    let queued: u64 = c.zcard(redis.keys().alert_queue()).await.expect("zcard");
    let exists: bool = c
        .exists(redis.keys().alert_delivery("d1"))
        .await
        .expect("exists");
    let logged: u64 = c.xlen(redis.keys().alert_deliveries()).await.expect("xlen");
    assert_eq!((queued, exists, logged), (0, false, 2));
    cleanup(&redis).await;
}
