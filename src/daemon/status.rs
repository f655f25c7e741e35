//! What a finished cycle says to operators: one log line with its counts (plus a warning per
//! incomplete project), and the status line systemd shows.

use crate::report::Summary;
use crate::state::Published;

/// The `result` label of `binauthz_audit_cycles_total` for a published cycle.
pub fn result(published: &Published) -> &'static str {
    if published.complete() {
        "success"
    } else if published.discovery_error.is_some() && published.projects.is_empty() {
        "failed"
    } else {
        "incomplete"
    }
}

/// Logs the cycle and returns systemd's status line for it. Counts only: a full report would
/// copy every workload on each cycle.
pub fn log_cycle(published: &Published) -> String {
    let s = Summary::of(published);
    let result = result(published);
    tracing::info!(
        result,
        projects = s.projects,
        projects_incomplete = s.projects_incomplete,
        resources = s.resources,
        non_compliant = s.non_compliant,
        unknown = s.unknown,
        findings = s.findings,
        duration_s = published.last_duration.unwrap_or_default(),
        "audit cycle finished"
    );
    for (project, p) in published.projects.iter().filter(|(_, p)| !p.complete) {
        tracing::warn!(%project, error = p.error.as_deref().unwrap_or(""), "project audit incomplete");
    }
    if let Some(e) = &published.discovery_error {
        tracing::warn!(error = %e, "project discovery failed");
    }
    format!(
        "last cycle {result}: {} resources, {} non-compliant, {} unknown, {}/{} projects complete",
        s.resources,
        s.non_compliant,
        s.unknown,
        s.projects - s.projects_incomplete,
        s.projects
    )
}
