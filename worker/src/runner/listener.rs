//! The listener task (on unless `Settings::events` is off): subscribes to the events channel
//! on a pub/sub connection of its own, drops cached definitions of this group's jobs as soon
//! as they change, and cancels this group's runs as soon as a cancel is asked. Missing a
//! message is harmless: entries carry the job version, and the heartbeat reports cancels.
//!
//! It owns its connection and backoff; it writes the job cache (drops only) and cancels runs
//! through the in-flight table.

use std::sync::Arc;

use dotjob_shared::events::Event;
use futures::StreamExt;
use tracing::debug;

use super::backoff::Backoff;
use super::shared::Shared;

/// What an event asks of this worker.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Drop the cached definition of this job.
    Invalidate(String),
    /// Cancel this run.
    Cancel(String),
}

/// Reads an event payload; `None` when it is not for `group` or not understood.
fn action(payload: &str, group: &str) -> Option<Action> {
    match serde_json::from_str::<Event>(payload).ok()? {
        Event::Job { group: g, id, .. } if g == group => Some(Action::Invalidate(id)),
        Event::Cancel { group: g, run } if g == group => Some(Action::Cancel(run)),
        _ => None,
    }
}

/// Listens until the task is aborted at shutdown, resubscribing whenever the stream ends.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    let channel = shared.redis.keys().events();
    loop {
        let mut ps = match shared.redis.pubsub().await {
            Ok(ps) => ps,
            Err(e) => {
                debug!(error = %e, "event listener cannot connect; retrying");
                backoff.wait(&shared.stop).await;
                continue;
            }
        };
        if let Err(e) = ps.subscribe(&channel).await {
            debug!(error = %e, "subscribe failed; retrying");
            backoff.wait(&shared.stop).await;
            continue;
        }
        backoff.reset();
        let mut msgs = ps.on_message();
        while let Some(msg) = msgs.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            match action(&payload, &shared.group) {
                Some(Action::Invalidate(job)) => shared.cache.invalidate(&job),
                Some(Action::Cancel(run)) => shared.cancel_run(&run),
                None => {}
            }
        }
        debug!("event stream ended; resubscribing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(e: &Event) -> String {
        serde_json::to_string(e).unwrap()
    }

    #[test]
    fn events_of_this_group_become_actions() {
        let job = Event::Job {
            group: "billing".to_owned(),
            id: "01jabc".to_owned(),
            version: 4,
        };
        assert_eq!(
            action(&payload(&job), "billing"),
            Some(Action::Invalidate("01jabc".to_owned()))
        );
        let cancel = Event::Cancel {
            group: "billing".to_owned(),
            run: "01jabc-1790000000000".to_owned(),
        };
        assert_eq!(
            action(&payload(&cancel), "billing"),
            Some(Action::Cancel("01jabc-1790000000000".to_owned()))
        );
    }

    #[test]
    fn other_groups_and_noise_are_ignored() {
        let cancel = Event::Cancel {
            group: "mail".to_owned(),
            run: "r".to_owned(),
        };
        assert_eq!(action(&payload(&cancel), "billing"), None);
        assert_eq!(action("not json", "billing"), None);
        assert_eq!(action(r#"{"kind":"unknown"}"#, "billing"), None);
    }
}
