//! Google API response shapes (only the fields the auditor reads; everything else is ignored,
//! unknown enum values included) and their mapping onto the inventory.

pub mod binauthz_v1;
pub mod containeranalysis_v1;
pub mod functions_v1;
pub mod functions_v2;
pub mod pubsub_v1;
pub mod resourcemanager_v3;
pub mod run_v1;
pub mod run_v2;
pub mod shape;
pub mod status;

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::inventory::{BinauthzSetting, FunctionOrigin, Kind, TrafficTarget, Workload};

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

/// A container of a Run resource (v1 and v2 name it alike).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Container {
    /// Matches the container's status in a revision (sidecars have one each).
    pub name: String,
    pub image: String,
}

/// Where a Run resource keeps its containers: each API version nests them differently for
/// services and worker pools than for jobs.
pub trait Containers {
    fn containers(&self) -> &[Container];
}

/// What a Cloud Run service, job or worker pool says about itself, in either API version's
/// words (Run v1 annotations, or Run v2 fields): one mapping onto the inventory for both.
struct RunResource<'a> {
    project: &'a str,
    kind: Kind,
    location: String,
    name: String,
    /// User and system labels alike (Knative keeps both in one map).
    labels: &'a HashMap<String, String>,
    binauthz: Option<BinauthzSetting>,
    containers: &'a [Container],
    last_modifier: Option<String>,
    /// The function target it was built from (`gcloud run deploy --function`), if any.
    function_target: Option<&'a str>,
    /// The image its source build produced, if it was built from source.
    built_image: Option<&'a str>,
    /// The revisions it serves, as its status reports them (services and worker pools).
    traffic: Option<Vec<TrafficTarget>>,
}

impl RunResource<'_> {
    fn into_workload(self) -> Workload {
        let images: Vec<String> = self.containers.iter().map(|c| c.image.clone()).filter(|i| !i.is_empty()).collect();
        Workload {
            project: self.project.to_owned(),
            function: self.function_origin(&images),
            kind: self.kind,
            name: self.name,
            managed_by_functions: self.labels.get("goog-managed-by").is_some_and(|v| v == "cloudfunctions"),
            binauthz: self.binauthz,
            images,
            last_modifier: self.last_modifier,
            // User labels only: user label keys cannot contain `/`, system ones
            // (`cloud.googleapis.com/location`) do.
            labels: self.labels.iter().filter(|(k, _)| !k.contains('/')).map(|(k, v)| (k.clone(), v.clone())).collect(),
            data_updated_at: None,
            location: self.location,
            traffic: self.traffic,
        }
    }

    /// A Cloud Run service is a function (`gcloud run deploy --function`) only when it was
    /// built from a function target: gcloud records the other build settings on EVERY
    /// `--source` deploy, so they say nothing. The image is built into the repository of the
    /// image it built, or else `cloud-run-source-deploy` in its region.
    fn function_origin(&self, images: &[String]) -> Option<FunctionOrigin> {
        self.function_target.filter(|t| !t.trim().is_empty())?;
        let build_repository = self
            .built_image
            .into_iter()
            .chain(images.iter().map(String::as_str))
            .find_map(artifact_registry_repository)
            .unwrap_or_else(|| format!("{}-docker.pkg.dev/{}/cloud-run-source-deploy", self.location, self.project));
        Some(FunctionOrigin::RunAdmin { build_repository })
    }
}

/// A build repository `HOST/PROJECT/REPO` from an Artifact Registry image reference, if the
/// image lives in Artifact Registry.
pub fn artifact_registry_repository(image: &str) -> Option<String> {
    let mut parts = image.splitn(4, '/');
    let (host, project, repo, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (host.ends_with("-docker.pkg.dev") && !project.is_empty() && !repo.is_empty() && !rest.is_empty())
        .then(|| format!("{host}/{project}/{repo}"))
}

/// A traffic target as Run v1 (`revisionName`) or v2 (`revision`, maybe a full resource name)
/// reports it; a target that follows the latest revision without naming it serves `latest`.
fn traffic_target(revision: &str, percent: i32, tag: Option<String>, latest: Option<&str>) -> TrafficTarget {
    let named = revision.rsplit('/').next().unwrap_or_default();
    let revision = if named.is_empty() { latest.and_then(|l| l.rsplit('/').next()).unwrap_or_default() } else { named };
    TrafficTarget { revision: revision.to_owned(), percent: u32::try_from(percent).unwrap_or(0), tag: non_empty(tag) }
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
