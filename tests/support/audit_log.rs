//! Admin Activity audit log entries as Google writes them for a deploy, a delete or a policy
//! edit: the shape of real Cloud Run v1 entries (project ID in `resource.labels.project_id`,
//! `namespaces/PROJECT/services/NAME`, empty `configuration_name`/`revision_name`), and of
//! Google's documentation for the APIs no real entry was found for (tests/fixtures/audit-log/
//! keeps a real one, with its provenance).

use serde_json::{Value, json};

fn entry(service: &str, method: &str, resource_name: &str, resource: Value, project: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "insertId": format!("{:x}", now.timestamp_nanos_opt().unwrap_or_default()),
        "logName": format!("projects/{project}/logs/cloudaudit.googleapis.com%2Factivity"),
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "deployer@example.com"},
            "requestMetadata": {"callerSuppliedUserAgent": "google-cloud-sdk gcloud/528.0.0 command/gcloud.run.deploy"},
            "serviceName": service,
            "methodName": method,
            "resourceName": resource_name,
        },
        "resource": resource,
        "severity": "NOTICE",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "receiveTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    })
}

/// `gcloud run deploy` / `services delete` (Run v1: one entry per call, no operation).
pub fn run_v1_service(method: &str, project: &str, location: &str, name: &str) -> Value {
    entry(
        "run.googleapis.com",
        &format!("google.cloud.run.v1.Services.{method}"),
        &format!("namespaces/{project}/services/{name}"),
        json!({"type": "cloud_run_revision", "labels": {"configuration_name": "", "location": location,
               "project_id": project, "revision_name": "", "service_name": name}}),
        project,
    )
}

/// `gcloud run jobs create|deploy|delete` (Run v1).
pub fn run_v1_job(method: &str, project: &str, location: &str, name: &str) -> Value {
    entry(
        "run.googleapis.com",
        &format!("google.cloud.run.v1.Jobs.{method}"),
        &format!("namespaces/{project}/jobs/{name}"),
        json!({"type": "cloud_run_job", "labels": {"job_name": name, "location": location, "project_id": project}}),
        project,
    )
}

/// A Functions v2 operation's entry (`first` or `last`).
pub fn functions_v2(method: &str, project: &str, region: &str, name: &str, last: bool) -> Value {
    let mut e = entry(
        "cloudfunctions.googleapis.com",
        &format!("google.cloud.functions.v2.FunctionService.{method}"),
        &format!("projects/{project}/locations/{region}/functions/{name}"),
        json!({"type": "cloud_function", "labels": {"function_name": name, "project_id": project, "region": region}}),
        project,
    );
    let flag = if last { "last" } else { "first" };
    e["operation"] = json!({"id": format!("operations/{project}/{region}/op-{name}"),
                            "producer": "cloudfunctions.googleapis.com", flag: true});
    e
}

/// `gcloud container binauthz policy import`.
pub fn update_policy(project: &str) -> Value {
    let method = "google.cloud.binaryauthorization.v1.BinauthzManagementServiceV1.UpdatePolicy";
    entry(
        "binaryauthorization.googleapis.com",
        method,
        &format!("projects/{project}/policy"),
        json!({"type": "audited_resource", "labels": {"method": method, "project_id": project,
               "service": "binaryauthorization.googleapis.com"}}),
        project,
    )
}

/// The same entry for a call that failed (`protoPayload.status`, severity ERROR).
pub fn failed(mut entry: Value) -> Value {
    entry["protoPayload"]["status"] = json!({"code": 10, "message": "Conflict for resource: version mismatch"});
    entry["severity"] = json!("ERROR");
    entry
}
