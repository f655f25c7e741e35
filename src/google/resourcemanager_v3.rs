//! Resource Manager v3: project search.

use serde::Deserialize;

use super::list_response;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
    pub state: String,
}

list_response!(SearchProjectsResponse, "projects", Project);
