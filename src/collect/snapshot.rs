//! Collection from a directory of saved API responses: one sub-directory per project holding
//! `policy.json`, `services.json`, `jobs.json`, `worker_pools.json`, `functions.json`.
//!
//! Each file may hold the API's list response, the bare array `gcloud ... --format=json`
//! prints (Run v2 or the Run v1 Knative shape), or the error body Google answered with (a
//! `SERVICE_DISABLED` error records the API as disabled).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::google::status::RpcStatus;
use crate::google::{binauthz_v1, functions_v2, run_v1, run_v2};
use crate::inventory::{Kind, Observed, Policy, ProjectInventory, Workload};

pub struct SnapshotSource {
    root: PathBuf,
    projects: Vec<String>,
    kinds: Vec<Kind>,
}

impl SnapshotSource {
    pub fn new(root: PathBuf, projects: Vec<String>, kinds: Vec<Kind>) -> Self {
        SnapshotSource { root, projects, kinds }
    }

    /// When the snapshot is a file, it is a `gcloud asset list --format=json` export: read it
    /// whole. `None` for a directory of per-project responses.
    pub async fn collect_asset_file(&self) -> Option<Result<Vec<ProjectInventory>, String>> {
        let meta = tokio::fs::metadata(&self.root).await.ok()?;
        if !meta.is_file() {
            return None;
        }
        let read = async {
            let bytes = tokio::fs::read(&self.root).await.map_err(|e| format!("{}: {e}", self.root.display()))?;
            let assets: Vec<super::asset::Asset> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a gcloud asset list JSON export: {e}", self.root.display()))?;
            let mut inventories = super::asset::inventories(assets, &self.kinds);
            if !self.projects.is_empty() {
                inventories.retain(|i| self.projects.contains(&i.project));
            }
            Ok(inventories)
        };
        Some(read.await)
    }

    /// `[scope] projects` when given, else every sub-directory.
    pub async fn projects(&self) -> Result<Vec<String>, String> {
        if !self.projects.is_empty() {
            return Ok(self.projects.clone());
        }
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| format!("snapshot directory {}: {e}", self.root.display()))?;
        let mut projects = Vec::new();
        while let Some(entry) =
            entries.next_entry().await.map_err(|e| format!("snapshot directory {}: {e}", self.root.display()))?
        {
            if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                projects.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        projects.sort();
        Ok(projects)
    }

    pub async fn collect_project(&self, project: &str) -> ProjectInventory {
        let dir = self.root.join(project);
        let policy = match read(&dir.join("policy.json")).await {
            Ok(value) => parse_one::<binauthz_v1::PolicyResource>(value, &dir.join("policy.json")).map(Policy::from),
            Err(observed) => Err(observed),
        };
        let mut inventory = ProjectInventory::new(project, policy.map_or_else(|o| o, Observed::Seen));
        for kind in &self.kinds {
            let path = dir.join(file_name(*kind));
            match read(&path).await.and_then(|v| workloads(v, *kind, project, &path)) {
                Ok(found) => {
                    inventory.record_listing(*kind, Observed::Seen(()));
                    inventory.workloads.extend(found);
                }
                Err(observed) => inventory.record_listing(*kind, observed),
            }
        }
        inventory
    }
}

fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "services.json",
        Kind::Job => "jobs.json",
        Kind::WorkerPool => "worker_pools.json",
        Kind::Function => "functions.json",
    }
}

/// Reads a file as JSON; an error body becomes the observation it describes.
async fn read<T>(path: &Path) -> Result<Value, Observed<T>> {
    let bytes = tokio::fs::read(path).await.map_err(|e| Observed::Failed(format!("{}: {e}", path.display())))?;
    if let Some(status) = RpcStatus::parse(&bytes) {
        return Err(if status.is_service_disabled() {
            Observed::ApiDisabled
        } else {
            Observed::Failed(format!(
                "{}: saved error {} {}: {}",
                path.display(),
                status.code,
                status.status,
                status.message
            ))
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Observed::Failed(format!("{}: invalid JSON: {e}", path.display())))
}

fn parse_one<T: DeserializeOwned>(value: Value, path: &Path) -> Result<T, Observed<Policy>> {
    serde_json::from_value(value).map_err(|e| Observed::Failed(format!("{}: {e}", path.display())))
}

fn workloads(value: Value, kind: Kind, project: &str, path: &Path) -> Result<Vec<Workload>, Observed<()>> {
    let fail = |msg: String| Observed::Failed(format!("{}: {msg}", path.display()));
    let items: Vec<Value> = match value {
        Value::Array(items) => items,
        Value::Object(mut list) => {
            if let Some(Value::Array(unreachable)) = list.get("unreachable")
                && !unreachable.is_empty()
            {
                return Err(fail(format!("unreachable locations: {}", Value::Array(unreachable.clone()))));
            }
            let field =
                ["items", "services", "jobs", "workerPools", "functions"].into_iter().find(|f| list.contains_key(*f));
            match field.and_then(|f| list.remove(f)) {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(fail("the list field is not an array".into())),
                // An empty list response is `{}`: Google omits empty repeated fields.
                None => Vec::new(),
            }
        }
        _ => return Err(fail("expected a list response or an array".into())),
    };
    items
        .into_iter()
        .map(|item| {
            let knative = item.get("metadata").is_some();
            let parsed = match (kind, knative) {
                (Kind::Function, _) => from::<functions_v2::Function>(item).and_then(|f| f.into_workload(project)),
                (Kind::Job, true) => from::<run_v1::Job>(item).and_then(|r| r.into_workload(project, kind)),
                (_, true) => from::<run_v1::Service>(item).and_then(|r| r.into_workload(project, kind)),
                (Kind::Job, false) => from::<run_v2::Job>(item).and_then(|r| r.into_workload(project, kind)),
                (_, false) => from::<run_v2::Service>(item).and_then(|r| r.into_workload(project, kind)),
            };
            parsed.map_err(fail)
        })
        .collect()
}

fn from<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}
