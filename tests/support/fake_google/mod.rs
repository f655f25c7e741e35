//! An in-process fake of the Google APIs the auditor reads, speaking real HTTP: the credential
//! endpoints of `fake_auth` (OAuth, STS, IAM Credentials, metadata servers), Cloud Run v1 locations, Cloud Run v2 lists, Cloud
//! Functions v2, Binary Authorization v1 and Resource Manager v3 search, with Google's
//! pagination and `google.rpc.Status` error bodies, plus injectable faults and latency.

// Handlers short-circuit with the `Response` Google would send; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use super::fake_auth::{AuthWorld, is_credential_path};

pub const TEST_KEY_PEM: &str = include_str!("../fixtures/test-only-service-account-key.pem");
const TEST_PUBLIC_KEY_DER: &[u8] = include_bytes!("../fixtures/test-only-service-account-key.pub.der");

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
    /// APIs not enabled here: "run", "functions", "binaryauthorization".
    pub disabled: Vec<&'static str>,
    /// Regions the Functions list reports as unreachable.
    pub functions_unreachable: Vec<String>,
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

#[derive(Debug, Clone)]
pub struct RequestRecord {
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

#[derive(Debug, Default)]
pub struct World {
    pub projects: BTreeMap<String, FakeProject>,
    /// What `projects:search` finds, and `projects.list` lists under each parent:
    /// (project id, state, parent).
    pub search: Vec<(String, String, String)>,
    /// The folder tree for `folders.list`: (folders/N, state, parent).
    pub folders: Vec<(String, String, String)>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    /// Items per page when the client does not ask (small, so paging is exercised).
    pub page_size: usize,
    pub log: Vec<RequestRecord>,
    pub issued_tokens: Vec<String>,
    /// `expires_in` of issued tokens (default 3599 s).
    pub token_expires_in: Option<u64>,
    /// Refuse tokens older than this (401), whatever `expires_in` said.
    pub token_valid_for: Option<Duration>,
    pub token_issued_at: BTreeMap<String, std::time::Instant>,
    /// Serve requests without a bearer token too (Google's own clients with anonymous
    /// credentials, in the benchmark).
    pub anonymous_ok: bool,
    /// Bodies recorded from the real APIs, answered (after authentication) for GETs of
    /// exactly this path, whatever the query.
    pub recorded: BTreeMap<String, Value>,
    /// Run v1 Knative lists are paged (`metadata.continue`) even when the client sends no
    /// `limit`: whether Google does is not evidenced, so the auditor must cope either way.
    pub knative_pages: bool,
    /// Every non-GET exchange, bodies included (the gcloud tests check them against the
    /// discovery documents).
    pub exchanges: Vec<Exchange>,
    /// Long-running operations the fake started (gcloud polls them), by name.
    pub operations: BTreeMap<String, Value>,
    /// Where `CONNECT` tunnels go (gcloud's gRPC calls through its proxy setting).
    pub connect_to: Option<SocketAddr>,
    /// Asset Inventory returns Run resources in the v1 (Knative) shape instead of v2.
    pub assets_in_v1_shape: bool,
    /// Requests being answered now, and the most ever at once, by path.
    pub in_flight: BTreeMap<String, usize>,
    pub max_in_flight: BTreeMap<String, usize>,
    /// Credentials: who is who, who may impersonate whom, what was asked for tokens.
    pub auth: AuthWorld,
}

impl World {
    /// A new token for `identity`, named after it.
    pub fn issue(&mut self, identity: &str) -> String {
        let token = format!("ya29.fake-{}.{identity}", self.issued_tokens.len() + 1);
        self.issued_tokens.push(token.clone());
        self.token_issued_at.insert(token.clone(), std::time::Instant::now());
        self.auth.identities.insert(token.clone(), identity.to_owned());
        token
    }

    /// Issued here and not past `token_valid_for`.
    pub fn fresh(&self, token: &str) -> bool {
        let valid_for = self.auth.valid_for.get(token).copied().or(self.token_valid_for);
        self.issued_tokens.iter().any(|t| t == token)
            && match (valid_for, self.token_issued_at.get(token)) {
                (Some(valid), Some(issued)) => issued.elapsed() < valid,
                _ => true,
            }
    }

    /// The API requests (not token requests) and who made them.
    pub fn api_requests(&self) -> Vec<RequestRecord> {
        self.log.iter().filter(|r| !is_credential_path(&r.path)).cloned().collect()
    }

    pub fn project(&mut self, id: &str) -> &mut FakeProject {
        self.projects.entry(id.into()).or_insert_with(|| FakeProject {
            locations: vec!["us-central1".into(), "europe-west1".into()],
            ..Default::default()
        })
    }
}

pub type Shared = Arc<Mutex<World>>;

pub struct FakeGoogle {
    pub base_url: String,
    pub addr: SocketAddr,
    pub world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGoogle {
    pub async fn start(world: World) -> FakeGoogle {
        let world =
            Arc::new(Mutex::new(World { page_size: if world.page_size == 0 { 2 } else { world.page_size }, ..world }));
        let app = super::fake_auth::routes(Router::new())
            .route("/v1/projects/{project}/locations", get(locations))
            .route("/v1/projects/{project}/policy", get(policy))
            .route("/v2/projects/{project}/locations/{location}/{collection}", get(list))
            .route("/v3/projects:search", get(search))
            .route("/v3/projects", get(projects_by_parent))
            .route("/v3/projects/{name}", get(project_by_number))
            .route("/v3/folders", get(folders_by_parent))
            .route("/apis/serving.knative.dev/v1/namespaces/{project}/services", get(knative_services))
            .route("/v1/projects/{project}/locations/{location}/services", get(knative_located_services))
            .route("/apis/run.googleapis.com/v1/namespaces/{project}/{collection}", get(knative_list))
            .route("/v1/{parent_type}/{parent}/assets", get(assets))
            .merge(super::gcloud_fake::routes())
            .fallback(|| async { google_error(404, "NOT_FOUND", "no such method in the fake", None) })
            .layer(middleware::from_fn_with_state(Arc::clone(&world), record_writes))
            .layer(middleware::from_fn_with_state(Arc::clone(&world), faults_auth_and_log))
            .with_state(Arc::clone(&world));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake server");
        });
        FakeGoogle { base_url: format!("http://{addr}"), addr, world, task }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with(|w| w.log.clone())
    }

    /// GETs `path` as the auditor would (with the first token issued), as JSON.
    pub async fn get_json(&self, path: &str, query: &[(String, String)]) -> Value {
        let token = self.with(|w| w.issued_tokens.first().cloned()).expect("the auditor got a token first");
        super::run::http_client()
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .expect("the fake answers")
            .json()
            .await
            .expect("the fake answers JSON")
    }

    /// Writes a service-account key whose `token_uri` is this fake, readable by its owner only.
    pub fn write_key_file(&self, dir: &Path) -> PathBuf {
        let key = json!({
            "type": "service_account",
            "project_id": "auditor-host",
            "private_key_id": "test-only",
            "private_key": TEST_KEY_PEM,
            "client_email": "auditor@auditor-host.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": format!("{}/token", self.base_url),
        });
        let path = dir.join("key.json");
        std::fs::write(&path, key.to_string()).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }
}

/// A TCP server that accepts connections and closes them without answering.
pub async fn closing_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            drop(stream);
        }
    });
    (url, task)
}

pub fn google_error(code: u16, status: &str, message: &str, reason: Option<(&str, &str)>) -> Response {
    let mut details = vec![];
    if let Some((reason, service)) = reason {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": service},
        }));
    }
    let body = json!({"error": {"code": code, "message": message, "status": status, "details": details}});
    (StatusCode::from_u16(code).unwrap(), [("content-type", "application/json; charset=UTF-8")], body.to_string())
        .into_response()
}

pub fn service_disabled(service: &str) -> Value {
    json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
        "message": format!("{service} has not been used in this project before or it is disabled."),
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                     "domain": "googleapis.com", "metadata": {"service": service}}]}})
}

/// Counts a request in flight on its path for as long as it lives.
struct InFlight {
    world: Shared,
    path: String,
}

impl InFlight {
    fn enter(world: &Shared, path: &str) -> InFlight {
        let mut w = world.lock().unwrap();
        let now = w.in_flight.entry(path.to_owned()).or_default();
        *now += 1;
        let now = *now;
        let max = w.max_in_flight.entry(path.to_owned()).or_default();
        *max = (*max).max(now);
        InFlight { world: Arc::clone(world), path: path.to_owned() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut w) = self.world.lock()
            && let Some(n) = w.in_flight.get_mut(&self.path)
        {
            *n -= 1;
        }
    }
}

async fn faults_auth_and_log(State(world): State<Shared>, request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::CONNECT {
        let target = world.lock().unwrap().connect_to;
        return super::gcloud_fake::tunnel(request, target);
    }
    let _in_flight = InFlight::enter(&world, request.uri().path());
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (latency, fault, authorized, recorded) = {
        let mut w = world.lock().unwrap();
        let bearer = super::fake_auth::bearer(request.headers());
        let identity = bearer.as_ref().and_then(|t| w.auth.identities.get(t).cloned());
        w.log.push(RecordRequest::from(&request, query, identity));
        let fault = w.faults.iter_mut().find(|f| path_and_query.contains(&f.matching) && f.times != Some(0)).map(|f| {
            if let Some(n) = f.times.as_mut() {
                *n -= 1;
            }
            f.clone()
        });
        let authorized = is_credential_path(request.uri().path())
            || (w.anonymous_ok && bearer.is_none())
            || bearer.is_some_and(|t| w.fresh(&t));
        let recorded = w.recorded.get(request.uri().path()).filter(|_| request.method() == "GET").cloned();
        (w.latency, fault, authorized, recorded)
    };
    tokio::time::sleep(latency).await;
    if let Some(fault) = fault {
        tokio::time::sleep(fault.delay).await;
        if let Some(status) = fault.status {
            let body = match fault.trickle {
                None => Body::from(fault.body),
                Some(gap) => {
                    Body::from_stream(futures_util::stream::unfold(fault.body.into_bytes(), move |rest| async move {
                        if rest.is_empty() {
                            return None;
                        }
                        tokio::time::sleep(gap).await;
                        let (first, rest) = rest.split_at(1);
                        Some((Ok::<_, std::io::Error>(first.to_vec()), rest.to_vec()))
                    }))
                }
            };
            let mut response = Response::new(body);
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in fault.headers {
                response
                    .headers_mut()
                    .insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
            }
            return response;
        }
    }
    if !authorized {
        return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None);
    }
    if let Some(body) = recorded {
        return axum::Json(body).into_response();
    }
    next.run(request).await
}

/// Keeps both bodies of every request that is not a GET.
async fn record_writes(State(world): State<Shared>, request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::GET {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
    let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    let (parts, body) = response.into_parts();
    let answer = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    world.lock().unwrap().exchanges.push(Exchange {
        method,
        path,
        request: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        status: parts.status.as_u16(),
        response: serde_json::from_slice(&answer).unwrap_or(Value::Null),
    });
    Response::from_parts(parts, Body::from(answer))
}

struct RecordRequest;

impl RecordRequest {
    fn from(request: &Request, query: Vec<(String, String)>, identity: Option<String>) -> RequestRecord {
        let user_project =
            request.headers().get("x-goog-user-project").and_then(|v| v.to_str().ok()).map(str::to_owned);
        RequestRecord {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query,
            identity,
            user_project,
        }
    }
}

/// Checks a JWT-bearer assertion's signature against the test key and its claims; returns its
/// issuer (the service account the key belongs to).
pub fn verify_assertion(jwt: &str) -> Result<String, String> {
    // gcp_auth pads its base64url segments; tolerate both forms.
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| e.to_string())
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else { return Err("not three segments".into()) };
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, TEST_PUBLIC_KEY_DER);
    key.verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let scope = claims["scope"].as_str().unwrap_or("");
    if !scope.split(' ').any(|s| s == "https://www.googleapis.com/auth/cloud-platform") {
        return Err(format!("unexpected scope {scope:?}"));
    }
    if !claims["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return Err(format!("unexpected audience {}", claims["aud"]));
    }
    let now = chrono::Utc::now().timestamp();
    if !(claims["iat"].as_i64().is_some_and(|t| (t - now).abs() < 300)
        && claims["exp"].as_i64().is_some_and(|t| t > now))
    {
        return Err("iat or exp out of range".into());
    }
    claims["iss"].as_str().filter(|i| i.contains('@')).map(str::to_owned).ok_or_else(|| "no issuer".to_string())
}

/// Google answers 403 for projects that do not exist or that the caller cannot see.
pub fn project_or_error<'a>(w: &'a World, project: &str, api: &str) -> Result<&'a FakeProject, Response> {
    let p = w.projects.get(project).ok_or_else(|| {
        google_error(403, "PERMISSION_DENIED", &format!("Permission denied on resource project {project}."), None)
    })?;
    let service = match api {
        "run" => "run.googleapis.com",
        "functions" => "cloudfunctions.googleapis.com",
        _ => "binaryauthorization.googleapis.com",
    };
    if p.disabled.contains(&api) {
        return Err(google_error(
            403,
            "PERMISSION_DENIED",
            &format!("{service} has not been used in project {project} before or it is disabled."),
            Some(("SERVICE_DISABLED", service)),
        ));
    }
    Ok(p)
}

/// One page of `items` from `query`'s `pageToken`/`pageSize`; the token is an opaque offset.
pub fn page(
    items: &[Value],
    query: &BTreeMap<String, String>,
    default_size: usize,
) -> Result<(Vec<Value>, Option<String>), Response> {
    // `default_size` is also the server's maximum: Google may return fewer than asked.
    let size = match query.get("pageSize") {
        Some(s) => s.parse::<usize>().ok().filter(|n| *n > 0).unwrap_or(default_size).min(default_size),
        None => default_size,
    };
    let start = match query.get("pageToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("opaque-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| google_error(400, "INVALID_ARGUMENT", "Invalid page token.", None))?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("opaque-{end}"));
    Ok((items.get(start..end).unwrap_or_default().to_vec(), next))
}

async fn locations(
    State(world): State<Shared>,
    UrlPath(project): UrlPath<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let p = match project_or_error(&w, &project, "run") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all: Vec<Value> = p
        .locations
        .iter()
        .map(|l| {
            json!({"name": format!("projects/{project}/locations/{l}"), "locationId": l, "displayName": l,
                   "labels": {"cloud.googleapis.com/region": l}})
        })
        .collect();
    match page(&all, &query, w.page_size) {
        Ok((items, next)) => list_body("locations", items, next, &[]),
        Err(r) => r,
    }
}

async fn policy(State(world): State<Shared>, UrlPath(project): UrlPath<String>) -> Response {
    let w = world.lock().unwrap();
    let p = match project_or_error(&w, &project, "binaryauthorization") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let policy = p.policy.clone().unwrap_or_else(|| {
        json!({"name": format!("projects/{project}/policy"),
               "defaultAdmissionRule": {"evaluationMode": "ALWAYS_ALLOW", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"},
               "globalPolicyEvaluationMode": "ENABLE"})
    });
    axum::Json(policy).into_response()
}

async fn list(
    State(world): State<Shared>,
    UrlPath((project, location, collection)): UrlPath<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let api = if collection == "functions" { "functions" } else { "run" };
    let p = match project_or_error(&w, &project, api) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (items, field, unreachable): (&Vec<Value>, &str, &[String]) = match collection.as_str() {
        "services" => (&p.services, "services", &[]),
        "jobs" => (&p.jobs, "jobs", &[]),
        "workerPools" => (&p.worker_pools, "workerPools", &[]),
        "functions" => (&p.functions, "functions", &p.functions_unreachable),
        _ => return google_error(404, "NOT_FOUND", "no such collection", None),
    };
    if location == "-" && api == "run" {
        return google_error(400, "INVALID_ARGUMENT", "Location '-' is not a valid location.", None);
    }
    // `gcloud functions list` asks for `environment="GEN_2"` and lists 1st gen ones from v1.
    let environment = query.get("filter").and_then(|f| f.strip_prefix("environment=")).map(|e| e.trim_matches('"'));
    let in_location: Vec<Value> = items
        .iter()
        .filter(|item| {
            location == "-" || item["name"].as_str().is_some_and(|n| n.contains(&format!("/locations/{location}/")))
        })
        .filter(|item| environment.is_none_or(|e| item["environment"].as_str().unwrap_or("GEN_2") == e))
        .cloned()
        .collect();
    match page(&in_location, &query, w.page_size) {
        Ok((items, next)) => list_body(field, items, next, unreachable),
        Err(r) => r,
    }
}

/// `projects.get` by number: what event mode asks when a message names a project by number.
async fn project_by_number(State(world): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let w = world.lock().unwrap();
    match w.projects.keys().find(|id| project_number(id).to_string() == name) {
        Some(id) => {
            axum::Json(json!({"name": format!("projects/{name}"), "projectId": id, "state": "ACTIVE"})).into_response()
        }
        None => google_error(403, "PERMISSION_DENIED", "The caller does not have permission", None),
    }
}

async fn search(State(world): State<Shared>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let w = world.lock().unwrap();
    let wanted = query.get("query").cloned().unwrap_or_default();
    let found: Vec<Value> = w
        .search
        .iter()
        .filter(|(_, _, parent)| wanted.is_empty() || wanted == format!("parent:{parent}"))
        .map(|(id, state, parent)| {
            json!({"name": format!("projects/{}", project_number(id)), "projectId": id, "state": state,
                   "parent": parent, "displayName": id})
        })
        .collect();
    match page(&found, &query, w.page_size) {
        Ok((items, next)) => list_body("projects", items, next, &[]),
        Err(r) => r,
    }
}

/// `projects.list` / `folders.list`: the direct children of `parent` only, paged.
async fn projects_by_parent(State(world): State<Shared>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let w = world.lock().unwrap();
    let Some(parent) = query.get("parent") else {
        return google_error(400, "INVALID_ARGUMENT", "parent is required", None);
    };
    let found: Vec<Value> = w
        .search
        .iter()
        .filter(|(_, _, p)| p == parent)
        .map(|(id, state, parent)| {
            json!({"name": format!("projects/{}", project_number(id)), "projectId": id, "state": state,
                   "parent": parent, "displayName": id})
        })
        .collect();
    match page(&found, &query, w.page_size) {
        Ok((items, next)) => list_body("projects", items, next, &[]),
        Err(r) => r,
    }
}

async fn folders_by_parent(State(world): State<Shared>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let w = world.lock().unwrap();
    let Some(parent) = query.get("parent") else {
        return google_error(400, "INVALID_ARGUMENT", "parent is required", None);
    };
    let found: Vec<Value> = w
        .folders
        .iter()
        .filter(|(_, _, p)| p == parent)
        .map(|(name, state, parent)| json!({"name": name, "state": state, "parent": parent, "displayName": name}))
        .collect();
    match page(&found, &query, w.page_size) {
        Ok((items, next)) => list_body("folders", items, next, &[]),
        Err(r) => r,
    }
}

/// A stable, distinct project number for a fake project ID (real names carry either).
pub fn project_number(id: &str) -> u64 {
    let hash = id.bytes().fold(1469598103934665603u64, |h, b| (h ^ u64::from(b)).wrapping_mul(1099511628211));
    100_000_000_000 + hash % 900_000_000_000
}

pub fn list_body(field: &str, items: Vec<Value>, next: Option<String>, unreachable: &[String]) -> Response {
    // Google leaves out empty repeated fields and absent tokens.
    let mut body = serde_json::Map::new();
    if !items.is_empty() {
        body.insert(field.into(), Value::Array(items));
    }
    if let Some(t) = next {
        body.insert("nextPageToken".into(), Value::String(t));
    }
    if !unreachable.is_empty() {
        body.insert("unreachable".into(), json!(unreachable));
    }
    axum::Json(Value::Object(body)).into_response()
}

/// The Run v1 (Knative) form of a v2 resource, as the v1 API and `gcloud run ... list` show it.
pub fn knative(kind: &str, v2: &Value) -> Value {
    let name = v2["name"].as_str().unwrap_or_default();
    let parts: Vec<&str> = name.split('/').collect();
    let (location, short) = (parts.get(3).copied().unwrap_or_default(), parts.last().copied().unwrap_or_default());
    let mut annotations = serde_json::Map::new();
    let b = &v2["binaryAuthorization"];
    if b["useDefault"] == true {
        annotations.insert("run.googleapis.com/binary-authorization".into(), json!("default"));
    } else if let Some(policy) = b["policy"].as_str() {
        annotations.insert("run.googleapis.com/binary-authorization".into(), json!(policy));
    }
    if let Some(j) = b["breakglassJustification"].as_str() {
        annotations.insert("run.googleapis.com/binary-authorization-breakglass".into(), json!(j));
    }
    // Real responses: services name modifiers under serving.knative.dev/, jobs and worker
    // pools under run.googleapis.com/.
    let prefix = if kind == "Service" { "serving.knative.dev" } else { "run.googleapis.com" };
    if let Some(c) = v2["creator"].as_str() {
        annotations.insert(format!("{prefix}/creator"), json!(c));
    }
    if let Some(m) = v2["lastModifier"].as_str() {
        annotations.insert(format!("{prefix}/lastModifier"), json!(m));
    }
    let url = v2["uri"].as_str().map(str::to_owned).unwrap_or_else(|| format!("https://{short}-xyz-uc.a.run.app"));
    if kind == "Service" {
        annotations.insert("run.googleapis.com/urls".into(), json!(json!([url]).to_string()));
    }
    if let Some(target) = v2["buildConfig"]["functionTarget"].as_str() {
        annotations.insert("run.googleapis.com/build-function-target".into(), json!(target));
    }
    if let Some(uri) = v2["buildConfig"]["imageUri"].as_str() {
        annotations.insert("run.googleapis.com/build-image-uri".into(), json!(uri));
    }
    let mut labels = v2["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("cloud.googleapis.com/location".into(), json!(location));
    let generation: i64 = v2["generation"].as_str().and_then(|g| g.parse().ok()).unwrap_or(1);
    let revision = format!("{short}-{generation:05}-abc");
    let ready = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z"}]);
    let status = match kind {
        "Service" => json!({"observedGeneration": generation, "conditions": ready, "url": url,
                            "latestReadyRevisionName": revision, "latestCreatedRevisionName": revision,
                            "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": true}]}),
        _ => json!({"observedGeneration": generation, "conditions": ready}),
    };
    let (api_version, spec) = match kind {
        "Job" => (
            "run.googleapis.com/v1",
            json!({"template": {"spec": {"template": {"spec": {"containers": v2["template"]["template"]["containers"]}}}}}),
        ),
        "WorkerPool" => {
            ("run.googleapis.com/v1", json!({"template": {"spec": {"containers": v2["template"]["containers"]}}}))
        }
        _ => ("serving.knative.dev/v1", json!({"template": {"spec": {"containers": v2["template"]["containers"]}}})),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        // Real responses carry the project NUMBER as the namespace.
        "metadata": {"name": short, "namespace": project_number(parts.get(1).copied().unwrap_or_default()).to_string(),
                     "labels": labels, "annotations": annotations, "resourceVersion": format!("rv-{generation}"),
                     "uid": format!("{short}-uid"), "generation": generation, "creationTimestamp": "2026-10-01T00:00:00Z"},
        "spec": spec,
        "status": status,
    })
}

/// The Cloud Functions v1 form of a 1st gen function (as the v1 API, Asset Inventory and
/// `gcloud functions list` show it): no `environment`, no `serviceConfig`.
pub fn functions_v1_shape(v2: &Value) -> Value {
    let mut f = json!({
        "name": v2["name"],
        "status": "ACTIVE",
        "entryPoint": v2["buildConfig"]["entryPoint"].as_str().unwrap_or("main"),
        "runtime": v2["buildConfig"]["runtime"].as_str().unwrap_or("python312"),
        "httpsTrigger": {"url": "https://example.cloudfunctions.net/f", "securityLevel": "SECURE_ALWAYS"},
        "availableMemoryMb": 256,
        "timeout": "60s",
        "updateTime": v2["updateTime"].as_str().unwrap_or("2026-11-01T00:00:00Z"),
        "versionId": "1",
        "dockerRegistry": "ARTIFACT_REGISTRY",
    });
    if let Some(labels) = v2.get("labels") {
        f["labels"] = labels.clone();
    }
    let storage = &v2["buildConfig"]["source"]["storageSource"];
    if let (Some(bucket), Some(object)) = (storage["bucket"].as_str(), storage["object"].as_str()) {
        f["sourceArchiveUrl"] = json!(format!("gs://{bucket}/{object}"));
    } else {
        f["sourceUploadUrl"] =
            json!("https://storage.googleapis.com/uploads-1.us-central1.cloudfunctions.appspot.com/x.zip");
    }
    f
}

fn knative_page(w: &World, project: &str, kind: &str, query: &BTreeMap<String, String>) -> Response {
    let p = match project_or_error(w, project, "run") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items: Vec<Value> = match kind {
        "Service" => p.services.iter().map(|s| knative(kind, s)).collect(),
        "Job" => p.jobs.iter().map(|j| knative(kind, j)).collect(),
        _ => p.worker_pools.iter().map(|x| knative(kind, x)).collect(),
    };
    // Kubernetes-style paging: `limit` and `continue`, the token in `metadata.continue`.
    // Without `limit` (what gcloud sends) the whole list comes in one page, as Google's does
    // for gcloud.
    let mut paging = BTreeMap::new();
    if let Some(limit) = query.get("limit") {
        paging.insert("pageSize".to_string(), limit.clone());
    }
    if let Some(token) = query.get("continue") {
        paging.insert("pageToken".to_string(), token.clone());
    }
    let page_size = if w.knative_pages || paging.contains_key("pageSize") { w.page_size } else { usize::MAX };
    match page(&items, &paging, page_size) {
        Ok((items, next)) => {
            let mut metadata = serde_json::Map::new();
            if let Some(t) = next {
                metadata.insert("continue".into(), json!(t));
            }
            let body = json!({"apiVersion": if kind == "Service" { "serving.knative.dev/v1" } else { "run.googleapis.com/v1" },
                              "kind": format!("{kind}List"), "metadata": metadata, "items": items});
            axum::Json(body).into_response()
        }
        Err(r) => r,
    }
}

async fn knative_services(
    State(world): State<Shared>,
    UrlPath(project): UrlPath<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    knative_page(&world.lock().unwrap(), &project, "Service", &query)
}

/// `GET /v1/projects/P/locations/L/services`: what `gcloud run services list` calls, with `-`
/// for every region.
async fn knative_located_services(
    State(world): State<Shared>,
    UrlPath((project, location)): UrlPath<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    if location != "-" {
        return google_error(400, "INVALID_ARGUMENT", "this fake lists services across all regions only", None);
    }
    knative_page(&w, &project, "Service", &query)
}

async fn knative_list(
    State(world): State<Shared>,
    UrlPath((project, collection)): UrlPath<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let kind = match collection.as_str() {
        "jobs" => "Job",
        "workerpools" => "WorkerPool",
        _ => return google_error(404, "NOT_FOUND", "no such collection", None),
    };
    knative_page(&world.lock().unwrap(), &project, kind, &query)
}

/// Cloud Asset Inventory `assets.list` over every project in the world (or the one named).
async fn assets(
    State(world): State<Shared>,
    UrlPath((parent_type, parent)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let w = world.lock().unwrap();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let wanted: Vec<&str> = query.iter().filter(|(k, _)| k == "assetTypes").map(|(_, v)| v.as_str()).collect();
    if query.iter().all(|(k, v)| !(k == "contentType" && v == "RESOURCE")) {
        return google_error(400, "INVALID_ARGUMENT", "contentType must be RESOURCE in this fake", None);
    }
    let mut all = Vec::new();
    for (id, p) in &w.projects {
        if parent_type == "projects" && &parent != id {
            continue;
        }
        let number = project_number(id);
        let mut push = |asset_type: &str, name: String, data: Value| {
            if wanted.is_empty() || wanted.contains(&asset_type) {
                all.push(json!({
                    "name": name, "assetType": asset_type,
                    "resource": {"version": "v2", "discoveryName": asset_type.rsplit('/').next(),
                                 "parent": format!("//cloudresourcemanager.googleapis.com/projects/{number}"),
                                 "data": data},
                    "ancestors": [format!("projects/{number}"), format!("{parent_type}/{parent}")],
                    "updateTime": "2026-11-01T00:00:00Z",
                }));
            }
        };
        push(
            "cloudresourcemanager.googleapis.com/Project",
            format!("//cloudresourcemanager.googleapis.com/projects/{number}"),
            json!({"projectNumber": number.to_string(), "projectId": id, "lifecycleState": "ACTIVE", "name": id}),
        );
        for (asset_type, kind, items) in [
            ("run.googleapis.com/Service", "Service", &p.services),
            ("run.googleapis.com/Job", "Job", &p.jobs),
            ("run.googleapis.com/WorkerPool", "WorkerPool", &p.worker_pools),
        ] {
            for item in items {
                let data = if w.assets_in_v1_shape { knative(kind, item) } else { item.clone() };
                push(asset_type, format!("//run.googleapis.com/{}", item["name"].as_str().unwrap_or_default()), data);
            }
        }
        for f in &p.functions {
            // 1st gen functions come in the Cloud Functions v1 shape, as Google returns them.
            let data = if f["environment"] == "GEN_1" { functions_v1_shape(f) } else { f.clone() };
            push(
                "cloudfunctions.googleapis.com/Function",
                format!("//cloudfunctions.googleapis.com/{}", f["name"].as_str().unwrap_or_default()),
                data,
            );
        }
        if let Some(policy) = &p.policy {
            // Real policy assets name the project by number; Run assets by ID.
            push(
                "binaryauthorization.googleapis.com/Policy",
                format!("//binaryauthorization.googleapis.com/projects/{number}/policy"),
                policy.clone(),
            );
        }
    }
    let paging: BTreeMap<String, String> =
        query.into_iter().filter(|(k, _)| k == "pageSize" || k == "pageToken").collect();
    match page(&all, &paging, w.page_size) {
        Ok((items, next)) => list_body("assets", items, next, &[]),
        Err(r) => r,
    }
}
