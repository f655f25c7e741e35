//! Cloud KMS, as far as `gcloud beta container binauthz attestations sign-and-create` uses
//! it: `cryptoKeyVersions.getPublicKey` (gcloud reads the algorithm to pick the digest) and
//! `cryptoKeyVersions.asymmetricSign` with a `digest` (gcloud hashes the payload itself).
//! The key versions are the estate's `kms_keys`, made by openssl at test time; each signs as
//! KMS's EC_SIGN_P256_SHA256 does (a DER ECDSA signature of the SHA-256 digest).
//!
//! The CRC32C integrity fields (`pemCrc32c`, `signatureCrc32c`) are left out: gcloud's
//! binauthz commands do not read them, and no crate in the tree computes CRC32C.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::Shared;
use super::attestation::bytes;
use super::shapes::{Answer, google_error, json, not_found};
use crate::support::attestation::SigningKey;

const VERSION: &str = "/v1/projects/{project}/locations/{location}/keyRings/{ring}/cryptoKeys/{key}/cryptoKeyVersions";

/// The only algorithm the fake's keys have (openssl `prime256v1`).
const ALGORITHM: &str = "EC_SIGN_P256_SHA256";

type VersionPath = UrlPath<(String, String, String, String, String)>;

pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
        .route(&format!("{VERSION}/{{version}}/publicKey"), get(public_key))
        .route(&format!("{VERSION}/{{version}}"), post(sign))
}

fn version_name((project, location, ring, key, version): &(String, String, String, String, String)) -> String {
    format!("projects/{project}/locations/{location}/keyRings/{ring}/cryptoKeys/{key}/cryptoKeyVersions/{version}")
}

fn key_version(world: &Shared, name: &str) -> Result<SigningKey, axum::response::Response> {
    world.lock().unwrap().estate.kms_keys.get(name).cloned().ok_or_else(|| not_found(name))
}

/// `cryptoKeyVersions.getPublicKey`.
async fn public_key(State(world): State<Shared>, UrlPath(path): VersionPath) -> Answer {
    let name = version_name(&path);
    let key = key_version(&world, &name)?;
    Ok(json(json!({"name": name, "pem": key.public_pem, "algorithm": ALGORITHM, "protectionLevel": "SOFTWARE"})))
}

/// `cryptoKeyVersions.asymmetricSign`: a `digest` of the key's algorithm (SHA-256, 32 bytes)
/// or the `data` itself, never both, as KMS takes them.
async fn sign(State(world): State<Shared>, UrlPath(path): VersionPath, axum::Json(body): axum::Json<Value>) -> Answer {
    let Some(version) = path.4.strip_suffix(":asymmetricSign") else {
        return Err(not_found(&path.4));
    };
    let name = version_name(&(path.0, path.1, path.2, path.3, version.to_owned()));
    let key = key_version(&world, &name)?;
    let invalid = |message: &str| google_error(400, "INVALID_ARGUMENT", message, None);
    let digest = match (&body["digest"], body["data"].as_str()) {
        (Value::Null, Some(data)) => {
            let data = bytes(data).ok_or_else(|| invalid("data is not base64"))?;
            ring::digest::digest(&ring::digest::SHA256, &data).as_ref().to_vec()
        }
        (digest @ Value::Object(_), None) => {
            let others = ["sha384", "sha512"].iter().any(|d| !digest[*d].is_null());
            let sha256 = digest["sha256"].as_str().and_then(bytes);
            match sha256 {
                Some(d) if d.len() == 32 && !others => d,
                _ => return Err(invalid(&format!("the digest must be a SHA-256 digest for {ALGORITHM} ({name})"))),
            }
        }
        _ => return Err(invalid("exactly one of digest and data is required")),
    };
    Ok(json(json!({
        "signature": STANDARD.encode(key.sign_digest(&digest)),
        "name": name,
        "protectionLevel": "SOFTWARE",
        "verifiedDigestCrc32c": false,
        "verifiedDataCrc32c": false,
    })))
}
