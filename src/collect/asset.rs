//! Cloud Asset Inventory: one paginated feed of every Cloud Run service, job, worker pool,
//! function and Binary Authorization policy under an organization, folder or project — or
//! the same from a `gcloud asset list --format=json` file.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::client::ApiClient;
use crate::google::{binauthz_v1, functions_v2, list_response, run_v1, run_v2};
use crate::inventory::{Api, Kind, Observed, Policy, ProjectInventory};

pub const ASSET_TYPES: [&str; 5] = [
    "run.googleapis.com/Service",
    "run.googleapis.com/Job",
    "run.googleapis.com/WorkerPool",
    "cloudfunctions.googleapis.com/Function",
    "binaryauthorization.googleapis.com/Policy",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Asset {
    /// `//run.googleapis.com/projects/P/locations/L/services/S`
    pub name: String,
    pub asset_type: String,
    pub resource: AssetResource,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AssetResource {
    pub data: Option<Value>,
}

list_response!(ListAssetsResponse, "assets", Asset);

pub struct AssetSource {
    client: Arc<ApiClient>,
    endpoint: String,
    scope: String,
    kinds: Vec<Kind>,
}

impl AssetSource {
    pub fn new(client: Arc<ApiClient>, endpoint: String, scope: String, kinds: Vec<Kind>) -> Self {
        AssetSource { client, endpoint, scope, kinds }
    }

    pub async fn collect_all(&self) -> Result<Vec<ProjectInventory>, String> {
        let url = format!("{}/v1/{}/assets", self.endpoint, self.scope);
        let mut query = vec![("contentType", "RESOURCE"), ("pageSize", "1000")];
        query.extend(ASSET_TYPES.iter().map(|t| ("assetTypes", *t)));
        let listing =
            self.client.list::<ListAssetsResponse>(Api::Asset, &url, &query).await.map_err(|e| e.to_string())?;
        Ok(inventories(listing.items, &self.kinds))
    }
}

/// `//SERVICE/projects/P/locations/L/...` -> (P, L).
fn project_and_location(asset_name: &str) -> Option<(&str, Option<&str>)> {
    let parts: Vec<&str> = asset_name.trim_start_matches("//").split('/').collect();
    let p = parts.iter().position(|s| *s == "projects")?;
    let project = parts.get(p + 1)?;
    let location = parts.get(p + 2).filter(|s| **s == "locations").and(parts.get(p + 3)).copied();
    Some((project, location))
}

/// Groups assets into per-project inventories. Assets are snapshots of resources that exist,
/// so every listing is complete; a project without a policy asset has Google's default policy,
/// which allows everything (and is reported as such). An asset that cannot be read makes its
/// project's listing of that kind incomplete.
pub fn inventories(assets: Vec<Asset>, kinds: &[Kind]) -> Vec<ProjectInventory> {
    let mut projects: BTreeMap<String, ProjectInventory> = BTreeMap::new();
    let default_policy = || Observed::Seen(Policy::from(binauthz_v1::PolicyResource::default()));
    for asset in assets {
        let Some((project, location)) = project_and_location(&asset.name) else { continue };
        let kind = match asset.asset_type.as_str() {
            "run.googleapis.com/Service" => Some(Kind::Service),
            "run.googleapis.com/Job" => Some(Kind::Job),
            "run.googleapis.com/WorkerPool" => Some(Kind::WorkerPool),
            "cloudfunctions.googleapis.com/Function" => Some(Kind::Function),
            "binaryauthorization.googleapis.com/Policy" => None,
            _ => continue,
        };
        let inventory = projects.entry(project.to_owned()).or_insert_with(|| {
            let mut inv = ProjectInventory::new(project, default_policy());
            for k in kinds {
                inv.record_listing(*k, Observed::Seen(()));
            }
            inv
        });
        let data = asset.resource.data.unwrap_or(Value::Null);
        let failed = |e: String| format!("asset {}: {e}", asset.name);
        match kind {
            None => {
                inventory.policy = match serde_json::from_value::<binauthz_v1::PolicyResource>(data) {
                    Ok(p) => Observed::Seen(p.into()),
                    Err(e) => Observed::Failed(failed(e.to_string())),
                };
            }
            Some(kind) if kinds.contains(&kind) => match workload(data, kind, project, location) {
                Ok(w) => inventory.workloads.push(w),
                Err(e) => inventory.record_listing(kind, Observed::Failed(failed(e))),
            },
            Some(_) => {}
        }
    }
    projects.into_values().collect()
}

/// `resource.data` holds the v2 shape or the v1 (Knative / Cloud Functions v1) shape.
fn workload(
    mut data: Value,
    kind: Kind,
    project: &str,
    location: Option<&str>,
) -> Result<crate::inventory::Workload, String> {
    if data.get("metadata").is_some() {
        // Knative resources may leave the region to the asset name.
        if let (Some(l), Some(meta)) = (location, data.get_mut("metadata").and_then(Value::as_object_mut)) {
            let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
            if let Some(labels) = labels.as_object_mut() {
                labels.entry(run_v1::LOCATION_LABEL).or_insert_with(|| Value::String(l.to_owned()));
            }
        }
        return match kind {
            Kind::Job => parse::<run_v1::Job>(data)?.into_workload(project, kind),
            _ => parse::<run_v1::Service>(data)?.into_workload(project, kind),
        };
    }
    match kind {
        Kind::Function => {
            // The Cloud Functions v1 shape (1st gen) has a top-level runtime and no buildConfig.
            if data.get("runtime").is_some()
                && data.get("buildConfig").is_none()
                && let Some(obj) = data.as_object_mut()
            {
                obj.insert("environment".into(), Value::String("GEN_1".into()));
            }
            parse::<functions_v2::Function>(data)?.into_workload(project)
        }
        Kind::Job => parse::<run_v2::Job>(data)?.into_workload(project, kind),
        _ => parse::<run_v2::Service>(data)?.into_workload(project, kind),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asset(name: &str, asset_type: &str, data: Value) -> Asset {
        Asset { name: name.into(), asset_type: asset_type.into(), resource: AssetResource { data: Some(data) } }
    }

    #[test]
    fn assets_group_into_projects_in_both_resource_shapes() {
        let assets = vec![
            asset(
                "//run.googleapis.com/projects/p1/locations/us-central1/services/v2svc",
                "run.googleapis.com/Service",
                json!({"name": "projects/p1/locations/us-central1/services/v2svc", "binaryAuthorization": {"useDefault": true}}),
            ),
            asset(
                "//run.googleapis.com/projects/p1/locations/europe-west1/services/v1svc",
                "run.googleapis.com/Service",
                json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "v1svc"}}),
            ),
            asset(
                "//cloudfunctions.googleapis.com/projects/p2/locations/us-central1/functions/old",
                "cloudfunctions.googleapis.com/Function",
                json!({"name": "projects/p2/locations/us-central1/functions/old", "runtime": "python39", "httpsTrigger": {}}),
            ),
            asset(
                "//binaryauthorization.googleapis.com/projects/p2/policy",
                "binaryauthorization.googleapis.com/Policy",
                json!({"defaultAdmissionRule": {"evaluationMode": "REQUIRE_ATTESTATION", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}}),
            ),
        ];
        let inv = inventories(assets, &Kind::ALL);
        assert_eq!(inv.len(), 2);
        let p1 = &inv[0];
        assert_eq!(p1.workloads.len(), 2);
        let v1 = p1.workloads.iter().find(|w| w.name == "v1svc").unwrap();
        assert_eq!(v1.location, "europe-west1", "the region comes from the asset name");
        assert_eq!(v1.binauthz, None);
        assert_eq!(p1.policy.seen().unwrap().evaluation_mode, "ALWAYS_ALLOW", "no policy asset: Google's default");
        let p2 = &inv[1];
        assert!(matches!(
            p2.workloads[0].function,
            Some(crate::inventory::FunctionOrigin::FunctionsApi { generation: crate::inventory::Generation::Gen1, .. })
        ));
        assert_eq!(p2.policy.seen().unwrap().evaluation_mode, "REQUIRE_ATTESTATION");
    }

    #[test]
    fn an_unreadable_asset_makes_its_listing_incomplete() {
        let assets = vec![asset(
            "//run.googleapis.com/projects/p1/locations/l/jobs/j",
            "run.googleapis.com/Job",
            json!({"name": 42}),
        )];
        let inv = inventories(assets, &Kind::ALL);
        assert!(
            inv[0].listing(Kind::Job).unwrap().failure().unwrap().contains("asset //run.googleapis.com/projects/p1")
        );
    }
}
