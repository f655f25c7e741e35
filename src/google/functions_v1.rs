//! Cloud Functions v1 API shape: 1st gen functions. `gcloud functions list` prints 2nd gen
//! functions in the v2 shape and then appends 1st gen ones in this shape (`runtime`,
//! `entryPoint`, `httpsTrigger`/`eventTrigger`, `status`; no `environment`, no
//! `serviceConfig`); Cloud Asset Inventory returns 1st gen functions like this too.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::functions_v2::{gcf_artifacts, repository_url_source, storage_source};
use crate::inventory::{FunctionGeneration, FunctionOrigin, FunctionSource, Kind, Workload, location_and_name};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SourceRepository {
    /// `https://source.developers.google.com/projects/P/repos/R/moveable-aliases/B/paths/D`.
    pub url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Function {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `gs://BUCKET/OBJECT.zip`
    pub source_archive_url: Option<String>,
    pub source_repository: Option<SourceRepository>,
    /// A signed upload URL: the source came from a local directory and cannot be read back.
    pub source_upload_url: Option<String>,
}

impl Function {
    pub fn into_workload(self, project: &str) -> Result<Workload, String> {
        let (location, name) =
            location_and_name(&self.name).ok_or_else(|| format!("function with malformed name {:?}", self.name))?;
        let source = match (&self.source_archive_url, &self.source_repository) {
            (Some(url), _) if !url.is_empty() => match url.strip_prefix("gs://").and_then(|r| r.split_once('/')) {
                Some((bucket, object)) => storage_source(bucket, object),
                None => FunctionSource::NotReusable(format!("sourceArchiveUrl {url:?} is not a gs:// URL")),
            },
            (_, Some(repo)) if !repo.url.is_empty() => repository_url_source(&repo.url),
            _ => FunctionSource::NotReusable(
                "deployed from a local directory (sourceUploadUrl): the uploaded archive cannot be read back".into(),
            ),
        };
        Ok(Workload {
            project: project.to_owned(),
            location: location.to_owned(),
            kind: Kind::Function,
            name: name.to_owned(),
            binauthz: None,
            images: Vec::new(),
            last_modifier: None,
            function: Some(FunctionOrigin::FunctionsApi {
                generation: FunctionGeneration::Gen1,
                build_repository: gcf_artifacts(location, project),
                backing_service: None,
                source,
            }),
            managed_by_functions: false,
            labels: self.labels,
            data_updated_at: None,
            traffic: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_gen_function_keeps_its_reusable_source() {
        let f: Function = serde_json::from_str(
            r#"{"name":"projects/p/locations/us-central1/functions/old","runtime":"nodejs20","entryPoint":"main",
                "httpsTrigger":{"url":"https://x"},"status":"ACTIVE","sourceArchiveUrl":"gs://b/old.zip"}"#,
        )
        .unwrap();
        let w = f.into_workload("p").unwrap();
        assert!(w.function.as_ref().unwrap().is_gen1());
        assert!(matches!(
            w.function,
            Some(FunctionOrigin::FunctionsApi { source: FunctionSource::Flag(s), .. }) if s == "gs://b/old.zip"
        ));
    }
}
