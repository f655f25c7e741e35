//! What the daemon publishes: the latest audit, with each failed project's last-known verdict
//! kept in place (and marked down) so that nothing it could not see turns compliant.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::AuditOutcome;
use crate::evaluate::{ProjectVerdict, ResourceVerdict, Violation};
use crate::suppress::Suppressions;

#[derive(Debug, Clone)]
pub struct ProjectState {
    /// The last complete verdict while the project fails; the latest one otherwise.
    pub shown: Arc<ProjectVerdict>,
    /// The latest audit of this project was complete.
    pub up: bool,
    /// Why the latest audit was not complete.
    pub error: Option<String>,
    /// Unix time of the last complete audit of this project.
    pub last_success: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Published {
    pub projects: BTreeMap<String, ProjectState>,
    pub discovery_error: Option<String>,
    /// Unix time at which the last cycle that could discover its projects finished.
    pub last_success: Option<f64>,
    pub last_duration: Option<f64>,
    /// Unix time of the last cycle, whatever its result; `None` before the first.
    pub generated_at: Option<f64>,
    /// The configured suppressions, judged at `generated_at`.
    pub suppressions: Suppressions,
}

impl Published {
    /// Folds one cycle's outcome into what was published before. Pure: `now` is passed in.
    pub fn merge(&self, outcome: AuditOutcome, now: f64, suppressions: &Suppressions) -> Published {
        let mut projects = BTreeMap::new();
        for verdict in outcome.projects {
            let previous = self.projects.get(&verdict.project);
            let state = if verdict.complete {
                ProjectState { up: true, error: None, last_success: Some(now), shown: Arc::new(verdict) }
            } else {
                let last_good = previous.filter(|p| p.last_success.is_some());
                ProjectState {
                    up: false,
                    error: verdict.error.clone(),
                    last_success: last_good.and_then(|p| p.last_success),
                    shown: last_good.map_or_else(|| Arc::new(verdict), |p| Arc::clone(&p.shown)),
                }
            };
            projects.insert(state.shown.project.clone(), state);
        }
        if let Some(error) = &outcome.discovery_error {
            // Projects discovery could not find this time are not gone: keep them, down.
            for (name, state) in &self.projects {
                projects.entry(name.clone()).or_insert_with(|| ProjectState {
                    up: false,
                    error: Some(error.clone()),
                    ..state.clone()
                });
            }
        }
        Published {
            projects,
            last_success: if outcome.discovery_error.is_none() { Some(now) } else { self.last_success },
            discovery_error: outcome.discovery_error,
            last_duration: Some(outcome.duration.as_secs_f64()),
            generated_at: Some(now),
            suppressions: suppressions.clone(),
        }
    }

    /// The time suppressions are judged at.
    pub fn now(&self) -> DateTime<Utc> {
        self.generated_at.and_then(|t| DateTime::from_timestamp_millis((t * 1000.0) as i64)).unwrap_or_default()
    }

    pub fn is_suppressed(&self, project: &str, r: &ResourceVerdict, violation: Violation) -> bool {
        self.suppressions.suppresses(self.now(), project, r, violation)
    }

    pub fn complete(&self) -> bool {
        self.generated_at.is_some() && self.discovery_error.is_none() && self.projects.values().all(|p| p.up)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fixtures::verdict;

    fn none() -> Suppressions {
        Suppressions::default()
    }

    fn outcome(projects: Vec<ProjectVerdict>, discovery_error: Option<&str>) -> AuditOutcome {
        AuditOutcome { projects, discovery_error: discovery_error.map(Into::into), duration: Duration::from_secs(2) }
    }

    #[test]
    fn a_failing_project_keeps_its_last_complete_verdict_and_goes_down() {
        let first = Published::default().merge(
            outcome(vec![verdict("a", true, 3), verdict("b", true, 1)], None),
            100.0,
            &none(),
        );
        let second = first.merge(outcome(vec![verdict("a", false, 0), verdict("b", true, 2)], None), 200.0, &none());
        let a = &second.projects["a"];
        assert!(!a.up);
        assert_eq!(a.shown.resources.len(), 3, "last-known resources are kept");
        assert_eq!(a.last_success, Some(100.0));
        assert_eq!(a.error.as_deref(), Some("boom"));
        let b = &second.projects["b"];
        assert!(b.up);
        assert_eq!(b.shown.resources.len(), 2, "healthy projects move on");
        assert!(!second.complete());
    }

    #[test]
    fn a_project_that_never_succeeded_shows_its_partial_verdict() {
        let p = Published::default().merge(outcome(vec![verdict("a", false, 1)], None), 100.0, &none());
        assert!(!p.projects["a"].up);
        assert_eq!(p.projects["a"].last_success, None);
        assert_eq!(p.projects["a"].shown.resources.len(), 1);
    }

    #[test]
    fn projects_missed_by_a_failed_discovery_stay_published_but_down() {
        let first = Published::default().merge(outcome(vec![verdict("a", true, 1)], None), 100.0, &none());
        let second = first.merge(outcome(vec![], Some("search failed")), 200.0, &none());
        assert!(!second.projects["a"].up);
        assert_eq!(second.last_success, Some(100.0));
        let third = second.merge(outcome(vec![], None), 300.0, &none());
        assert!(third.projects.is_empty(), "a project gone from a successful discovery is dropped");
    }
}
