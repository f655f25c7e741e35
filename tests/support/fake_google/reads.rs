//! The read methods the auditor calls, one handler each: Cloud Run v1 locations and Knative
//! lists, Cloud Run v2 and Cloud Functions v2 lists, Binary Authorization policies, Resource
//! Manager's search and tree, and Cloud Asset Inventory's feed.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use super::Shared;
use super::shapes::{
    Answer, functions_v1_shape, google_error, json, knative, list_body, list_page, page, project_number,
    project_or_error,
};
use super::world::{Api, Node, World};

type Params = Query<BTreeMap<String, String>>;

pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
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
}

async fn locations(State(world): State<Shared>, UrlPath(project): UrlPath<String>, Query(query): Params) -> Answer {
    let w = world.lock().unwrap();
    let p = project_or_error(&w.estate, &project, Api::Run)?;
    let all: Vec<Value> = p
        .locations
        .iter()
        .map(|l| {
            json!({"name": format!("projects/{project}/locations/{l}"), "locationId": l, "displayName": l,
                   "labels": {"cloud.googleapis.com/region": l}})
        })
        .collect();
    list_page("locations", &all, &query, w.behaviour.page_size)
}

async fn policy(State(world): State<Shared>, UrlPath(project): UrlPath<String>) -> Answer {
    let w = world.lock().unwrap();
    let p = project_or_error(&w.estate, &project, Api::BinaryAuthorization)?;
    let policy = p.policy.clone().unwrap_or_else(|| {
        json!({"name": format!("projects/{project}/policy"),
               "defaultAdmissionRule": {"evaluationMode": "ALWAYS_ALLOW", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"},
               "globalPolicyEvaluationMode": "ENABLE"})
    });
    Ok(json(policy))
}

/// Run v2 and Functions v2 lists of one region (functions also of `-`, every region).
async fn list(
    State(world): State<Shared>,
    UrlPath((project, location, collection)): UrlPath<(String, String, String)>,
    Query(query): Params,
) -> Answer {
    let w = world.lock().unwrap();
    let api = if collection == "functions" { Api::Functions } else { Api::Run };
    let p = project_or_error(&w.estate, &project, api)?;
    let (items, field, unreachable): (&Vec<Value>, &str, &[String]) = match collection.as_str() {
        "services" => (&p.services, "services", &[]),
        "jobs" => (&p.jobs, "jobs", &[]),
        "workerPools" => (&p.worker_pools, "workerPools", &[]),
        "functions" => (&p.functions, "functions", &p.functions_unreachable),
        _ => return Err(google_error(404, "NOT_FOUND", "no such collection", None)),
    };
    if location == "-" && api == Api::Run {
        return Err(google_error(400, "INVALID_ARGUMENT", "Location '-' is not a valid location.", None));
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
    let (items, next) = page(&in_location, &query, w.behaviour.page_size)?;
    Ok(list_body(field, items, next, unreachable))
}

/// Resource Manager's JSON for a project of the tree.
fn project_json(node: &Node) -> Value {
    json!({"name": format!("projects/{}", project_number(&node.name)), "projectId": node.name,
           "state": node.state, "parent": node.parent, "displayName": node.name})
}

/// `projects:search`: every project, or those `parent:` names (its direct children only).
async fn search(State(world): State<Shared>, Query(query): Params) -> Answer {
    let w = world.lock().unwrap();
    let wanted = query.get("query").cloned().unwrap_or_default();
    let found: Vec<Value> = w
        .estate
        .hierarchy
        .projects
        .iter()
        .filter(|node| wanted.is_empty() || wanted == format!("parent:{}", node.parent))
        .map(project_json)
        .collect();
    list_page("projects", &found, &query, w.behaviour.page_size)
}

/// `projects.get` by number: what event mode asks when a message names a project by number.
async fn project_by_number(State(world): State<Shared>, UrlPath(name): UrlPath<String>) -> Answer {
    let w = world.lock().unwrap();
    let id = w
        .estate
        .projects
        .keys()
        .find(|id| project_number(id).to_string() == name)
        .ok_or_else(|| google_error(403, "PERMISSION_DENIED", "The caller does not have permission", None))?;
    Ok(json(json!({"name": format!("projects/{name}"), "projectId": id, "state": "ACTIVE"})))
}

/// `projects.list` / `folders.list`: the direct children of `parent` only, paged.
async fn projects_by_parent(State(world): State<Shared>, Query(query): Params) -> Answer {
    let w = world.lock().unwrap();
    let parent = required_parent(&query)?;
    let found: Vec<Value> =
        w.estate.hierarchy.projects.iter().filter(|node| &node.parent == parent).map(project_json).collect();
    list_page("projects", &found, &query, w.behaviour.page_size)
}

async fn folders_by_parent(State(world): State<Shared>, Query(query): Params) -> Answer {
    let w = world.lock().unwrap();
    let parent = required_parent(&query)?;
    let found: Vec<Value> = w
        .estate
        .hierarchy
        .folders
        .iter()
        .filter(|node| &node.parent == parent)
        .map(|node| json!({"name": node.name, "state": node.state, "parent": node.parent, "displayName": node.name}))
        .collect();
    list_page("folders", &found, &query, w.behaviour.page_size)
}

fn required_parent(query: &BTreeMap<String, String>) -> Result<&String, axum::response::Response> {
    query.get("parent").ok_or_else(|| google_error(400, "INVALID_ARGUMENT", "parent is required", None))
}

/// A Knative list (`ServiceList`, `JobList`, `WorkerPoolList`) of every region.
fn knative_page(w: &World, project: &str, kind: &str, query: &BTreeMap<String, String>) -> Answer {
    let p = project_or_error(&w.estate, project, Api::Run)?;
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
    let paged = w.behaviour.knative_pages || paging.contains_key("pageSize");
    let (items, next) = page(&items, &paging, if paged { w.behaviour.page_size } else { usize::MAX })?;
    let mut metadata = serde_json::Map::new();
    if let Some(t) = next {
        metadata.insert("continue".into(), json!(t));
    }
    let api_version = if kind == "Service" { "serving.knative.dev/v1" } else { "run.googleapis.com/v1" };
    Ok(json(json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": metadata, "items": items})))
}

async fn knative_services(
    State(world): State<Shared>,
    UrlPath(project): UrlPath<String>,
    Query(query): Params,
) -> Answer {
    knative_page(&world.lock().unwrap(), &project, "Service", &query)
}

/// `GET /v1/projects/P/locations/L/services`: what `gcloud run services list` calls, with `-`
/// for every region.
async fn knative_located_services(
    State(world): State<Shared>,
    UrlPath((project, location)): UrlPath<(String, String)>,
    Query(query): Params,
) -> Answer {
    if location != "-" {
        return Err(google_error(400, "INVALID_ARGUMENT", "this fake lists services across all regions only", None));
    }
    knative_page(&world.lock().unwrap(), &project, "Service", &query)
}

async fn knative_list(
    State(world): State<Shared>,
    UrlPath((project, collection)): UrlPath<(String, String)>,
    Query(query): Params,
) -> Answer {
    let kind = match collection.as_str() {
        "jobs" => "Job",
        "workerpools" => "WorkerPool",
        _ => return Err(google_error(404, "NOT_FOUND", "no such collection", None)),
    };
    knative_page(&world.lock().unwrap(), &project, kind, &query)
}

/// Cloud Asset Inventory `assets.list` over every project in the world (or the one named).
async fn assets(
    State(world): State<Shared>,
    UrlPath((parent_type, parent)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
) -> Answer {
    let w = world.lock().unwrap();
    // `assetTypes` repeats, so the query is read as pairs.
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let wanted: Vec<&str> = query.iter().filter(|(k, _)| k == "assetTypes").map(|(_, v)| v.as_str()).collect();
    if query.iter().all(|(k, v)| !(k == "contentType" && v == "RESOURCE")) {
        return Err(google_error(400, "INVALID_ARGUMENT", "contentType must be RESOURCE in this fake", None));
    }
    let mut all = Vec::new();
    for (id, p) in &w.estate.projects {
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
                let data = if w.behaviour.assets_in_v1_shape { knative(kind, item) } else { item.clone() };
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
    list_page("assets", &all, &paging, w.behaviour.page_size)
}
