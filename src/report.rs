//! The audit report: JSON for machines, a table for people, JSON lines for log pipelines.

mod lines;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::ResourceLabel;
use crate::evaluate::validation::{ServingRevision, ServingVerdict};
use crate::evaluate::{
    AllowlistEntry, AllowlistStatus, Compliance, Finding, ResourceVerdict, ValidationStatus, Violation,
};
use crate::inventory::{Api, Kind, Policy};
use crate::state::Published;
use crate::suppress::Suppression;

/// Borrows from the published state: at 100k workloads a copy would cost as much again.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Every project in scope was read in full by the latest cycle.
    pub complete: bool,
    pub generated_at: Option<String>,
    /// Project discovery failed: projects it would have found are missing.
    pub error: Option<String>,
    pub summary: Summary,
    pub projects: Vec<ProjectReport<'a>>,
    pub resources: Vec<ResourceReport<'a>>,
    pub suppressions: Vec<SuppressionReport<'a>>,
    /// `[metrics] resource_labels`: the labels the table shows (the JSON has them all).
    #[serde(skip)]
    pub table_labels: &'a [ResourceLabel],
}

#[derive(Debug, Serialize)]
pub struct SuppressionReport<'a> {
    #[serde(flatten)]
    pub suppression: &'a Suppression,
    /// `active` or `expired` (an expired suppression suppresses nothing).
    pub state: &'static str,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub projects: usize,
    pub projects_incomplete: usize,
    pub resources: usize,
    pub compliant: usize,
    pub non_compliant: usize,
    pub unknown: usize,
    pub findings: usize,
    /// Violations not covered by an active suppression: these fail `audit`.
    pub open_violations: usize,
    pub suppressed_violations: usize,
}

#[derive(Debug, Serialize)]
pub struct ProjectReport<'a> {
    pub project: &'a str,
    /// The latest audit of this project was complete (`ok` in the JSON: the report's contract).
    #[serde(rename = "ok")]
    pub complete: bool,
    pub error: Option<&'a str>,
    pub findings: &'a [Finding],
    pub policy: Option<&'a Policy>,
    pub disabled_apis: &'a [Api],
    pub allowlist: &'a [AllowlistEntry],
    pub last_success: Option<String>,
    /// Continuous validation (`[validation]` on): did it read everything it needed, and when
    /// it last did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ValidationReport<'a> {
    #[serde(flatten)]
    pub status: &'a ValidationStatus,
    pub last_complete: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ResourceReport<'a> {
    pub project: &'a str,
    pub location: &'a str,
    pub kind: Kind,
    pub name: &'a str,
    /// A function (one deployed through the Cloud Run Admin API is listed as a service);
    /// `function` in the JSON: the report's contract.
    #[serde(rename = "function")]
    pub is_function: bool,
    /// `null` when compliance could not be decided.
    pub compliant: Option<bool>,
    pub status: Compliance,
    pub violations: &'a [Violation],
    /// The violations an active suppression covers.
    pub suppressed: &'a [Violation],
    pub unknown_reason: Option<&'a str>,
    pub image: Option<&'a str>,
    pub last_modifier: Option<&'a str>,
    /// Shell commands, to paste as printed; `null` when no command is safe.
    pub remediation: Option<&'a str>,
    /// Why the fix is what it is, or what to do where no command is safe.
    pub remediation_note: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    /// When Asset Inventory last saw the resource change (absent for live reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_updated_at: Option<&'a str>,
    /// Each revision that serves, with its images, traffic share, tags and what the policy
    /// says of them today (`[validation]` on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<&'a [ServingRevision]>,
}

impl<'a> ResourceReport<'a> {
    fn new(project: &'a str, r: &'a ResourceVerdict, suppressed: &'a [Violation]) -> Self {
        ResourceReport {
            project,
            location: &r.location,
            kind: r.kind,
            name: &r.name,
            is_function: r.is_function,
            compliant: match r.compliance {
                Compliance::Compliant => Some(true),
                Compliance::NonCompliant => Some(false),
                Compliance::Unknown => None,
            },
            status: r.compliance,
            violations: &r.violations,
            suppressed,
            unknown_reason: r.unknown_reason.as_deref(),
            image: r.image.as_deref(),
            last_modifier: r.last_modifier.as_deref(),
            remediation: r.remediation.as_deref(),
            remediation_note: r.remediation_note.as_deref(),
            labels: &r.labels,
            data_updated_at: r.data_updated_at.as_deref(),
            serving: r.serving.as_deref(),
        }
    }
}

fn timestamp(unix: f64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis((unix * 1000.0) as i64).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl Summary {
    /// Counts what `published` shows, without building a report.
    pub fn of(published: &Published) -> Summary {
        let mut summary = Summary::default();
        for state in published.projects.values() {
            summary.projects += 1;
            summary.projects_incomplete += usize::from(!state.complete);
            summary.findings += state.shown.findings.len();
            for (r, suppressed) in state.resources() {
                summary.resources += 1;
                match r.compliance {
                    Compliance::Compliant => summary.compliant += 1,
                    Compliance::NonCompliant => summary.non_compliant += 1,
                    Compliance::Unknown => summary.unknown += 1,
                }
                summary.suppressed_violations += suppressed.len();
                summary.open_violations += r.violations.len() - suppressed.len();
            }
        }
        summary
    }
}

impl<'a> Report<'a> {
    pub fn from_published(published: &'a Published) -> Report<'a> {
        let mut projects = Vec::new();
        let mut resources = Vec::new();
        for (name, state) in &published.projects {
            let v = &state.shown;
            resources.extend(state.resources().map(|(r, suppressed)| ResourceReport::new(name, r, suppressed)));
            projects.push(ProjectReport {
                project: name,
                complete: state.complete,
                error: state.error.as_deref(),
                findings: &v.findings,
                policy: v.policy.as_ref(),
                disabled_apis: &v.disabled_apis,
                allowlist: &v.allowlist,
                last_success: state.last_success.and_then(timestamp),
                validation: v.validation.as_ref().map(|status| ValidationReport {
                    status,
                    last_complete: state.last_validation.and_then(timestamp),
                }),
            });
        }
        Report {
            complete: published.complete(),
            generated_at: published.generated_at.and_then(timestamp),
            error: published.discovery_error.clone(),
            summary: Summary::of(published),
            projects,
            resources,
            suppressions: published
                .suppressions
                .iter()
                .map(|s| SuppressionReport {
                    suppression: &s.suppression,
                    state: if s.active { "active" } else { "expired" },
                })
                .collect(),
            table_labels: &published.metrics.resource_labels,
        }
    }

    /// `audit`'s exit code: 0 complete and compliant, 1 complete with violations that no
    /// suppression covers (and, when asked, project findings), 2 incomplete, or a workload
    /// whose compliance could not be decided (never taken for compliant).
    pub fn exit_code(&self, fail_on_findings: bool) -> u8 {
        if !self.complete || self.summary.unknown > 0 {
            2
        } else if self.summary.open_violations > 0 || (fail_on_findings && self.summary.findings > 0) {
            1
        } else {
            0
        }
    }

    /// The report for people, written as it is made: two passes over the resources (column
    /// widths, then rows), so a 100k-workload table is never held in memory whole.
    pub fn write_table(&self, out: &mut impl io::Write) -> io::Result<()> {
        self.write_resources(out)?;
        writeln!(out)?;
        self.write_projects(out)?;
        self.write_summary(out)
    }

    pub fn to_table(&self) -> String {
        let mut out = Vec::new();
        self.write_table(&mut out).expect("writing to memory cannot fail");
        String::from_utf8(out).expect("the table is UTF-8")
    }

    /// Non-compliant first, then unknown, then compliant; each with its fix and note.
    fn write_resources(&self, out: &mut impl io::Write) -> io::Result<()> {
        const HEADER: [&str; 6] = ["PROJECT", "LOCATION", "KIND", "NAME", "STATUS", "VIOLATIONS"];
        let mut ordered: Vec<&ResourceReport> = self.resources.iter().collect();
        ordered.sort_by_key(|r| (r.status != Compliance::NonCompliant, r.status != Compliance::Unknown));
        let mut widths = HEADER.map(str::len);
        for r in &ordered {
            for (w, cell) in widths.iter_mut().zip(table_row(r)) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let write_row = |out: &mut dyn io::Write, cells: [Cow<'_, str>; 6]| {
            let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            writeln!(out, "{}", line.join("  ").trim_end())
        };
        write_row(out, HEADER.map(Cow::Borrowed))?;
        for r in ordered {
            write_row(out, table_row(r))?;
            if let Some(fix) = &r.remediation {
                // Continuation lines are indented too; the shell ignores the indent.
                writeln!(out, "    fix: {}", fix.replace('\n', "\n         "))?;
            }
            if let Some(note) = &r.remediation_note {
                writeln!(out, "    note: {note}")?;
            }
            if let Some(why) = &r.unknown_reason {
                writeln!(out, "    unknown: {why}")?;
            }
            let labels: Vec<String> = self
                .table_labels
                .iter()
                .filter_map(|l| r.labels.get(&l.key).map(|v| format!("{}={v:?}", l.key)))
                .collect();
            if !labels.is_empty() {
                writeln!(out, "    labels: {}", labels.join(" "))?;
            }
            for revision in r.serving.unwrap_or_default() {
                write_serving(out, revision)?;
            }
        }
        Ok(())
    }

    fn write_projects(&self, out: &mut impl io::Write) -> io::Result<()> {
        for p in &self.projects {
            let mut notes = Vec::new();
            if !p.findings.is_empty() {
                notes
                    .push(format!("findings: {}", p.findings.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")));
            }
            if !p.disabled_apis.is_empty() {
                notes.push(format!(
                    "APIs not enabled: {}",
                    p.disabled_apis.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")
                ));
            }
            for entry in p.allowlist.iter().filter(|e| !e.present) {
                notes.push(match entry.status {
                    AllowlistStatus::NotDocumentedPattern => {
                        format!("allowlist has {0}/*, not the documented {0}/**", entry.repository)
                    }
                    _ => format!("allowlist lacks {}/**", entry.repository),
                });
            }
            let status = match &p.error {
                Some(e) if !p.complete => format!("INCOMPLETE ({e})"),
                _ => "ok".into(),
            };
            writeln!(out, "project {}: {status}{}", p.project, prefixed("; ", &notes.join("; ")))?;
        }
        if let Some(e) = &self.error {
            writeln!(out, "project discovery failed: {e}")?;
        }
        Ok(())
    }

    fn write_summary(&self, out: &mut impl io::Write) -> io::Result<()> {
        writeln!(out, "{}", self.summary_sentence())
    }

    /// The summary as one sentence: the table's last line.
    fn summary_sentence(&self) -> String {
        let s = &self.summary;
        format!(
            "{} resources: {} compliant, {} non-compliant, {} unknown; {} open violations, {} suppressed; {} projects, {} incomplete, {} findings; audit {}",
            s.resources,
            s.compliant,
            s.non_compliant,
            s.unknown,
            s.open_violations,
            s.suppressed_violations,
            s.projects,
            s.projects_incomplete,
            s.findings,
            if self.complete { "complete" } else { "INCOMPLETE" }
        )
    }
}

/// `    serving: REV 90% tags=a,b attested` and one line per image that does not pass.
fn write_serving(out: &mut impl io::Write, r: &ServingRevision) -> io::Result<()> {
    let tags = if r.tags.is_empty() { String::new() } else { format!(" tags={}", r.tags.join(",")) };
    writeln!(out, "    serving: {} {}%{tags} {}", r.revision, r.percent, r.verdict)?;
    if let Some(why) = &r.unknown_reason {
        writeln!(out, "      unknown: {why}")?;
    }
    for image in &r.images {
        let passing =
            matches!(image.verdict, ServingVerdict::Attested | ServingVerdict::Exempt | ServingVerdict::NotRequired);
        let causes: Vec<String> = image
            .attestors
            .iter()
            .filter(|a| a.verdict != ServingVerdict::Attested)
            .map(|a| format!("{}: {}", a.attestor, a.cause.map_or("unknown", |c| c.as_str())))
            .collect();
        let causes = if causes.is_empty() { String::new() } else { format!(" ({})", causes.join("; ")) };
        if !passing {
            writeln!(out, "      {} {}{causes}", image.image, image.verdict)?;
        }
    }
    Ok(())
}

/// One resource's table cells.
pub(crate) fn table_row<'a>(r: &'a ResourceReport<'_>) -> [Cow<'a, str>; 6] {
    let kind = if r.is_function && r.kind == Kind::Service { "service (function)" } else { r.kind.as_str() };
    let status = match r.status {
        Compliance::Compliant => "ok",
        Compliance::NonCompliant => "VIOLATION",
        Compliance::Unknown => "unknown",
    };
    let violations = r
        .violations
        .iter()
        .map(|v| if r.suppressed.contains(v) { format!("{v} (suppressed)") } else { v.to_string() })
        .collect::<Vec<_>>()
        .join(",");
    [r.project.into(), r.location.into(), kind.into(), r.name.into(), status.into(), violations.into()]
}

fn prefixed(prefix: &str, s: &str) -> String {
    if s.is_empty() { String::new() } else { format!("{prefix}{s}") }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::AuditOutcome;
    use crate::fixtures::verdict;

    pub(crate) fn published(projects: Vec<crate::evaluate::ProjectVerdict>) -> Published {
        Published::default().merge(
            AuditOutcome { projects, discovery_error: None, duration: Duration::ZERO },
            1.0,
            &Default::default(),
        )
    }

    #[test]
    fn exit_codes_follow_completeness_then_violations() {
        let clean = published(vec![verdict("a", true, 2)]);
        let clean = Report::from_published(&clean);
        assert_eq!(clean.exit_code(false), 0);
        assert_eq!(clean.summary.compliant, 2);
        let incomplete = published(vec![verdict("a", true, 2), verdict("b", false, 0)]);
        let incomplete = Report::from_published(&incomplete);
        assert!(!incomplete.complete);
        assert_eq!(incomplete.exit_code(false), 2);
        assert!(!incomplete.projects[1].complete);
    }

    #[test]
    fn nothing_audited_yet_is_not_complete() {
        assert!(!Report::from_published(&Published::default()).complete);
    }

    #[test]
    fn the_table_lists_every_resource_and_a_summary() {
        let state = published(vec![verdict("a", true, 2)]);
        let table = Report::from_published(&state).to_table();
        assert!(table.starts_with("PROJECT"));
        assert_eq!(table.matches("svc").count(), 2);
        assert!(table.contains("2 resources: 2 compliant"), "{table}");
        assert!(!table.contains("labels:"), "no resource_labels, no labels line:\n{table}");
    }

    #[test]
    fn the_table_shows_the_allow_listed_labels() {
        let mut verdict = verdict("a", true, 2);
        verdict.resources[0].labels =
            [("team".to_string(), "pay ments".to_string()), ("x".into(), "hidden".into())].into();
        let mut state = published(vec![verdict]);
        state.metrics.resource_labels = vec![ResourceLabel { key: "team".into(), name: "label_team".into() }];
        let report = Report::from_published(&state);
        let table = report.to_table();
        assert_eq!(table.matches("    labels: team=\"pay ments\"\n").count(), 1, "{table}");
        assert!(!table.contains("hidden"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["resources"][0]["labels"]["x"], "hidden", "the JSON keeps every label");
        assert!(json.get("table_labels").is_none());
    }
}
