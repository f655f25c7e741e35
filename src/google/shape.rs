//! Which API shape a saved or exported resource is in. The APIs, `gcloud ... --format=json`
//! and Cloud Asset Inventory print the same resource in different shapes; snapshots and the
//! asset feed both go through this one detector.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{functions_v1, functions_v2, run_v1, run_v2};
use crate::inventory::{Kind, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Run Admin API v1 (Knative: `metadata`, `spec`, annotations).
    Knative,
    /// Run Admin API v2 or Cloud Functions v2.
    V2,
    /// Cloud Functions v1: a 1st gen function.
    FunctionsV1,
}

/// Fields only the Cloud Functions v1 shape has at the top level.
const FUNCTIONS_V1_ONLY: [&str; 8] = [
    "runtime",
    "entryPoint",
    "httpsTrigger",
    "status",
    "sourceArchiveUrl",
    "sourceUploadUrl",
    "sourceRepository",
    "availableMemoryMb",
];
/// Fields only the Cloud Functions v2 shape has at the top level.
const FUNCTIONS_V2_ONLY: [&str; 4] = ["environment", "serviceConfig", "buildConfig", "state"];

pub fn detect(kind: Kind, item: &Value) -> Shape {
    let has = |field: &str| item.get(field).is_some();
    match kind {
        Kind::Function if FUNCTIONS_V2_ONLY.iter().any(|f| has(f)) => Shape::V2,
        Kind::Function if FUNCTIONS_V1_ONLY.iter().any(|f| has(f)) => Shape::FunctionsV1,
        Kind::Function => Shape::V2,
        _ if has("metadata") => Shape::Knative,
        _ => Shape::V2,
    }
}

/// One listed resource, in whichever shape it came, as a workload of `project`.
pub fn workload(kind: Kind, item: Value, project: &str) -> Result<Workload, String> {
    workload_in(kind, item, project, None)
}

/// `workload`, where the resource's region is also known from elsewhere (an asset's name):
/// Knative resources in Asset Inventory may leave out the region label that carries it.
pub fn workload_in(kind: Kind, mut item: Value, project: &str, location: Option<&str>) -> Result<Workload, String> {
    if let (Shape::Knative, Some(l)) = (detect(kind, &item), location)
        && let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.entry(run_v1::LOCATION_LABEL).or_insert_with(|| Value::String(l.to_owned()));
        }
    }
    match (detect(kind, &item), kind) {
        (Shape::FunctionsV1, _) => from::<functions_v1::Function>(item)?.into_workload(project),
        (_, Kind::Function) => from::<functions_v2::Function>(item)?.into_workload(project),
        (Shape::Knative, Kind::Job) => from::<run_v1::Job>(item)?.into_workload(project, kind),
        (Shape::Knative, _) => from::<run_v1::Service>(item)?.into_workload(project, kind),
        (_, Kind::Job) => from::<run_v2::Job>(item)?.into_workload(project, kind),
        (_, _) => from::<run_v2::Service>(item)?.into_workload(project, kind),
    }
}

fn from<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn gcloud_functions_list_mixes_v2_and_first_gen_v1_items() {
        let v2 = json!({"name": "projects/p/locations/l/functions/a", "environment": "GEN_2", "state": "ACTIVE"});
        let v1 = json!({"name": "projects/p/locations/l/functions/b", "runtime": "nodejs20", "status": "ACTIVE"});
        assert_eq!(detect(Kind::Function, &v2), Shape::V2);
        assert_eq!(detect(Kind::Function, &v1), Shape::FunctionsV1);
        assert!(workload(Kind::Function, v1, "p").unwrap().function.unwrap().is_gen1());
        assert!(!workload(Kind::Function, v2, "p").unwrap().function.unwrap().is_gen1());
    }

    #[test]
    fn knative_resources_carry_metadata() {
        assert_eq!(detect(Kind::Service, &json!({"metadata": {"name": "s"}})), Shape::Knative);
        assert_eq!(detect(Kind::Service, &json!({"name": "projects/p/locations/l/services/s"})), Shape::V2);
    }
}
