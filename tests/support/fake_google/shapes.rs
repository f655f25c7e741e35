//! Google's answers as the fake writes them: `google.rpc.Status` errors, pages and list
//! bodies, and the other shapes a resource is shown in (Run v1 Knative, Cloud Functions v1),
//! derived from the v2 resources the estate holds so that each resource is written once.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::world::{Api, Estate, FakeProject};

/// A handler's answer: `Err` is the error Google would send, so handlers can use `?`.
pub type Answer = Result<Response, Response>;

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

pub fn not_found(what: &str) -> Response {
    google_error(404, "NOT_FOUND", &format!("Resource '{what}' was not found"), None)
}

pub fn json(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// The project as `api` shows it. Google answers 403 for projects that do not exist or that
/// the caller cannot see, and 403 `SERVICE_DISABLED` for an API not enabled there.
pub fn project_or_error<'a>(estate: &'a Estate, project: &str, api: Api) -> Result<&'a FakeProject, Response> {
    let p = estate.projects.get(project).ok_or_else(|| {
        google_error(403, "PERMISSION_DENIED", &format!("Permission denied on resource project {project}."), None)
    })?;
    if p.disabled.contains(&api) {
        let service = api.service();
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

/// One page of `items` as Google's list body under `field`.
pub fn list_page(field: &str, items: &[Value], query: &BTreeMap<String, String>, page_size: usize) -> Answer {
    let (items, next) = page(items, query, page_size)?;
    Ok(list_body(field, items, next, &[]))
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
    // The v2 `trafficStatuses` when the test set them, else all traffic to the latest.
    let latest = v2["latestReadyRevision"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or(&revision).to_owned();
    let traffic = match v2["trafficStatuses"].as_array() {
        Some(targets) => targets
            .iter()
            .map(|t| {
                let mut target = json!({"percent": t["percent"].as_i64().unwrap_or(0)});
                match t["revision"].as_str().and_then(|r| r.rsplit('/').next()) {
                    Some(r) => target["revisionName"] = json!(r),
                    None => target["latestRevision"] = json!(true),
                }
                if let Some(tag) = t["tag"].as_str() {
                    target["tag"] = json!(tag);
                    target["url"] = json!(format!("https://{tag}---{short}-xyz-uc.a.run.app"));
                }
                target
            })
            .collect(),
        None => vec![json!({"revisionName": latest, "percent": 100, "latestRevision": true})],
    };
    let status = match kind {
        "Service" => json!({"observedGeneration": generation, "conditions": ready, "url": url,
                            "latestReadyRevisionName": latest, "latestCreatedRevisionName": latest,
                            "traffic": traffic}),
        // A worker pool's instance splits, when the test set them (v2 `instanceSplitStatuses`).
        "WorkerPool" if v2.get("instanceSplitStatuses").is_some() => {
            let splits: Vec<Value> = v2["instanceSplitStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let revision = t["revision"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default();
                    json!({"revisionName": revision, "percent": t["percent"].as_i64().unwrap_or(0)})
                })
                .collect();
            json!({"observedGeneration": generation, "conditions": ready, "latestReadyRevisionName": latest,
                   "latestCreatedRevisionName": latest, "instanceSplits": splits})
        }
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
    let mut spec = spec;
    if kind == "Service" && v2.get("trafficStatuses").is_some() {
        // What the test set is what the service asks for (`spec.traffic`) and what it gets.
        spec["traffic"] = json!(
            traffic
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t.as_object_mut().unwrap().remove("url");
                    t
                })
                .collect::<Vec<_>>()
        );
    }
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
