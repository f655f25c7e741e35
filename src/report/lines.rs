//! `audit --format json-lines`: the report as one JSON object per line, each a whole record
//! (a resource, a project, a suppression, then the summary), for log pipelines that take a
//! line as an entry (Cloud Logging from a Cloud Run job, Loki, jq). A pretty-printed report
//! would land as hundreds of one-line entries; one line holding the whole report would pass
//! Cloud Logging's 256 KiB entry limit at a few hundred workloads.
//!
//! Every line has `record`, and the `severity` and `message` Cloud Logging shows in its list.

use std::io;

use serde::Serialize;

use super::{ProjectReport, Report, ResourceReport, Summary, table_row};
use crate::evaluate::Compliance;

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    record: &'static str,
    severity: &'static str,
    message: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// The last line: what the run as a whole found, and the exit status it ends with.
#[derive(Serialize)]
struct End<'a> {
    complete: bool,
    generated_at: Option<&'a str>,
    error: Option<&'a str>,
    summary: &'a Summary,
    exit_code: u8,
}

impl Report<'_> {
    /// Writes the lines as it goes (nothing is held but one line). `exit_code` is what the
    /// process will exit with, for the summary line.
    pub fn write_json_lines(&self, out: &mut impl io::Write, exit_code: u8) -> io::Result<()> {
        for r in &self.resources {
            write(out, "resource", resource_severity(r), table_row(r).join(" ").trim_end(), r)?;
        }
        for p in &self.projects {
            write(out, "project", project_severity(p), &project_message(p), p)?;
        }
        for s in &self.suppressions {
            let message = format!("suppression {}: {}", s.state, s.suppression.reason);
            write(out, "suppression", if s.state == "active" { "INFO" } else { "WARNING" }, &message, s)?;
        }
        let end = End {
            complete: self.complete,
            generated_at: self.generated_at.as_deref(),
            error: self.error.as_deref(),
            summary: &self.summary,
            exit_code,
        };
        let severity = match self.exit_code(false) {
            0 => "INFO",
            1 => "WARNING",
            _ => "ERROR",
        };
        write(out, "summary", severity, &self.summary_sentence(), &end)
    }
}

fn write<T: Serialize>(
    out: &mut impl io::Write,
    record: &'static str,
    severity: &'static str,
    message: &str,
    body: &T,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { record, severity, message, body })?;
    writeln!(out)
}

/// WARNING for what needs someone (an open violation, a workload that could not be judged).
fn resource_severity(r: &ResourceReport) -> &'static str {
    let open = r.violations.iter().any(|v| !r.suppressed.contains(v));
    match r.status {
        Compliance::Unknown => "WARNING",
        Compliance::NonCompliant if open => "WARNING",
        _ => "INFO",
    }
}

fn project_severity(p: &ProjectReport) -> &'static str {
    if !p.complete {
        "ERROR"
    } else if !p.findings.is_empty() {
        "WARNING"
    } else {
        "INFO"
    }
}

fn project_message(p: &ProjectReport) -> String {
    let status = match p.error {
        Some(e) if !p.complete => format!("INCOMPLETE ({e})"),
        _ => "ok".into(),
    };
    let findings: Vec<&str> = p.findings.iter().map(|f| f.as_str()).collect();
    if findings.is_empty() {
        format!("project {}: {status}", p.project)
    } else {
        format!("project {}: {status}; findings: {}", p.project, findings.join(","))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::fixtures::verdict;
    use crate::report::tests::published;

    #[test]
    fn every_record_is_one_line_and_the_summary_comes_last() {
        let published = published(vec![verdict("a", true, 2), verdict("b", false, 0)]);
        let report = crate::report::Report::from_published(&published);
        let mut out = Vec::new();
        report.write_json_lines(&mut out, 1).unwrap();
        let lines: Vec<Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let records: Vec<&str> = lines.iter().map(|l| l["record"].as_str().unwrap()).collect();
        let resources = report.resources.len();
        assert_eq!(records.iter().filter(|r| **r == "resource").count(), resources);
        assert_eq!(records.iter().filter(|r| **r == "project").count(), report.projects.len());
        assert_eq!(records.last(), Some(&"summary"));
        let end = lines.last().unwrap();
        assert_eq!(end["exit_code"], 1);
        assert_eq!(end["summary"]["resources"], resources);
        assert_eq!(end["severity"], "ERROR", "an incomplete audit");
        let project_b = lines.iter().find(|l| l["record"] == "project" && l["project"] == "b").unwrap();
        assert_eq!(project_b["severity"], "ERROR");
        assert_eq!(project_b["ok"], false);
        for line in &lines {
            assert!(["INFO", "WARNING", "ERROR"].contains(&line["severity"].as_str().unwrap()), "{line}");
            assert!(!line["message"].as_str().unwrap().is_empty(), "{line}");
        }
    }
}
