//! Binary Authorization API v1: the project policy.

use serde::{Deserialize, Serialize};

use super::containeranalysis_v1::AttestationOccurrence;
use crate::inventory::Policy;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdmissionWhitelistPattern {
    pub name_pattern: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdmissionRule {
    pub evaluation_mode: Option<String>,
    pub enforcement_mode: Option<String>,
    /// `projects/P/attestors/A`: every one must have attested an image (REQUIRE_ATTESTATION).
    pub require_attestations_by: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PkixPublicKey {
    pub public_key_pem: String,
    pub signature_algorithm: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AttestorPublicKey {
    /// What a signature's `publicKeyId` must equal exactly.
    pub id: String,
    pub pkix_public_key: Option<PkixPublicKey>,
    pub ascii_armored_pgp_public_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserOwnedGrafeasNote {
    /// `projects/P/notes/N`: attestations are occurrences of this note.
    pub note_reference: String,
    /// Empty: the attestor never finds a valid attestation.
    pub public_keys: Vec<AttestorPublicKey>,
}

/// `GET /v1/projects/P/attestors/A`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Attestor {
    pub name: String,
    pub etag: String,
    pub user_owned_grafeas_note: Option<UserOwnedGrafeasNote>,
}

/// `POST .../attestors/A:validateAttestationOccurrence`: the attestation as it is stored, and
/// the note and image it is stored for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateAttestationOccurrenceRequest<'a> {
    pub attestation: &'a AttestationOccurrence,
    pub occurrence_note: &'a str,
    pub occurrence_resource_uri: &'a str,
}

/// `POST .../attestors/A:validateAttestationOccurrence`: Google's own verdict on an
/// attestation, for keys the auditor does not verify itself (PGP, P-521, ML-DSA).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ValidateAttestationOccurrenceResponse {
    /// `VERIFIED` or `ATTESTATION_NOT_VERIFIABLE`.
    pub result: String,
    pub denial_reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyResource {
    pub admission_whitelist_patterns: Vec<AdmissionWhitelistPattern>,
    pub default_admission_rule: Option<AdmissionRule>,
    pub global_policy_evaluation_mode: Option<String>,
}

impl From<PolicyResource> for Policy {
    fn from(p: PolicyResource) -> Self {
        let rule = p.default_admission_rule.unwrap_or_default();
        Policy {
            admission_whitelist_patterns: p
                .admission_whitelist_patterns
                .into_iter()
                .map(|a| a.name_pattern)
                .filter(|n| !n.is_empty())
                .collect(),
            // A project that never configured a policy is served one that allows everything.
            evaluation_mode: rule.evaluation_mode.unwrap_or_else(|| "ALWAYS_ALLOW".into()),
            enforcement_mode: rule.enforcement_mode.unwrap_or_else(|| "ENFORCEMENT_MODE_UNSPECIFIED".into()),
            // UNSPECIFIED means DISABLE (Google's documented default).
            global_policy_evaluation_mode: p
                .global_policy_evaluation_mode
                .unwrap_or_else(|| "GLOBAL_POLICY_EVALUATION_MODE_UNSPECIFIED".into()),
            require_attestations_by: rule.require_attestations_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_keeps_its_patterns_and_modes() {
        let p: PolicyResource = serde_json::from_str(
            r#"{"name":"projects/p/policy","admissionWhitelistPatterns":[{"namePattern":"us-docker.pkg.dev/p/gcf-artifacts/**"}],
                "defaultAdmissionRule":{"evaluationMode":"REQUIRE_ATTESTATION","enforcementMode":"ENFORCED_BLOCK_AND_AUDIT_LOG",
                "requireAttestationsBy":["projects/p/attestors/built-by-ci"]},"globalPolicyEvaluationMode":"ENABLE"}"#,
        )
        .unwrap();
        let p = Policy::from(p);
        assert_eq!(p.admission_whitelist_patterns, vec!["us-docker.pkg.dev/p/gcf-artifacts/**"]);
        assert_eq!(p.evaluation_mode, "REQUIRE_ATTESTATION");
        assert_eq!(p.global_policy_evaluation_mode, "ENABLE");
    }

    #[test]
    fn an_empty_policy_allows_everything() {
        let p = Policy::from(serde_json::from_str::<PolicyResource>("{}").unwrap());
        assert_eq!(p.evaluation_mode, "ALWAYS_ALLOW");
    }
}
