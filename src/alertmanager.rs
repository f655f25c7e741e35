//! Direct push of open violations to Alertmanager (`POST /api/v2/alerts`), for teams without
//! rule management. Alert names, labels and severities match `config/prometheus/alerts.yml`,
//! so the two paths deduplicate in Alertmanager.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus::IntCounterVec;
use serde::Serialize;

use crate::config::Alertmanager as AlertmanagerConfig;
use crate::error::error_chain;
use crate::evaluate::Violation;
use crate::state::Published;

pub const RUNBOOK: &str = "https://github.com/binauthz-auditor/binauthz-auditor/blob/main/docs/runbook.md";
/// A violation that disappears is sent as resolved this many cycles, in case a push was lost.
const RESOLVED_REPEATS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// What was sent before: open alerts, and resolved ones still being repeated.
#[derive(Debug, Clone, Default)]
pub struct PushState {
    open: BTreeMap<String, Alert>,
    resolving: BTreeMap<String, (Alert, u32)>,
}

pub fn alert_name(v: Violation) -> &'static str {
    match v {
        Violation::Breakglass => "BinauthzWorkloadBreakglass",
        Violation::BinauthzDisabled => "BinauthzWorkloadBinauthzDisabled",
        Violation::NonDefaultPolicy => "BinauthzWorkloadNonDefaultPolicy",
        Violation::AllowlistMissing => "BinauthzWorkloadAllowlistMissing",
        Violation::Gen1Function => "BinauthzWorkloadGen1Function",
        Violation::ExemptImage => "BinauthzWorkloadExemptImage",
    }
}

pub fn severity(v: Violation) -> &'static str {
    match v {
        Violation::Breakglass | Violation::BinauthzDisabled => "critical",
        _ => "warning",
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Pure: the alerts to send now and the state to remember. Open violations are sent with
/// `endsAt = now + hold` (so they lapse on their own if the auditor dies); ones that closed
/// are sent with `endsAt = now` for a few cycles.
pub fn plan(
    published: &Published,
    previous: &PushState,
    now: DateTime<Utc>,
    hold: Duration,
    generator_url: &str,
) -> (Vec<Alert>, PushState) {
    let ends = time(now + chrono::Duration::from_std(hold).unwrap_or_default());
    let mut open = BTreeMap::new();
    for (project, state) in &published.projects {
        for (r, suppressed) in state.resources() {
            for v in r.violations.iter().copied().filter(|v| !suppressed.contains(v)) {
                let labels = BTreeMap::from([
                    ("alertname".to_string(), alert_name(v).to_string()),
                    ("project".into(), project.clone()),
                    ("location".into(), r.location.clone()),
                    ("kind".into(), r.kind.as_str().into()),
                    ("name".into(), r.name.clone()),
                    ("reason".into(), v.as_str().into()),
                    ("severity".into(), severity(v).into()),
                ]);
                let key = labels.values().cloned().collect::<Vec<_>>().join("\u{1f}");
                let starts_at = previous.open.get(&key).map_or_else(|| time(now), |a| a.starts_at.clone());
                let mut annotations = BTreeMap::from([
                    ("summary".to_string(), format!("{} {project}/{}/{}: {}", r.kind, r.location, r.name, v)),
                    (
                        "description".into(),
                        format!(
                            "The {} {} in project {project} (location {}) is not protected by Binary Authorization: {}.",
                            r.kind, r.name, r.location, v
                        ),
                    ),
                    ("runbook_url".into(), format!("{RUNBOOK}#{}", alert_name(v).to_lowercase())),
                ]);
                if let Some(fix) = &r.remediation {
                    annotations.insert("remediation".into(), fix.clone());
                }
                if let Some(note) = &r.remediation_note {
                    annotations.insert("remediation_note".into(), note.clone());
                }
                if let Some(who) = &r.last_modifier {
                    annotations.insert("last_modifier".into(), who.clone());
                }
                let alert = Alert {
                    labels,
                    annotations,
                    starts_at,
                    ends_at: ends.clone(),
                    generator_url: generator_url.to_owned(),
                };
                open.insert(key, alert);
            }
        }
    }

    let mut resolving = BTreeMap::new();
    let closed_now =
        previous.open.iter().filter(|(k, _)| !open.contains_key(*k)).map(|(k, a)| (k, a, RESOLVED_REPEATS));
    let still_closing = previous
        .resolving
        .iter()
        .filter(|(k, (_, left))| *left > 1 && !open.contains_key(*k))
        .map(|(k, (a, left))| (k, a, left - 1));
    for (key, alert, left) in closed_now.chain(still_closing) {
        let resolved = Alert { ends_at: time(now), ..alert.clone() };
        resolving.insert(key.clone(), (resolved, left));
    }

    let to_send = open.values().cloned().chain(resolving.values().map(|(a, _)| a.clone())).collect();
    (to_send, PushState { open, resolving })
}

/// Direct pushes as the daemon makes them: after each published cycle, everything open (and
/// what just closed) goes to every Alertmanager, each alert held for `hold` (three missed
/// cycles: they then lapse on their own).
pub struct Alerts {
    pusher: Arc<Pusher>,
    state: PushState,
}

impl Alerts {
    pub fn new(pusher: Arc<Pusher>) -> Alerts {
        Alerts { pusher, state: PushState::default() }
    }

    /// A reload may bring another Alertmanager configuration; what was open stays open.
    pub fn reconfigure(&mut self, pusher: Arc<Pusher>) {
        self.pusher = pusher;
    }

    pub fn after_cycle(&mut self, published: &Published, now: DateTime<Utc>, hold: Duration, generator_url: &str) {
        let (alerts, next) = plan(published, &self.state, now, hold, generator_url);
        self.state = next;
        self.pusher.push(alerts);
    }
}

/// `binauthz_alertmanager_notifications_total{alertmanager, result}`.
pub fn notifications_counter() -> IntCounterVec {
    IntCounterVec::new(
        prometheus::Opts::new(
            "binauthz_alertmanager_notifications_total",
            "Alert pushes to each Alertmanager, by result (success or failure).",
        ),
        &["alertmanager", "result"],
    )
    .expect("a valid metric")
}

/// Sends to every configured Alertmanager in the background: a dead one is logged and
/// counted, and never delays an audit cycle.
pub struct Pusher {
    http: reqwest::Client,
    config: AlertmanagerConfig,
    notifications: IntCounterVec,
}

impl Pusher {
    pub fn new(config: AlertmanagerConfig, notifications: IntCounterVec) -> Result<Pusher, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the Alertmanager client: {e}"))?;
        Ok(Pusher { http, config, notifications })
    }

    pub fn push(self: &Arc<Self>, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let body = Arc::new(alerts);
        for url in &self.config.urls {
            let (pusher, body, url) = (Arc::clone(self), Arc::clone(&body), url.clone());
            tokio::spawn(async move {
                let result = pusher.send(&url, &body).await;
                let label = if result.is_ok() { "success" } else { "failure" };
                pusher.notifications.with_label_values(&[&url, label]).inc();
                match result {
                    Ok(()) => tracing::debug!(alertmanager = %url, alerts = body.len(), "alerts pushed"),
                    Err(e) => tracing::warn!(alertmanager = %url, error = %e, "alert push failed"),
                }
            });
        }
    }

    async fn send(&self, base: &str, alerts: &[Alert]) -> Result<(), String> {
        let mut request = self.http.post(format!("{base}/api/v2/alerts")).json(alerts);
        if let Some(file) = &self.config.bearer_token_file {
            let token =
                std::fs::read_to_string(file).map_err(|e| format!("bearer_token_file {}: {e}", file.display()))?;
            request = request.bearer_auth(token.trim());
        } else if let Some((user, file)) = &self.config.basic_auth {
            // `else`: one Authorization header at most (the config refuses both as well).
            let password = std::fs::read_to_string(file)
                .map_err(|e| format!("basic_auth_password_file {}: {e}", file.display()))?;
            request = request.basic_auth(user, Some(password.trim()));
        }
        let response = request.send().await.map_err(|e| error_chain(&e.without_url()))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditOutcome;
    use crate::fixtures::verdict_with_violation;
    use crate::suppress::{Suppression, Suppressions, parse_expiry};

    fn published(violating: bool, suppressions: &Suppressions) -> Published {
        let outcome = AuditOutcome {
            projects: vec![verdict_with_violation("p", violating)],
            discovery_error: None,
            duration: Duration::ZERO,
        };
        Published::default().merge(outcome, 1_800_000_000.0, suppressions)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn open_violations_fire_and_closed_ones_resolve_for_three_cycles() {
        let hold = Duration::from_secs(2700);
        let none = Suppressions::default();
        let (sent, state) = plan(&published(true, &none), &PushState::default(), at(1000), hold, "http://a/report");
        assert_eq!(sent.len(), 1);
        let alert = &sent[0];
        assert_eq!(alert.labels["alertname"], "BinauthzWorkloadBinauthzDisabled");
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.labels["name"], "bad");
        assert_eq!(alert.ends_at, "1970-01-01T01:01:40.000Z");
        assert!(alert.annotations["remediation"].starts_with("gcloud run services update bad"));
        assert!(alert.annotations["runbook_url"].ends_with("#binauthzworkloadbinauthzdisabled"));

        let (again, state) = plan(&published(true, &none), &state, at(2000), hold, "x");
        assert_eq!(again[0].starts_at, alert.starts_at, "startsAt is kept while the violation lasts");

        let mut state = state;
        for cycle in 0..RESOLVED_REPEATS {
            let (sent, next) = plan(&published(false, &none), &state, at(3000 + i64::from(cycle)), hold, "x");
            assert_eq!(sent.len(), 1, "cycle {cycle}");
            assert_eq!(sent[0].ends_at, time(at(3000 + i64::from(cycle))), "resolved");
            state = next;
        }
        let (sent, _) = plan(&published(false, &none), &state, at(4000), hold, "x");
        assert!(sent.is_empty(), "resolved alerts stop after {RESOLVED_REPEATS} cycles");
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
        let (sent, _) = plan(&published(true, &suppressions), &PushState::default(), at(1000), Duration::ZERO, "x");
        assert!(sent.is_empty());
    }
}
