//! Reading the world: Google's APIs or a saved snapshot, one project at a time.

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
    Gcp(gcp::GcpSource),
    Snapshot(snapshot::SnapshotSource),
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
    pub fn from_config(config: &Config, requests: prometheus::IntCounterVec) -> Result<Source, String> {
        match &config.source {
            config::Source::Snapshot { path } => Ok(Source::Snapshot(snapshot::SnapshotSource::new(
                path.clone(),
                config.scope.projects.clone(),
                config.scope.kinds.clone(),
            ))),
            config::Source::Gcp => {
                let gcp = &config.gcp;
                let tokens = auth::Tokens::new(
                    gcp.credentials_file.as_deref(),
                    gcp.allow_world_readable_credentials,
                    gcp.token_timeout,
                )?;
                let retry = client::RetryPolicy {
                    max_retries: gcp.max_retries,
                    min_delay: gcp.retry_min_delay,
                    max_delay: gcp.retry_max_delay,
                    ..Default::default()
                };
                let client = client::ApiClient::new(tokens, gcp.concurrency, gcp.request_timeout, retry, requests)?;
                Ok(Source::Gcp(gcp::GcpSource::new(client, gcp.endpoints.clone(), config.scope.clone())))
            }
        }
    }

    async fn projects(&self) -> Result<Vec<String>, String> {
        match self {
            Source::Gcp(s) => s.projects().await,
            Source::Snapshot(s) => s.projects().await,
        }
    }

    async fn collect_project(&self, project: &str) -> ProjectInventory {
        match self {
            Source::Gcp(s) => s.collect_project(project).await,
            Source::Snapshot(s) => s.collect_project(project).await,
        }
    }

    /// Collects every project, `concurrency` projects at a time (requests are bounded
    /// separately inside the HTTP client).
    pub async fn collect(&self, fallback_projects: &[String], concurrency: usize) -> Collected {
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
