//! Container Analysis (Artifact Analysis) v1: the occurrences of an attestor's note, where
//! attestations live (`projects.notes.occurrences.list`).

use serde::{Deserialize, Serialize};

use super::list_response;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Signature {
    /// base64 (protobuf `bytes`).
    pub signature: String,
    pub public_key_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Jwt {
    pub compact_jwt: String,
}

/// Sent back as it came to `validateAttestationOccurrence` (its `attestation` field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AttestationOccurrence {
    /// base64 of the exact bytes the signatures sign.
    pub serialized_payload: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<Signature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwts: Vec<Jwt>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Occurrence {
    pub name: String,
    /// `REPO@sha256:...`, with or without `https://` (gcloud strips it; the API documents it).
    pub resource_uri: String,
    pub note_name: String,
    /// `ATTESTATION` for Binary Authorization attestations; other kinds share notes.
    pub kind: String,
    pub attestation: Option<AttestationOccurrence>,
}

list_response!(ListNoteOccurrencesResponse, "occurrences", Occurrence);
