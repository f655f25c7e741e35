//! Keeps the fake honest: every request the auditor makes must be a method Google's discovery
//! documents define (path and query parameters), and every response the fake gives must fit
//! the response schema (field names, types, enum values). The facts come from
//! `tests/schemas/google-apis.json`, distilled from the discovery documents by
//! `scripts/discovery-excerpt.py`.

pub mod support;

use serde_json::json;
use support::discovery::{Discovery, check_traffic};
use support::fake_google::world::{Behaviour, Node, World};
use support::harness::Harness;
use support::resources::*;

fn rich_world() -> World {
    let mut world = World::behaving(Behaviour { page_size: 1, ..Behaviour::default() });
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
    world.estate.hierarchy.projects = vec![Node::active(id, "folders/1")];
    world.estate.hierarchy.folders = vec![Node::active("folders/1", "organizations/1")];
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_a_discovery_method_and_every_response_fits_its_schema() {
    let h = Harness::start(rich_world()).await;
    let base =
        h.config(&[]).set("scope.project_query", "parent:folders/1").set("scope.folders", vec!["organizations/1"]);
    // The same estate through the Run v1 global endpoint (default), Run v2 per region, and
    // the Asset Inventory feed: every request any of them makes is checked.
    let variants = [
        base.clone(),
        base.clone().set("gcp.run_api", "v2"),
        base.clone()
            .set("source.kind", "asset_inventory")
            .set("source.scope", "organizations/1")
            .remove("scope.project_query")
            .remove("scope.folders"),
    ];
    for (i, variant) in variants.iter().enumerate() {
        let (code, report, stderr) = h.audit(variant).await;
        assert_eq!(report["complete"], true, "variant {i}: {stderr}\n{report:#}");
        assert_eq!(code, 1, "variant {i}");
    }

    let (problems, methods_seen) = check_traffic(&h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
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
