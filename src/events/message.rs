//! What a Pub/Sub message says changed. Pure: a message's bytes in, a [`Trigger`] (which one
//! workload, or which project's policy, to read again) or the reason it is ignored out.
//!
//! Messages are triggers, never verdicts: an audit log's `request` can be partial, so the
//! auditor re-reads what changed. The shapes follow real Cloud Run audit entries (project ID
//! in `resource.labels.project_id`, `namespaces/PROJECT/services/NAME` as the v1
//! `resourceName`, empty `configuration_name`), Google's documentation for the other APIs, and
//! Cloud Asset Inventory's `TemporalAsset` for feed messages.

use serde::Deserialize;
use serde_json::Value;

use crate::collect::asset::Holds;
use crate::inventory::Kind;
use crate::wire::wire_enum;

/// What to read again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// One workload; a read that finds nothing removes it.
    Workload { project: String, kind: Kind, location: String, name: String },
    /// The project's Binary Authorization policy, against which its last-known workloads are
    /// evaluated again.
    Policy { project: String },
}

impl Trigger {
    pub fn project(&self) -> &str {
        match self {
            Trigger::Workload { project, .. } | Trigger::Policy { project } => project,
        }
    }
}

wire_enum! {
    /// Why a message changes nothing (the `reason` label of `binauthz_events_ignored_total`).
    pub enum Ignored {
        /// Not JSON, not a LogEntry or TemporalAsset, or missing what names the resource.
        Malformed = "malformed",
        /// A method that does not change what the auditor reads (e.g. `SetIamPolicy`).
        UnknownMethod = "unknown_method",
        /// The call failed (`protoPayload.status.code` set): nothing changed.
        FailedCall = "failed_call",
        /// A project `[scope]` does not cover.
        OutOfScope = "out_of_scope",
        /// The first message of an Asset Inventory feed is a plain-text greeting.
        FeedWelcome = "feed_welcome",
    }
}

/// Where the messages come from (`[events] source`; the `source` label of
/// `binauthz_events_received_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    AuditLog,
    AssetFeed,
}

impl Feed {
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::AuditLog => "audit_log",
            Feed::AssetFeed => "asset_feed",
        }
    }
}

/// A message's trigger and the time the change happened (LogEntry `timestamp`, or the asset's
/// `updateTime`/`window.startTime`), for the lag metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub trigger: Trigger,
    pub happened_at: Option<String>,
}

pub fn parse(feed: Feed, data: &[u8]) -> Result<Parsed, Ignored> {
    match feed {
        Feed::AuditLog => audit_log(data),
        Feed::AssetFeed => asset_feed(data),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LogEntry {
    proto_payload: AuditLog,
    resource: MonitoredResource,
    timestamp: Option<String>,
    log_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AuditLog {
    method_name: String,
    resource_name: String,
    status: Option<Status>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    code: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MonitoredResource {
    labels: std::collections::BTreeMap<String, String>,
}

/// What kind of change a method makes, by its full name.
fn method_target(method: &str) -> Option<MethodTarget> {
    let mut parts = method.split('.');
    let (google, cloud, api, version) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (service, rpc) = (parts.next()?, parts.next()?);
    if (google, cloud) != ("google", "cloud") || parts.next().is_some() {
        return None;
    }
    let changes = |verbs: &[&str]| verbs.iter().any(|v| rpc.starts_with(v));
    let target = match (api, service) {
        ("run", "Services") if changes(&["Create", "Replace", "Update", "Delete"]) => {
            MethodTarget::Workload(Kind::Service)
        }
        ("run", "Jobs") if changes(&["Create", "Replace", "Update", "Delete"]) => MethodTarget::Workload(Kind::Job),
        // v1 worker-pool method names are not evidenced: any write on the service counts.
        ("run", "WorkerPools") if changes(&["Create", "Replace", "Update", "Delete"]) => {
            MethodTarget::Workload(Kind::WorkerPool)
        }
        ("functions", "FunctionService" | "CloudFunctionsService")
            if changes(&[
                "Create", "Update", "Delete", "Setup", "Redirect", "Rollback", "Commit", "Abort", "Detach",
            ]) =>
        {
            MethodTarget::Workload(Kind::Function)
        }
        ("binaryauthorization", s) if s.starts_with("BinauthzManagementService") && rpc == "UpdatePolicy" => {
            MethodTarget::Policy
        }
        _ => return None,
    };
    // Functions log v2alpha and v2beta names too (`gcloud alpha functions upgrade`).
    version.starts_with('v').then_some(target)
}

enum MethodTarget {
    Workload(Kind),
    Policy,
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

fn audit_log(data: &[u8]) -> Result<Parsed, Ignored> {
    let entry: LogEntry = serde_json::from_slice(data).map_err(|_| Ignored::Malformed)?;
    let payload = &entry.proto_payload;
    if payload.method_name.is_empty() {
        return Err(Ignored::Malformed);
    }
    let target = method_target(&payload.method_name).ok_or(Ignored::UnknownMethod)?;
    if payload.status.as_ref().is_some_and(|s| s.code != 0) {
        return Err(Ignored::FailedCall);
    }
    let labels = &entry.resource.labels;
    let segments: Vec<&str> = payload.resource_name.split('/').collect();
    let after = |key: &str| segments.windows(2).find(|w| w[0] == key).map(|w| w[1]).filter(|s| !s.is_empty());
    // The label is always the project ID; a resource name may carry the number.
    let project = non_empty(labels.get("project_id"))
        .or_else(|| after("namespaces").or_else(|| after("projects")))
        .or_else(|| entry.log_name.strip_prefix("projects/").and_then(|r| r.split('/').next()))
        .ok_or(Ignored::Malformed)?;
    let trigger = match target {
        MethodTarget::Policy => Trigger::Policy { project: project.to_owned() },
        MethodTarget::Workload(kind) => {
            let label_name = match kind {
                Kind::Service => "service_name",
                Kind::Job => "job_name",
                Kind::WorkerPool => "worker_pool_name",
                Kind::Function => "function_name",
            };
            let name = segments
                .last()
                .filter(|n| segments.len() >= 4 && !n.is_empty())
                .copied()
                .or_else(|| non_empty(labels.get(label_name)))
                .ok_or(Ignored::Malformed)?;
            let location = non_empty(labels.get("location"))
                .or_else(|| non_empty(labels.get("region")))
                .or_else(|| after("locations"))
                .ok_or(Ignored::Malformed)?;
            Trigger::Workload {
                project: project.to_owned(),
                kind,
                location: location.to_owned(),
                name: name.to_owned(),
            }
        }
    };
    Ok(Parsed { trigger, happened_at: entry.timestamp })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct TemporalAsset {
    asset: FeedAsset,
    window: Window,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct FeedAsset {
    name: String,
    asset_type: String,
    update_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Window {
    start_time: Option<String>,
}

/// A Cloud Asset Inventory feed message (`TemporalAsset`). Deletions are read again like any
/// change: the read finding nothing removes the workload.
fn asset_feed(data: &[u8]) -> Result<Parsed, Ignored> {
    if data.starts_with(b"You have successfully configured real time feed") {
        return Err(Ignored::FeedWelcome);
    }
    let message: TemporalAsset = serde_json::from_slice(data).map_err(|_| Ignored::Malformed)?;
    let asset = &message.asset;
    let kind = match Holds::of(&asset.asset_type) {
        Some(Holds::Workload(kind)) => Some(kind),
        Some(Holds::Policy) => None,
        None if asset.asset_type.is_empty() => return Err(Ignored::Malformed),
        None => return Err(Ignored::UnknownMethod),
    };
    let segments: Vec<&str> = asset.name.trim_start_matches("//").split('/').collect();
    let after = |key: &str| segments.windows(2).find(|w| w[0] == key).map(|w| w[1]).filter(|s| !s.is_empty());
    // Asset names may carry the project number: the re-read takes either.
    let project = after("projects").ok_or(Ignored::Malformed)?.to_owned();
    let trigger = match kind {
        None => Trigger::Policy { project },
        Some(kind) => Trigger::Workload {
            project,
            kind,
            location: after("locations").ok_or(Ignored::Malformed)?.to_owned(),
            name: segments.last().filter(|_| segments.len() >= 6).ok_or(Ignored::Malformed)?.to_string(),
        },
    };
    let happened_at = asset.update_time.clone().or(message.window.start_time);
    Ok(Parsed { trigger, happened_at })
}

/// A message's own JSON, for callers that need a field this module does not read.
pub fn json(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(method: &str, resource_name: &str, labels: Value) -> Vec<u8> {
        json!({
            "insertId": "qd23mgd4u3f",
            "logName": "projects/team-a/logs/cloudaudit.googleapis.com%2Factivity",
            "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "run.googleapis.com",
                             "methodName": method, "resourceName": resource_name},
            "resource": {"type": "cloud_run_revision", "labels": labels},
            "severity": "NOTICE",
            "timestamp": "2026-11-29T09:00:00.123456Z",
        })
        .to_string()
        .into_bytes()
    }

    fn workload(project: &str, kind: Kind, location: &str, name: &str) -> Trigger {
        Trigger::Workload { project: project.into(), kind, location: location.into(), name: name.into() }
    }

    #[test]
    fn a_run_v1_deploy_names_its_service_as_real_entries_do() {
        let labels = json!({"configuration_name": "", "location": "asia-northeast1", "project_id": "team-a",
                            "revision_name": "", "service_name": "bot"});
        let parsed = parse(
            Feed::AuditLog,
            &entry("google.cloud.run.v1.Services.ReplaceService", "namespaces/team-a/services/bot", labels),
        )
        .unwrap();
        assert_eq!(parsed.trigger, workload("team-a", Kind::Service, "asia-northeast1", "bot"));
        assert_eq!(parsed.happened_at.as_deref(), Some("2026-11-29T09:00:00.123456Z"));
    }

    #[test]
    fn a_recorded_console_deploy_names_its_service() {
        let recorded = include_bytes!("../../tests/fixtures/audit-log/run-v1-replace-service.json");
        let parsed = parse(Feed::AuditLog, recorded).unwrap();
        assert_eq!(
            parsed.trigger,
            workload("test-project-1234", Kind::Service, "asia-northeast1", "cloud-run-slack-bot")
        );
        assert_eq!(parsed.happened_at.as_deref(), Some("2024-05-06T22:58:04.355675Z"));
    }

    #[test]
    fn every_api_s_writes_become_triggers_and_nothing_else_does() {
        let v2 = |m: &str, r: &str| parse(Feed::AuditLog, &entry(m, r, json!({"project_id": "team-a"})));
        assert_eq!(
            v2("google.cloud.run.v2.WorkerPools.UpdateWorkerPool", "projects/team-a/locations/us-east1/workerPools/q")
                .unwrap()
                .trigger,
            workload("team-a", Kind::WorkerPool, "us-east1", "q")
        );
        assert_eq!(
            v2(
                "google.cloud.functions.v2alpha.FunctionService.CommitFunctionUpgrade",
                "projects/team-a/locations/l/functions/f"
            )
            .unwrap()
            .trigger,
            workload("team-a", Kind::Function, "l", "f")
        );
        assert_eq!(
            v2(
                "google.cloud.binaryauthorization.v1beta1.BinauthzManagementServiceV1Beta1.UpdatePolicy",
                "projects/123/policy"
            )
            .unwrap()
            .trigger,
            Trigger::Policy { project: "team-a".into() },
            "the label's project ID wins over a number in the name"
        );
        assert_eq!(
            v2("google.cloud.run.v1.Services.SetIamPolicy", "projects/team-a/locations/l/services/s"),
            Err(Ignored::UnknownMethod)
        );
        assert_eq!(
            v2("google.cloud.run.v2.Services.GetService", "projects/team-a/locations/l/services/s"),
            Err(Ignored::UnknownMethod)
        );
    }

    #[test]
    fn failed_calls_and_malformed_messages_are_ignored_with_their_reason() {
        let mut failed: Value = serde_json::from_slice(&entry(
            "google.cloud.run.v1.Services.ReplaceService",
            "namespaces/p/services/s",
            json!({"location": "l"}),
        ))
        .unwrap();
        failed["protoPayload"]["status"] = json!({"code": 10, "message": "Conflict"});
        assert_eq!(parse(Feed::AuditLog, failed.to_string().as_bytes()), Err(Ignored::FailedCall));
        assert_eq!(parse(Feed::AuditLog, b"\xff\xfe not json"), Err(Ignored::Malformed));
        assert_eq!(parse(Feed::AuditLog, b"{}"), Err(Ignored::Malformed));
        assert_eq!(
            parse(
                Feed::AuditLog,
                &entry("google.cloud.run.v1.Services.ReplaceService", "namespaces/p/services/s", json!({}))
            ),
            Err(Ignored::Malformed),
            "no location anywhere"
        );
    }

    #[test]
    fn feed_messages_name_their_asset_and_the_greeting_is_skipped() {
        let deleted = json!({"asset": {"ancestors": ["projects/123"], "assetType": "run.googleapis.com/Service",
                                       "name": "//run.googleapis.com/projects/team-a/locations/europe-west1/services/checkout",
                                       "updateTime": "2026-11-29T09:10:00Z"},
                             "deleted": true, "priorAssetState": "PRESENT", "window": {"startTime": "2026-11-29T09:10:00Z"}});
        let parsed = parse(Feed::AssetFeed, deleted.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.trigger, workload("team-a", Kind::Service, "europe-west1", "checkout"));
        let welcome = b"You have successfully configured real time feed 'organizations/1/feeds/f' ...";
        assert_eq!(parse(Feed::AssetFeed, welcome), Err(Ignored::FeedWelcome));
        let policy = json!({"asset": {"assetType": "binaryauthorization.googleapis.com/Policy",
                                      "name": "//binaryauthorization.googleapis.com/projects/123/policy"}});
        assert_eq!(
            parse(Feed::AssetFeed, policy.to_string().as_bytes()).unwrap().trigger,
            Trigger::Policy { project: "123".into() }
        );
    }
}
