//! Keeps the fake honest: every request the auditor makes must be a method Google's discovery
//! documents define (path and query parameters), and every response the fake gives must fit
//! the response schema (field names, types, enum values). The facts come from
//! `tests/schemas/google-apis.json`, distilled from the discovery documents by
//! `scripts/discovery-excerpt.py`.

mod support;

use serde_json::{Value, json};
use support::fake_google::{FakeGoogle, World};
use support::resources::*;
use support::run::{audit_json, gcp_config};

struct Discovery(Value);

struct Method<'a> {
    api: &'a str,
    name: &'a str,
    parameters: Vec<&'a str>,
    response: &'a str,
}

impl Discovery {
    fn load() -> Discovery {
        Discovery(serde_json::from_str(include_str!("schemas/google-apis.json")).unwrap())
    }

    fn method_for(&self, path: &str) -> Option<Method<'_>> {
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for (api, doc) in self.0.as_object().unwrap() {
            for (name, m) in doc["methods"].as_object().unwrap() {
                let template: Vec<&str> = m["path"].as_str().unwrap().split('/').collect();
                let fits = template.len() == actual.len()
                    && template.iter().zip(&actual).all(|(t, a)| t.starts_with('{') || t == a);
                if fits {
                    return Some(Method {
                        api,
                        name,
                        parameters: m["parameters"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect(),
                        response: m["response"].as_str().unwrap(),
                    });
                }
            }
        }
        None
    }

    fn check(&self, api: &str, schema: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check_ref(api, schema, value, "$", &mut errors);
        errors
    }

    fn check_ref(&self, api: &str, schema: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(props) = self.0[api]["schemas"][schema].as_object() else {
            errors.push(format!("{at}: schema {schema} not in the excerpt"));
            return;
        };
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: expected an object ({schema})"));
            return;
        };
        for (key, v) in object {
            match props.get(key) {
                Some(facts) => self.check_field(api, facts, v, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}.{key}: no such field in {schema}")),
            }
        }
    }

    fn check_field(&self, api: &str, facts: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(r) = facts["$ref"].as_str() {
            return self.check_ref(api, r, v, at, errors);
        }
        let ok = match facts["type"].as_str().unwrap_or("any") {
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            // int64 travels as a JSON string.
            "integer" => {
                v.is_i64()
                    || v.is_u64()
                    || (v.is_string() && facts["format"].as_str().is_some_and(|f| f.ends_with("64")))
            }
            "number" => v.is_number(),
            "array" => match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_field(api, &facts["items"], item, &format!("{at}[{i}]"), errors);
                    }
                    true
                }
                None => false,
            },
            "object" => match (v.as_object(), facts.get("additionalProperties")) {
                (Some(map), Some(inner)) => {
                    for (k, item) in map {
                        self.check_field(api, inner, item, &format!("{at}.{k}"), errors);
                    }
                    true
                }
                (Some(_), None) => true,
                (None, _) => false,
            },
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {}", facts["type"]));
        }
        if let (Some(allowed), Some(s)) = (facts["enum"].as_array(), v.as_str())
            && !allowed.iter().any(|a| a == s)
        {
            errors.push(format!("{at}: {s:?} is not one of {allowed:?}"));
        }
    }
}

fn rich_world() -> World {
    let mut world = World { page_size: 1, ..World::default() };
    let id = "schema-prod";
    let p = world.project(id);
    p.policy = Some(policy_exempting_functions(id, "us-central1"));
    p.services = vec![
        service(id, "us-central1", "web"),
        set(service(id, "us-central1", "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-1")),
        set(service(id, "europe-west1", "runfn"), "/buildConfig", json!({"functionTarget": "handler"})),
        backing_service(id, "us-central1", "hook"),
    ];
    p.jobs = vec![job(id, "us-central1", "etl")];
    p.worker_pools = vec![worker_pool(id, "europe-west1", "consumer")];
    p.functions = vec![
        function(id, "us-central1", "hook"),
        set(function(id, "us-central1", "old"), "/environment", json!("GEN_1")),
        set(
            function(id, "europe-west1", "custom"),
            "/buildConfig/dockerRepository",
            json!(format!("projects/{id}/locations/europe-west1/repositories/fns")),
        ),
    ];
    world.search = vec![(id.into(), "ACTIVE".into(), "folders/1".into())];
    world.folders = vec![("folders/1".into(), "ACTIVE".into(), "organizations/1".into())];
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_a_discovery_method_and_every_response_fits_its_schema() {
    let fake = FakeGoogle::start(rich_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        gcp_config(dir.path(), &fake, &[], "project_query = \"parent:folders/1\"\nfolders = [\"organizations/1\"]", "");
    let base = std::fs::read_to_string(&config).unwrap();
    // The same estate through the Run v1 global endpoint (default), Run v2 per region, and
    // the Asset Inventory feed: every request any of them makes is checked.
    let variants = [
        base.clone(),
        base.replace("[gcp]\n", "[gcp]\nrun_api = \"v2\"\n"),
        format!("{base}\n[source]\nkind = \"asset_inventory\"\nscope = \"organizations/1\"\n"),
    ];
    for (i, text) in variants.iter().enumerate() {
        let path = dir.path().join(format!("variant{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, report, stderr) = audit_json(&path).await;
        assert_eq!(report["complete"], true, "variant {i}: {stderr}\n{report:#}");
        assert_eq!(code, 1, "variant {i}");
    }

    let discovery = Discovery::load();
    let mut methods_seen = std::collections::BTreeSet::new();
    for request in fake.requests().iter().filter(|r| r.path != "/token") {
        let method = discovery
            .method_for(&request.path)
            .unwrap_or_else(|| panic!("{} is no method in the discovery documents", request.path));
        for (param, _) in &request.query {
            assert!(
                method.parameters.contains(&param.as_str()),
                "{}: {param} is not a parameter of {}",
                request.path,
                method.name
            );
        }
        let body = fake.get_json(&request.path, &request.query).await;
        let errors = discovery.check(method.api, method.response, &body);
        assert!(errors.is_empty(), "{} ({}): {errors:#?}", request.path, method.name);
        methods_seen.insert(format!("{}:{}", method.api, method.name));
    }
    let expected = [
        "binaryauthorization.v1:projects.getPolicy",
        "cloudasset.v1:assets.list",
        "cloudfunctions.v2:projects.locations.functions.list",
        "cloudresourcemanager.v3:folders.list",
        "cloudresourcemanager.v3:projects.list",
        "cloudresourcemanager.v3:projects.search",
        "run.v1:namespaces.jobs.list",
        "run.v1:namespaces.workerpools.list",
        "run.v1:projects.locations.list",
        "run.v1:projects.locations.services.list",
        "run.v2:projects.locations.jobs.list",
        "run.v2:projects.locations.services.list",
        "run.v2:projects.locations.workerPools.list",
    ];
    assert_eq!(methods_seen.iter().map(String::as_str).collect::<Vec<_>>(), expected);
}

#[test]
fn the_checker_catches_wrong_fields_types_and_enums() {
    let discovery = Discovery::load();
    let bad =
        json!({"services": [{"binaryAuthorization": {"useDefault": "yes"}, "launchStage": "SOON", "colour": "red"}]});
    let errors = discovery.check("run.v2", "GoogleCloudRunV2ListServicesResponse", &bad);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors.iter().any(|e| e.contains("useDefault")));
    assert!(errors.iter().any(|e| e.contains("SOON")));
    assert!(errors.iter().any(|e| e.contains("colour")));
}
