//! Which projects are in scope: `[scope] projects`, the ACTIVE projects a Resource Manager
//! search finds, and every ACTIVE project under `[scope] folders` (walked recursively, since
//! `parent:folders/N` in a search matches direct children only), minus `exclude_projects`.
//! Searches and walks are reused for `project_query_ttl`; a failed one falls back to the last
//! result.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::try_join_all;

use super::client::ApiClient;
use crate::config::Scope;
use crate::evaluate::allowlist;
use crate::google::resourcemanager_v3::{ListFoldersResponse, ListProjectsResponse, SearchProjectsResponse};
use crate::inventory::Api;

pub struct Discovery {
    client: Arc<ApiClient>,
    endpoint: String,
    scope: Scope,
    /// The last successful search and walk, and when they ran.
    found: Mutex<Option<(Instant, Vec<String>)>>,
}

impl Discovery {
    pub fn new(client: Arc<ApiClient>, endpoint: String, scope: Scope) -> Self {
        Discovery { client, endpoint, scope, found: Mutex::new(None) }
    }

    pub async fn projects(&self) -> Result<Vec<String>, String> {
        let mut projects: BTreeSet<String> = self.scope.projects.iter().cloned().collect();
        if self.scope.project_query.is_some() || !self.scope.folders.is_empty() {
            projects.extend(self.found().await?);
        }
        Ok(projects.into_iter().filter(|p| !excluded(&self.scope.exclude_projects, p)).collect())
    }

    async fn found(&self) -> Result<Vec<String>, String> {
        let cached = self.found.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((at, found)) = &cached
            && at.elapsed() < self.scope.project_query_ttl
        {
            return Ok(found.clone());
        }
        let fresh = async {
            let mut found = Vec::new();
            if let Some(query) = &self.scope.project_query {
                found.extend(self.search(query).await?);
            }
            for root in &self.scope.folders {
                found.extend(self.walk(root).await?);
            }
            Ok::<_, String>(found)
        };
        match fresh.await {
            Ok(found) => {
                *self.found.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), found.clone()));
                Ok(found)
            }
            Err(e) => match cached {
                Some((_, found)) => {
                    tracing::warn!(error = %e, "project discovery failed; reusing the previous result");
                    Ok(found)
                }
                None => Err(e),
            },
        }
    }

    async fn search(&self, query: &str) -> Result<Vec<String>, String> {
        let url = format!("{}/v3/projects:search", self.endpoint);
        let found = self
            .client
            .list::<SearchProjectsResponse>(Api::Resourcemanager, &url, &[("query", query)])
            .await
            .map_err(|e| format!("project search {query:?} failed: {e}"))?;
        Ok(found.items.into_iter().filter(|p| p.state == "ACTIVE").map(|p| p.project_id).collect())
    }

    /// Every ACTIVE project below `root` (`folders/N` or `organizations/N`), one level of the
    /// tree at a time, each level's folders listed concurrently.
    async fn walk(&self, root: &str) -> Result<Vec<String>, String> {
        let mut projects = Vec::new();
        let mut level = vec![root.to_owned()];
        let mut visited = BTreeSet::new();
        while !level.is_empty() {
            level.retain(|parent| visited.insert(parent.clone()));
            let children = try_join_all(level.iter().map(|parent| self.children(parent))).await?;
            level = Vec::new();
            for (folders, found) in children {
                level.extend(folders);
                projects.extend(found);
            }
        }
        Ok(projects)
    }

    /// The ACTIVE folders and projects directly under `parent`.
    async fn children(&self, parent: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let fail = |e| format!("walking {parent} failed: {e}");
        let query = [("parent", parent)];
        let folders_url = format!("{}/v3/folders", self.endpoint);
        let projects_url = format!("{}/v3/projects", self.endpoint);
        let (folders, projects) = tokio::try_join!(
            self.client.list::<ListFoldersResponse>(Api::Resourcemanager, &folders_url, &query),
            self.client.list::<ListProjectsResponse>(Api::Resourcemanager, &projects_url, &query),
        )
        .map_err(fail)?;
        Ok((
            folders.items.into_iter().filter(|f| f.state == "ACTIVE").map(|f| f.name).collect(),
            projects.items.into_iter().filter(|p| p.state == "ACTIVE").map(|p| p.project_id).collect(),
        ))
    }
}

/// `exclude_projects` globs (`*` matches any run of characters in a project ID).
pub fn excluded(patterns: &[String], project: &str) -> bool {
    patterns.iter().any(|p| allowlist::matches(p, project))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_are_globs_over_the_project_id() {
        let patterns = vec!["sys-*".to_string(), "sandbox".to_string()];
        assert!(excluded(&patterns, "sys-logging-123"));
        assert!(excluded(&patterns, "sandbox"));
        assert!(!excluded(&patterns, "sandbox-2"));
        assert!(!excluded(&patterns, "prod-sys-1"));
    }
}
