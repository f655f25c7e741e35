//! Live collection from Google's APIs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::join_all;

use super::client::{ApiClient, Listing};
use super::error::ApiError;
use crate::config::{Endpoints, RunApi, Scope};
use crate::google::{binauthz_v1, functions_v2, resourcemanager_v3, run_v1, run_v2};
use crate::inventory::{Api, Kind, Observed, ProjectInventory, Workload};

pub struct GcpSource {
    client: Arc<ApiClient>,
    endpoints: Endpoints,
    scope: Scope,
    run_api: RunApi,
    /// The last successful project search and when it ran.
    discovered: Mutex<Option<(Instant, Vec<String>)>>,
}

/// Items per page asked of the Run v1 list methods (which document no maximum).
const RUN_V1_PAGE: &str = "500";

impl GcpSource {
    pub fn new(client: Arc<ApiClient>, endpoints: Endpoints, scope: Scope, run_api: RunApi) -> Self {
        GcpSource { client, endpoints, scope, run_api, discovered: Mutex::new(None) }
    }

    /// `[scope] projects` plus the ACTIVE projects `project_query` finds; search results are
    /// reused for `project_query_ttl`, and a failed search falls back to the last result.
    pub async fn projects(&self) -> Result<Vec<String>, String> {
        let mut projects = self.scope.projects.clone();
        if let Some(query) = &self.scope.project_query {
            projects.extend(self.search(query).await?);
        }
        projects.sort();
        projects.dedup();
        Ok(projects)
    }

    async fn search(&self, query: &str) -> Result<Vec<String>, String> {
        let cached = self.discovered.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((at, found)) = &cached
            && at.elapsed() < self.scope.project_query_ttl
        {
            return Ok(found.clone());
        }
        let url = format!("{}/v3/projects:search", self.endpoints.resourcemanager);
        match self
            .client
            .list::<resourcemanager_v3::SearchProjectsResponse>(Api::Resourcemanager, &url, &[("query", query)])
            .await
        {
            Ok(found) => {
                let active: Vec<String> =
                    found.items.into_iter().filter(|p| p.state == "ACTIVE").map(|p| p.project_id).collect();
                *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), active.clone()));
                Ok(active)
            }
            Err(e) => match cached {
                Some((_, found)) => {
                    tracing::warn!(error = %e, "project search failed; reusing the previous result");
                    Ok(found)
                }
                None => Err(format!("project search {query:?} failed: {e}")),
            },
        }
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

    async fn run_workloads(&self, project: &str, kinds: &[Kind]) -> Vec<(Kind, Result<Vec<Workload>, Observed<()>>)> {
        if kinds.is_empty() {
            return Vec::new();
        }
        match self.run_api {
            RunApi::V1 => {
                join_all(kinds.iter().map(|kind| async move { (*kind, self.run_v1_list(project, *kind).await) })).await
            }
            RunApi::V2 => self.run_v2_workloads(project, kinds).await,
        }
    }

    /// The v1 global endpoint lists every region in one paginated call per kind.
    async fn run_v1_list(&self, project: &str, kind: Kind) -> Result<Vec<Workload>, Observed<()>> {
        let base = &self.endpoints.run;
        let query = [("limit", RUN_V1_PAGE)];
        let client = &self.client;
        let workloads = match kind {
            Kind::Service => {
                let url = format!("{base}/apis/serving.knative.dev/v1/namespaces/{project}/services");
                let l = client.list::<run_v1::KnativeList<run_v1::Service>>(Api::Run, &url, &query).await;
                into_workloads(l.map_err(observed_error)?, &url, |s| s.into_workload(project, kind))?
            }
            Kind::Job => {
                let url = format!("{base}/apis/run.googleapis.com/v1/namespaces/{project}/jobs");
                let l = client.list::<run_v1::KnativeList<run_v1::Job>>(Api::Run, &url, &query).await;
                into_workloads(l.map_err(observed_error)?, &url, |j| j.into_workload(project, kind))?
            }
            Kind::WorkerPool => {
                let url = format!("{base}/apis/run.googleapis.com/v1/namespaces/{project}/workerpools");
                let l = client.list::<run_v1::KnativeList<run_v1::WorkerPool>>(Api::Run, &url, &query).await;
                into_workloads(l.map_err(observed_error)?, &url, |w| w.into_workload(project, kind))?
            }
            Kind::Function => unreachable!("functions are listed through the Cloud Functions API"),
        };
        let in_scope = |w: &Workload| self.scope.regions.is_empty() || self.scope.regions.contains(&w.location);
        Ok(workloads.into_iter().filter(in_scope).collect())
    }

    /// Run v2 has no all-regions listing: one list per region and kind.
    async fn run_v2_workloads(
        &self,
        project: &str,
        kinds: &[Kind],
    ) -> Vec<(Kind, Result<Vec<Workload>, Observed<()>>)> {
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

pub(super) fn observed_error<T>(e: ApiError) -> Observed<T> {
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
