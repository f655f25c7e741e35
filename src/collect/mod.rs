//! Reading the world: Google's APIs or a saved snapshot, one project at a time.

pub mod asset;
pub mod auth;
pub mod client;
pub mod error;
pub mod gcp;
pub mod snapshot;

use futures_util::StreamExt;
use futures_util::stream;

use crate::config::{self, Config};
use crate::inventory::ProjectInventory;

pub enum Source {
    Gcp(Box<gcp::GcpSource>),
    Snapshot(snapshot::SnapshotSource),
    AssetInventory(asset::AssetSource),
}

/// One cycle's raw material.
#[derive(Debug)]
pub struct Collected {
    pub projects: Vec<ProjectInventory>,
    /// Project discovery failed: the audit covers only what could be found.
    pub discovery_error: Option<String>,
}

impl Source {
    /// Builds the configured source; a bad credentials file fails here, naming the path.
    pub fn from_config(config: &Config, metrics: client::ClientMetrics) -> Result<Source, String> {
        match &config.source {
            config::Source::Snapshot { path } => Ok(Source::Snapshot(snapshot::SnapshotSource::new(
                path.clone(),
                config.scope.projects.clone(),
                config.scope.kinds.clone(),
            ))),
            config::Source::Gcp => {
                let client = api_client(config, metrics)?;
                let gcp = &config.gcp;
                Ok(Source::Gcp(Box::new(gcp::GcpSource::new(
                    client,
                    gcp.endpoints.clone(),
                    config.scope.clone(),
                    gcp.run_api,
                ))))
            }
            config::Source::AssetInventory { scope } => Ok(Source::AssetInventory(asset::AssetSource::new(
                api_client(config, metrics)?,
                config.gcp.endpoints.asset.clone(),
                scope.clone(),
                config.scope.kinds.clone(),
            ))),
        }
    }

    async fn projects(&self) -> Result<Vec<String>, String> {
        match self {
            Source::Gcp(s) => s.projects().await,
            Source::Snapshot(s) => s.projects().await,
            Source::AssetInventory(_) => unreachable!("the asset feed is collected whole"),
        }
    }

    async fn collect_project(&self, project: &str) -> ProjectInventory {
        match self {
            Source::Gcp(s) => s.collect_project(project).await,
            Source::Snapshot(s) => s.collect_project(project).await,
            Source::AssetInventory(_) => unreachable!("the asset feed is collected whole"),
        }
    }

    /// Collects every project, `concurrency` projects at a time (requests are bounded
    /// separately inside the HTTP client).
    pub async fn collect(&self, fallback_projects: &[String], concurrency: usize) -> Collected {
        let whole = match self {
            Source::AssetInventory(s) => Some(s.collect_all().await),
            Source::Snapshot(s) => s.collect_asset_file().await,
            Source::Gcp(_) => None,
        };
        if let Some(result) = whole {
            return match result {
                Ok(projects) => Collected { projects, discovery_error: None },
                Err(e) => Collected { projects: Vec::new(), discovery_error: Some(e) },
            };
        }
        let (projects, discovery_error) = match self.projects().await {
            Ok(p) => (p, None),
            Err(e) => (fallback_projects.to_vec(), Some(e)),
        };
        let mut inventories: Vec<ProjectInventory> = stream::iter(projects)
            .map(|p| async move { self.collect_project(&p).await })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        inventories.sort_by(|a, b| a.project.cmp(&b.project));
        Collected { projects: inventories, discovery_error }
    }
}

fn api_client(config: &Config, metrics: client::ClientMetrics) -> Result<std::sync::Arc<client::ApiClient>, String> {
    let gcp = &config.gcp;
    let tokens =
        auth::Tokens::new(gcp.credentials_file.as_deref(), gcp.allow_world_readable_credentials, gcp.token_timeout)?;
    let retry = client::RetryPolicy {
        max_retries: gcp.max_retries,
        min_delay: gcp.retry_min_delay,
        max_delay: gcp.retry_max_delay,
        ..Default::default()
    };
    client::ApiClient::new(tokens, gcp.concurrency, gcp.request_timeout, retry, gcp.rate_limits, metrics)
}
