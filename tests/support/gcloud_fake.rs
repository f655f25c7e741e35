//! What the real `gcloud` (528) asks of Google beyond the auditor's own reads, so that the
//! printed fixes can be run through it against the fake, and the fake applies each change as
//! Google would. Observed with `gcloud --log-http` against a recording server:
//!
//! - `run services|jobs update --region R`: GET then PUT of the Knative object on the regional
//!   host (through gcloud's proxy setting, so requests arrive in absolute form); gcloud is done
//!   when the PUT answer is Ready for its generation (jobs GET it twice more).
//! - `beta run worker-pools update`: gRPC over TLS, tunnelled with `CONNECT` to
//!   `tests/support/fake_run_grpc.py`, which turns it into the v2 REST calls served here.
//! - `functions deploy --source=gs://B/O`: GET (v2), runtimes, Service Usage, Cloud Build's
//!   default service account, Resource Manager v1 project and IAM policy, then PATCH with an
//!   `updateMask`, then operations GETs (an operation needs `metadata`).
//! - `alpha functions upgrade`: the v2alpha `setupFunctionUpgradeConfig`,
//!   `redirectFunctionUpgradeTraffic`, `commitFunctionUpgrade` state machine, then a regional
//!   GET of the function's Run service.
//! - `container binauthz policy import`: PUT of the whole policy, etag included.
//! - `functions list`: the v2 list filtered on `environment="GEN_2"`, then the v1 list.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::fake_google::Shared;
use super::fake_google::shapes::{
    Answer, functions_v1_shape, google_error, json, knative, list_page, not_found, project_number, project_or_error,
};
use super::fake_google::world::{Api, World};
use super::resources::set;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/apis/serving.knative.dev/v1/namespaces/{project}/services/{name}", get(get_service).put(put_service))
        .route(
            "/apis/run.googleapis.com/v1/namespaces/{project}/{collection}/{name}",
            get(get_knative).put(put_knative),
        )
        .route("/v1/projects/{project}/policy", axum::routing::put(put_policy))
        .route("/v2/projects/{project}/locations/{location}/runtimes", get(runtimes))
        .route(
            "/v2/projects/{project}/locations/{location}/{collection}/{name}",
            get(v2_get).patch(v2_patch).post(v2_post),
        )
        .route(
            "/v2alpha/projects/{project}/locations/{location}/{collection}/{name}",
            get(v2_get).patch(v2_patch).post(v2_post),
        )
        .route("/v1/projects/{project}/locations/{location}/functions", get(functions_v1_list))
        .route("/v1/projects/{project}/locations/{location}/defaultServiceAccount", get(build_service_account))
        .route("/v1/projects/{project}/services/{service}", get(service_usage))
        .route("/v1/projects/{project}", get(crm_project).post(crm_verb))
}

/// Answers `CONNECT` and pipes the connection to `target` (gcloud's gRPC goes through its
/// HTTP proxy setting like everything else).
pub fn tunnel(request: Request, target: Option<SocketAddr>) -> Response {
    let Some(target) = target else {
        return (StatusCode::BAD_GATEWAY, "the fake has nowhere to tunnel to").into_response();
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            let mut client = hyper_util::rt::TokioIo::new(upgraded);
            if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
    });
    StatusCode::OK.into_response()
}

/// The v2 resource `NAME` of `collection` (`services`, `jobs`, `workerPools`, `functions`).
fn find<'a>(w: &'a mut World, project: &str, collection: &str, name: &str) -> Option<&'a mut Value> {
    let p = w.estate.projects.get_mut(project)?;
    let items = match collection {
        "services" => &mut p.services,
        "jobs" => &mut p.jobs,
        "workerPools" | "workerpools" => &mut p.worker_pools,
        "functions" => &mut p.functions,
        _ => return None,
    };
    items.iter_mut().find(|item| item["name"].as_str().is_some_and(|n| n.rsplit('/').next() == Some(name)))
}

fn knative_kind(collection: &str) -> Option<(&'static str, &'static str)> {
    match collection {
        "services" => Some(("Service", "services")),
        "jobs" => Some(("Job", "jobs")),
        "workerpools" => Some(("WorkerPool", "workerPools")),
        _ => None,
    }
}

async fn get_service(state: State<Shared>, UrlPath((project, name)): UrlPath<(String, String)>) -> Answer {
    get_knative(state, UrlPath((project, "services".into(), name))).await
}

async fn put_service(
    state: State<Shared>,
    UrlPath((project, name)): UrlPath<(String, String)>,
    body: axum::Json<Value>,
) -> Answer {
    put_knative(state, UrlPath((project, "services".into(), name)), body).await
}

async fn get_knative(
    State(world): State<Shared>,
    UrlPath((project, collection, name)): UrlPath<(String, String, String)>,
) -> Answer {
    let mut w = world.lock().unwrap();
    project_or_error(&w.estate, &project, Api::Run)?;
    let (kind, v2_collection) = knative_kind(&collection).ok_or_else(|| not_found(&collection))?;
    let v2 = find(&mut w, &project, v2_collection, &name).ok_or_else(|| not_found(&name))?;
    Ok(json(knative(kind, v2)))
}

/// `ReplaceService` / `ReplaceJob`: the Knative object comes back whole; its Binary
/// Authorization annotations decide the v2 `binaryAuthorization`, as Google's are two views of
/// one resource.
async fn put_knative(
    State(world): State<Shared>,
    UrlPath((project, collection, name)): UrlPath<(String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Answer {
    let mut w = world.lock().unwrap();
    project_or_error(&w.estate, &project, Api::Run)?;
    let (kind, v2_collection) = knative_kind(&collection).ok_or_else(|| not_found(&collection))?;
    let v2 = find(&mut w, &project, v2_collection, &name).ok_or_else(|| not_found(&name))?;
    let annotations = &body["metadata"]["annotations"];
    let breakglass = annotations["run.googleapis.com/binary-authorization-breakglass"].as_str();
    let setting = match annotations["run.googleapis.com/binary-authorization"].as_str() {
        None => Value::Null,
        Some("default") => json!({"useDefault": true}),
        Some(policy) => json!({"policy": policy}),
    };
    let setting = match (setting, breakglass) {
        (Value::Object(mut s), Some(why)) => {
            s.insert("breakglassJustification".into(), json!(why));
            Value::Object(s)
        }
        (s, _) => s,
    };
    *v2 = set(v2.take(), "/binaryAuthorization", setting);
    // `run services update-traffic`: the traffic asked for is what serves (services whose
    // test set their traffic).
    if let (true, Some(traffic)) = (v2.get("trafficStatuses").is_some(), body["spec"]["traffic"].as_array()) {
        let latest = v2["latestReadyRevision"].as_str().unwrap_or_default().to_owned();
        let statuses: Vec<Value> = traffic
            .iter()
            .map(|t| {
                let revision = match t["revisionName"].as_str() {
                    Some(r) => format!("{}/revisions/{r}", v2["name"].as_str().unwrap_or_default()),
                    None => latest.clone(),
                };
                let mut status = json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision,
                                        "percent": t["percent"].as_i64().unwrap_or(0)});
                if let Some(tag) = t["tag"].as_str() {
                    status["tag"] = json!(tag);
                }
                status
            })
            .collect();
        v2["trafficStatuses"] = json!(statuses);
    }
    bump_generation(v2);
    Ok(json(knative(kind, v2)))
}

fn bump_generation(v2: &mut Value) {
    let generation: i64 = v2["generation"].as_str().and_then(|g| g.parse().ok()).unwrap_or(1);
    v2["generation"] = json!((generation + 1).to_string());
}

/// `UpdatePolicy`: the whole policy; an etag that is not the current one is refused.
async fn put_policy(
    State(world): State<Shared>,
    UrlPath(project): UrlPath<String>,
    axum::Json(mut body): axum::Json<Value>,
) -> Answer {
    let mut w = world.lock().unwrap();
    project_or_error(&w.estate, &project, Api::BinaryAuthorization)?;
    let p = w.estate.projects.get_mut(&project).expect("checked above");
    let current = p.policy.as_ref().and_then(|c| c["etag"].as_str().map(str::to_owned));
    if let (Some(sent), Some(current)) = (body["etag"].as_str(), &current)
        && sent != current
    {
        return Err(google_error(409, "ABORTED", "fake: etag mismatch", None));
    }
    let serial = current.and_then(|e| e.trim_matches('"').strip_prefix("etag-")?.parse::<u64>().ok()).unwrap_or(0);
    body["name"] = json!(format!("projects/{project}/policy"));
    body["etag"] = json!(format!("\"etag-{}\"", serial + 1));
    body["updateTime"] = json!("2026-11-29T00:00:00Z");
    p.policy = Some(body.clone());
    Ok(json(body))
}

async fn runtimes() -> Response {
    let runtime = |name: &str| json!({"name": name, "environment": "GEN_2", "stage": "GA", "displayName": name});
    json(json!({"runtimes": [runtime("python312"), runtime("nodejs20"), runtime("go122")]}))
}

/// Splits `NAME:verb`.
fn name_and_verb(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once(':') {
        Some((name, verb)) => (name, Some(verb)),
        None => (segment, None),
    }
}

async fn v2_get(
    State(world): State<Shared>,
    UrlPath((project, _location, collection, name)): UrlPath<(String, String, String, String)>,
) -> Answer {
    let mut w = world.lock().unwrap();
    if collection == "operations" {
        let key = format!("{project}/{name}");
        return w.estate.operations.get(&key).cloned().map(json).ok_or_else(|| not_found(&name));
    }
    project_or_error(&w.estate, &project, api_of(&collection))?;
    let item = find(&mut w, &project, &collection, &name).ok_or_else(|| not_found(&name))?;
    Ok(json(item.clone()))
}

/// The API a v2 collection belongs to.
fn api_of(collection: &str) -> Api {
    if collection == "functions" { Api::Functions } else { Api::Run }
}

fn operation(w: &mut World, project: &str, location: &str, response: Option<Value>) -> Value {
    let id = format!("op-{}", w.estate.operations.len() + 1);
    let mut op = json!({"name": format!("projects/{project}/locations/{location}/operations/{id}"), "done": true,
                        "metadata": {}});
    if let Some(response) = response {
        op["response"] = response;
    }
    w.estate.operations.insert(format!("{project}/{id}"), op.clone());
    // gcloud only needs the name from the first answer, then polls.
    op["done"] = json!(false);
    op
}

/// `functions.patch` (what `gcloud functions deploy` sends) and `workerPools.patch` (what the
/// gRPC bridge turns `UpdateWorkerPool` into).
async fn v2_patch(
    State(world): State<Shared>,
    UrlPath((project, location, collection, name)): UrlPath<(String, String, String, String)>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Answer {
    let mut w = world.lock().unwrap();
    project_or_error(&w.estate, &project, api_of(&collection))?;
    match collection.as_str() {
        "functions" => patch_function(&mut w, &project, &location, &name, &query, &body),
        "workerPools" => {
            let pool = find(&mut w, &project, "workerPools", &name).ok_or_else(|| not_found(&name))?;
            // A full replace without a mask (`allow_missing`): the body's setting is the setting.
            let setting = match &body["binaryAuthorization"] {
                b if b["useDefault"] == true || b["policy"].as_str().is_some_and(|p| !p.is_empty()) => {
                    let mut b = b.clone();
                    if b["policy"] == "" {
                        b.as_object_mut().unwrap().remove("policy");
                    }
                    if b["breakglassJustification"] == "" {
                        b.as_object_mut().unwrap().remove("breakglassJustification");
                    }
                    b
                }
                _ => Value::Null,
            };
            *pool = set(pool.take(), "/binaryAuthorization", setting);
            bump_generation(pool);
            let updated = pool.clone();
            Ok(json(operation(&mut w, &project, &location, Some(updated))))
        }
        other => Err(not_found(other)),
    }
}

fn patch_function(
    w: &mut World,
    project: &str,
    location: &str,
    name: &str,
    query: &std::collections::BTreeMap<String, String>,
    body: &Value,
) -> Answer {
    let mask: Vec<&str> = query.get("updateMask").map(|m| m.split(',').collect()).unwrap_or_default();
    let function = find(w, project, "functions", name).ok_or_else(|| not_found(name))?;
    if function["environment"] == "GEN_1" {
        return Err(google_error(
            400,
            "INVALID_ARGUMENT",
            "Binary authorization is not supported for 1st gen functions",
            None,
        ));
    }
    let mut backing_setting = None;
    if mask.contains(&"service_config.binary_authorization_policy") {
        let policy = body["serviceConfig"]["binaryAuthorizationPolicy"].clone();
        *function = set(function.take(), "/serviceConfig/binaryAuthorizationPolicy", policy.clone());
        // Cloud Functions applies the setting to the Run service it manages.
        backing_setting = Some(match policy.as_str() {
            Some("default") => json!({"useDefault": true}),
            Some(p) if !p.is_empty() => json!({"policy": p}),
            _ => Value::Null,
        });
    }
    if mask.contains(&"build_config.source") {
        let source = body["buildConfig"]["source"].clone();
        let mut resolved = source["storageSource"].clone();
        if resolved.is_object() {
            resolved["generation"] = json!("1764400000000000");
        }
        *function = set(function.take(), "/buildConfig/source", source);
        *function = set(function.take(), "/buildConfig/sourceProvenance", json!({"resolvedStorageSource": resolved}));
    }
    let service = function["serviceConfig"]["service"].as_str().map(str::to_owned);
    let updated = function.clone();
    if let (Some(setting), Some(service)) = (backing_setting, service)
        && let Some(short) = service.rsplit('/').next()
        && let Some(backing) = find(w, project, "services", short)
    {
        *backing = set(backing.take(), "/binaryAuthorization", setting);
    }
    Ok(json(operation(w, project, location, Some(updated))))
}

/// The upgrade of a 1st gen function (`v2alpha`, `gcloud alpha functions upgrade`): each
/// step is accepted only from the states gcloud itself checks for.
async fn v2_post(
    State(world): State<Shared>,
    UrlPath((project, location, collection, segment)): UrlPath<(String, String, String, String)>,
) -> Answer {
    let mut w = world.lock().unwrap();
    project_or_error(&w.estate, &project, Api::Functions)?;
    let (name, verb) = name_and_verb(&segment);
    if collection != "functions" {
        return Err(not_found(&collection));
    }
    let (from, to): (&[&str], &str) = match verb {
        Some("setupFunctionUpgradeConfig") => (
            &["ELIGIBLE_FOR_2ND_GEN_UPGRADE", "SETUP_FUNCTION_UPGRADE_CONFIG_ERROR"],
            "SETUP_FUNCTION_UPGRADE_CONFIG_SUCCESSFUL",
        ),
        Some("redirectFunctionUpgradeTraffic") => (
            &["SETUP_FUNCTION_UPGRADE_CONFIG_SUCCESSFUL", "REDIRECT_FUNCTION_UPGRADE_TRAFFIC_ERROR"],
            "REDIRECT_FUNCTION_UPGRADE_TRAFFIC_SUCCESSFUL",
        ),
        Some("commitFunctionUpgrade") => {
            (&["REDIRECT_FUNCTION_UPGRADE_TRAFFIC_SUCCESSFUL", "COMMIT_FUNCTION_UPGRADE_ERROR"], "GEN_2")
        }
        _ => return Err(google_error(400, "INVALID_ARGUMENT", &format!("unknown method {segment}"), None)),
    };
    let backing_name = format!("projects/{project}/locations/{location}/services/{name}");
    let function = find(&mut w, &project, "functions", name).ok_or_else(|| not_found(name))?;
    let state = function["upgradeInfo"]["upgradeState"].as_str().unwrap_or_default().to_owned();
    if !from.contains(&state.as_str()) {
        return Err(google_error(
            400,
            "FAILED_PRECONDITION",
            &format!("the function's upgrade state is {state}"),
            None,
        ));
    }
    let mut created = None;
    if to == "GEN_2" {
        *function = set(function.take(), "/environment", json!("GEN_2"));
        *function = set(function.take(), "/upgradeInfo", Value::Null);
    } else {
        *function = set(function.take(), "/upgradeInfo/upgradeState", json!(to));
        if to == "SETUP_FUNCTION_UPGRADE_CONFIG_SUCCESSFUL" {
            let uri = format!("https://{name}-{}.{location}.run.app", project_number(&project));
            *function =
                set(function.take(), "/upgradeInfo/serviceConfig", json!({"service": backing_name, "uri": uri}));
            *function = set(function.take(), "/serviceConfig/service", json!(backing_name));
            created = Some(uri);
        }
    }
    let updated = function.clone();
    if let Some(uri) = created
        && find(&mut w, &project, "services", name).is_none()
    {
        // The 2nd gen copy runs on a Run service Cloud Functions manages, without Binary
        // Authorization until a deploy sets it.
        let service = super::resources::backing_service(&project, &location, name);
        let service = set(set(service, "/binaryAuthorization", Value::Null), "/uri", json!(uri));
        w.estate.projects.get_mut(&project).expect("checked above").services.push(service);
    }
    Ok(json(operation(&mut w, &project, &location, Some(updated))))
}

/// Cloud Functions v1 list: 1st gen functions in the v1 shape.
async fn functions_v1_list(
    State(world): State<Shared>,
    UrlPath((project, _location)): UrlPath<(String, String)>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Answer {
    let w = world.lock().unwrap();
    let p = project_or_error(&w.estate, &project, Api::Functions)?;
    let gen1: Vec<Value> = p.functions.iter().filter(|f| f["environment"] == "GEN_1").map(functions_v1_shape).collect();
    list_page("functions", &gen1, &query, w.behaviour.page_size)
}

async fn build_service_account(UrlPath((project, location)): UrlPath<(String, String)>) -> Response {
    json(json!({
        "name": format!("projects/{project}/locations/{location}/defaultServiceAccount"),
        "serviceAccountEmail": format!("projects/{project}/serviceAccounts/{}-compute@developer.gserviceaccount.com", project_number(&project)),
    }))
}

async fn service_usage(UrlPath((project, service)): UrlPath<(String, String)>) -> Response {
    let number = project_number(&project);
    json(json!({"name": format!("projects/{number}/services/{service}"), "parent": format!("projects/{number}"),
                "state": "ENABLED"}))
}

/// Resource Manager v1 `projects.get`.
async fn crm_project(UrlPath(project): UrlPath<String>) -> Response {
    json(json!({"projectNumber": project_number(&project).to_string(), "projectId": project,
                "lifecycleState": "ACTIVE", "name": project}))
}

/// Resource Manager v1 `projects.getIamPolicy`.
async fn crm_verb(UrlPath(segment): UrlPath<String>) -> Response {
    match name_and_verb(&segment) {
        (_, Some("getIamPolicy")) => json(json!({"version": 1, "etag": "BwYAAAAAAAA=", "bindings": []})),
        _ => not_found(&segment),
    }
}
