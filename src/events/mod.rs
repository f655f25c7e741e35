//! Near-real-time: audit log entries (or Asset Inventory feed messages) pulled from Pub/Sub
//! trigger a re-read of the one workload, or the one policy, that changed. The schedule's
//! cycles stay the full reconciliation; events only make changes visible sooner.

pub mod listener;
pub mod message;
pub mod pubsub;
pub mod reaudit;

use prometheus::core::Collector;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use message::{Feed, Ignored};
use reaudit::Applied;

/// What event mode counts. Registered whether or not `[events]` is configured, so that
/// turning it on by a reload needs no new series types, and every labelled counter starts at 0.
#[derive(Clone)]
pub struct EventMetrics {
    pub received: IntCounterVec,
    pub ignored: IntCounterVec,
    pub lag: Histogram,
    pub last_received: Gauge,
    pub reaudits: IntCounterVec,
    pub unexplained_changes: IntCounter,
}

impl EventMetrics {
    pub fn new() -> EventMetrics {
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid metric")
        };
        let received = counter(
            "binauthz_events_received_total",
            "Pub/Sub messages received, by source (audit_log or asset_feed).",
            "source",
        );
        for feed in [Feed::AuditLog, Feed::AssetFeed] {
            received.with_label_values(&[feed.as_str()]);
        }
        let ignored = counter(
            "binauthz_events_ignored_total",
            "Messages that changed nothing, by reason (malformed, unknown_method, failed_call, out_of_scope, feed_welcome).",
            "reason",
        );
        for reason in Ignored::ALL {
            ignored.with_label_values(&[reason.as_str()]);
        }
        let reaudits = counter(
            "binauthz_event_reaudits_total",
            "Workloads and policies read again because of an event, by result (changed, unchanged, removed, failed).",
            "result",
        );
        for result in Applied::ALL {
            reaudits.with_label_values(&[result.as_str()]);
        }
        let lag = Histogram::with_opts(
            HistogramOpts::new(
                "binauthz_event_lag_seconds",
                "From the change (the log entry's timestamp, or the asset's update time) to its re-audit being published.",
            )
            .buckets(vec![0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]),
        )
        .expect("a valid metric");
        let last_received = Gauge::new(
            "binauthz_events_last_received_timestamp_seconds",
            "Unix time at which the last Pub/Sub message was received (0: none yet).",
        )
        .expect("a valid metric");
        let unexplained_changes = IntCounter::new(
            "binauthz_reconcile_unexplained_changes_total",
            "Resources whose verdict a scheduled cycle found changed although no event had announced it (event mode only).",
        )
        .expect("a valid metric");
        EventMetrics { received, ignored, lag, last_received, reaudits, unexplained_changes }
    }

    pub fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.received.clone()) as Box<dyn Collector>,
            Box::new(self.ignored.clone()),
            Box::new(self.lag.clone()),
            Box::new(self.last_received.clone()),
            Box::new(self.reaudits.clone()),
            Box::new(self.unexplained_changes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
    }
}

impl Default for EventMetrics {
    fn default() -> Self {
        EventMetrics::new()
    }
}
