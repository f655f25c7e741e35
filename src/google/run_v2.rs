//! Cloud Run Admin API v2: services, jobs, worker pools.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Container, Containers, RunResource, list_response, non_empty, traffic_target};
use crate::inventory::{BinauthzSetting, Kind, Workload, location_and_name};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BinaryAuthorization {
    pub use_default: bool,
    pub policy: Option<String>,
    pub breakglass_justification: Option<String>,
}

impl From<BinaryAuthorization> for BinauthzSetting {
    fn from(b: BinaryAuthorization) -> Self {
        BinauthzSetting {
            use_default: b.use_default,
            policy: non_empty(b.policy),
            breakglass_justification: non_empty(b.breakglass_justification),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RevisionTemplate {
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecutionTemplate {
    pub template: RevisionTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BuildConfig {
    pub function_target: Option<String>,
    pub image_uri: Option<String>,
}

/// The fields services, jobs and worker pools share.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Resource<T> {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub binary_authorization: Option<BinaryAuthorization>,
    pub creator: Option<String>,
    pub last_modifier: Option<String>,
    /// Only services have it, and gcloud sets it on every `--source` deploy: only a
    /// `functionTarget` makes the service a function (`gcloud run deploy --function`).
    pub build_config: Option<BuildConfig>,
    pub template: T,
    /// What a service serves now; absent: not said (which is not "nothing").
    pub traffic_statuses: Option<Vec<Target>>,
    /// What a worker pool runs now.
    pub instance_split_statuses: Option<Vec<Target>>,
    pub latest_ready_revision: Option<String>,
}

/// `trafficStatuses[]` of a service, `instanceSplitStatuses[]` of a worker pool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Target {
    pub revision: String,
    pub percent: i32,
    pub tag: Option<String>,
}

pub type Service = Resource<RevisionTemplate>;
pub type Job = Resource<ExecutionTemplate>;
pub type WorkerPool = Resource<RevisionTemplate>;

impl Containers for RevisionTemplate {
    fn containers(&self) -> &[Container] {
        &self.containers
    }
}

impl Containers for ExecutionTemplate {
    fn containers(&self) -> &[Container] {
        &self.template.containers
    }
}

impl<T: Containers> Resource<T> {
    pub fn into_workload(self, project: &str, kind: Kind) -> Result<Workload, String> {
        let (location, name) =
            location_and_name(&self.name).ok_or_else(|| format!("{kind} with malformed name {:?}", self.name))?;
        let targets = match kind {
            Kind::Service => self.traffic_statuses,
            Kind::WorkerPool => self.instance_split_statuses,
            Kind::Job | Kind::Function => None,
        };
        let latest = self.latest_ready_revision.as_deref();
        let traffic = targets.map(|targets| {
            targets.into_iter().map(|t| traffic_target(&t.revision, t.percent, t.tag, latest)).collect()
        });
        let build = self.build_config.as_ref();
        Ok(RunResource {
            project,
            kind,
            location: location.to_owned(),
            name: name.to_owned(),
            labels: &self.labels,
            binauthz: self.binary_authorization.map(BinauthzSetting::from),
            containers: self.template.containers(),
            last_modifier: non_empty(self.last_modifier).or(non_empty(self.creator)),
            function_target: build.and_then(|b| b.function_target.as_deref()),
            built_image: build.and_then(|b| b.image_uri.as_deref()).filter(|i| !i.trim().is_empty()),
            traffic,
        }
        .into_workload())
    }
}

list_response!(ListServicesResponse, "services", Service);
list_response!(ListJobsResponse, "jobs", Job);
list_response!(ListWorkerPoolsResponse, "workerPools", WorkerPool);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::FunctionOrigin;

    #[test]
    fn a_service_maps_its_binauthz_setting_and_image() {
        let s: Service = serde_json::from_str(
            r#"{"name":"projects/p/locations/us-central1/services/api","lastModifier":"dev@example.com",
                "binaryAuthorization":{"useDefault":true,"breakglassJustification":""},
                "template":{"containers":[{"image":"us-docker.pkg.dev/p/r/api:v1"}]},"newField":{"x":1}}"#,
        )
        .unwrap();
        let w = s.into_workload("p", Kind::Service).unwrap();
        assert_eq!((w.location.as_str(), w.name.as_str()), ("us-central1", "api"));
        assert_eq!(w.binauthz, Some(BinauthzSetting { use_default: true, ..Default::default() }));
        assert_eq!(w.images, vec!["us-docker.pkg.dev/p/r/api:v1"]);
        assert_eq!(w.last_modifier.as_deref(), Some("dev@example.com"));
        assert_eq!(w.function, None);
    }

    #[test]
    fn a_service_built_from_a_function_target_is_a_run_admin_function() {
        let s: Service = serde_json::from_str(
            r#"{"name":"projects/p/locations/europe-west1/services/fn","buildConfig":{"functionTarget":"handler"},
                "template":{"containers":[{"image":"gcr.io/p/fn"}]}}"#,
        )
        .unwrap();
        let w = s.into_workload("p", Kind::Service).unwrap();
        assert_eq!(
            w.function,
            Some(FunctionOrigin::RunAdmin {
                build_repository: "europe-west1-docker.pkg.dev/p/cloud-run-source-deploy".into()
            })
        );
    }

    #[test]
    fn a_plain_source_deploy_is_not_a_function() {
        let s: Service = serde_json::from_str(
            r#"{"name":"projects/p/locations/europe-west1/services/web",
                "buildConfig":{"imageUri":"europe-west1-docker.pkg.dev/p/cloud-run-source-deploy/web","baseImage":"x"},
                "template":{"containers":[{"image":"europe-west1-docker.pkg.dev/p/cloud-run-source-deploy/web@sha256:ab"}]}}"#,
        )
        .unwrap();
        assert_eq!(s.into_workload("p", Kind::Service).unwrap().function, None);
    }

    #[test]
    fn v2_traffic_and_instance_splits_name_their_revisions() {
        let s: Service = serde_json::from_str(
            r#"{"name":"projects/p/locations/l/services/api","latestReadyRevision":"projects/p/locations/l/services/api/revisions/api-00002-b",
                "trafficStatuses":[{"type":"TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST","percent":90},
                                   {"type":"TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION","revision":"api-00001-a","percent":10,"tag":"canary"}]}"#,
        )
        .unwrap();
        let traffic = s.into_workload("p", Kind::Service).unwrap().traffic.unwrap();
        assert_eq!(traffic[0].revision, "api-00002-b", "the latest target serves the latest ready revision");
        assert_eq!((traffic[1].percent, traffic[1].tag.as_deref()), (10, Some("canary")));
        let pool: WorkerPool = serde_json::from_str(
            r#"{"name":"projects/p/locations/l/workerPools/w","instanceSplitStatuses":[{"revision":"w-00001-a","percent":100}]}"#,
        )
        .unwrap();
        assert_eq!(pool.into_workload("p", Kind::WorkerPool).unwrap().traffic.unwrap()[0].revision, "w-00001-a");
    }

    #[test]
    fn job_images_live_one_template_deeper() {
        let j: Job = serde_json::from_str(
            r#"{"name":"projects/p/locations/us-east1/jobs/etl","template":{"template":{"containers":[{"image":"img"}]}}}"#,
        )
        .unwrap();
        assert_eq!(j.into_workload("p", Kind::Job).unwrap().images, vec!["img"]);
    }

    #[test]
    fn a_malformed_name_is_an_error_not_a_workload() {
        let s: Service = serde_json::from_str(r#"{"name":"api"}"#).unwrap();
        assert!(s.into_workload("p", Kind::Service).unwrap_err().contains("malformed name"));
    }
}
