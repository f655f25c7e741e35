//! What the fake Google knows, split by who changes it:
//!
//! - the [`Estate`]: what Google holds (projects and their resources, the folder tree, who
//!   may act as whom). Tests set it up; gcloud's writes change it.
//! - the [`Behaviour`]: how the fake answers (faults, latency, page sizes, token lifetimes).
//!   Tests set it.
//! - the [`Observations`]: what the fake saw and did (requests, writes, tokens issued,
//!   requests in flight). Only the fake writes them; tests read them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::attestation::SigningKey;
use crate::support::fake_auth::{Credentials, TokenRequest, is_credential_path};

#[derive(Debug, Default)]
pub struct World {
    pub estate: Estate,
    pub behaviour: Behaviour,
    pub seen: Observations,
}

impl World {
    /// A world that answers as `behaviour` says.
    pub fn behaving(behaviour: Behaviour) -> World {
        World { behaviour, ..World::default() }
    }

    /// The project `id`, created (in two regions) on first use.
    pub fn project(&mut self, id: &str) -> &mut FakeProject {
        self.estate.project(id)
    }

    /// A new token for `identity`, named after it, valid for `valid_for` (else the
    /// behaviour's `token_valid_for`).
    pub fn issue(&mut self, identity: &str, valid_for: Option<Duration>) -> String {
        let token = format!("ya29.fake-{}.{identity}", self.seen.tokens.len() + 1);
        self.accept(&token, identity, valid_for);
        token
    }

    /// Accepts `token` as `identity`'s from now on (a token made elsewhere, such as gcloud's).
    pub fn accept(&mut self, token: &str, identity: &str, valid_for: Option<Duration>) {
        self.seen.tokens.push(IssuedToken {
            token: token.to_owned(),
            identity: identity.to_owned(),
            issued_at: Instant::now(),
            valid_for: valid_for.or(self.behaviour.token_valid_for),
        });
    }

    /// Issued here and not past its validity.
    pub fn fresh(&self, token: &str) -> bool {
        self.seen.token(token).is_some_and(|t| t.valid_for.is_none_or(|valid| t.issued_at.elapsed() < valid))
    }
}

/// What Google holds.
#[derive(Debug, Default)]
pub struct Estate {
    pub projects: BTreeMap<String, FakeProject>,
    /// Resource Manager's tree: what `projects:search` finds and `projects.list` and
    /// `folders.list` list under each parent.
    pub hierarchy: Hierarchy,
    /// Bodies recorded from the real APIs, answered (after authentication) for GETs of
    /// exactly this path, whatever the query.
    pub recorded: BTreeMap<String, Value>,
    /// Long-running operations the fake started (gcloud polls them), by `PROJECT/op-N`.
    pub operations: BTreeMap<String, Value>,
    /// Who is who for the credential endpoints, and who may impersonate whom.
    pub credentials: Credentials,
    /// Binary Authorization attestors (v1 `Attestor`), by `projects/P/attestors/A`.
    pub attestors: BTreeMap<String, Value>,
    /// Container Analysis occurrences (v1 `Occurrence`) in every project, as stored: listed
    /// by note, wherever they live.
    pub occurrences: Vec<Value>,
    /// What Google's `validateAttestationOccurrence` verifies for keys the fake does not
    /// check itself (PGP): (public key id, base64 signature) pairs it answers VERIFIED.
    pub google_verifies: Vec<(String, String)>,
    /// Cloud KMS asymmetric signing key versions (EC_SIGN_P256_SHA256), by
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`.
    pub kms_keys: BTreeMap<String, SigningKey>,
}

impl Estate {
    /// The project `id`, created (in two regions) on first use.
    pub fn project(&mut self, id: &str) -> &mut FakeProject {
        self.projects.entry(id.into()).or_insert_with(|| FakeProject {
            locations: vec!["us-central1".into(), "europe-west1".into()],
            ..Default::default()
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct FakeProject {
    /// Cloud Run locations (`GET /v1/projects/P/locations`).
    pub locations: Vec<String>,
    pub services: Vec<Value>,
    pub jobs: Vec<Value>,
    pub worker_pools: Vec<Value>,
    pub functions: Vec<Value>,
    /// `None`: the policy Google serves a project that never configured one.
    pub policy: Option<Value>,
    /// APIs not enabled here: they answer 403 `SERVICE_DISABLED`.
    pub disabled: Vec<Api>,
    /// Regions the Functions list reports as unreachable.
    pub functions_unreachable: Vec<String>,
    /// Cloud Run revisions, in the Run v1 (Knative) shape: what continuous validation reads
    /// the serving digests from.
    pub revisions: Vec<Value>,
}

/// The APIs a project can have disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Run,
    Functions,
    BinaryAuthorization,
}

impl Api {
    /// The service name Google's `SERVICE_DISABLED` error names.
    pub fn service(self) -> &'static str {
        match self {
            Api::Run => "run.googleapis.com",
            Api::Functions => "cloudfunctions.googleapis.com",
            Api::BinaryAuthorization => "binaryauthorization.googleapis.com",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    pub projects: Vec<Node>,
    pub folders: Vec<Node>,
}

/// A project (by ID) or a folder (`folders/N`) in Resource Manager's tree.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// `ACTIVE` or `DELETE_REQUESTED`.
    pub state: &'static str,
    /// `folders/N` or `organizations/N`.
    pub parent: String,
}

impl Node {
    pub fn active(name: &str, parent: &str) -> Node {
        Node { name: name.into(), state: "ACTIVE", parent: parent.into() }
    }

    pub fn deleted(name: &str, parent: &str) -> Node {
        Node { state: "DELETE_REQUESTED", ..Node::active(name, parent) }
    }
}

/// How the fake answers.
#[derive(Debug)]
pub struct Behaviour {
    pub faults: Vec<Fault>,
    /// Added to every answer.
    pub latency: Duration,
    /// Items per page when the client does not ask, and the most it gets when it does (small
    /// by default, so paging is exercised).
    pub page_size: usize,
    /// Run v1 Knative lists are paged (`metadata.continue`) even when the client sends no
    /// `limit`: whether Google does is not evidenced, so the auditor must cope either way.
    pub knative_pages: bool,
    /// Asset Inventory returns Run resources in the v1 (Knative) shape instead of v2.
    pub assets_in_v1_shape: bool,
    /// Serve requests without a bearer token too (Google's own clients with anonymous
    /// credentials, in the benchmark).
    pub anonymous_ok: bool,
    /// `expires_in` of issued tokens (default 3599 s).
    pub token_expires_in: Option<u64>,
    /// Refuse tokens older than this (401), whatever `expires_in` said.
    pub token_valid_for: Option<Duration>,
    /// Lifetime of impersonated tokens (else `token_expires_in`).
    pub impersonated_expires_in: Option<u64>,
    /// Refuse impersonated tokens older than this (401), whatever their expireTime said.
    pub impersonated_valid_for: Option<Duration>,
    /// Where `CONNECT` tunnels go (gcloud's gRPC calls through its proxy setting).
    pub connect_to: Option<SocketAddr>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            faults: Vec::new(),
            latency: Duration::ZERO,
            page_size: 2,
            knative_pages: false,
            assets_in_v1_shape: false,
            anonymous_ok: false,
            token_expires_in: None,
            token_valid_for: None,
            impersonated_expires_in: None,
            impersonated_valid_for: None,
            connect_to: None,
        }
    }
}

/// A canned answer for requests whose path (with query) contains `matching`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub matching: String,
    /// `None`: only delay, then answer normally.
    pub status: Option<u16>,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    /// How many requests it applies to; `None` for all.
    pub times: Option<usize>,
    /// Send the body one byte at a time, this far apart.
    pub trickle: Option<Duration>,
}

impl Fault {
    pub fn status(matching: &str, status: u16, body: Value) -> Fault {
        Fault {
            matching: matching.into(),
            status: Some(status),
            body: body.to_string(),
            headers: vec![],
            delay: Duration::ZERO,
            times: None,
            trickle: None,
        }
    }

    /// Any body, JSON or not.
    pub fn raw(matching: &str, status: u16, body: &str) -> Fault {
        Fault { body: body.into(), ..Fault::status(matching, status, Value::Null) }
    }

    pub fn delay(matching: &str, delay: Duration) -> Fault {
        Fault { status: None, delay, ..Fault::status(matching, 0, Value::Null) }
    }

    pub fn trickle(mut self, gap: Duration) -> Fault {
        self.trickle = Some(gap);
        self
    }

    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the fake saw and did.
#[derive(Debug, Default)]
pub struct Observations {
    /// Every request, in arrival order.
    pub requests: Vec<LoggedRequest>,
    /// Every request that is not a GET, bodies included (the gcloud tests check them against
    /// the discovery documents).
    pub exchanges: Vec<Exchange>,
    /// What the credential endpoints were asked.
    pub token_requests: Vec<TokenRequest>,
    /// The tokens it issued or accepts, in issue order.
    pub tokens: Vec<IssuedToken>,
    /// Requests being answered now, and the most ever at once, by path.
    pub in_flight: BTreeMap<String, usize>,
    pub max_in_flight: BTreeMap<String, usize>,
}

impl Observations {
    pub fn token(&self, token: &str) -> Option<&IssuedToken> {
        self.tokens.iter().find(|t| t.token == token)
    }

    /// Who `token` was issued to.
    pub fn identity(&self, token: &str) -> Option<String> {
        self.token(token).map(|t| t.identity.clone())
    }

    /// The API requests (not token requests) and who made them.
    pub fn api_requests(&self) -> Vec<LoggedRequest> {
        self.requests.iter().filter(|r| !is_credential_path(&r.path)).cloned().collect()
    }
}

#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Who made it: the identity its bearer token was issued to.
    pub identity: Option<String>,
    /// Its `x-goog-user-project` header.
    pub user_project: Option<String>,
}

/// A request that changes something, with both bodies (JSON), as the fake received and answered.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub request: Value,
    pub status: u16,
    pub response: Value,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub identity: String,
    pub issued_at: Instant,
    /// Refused (401) once this old.
    pub valid_for: Option<Duration>,
}
