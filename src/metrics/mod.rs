//! Prometheus metrics: the process's own counters in a registry (here), and the audit results
//! written straight in the text format from the published results (`audit`), so a workload
//! that disappears takes its series with it.

mod audit;

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::build_info;
use crate::collect::client::ClientMetrics;
use crate::events::EventMetrics;

pub struct Metrics {
    registry: Registry,
    pub client: ClientMetrics,
    pub cycles: IntCounterVec,
    pub config_reload_successful: IntGauge,
    pub config_reload_timestamp: IntGauge,
    pub alertmanager_notifications: IntCounterVec,
    pub events: EventMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `metric` in `registry` and hands it back: a clone is a handle to the same metric.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("a valid metric")
}

impl Metrics {
    /// The daemon's registry: the process, the collection counters, cycles, reloads, pushes, build info.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let client = ClientMetrics::new();
        client.register(&registry);
        register(&registry, build_info_gauge());
        let events = EventMetrics::new();
        events.register(&registry);
        // process_* (CPU, resident memory, descriptors, start time, threads), read from
        // /proc at each scrape: restarts, leaks and descriptor exhaustion become visible.
        registry.register(Box::new(ProcessCollector::for_self())).expect("metric names are unique");
        Metrics {
            client,
            cycles: register(&registry, cycles()),
            config_reload_successful: register(
                &registry,
                gauge("binauthz_config_last_reload_successful", "Whether the last configuration (re)load succeeded."),
            ),
            config_reload_timestamp: register(
                &registry,
                gauge(
                    "binauthz_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration (re)load.",
                ),
            ),
            alertmanager_notifications: register(&registry, crate::alertmanager::notifications_counter()),
            events,
            registry,
        }
    }

    /// The counters a runtime counts into, registered here.
    pub fn counters(&self) -> crate::daemon::Counters {
        crate::daemon::Counters { client: self.client.clone(), notifications: self.alertmanager_notifications.clone() }
    }

    /// The process's own counters: small, and they change between cycles, so they are
    /// rendered at every scrape.
    pub fn render_counters(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encoding to memory cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

/// Audit cycles by result, every result present from the start (so the first skipped cycle is
/// an increase, not a new series).
fn cycles() -> IntCounterVec {
    let cycles = IntCounterVec::new(
        Opts::new(
            "binauthz_audit_cycles_total",
            "Audit cycles by result: success, incomplete, failed, or skipped (the previous cycle was still running).",
        ),
        &["result"],
    )
    .expect("a valid metric");
    for result in ["success", "incomplete", "failed", "skipped"] {
        cycles.with_label_values(&[result]);
    }
    cycles
}

fn build_info_gauge() -> IntGaugeVec {
    let gauge = IntGaugeVec::new(
        Opts::new("binauthz_build_info", "Version, git revision and compiler this binary was built from; always 1."),
        &["version", "revision", "rustc"],
    )
    .expect("a valid metric");
    gauge.with_label_values(&[build_info::VERSION, build_info::REVISION, build_info::RUSTC_VERSION]).set(1);
    gauge
}

pub use audit::render_audit;
