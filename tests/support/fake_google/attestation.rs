//! What continuous validation reads, and what `gcloud container binauthz attestations
//! create` writes: Run v1 revisions (Knative, every region at once), Binary Authorization
//! attestors and `validateAttestationOccurrence`, and Container Analysis occurrences listed by
//! note with the filters Google's API takes.
//!
//! `validateAttestationOccurrence` really verifies PKIX signatures (with openssl, against the
//! attestor's keys as they are now); PGP signatures are VERIFIED only when the estate's
//! `google_verifies` lists them.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};

use super::Shared;
use super::shapes::{Answer, google_error, json, list_page, not_found, page, project_or_error};
use super::world::Api;

type Params = Query<BTreeMap<String, String>>;

pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
        .route("/apis/serving.knative.dev/v1/namespaces/{project}/revisions", get(revisions))
        .route("/v1/projects/{project}/attestors/{attestor}", get(attestor).post(validate))
        .route("/v1beta1/projects/{project}/attestors/{attestor}", get(attestor_v1beta1))
        .route("/v1/projects/{project}/notes/{note}/occurrences", get(note_occurrences))
        .route("/v1/projects/{project}/occurrences", post(create_occurrence))
}

/// `namespaces.revisions.list` on the global endpoint: every region's revisions, paged
/// Kubernetes-style only when the client sends `limit`.
async fn revisions(State(world): State<Shared>, UrlPath(project): UrlPath<String>, Query(query): Params) -> Answer {
    let w = world.lock().unwrap();
    let p = project_or_error(&w.estate, &project, Api::Run)?;
    let mut paging = BTreeMap::new();
    if let Some(limit) = query.get("limit") {
        paging.insert("pageSize".to_string(), limit.clone());
    }
    if let Some(token) = query.get("continue") {
        paging.insert("pageToken".to_string(), token.clone());
    }
    let size = if paging.contains_key("pageSize") { w.behaviour.page_size } else { usize::MAX };
    let (items, next) = page(&p.revisions, &paging, size)?;
    let metadata = match next {
        Some(t) => json!({"continue": t}),
        None => json!({}),
    };
    Ok(json(
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "RevisionList", "metadata": metadata, "items": items}),
    ))
}

/// `projects.attestors.get` (v1).
async fn attestor(State(world): State<Shared>, UrlPath((project, name)): UrlPath<(String, String)>) -> Answer {
    stored_attestor(&world, &project, &name).map(json)
}

/// The attestor as Binary Authorization v1beta1 shows it (what gcloud's beta track reads): the
/// same, its note under v1beta1's name `userOwnedDrydockNote`.
async fn attestor_v1beta1(State(world): State<Shared>, UrlPath((project, name)): UrlPath<(String, String)>) -> Answer {
    let mut attestor = stored_attestor(&world, &project, &name)?;
    if let Some(note) = attestor.as_object_mut().and_then(|a| a.remove("userOwnedGrafeasNote")) {
        attestor["userOwnedDrydockNote"] = note;
    }
    Ok(json(attestor))
}

fn stored_attestor(world: &Shared, project: &str, name: &str) -> Result<Value, axum::response::Response> {
    let w = world.lock().unwrap();
    project_or_error(&w.estate, project, Api::BinaryAuthorization)?;
    let full = format!("projects/{project}/attestors/{name}");
    w.estate.attestors.get(&full).cloned().ok_or_else(|| not_found(&full))
}

/// `projects.notes.occurrences.list`: the note's occurrences in every project, filtered.
async fn note_occurrences(
    State(world): State<Shared>,
    UrlPath((project, note)): UrlPath<(String, String)>,
    Query(query): Params,
) -> Answer {
    let w = world.lock().unwrap();
    let note = format!("projects/{project}/notes/{note}");
    let filter = match query.get("filter") {
        Some(f) => Filter::parse(f)
            .ok_or_else(|| google_error(400, "INVALID_ARGUMENT", &format!("invalid filter: {f}"), None))?,
        None => Filter(Vec::new()),
    };
    let found: Vec<Value> =
        w.estate.occurrences.iter().filter(|o| o["noteName"] == note.as_str() && filter.matches(o)).cloned().collect();
    let paging: BTreeMap<String, String> =
        query.into_iter().filter(|(k, _)| k == "pageSize" || k == "pageToken").collect();
    list_page("occurrences", &found, &paging, w.behaviour.page_size)
}

/// The filter grammar the note route is known to take: terms joined by `AND`, each
/// `has_suffix(resourceUrl, "X")`, `resourceUrl="X"` or `kind="K"`. Anything else is refused,
/// as Google refuses what it cannot parse.
struct Filter(Vec<Term>);

enum Term {
    Suffix(String),
    Url(String),
    Kind(String),
}

impl Filter {
    fn parse(filter: &str) -> Option<Filter> {
        let quoted = |s: &str| s.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_owned);
        filter
            .split(" AND ")
            .map(|term| {
                let term = term.trim();
                if let Some(args) = term.strip_prefix("has_suffix(").and_then(|t| t.strip_suffix(')')) {
                    let (field, value) = args.split_once(',')?;
                    return (field.trim() == "resourceUrl").then(|| quoted(value).map(Term::Suffix))?;
                }
                let (field, value) = term.split_once('=')?;
                match field.trim() {
                    "resourceUrl" => quoted(value).map(Term::Url),
                    "kind" => quoted(value).map(Term::Kind),
                    _ => None,
                }
            })
            .collect::<Option<Vec<Term>>>()
            .map(Filter)
    }

    fn matches(&self, occurrence: &Value) -> bool {
        let uri = occurrence["resourceUri"].as_str().unwrap_or_default();
        self.0.iter().all(|term| match term {
            Term::Suffix(s) => uri.ends_with(s.as_str()),
            Term::Url(u) => uri == u,
            Term::Kind(k) => occurrence["kind"] == k.as_str(),
        })
    }
}

/// `projects.occurrences.create` (what gcloud's `attestations create` sends).
async fn create_occurrence(
    State(world): State<Shared>,
    UrlPath(project): UrlPath<String>,
    axum::Json(mut body): axum::Json<Value>,
) -> Answer {
    let mut w = world.lock().unwrap();
    let missing = ["noteName", "resourceUri"].into_iter().find(|f| body[*f].as_str().is_none_or(str::is_empty));
    if let Some(field) = missing {
        return Err(google_error(400, "INVALID_ARGUMENT", &format!("{field} is required"), None));
    }
    // Google stores the bytes, and answers them in standard base64 whatever the client sent
    // (gcloud sends the URL-safe alphabet).
    let attestation = &mut body["attestation"];
    if let Some(payload) = attestation["serializedPayload"].as_str().and_then(bytes) {
        attestation["serializedPayload"] = json!(STANDARD.encode(payload));
    }
    for signature in attestation["signatures"].as_array_mut().into_iter().flatten() {
        if let Some(sig) = signature["signature"].as_str().and_then(bytes) {
            signature["signature"] = json!(STANDARD.encode(sig));
        }
    }
    let n = w.estate.occurrences.len() + 1;
    body["name"] = json!(format!("projects/{project}/occurrences/occ-{n}"));
    body["createTime"] = json!("2026-11-29T00:00:00Z");
    body["updateTime"] = json!("2026-11-29T00:00:00Z");
    w.estate.occurrences.push(body.clone());
    Ok(json(body))
}

/// `attestors.validateAttestationOccurrence`: does one of the attestor's keys as they are
/// now verify one of the signatures over the payload?
async fn validate(
    State(world): State<Shared>,
    UrlPath((project, verb)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Answer {
    let Some(name) = verb.strip_suffix(":validateAttestationOccurrence") else {
        return Err(not_found(&verb));
    };
    let (attestor, pgp_verified) = {
        let w = world.lock().unwrap();
        project_or_error(&w.estate, &project, Api::BinaryAuthorization)?;
        let full = format!("projects/{project}/attestors/{name}");
        let attestor = w.estate.attestors.get(&full).cloned().ok_or_else(|| not_found(&full))?;
        (attestor, w.estate.google_verifies.clone())
    };
    let note = &attestor["userOwnedGrafeasNote"];
    if body["occurrenceNote"] != note["noteReference"] {
        return Ok(json(json!({"result": "ATTESTATION_NOT_VERIFIABLE",
                              "denialReason": "the occurrence's note is not the attestor's"})));
    }
    let payload = bytes(body["attestation"]["serializedPayload"].as_str().unwrap_or_default())
        .ok_or_else(|| google_error(400, "INVALID_ARGUMENT", "serializedPayload is not base64", None))?;
    let keys = note["publicKeys"].as_array().cloned().unwrap_or_default();
    let signatures = body["attestation"]["signatures"].as_array().cloned().unwrap_or_default();
    let verified = signatures.iter().any(|s| {
        let (id, signature) = (s["publicKeyId"].as_str().unwrap_or_default(), s["signature"].as_str().unwrap_or(""));
        keys.iter().filter(|k| k["id"] == id).any(|k| match k["pkixPublicKey"]["publicKeyPem"].as_str() {
            Some(pem) => bytes(signature).is_some_and(|sig| openssl_verifies(pem, &payload, &sig)),
            None => pgp_verified.iter().any(|(k, s)| k == id && bytes(s) == bytes(signature)),
        })
    });
    Ok(json(if verified {
        json!({"result": "VERIFIED"})
    } else {
        json!({"result": "ATTESTATION_NOT_VERIFIABLE", "denialReason": "no signature verifies with the attestor's keys"})
    }))
}

/// A `bytes` field as Google's JSON takes it: standard or URL-safe base64.
pub(super) fn bytes(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).ok()
}

/// `openssl dgst -sha256 -verify`: ECDSA (DER) and RSA PKCS#1 v1.5 signatures over SHA-256.
fn openssl_verifies(pem: &str, payload: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("key.pem"), pem).unwrap();
    std::fs::write(path("payload"), payload).unwrap();
    std::fs::write(path("sig"), signature).unwrap();
    std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(path("key.pem"))
        .arg("-signature")
        .arg(path("sig"))
        .arg(path("payload"))
        .output()
        .expect("openssl runs")
        .status
        .success()
}
