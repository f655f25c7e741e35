//! Google API response shapes (only the fields the auditor reads; everything else is ignored,
//! unknown enum values included) and their mapping onto the inventory.

pub mod binauthz_v1;
pub mod functions_v2;
pub mod resourcemanager_v3;
pub mod run_v1;
pub mod run_v2;
pub mod status;

use serde::de::DeserializeOwned;

/// A list response: its items and the token for the next page, if any.
pub trait Page: DeserializeOwned {
    type Item;
    /// The query parameter that carries the token to the next request.
    const TOKEN_PARAM: &'static str = "pageToken";
    fn next_page_token(&self) -> Option<&str>;
    /// Regions the server could not reach: their resources are missing from this page.
    fn unreachable(&self) -> &[String] {
        &[]
    }
    fn into_items(self) -> Vec<Self::Item>;
}

/// A list response in Google's common shape: items under `$field`, `nextPageToken`, and
/// `unreachable` locations (absent from APIs that have none).
macro_rules! list_response {
    ($name:ident, $field:literal, $item:ty) => {
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(default, rename_all = "camelCase")]
        pub struct $name {
            #[serde(rename = $field)]
            pub items: Vec<$item>,
            pub next_page_token: Option<String>,
            pub unreachable: Vec<String>,
        }

        impl $crate::google::Page for $name {
            type Item = $item;
            fn next_page_token(&self) -> Option<&str> {
                self.next_page_token.as_deref().filter(|t| !t.is_empty())
            }
            fn unreachable(&self) -> &[String] {
                &self.unreachable
            }
            fn into_items(self) -> Vec<$item> {
                self.items
            }
        }
    };
}
pub(crate) use list_response;

/// A build repository `HOST/PROJECT/REPO` from an Artifact Registry image reference, if the
/// image lives in Artifact Registry.
pub fn artifact_registry_repository(image: &str) -> Option<String> {
    let mut parts = image.splitn(4, '/');
    let (host, project, repo, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (host.ends_with("-docker.pkg.dev") && !project.is_empty() && !repo.is_empty() && !rest.is_empty())
        .then(|| format!("{host}/{project}/{repo}"))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_come_from_artifact_registry_images_only() {
        assert_eq!(
            artifact_registry_repository("us-docker.pkg.dev/p/repo/app@sha256:ab").as_deref(),
            Some("us-docker.pkg.dev/p/repo")
        );
        assert_eq!(
            artifact_registry_repository("us-docker.pkg.dev/p/repo/nested/app:v1").as_deref(),
            Some("us-docker.pkg.dev/p/repo")
        );
        assert_eq!(artifact_registry_repository("gcr.io/p/app"), None);
        assert_eq!(artifact_registry_repository("us-docker.pkg.dev/p/repo"), None);
    }
}
