//! Suppressions: accepted, time-boxed exceptions. A suppressed violation stays visible
//! (labelled `suppressed="true"`) but raises no alert and does not fail `audit`; once its
//! `expires` has passed it suppresses nothing and is reported as expired.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::evaluate::{ResourceVerdict, Violation, allowlist};
use crate::inventory::Kind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// Globs (`*` matches anything) over the workload's identity.
    #[serde(default = "any")]
    pub project: String,
    #[serde(default = "any")]
    pub location: String,
    /// One kind, or every kind (`"*"`, the default). Not a glob: a misspelt kind is a config
    /// error, not a suppression that silently matches nothing.
    #[serde(default, deserialize_with = "kind_or_any", serialize_with = "kind_or_star")]
    pub kind: Option<Kind>,
    #[serde(default = "any")]
    pub name: String,
    /// Only this violation; every violation of the matched workloads when absent.
    #[serde(default)]
    pub violation: Option<Violation>,
    /// Why this is accepted (required: an exception nobody can explain is not one).
    #[serde(deserialize_with = "non_empty")]
    pub reason: String,
    /// `YYYY-MM-DD` (valid through that day, UTC) or an RFC 3339 time.
    #[serde(deserialize_with = "expiry", serialize_with = "rfc3339")]
    pub expires: DateTime<Utc>,
}

fn any() -> String {
    "*".into()
}

fn kind_or_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Kind>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "*" {
        return Ok(None);
    }
    Kind::ALL.into_iter().find(|k| k.as_str() == s).map(Some).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        serde::de::Error::custom(format!("unknown kind {s:?}, expected \"*\" or one of {}", known.join(", ")))
    })
}

fn kind_or_star<S: serde::Serializer>(kind: &Option<Kind>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.map_or("*", Kind::as_str))
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        Err(serde::de::Error::custom("reason must say why the exception is accepted"))
    } else {
        Ok(s)
    }
}

fn expiry<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_expiry(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("invalid expires {s:?}: use a date (2026-12-31) or an RFC 3339 time"))
    })
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A date expires at the end of that day (UTC).
pub fn parse_expiry(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return date.succ_opt()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

impl Suppression {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires
    }

    fn matches(&self, project: &str, r: &ResourceVerdict, violation: Violation) -> bool {
        // Identities contain no `/`, so the allowlist glob is a plain wildcard match here.
        allowlist::matches(&self.project, project)
            && allowlist::matches(&self.location, &r.location)
            && self.kind.is_none_or(|k| k == r.kind)
            && allowlist::matches(&self.name, &r.name)
            && self.violation.is_none_or(|v| v == violation)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressions(pub Vec<Suppression>);

impl Suppressions {
    pub fn suppresses(&self, now: DateTime<Utc>, project: &str, r: &ResourceVerdict, violation: Violation) -> bool {
        self.0.iter().any(|s| !s.is_expired(now) && s.matches(project, r, violation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::Compliance;
    use crate::inventory::Kind;

    fn resource(name: &str) -> ResourceVerdict {
        ResourceVerdict {
            location: "us-central1".into(),
            kind: Kind::Service,
            name: name.into(),
            is_function: false,
            compliance: Compliance::NonCompliant,
            violations: vec![Violation::Breakglass, Violation::ExemptImage],
            unknown_reason: None,
            image: None,
            last_modifier: None,
            remediation: None,
            remediation_note: None,
            labels: Default::default(),
            data_updated_at: None,
            serving: None,
        }
    }

    fn suppression(name: &str, violation: Option<Violation>, expires: &str) -> Suppression {
        Suppression {
            project: "prod-*".into(),
            location: "*".into(),
            kind: Some(Kind::Service),
            name: name.into(),
            violation,
            reason: "INC-1".into(),
            expires: parse_expiry(expires).unwrap(),
        }
    }

    #[test]
    fn a_suppression_matches_by_glob_and_violation_until_it_expires() {
        let s = Suppressions(vec![suppression("ledger*", Some(Violation::Breakglass), "2026-12-31")]);
        let before = parse_expiry("2026-12-31T23:59:59Z").unwrap();
        let after = parse_expiry("2027-01-01T00:00:00Z").unwrap();
        assert!(s.suppresses(before, "prod-eu", &resource("ledger-api"), Violation::Breakglass));
        assert!(!s.suppresses(before, "prod-eu", &resource("ledger-api"), Violation::ExemptImage));
        assert!(!s.suppresses(before, "dev-eu", &resource("ledger-api"), Violation::Breakglass));
        assert!(!s.suppresses(before, "prod-eu", &resource("checkout"), Violation::Breakglass));
        assert!(!s.suppresses(after, "prod-eu", &resource("ledger-api"), Violation::Breakglass), "expired");
    }

    #[test]
    fn expiry_accepts_dates_and_times_only() {
        assert_eq!(parse_expiry("2026-12-31").unwrap().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(parse_expiry("2026-12-31T12:00:00+02:00").unwrap().to_rfc3339(), "2026-12-31T10:00:00+00:00");
        assert_eq!(parse_expiry("next week"), None);
        assert_eq!(parse_expiry("2026-02-30"), None);
    }
}
