//! Cloud Asset Inventory: one paginated feed of every Cloud Run service, job, worker pool,
//! function and Binary Authorization policy under an organization, folder or project — or
//! the same from a `gcloud asset list --format=json` file.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::client::ApiClient;
use crate::google::{binauthz_v1, list_response, shape};
use crate::inventory::{Api, Kind, Observed, Policy, ProjectInventory, Workload};

pub const ASSET_TYPES: [&str; 6] = [
    "run.googleapis.com/Service",
    "run.googleapis.com/Job",
    "run.googleapis.com/WorkerPool",
    "cloudfunctions.googleapis.com/Function",
    "binaryauthorization.googleapis.com/Policy",
    // Only to map project numbers to IDs: some asset names carry the number.
    "cloudresourcemanager.googleapis.com/Project",
];

/// What an asset holds, for the asset types the auditor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Workload(Kind),
    Policy,
}

impl Holds {
    /// `None` for types the auditor does not read (Project assets only name projects).
    pub fn of(asset_type: &str) -> Option<Holds> {
        Some(match asset_type {
            "run.googleapis.com/Service" => Holds::Workload(Kind::Service),
            "run.googleapis.com/Job" => Holds::Workload(Kind::Job),
            "run.googleapis.com/WorkerPool" => Holds::Workload(Kind::WorkerPool),
            "cloudfunctions.googleapis.com/Function" => Holds::Workload(Kind::Function),
            "binaryauthorization.googleapis.com/Policy" => Holds::Policy,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Asset {
    /// `//run.googleapis.com/projects/P/locations/L/services/S`, where P may be the project
    /// ID or its number (`//binaryauthorization.googleapis.com/projects/123/policy`).
    pub name: String,
    pub asset_type: String,
    pub resource: AssetResource,
    /// `["projects/NUMBER", "folders/N", ..., "organizations/N"]`: the one stable project key.
    pub ancestors: Vec<String>,
    /// When Asset Inventory last saw the resource change.
    pub update_time: Option<String>,
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
    pub fn client(&self) -> &Arc<ApiClient> {
        &self.client
    }

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

/// `//SERVICE/projects/P/locations/L/...` -> (P, L); P is an ID or a number.
fn project_and_location(asset_name: &str) -> Option<(&str, Option<&str>)> {
    let parts: Vec<&str> = asset_name.trim_start_matches("//").split('/').collect();
    let p = parts.iter().position(|s| *s == "projects")?;
    let project = parts.get(p + 1)?;
    let location = parts.get(p + 2).filter(|s| **s == "locations").and(parts.get(p + 3)).copied();
    Some((project, location))
}

fn is_project_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Project numbers and IDs, learnt from Project assets and from assets whose name carries
/// the ID while their ancestors carry the number.
#[derive(Default)]
struct ProjectIds(BTreeMap<String, String>);

impl ProjectIds {
    fn learn(assets: &[Asset]) -> ProjectIds {
        let mut ids = BTreeMap::new();
        for asset in assets {
            let number =
                asset.ancestors.first().and_then(|a| a.strip_prefix("projects/")).filter(|n| is_project_number(n));
            if asset.asset_type == "cloudresourcemanager.googleapis.com/Project" {
                let data = asset.resource.data.as_ref();
                let id = data.and_then(|d| d["projectId"].as_str());
                let number = data
                    .and_then(|d| d["projectNumber"].as_str().or_else(|| d["name"].as_str()?.strip_prefix("projects/")))
                    .or(number);
                if let (Some(id), Some(number)) = (id, number) {
                    ids.insert(number.to_owned(), id.to_owned());
                }
            } else if let (Some(number), Some((named, _))) = (number, project_and_location(&asset.name))
                && !is_project_number(named)
            {
                ids.entry(number.to_owned()).or_insert_with(|| named.to_owned());
            }
        }
        ProjectIds(ids)
    }

    /// The project ID an asset belongs to: keyed by its ancestors, so that one project is
    /// never split in two by assets naming it by number and by ID.
    fn of<'a>(&'a self, asset: &'a Asset) -> Option<&'a str> {
        let (named, _) = project_and_location(&asset.name)?;
        let number = asset.ancestors.first().and_then(|a| a.strip_prefix("projects/"));
        let number = number.or(is_project_number(named).then_some(named));
        Some(number.and_then(|n| self.0.get(n)).map_or(named, String::as_str))
    }
}

/// Groups assets into per-project inventories. Assets are snapshots of resources that exist,
/// so every listing is complete; a project without a policy asset has Google's default policy,
/// which allows everything (and is reported as such). An asset that cannot be read makes its
/// project's listing of that kind incomplete.
pub fn inventories(assets: Vec<Asset>, kinds: &[Kind]) -> Vec<ProjectInventory> {
    let ids = ProjectIds::learn(&assets);
    let mut projects: BTreeMap<String, ProjectInventory> = BTreeMap::new();
    let default_policy = || Observed::Seen(Policy::from(binauthz_v1::PolicyResource::default()));
    for asset in assets {
        let Some(holds) = Holds::of(&asset.asset_type) else { continue };
        let (Some(project), Some((_, location))) = (ids.of(&asset), project_and_location(&asset.name)) else {
            continue;
        };
        let (project, location) = (project.to_owned(), location.map(str::to_owned));
        let inventory = projects.entry(project.clone()).or_insert_with(|| {
            let mut inv = ProjectInventory::new(&project, default_policy());
            for k in kinds {
                inv.record_listing(*k, Observed::Seen(()));
            }
            inv
        });
        let data = asset.resource.data.unwrap_or(Value::Null);
        let failed = |e: String| format!("asset {}: {e}", asset.name);
        match holds {
            Holds::Policy => {
                inventory.policy = match serde_json::from_value::<binauthz_v1::PolicyResource>(data) {
                    Ok(p) => Observed::Seen(p.into()),
                    Err(e) => Observed::Failed(failed(e.to_string())),
                };
            }
            Holds::Workload(kind) if kinds.contains(&kind) => {
                match shape::workload_in(kind, data, &project, location.as_deref()) {
                    Ok(w) => inventory.workloads.push(Workload { data_updated_at: asset.update_time, ..w }),
                    Err(e) => inventory.record_listing(kind, Observed::Failed(failed(e))),
                }
            }
            Holds::Workload(_) => {}
        }
    }
    projects.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asset(name: &str, asset_type: &str, data: Value) -> Asset {
        Asset {
            name: name.into(),
            asset_type: asset_type.into(),
            resource: AssetResource { data: Some(data) },
            ancestors: vec![],
            update_time: None,
        }
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
            Some(crate::inventory::FunctionOrigin::FunctionsApi {
                generation: crate::inventory::FunctionGeneration::Gen1,
                ..
            })
        ));
        assert_eq!(p2.policy.seen().unwrap().evaluation_mode, "REQUIRE_ATTESTATION");
    }

    #[test]
    fn a_project_named_by_number_and_by_id_is_one_project() {
        let with_ancestors = |mut a: Asset| {
            a.ancestors = vec!["projects/123".into(), "organizations/9".into()];
            a.update_time = Some("2026-11-01T00:00:00Z".into());
            a
        };
        let assets = vec![
            with_ancestors(asset(
                "//run.googleapis.com/projects/prod-app/locations/us-central1/services/web",
                "run.googleapis.com/Service",
                json!({"name": "projects/prod-app/locations/us-central1/services/web", "binaryAuthorization": {"useDefault": true}}),
            )),
            with_ancestors(asset(
                "//binaryauthorization.googleapis.com/projects/123/policy",
                "binaryauthorization.googleapis.com/Policy",
                json!({"defaultAdmissionRule": {"evaluationMode": "REQUIRE_ATTESTATION", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}}),
            )),
        ];
        let inv = inventories(assets, &Kind::ALL);
        assert_eq!(inv.len(), 1, "{inv:#?}");
        assert_eq!(inv[0].project, "prod-app");
        assert_eq!(inv[0].policy.seen().unwrap().evaluation_mode, "REQUIRE_ATTESTATION", "no phantom default policy");
        assert_eq!(inv[0].workloads[0].data_updated_at.as_deref(), Some("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn project_assets_map_numbers_to_ids_even_when_no_workload_names_the_id() {
        let mut policy = asset(
            "//binaryauthorization.googleapis.com/projects/456/policy",
            "binaryauthorization.googleapis.com/Policy",
            json!({"defaultAdmissionRule": {"evaluationMode": "ALWAYS_DENY"}}),
        );
        policy.ancestors = vec!["projects/456".into()];
        let mut project = asset(
            "//cloudresourcemanager.googleapis.com/projects/456",
            "cloudresourcemanager.googleapis.com/Project",
            json!({"projectNumber": "456", "projectId": "quiet-project", "lifecycleState": "ACTIVE"}),
        );
        project.ancestors = vec!["projects/456".into()];
        let inv = inventories(vec![policy, project], &Kind::ALL);
        assert_eq!(inv.iter().map(|i| i.project.as_str()).collect::<Vec<_>>(), vec!["quiet-project"]);
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
