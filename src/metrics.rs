//! Prometheus metrics: the process's own counters in a registry, and the audit results written
//! straight in the text format from the published results (see `render_audit`), so a workload
//! that disappears takes its series with it.

use std::fmt::Write as _;

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::collect::client::ClientMetrics;
use crate::evaluate::Compliance;
use crate::events::EventMetrics;
use crate::state::Published;

pub struct Metrics {
    registry: Registry,
    pub client: ClientMetrics,
    pub cycles: IntCounterVec,
    pub config_reload_successful: IntGauge,
    pub config_reload_timestamp: IntGauge,
    pub alertmanager_notifications: IntCounterVec,
    pub events: EventMetrics,
}

const CACHED: &str = "Cached: from the last completed audit cycle.";

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
    /// The daemon's registry: the collection counters, cycles, reloads, pushes, build info.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let client = ClientMetrics::new();
        client.register(&registry);
        register(&registry, build_info());
        let events = EventMetrics::new();
        events.register(&registry);
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

fn build_info() -> IntGaugeVec {
    let build_info = IntGaugeVec::new(Opts::new("binauthz_build_info", "Build information; always 1."), &["version"])
        .expect("a valid metric");
    build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    build_info
}

/// The audit results' families: a function of `published` alone, so the endpoint renders
/// them once per published cycle and shares the text between scrapes.
pub fn render_audit(published: &Published) -> String {
    let mut out = String::new();
    write_audit_families(&mut out, published);
    out
}

struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const RESOURCE_COMPLIANT: Family = Family {
    name: "binauthz_resource_compliant",
    help: "1 if the workload is protected by Binary Authorization, 0 if not; absent when unknown.",
    labels: &["project", "location", "kind", "name"],
};
const RESOURCE_VIOLATION: Family = Family {
    name: "binauthz_resource_violation",
    help: "1 for each reason a workload is not protected; suppressed=\"true\" when an active suppression accepts it.",
    labels: &["project", "location", "kind", "name", "reason", "suppressed"],
};
const SUPPRESSION: Family = Family {
    name: "binauthz_suppression",
    help: "1 per configured suppression; state is active or expired (an expired one suppresses nothing).",
    labels: &["project", "location", "kind", "name", "violation", "expires", "state"],
};
const RESOURCE_UNKNOWN: Family = Family {
    name: "binauthz_resource_unknown",
    help: "1 for a workload whose compliance could not be decided (e.g. the policy was unreadable).",
    labels: &["project", "location", "kind", "name"],
};
const PROJECT_FINDING: Family = Family {
    name: "binauthz_project_finding",
    help: "1 for each problem with a project's Binary Authorization policy.",
    labels: &["project", "reason"],
};
const ALLOWLIST_ENTRY: Family = Family {
    name: "binauthz_policy_allowlist_entry_present",
    help: "1 if the policy exempts a build repository that functions need, 0 if it does not.",
    labels: &["project", "location", "repository"],
};
const POLICY_INFO: Family = Family {
    name: "binauthz_policy_info",
    help: "The project's default admission rule; always 1.",
    labels: &["project", "evaluation_mode", "enforcement_mode", "global_policy_evaluation_mode"],
};
const PROJECT_UP: Family = Family {
    name: "binauthz_project_up",
    help: "1 if the latest audit of the project was complete, 0 if its series are last-known values.",
    labels: &["project"],
};
const PROJECT_API_DISABLED: Family = Family {
    name: "binauthz_project_api_disabled",
    help: "1 for each API not enabled in a project (nothing of that kind can exist there).",
    labels: &["project", "api"],
};
const PROJECT_LAST_SUCCESS: Family = Family {
    name: "binauthz_project_last_success_timestamp_seconds",
    help: "Unix time of the last complete audit of the project.",
    labels: &["project"],
};
const AUDIT_LAST_SUCCESS: Family = Family {
    name: "binauthz_audit_last_success_timestamp_seconds",
    help: "Unix time at which the last audit cycle that could enumerate its projects finished.",
    labels: &[],
};
const AUDIT_DURATION: Family =
    Family { name: "binauthz_audit_duration_seconds", help: "Wall time of the last audit cycle.", labels: &[] };

/// One family's samples, written straight in the text exposition format: at 100k workloads,
/// building protobuf-shaped structs first would double the memory a scrape needs.
struct Samples {
    family: &'static Family,
    body: String,
}

impl Samples {
    fn new(family: &'static Family) -> Self {
        Samples { family, body: String::new() }
    }

    fn push(&mut self, values: &[&str], value: f64) {
        debug_assert_eq!(values.len(), self.family.labels.len());
        self.body.push_str(self.family.name);
        if !values.is_empty() {
            self.body.push('{');
            for (i, (name, v)) in self.family.labels.iter().zip(values).enumerate() {
                if i > 0 {
                    self.body.push(',');
                }
                self.body.push_str(name);
                self.body.push_str("=\"");
                escape_label_value(&mut self.body, v);
                self.body.push('"');
            }
            self.body.push('}');
        }
        let _ = writeln!(self.body, " {value}");
    }

    fn write_to(&self, out: &mut String) {
        if self.body.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {} {CACHED}", self.family.name, self.family.help.replace('\\', "\\\\"));
        let _ = writeln!(out, "# TYPE {} gauge", self.family.name);
        out.push_str(&self.body);
    }
}

/// The text format's escaping of label values: backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Renders the published audit results.
fn write_audit_families(out: &mut String, published: &Published) {
    let mut compliant = Samples::new(&RESOURCE_COMPLIANT);
    let mut violation = Samples::new(&RESOURCE_VIOLATION);
    let mut unknown = Samples::new(&RESOURCE_UNKNOWN);
    let mut finding = Samples::new(&PROJECT_FINDING);
    let mut allowlist = Samples::new(&ALLOWLIST_ENTRY);
    let mut policy_info = Samples::new(&POLICY_INFO);
    let mut up = Samples::new(&PROJECT_UP);
    let mut api_disabled = Samples::new(&PROJECT_API_DISABLED);
    let mut project_success = Samples::new(&PROJECT_LAST_SUCCESS);
    let mut audit_success = Samples::new(&AUDIT_LAST_SUCCESS);
    let mut duration = Samples::new(&AUDIT_DURATION);

    for (project, state) in &published.projects {
        let v = &state.shown;
        up.push(&[project], if state.complete { 1.0 } else { 0.0 });
        if let Some(t) = state.last_success {
            project_success.push(&[project], t);
        }
        for f in &v.findings {
            finding.push(&[project, f.as_str()], 1.0);
        }
        for api in &v.disabled_apis {
            api_disabled.push(&[project, api.as_str()], 1.0);
        }
        if let Some(p) = &v.policy {
            policy_info
                .push(&[project, &p.evaluation_mode, &p.enforcement_mode, &p.global_policy_evaluation_mode], 1.0);
        }
        for e in &v.allowlist {
            allowlist.push(&[project, &e.location, &e.repository], if e.present { 1.0 } else { 0.0 });
        }
        for (r, suppressed) in state.resources() {
            let ids = [project.as_str(), &r.location, r.kind.as_str(), &r.name];
            match r.compliance {
                Compliance::Compliant => compliant.push(&ids, 1.0),
                Compliance::NonCompliant => compliant.push(&ids, 0.0),
                Compliance::Unknown => unknown.push(&ids, 1.0),
            }
            for reason in &r.violations {
                let suppressed = if suppressed.contains(reason) { "true" } else { "false" };
                violation.push(&[ids[0], ids[1], ids[2], ids[3], reason.as_str(), suppressed], 1.0);
            }
        }
    }
    if let Some(t) = published.last_success {
        audit_success.push(&[], t);
    }
    let mut suppression = Samples::new(&SUPPRESSION);
    for entry in &published.suppressions {
        let s = &entry.suppression;
        let expires = s.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let state = if entry.active { "active" } else { "expired" };
        let violation = s.violation.map_or("", |v| v.as_str());
        let kind = s.kind.map_or("*", |k| k.as_str());
        suppression.push(&[&s.project, &s.location, kind, &s.name, violation, &expires, state], 1.0);
    }
    if let Some(d) = published.last_duration {
        duration.push(&[], d);
    }
    for samples in [
        compliant,
        violation,
        unknown,
        finding,
        allowlist,
        policy_info,
        up,
        api_disabled,
        project_success,
        audit_success,
        duration,
        suppression,
    ] {
        samples.write_to(out);
    }
}
