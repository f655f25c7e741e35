//! Cloud Functions v2 API (the shape `gcloud functions list` prints for 2nd gen functions,
//! and the v2 API's view of 1st gen ones).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{list_response, non_empty};
use crate::inventory::{
    BinauthzSetting, FunctionGeneration, FunctionOrigin, FunctionSource, Kind, Workload, location_and_name,
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// `default` when deployed with `--binary-authorization default`; empty when disabled.
    pub binary_authorization_policy: Option<String>,
    /// `projects/P/locations/L/services/S`: the Run service a gen2 function runs on.
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageSource {
    pub bucket: String,
    pub object: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RepoSource {
    pub project_id: String,
    pub repo_name: String,
    pub branch_name: String,
    pub tag_name: String,
    pub commit_sha: String,
    pub dir: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Source {
    pub storage_source: Option<StorageSource>,
    pub repo_source: Option<RepoSource>,
    pub git_uri: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SourceProvenance {
    pub resolved_storage_source: Option<StorageSource>,
    pub resolved_repo_source: Option<RepoSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BuildConfig {
    /// `projects/P/locations/L/repositories/R`; Google fills it in for `gcf-artifacts` too.
    pub docker_repository: Option<String>,
    pub source: Option<Source>,
    pub source_provenance: Option<SourceProvenance>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Function {
    pub name: String,
    pub environment: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub service_config: ServiceConfig,
    pub build_config: BuildConfig,
}

impl Function {
    pub fn into_workload(self, project: &str) -> Result<Workload, String> {
        let (location, name) =
            location_and_name(&self.name).ok_or_else(|| format!("function with malformed name {:?}", self.name))?;
        let generation = if self.environment.as_deref() == Some("GEN_1") {
            FunctionGeneration::Gen1
        } else {
            FunctionGeneration::Gen2
        };
        let binauthz = non_empty(self.service_config.binary_authorization_policy).map(|policy| BinauthzSetting {
            use_default: policy == "default",
            policy: (policy != "default").then_some(policy),
            breakglass_justification: None,
        });
        let build_repository = non_empty(self.build_config.docker_repository.clone())
            .and_then(|r| docker_repository_host_path(&r))
            .unwrap_or_else(|| gcf_artifacts(location, project));
        let backing_service = self
            .service_config
            .service
            .as_deref()
            .and_then(location_and_name)
            .map(|(l, n)| (l.to_owned(), n.to_owned()));
        Ok(Workload {
            project: project.to_owned(),
            location: location.to_owned(),
            kind: Kind::Function,
            name: name.to_owned(),
            binauthz,
            images: Vec::new(),
            last_modifier: None,
            function: Some(FunctionOrigin::FunctionsApi {
                generation,
                build_repository,
                backing_service,
                source: deployed_source(&self.build_config),
            }),
            managed_by_functions: false,
            labels: self.labels,
            data_updated_at: None,
            traffic: None,
        })
    }
}

/// The repository `gcloud functions deploy` builds into when none is chosen.
pub fn gcf_artifacts(location: &str, project: &str) -> String {
    format!("{location}-docker.pkg.dev/{project}/gcf-artifacts")
}

/// What was built (`sourceProvenance`) wins over what was asked for (`source`).
fn deployed_source(build: &BuildConfig) -> FunctionSource {
    let provenance = build.source_provenance.as_ref();
    let asked = build.source.as_ref();
    let storage = provenance
        .and_then(|p| p.resolved_storage_source.as_ref())
        .or_else(|| asked.and_then(|s| s.storage_source.as_ref()));
    let repo =
        provenance.and_then(|p| p.resolved_repo_source.as_ref()).or_else(|| asked.and_then(|s| s.repo_source.as_ref()));
    if let Some(s) = storage.filter(|s| !s.bucket.is_empty() && !s.object.is_empty()) {
        return storage_source(&s.bucket, &s.object);
    }
    if repo.is_some_and(|r| !r.repo_name.is_empty()) {
        return FunctionSource::KeptWithoutFlag;
    }
    if asked.and_then(|s| s.git_uri.as_deref()).is_some_and(|g| !g.is_empty()) {
        return FunctionSource::NotReusable(
            "deployed from a Git repository (gitUri), which `gcloud functions deploy --source` cannot take".into(),
        );
    }
    FunctionSource::NotReusable("the function's source location is not in its build configuration".into())
}

/// `gcloud functions deploy --source` takes Cloud Storage sources as `gs://BUCKET/OBJECT.zip`.
pub fn storage_source(bucket: &str, object: &str) -> FunctionSource {
    if object.ends_with(".zip") {
        FunctionSource::Flag(format!("gs://{bucket}/{object}"))
    } else {
        FunctionSource::NotReusable(format!(
            "the source gs://{bucket}/{object} is not a .zip archive, which --source requires"
        ))
    }
}

/// A Cloud Source Repositories URL as `--source`, if gcloud can parse it back: its pattern
/// allows ONE directory after `/paths/` (`command_lib/functions/v2/deploy/command.py`).
pub fn repository_url_source(url: &str) -> FunctionSource {
    let path = url.split_once("/paths/").map(|(_, p)| p.trim_end_matches('/'));
    if url.starts_with("https://source.developers.google.com/projects/") && path.is_none_or(|p| !p.contains('/')) {
        FunctionSource::Flag(url.to_owned())
    } else {
        FunctionSource::NotReusable(format!(
            "the source repository URL {url} has a nested directory, which gcloud's --source cannot take"
        ))
    }
}

/// `projects/P/locations/L/repositories/R` -> `L-docker.pkg.dev/P/R`.
pub fn docker_repository_host_path(resource: &str) -> Option<String> {
    match resource.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l, "repositories", r] => Some(format!("{l}-docker.pkg.dev/{p}/{r}")),
        _ => None,
    }
}

list_response!(ListFunctionsResponse, "functions", Function);

#[cfg(test)]
mod tests {
    use super::*;

    fn function(json: &str) -> Workload {
        serde_json::from_str::<Function>(json).unwrap().into_workload("p").unwrap()
    }

    fn source(w: &Workload) -> &FunctionSource {
        match &w.function {
            Some(FunctionOrigin::FunctionsApi { source, .. }) => source,
            other => panic!("not a Functions API function: {other:?}"),
        }
    }

    #[test]
    fn a_gen2_function_builds_into_gcf_artifacts_and_names_its_backing_service() {
        let w = function(
            r#"{"name":"projects/p/locations/us-central1/functions/hello","environment":"GEN_2",
                "serviceConfig":{"binaryAuthorizationPolicy":"default","service":"projects/p/locations/us-central1/services/hello"}}"#,
        );
        assert_eq!(w.function.as_ref().unwrap().build_repository(), "us-central1-docker.pkg.dev/p/gcf-artifacts");
        assert!(matches!(
            &w.function,
            Some(FunctionOrigin::FunctionsApi { generation: FunctionGeneration::Gen2, backing_service: Some((l, n)), .. })
                if l == "us-central1" && n == "hello"
        ));
        assert!(w.binauthz.unwrap().use_default);
    }

    #[test]
    fn a_user_managed_docker_repository_overrides_gcf_artifacts() {
        let w = function(
            r#"{"name":"projects/p/locations/us-central1/functions/hello",
                "buildConfig":{"dockerRepository":"projects/other/locations/europe-west1/repositories/fns"}}"#,
        );
        assert_eq!(w.function.unwrap().build_repository(), "europe-west1-docker.pkg.dev/other/fns");
        assert_eq!(w.binauthz, None);
    }

    #[test]
    fn gen1_is_recognised_and_an_unknown_environment_is_tolerated() {
        let gen1 = function(r#"{"name":"projects/p/locations/l/functions/f","environment":"GEN_1"}"#);
        assert!(gen1.function.unwrap().is_gen1());
        let future = function(r#"{"name":"projects/p/locations/l/functions/f","environment":"GEN_3"}"#);
        assert!(!future.function.unwrap().is_gen1());
    }

    #[test]
    fn repository_urls_are_reused_only_in_the_form_gcloud_parses() {
        let one = "https://source.developers.google.com/projects/p/repos/r/moveable-aliases/main/paths/fn";
        assert_eq!(repository_url_source(one), FunctionSource::Flag(one.into()));
        let nested = "https://source.developers.google.com/projects/p/repos/r/moveable-aliases/main/paths/a/b";
        assert!(matches!(repository_url_source(nested), FunctionSource::NotReusable(_)));
        assert!(matches!(repository_url_source("https://github.com/x/y"), FunctionSource::NotReusable(_)));
    }

    #[test]
    fn the_deployed_source_is_named_as_gcloud_takes_it() {
        let built = function(
            r#"{"name":"projects/p/locations/l/functions/f","buildConfig":{
                "source":{"storageSource":{"bucket":"gcf-v2-uploads-1-l","object":"abc.zip"}},
                "sourceProvenance":{"resolvedStorageSource":{"bucket":"gcf-v2-sources-1-l","object":"f/function-source.zip","generation":"17"}}}}"#,
        );
        assert_eq!(source(&built), &FunctionSource::Flag("gs://gcf-v2-sources-1-l/f/function-source.zip".into()));
        let repo = function(
            r#"{"name":"projects/p/locations/l/functions/f","buildConfig":{
                "source":{"repoSource":{"projectId":"p","repoName":"fns","branchName":"main","dir":"/hello/"}}}}"#,
        );
        assert_eq!(source(&repo), &FunctionSource::KeptWithoutFlag, "gcloud keeps a repository source");
        let unknown = function(r#"{"name":"projects/p/locations/l/functions/f"}"#);
        assert!(matches!(source(&unknown), FunctionSource::NotReusable(_)));
        let not_zip = function(
            r#"{"name":"projects/p/locations/l/functions/f","buildConfig":{"source":{"storageSource":{"bucket":"b","object":"src.tar"}}}}"#,
        );
        assert!(matches!(source(&not_zip), FunctionSource::NotReusable(why) if why.contains(".zip")));
    }
}
