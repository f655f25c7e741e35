//! The audit results as text exposition: a function of the published results alone, so the
//! endpoint renders them once per published cycle and shares the text between scrapes.
//! `[metrics]` (carried by the published results) decides which families are written.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::MetricsConfig;
use crate::evaluate::validation::{ServingRevision, ServingVerdict};
use crate::evaluate::{Compliance, ResourceVerdict, Violation};
use crate::inventory::Kind;
use crate::state::{ProjectState, Published};

const CACHED: &str = "Cached: from the last completed audit cycle.";

/// The audit results' families, as `/metrics` serves them after the process's counters.
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
const RESOURCE_UNKNOWN: Family = Family {
    name: "binauthz_resource_unknown",
    help: "1 for a workload whose compliance could not be decided (e.g. the policy was unreadable).",
    labels: &["project", "location", "kind", "name"],
};
/// Its label set varies by sample (one `label_*` per allow-listed key the workload has), so
/// it is written by `write_resource_labels`, not through `Samples`.
const RESOURCE_LABELS: Family = Family {
    name: "binauthz_resource_labels",
    help: "The workload's Cloud Run labels listed in [metrics] resource_labels, as label_<key>; always 1.",
    labels: &["project", "location", "kind", "name"],
};
const PROJECT_RESOURCES: Family = Family {
    name: "binauthz_project_resources",
    help: "Workloads per project and kind, by status: compliant, non_compliant or unknown.",
    labels: &["project", "kind", "status"],
};
const PROJECT_VIOLATIONS: Family = Family {
    name: "binauthz_project_violations",
    help: "Workloads per project and kind with a violation, by reason; suppressed=\"true\" under an active suppression.",
    labels: &["project", "kind", "reason", "suppressed"],
};
const SUPPRESSION: Family = Family {
    name: "binauthz_suppression",
    help: "1 per configured suppression; state is active or expired (an expired one suppresses nothing).",
    labels: &["project", "location", "kind", "name", "violation", "expires", "state"],
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
const SERVING_IMAGE_COMPLIANT: Family = Family {
    name: "binauthz_serving_image_compliant",
    help: "Continuous validation: 1 if an image a serving revision runs passes the policy today (attested, exempt, or nothing required), 0 if not; absent when unknown.",
    labels: &["project", "location", "kind", "name", "revision", "image"],
};
const SERVING_IMAGE_UNATTESTED: Family = Family {
    name: "binauthz_serving_image_unattested",
    help: "Continuous validation: 1 for each required attestor without a valid attestation of a serving image, with the cause (missing, unknown_key, bad_signature, payload_mismatch).",
    labels: &["project", "location", "kind", "name", "revision", "image", "attestor", "cause"],
};
const SERVING_REVISION_TRAFFIC: Family = Family {
    name: "binauthz_serving_revision_traffic_percent",
    help: "Continuous validation: the share of traffic a serving revision receives (0 for one served only through a tag).",
    labels: &["project", "location", "kind", "name", "revision"],
};
const PROJECT_SERVING_IMAGES: Family = Family {
    name: "binauthz_project_serving_images",
    help: "Continuous validation: images of serving revisions per project, by verdict (attested, exempt, not_required, unattested, denied, unknown).",
    labels: &["project", "verdict"],
};
const VALIDATION_LAST_COMPLETE: Family = Family {
    name: "binauthz_validation_last_complete_timestamp_seconds",
    help: "Unix time of the last audit of the project whose continuous validation read every revision and attestation it needed.",
    labels: &["project"],
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
        self.push_with(values, &[], value);
    }

    /// A sample with `extra` (name, value) labels after the family's own.
    fn push_with(&mut self, values: &[&str], extra: &[(&str, &str)], value: f64) {
        self.body.push_str(self.family.name);
        let labels = self.family.labels.iter().copied().zip(values.iter().copied()).chain(extra.iter().copied());
        for (i, (name, v)) in labels.enumerate() {
            self.body.push(if i == 0 { '{' } else { ',' });
            self.body.push_str(name);
            self.body.push_str("=\"");
            escape_label_value(&mut self.body, v);
            self.body.push('"');
        }
        if !values.is_empty() || !extra.is_empty() {
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

/// The per-workload families, written only with `[metrics] per_workload = true`.
struct PerWorkload {
    compliant: Samples,
    violation: Samples,
    unknown: Samples,
    labels: Samples,
    serving: Serving,
}

impl PerWorkload {
    fn new() -> Self {
        PerWorkload {
            compliant: Samples::new(&RESOURCE_COMPLIANT),
            violation: Samples::new(&RESOURCE_VIOLATION),
            unknown: Samples::new(&RESOURCE_UNKNOWN),
            labels: Samples::new(&RESOURCE_LABELS),
            serving: Serving::new(),
        }
    }

    fn push(&mut self, project: &str, r: &ResourceVerdict, suppressed: &[Violation], config: &MetricsConfig) {
        let ids = [project, &r.location, r.kind.as_str(), &r.name];
        match r.compliance {
            Compliance::Compliant => self.compliant.push(&ids, 1.0),
            Compliance::NonCompliant => self.compliant.push(&ids, 0.0),
            Compliance::Unknown => self.unknown.push(&ids, 1.0),
        }
        for reason in &r.violations {
            let suppressed = if suppressed.contains(reason) { "true" } else { "false" };
            self.violation.push(&[ids[0], ids[1], ids[2], ids[3], reason.as_str(), suppressed], 1.0);
        }
        if !config.resource_labels.is_empty() {
            // kube-state-metrics' shape: every workload has a series, carrying the allow-listed
            // keys it has (a key it lacks would be an empty label, which Prometheus drops).
            let present: Vec<(&str, &str)> = config
                .resource_labels
                .iter()
                .filter_map(|l| r.labels.get(&l.key).map(|v| (l.name.as_str(), v.as_str())))
                .collect();
            self.labels.push_with(&ids, &present, 1.0);
        }
        self.serving.push(ids, r.serving.as_deref().unwrap_or_default());
    }

    fn write_to(&self, out: &mut String) {
        for samples in [
            &self.compliant,
            &self.violation,
            &self.unknown,
            &self.labels,
            &self.serving.compliant,
            &self.serving.unattested,
            &self.serving.traffic,
        ] {
            samples.write_to(out);
        }
    }
}

/// Continuous validation's per-workload families: one series per serving revision and image
/// (Cloud Run serves a handful of revisions per workload at most), one per attestor that
/// failed.
struct Serving {
    compliant: Samples,
    unattested: Samples,
    traffic: Samples,
}

impl Serving {
    fn new() -> Self {
        Serving {
            compliant: Samples::new(&SERVING_IMAGE_COMPLIANT),
            unattested: Samples::new(&SERVING_IMAGE_UNATTESTED),
            traffic: Samples::new(&SERVING_REVISION_TRAFFIC),
        }
    }

    fn push(&mut self, [project, location, kind, name]: [&str; 4], revisions: &[ServingRevision]) {
        for r in revisions {
            let revision = r.revision.as_str();
            self.traffic.push(&[project, location, kind, name, revision], f64::from(r.percent));
            for i in &r.images {
                let ids = [project, location, kind, name, revision, i.image.as_str()];
                if i.verdict != ServingVerdict::Unknown {
                    self.compliant.push(&ids, if i.verdict.passes() { 1.0 } else { 0.0 });
                }
                for a in i.attestors.iter().filter(|a| a.verdict == ServingVerdict::Unattested) {
                    let cause = a.cause.map_or("", |c| c.as_str());
                    self.unattested.push(&[ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], &a.attestor, cause], 1.0);
                }
            }
        }
    }
}

/// Per project: serving images by verdict, what `per_workload = false` exports instead of
/// the per-image series.
fn push_serving_counts(counts: &mut Samples, project: &str, state: &ProjectState) {
    let mut by_verdict: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (r, _) in state.resources() {
        for image in r.serving.iter().flatten().flat_map(|revision| &revision.images) {
            *by_verdict.entry(image.verdict.as_str()).or_default() += 1;
        }
    }
    for (verdict, count) in by_verdict {
        counts.push(&[project, verdict], count as f64);
    }
}

/// Per project and kind: workloads by status, and by open or suppressed violation: what
/// `per_workload = false` exports instead of the per-workload series, for the recording
/// rules to count from (next to per-workload series they would only repeat them: at 5,000
/// projects, 60,000 more series).
fn push_project_counts(resources: &mut Samples, violations: &mut Samples, project: &str, state: &ProjectState) {
    let mut by_kind: BTreeMap<Kind, [usize; 3]> = BTreeMap::new();
    let mut by_violation: BTreeMap<(Kind, Violation, bool), usize> = BTreeMap::new();
    for (r, suppressed) in state.resources() {
        let status = match r.compliance {
            Compliance::Compliant => 0,
            Compliance::NonCompliant => 1,
            Compliance::Unknown => 2,
        };
        by_kind.entry(r.kind).or_default()[status] += 1;
        for v in &r.violations {
            *by_violation.entry((r.kind, *v, suppressed.contains(v))).or_default() += 1;
        }
    }
    for (kind, [compliant, non_compliant, unknown]) in by_kind {
        // Compliant and non-compliant for every kind the project has, zeros included (the
        // recording rules record a fully compliant kind's 0 non-compliant); unknown only when
        // there is any, as the per-workload series have none then.
        resources.push(&[project, kind.as_str(), "compliant"], compliant as f64);
        resources.push(&[project, kind.as_str(), "non_compliant"], non_compliant as f64);
        if unknown > 0 {
            resources.push(&[project, kind.as_str(), "unknown"], unknown as f64);
        }
    }
    for ((kind, reason, suppressed), count) in by_violation {
        let suppressed = if suppressed { "true" } else { "false" };
        violations.push(&[project, kind.as_str(), reason.as_str(), suppressed], count as f64);
    }
}

/// Renders the published audit results.
fn write_audit_families(out: &mut String, published: &Published) {
    let config = &published.metrics;
    let mut per_workload = PerWorkload::new();
    let mut project_resources = Samples::new(&PROJECT_RESOURCES);
    let mut project_violations = Samples::new(&PROJECT_VIOLATIONS);
    let mut finding = Samples::new(&PROJECT_FINDING);
    let mut allowlist = Samples::new(&ALLOWLIST_ENTRY);
    let mut policy_info = Samples::new(&POLICY_INFO);
    let mut up = Samples::new(&PROJECT_UP);
    let mut api_disabled = Samples::new(&PROJECT_API_DISABLED);
    let mut project_success = Samples::new(&PROJECT_LAST_SUCCESS);
    let mut audit_success = Samples::new(&AUDIT_LAST_SUCCESS);
    let mut duration = Samples::new(&AUDIT_DURATION);
    let mut serving_images = Samples::new(&PROJECT_SERVING_IMAGES);
    let mut validation_complete = Samples::new(&VALIDATION_LAST_COMPLETE);

    for (project, state) in &published.projects {
        let v = &state.shown;
        up.push(&[project], if state.complete { 1.0 } else { 0.0 });
        if let Some(t) = state.last_success {
            project_success.push(&[project], t);
        }
        if let Some(t) = state.last_validation {
            validation_complete.push(&[project], t);
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
        if config.per_workload {
            for (r, suppressed) in state.resources() {
                per_workload.push(project, r, suppressed, config);
            }
        } else {
            push_project_counts(&mut project_resources, &mut project_violations, project, state);
            push_serving_counts(&mut serving_images, project, state);
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
    per_workload.write_to(out);
    for samples in [
        project_resources,
        project_violations,
        finding,
        allowlist,
        policy_info,
        up,
        api_disabled,
        project_success,
        audit_success,
        duration,
        suppression,
        serving_images,
        validation_complete,
    ] {
        samples.write_to(out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::AuditOutcome;
    use crate::config::ResourceLabel;
    use crate::fixtures::verdict_with_violation;
    use crate::suppress::Suppressions;

    fn published(config: MetricsConfig) -> Published {
        let mut verdict = verdict_with_violation("p", true);
        let bad = verdict.resources.iter_mut().find(|r| r.name == "bad").unwrap();
        bad.labels = [
            ("team".to_string(), "pay\"ments\\\n".to_string()),
            ("cost-center".into(), "cc-1".into()),
            ("secret-ish".into(), "not exported".into()),
        ]
        .into();
        let outcome = AuditOutcome { projects: vec![verdict], discovery_error: None, duration: Duration::ZERO };
        let mut published = Published::default().merge(outcome, 1_800_000_000.0, &Suppressions::default());
        published.metrics = config;
        published
    }

    fn labels(keys: &[(&str, &str)]) -> MetricsConfig {
        MetricsConfig {
            per_workload: true,
            resource_labels: keys.iter().map(|(k, n)| ResourceLabel { key: (*k).into(), name: (*n).into() }).collect(),
        }
    }

    #[test]
    fn resource_labels_carry_only_allow_listed_keys_escaped() {
        let text = render_audit(&published(labels(&[("cost-center", "label_cost_center"), ("team", "label_team")])));
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("binauthz_resource_labels{")).collect();
        assert_eq!(
            lines,
            [
                r#"binauthz_resource_labels{project="p",location="us-central1",kind="service",name="bad",label_cost_center="cc-1",label_team="pay\"ments\\\n"} 1"#,
                // A workload without any of the keys still has its series, for joins.
                r#"binauthz_resource_labels{project="p",location="us-central1",kind="service",name="good"} 1"#,
            ]
        );
        assert!(!text.contains("not exported") && !text.contains("secret"), "{text}");
        let none = render_audit(&published(MetricsConfig::default()));
        assert!(!none.contains("binauthz_resource_labels"), "no allow-list, no family:\n{none}");
    }

    #[test]
    fn per_workload_false_exports_per_project_counts_instead() {
        let full = render_audit(&published(MetricsConfig::default()));
        let lean = render_audit(&published(MetricsConfig { per_workload: false, resource_labels: vec![] }));
        assert!(full.contains("binauthz_resource_compliant{"));
        assert!(!full.contains("binauthz_project_resources") && !full.contains("binauthz_project_violations"));
        for family in ["binauthz_resource_compliant", "binauthz_resource_violation", "binauthz_resource_unknown"] {
            assert!(!lean.contains(family), "{family} with per_workload = false:\n{lean}");
        }
        assert!(lean.contains(r#"binauthz_project_resources{project="p",kind="service",status="non_compliant"} 1"#));
        assert!(lean.contains(r#"binauthz_project_resources{project="p",kind="service",status="compliant"} 1"#));
        assert!(!lean.contains(r#"status="unknown""#), "no unknown workload, no unknown count");
        assert!(lean.contains(
            r#"binauthz_project_violations{project="p",kind="service",reason="binauthz_disabled",suppressed="false"} 1"#
        ));
        for text in [&full, &lean] {
            assert!(text.contains("binauthz_project_up{project=\"p\"} 1"));
        }
        let compliant_in_lean = lean
            .lines()
            .find(|l| l.starts_with(r#"binauthz_project_resources{project="p",kind="service",status="compliant"}"#))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned());
        let per_workload_ones =
            full.lines().filter(|l| l.starts_with("binauthz_resource_compliant{") && l.ends_with(" 1"));
        assert_eq!(compliant_in_lean, Some(per_workload_ones.count().to_string()), "the counts match the series");
    }
}
