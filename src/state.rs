//! What the daemon publishes: the latest audit, with each failed project's last-known verdict
//! kept in place (and marked incomplete) so that nothing it could not see turns compliant,
//! and the suppressions judged once, when the results are published.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::DateTime;

use crate::audit::AuditOutcome;
use crate::config::MetricsConfig;
use crate::evaluate::{ProjectVerdict, ResourceVerdict, Violation};
use crate::suppress::{Suppression, Suppressions};

/// The published results: what scrapes, reports and alerts read, and what cycles replace.
#[derive(Default)]
pub struct Store(RwLock<Arc<Published>>);

impl Store {
    pub fn load(&self) -> Arc<Published> {
        Arc::clone(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn store(&self, published: Published) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(published);
    }
}

#[derive(Debug, Clone)]
pub struct ProjectState {
    /// The last complete verdict while the project fails; the latest one otherwise.
    pub shown: Arc<ProjectVerdict>,
    /// The latest audit of this project read everything in scope (the metric calls it `up`,
    /// the JSON report `ok`).
    pub complete: bool,
    /// Why the latest audit was not complete.
    pub error: Option<String>,
    /// Unix time of the last complete audit of this project.
    pub last_success: Option<f64>,
    /// Unix time of the last audit whose continuous validation read everything it needed
    /// (`[validation]` on).
    pub last_validation: Option<f64>,
    /// By index into `shown.resources`: the violations an active suppression covers, decided
    /// when published (most resources have none).
    suppressed: BTreeMap<usize, Vec<Violation>>,
}

impl ProjectState {
    /// Every resource shown, with the violations of it that are suppressed.
    pub fn resources(&self) -> impl Iterator<Item = (&ResourceVerdict, &[Violation])> {
        self.shown
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r, self.suppressed.get(&i).map_or(&[][..], Vec::as_slice)))
    }
}

/// A configured suppression and whether it was in force when the results were published.
#[derive(Debug, Clone)]
pub struct SuppressionState {
    pub suppression: Suppression,
    pub active: bool,
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
    pub suppressions: Vec<SuppressionState>,
    /// `[metrics]` when the results were published: which series `/metrics` shows of them
    /// (a reload applies from the next cycle on, like suppressions).
    pub metrics: MetricsConfig,
}

impl Published {
    /// Folds one cycle's outcome into what was published before, and decides which
    /// violations the suppressions cover at `now`. Pure: `now` is passed in.
    pub fn merge(&self, outcome: AuditOutcome, now: f64, suppressions: &Suppressions) -> Published {
        let mut projects = BTreeMap::new();
        for verdict in outcome.projects {
            let state = ProjectState::after(self.projects.get(&verdict.project), verdict, now);
            projects.insert(state.shown.project.clone(), state);
        }
        if let Some(error) = &outcome.discovery_error {
            // Projects discovery could not find this time are not gone: keep them, down.
            for (name, state) in &self.projects {
                projects.entry(name.clone()).or_insert_with(|| ProjectState {
                    complete: false,
                    error: Some(error.clone()),
                    ..state.clone()
                });
            }
        }
        let at = instant(now);
        for (name, state) in projects.iter_mut() {
            state.suppressed = suppressed_violations(&state.shown, |r, v| suppressions.suppresses(at, name, r, v));
        }
        Published {
            projects,
            last_success: if outcome.discovery_error.is_none() { Some(now) } else { self.last_success },
            discovery_error: outcome.discovery_error,
            last_duration: Some(outcome.duration.as_secs_f64()),
            generated_at: Some(now),
            suppressions: suppression_states(suppressions, at),
            metrics: self.metrics.clone(),
        }
    }

    /// These projects' verdicts replaced (an event's re-audit), everything else as the last
    /// cycle left it. Pure: `now` is passed in.
    pub fn with_projects(&self, verdicts: Vec<ProjectVerdict>, now: f64, suppressions: &Suppressions) -> Published {
        let at = instant(now);
        let mut next = self.clone();
        for verdict in verdicts {
            let name = verdict.project.clone();
            let mut state = ProjectState::after(self.projects.get(&name), verdict, now);
            state.suppressed = suppressed_violations(&state.shown, |r, v| suppressions.suppresses(at, &name, r, v));
            next.projects.insert(name, state);
        }
        next.suppressions = suppression_states(suppressions, at);
        next
    }

    pub fn complete(&self) -> bool {
        self.generated_at.is_some() && self.discovery_error.is_none() && self.projects.values().all(|p| p.complete)
    }
}

impl ProjectState {
    /// The state after a new verdict: a complete one replaces what was shown; an incomplete
    /// one keeps the last complete verdict in place, marked down.
    fn after(previous: Option<&ProjectState>, verdict: ProjectVerdict, now: f64) -> ProjectState {
        let validated = verdict.complete && verdict.validation.as_ref().is_some_and(|v| v.complete);
        let last_validation = match (validated, &verdict.validation) {
            (true, _) => Some(now),
            (false, Some(_)) => previous.and_then(|p| p.last_validation),
            (false, None) => None,
        };
        if verdict.complete {
            return ProjectState {
                complete: true,
                error: None,
                last_success: Some(now),
                last_validation,
                shown: Arc::new(verdict),
                suppressed: BTreeMap::new(),
            };
        }
        let last_good = previous.filter(|p| p.last_success.is_some());
        ProjectState {
            complete: false,
            error: verdict.error.clone(),
            last_success: last_good.and_then(|p| p.last_success),
            last_validation,
            shown: last_good.map_or_else(|| Arc::new(verdict), |p| Arc::clone(&p.shown)),
            suppressed: BTreeMap::new(),
        }
    }
}

fn instant(now: f64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis((now * 1000.0) as i64).unwrap_or_default()
}

fn suppression_states(suppressions: &Suppressions, at: DateTime<chrono::Utc>) -> Vec<SuppressionState> {
    suppressions.0.iter().map(|s| SuppressionState { suppression: s.clone(), active: !s.is_expired(at) }).collect()
}

fn suppressed_violations(
    verdict: &ProjectVerdict,
    suppresses: impl Fn(&ResourceVerdict, Violation) -> bool,
) -> BTreeMap<usize, Vec<Violation>> {
    verdict
        .resources
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let covered: Vec<Violation> = r.violations.iter().copied().filter(|v| suppresses(r, *v)).collect();
            (!covered.is_empty()).then_some((i, covered))
        })
        .collect()
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
        assert!(!a.complete);
        assert_eq!(a.shown.resources.len(), 3, "last-known resources are kept");
        assert_eq!(a.last_success, Some(100.0));
        assert_eq!(a.error.as_deref(), Some("boom"));
        let b = &second.projects["b"];
        assert!(b.complete);
        assert_eq!(b.shown.resources.len(), 2, "healthy projects move on");
        assert!(!second.complete());
    }

    #[test]
    fn a_project_that_never_succeeded_shows_its_partial_verdict() {
        let p = Published::default().merge(outcome(vec![verdict("a", false, 1)], None), 100.0, &none());
        assert!(!p.projects["a"].complete);
        assert_eq!(p.projects["a"].last_success, None);
        assert_eq!(p.projects["a"].shown.resources.len(), 1);
    }

    #[test]
    fn projects_missed_by_a_failed_discovery_stay_published_but_down() {
        let first = Published::default().merge(outcome(vec![verdict("a", true, 1)], None), 100.0, &none());
        let second = first.merge(outcome(vec![], Some("search failed")), 200.0, &none());
        assert!(!second.projects["a"].complete);
        assert_eq!(second.last_success, Some(100.0));
        let third = second.merge(outcome(vec![], None), 300.0, &none());
        assert!(third.projects.is_empty(), "a project gone from a successful discovery is dropped");
    }

    #[test]
    fn an_event_replaces_its_projects_and_leaves_the_cycle_alone() {
        let cycle = Published::default().merge(
            outcome(vec![verdict("a", true, 3), verdict("b", true, 1)], None),
            100.0,
            &none(),
        );
        let after_event = cycle.with_projects(vec![verdict("a", true, 1)], 150.0, &none());
        assert_eq!(after_event.projects["a"].shown.resources.len(), 1);
        assert_eq!(after_event.projects["a"].last_success, Some(150.0));
        assert!(Arc::ptr_eq(&after_event.projects["b"].shown, &cycle.projects["b"].shown), "b untouched");
        assert_eq!(after_event.generated_at, Some(100.0), "the cycle's own time stays");
        let failed = after_event.with_projects(vec![verdict("a", false, 0)], 160.0, &none());
        assert!(!failed.projects["a"].complete);
        assert_eq!(failed.projects["a"].shown.resources.len(), 1, "last-known verdict kept");
    }
}
