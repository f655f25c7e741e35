//! Live collection from Google's APIs.

use std::sync::Arc;

use futures_util::future::join_all;

use super::client::{ApiClient, Listing};
use super::error::ApiError;
use crate::config::{Endpoints, Scope};
use crate::google::{binauthz_v1, functions_v2, resourcemanager_v3, run_v1, run_v2};
use crate::inventory::{Api, Kind, Observed, ProjectInventory, Workload};

pub struct GcpSource {
    client: Arc<ApiClient>,
    endpoints: Endpoints,
    scope: Scope,
}

impl GcpSource {
    pub fn new(client: Arc<ApiClient>, endpoints: Endpoints, scope: Scope) -> Self {
        GcpSource { client, endpoints, scope }
    }

    /// `[scope] projects` plus the ACTIVE projects `project_query` finds.
    pub async fn projects(&self) -> Result<Vec<String>, String> {
        let mut projects = self.scope.projects.clone();
        if let Some(query) = &self.scope.project_query {
            let url = format!("{}/v3/projects:search", self.endpoints.resourcemanager);
            let found = self
                .client
                .list::<resourcemanager_v3::SearchProjectsResponse>(Api::Resourcemanager, &url, &[("query", query)])
                .await
                .map_err(|e| format!("project search {query:?} failed: {e}"))?;
            projects.extend(found.items.into_iter().filter(|p| p.state == "ACTIVE").map(|p| p.project_id));
        }
        projects.sort();
        projects.dedup();
        Ok(projects)
    }

    pub async fn collect_project(&self, project: &str) -> ProjectInventory {
        let wants = |k: Kind| self.scope.kinds.contains(&k);
        let run_kinds: Vec<Kind> =
            [Kind::Service, Kind::Job, Kind::WorkerPool].into_iter().filter(|k| wants(*k)).collect();

        let (policy, functions, run) = tokio::join!(
            self.policy(project),
            async { if wants(Kind::Function) { Some(self.functions(project).await) } else { None } },
            self.run_workloads(project, &run_kinds),
        );

        let mut inventory = ProjectInventory::new(project, policy);
        for (kind, outcome) in run.into_iter().chain(functions.map(|f| (Kind::Function, f))) {
            match outcome {
                Ok(workloads) => {
                    inventory.record_listing(kind, Observed::Seen(()));
                    inventory.workloads.extend(workloads);
                }
                Err(observed) => inventory.record_listing(kind, observed),
            }
        }
        inventory
    }

    async fn policy(&self, project: &str) -> Observed<crate::inventory::Policy> {
        let url = format!("{}/v1/projects/{project}/policy", self.endpoints.binaryauthorization);
        match self.client.get::<binauthz_v1::PolicyResource>(Api::Binaryauthorization, &url, &[]).await {
            Ok(p) => Observed::Seen(p.into()),
            Err(e) => observed_error(e),
        }
    }

    async fn functions(&self, project: &str) -> Result<Vec<Workload>, Observed<()>> {
        let url = format!("{}/v2/projects/{project}/locations/-/functions", self.endpoints.functions);
        let listing = self
            .client
            .list::<functions_v2::ListFunctionsResponse>(Api::Functions, &url, &[("pageSize", "1000")])
            .await
            .map_err(observed_error)?;
        into_workloads(listing, &url, |f| f.into_workload(project))
    }

    /// Run v2 has no all-regions listing: one list per region and kind.
    async fn run_workloads(&self, project: &str, kinds: &[Kind]) -> Vec<(Kind, Result<Vec<Workload>, Observed<()>>)> {
        if kinds.is_empty() {
            return Vec::new();
        }
        let regions = match self.regions(project).await {
            Ok(r) => r,
            Err(observed) => return kinds.iter().map(|k| (*k, Err(observed.clone()))).collect(),
        };
        let lists = regions.iter().flat_map(|region| kinds.iter().map(move |kind| (region, *kind)));
        join_all(lists.map(|(region, kind)| async move { (kind, self.run_list(project, region, kind).await) })).await
    }

    async fn run_list(&self, project: &str, region: &str, kind: Kind) -> Result<Vec<Workload>, Observed<()>> {
        let base = format!("{}/v2/projects/{project}/locations/{region}", self.endpoints.run);
        let client = &self.client;
        match kind {
            Kind::Service => {
                let url = format!("{base}/services");
                let l =
                    client.list::<run_v2::ListServicesResponse>(Api::Run, &url, &[]).await.map_err(observed_error)?;
                into_workloads(l, &url, |s| s.into_workload(project, kind))
            }
            Kind::Job => {
                let url = format!("{base}/jobs");
                let l = client.list::<run_v2::ListJobsResponse>(Api::Run, &url, &[]).await.map_err(observed_error)?;
                into_workloads(l, &url, |j| j.into_workload(project, kind))
            }
            Kind::WorkerPool => {
                let url = format!("{base}/workerPools");
                let l = client
                    .list::<run_v2::ListWorkerPoolsResponse>(Api::Run, &url, &[])
                    .await
                    .map_err(observed_error)?;
                into_workloads(l, &url, |w| w.into_workload(project, kind))
            }
            Kind::Function => unreachable!("functions are listed through the Cloud Functions API"),
        }
    }

    async fn regions(&self, project: &str) -> Result<Vec<String>, Observed<()>> {
        if !self.scope.regions.is_empty() {
            return Ok(self.scope.regions.clone());
        }
        let url = format!("{}/v1/projects/{project}/locations", self.endpoints.run);
        let listing =
            self.client.list::<run_v1::ListLocationsResponse>(Api::Run, &url, &[]).await.map_err(observed_error)?;
        Ok(listing.items.into_iter().map(|l| l.location_id).filter(|l| !l.is_empty()).collect())
    }
}

fn observed_error<T>(e: ApiError) -> Observed<T> {
    match e {
        ApiError::ServiceDisabled { .. } => Observed::ApiDisabled,
        other => Observed::Failed(other.to_string()),
    }
}

/// Converts a listing; regions it could not reach, or a resource it cannot read, make the whole
/// listing incomplete rather than quietly shorter.
fn into_workloads<T>(
    listing: Listing<T>,
    url: &str,
    convert: impl Fn(T) -> Result<Workload, String>,
) -> Result<Vec<Workload>, Observed<()>> {
    if !listing.unreachable.is_empty() {
        return Err(Observed::Failed(format!("GET {url}: unreachable locations: {}", listing.unreachable.join(", "))));
    }
    listing
        .items
        .into_iter()
        .map(convert)
        .collect::<Result<_, _>>()
        .map_err(|e| Observed::Failed(format!("GET {url}: {e}")))
}
