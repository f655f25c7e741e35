//! `binauthz-auditor allowlist`: the policy filter printed fixes use. It reads a policy as
//! `gcloud container binauthz policy export` prints it (YAML, or JSON with `--format=json`) on
//! standard input, adds or removes `admissionWhitelistPatterns`, and writes the policy back as
//! JSON for `gcloud container binauthz policy import`. Everything else in the policy, its
//! `etag` included (so that the import fails rather than overwrite a concurrent change), is
//! kept as it was.
//!
//! JSON, not YAML, on the way out: gcloud reads the file with a YAML 1.1 loader, which turns
//! an unquoted `updateTime: 2026-10-01T00:00:00Z` into a datetime and then crashes
//! serialising it (seen with gcloud 528); JSON quotes every string.

use serde_yaml_ng::{Mapping, Value};

const PATTERNS: &str = "admissionWhitelistPatterns";
const NAME_PATTERN: &str = "namePattern";

pub fn edit(input: &str, add: &[String], remove: &[String]) -> Result<String, String> {
    for pattern in add.iter().chain(remove) {
        if pattern.is_empty() || pattern.chars().any(char::is_whitespace) {
            return Err(format!("{pattern:?} is not an image name pattern"));
        }
    }
    if input.trim().is_empty() {
        return Err("no policy on standard input (did `gcloud container binauthz policy export` fail?)".into());
    }
    let mut policy: Value =
        serde_yaml_ng::from_str(input).map_err(|e| format!("standard input is not a policy: {}", one_line(&e)))?;
    let Some(map) = policy.as_mapping_mut() else {
        return Err("standard input is not a policy: expected a mapping of policy fields".into());
    };
    if !["defaultAdmissionRule", "globalPolicyEvaluationMode", "name"].iter().any(|k| map.contains_key(*k)) {
        return Err("standard input is not a Binary Authorization policy (no name or defaultAdmissionRule)".into());
    }
    let entries = map.entry(Value::from(PATTERNS)).or_insert_with(|| Value::Sequence(Vec::new()));
    let Some(entries) = entries.as_sequence_mut() else {
        return Err(format!("{PATTERNS} is not a list"));
    };
    let name_of = |entry: &Value| entry.get(NAME_PATTERN).and_then(Value::as_str).map(str::to_owned);
    entries.retain(|entry| !name_of(entry).is_some_and(|n| remove.contains(&n)));
    for pattern in add {
        if !entries.iter().any(|e| name_of(e).as_deref() == Some(pattern)) {
            let mut entry = Mapping::new();
            entry.insert(Value::from(NAME_PATTERN), Value::from(pattern.as_str()));
            entries.push(Value::Mapping(entry));
        }
    }
    if entries.is_empty() {
        map.remove(PATTERNS);
    }
    let mut out = serde_json::to_string_pretty(&policy).map_err(|e| format!("cannot write the policy: {e}"))?;
    out.push('\n');
    Ok(out)
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTED: &str = "admissionWhitelistPatterns:\n- namePattern: gcr.io/google_containers/*\ndefaultAdmissionRule:\n  enforcementMode: ENFORCED_BLOCK_AND_AUDIT_LOG\n  evaluationMode: REQUIRE_ATTESTATION\netag: '\"abc\"'\nglobalPolicyEvaluationMode: ENABLE\nname: projects/p/policy\n";

    fn patterns(yaml: &str) -> Vec<String> {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap(); // JSON is YAML too
        v.get(PATTERNS)
            .and_then(Value::as_sequence)
            .map(|s| s.iter().map(|e| e[NAME_PATTERN].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn patterns_are_added_once_and_everything_else_is_kept() {
        let repo = "us-central1-docker.pkg.dev/p/gcf-artifacts/**".to_string();
        let once = edit(EXPORTED, std::slice::from_ref(&repo), &[]).unwrap();
        let twice = edit(&once, std::slice::from_ref(&repo), &[]).unwrap();
        assert_eq!(once, twice, "adding again changes nothing");
        assert_eq!(patterns(&once), vec!["gcr.io/google_containers/*".to_string(), repo]);
        let v: Value = serde_yaml_ng::from_str(&once).unwrap();
        assert_eq!(v["etag"].as_str(), Some("\"abc\""), "the etag is kept for the import's concurrency check");
        assert_eq!(v["defaultAdmissionRule"]["evaluationMode"].as_str(), Some("REQUIRE_ATTESTATION"));
        assert!(once.contains(r#""etag": "\"abc\"""#), "strings stay strings for gcloud's YAML 1.1 loader:\n{once}");
    }

    #[test]
    fn timestamps_stay_quoted_strings() {
        let exported = "name: projects/p/policy\nupdateTime: '2026-10-01T00:00:00.000000Z'\n";
        let out = edit(exported, &["a/b/c/**".into()], &[]).unwrap();
        assert!(out.contains(r#""updateTime": "2026-10-01T00:00:00.000000Z""#), "{out}");
    }

    #[test]
    fn the_default_policy_gains_its_first_pattern_and_json_input_is_read() {
        let default = "defaultAdmissionRule:\n  enforcementMode: ENFORCED_BLOCK_AND_AUDIT_LOG\n  evaluationMode: ALWAYS_ALLOW\nglobalPolicyEvaluationMode: ENABLE\nname: projects/PROJECT_ID/policy\n";
        assert_eq!(patterns(&edit(default, &["a/b/c/**".into()], &[]).unwrap()), vec!["a/b/c/**"]);
        let json = r#"{"name": "projects/p/policy", "admissionWhitelistPatterns": [{"namePattern": "x/**"}]}"#;
        assert_eq!(patterns(&edit(json, &[], &["x/**".into()]).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn a_failed_export_stops_the_fix() {
        assert!(
            edit("", &["a/**".into()], &[]).unwrap_err().contains("did `gcloud container binauthz policy export` fail")
        );
        assert!(edit("ERROR: (gcloud) denied\n", &["a/**".into()], &[]).is_err());
        assert!(edit("[1, 2]", &["a/**".into()], &[]).is_err());
        assert!(edit(EXPORTED, &["has space".into()], &[]).is_err());
    }
}
