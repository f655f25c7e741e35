//! Cloud Functions v2 API.

use serde::Deserialize;

use super::{list_response, non_empty};
use crate::inventory::{BinauthzSetting, FunctionOrigin, Generation, Kind, Workload, location_and_name};

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
pub struct BuildConfig {
    /// `projects/P/locations/L/repositories/R` when the user chose the repository.
    pub docker_repository: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Function {
    pub name: String,
    pub environment: Option<String>,
    pub service_config: ServiceConfig,
    pub build_config: BuildConfig,
}

impl Function {
    pub fn into_workload(self, project: &str) -> Result<Workload, String> {
        let (location, name) =
            location_and_name(&self.name).ok_or_else(|| format!("function with malformed name {:?}", self.name))?;
        let generation = if self.environment.as_deref() == Some("GEN_1") { Generation::Gen1 } else { Generation::Gen2 };
        let binauthz = non_empty(self.service_config.binary_authorization_policy).map(|policy| BinauthzSetting {
            use_default: policy == "default",
            policy: (policy != "default").then_some(policy),
            breakglass_justification: None,
        });
        let build_repository = non_empty(self.build_config.docker_repository)
            .and_then(|r| docker_repository_host_path(&r))
            .unwrap_or_else(|| format!("{location}-docker.pkg.dev/{project}/gcf-artifacts"));
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
            function: Some(FunctionOrigin::FunctionsApi { generation, build_repository, backing_service }),
            managed_by_functions: false,
        })
    }
}

/// `projects/P/locations/L/repositories/R` -> `L-docker.pkg.dev/P/R`.
fn docker_repository_host_path(resource: &str) -> Option<String> {
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

    #[test]
    fn a_gen2_function_builds_into_gcf_artifacts_and_names_its_backing_service() {
        let w = function(
            r#"{"name":"projects/p/locations/us-central1/functions/hello","environment":"GEN_2",
                "serviceConfig":{"binaryAuthorizationPolicy":"default","service":"projects/p/locations/us-central1/services/hello"}}"#,
        );
        assert_eq!(
            w.function,
            Some(FunctionOrigin::FunctionsApi {
                generation: Generation::Gen2,
                build_repository: "us-central1-docker.pkg.dev/p/gcf-artifacts".into(),
                backing_service: Some(("us-central1".into(), "hello".into())),
            })
        );
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
        assert!(matches!(gen1.function, Some(FunctionOrigin::FunctionsApi { generation: Generation::Gen1, .. })));
        let future = function(r#"{"name":"projects/p/locations/l/functions/f","environment":"GEN_3"}"#);
        assert!(matches!(future.function, Some(FunctionOrigin::FunctionsApi { generation: Generation::Gen2, .. })));
    }
}
