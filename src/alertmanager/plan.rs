//! Pure: from the alerts the results call for to what is sent now, and what to remember.
//!
//! - An alert with a `wait` (the rule's `for`) fires once its condition has held that long
//!   across pushes; the others fire at once.
//! - A firing alert is sent at every push (after each cycle and every `resend_interval`)
//!   with `endsAt = now + hold`, so it lapses on its own if the auditor stops sending, and
//!   never before the next pushes are due.
//! - One that stops being called for is sent resolved (`endsAt = now`) at the next few
//!   pushes, in case one is lost.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::catalog::Wanted;

/// A closed alert is sent resolved at this many pushes.
pub const RESOLVED_REPEATS: u32 = 3;

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

/// What was sent before: firing alerts, resolved ones still being repeated, and since when
/// the conditions of those still waiting out their `for` have held.
#[derive(Debug, Clone, Default)]
pub struct PushState {
    firing: BTreeMap<String, Alert>,
    resolving: BTreeMap<String, (Alert, u32)>,
    pending: BTreeMap<String, DateTime<Utc>>,
}

impl PushState {
    pub fn firing(&self) -> usize {
        self.firing.len()
    }
}

/// What every pushed alert shares.
pub struct Settings<'a> {
    /// How long a sent alert holds without being sent again.
    pub hold: Duration,
    pub generator_url: &'a str,
    /// `[alertmanager] extra_labels`, added to every alert (they never replace its own).
    pub extra_labels: &'a BTreeMap<String, String>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The identity of an alert: its label set, as Alertmanager's fingerprint is.
fn key(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}\u{1f}{v}")).collect::<Vec<_>>().join("\u{1e}")
}

pub fn plan(wanted: Vec<Wanted>, previous: &PushState, now: DateTime<Utc>, s: &Settings) -> (Vec<Alert>, PushState) {
    let ends = time(now + chrono::Duration::from_std(s.hold).unwrap_or_default());
    let mut firing = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for w in wanted {
        let mut labels = w.labels;
        for (k, v) in s.extra_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let key = key(&labels);
        let before = previous.firing.get(&key);
        if before.is_none() && !w.wait.is_zero() {
            let since = previous.pending.get(&key).copied().unwrap_or(now);
            if (now - since).to_std().unwrap_or_default() < w.wait {
                pending.insert(key, since);
                continue;
            }
        }
        let starts_at = before.map_or_else(|| time(now), |a| a.starts_at.clone());
        let alert = Alert {
            labels,
            annotations: w.annotations,
            starts_at,
            ends_at: ends.clone(),
            generator_url: s.generator_url.to_owned(),
        };
        firing.insert(key, alert);
    }

    let mut resolving = BTreeMap::new();
    let closed_now =
        previous.firing.iter().filter(|(k, _)| !firing.contains_key(*k)).map(|(k, a)| (k, a, RESOLVED_REPEATS));
    let still_closing = previous
        .resolving
        .iter()
        .filter(|(k, (_, left))| *left > 1 && !firing.contains_key(*k))
        .map(|(k, (a, left))| (k, a, left - 1));
    for (key, alert, left) in closed_now.chain(still_closing) {
        resolving.insert(key.clone(), (Alert { ends_at: time(now), ..alert.clone() }, left));
    }

    let to_send = firing.values().cloned().chain(resolving.values().map(|(a, _)| a.clone())).collect();
    (to_send, PushState { firing, resolving, pending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn wanted(name: &str, wait: u64) -> Wanted {
        Wanted {
            labels: BTreeMap::from([("alertname".to_string(), name.to_string())]),
            annotations: BTreeMap::new(),
            wait: Duration::from_secs(wait),
        }
    }

    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

    fn settings(extra: &BTreeMap<String, String>) -> Settings<'_> {
        Settings {
            hold: Duration::from_secs(2700),
            generator_url: "https://auditor.example.com/report",
            extra_labels: extra,
        }
    }

    #[test]
    fn an_alert_with_a_wait_fires_once_its_condition_held_that_long() {
        let s = settings(&NO_LABELS);
        let (sent, state) = plan(vec![wanted("Unknown", 3600)], &PushState::default(), at(0), &s);
        assert!(sent.is_empty(), "pending");
        let (sent, state) = plan(vec![wanted("Unknown", 3600)], &state, at(3599), &s);
        assert!(sent.is_empty(), "still pending");
        let (sent, state) = plan(vec![wanted("Unknown", 3600)], &state, at(3600), &s);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at, "1970-01-01T01:00:00.000Z", "fires when the wait is over");
        // A condition that goes away while pending never fires, and starts over.
        let (_, gone) = plan(vec![], &PushState::default(), at(0), &s);
        let (sent, _) = plan(vec![wanted("Unknown", 3600)], &gone, at(7200), &s);
        assert!(sent.is_empty());
        // Firing holds without waiting again.
        let (sent, _) = plan(vec![wanted("Unknown", 3600)], &state, at(3660), &s);
        assert_eq!(sent[0].starts_at, "1970-01-01T01:00:00.000Z");
    }

    #[test]
    fn every_push_resends_what_fires_held_ahead_and_repeats_what_resolved() {
        let s = settings(&NO_LABELS);
        let (sent, state) = plan(vec![wanted("A", 0)], &PushState::default(), at(1000), &s);
        assert_eq!(sent[0].ends_at, "1970-01-01T01:01:40.000Z", "now + hold");
        assert_eq!(sent[0].generator_url, "https://auditor.example.com/report");
        let (sent, state) = plan(vec![wanted("A", 0)], &state, at(1060), &s);
        assert_eq!(
            (sent[0].starts_at.as_str(), sent[0].ends_at.as_str()),
            ("1970-01-01T00:16:40.000Z", "1970-01-01T01:02:40.000Z")
        );
        let mut state = state;
        for push in 0..RESOLVED_REPEATS {
            let (sent, next) = plan(vec![], &state, at(2000 + i64::from(push)), &s);
            assert_eq!(sent.len(), 1, "push {push}");
            assert_eq!(sent[0].ends_at, time(at(2000 + i64::from(push))), "resolved");
            state = next;
        }
        assert!(
            plan(vec![], &state, at(3000), &s).0.is_empty(),
            "resolved alerts stop after {RESOLVED_REPEATS} pushes"
        );
    }

    #[test]
    fn extra_labels_are_added_and_never_replace_an_alerts_own() {
        let extra = BTreeMap::from([("cluster".to_string(), "eu-1".to_string()), ("alertname".into(), "X".into())]);
        let (sent, _) = plan(vec![wanted("A", 0)], &PushState::default(), at(0), &settings(&extra));
        assert_eq!(sent[0].labels["cluster"], "eu-1");
        assert_eq!(sent[0].labels["alertname"], "A");
    }
}
