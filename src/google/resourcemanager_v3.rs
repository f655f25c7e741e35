//! Resource Manager v3: project search, and the folder tree (`folders.list`,
//! `projects.list`, both by direct parent).

use serde::Deserialize;

use super::list_response;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Folder {
    /// `folders/N`
    pub name: String,
    pub state: String,
}

list_response!(SearchProjectsResponse, "projects", Project);
list_response!(ListProjectsResponse, "projects", Project);
list_response!(ListFoldersResponse, "folders", Folder);
