//! Which alerts the published results call for, named and labelled exactly as the rules in
//! `config/prometheus/alerts.yml` (a test holds the two together): workload violations,
//! workloads whose compliance is unknown, policy findings, missing allowlist entries,
//! projects whose audit fails, and an audit that is stale or never succeeded.
//!
//! Not here: what only Prometheus can see (the auditor unreachable: BinauthzExporterDown,
//! BinauthzExporterAbsent), and request-rate alerts (BinauthzApiErrors,
//! BinauthzAuditOverrunning, BinauthzEventsMissing).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ResourceLabel;
use crate::evaluate::{Compliance, Finding, ResourceVerdict, Violation};
use crate::state::Published;

pub const RUNBOOK: &str = "https://github.com/binauthz-auditor/binauthz-auditor/blob/main/docs/runbook.md";

/// How long without a successful cycle makes the audit stale (BinauthzAuditStale's 3h).
const STALE_AFTER: Duration = Duration::from_secs(3 * 3600);

/// An alert the results call for, before it is dated and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The rule's `for`: how long the condition must hold before the alert fires (zero for
    /// what a completed read has established; see `plan`).
    pub wait: Duration,
}

pub fn violation_alert(v: Violation) -> &'static str {
    match v {
        Violation::Breakglass => "BinauthzWorkloadBreakglass",
        Violation::BinauthzDisabled => "BinauthzWorkloadBinauthzDisabled",
        Violation::NonDefaultPolicy => "BinauthzWorkloadNonDefaultPolicy",
        Violation::AllowlistMissing => "BinauthzWorkloadAllowlistMissing",
        Violation::Gen1Function => "BinauthzWorkloadGen1Function",
        Violation::ExemptImage => "BinauthzWorkloadExemptImage",
        Violation::UnattestedRevision => "BinauthzWorkloadUnattestedRevision",
        Violation::DeniedRevisionServing => "BinauthzWorkloadDeniedRevisionServing",
    }
}

pub fn violation_severity(v: Violation) -> &'static str {
    match v {
        Violation::Breakglass
        | Violation::BinauthzDisabled
        | Violation::UnattestedRevision
        | Violation::DeniedRevisionServing => "critical",
        _ => "warning",
    }
}

/// The rule's name, severity and summary for a policy finding.
fn finding_alert(f: Finding, project: &str) -> (&'static str, &'static str, String) {
    match f {
        Finding::PolicyAlwaysAllow => (
            "BinauthzPolicyAlwaysAllow",
            "critical",
            format!("Binary Authorization policy of project {project} allows every image"),
        ),
        Finding::PolicyDryRun => (
            "BinauthzPolicyDryRun",
            "warning",
            format!("Binary Authorization policy of project {project} is in dry-run mode"),
        ),
        Finding::AllowlistTooBroad => (
            "BinauthzPolicyAllowlistTooBroad",
            "warning",
            format!("Binary Authorization allowlist of project {project} is too broad"),
        ),
        Finding::PolicyApiDisabled => {
            ("BinauthzPolicyApiDisabled", "warning", format!("Binary Authorization API disabled in project {project}"))
        }
    }
}

fn labels<const N: usize>(alertname: &str, severity: &str, pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    let mut labels =
        BTreeMap::from([("alertname".to_string(), alertname.to_string()), ("severity".into(), severity.into())]);
    labels.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    labels
}

fn annotations(alertname: &str, summary: String, description: String) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("summary".to_string(), summary),
        ("description".into(), description),
        ("runbook_url".into(), format!("{RUNBOOK}#{}", alertname.to_lowercase())),
    ])
}

/// Every alert `published` calls for at `now`; `auditor` names this auditor in the
/// descriptions of the alerts about itself (its external URL).
pub fn wanted(published: &Published, now: DateTime<Utc>, auditor: &str) -> Vec<Wanted> {
    let mut out = Vec::new();
    let owners = &published.metrics.resource_labels;
    for (project, state) in &published.projects {
        for (r, suppressed) in state.resources() {
            for v in r.violations.iter().copied().filter(|v| !suppressed.contains(v)) {
                out.push(violation(project, r, v, owners));
            }
            if r.compliance == Compliance::Unknown {
                out.push(unknown(project, r, owners));
            }
        }
        for f in &state.shown.findings {
            let (alertname, severity, summary) = finding_alert(*f, project);
            let description = format!("{summary} (finding {f}); the runbook says what it means and how to fix it.");
            out.push(Wanted {
                labels: labels(alertname, severity, [("project", project), ("reason", f.as_str())]),
                annotations: annotations(alertname, summary, description),
                wait: Duration::ZERO,
            });
        }
        for e in state.shown.allowlist.iter().filter(|e| !e.present) {
            let alertname = "BinauthzAllowlistEntryMissing";
            let summary = format!("Allowlist entry for {} missing in project {project}", e.repository);
            let description = format!(
                "Functions in project {project} (location {}) are built into the repository {}, but the project's Binary Authorization policy has no admissionWhitelistPatterns entry covering it. Deployments of those functions with Binary Authorization enabled will be denied.",
                e.location, e.repository
            );
            out.push(Wanted {
                labels: labels(
                    alertname,
                    "warning",
                    [("project", project), ("location", &e.location), ("repository", &e.repository)],
                ),
                annotations: annotations(alertname, summary, description),
                wait: Duration::ZERO,
            });
        }
        if !state.complete {
            let alertname = "BinauthzProjectAuditFailing";
            let why = state.error.as_deref().unwrap_or("unknown error");
            out.push(Wanted {
                labels: labels(alertname, "warning", [("project", project)]),
                annotations: annotations(
                    alertname,
                    format!("Audit of project {project} is failing"),
                    format!("The last audits of project {project} by {auditor} did not complete for 30 minutes: {why}"),
                ),
                wait: Duration::from_secs(30 * 60),
            });
        }
    }
    out.extend(auditor_health(published, now, auditor));
    out
}

fn violation(project: &str, r: &ResourceVerdict, v: Violation, owners: &[ResourceLabel]) -> Wanted {
    let alertname = violation_alert(v);
    let mut labels = labels(
        alertname,
        violation_severity(v),
        [
            ("project", project),
            ("location", &r.location),
            ("kind", r.kind.as_str()),
            ("name", &r.name),
            ("reason", v.as_str()),
        ],
    );
    add_owners(&mut labels, r, owners);
    let mut annotations = annotations(
        alertname,
        format!("{} {project}/{}/{}: {}", r.kind, r.location, r.name, v),
        format!(
            "The {} {} in project {project} (location {}) is not protected by Binary Authorization: {}.",
            r.kind, r.name, r.location, v
        ),
    );
    for (key, value) in [
        ("remediation", &r.remediation),
        ("remediation_note", &r.remediation_note),
        ("last_modifier", &r.last_modifier),
    ] {
        if let Some(value) = value {
            annotations.insert(key.into(), value.clone());
        }
    }
    Wanted { labels, annotations, wait: Duration::ZERO }
}

fn unknown(project: &str, r: &ResourceVerdict, owners: &[ResourceLabel]) -> Wanted {
    let alertname = "BinauthzWorkloadComplianceUnknown";
    let mut labels = labels(
        alertname,
        "warning",
        [("project", project), ("location", &r.location), ("kind", r.kind.as_str()), ("name", &r.name)],
    );
    add_owners(&mut labels, r, owners);
    let why = r.unknown_reason.as_deref().unwrap_or("something it needs could not be read");
    Wanted {
        labels,
        annotations: annotations(
            alertname,
            format!("Compliance of {} {project}/{}/{} cannot be decided", r.kind, r.location, r.name),
            format!(
                "For over an hour the auditor could not decide whether the {} {} in project {project} (location {}) is compliant: {why}",
                r.kind, r.name, r.location
            ),
        ),
        wait: Duration::from_secs(3600),
    }
}

/// The workload's `[metrics] resource_labels` (`label_team`, ...), as the team-routing rules
/// join them (docs/runbook.md), so pushed alerts route the same way.
fn add_owners(labels: &mut BTreeMap<String, String>, r: &ResourceVerdict, owners: &[ResourceLabel]) {
    for owner in owners {
        if let Some(value) = r.labels.get(&owner.key).filter(|v| !v.is_empty()) {
            labels.insert(owner.name.clone(), value.clone());
        }
    }
}

/// BinauthzAuditStale and BinauthzAuditNeverSucceeded. The rules keep every target label
/// (`instance`, `job`, ...), which a push cannot know: these carry only their name and
/// severity (and `extra_labels`), so every replica in trouble raises the same one alert.
fn auditor_health(published: &Published, now: DateTime<Utc>, auditor: &str) -> Option<Wanted> {
    let since = |t: f64| now.signed_duration_since(DateTime::from_timestamp_millis((t * 1000.0) as i64).unwrap_or(now));
    match published.last_success {
        Some(t) if since(t).to_std().unwrap_or_default() > STALE_AFTER => {
            let alertname = "BinauthzAuditStale";
            let age = humantime::format_duration(Duration::from_secs(since(t).num_seconds().max(0) as u64));
            Some(Wanted {
                labels: labels(alertname, "warning", []),
                annotations: annotations(
                    alertname,
                    format!("No successful audit for {age}"),
                    format!(
                        "The auditor {auditor} has not completed a successful audit for {age}; every compliance series and alert it sends is out of date."
                    ),
                ),
                wait: Duration::from_secs(5 * 60),
            })
        }
        Some(_) => None,
        None => {
            let alertname = "BinauthzAuditNeverSucceeded";
            Some(Wanted {
                labels: labels(alertname, "warning", []),
                annotations: annotations(
                    alertname,
                    format!("Auditor {auditor} has not completed a single audit in 3h"),
                    format!(
                        "The auditor {auditor} has been running for 3 hours without completing its first successful audit."
                    ),
                ),
                wait: Duration::from_secs(3 * 3600),
            })
        }
    }
}
