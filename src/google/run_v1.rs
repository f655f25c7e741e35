//! Cloud Run Admin API v1: the Knative resource shape (what `gcloud run ... --format=json`
//! prints) and the locations list.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Container, Containers, Page, RunResource, list_response, non_empty, traffic_target};
use crate::attest::ImageRef;
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

/// `status.traffic[]` of a service, `status.instanceSplits[]` of a worker pool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Target {
    pub revision_name: String,
    pub percent: i32,
    pub tag: Option<String>,
}

/// What the resource serves now. Absent lists (a status gcloud or a feed left out) say
/// nothing, which is not the same as serving nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    pub traffic: Option<Vec<Target>>,
    pub instance_splits: Option<Vec<Target>>,
    pub latest_ready_revision_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct Resource<S> {
    pub metadata: ObjectMeta,
    pub spec: S,
    pub status: Status,
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
        let status = self.status;
        let targets = match kind {
            Kind::Service => status.traffic,
            Kind::WorkerPool => status.instance_splits,
            Kind::Job | Kind::Function => None,
        };
        let latest = status.latest_ready_revision_name.as_deref();
        let traffic = targets.map(|targets| {
            targets.into_iter().map(|t| traffic_target(&t.revision_name, t.percent, t.tag, latest)).collect()
        });
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
            traffic,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    /// A full reference (`REPO@sha256:...`) in recorded answers; a bare digest is joined with
    /// its container's repository.
    pub image_digest: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RevisionStatus {
    /// The first (ingress) container's image by digest, "regardless of whether a tag or digest
    /// was originally specified".
    pub image_digest: String,
    /// One per container, sidecars included.
    pub container_statuses: Vec<ContainerStatus>,
}

/// A revision (`GET /apis/serving.knative.dev/v1/namespaces/P/revisions`): immutable, and it
/// records the digest each container was deployed with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Revision {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: RevisionStatus,
}

impl Revision {
    pub fn location(&self) -> Option<&str> {
        self.metadata.labels.get(LOCATION_LABEL).map(String::as_str)
    }

    /// Every container's image by digest, or why they are not all known.
    pub fn images(&self) -> Result<Vec<String>, String> {
        let name = &self.metadata.name;
        let statuses = &self.status.container_statuses;
        let containers = &self.spec.containers;
        if !statuses.is_empty() {
            return statuses
                .iter()
                .map(|s| {
                    let spec = containers.iter().find(|c| c.name == s.name).or(containers.first());
                    by_digest(&s.image_digest, spec.map(|c| c.image.as_str()))
                        .ok_or_else(|| format!("revision {name} records no digest for container {:?}", s.name))
                })
                .collect();
        }
        if containers.len() > 1 {
            return Err(format!(
                "revision {name} records the digest of one of its {} containers only",
                containers.len()
            ));
        }
        let first = containers.first().map(|c| c.image.as_str());
        by_digest(&self.status.image_digest, first)
            .or_else(|| first.filter(|image| ImageRef::parse(image).is_some()).map(str::to_owned))
            .map(|image| vec![image])
            .ok_or_else(|| format!("revision {name} records no image digest"))
    }
}

/// A digest as a revision records it, as `REPO@sha256:...`.
fn by_digest(recorded: &str, deployed: Option<&str>) -> Option<String> {
    if ImageRef::parse(recorded).is_some() {
        return Some(recorded.to_owned());
    }
    let repository = ImageRef::repository_of(deployed?)?;
    let joined = format!("{repository}@{recorded}");
    ImageRef::parse(&joined).map(|_| joined)
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
    use crate::inventory::TrafficTarget;

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

    /// A recorded real answer (tests/realworld/, with provenance): `{"headers", "body"}`.
    fn recorded(exchange: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(exchange).unwrap()["body"].take()
    }

    #[test]
    fn a_recorded_service_serves_its_traffic_targets_and_a_recorded_revision_its_digest() {
        let services =
            recorded(include_str!("../../tests/realworld/custodian-run-v1-services-list-locations-dash.json"));
        let list: KnativeList<Service> = serde_json::from_value(services).unwrap();
        let hello = list.items.into_iter().next().unwrap().into_workload("p", Kind::Service).unwrap();
        assert_eq!(
            hello.traffic,
            Some(vec![TrafficTarget { revision: "hello-00001-tiv".into(), percent: 100, tag: None }])
        );
        let revisions = recorded(include_str!("../../tests/realworld/custodian-run-v1-revisions-list-global.json"));
        let list: KnativeList<Revision> = serde_json::from_value(revisions).unwrap();
        let revision = &list.items[0];
        assert_eq!((revision.metadata.name.as_str(), revision.location()), ("hello-00001-nvq", Some("us-central1")));
        assert_eq!(
            revision.images().unwrap(),
            vec![
                "us-docker.pkg.dev/cloudrun/container/hello@sha256:e9cad8c3f185bc7ef07d976e8f260e94de0d954bf25f91a992f6445c8abc0940"
            ]
        );
    }

    #[test]
    fn tags_latest_targets_and_sidecar_digests_are_read_as_google_writes_them() {
        let s: Service = serde_json::from_str(
            r#"{"metadata":{"name":"api","labels":{"cloud.googleapis.com/location":"l"}},
                "status":{"latestReadyRevisionName":"api-00003-new","traffic":[
                  {"revisionName":"api-00002-old","percent":90},
                  {"latestRevision":true,"percent":10},
                  {"revisionName":"api-00001-pre","percent":0,"tag":"preview"}]}}"#,
        )
        .unwrap();
        let targets = s.into_workload("p", Kind::Service).unwrap().traffic.unwrap();
        assert_eq!(targets[1], TrafficTarget { revision: "api-00003-new".into(), percent: 10, tag: None });
        assert_eq!(targets[2].tag.as_deref(), Some("preview"));
        let no_status: Service =
            serde_json::from_str(r#"{"metadata":{"name":"api","labels":{"cloud.googleapis.com/location":"l"}}}"#)
                .unwrap();
        assert_eq!(no_status.into_workload("p", Kind::Service).unwrap().traffic, None, "not said is not nothing");

        let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let sidecars: Revision = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-00002-old"},
            "spec": {"containers": [{"name": "app", "image": "gcr.io/p/app:v2"}, {"name": "proxy", "image": "gcr.io/p/proxy:v1"}]},
            "status": {"imageDigest": format!("gcr.io/p/app@{digest}"),
                       "containerStatuses": [{"name": "app", "imageDigest": format!("gcr.io/p/app@{digest}")},
                                             {"name": "proxy", "imageDigest": digest}]}}))
        .unwrap();
        assert_eq!(
            sidecars.images().unwrap(),
            vec![format!("gcr.io/p/app@{digest}"), format!("gcr.io/p/proxy@{digest}")]
        );
        let unrecorded: Revision = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-00004-x"},
            "spec": {"containers": [{"name": "app", "image": "gcr.io/p/app:v2"}, {"name": "proxy", "image": "gcr.io/p/proxy:v1"}]},
            "status": {"imageDigest": format!("gcr.io/p/app@{digest}")}}))
        .unwrap();
        assert!(unrecorded.images().unwrap_err().contains("one of its 2 containers"));
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
