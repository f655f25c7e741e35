//! Continuous validation: does an image that is serving carry valid attestations for the
//! project's policy today? Pure: an attestor's keys, the occurrences of its note and an image
//! in, a verdict out (signatures are checked here too, with ring; nothing is read).

pub mod payload;
pub mod pkix;
mod verify;

pub use payload::ImageRef;
pub use verify::{AskGoogle, Judgement, judge, with_google_answers};

use crate::google::binauthz_v1;
use crate::wire::wire_enum;

wire_enum! {
    /// Why an image has no valid attestation from an attestor (the `cause` in the report).
    pub enum Cause {
        /// No attestation of this exact image (repository and digest) on the attestor's note.
        Missing = "missing",
        /// Signed, but by no key the attestor lists now (rotated out, revoked, or never its own).
        UnknownKey = "unknown_key",
        /// The signature does not verify with the attestor's key.
        BadSignature = "bad_signature",
        /// Validly signed, but the payload vouches for another digest.
        PayloadMismatch = "payload_mismatch",
    }
}

impl Cause {
    /// Which of two failures says more: the one closer to a valid attestation.
    fn closeness(self) -> u8 {
        match self {
            Cause::Missing => 0,
            Cause::UnknownKey => 1,
            Cause::BadSignature => 2,
            Cause::PayloadMismatch => 3,
        }
    }
}

/// What an image's attestations from one attestor came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Verified,
    Failed {
        cause: Cause,
        detail: String,
    },
    /// Could not be decided (the attestor or its attestations could not be read): never
    /// taken as attested.
    Unknown(String),
}

/// How the id of a Cloud KMS key version begins on an attestor (`gcloud container binauthz
/// attestors public-keys add --keyversion` writes the version's URI at Google's endpoint); the
/// version's name follows.
pub const KMS_KEY_ID_PREFIX: &str = "//cloudkms.googleapis.com/v1/";

/// An attestor as validation needs it: where its attestations are, and its keys today.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attestor {
    /// `projects/P/attestors/A`.
    pub name: String,
    /// `projects/P/notes/N`: attestations are occurrences of this note.
    pub note: String,
    pub keys: Vec<PublicKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    /// What a signature's `publicKeyId` must equal exactly.
    pub id: String,
    pub check: KeyCheck,
}

/// Who can check a signature by this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyCheck {
    /// The auditor, with ring (ECDSA P-256/P-384, RSA PKCS#1 and PSS).
    Local(pkix::PkixKey),
    /// Only Google (`validateAttestationOccurrence`): PGP, P-521, ML-DSA, or a key ring cannot
    /// read; the reason is kept for the logs.
    Google(String),
}

impl Attestor {
    /// From the Binary Authorization API's answer; `Err` says what the answer lacks.
    pub fn from_api(a: binauthz_v1::Attestor) -> Result<Attestor, String> {
        let note = a.user_owned_grafeas_note.ok_or("the attestor has no userOwnedGrafeasNote")?;
        if note.note_reference.is_empty() {
            return Err("the attestor's note has no noteReference".into());
        }
        let keys = note
            .public_keys
            .into_iter()
            .map(|k| {
                let check = match (&k.pkix_public_key, &k.ascii_armored_pgp_public_key) {
                    (Some(pkix), _) => pkix::PkixKey::parse(&pkix.public_key_pem, &pkix.signature_algorithm)
                        .map_or_else(KeyCheck::Google, KeyCheck::Local),
                    (None, Some(_)) => KeyCheck::Google("a PGP key".into()),
                    (None, None) => KeyCheck::Google("a key of a kind the auditor does not know".into()),
                };
                PublicKey { id: k.id, check }
            })
            .collect();
        Ok(Attestor { name: a.name, note: note.note_reference, keys })
    }

    /// The Cloud KMS key versions among its keys (`projects/.../cryptoKeyVersions/N`): what
    /// `gcloud beta container binauthz attestations sign-and-create --keyversion` signs with.
    pub fn kms_key_versions(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|k| k.id.strip_prefix(KMS_KEY_ID_PREFIX))
            .filter(|v| v.starts_with("projects/") && v.contains("/cryptoKeyVersions/"))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attestor_reads_its_note_and_keys() {
        let (pem, _) = pkix::tests::p256();
        let a: binauthz_v1::Attestor = serde_json::from_value(serde_json::json!({
            "name": "projects/a/attestors/ci",
            "userOwnedGrafeasNote": {"noteReference": "projects/a/notes/ci", "publicKeys": [
                {"id": "ni:///sha-256;x", "pkixPublicKey": {"publicKeyPem": pem, "signatureAlgorithm": "ECDSA_P256_SHA256"}},
                {"id": "//cloudkms.googleapis.com/v1/projects/a/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
                 "pkixPublicKey": {"publicKeyPem": pem, "signatureAlgorithm": "EC_SIGN_P521_SHA512"}},
                {"id": "0123ABCD", "asciiArmoredPgpPublicKey": "-----BEGIN PGP PUBLIC KEY BLOCK-----"}]}
        }))
        .unwrap();
        let a = Attestor::from_api(a).unwrap();
        assert_eq!(a.note, "projects/a/notes/ci");
        assert!(matches!(a.keys[0].check, KeyCheck::Local(_)));
        assert!(matches!(&a.keys[1].check, KeyCheck::Google(why) if why.contains("not verified locally")));
        assert!(matches!(a.keys[2].check, KeyCheck::Google(_)));
        assert_eq!(
            a.kms_key_versions(),
            vec!["projects/a/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1".to_string()]
        );
        let noteless: binauthz_v1::Attestor = serde_json::from_str(r#"{"name":"projects/a/attestors/x"}"#).unwrap();
        assert!(Attestor::from_api(noteless).unwrap_err().contains("userOwnedGrafeasNote"));
    }
}
