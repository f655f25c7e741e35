//! Attestor keys and attestations made the way their owners make them: keys by openssl at
//! test time (no private key is committed), the payload as `gcloud container binauthz
//! create-signature-payload` prints it, signatures by `openssl dgst -sha256 -sign` (or, for a
//! key the fake Cloud KMS holds, `openssl pkeyutl -sign` over the digest gcloud sends).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// An attestor's signing key (ECDSA P-256), in a directory of the test's.
#[derive(Debug, Clone)]
pub struct SigningKey {
    private: PathBuf,
    pub public_pem: String,
    /// The default PKIX key id: `ni:///sha-256;` + base64url(SHA-256(DER public key)).
    pub id: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl SigningKey {
    pub fn new(dir: &Path, name: &str) -> SigningKey {
        let private = dir.join(format!("{name}.pem"));
        let private_str = private.to_str().unwrap();
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", private_str]);
        let public_pem = String::from_utf8(openssl(&["ec", "-in", private_str, "-pubout"])).unwrap();
        let der = openssl(&["ec", "-in", private_str, "-pubout", "-outform", "DER"]);
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        let id = format!("ni:///sha-256;{}", URL_SAFE_NO_PAD.encode(digest.as_ref()));
        SigningKey { private, public_pem, id }
    }

    /// A DER ECDSA signature over `bytes`, SHA-256.
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let input = self.private.with_extension("input");
        std::fs::write(&input, bytes).unwrap();
        openssl(&["dgst", "-sha256", "-sign", self.private.to_str().unwrap(), input.to_str().unwrap()])
    }

    /// A DER ECDSA signature of a SHA-256 `digest` (what Cloud KMS's `asymmetricSign` makes).
    pub fn sign_digest(&self, digest: &[u8]) -> Vec<u8> {
        let input = self.private.with_extension("digest");
        std::fs::write(&input, digest).unwrap();
        openssl(&["pkeyutl", "-sign", "-inkey", self.private.to_str().unwrap(), "-in", input.to_str().unwrap()])
    }

    /// The attestor's `publicKeys[]` entry for this key.
    pub fn public_key(&self) -> Value {
        json!({"id": self.id, "pkixPublicKey": {"publicKeyPem": self.public_pem, "signatureAlgorithm": "ECDSA_P256_SHA256"}})
    }

    /// The entry `gcloud container binauthz attestors public-keys add --keyversion=VERSION`
    /// writes when this key is the Cloud KMS key version `VERSION`
    /// (`projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`): the id is the
    /// version's URI, the algorithm KMS's EC_SIGN_P256_SHA256 in Binary Authorization's name.
    pub fn kms_public_key(&self, version: &str) -> Value {
        json!({"id": format!("//cloudkms.googleapis.com/v1/{version}"),
               "pkixPublicKey": {"publicKeyPem": self.public_pem, "signatureAlgorithm": "ECDSA_P256_SHA256"}})
    }
}

/// An attestor `projects/P/attestors/A` on note `projects/P/notes/A` with these keys.
pub fn attestor(name: &str, keys: &[Value]) -> Value {
    let note = name.replace("/attestors/", "/notes/");
    json!({
        "name": name,
        "userOwnedGrafeasNote": {
            "noteReference": note,
            "publicKeys": keys,
            "delegationServiceAccountEmail": "service-123@gcp-sa-binaryauthorization.iam.gserviceaccount.com",
        },
        "updateTime": "2026-11-01T00:00:00Z",
        "etag": "W/abc",
    })
}

/// The simple-signing payload gcloud 528 prints for `REPO@DIGEST` (its exact bytes: keys
/// sorted, two-space indent, as tests/fixtures/gcloud-528-create-signature-payload.json).
pub fn payload(image: &str) -> Vec<u8> {
    let (repository, digest) = image.rsplit_once('@').expect("an image by digest");
    let value = json!({"critical": {"identity": {"docker-reference": repository},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "Google cloud binauthz container signature"}});
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&value, &mut ser).unwrap();
    out.push(b'\n');
    out
}

/// An ATTESTATION occurrence of `attestor`'s note for `resource_uri`, signed as `signature`
/// says, stored in `project`.
pub fn occurrence(
    project: &str,
    n: usize,
    note: &str,
    resource_uri: &str,
    payload: &[u8],
    signatures: &[(&str, &[u8])],
) -> Value {
    json!({
        "name": format!("projects/{project}/occurrences/att-{n}"),
        "resourceUri": resource_uri,
        "noteName": note,
        "kind": "ATTESTATION",
        "attestation": {
            "serializedPayload": STANDARD.encode(payload),
            "signatures": signatures.iter().map(|(id, sig)| json!({"publicKeyId": id, "signature": STANDARD.encode(sig)})).collect::<Vec<_>>(),
        },
        "createTime": "2026-11-01T00:00:00Z",
        "updateTime": "2026-11-01T00:00:00Z",
    })
}
