//! Cloud Run Admin API v1: the Knative resource shape (what `gcloud run ... --format=json`
//! prints) and the locations list.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Container, Containers, Page, RunResource, list_response, non_empty};
use crate::inventory::{BinauthzSetting, Kind, Workload};

pub const BINAUTHZ_ANNOTATION: &str = "run.googleapis.com/binary-authorization";
pub const BREAKGLASS_ANNOTATION: &str = "run.googleapis.com/binary-authorization-breakglass";
pub const FUNCTION_TARGET_ANNOTATION: &str = "run.googleapis.com/build-function-target";
pub const BUILD_IMAGE_ANNOTATION: &str = "run.googleapis.com/build-image-uri";
pub const LOCATION_LABEL: &str = "cloud.googleapis.com/location";
/// Who changed the resource last, most specific first: services record it under
/// `serving.knative.dev/`, jobs and worker pools under `run.googleapis.com/` (seen in real
/// responses), and a resource never changed since creation only names its creator.
const MODIFIER_ANNOTATIONS: [&str; 4] = [
    "serving.knative.dev/lastModifier",
    "run.googleapis.com/lastModifier",
    "serving.knative.dev/creator",
    "run.googleapis.com/creator",
];

/// `metadata.namespace` is the project NUMBER in real responses, so the project comes from
/// the request, not from here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ObjectMeta {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
}

/// `spec` of a pod-like template: the containers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodSpec {
    pub containers: Vec<Container>,
}

/// `{metadata, spec}`: Knative nests these templates two (services) or three (jobs) deep, and
/// every level is tolerated being absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct Template<S> {
    pub spec: S,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct TemplateSpec<S> {
    pub template: Template<S>,
}

/// Service and WorkerPool: `spec.template.spec.containers`.
pub type ServiceSpec = TemplateSpec<PodSpec>;
/// Job: `spec.template.spec.template.spec.containers`.
pub type JobSpec = TemplateSpec<TemplateSpec<PodSpec>>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct Resource<S> {
    pub metadata: ObjectMeta,
    pub spec: S,
}

impl Containers for ServiceSpec {
    fn containers(&self) -> &[Container] {
        &self.template.spec.containers
    }
}

impl Containers for JobSpec {
    fn containers(&self) -> &[Container] {
        &self.template.spec.template.spec.containers
    }
}

impl<S: Containers> Resource<S> {
    pub fn into_workload(self, project: &str, kind: Kind) -> Result<Workload, String> {
        let meta = self.metadata;
        if meta.name.is_empty() {
            return Err(format!("{kind} without metadata.name"));
        }
        let location = meta
            .labels
            .get(LOCATION_LABEL)
            .cloned()
            .ok_or_else(|| format!("{kind} {} has no {LOCATION_LABEL} label", meta.name))?;
        let annotation = |key: &str| non_empty(meta.annotations.get(key).cloned());
        let binauthz = annotation(BINAUTHZ_ANNOTATION).map(|value| BinauthzSetting {
            use_default: value == "default",
            policy: (value != "default").then_some(value),
            breakglass_justification: annotation(BREAKGLASS_ANNOTATION),
        });
        let (function_target, built_image) =
            (annotation(FUNCTION_TARGET_ANNOTATION), annotation(BUILD_IMAGE_ANNOTATION));
        Ok(RunResource {
            project,
            kind,
            location,
            name: meta.name.clone(),
            labels: &meta.labels,
            binauthz,
            containers: self.spec.containers(),
            last_modifier: MODIFIER_ANNOTATIONS.iter().find_map(|key| annotation(key)),
            function_target: function_target.as_deref(),
            built_image: built_image.as_deref(),
        }
        .into_workload())
    }
}

pub type Service = Resource<ServiceSpec>;
pub type Job = Resource<JobSpec>;
pub type WorkerPool = Resource<ServiceSpec>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListMeta {
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

/// `ListServicesResponse`, `ListJobsResponse`, `ListWorkerPoolsResponse`: Kubernetes-style.
#[derive(Debug, Deserialize)]
pub struct KnativeList<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub unreachable: Vec<String>,
}

impl<T: serde::de::DeserializeOwned> Page for KnativeList<T> {
    type Item = T;
    const TOKEN_PARAM: &'static str = "continue";
    fn next_page_token(&self) -> Option<&str> {
        self.metadata.continue_token.as_deref().filter(|t| !t.is_empty())
    }
    fn unreachable(&self) -> &[String] {
        &self.unreachable
    }
    fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Location {
    pub location_id: String,
}

list_response!(ListLocationsResponse, "locations", Location);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knative_annotations_map_onto_the_v2_model() {
        let s: Service = serde_json::from_str(
            r#"{"apiVersion":"serving.knative.dev/v1","kind":"Service",
                "metadata":{"name":"api","namespace":"123","labels":{"cloud.googleapis.com/location":"us-central1"},
                  "annotations":{"run.googleapis.com/binary-authorization":"default",
                                 "run.googleapis.com/binary-authorization-breakglass":"incident 42",
                                 "serving.knative.dev/creator":"ci@p.iam.gserviceaccount.com"}},
                "spec":{"template":{"spec":{"containers":[{"image":"gcr.io/p/api"}]}}}}"#,
        )
        .unwrap();
        let w = s.into_workload("p", Kind::Service).unwrap();
        assert_eq!(w.location, "us-central1");
        let b = w.binauthz.unwrap();
        assert!(b.use_default);
        assert_eq!(b.breakglass_justification.as_deref(), Some("incident 42"));
        assert_eq!(w.last_modifier.as_deref(), Some("ci@p.iam.gserviceaccount.com"));
        assert_eq!(w.images, vec!["gcr.io/p/api"]);
    }

    #[test]
    fn jobs_name_their_modifier_under_run_googleapis_com() {
        let j: Job = serde_json::from_str(
            r#"{"metadata":{"name":"job","namespace":"1098479648729","labels":{"cloud.googleapis.com/location":"us-central1"},
                "annotations":{"run.googleapis.com/lastModifier":"kapil@stacklet.io","run.googleapis.com/creator":"ci@x"}}}"#,
        )
        .unwrap();
        assert_eq!(j.into_workload("p", Kind::Job).unwrap().last_modifier.as_deref(), Some("kapil@stacklet.io"));
    }

    #[test]
    fn a_named_policy_annotation_is_a_policy_not_the_default() {
        let s: Service = serde_json::from_str(
            r#"{"metadata":{"name":"api","labels":{"cloud.googleapis.com/location":"l"},
                "annotations":{"run.googleapis.com/binary-authorization":"projects/p/platforms/cloudRun/policies/strict"}}}"#,
        )
        .unwrap();
        let b = s.into_workload("p", Kind::Service).unwrap().binauthz.unwrap();
        assert!(!b.use_default);
        assert_eq!(b.policy.as_deref(), Some("projects/p/platforms/cloudRun/policies/strict"));
    }

    #[test]
    fn job_containers_are_three_templates_deep_and_a_missing_annotation_means_disabled() {
        let j: Job = serde_json::from_str(
            r#"{"metadata":{"name":"etl","labels":{"cloud.googleapis.com/location":"l"}},
                "spec":{"template":{"spec":{"template":{"spec":{"containers":[{"image":"img"}]}}}}}}"#,
        )
        .unwrap();
        let w = j.into_workload("p", Kind::Job).unwrap();
        assert_eq!(w.images, vec!["img"]);
        assert_eq!(w.binauthz, None);
    }
}
