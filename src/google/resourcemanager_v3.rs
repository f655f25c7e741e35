//! Resource Manager v3: project search.

use serde::Deserialize;

use super::Page;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
    pub state: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SearchProjectsResponse {
    pub projects: Vec<Project>,
    pub next_page_token: Option<String>,
}

impl Page for SearchProjectsResponse {
    type Item = Project;
    fn next_page_token(&self) -> Option<&str> {
        self.next_page_token.as_deref().filter(|t| !t.is_empty())
    }
    fn into_items(self) -> Vec<Project> {
        self.projects
    }
}
