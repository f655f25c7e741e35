//! Reading the world: Google's APIs or a saved snapshot, one project at a time.

pub mod asset;
pub mod auth;
pub mod client;
pub mod discovery;
pub mod error;
pub mod gcp;
pub mod reread;
pub mod snapshot;
pub mod validation;

use futures_util::StreamExt;
use futures_util::stream;

use crate::config::{self, Config};
use crate::inventory::ProjectInventory;

/// The configured way of reading the world, ready to collect: where workloads and policies
/// are read, and, with `[validation]`, what their serving revisions run and its attestations.
pub struct Collector {
    source: Source,
    validator: Option<std::sync::Arc<validation::Validator>>,
}

enum Source {
    Gcp(Box<gcp::GcpSource>),
    Snapshot(snapshot::SnapshotSource),
    AssetInventory(asset::AssetSource),
}

/// One cycle's raw material.
#[derive(Debug)]
pub struct Collected<T> {
    /// What `each` made of every project's inventory, in project order.
    pub projects: Vec<T>,
    /// Project discovery failed: the audit covers only what could be found.
    pub discovery_error: Option<String>,
}

impl Collector {
    /// Builds the configured source; a bad credentials file fails here, naming the path.
    pub fn from_config(config: &Config, metrics: client::ClientMetrics) -> Result<Collector, String> {
        let source = match &config.source {
            config::Source::Snapshot { path } if !path.exists() => {
                return Err(format!("source.path {}: no such file or directory", path.display()));
            }
            config::Source::Snapshot { path } => Source::Snapshot(snapshot::SnapshotSource::new(
                path.clone(),
                config.scope.projects.clone(),
                config.scope.kinds.clone(),
            )),
            config::Source::Gcp => {
                let client = api_client(config, metrics)?;
                let gcp = &config.gcp;
                Source::Gcp(Box::new(gcp::GcpSource::new(
                    client,
                    gcp.endpoints.clone(),
                    config.scope.clone(),
                    gcp.run_api,
                )))
            }
            config::Source::AssetInventory { scope } => Source::AssetInventory(asset::AssetSource::new(
                api_client(config, metrics)?,
                config.gcp.endpoints.asset.clone(),
                scope.clone(),
                config.scope.kinds.clone(),
            )),
        };
        let mut collector = Collector { source, validator: None };
        // The configuration refuses validation with a snapshot; said again rather than assumed.
        collector.validator = match (&config.validation, collector.api_client()) {
            (None, _) => None,
            (Some(v), Some(client)) => Some(std::sync::Arc::new(validation::Validator::new(
                std::sync::Arc::clone(client),
                config.gcp.endpoints.clone(),
                v.recheck_interval,
            ))),
            (Some(_), None) => return Err("[validation] needs a Google source (gcp or asset_inventory)".into()),
        };
        Ok(collector)
    }

    /// What validates serving revisions (`[validation]`); event mode validates its re-reads
    /// with it too.
    pub fn validator(&self) -> Option<&std::sync::Arc<validation::Validator>> {
        self.validator.as_ref()
    }

    /// The client Google is read with; `None` for a snapshot.
    pub fn api_client(&self) -> Option<&std::sync::Arc<client::ApiClient>> {
        match &self.source {
            Source::Gcp(s) => Some(s.client()),
            Source::AssetInventory(s) => Some(s.client()),
            Source::Snapshot(_) => None,
        }
    }

    /// Collects every project in `scope`, `concurrency` projects at a time (requests are
    /// bounded separately inside the HTTP client), handing each inventory to `each` as soon as
    /// it is complete. Projects `scope.exclude_projects` names are never read (an asset feed
    /// holds them anyway: they are dropped unread). Whatever the source, what reaches `each`
    /// holds only `scope.projects` (when named) and workloads in `scope.regions` (when named),
    /// and, with `[validation]`, the evidence about what they serve.
    pub async fn collect<T>(
        &self,
        scope: &config::Scope,
        concurrency: usize,
        each: impl Fn(ProjectInventory) -> T,
    ) -> Collected<T> {
        let kept = |inventory: &ProjectInventory| {
            let named = scope.projects.is_empty() || scope.projects.contains(&inventory.project);
            named && !discovery::excluded(&scope.exclude_projects, &inventory.project)
        };
        let cycle = self.validator.as_ref().map(|v| v.cycle());
        let validated = |inventory: ProjectInventory| {
            let cycle = cycle.as_ref();
            async move {
                let mut inventory = in_regions(scope, inventory);
                if let (Some(validator), Some(cycle)) = (&self.validator, cycle) {
                    inventory.validation = Some(validator.evidence(cycle, &inventory).await);
                }
                inventory
            }
        };
        let collected = match &self.source {
            Source::AssetInventory(s) => whole(s.collect_all().await, kept, validated, &each, concurrency).await,
            Source::Snapshot(s) => match s.collect_asset_file().await {
                Some(result) => whole(result, kept, validated, &each, concurrency).await,
                None => per_project(s, scope, concurrency, validated, &each).await,
            },
            Source::Gcp(s) => per_project(s.as_ref(), scope, concurrency, validated, &each).await,
        };
        if let (Some(validator), Some(cycle)) = (&self.validator, cycle) {
            validator.finish(cycle);
        }
        collected
    }
}

/// Drops workloads outside `scope.regions`. Sources that can ask for fewer regions do; the
/// ones that cannot (the v1 all-regions lists, functions' `locations/-`, a snapshot, a feed)
/// are narrowed here, so the rule holds in one place.
fn in_regions(scope: &config::Scope, mut inventory: ProjectInventory) -> ProjectInventory {
    if !scope.regions.is_empty() {
        inventory.workloads.retain(|w| scope.regions.contains(&w.location));
    }
    inventory
}

/// A source read project by project.
trait PerProject {
    async fn projects(&self) -> Result<Vec<String>, String>;
    async fn collect_project(&self, project: &str) -> ProjectInventory;
}

/// A source read in one go (an Asset Inventory feed or export): it fails or succeeds whole.
/// The whole feed is held while it is grouped: its memory is the feed's size.
async fn whole<T, F: Future<Output = ProjectInventory>>(
    result: Result<Vec<ProjectInventory>, String>,
    kept: impl Fn(&ProjectInventory) -> bool,
    prepare: impl Fn(ProjectInventory) -> F,
    each: impl Fn(ProjectInventory) -> T,
    concurrency: usize,
) -> Collected<T> {
    match result {
        Ok(projects) => {
            let prepared = stream::iter(projects.into_iter().filter(kept)).map(prepare).buffered(concurrency.max(1));
            Collected { projects: prepared.map(each).collect().await, discovery_error: None }
        }
        Err(e) => Collected { projects: Vec::new(), discovery_error: Some(e) },
    }
}

async fn per_project<S: PerProject, T, F: Future<Output = ProjectInventory>>(
    source: &S,
    scope: &config::Scope,
    concurrency: usize,
    prepare: impl Fn(ProjectInventory) -> F,
    each: impl Fn(ProjectInventory) -> T,
) -> Collected<T> {
    let (projects, discovery_error) = match source.projects().await {
        Ok(p) => (p, None),
        Err(e) => (scope.projects.clone(), Some(e)),
    };
    let projects: Vec<String> =
        projects.into_iter().filter(|p| !discovery::excluded(&scope.exclude_projects, p)).collect();
    let (prepare, each) = (&prepare, &each);
    let mut results: Vec<(String, T)> = stream::iter(projects)
        .map(|p| async move {
            let inventory = prepare(source.collect_project(&p).await).await;
            (p, each(inventory))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Collected { projects: results.into_iter().map(|(_, t)| t).collect(), discovery_error }
}

fn api_client(config: &Config, metrics: client::ClientMetrics) -> Result<std::sync::Arc<client::ApiClient>, String> {
    let gcp = &config.gcp;
    // One client for API calls and token requests alike, so both honour the same proxy settings.
    let request_timeout = gcp.request_timeout;
    let http =
        client::http_builder(request_timeout).build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let tokens = auth::Tokens::new(gcp, http.clone(), move || client::http_builder(request_timeout))?;
    let retry = client::RetryPolicy {
        max_retries: gcp.max_retries,
        min_delay: gcp.retry_min_delay,
        max_delay: gcp.retry_max_delay,
        ..Default::default()
    };
    client::ApiClient::new(http, tokens, gcp.concurrency, gcp.request_timeout, retry, gcp.rate_limits, metrics)
}
