//! Collection from a directory of saved API responses: one sub-directory per project holding
//! `policy.yaml` or `policy.json`, `services.json`, `jobs.json`, `worker_pools.json`,
//! `functions.json`.
//!
//! Each file may hold the API's list response, what `gcloud ... --format=json` prints (a bare
//! array in the Run v1 Knative shape, or Cloud Functions v2 items followed by 1st gen v1
//! ones), or the error body Google answered with (a `SERVICE_DISABLED` error records the API
//! as disabled).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PerProject;
use crate::google::status::RpcStatus;
use crate::google::{binauthz_v1, shape};
use crate::inventory::{Kind, Observed, Policy, ProjectInventory, Unlisted, Workload};

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
}

fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "services.json",
        Kind::Job => "jobs.json",
        Kind::WorkerPool => "worker_pools.json",
        Kind::Function => "functions.json",
    }
}

/// The project policy, as `gcloud container binauthz policy export` prints it (YAML) in
/// `policy.yaml`, or as JSON (`--format=json`, or the API's answer) in `policy.json`.
async fn policy(dir: &Path) -> Observed<Policy> {
    let yaml = dir.join("policy.yaml");
    let path = if tokio::fs::try_exists(&yaml).await.unwrap_or(false) { yaml } else { dir.join("policy.json") };
    match read(&path).await {
        Ok(bytes) => saved_policy(&bytes, &path),
        Err(unlisted) => unlisted.into(),
    }
}

/// What a saved policy file (`path`) says: the policy, or the error Google answered with.
pub fn saved_policy(bytes: &[u8], path: &Path) -> Observed<Policy> {
    if let Err(unlisted) = saved_error(bytes, path) {
        return unlisted.into();
    }
    // JSON first (exact errors for JSON files), then YAML, whatever the file is named.
    let parsed = serde_json::from_slice::<binauthz_v1::PolicyResource>(bytes).or_else(|json| {
        serde_yaml_ng::from_slice(bytes)
            .map_err(|yaml| if bytes.trim_ascii_start().starts_with(b"{") { one_line(&json) } else { one_line(&yaml) })
    });
    match parsed {
        Ok(p) => Observed::Seen(p.into()),
        Err(e) => Observed::Failed(format!("{}: not a Binary Authorization policy: {e}", path.display())),
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn read(path: &Path) -> Result<Vec<u8>, Unlisted> {
    tokio::fs::read(path).await.map_err(|e| Unlisted::Failed(format!("{}: {e}", path.display())))
}

/// A saved error body is what it says (a disabled API, a failure).
fn saved_error(bytes: &[u8], path: &Path) -> Result<(), Unlisted> {
    match RpcStatus::parse(bytes) {
        Some(status) if status.is_service_disabled() => Err(Unlisted::ApiDisabled),
        Some(status) => Err(Unlisted::Failed(format!(
            "{}: saved error {} {}: {}",
            path.display(),
            status.code,
            status.status,
            status.message
        ))),
        None => Ok(()),
    }
}

/// What a saved listing (`path`) says: a list response (any of the APIs' shapes) or the bare
/// array `gcloud ... --format=json` prints, whose items may even mix shapes (`gcloud
/// functions list` appends 1st gen functions in the v1 shape); or the error Google answered
/// with.
pub fn saved_listing(bytes: &[u8], kind: Kind, project: &str, path: &Path) -> Result<Vec<Workload>, Unlisted> {
    saved_error(bytes, path)?;
    let fail = |msg: String| Unlisted::Failed(format!("{}: {msg}", path.display()));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| fail(format!("invalid JSON: {e}")))?;
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
    items.into_iter().map(|item| shape::workload(kind, item, project).map_err(fail)).collect()
}

impl PerProject for SnapshotSource {
    /// `[scope] projects` when given, else every sub-directory.
    async fn projects(&self) -> Result<Vec<String>, String> {
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

    async fn collect_project(&self, project: &str) -> ProjectInventory {
        let dir = self.root.join(project);
        let mut inventory = ProjectInventory::new(project, policy(&dir).await);
        for kind in &self.kinds {
            let path = dir.join(file_name(*kind));
            let listing = match read(&path).await {
                Ok(bytes) => saved_listing(&bytes, *kind, project, &path),
                Err(unlisted) => Err(unlisted),
            };
            inventory.record(*kind, listing);
        }
        inventory
    }
}
