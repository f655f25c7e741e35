//! Direct push to Alertmanager (`POST /api/v2/alerts`), for teams without rule management
//! and for alerts that must not wait for Prometheus. Alert names, labels and severities are
//! the rules' (`config/prometheus/alerts.yml`; a test holds them together), and every replica
//! sends identical label sets (nothing replica-specific), so Alertmanager keeps one alert per
//! violation however many auditors, and rule evaluations, report it.
//!
//! `catalog` says which alerts the published results call for, `plan` dates them and
//! remembers what was sent, `push` sends; [`Alerts`] runs them after every cycle and every
//! `resend_interval` in between (Alertmanager forgets alerts when it restarts, and expects
//! active ones again every 30 s to 3 min).

mod catalog;
mod plan;
mod push;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use catalog::{RUNBOOK, violation_alert, violation_severity};
pub use plan::{Alert, PushState};
pub use push::{Pusher, notifications_counter};

use crate::state::Published;

/// The labels pushed alerts set themselves (besides the `label_*` of `[metrics]
/// resource_labels`): `extra_labels` may not name them.
pub const OWN_LABELS: [&str; 8] =
    ["alertname", "severity", "project", "location", "kind", "name", "reason", "repository"];

/// Pushes as the daemon makes them, with what was sent before.
pub struct Alerts {
    pusher: Arc<Pusher>,
    state: PushState,
    next_resend: tokio::time::Instant,
}

impl Alerts {
    pub fn new(pusher: Arc<Pusher>) -> Alerts {
        let next_resend = tokio::time::Instant::now() + pusher.config.resend_interval;
        Alerts { pusher, state: PushState::default(), next_resend }
    }

    /// A reload may bring another Alertmanager configuration; what was firing stays firing.
    pub fn reconfigure(&mut self, pusher: Arc<Pusher>) {
        self.next_resend = self.next_resend.min(tokio::time::Instant::now() + pusher.config.resend_interval);
        self.pusher = pusher;
    }

    /// Sends every alert `published` calls for at `now` (and what just resolved). `cycle` is
    /// the schedule's period: an alert holds for three of them (and at least four resends),
    /// then lapses on its own if the auditor stopped sending. `auditor` is this auditor's
    /// external URL.
    pub fn push(&mut self, published: &Published, now: DateTime<Utc>, cycle: Duration, auditor: &str) {
        let config = &self.pusher.config;
        let settings = plan::Settings {
            hold: (cycle * 3).max(config.resend_interval * 4),
            generator_url: &format!("{auditor}/report"),
            extra_labels: &config.extra_labels,
        };
        let wanted = catalog::wanted(published, now, auditor);
        let (alerts, next) = plan::plan(wanted, &self.state, now, &settings);
        self.state = next;
        self.next_resend = tokio::time::Instant::now() + config.resend_interval;
        self.pusher.push(alerts);
    }

    /// Resolves when the next resend is due (pushes move it).
    pub async fn resend_due(&self) {
        tokio::time::sleep_until(self.next_resend).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::catalog::{Wanted, wanted};
    use super::plan::{Settings, plan};
    use super::*;
    use crate::audit::AuditOutcome;
    use crate::evaluate::{AllowlistEntry, AllowlistStatus, Compliance, Finding, ProjectVerdict, Violation};
    use crate::fixtures::verdict_with_violation;
    use crate::suppress::{Suppression, Suppressions, parse_expiry};

    fn published_with(projects: Vec<ProjectVerdict>, suppressions: &Suppressions) -> Published {
        let outcome = AuditOutcome { projects, discovery_error: None, duration: Duration::ZERO };
        Published::default().merge(outcome, 1_800_000_000.0, suppressions)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    /// A project with every kind of trouble: each violation, an unknown workload, each
    /// finding, a missing allowlist entry, and an incomplete audit.
    fn everything() -> ProjectVerdict {
        let mut verdict = verdict_with_violation("p", true);
        let bad = verdict.resources.iter().find(|r| r.name == "bad").unwrap().clone();
        verdict.resources = Violation::ALL
            .iter()
            .map(|v| crate::evaluate::ResourceVerdict { name: v.as_str().into(), violations: vec![*v], ..bad.clone() })
            .collect();
        verdict.resources.push(crate::evaluate::ResourceVerdict {
            name: "mystery".into(),
            compliance: Compliance::Unknown,
            violations: vec![],
            unknown_reason: Some("policy unreadable".into()),
            ..bad
        });
        verdict.findings = Finding::ALL.to_vec();
        verdict.allowlist = vec![AllowlistEntry {
            location: "us-central1".into(),
            repository: "us-central1-docker.pkg.dev/p/gcf-artifacts".into(),
            present: false,
            status: AllowlistStatus::Missing,
        }];
        verdict.complete = false;
        verdict.error = Some("boom".into());
        verdict
    }

    /// The `by (...)` labels of each alert rule, and its severity, from alerts.yml.
    fn rules() -> BTreeMap<String, (Option<BTreeSet<String>>, String)> {
        let text = std::fs::read_to_string("config/prometheus/alerts.yml").unwrap();
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let mut rules = BTreeMap::new();
        for group in yaml["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let Some(name) = rule["alert"].as_str() else { continue };
                let expr = rule["expr"].as_str().unwrap();
                // The outermost aggregation's `by`: what the alert is labelled with.
                let by = expr.trim_start().starts_with("max by (").then(|| {
                    let inner = &expr[expr.find('(').unwrap() + 1..expr.find(')').unwrap()];
                    inner.split(',').map(|l| l.trim().to_owned()).collect()
                });
                let severity = rule["labels"]["severity"].as_str().unwrap().to_owned();
                rules.insert(name.to_owned(), (by, severity));
            }
        }
        rules
    }

    #[test]
    fn pushed_alerts_have_the_rules_names_labels_and_severities() {
        let published = published_with(vec![everything()], &Suppressions::default());
        let stale = Published { last_success: Some(0.0), ..published.clone() };
        let never = Published { last_success: None, ..published.clone() };
        let mut all: Vec<Wanted> = wanted(&stale, at(1_800_000_000), "https://auditor.example.com");
        all.extend(wanted(&never, at(1_800_000_000), "https://auditor.example.com"));
        let rules = rules();
        let mut seen = BTreeSet::new();
        for w in &all {
            let name = &w.labels["alertname"];
            let (by, severity) = rules.get(name).unwrap_or_else(|| panic!("{name} is not a rule in alerts.yml"));
            assert_eq!(&w.labels["severity"], severity, "{name}");
            let own: BTreeSet<String> =
                w.labels.keys().filter(|k| !["alertname", "severity"].contains(&k.as_str())).cloned().collect();
            match by {
                Some(by) => assert_eq!(&own, by, "{name}: the push's labels are the rule's `by`"),
                // BinauthzAuditStale/NeverSucceeded keep the scrape's target labels, which a
                // push cannot know: it sends none (and every replica the same alert).
                None => assert!(own.is_empty(), "{name}: {own:?}"),
            }
            assert!(w.annotations["runbook_url"].ends_with(&format!("#{}", name.to_lowercase())));
            seen.insert(name.clone());
        }
        let expected: BTreeSet<String> = rules
            .keys()
            .filter(|n| {
                ![
                    "BinauthzExporterDown",
                    "BinauthzExporterAbsent",
                    "BinauthzApiErrors",
                    "BinauthzAuditOverrunning",
                    "BinauthzEventsMissing",
                    "BinauthzWorkloadViolation",
                ]
                .contains(&n.as_str())
            })
            .cloned()
            .collect();
        assert_eq!(seen, expected, "every rule alert a push can know of is pushed");
    }

    #[test]
    fn reading_failures_wait_like_the_rules_and_facts_fire_at_once() {
        let published = published_with(vec![everything()], &Suppressions::default());
        let waits: BTreeMap<String, Duration> = wanted(&published, at(1_800_000_000), "x")
            .into_iter()
            .map(|w| (w.labels["alertname"].clone(), w.wait))
            .collect();
        assert_eq!(waits["BinauthzWorkloadComplianceUnknown"], Duration::from_secs(3600));
        assert_eq!(waits["BinauthzProjectAuditFailing"], Duration::from_secs(1800));
        assert_eq!(waits["BinauthzWorkloadBreakglass"], Duration::ZERO);
        assert_eq!(waits["BinauthzPolicyAlwaysAllow"], Duration::ZERO);
    }

    #[test]
    fn a_violation_alert_says_what_to_do_and_routes_to_its_owner() {
        let mut verdict = verdict_with_violation("p", true);
        for r in &mut verdict.resources {
            r.labels = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        }
        let mut published = published_with(vec![verdict], &Suppressions::default());
        published.metrics.resource_labels =
            vec![crate::config::ResourceLabel { key: "team".into(), name: "label_team".into() }];
        let extra = BTreeMap::from([("cluster".to_string(), "eu-1".to_string())]);
        let settings = Settings { hold: Duration::from_secs(60), generator_url: "u", extra_labels: &extra };
        let (sent, _) = plan(wanted(&published, at(1000), "x"), &PushState::default(), at(1000), &settings);
        let alert = sent.iter().find(|a| a.labels["alertname"] == "BinauthzWorkloadBinauthzDisabled").unwrap();
        assert_eq!(alert.labels["name"], "bad");
        assert_eq!(alert.labels["label_team"], "payments");
        assert_eq!(alert.labels["cluster"], "eu-1");
        assert!(alert.annotations["remediation"].starts_with("gcloud run services update bad"));
        assert_eq!(alert.annotations["last_modifier"], "dev@example.com");
    }

    #[test]
    fn suppressed_violations_raise_no_alert() {
        let suppressions = Suppressions(vec![Suppression {
            project: "p".into(),
            location: "*".into(),
            kind: None,
            name: "bad".into(),
            violation: None,
            reason: "accepted until the migration".into(),
            expires: parse_expiry("2099-01-01").unwrap(),
        }]);
        let published = published_with(vec![verdict_with_violation("p", true)], &suppressions);
        let names: Vec<String> =
            wanted(&published, at(1000), "x").into_iter().map(|w| w.labels["alertname"].clone()).collect();
        assert!(!names.iter().any(|n| n.starts_with("BinauthzWorkload")), "{names:?}");
    }
}
