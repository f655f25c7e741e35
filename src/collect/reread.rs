//! Reading one thing again: the workload or the policy an event says changed, and the ID of a
//! project an event names by number. Always the v2 APIs' single-resource GETs, whichever API
//! lists them in a cycle: the mappings onto [`Workload`] are the same.

use std::sync::Arc;

use super::client::ApiClient;
use super::error::ApiError;
use crate::config::Endpoints;
use crate::google::{binauthz_v1, functions_v2, resourcemanager_v3, run_v2};
use crate::inventory::{Api, Kind, Policy, Workload};

/// Names one workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKey {
    pub project: String,
    pub kind: Kind,
    pub location: String,
    pub name: String,
}

impl WorkloadKey {
    pub fn of(w: &Workload) -> WorkloadKey {
        WorkloadKey { project: w.project.clone(), kind: w.kind, location: w.location.clone(), name: w.name.clone() }
    }

    pub fn matches(&self, w: &Workload) -> bool {
        w.kind == self.kind && w.name == self.name && w.location == self.location && w.project == self.project
    }
}

pub struct Reader {
    client: Arc<ApiClient>,
    endpoints: Endpoints,
}

impl Reader {
    pub fn new(client: Arc<ApiClient>, endpoints: Endpoints) -> Reader {
        Reader { client, endpoints }
    }

    /// The workload as it is now; `None` when it no longer exists (404), or cannot exist
    /// because its API is disabled in the project.
    pub async fn workload(&self, key: &WorkloadKey) -> Result<Option<Workload>, ApiError> {
        match key.kind {
            Kind::Service => self.run::<run_v2::RevisionTemplate>(key, "services").await,
            Kind::Job => self.run::<run_v2::ExecutionTemplate>(key, "jobs").await,
            Kind::WorkerPool => self.run::<run_v2::RevisionTemplate>(key, "workerPools").await,
            Kind::Function => {
                let url = url(&self.endpoints.functions, key, "functions");
                let Some(function) = self.get::<functions_v2::Function>(Api::Functions, &url).await? else {
                    return Ok(None);
                };
                function.into_workload(&key.project).map(Some).map_err(|e| decode_error(&url, e))
            }
        }
    }

    async fn run<T>(&self, key: &WorkloadKey, collection: &str) -> Result<Option<Workload>, ApiError>
    where
        run_v2::Resource<T>: serde::de::DeserializeOwned,
        T: crate::google::Containers,
    {
        let url = url(&self.endpoints.run, key, collection);
        let Some(resource) = self.get::<run_v2::Resource<T>>(Api::Run, &url).await? else {
            return Ok(None);
        };
        resource.into_workload(&key.project, key.kind).map(Some).map_err(|e| decode_error(&url, e))
    }

    /// The project's Binary Authorization policy.
    pub async fn policy(&self, project: &str) -> Result<Policy, ApiError> {
        let url = format!("{}/v1/projects/{project}/policy", self.endpoints.binaryauthorization);
        let policy: binauthz_v1::PolicyResource = self.client.get(Api::Binaryauthorization, &url, &[]).await?;
        Ok(policy.into())
    }

    /// The ID of the project with this number (Resource Manager v3 `projects.get`).
    pub async fn project_id(&self, number: &str) -> Result<String, ApiError> {
        let url = format!("{}/v3/projects/{number}", self.endpoints.resourcemanager);
        let project: resourcemanager_v3::Project = self.client.get(Api::Resourcemanager, &url, &[]).await?;
        if project.project_id.is_empty() {
            return Err(decode_error(&url, "no projectId in the answer".into()));
        }
        Ok(project.project_id)
    }

    /// A GET for which "not found" is an answer, not an error.
    async fn get<T: serde::de::DeserializeOwned>(&self, api: Api, url: &str) -> Result<Option<T>, ApiError> {
        match self.client.get::<T>(api, url, &[]).await {
            Ok(t) => Ok(Some(t)),
            Err(ApiError::Status { code: 404, .. } | ApiError::ServiceDisabled { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn url(base: &str, key: &WorkloadKey, collection: &str) -> String {
    format!("{base}/v2/projects/{}/locations/{}/{collection}/{}", key.project, key.location, key.name)
}

fn decode_error(url: &str, message: String) -> ApiError {
    ApiError::Decode { endpoint: format!("GET {url}"), message }
}
