//! Live collection from Google's APIs.

use std::sync::Arc;

use futures_util::future::join_all;

use super::PerProject;
use super::client::{ApiClient, Listing};
use super::discovery::Discovery;
use super::error::ApiError;
use super::reread::Reader;
use crate::config::{Endpoints, RunApi, Scope};
use crate::google::{functions_v2, run_v1, run_v2};
use crate::inventory::{Api, Kind, Observed, ProjectInventory, Unlisted, Workload};

pub struct GcpSource {
    client: Arc<ApiClient>,
    endpoints: Endpoints,
    scope: Scope,
    run_api: RunApi,
    discovery: Discovery,
    reader: Reader,
}

impl PerProject for GcpSource {
    async fn projects(&self) -> Result<Vec<String>, String> {
        self.discovery.projects().await
    }

    async fn collect_project(&self, project: &str) -> ProjectInventory {
        let wants = |k: Kind| self.scope.kinds.contains(&k);
        let run_kinds: Vec<Kind> =
            [Kind::Service, Kind::Job, Kind::WorkerPool].into_iter().filter(|k| wants(*k)).collect();

        let (policy, functions, run) = tokio::join!(
            self.policy(project),
            async { if wants(Kind::Function) { Some(self.functions(project).await) } else { None } },
            self.run_workloads(project, &run_kinds),
        );

        let mut inventory = ProjectInventory::new(project, policy);
        for (kind, listing) in run.into_iter().chain(functions.map(|f| (Kind::Function, f))) {
            inventory.record(kind, listing);
        }
        inventory
    }
}

impl GcpSource {
    pub fn new(client: Arc<ApiClient>, endpoints: Endpoints, scope: Scope, run_api: RunApi) -> Self {
        let discovery = Discovery::new(Arc::clone(&client), endpoints.resourcemanager.clone(), scope.clone());
        let reader = Reader::new(Arc::clone(&client), endpoints.clone());
        GcpSource { client, endpoints, scope, run_api, discovery, reader }
    }

    pub fn client(&self) -> &Arc<ApiClient> {
        &self.client
    }

    async fn policy(&self, project: &str) -> Observed<crate::inventory::Policy> {
        match self.reader.policy(project).await {
            Ok(p) => Observed::Seen(p),
            Err(e) => unlisted(e).into(),
        }
    }

    async fn functions(&self, project: &str) -> Result<Vec<Workload>, Unlisted> {
        let url = format!("{}/v2/projects/{project}/locations/-/functions", self.endpoints.functions);
        let listing = self
            .client
            .list::<functions_v2::ListFunctionsResponse>(Api::Functions, &url, &[("pageSize", "1000")])
            .await
            .map_err(unlisted)?;
        into_workloads(listing, &url, |f| f.into_workload(project))
    }

    async fn run_workloads(&self, project: &str, kinds: &[Kind]) -> Vec<(Kind, Result<Vec<Workload>, Unlisted>)> {
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

    /// The v1 global endpoint lists every region in one call per kind, on the paths gcloud
    /// uses. gcloud sends no `limit` and reads one page there, so neither do we: a `limit`
    /// the server honoured without a `continue` would silently truncate. Whatever
    /// `metadata.continue` the server sends is followed.
    async fn run_v1_list(&self, project: &str, kind: Kind) -> Result<Vec<Workload>, Unlisted> {
        let base = &self.endpoints.run;
        let client = &self.client;
        let workloads = match kind {
            Kind::Service => {
                let url = format!("{base}/v1/projects/{project}/locations/-/services");
                let l = client.list::<run_v1::KnativeList<run_v1::Service>>(Api::Run, &url, &[]).await;
                into_workloads(l.map_err(unlisted)?, &url, |s| s.into_workload(project, kind))?
            }
            Kind::Job => {
                let url = format!("{base}/apis/run.googleapis.com/v1/namespaces/{project}/jobs");
                let l = client.list::<run_v1::KnativeList<run_v1::Job>>(Api::Run, &url, &[]).await;
                into_workloads(l.map_err(unlisted)?, &url, |j| j.into_workload(project, kind))?
            }
            Kind::WorkerPool => {
                let url = format!("{base}/apis/run.googleapis.com/v1/namespaces/{project}/workerpools");
                let l = client.list::<run_v1::KnativeList<run_v1::WorkerPool>>(Api::Run, &url, &[]).await;
                into_workloads(l.map_err(unlisted)?, &url, |w| w.into_workload(project, kind))?
            }
            Kind::Function => unreachable!("functions are listed through the Cloud Functions API"),
        };
        Ok(workloads)
    }

    /// Run v2 has no all-regions listing: one list per region and kind.
    async fn run_v2_workloads(&self, project: &str, kinds: &[Kind]) -> Vec<(Kind, Result<Vec<Workload>, Unlisted>)> {
        let regions = match self.regions(project).await {
            Ok(r) => r,
            Err(observed) => return kinds.iter().map(|k| (*k, Err(observed.clone()))).collect(),
        };
        let lists = regions.iter().flat_map(|region| kinds.iter().map(move |kind| (region, *kind)));
        join_all(lists.map(|(region, kind)| async move { (kind, self.run_list(project, region, kind).await) })).await
    }

    async fn run_list(&self, project: &str, region: &str, kind: Kind) -> Result<Vec<Workload>, Unlisted> {
        let base = format!("{}/v2/projects/{project}/locations/{region}", self.endpoints.run);
        let client = &self.client;
        match kind {
            Kind::Service => {
                let url = format!("{base}/services");
                let l = client.list::<run_v2::ListServicesResponse>(Api::Run, &url, &[]).await.map_err(unlisted)?;
                into_workloads(l, &url, |s| s.into_workload(project, kind))
            }
            Kind::Job => {
                let url = format!("{base}/jobs");
                let l = client.list::<run_v2::ListJobsResponse>(Api::Run, &url, &[]).await.map_err(unlisted)?;
                into_workloads(l, &url, |j| j.into_workload(project, kind))
            }
            Kind::WorkerPool => {
                let url = format!("{base}/workerPools");
                let l = client.list::<run_v2::ListWorkerPoolsResponse>(Api::Run, &url, &[]).await.map_err(unlisted)?;
                into_workloads(l, &url, |w| w.into_workload(project, kind))
            }
            Kind::Function => unreachable!("functions are listed through the Cloud Functions API"),
        }
    }

    async fn regions(&self, project: &str) -> Result<Vec<String>, Unlisted> {
        if !self.scope.regions.is_empty() {
            return Ok(self.scope.regions.clone());
        }
        let url = format!("{}/v1/projects/{project}/locations", self.endpoints.run);
        let listing = self.client.list::<run_v1::ListLocationsResponse>(Api::Run, &url, &[]).await.map_err(unlisted)?;
        Ok(listing.items.into_iter().map(|l| l.location_id).filter(|l| !l.is_empty()).collect())
    }
}

fn unlisted(e: ApiError) -> Unlisted {
    match e {
        ApiError::ServiceDisabled { .. } => Unlisted::ApiDisabled,
        other => Unlisted::Failed(other.to_string()),
    }
}

/// Converts a listing; regions it could not reach, or a resource it cannot read, make the whole
/// listing incomplete rather than quietly shorter.
fn into_workloads<T>(
    listing: Listing<T>,
    url: &str,
    convert: impl Fn(T) -> Result<Workload, String>,
) -> Result<Vec<Workload>, Unlisted> {
    if !listing.unreachable.is_empty() {
        return Err(Unlisted::Failed(format!("GET {url}: unreachable locations: {}", listing.unreachable.join(", "))));
    }
    listing
        .items
        .into_iter()
        .map(convert)
        .collect::<Result<_, _>>()
        .map_err(|e| Unlisted::Failed(format!("GET {url}: {e}")))
}
