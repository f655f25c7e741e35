//! Pulls the subscription in the background and keeps what the messages ask for, coalesced,
//! until the daemon is free to take it: a burst of deploys, or one entry delivered three
//! times, becomes one re-read per workload. Messages that change nothing are acknowledged
//! here, counted by reason; the rest are acknowledged by the daemon once it has published
//! what they announced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::EventMetrics;
use super::message::{self, Feed, Ignored, Trigger};
use super::pubsub::Subscription;
use crate::clock::Clock;
use crate::google::pubsub_v1::ReceivedMessage;

/// Distinct triggers held before pulling stops until the daemon catches up (the messages
/// stay in Pub/Sub meanwhile).
const MAX_PENDING: usize = 10_000;
/// After a pull failed past the client's own retries (e.g. the subscription is gone).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Set by the Log Router on every message it publishes; equal to the LogEntry's timestamp.
const LOG_TIMESTAMP: &str = "logging.googleapis.com/timestamp";

/// One message that asked for a trigger: acknowledged once its re-read is published.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub ack_id: String,
    /// Unix time of the change (the log entry's timestamp, the asset's update time).
    pub happened_at: Option<f64>,
}

/// What the messages pulled since the last batch ask for, each trigger once.
pub type Batch = BTreeMap<Trigger, Vec<Delivery>>;

#[derive(Default)]
struct Shared {
    pending: Mutex<Batch>,
    ready: Notify,
    room: Notify,
}

pub struct Listener {
    shared: Arc<Shared>,
    subscription: Arc<Subscription>,
    pump: JoinHandle<()>,
}

impl Listener {
    pub fn start(subscription: Arc<Subscription>, feed: Feed, metrics: EventMetrics, clock: impl Clock) -> Listener {
        let shared = Arc::new(Shared::default());
        let pump = tokio::spawn(pump(Arc::clone(&subscription), feed, metrics, clock, Arc::clone(&shared)));
        Listener { shared, subscription, pump }
    }

    /// Everything pending, once there is something.
    pub async fn next(&self) -> Batch {
        loop {
            // Registered before looking, so a notification between the look and the wait is kept.
            let ready = self.shared.ready.notified();
            {
                let mut pending = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner());
                if !pending.is_empty() {
                    self.shared.room.notify_one();
                    return std::mem::take(&mut *pending);
                }
            }
            ready.await;
        }
    }

    pub fn subscription(&self) -> &Arc<Subscription> {
        &self.subscription
    }
}

impl Drop for Listener {
    /// An abandoned pull leaves its messages to be redelivered: nothing is lost.
    fn drop(&mut self) {
        self.pump.abort();
    }
}

async fn pump(
    subscription: Arc<Subscription>,
    feed: Feed,
    metrics: EventMetrics,
    clock: impl Clock,
    shared: Arc<Shared>,
) {
    loop {
        loop {
            let room = shared.room.notified();
            if shared.pending.lock().unwrap_or_else(|p| p.into_inner()).len() < MAX_PENDING {
                break;
            }
            room.await;
        }
        let received = match subscription.pull().await {
            Ok(received) => received,
            Err(e) => {
                tracing::error!(subscription = subscription.name(), error = %e, "cannot pull events; the schedule keeps auditing, retrying in {PAUSE_AFTER_FAILURE:?}");
                tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                continue;
            }
        };
        if received.is_empty() {
            continue;
        }
        metrics.received.with_label_values(&[feed.as_str()]).inc_by(received.len() as u64);
        metrics.last_received.set(clock.unix_now());
        let mut unneeded = Vec::new();
        {
            let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            for message in received {
                match read(feed, &message) {
                    Ok((trigger, delivery)) => pending.entry(trigger).or_default().push(delivery),
                    Err(reason) => {
                        metrics.ignored.with_label_values(&[reason.as_str()]).inc();
                        tracing::debug!(
                            message_id = message.message.message_id,
                            reason = reason.as_str(),
                            "event ignored"
                        );
                        unneeded.push(message.ack_id);
                    }
                }
            }
        }
        shared.ready.notify_one();
        if !unneeded.is_empty()
            && let Err(e) = subscription.acknowledge(&unneeded).await
        {
            tracing::warn!(error = %e, "cannot acknowledge ignored events; they will be delivered again");
        }
    }
}

/// A message's trigger, and when the change it announces happened.
fn read(feed: Feed, received: &ReceivedMessage) -> Result<(Trigger, Delivery), Ignored> {
    let payload = received.message.payload().ok_or(Ignored::Malformed)?;
    let parsed = message::parse(feed, &payload)?;
    let happened = parsed.happened_at.or_else(|| received.message.attributes.get(LOG_TIMESTAMP).cloned());
    let happened_at = happened.as_deref().and_then(unix_seconds);
    Ok((parsed.trigger, Delivery { ack_id: received.ack_id.clone(), happened_at }))
}

fn unix_seconds(rfc3339: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.timestamp_micros() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::google::pubsub_v1::PubsubMessage;

    fn received(data: Option<&[u8]>, ack_id: &str) -> ReceivedMessage {
        ReceivedMessage {
            ack_id: ack_id.into(),
            message: PubsubMessage {
                data: data.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
                attributes: [(LOG_TIMESTAMP.to_owned(), "2026-11-29T09:00:00.5Z".to_owned())].into(),
                message_id: "1".into(),
                publish_time: None,
            },
        }
    }

    #[test]
    fn a_message_without_data_or_with_garbage_is_malformed() {
        assert_eq!(read(Feed::AuditLog, &received(None, "a")), Err(Ignored::Malformed));
        assert_eq!(read(Feed::AuditLog, &received(Some(b"\x00\xff"), "a")), Err(Ignored::Malformed));
    }

    #[test]
    fn the_change_time_comes_from_the_entry_or_the_routers_attribute() {
        let entry = br#"{"protoPayload":{"methodName":"google.cloud.run.v1.Services.ReplaceService",
            "resourceName":"namespaces/p/services/s"},"resource":{"labels":{"project_id":"p","location":"l"}}}"#;
        let (trigger, delivery) = read(Feed::AuditLog, &received(Some(entry), "ack-1")).unwrap();
        assert_eq!(trigger.project(), "p");
        assert_eq!(delivery, Delivery { ack_id: "ack-1".into(), happened_at: Some(1_795_942_800.5) });
    }
}
