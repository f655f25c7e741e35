//! Responses recorded from the real Google APIs (`tests/realworld/`, with provenance), audited
//! live (a server answering exactly those bodies) and from a snapshot laid out as gcloud
//! prints it: both must give the verdicts a person would give the real resources.

pub mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::config::TestConfig;
use support::fake_google::world::World;
use support::harness::Harness;

const PROJECT: &str = "cloud-custodian";

fn recorded(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realworld").join(name);
    let exchange: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    exchange["body"].clone()
}

fn default_policy_export() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realworld/binauthz-policy-default-export.yaml");
    std::fs::read_to_string(path).unwrap().replace("PROJECT_ID", PROJECT)
}

/// The v2 view of a recorded 1st gen function (what the live auditor lists): Cloud Functions
/// v2 returns 1st gen functions with `environment: GEN_1`.
fn as_v2_gen1(v1: &Value) -> Value {
    json!({
        "name": v1["name"],
        "environment": "GEN_1",
        "state": "ACTIVE",
        "labels": v1["labels"],
        "updateTime": v1["updateTime"],
        "buildConfig": {"runtime": v1["runtime"], "entryPoint": v1["entryPoint"]},
        "url": v1["httpsTrigger"]["url"],
    })
}

fn resource<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} missing from {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_responses_give_the_same_right_verdicts_live_and_from_gcloud_output() {
    let services = recorded("custodian-run-v1-services-list-locations-dash.json");
    let jobs = recorded("custodian-run-v1-jobs-list-global.json");
    let gen1 = recorded("custodian-functions-v1-list-gen1.json");
    let gen1_items = gen1["functions"].as_array().unwrap().clone();

    let mut world = World::default();
    let policy: Value = serde_yaml_ng::from_str(&default_policy_export()).unwrap();
    world.project(PROJECT).policy = Some(policy);
    world.estate.recorded.insert(format!("/v1/projects/{PROJECT}/locations/-/services"), services.clone());
    world.estate.recorded.insert(format!("/apis/run.googleapis.com/v1/namespaces/{PROJECT}/jobs"), jobs.clone());
    world.project(PROJECT).functions = gen1_items.iter().map(as_v2_gen1).collect();
    let h = Harness::start(world).await;
    let (live_code, live, stderr) = h.audit(&h.config(&[PROJECT])).await;
    assert_eq!(live_code, 1, "{stderr}\n{live:#}");

    // The same estate as files: what `gcloud run services list --format=json` and friends
    // print (bare arrays; functions as v2 items followed by 1st gen v1 items) and the YAML
    // `gcloud container binauthz policy export` prints.
    let snapshot = h.path("snapshot");
    let project_dir = snapshot.join(PROJECT);
    std::fs::create_dir_all(&project_dir).unwrap();
    std::fs::write(project_dir.join("services.json"), services["items"].to_string()).unwrap();
    std::fs::write(project_dir.join("jobs.json"), jobs["items"].to_string()).unwrap();
    std::fs::write(project_dir.join("worker_pools.json"), "[]").unwrap();
    std::fs::write(project_dir.join("functions.json"), Value::Array(gen1_items).to_string()).unwrap();
    std::fs::write(project_dir.join("policy.yaml"), default_policy_export()).unwrap();
    let (code, from_files, stderr) = h.audit(&TestConfig::snapshot(&snapshot)).await;
    assert_eq!(code, 1, "{stderr}\n{from_files:#}");
    // The v2 view of a 1st gen function says less about its source than the v1 view, so the
    // notes explaining why its source cannot be reused differ; everything else agrees.
    let comparable = |report: &Value| {
        let mut resources = report["resources"].clone();
        for r in resources.as_array_mut().unwrap().iter_mut().filter(|r| r["kind"] == "function") {
            r.as_object_mut().unwrap().remove("remediation_note");
        }
        resources
    };
    assert_eq!(comparable(&from_files), comparable(&live), "snapshot and live agree");
    assert_eq!(from_files["projects"][0]["findings"], live["projects"][0]["findings"]);

    for report in [&live, &from_files] {
        let project = &report["projects"][0];
        assert_eq!(project["findings"], json!(["policy_always_allow"]), "a project that never set a policy");
        assert_eq!(project["allowlist"], json!([]), "1st gen functions need no allowlist entry");

        let hello = resource(report, "service", "hello");
        assert_eq!(hello["location"], "us-central1");
        assert_eq!(hello["violations"], json!(["binauthz_disabled"]));
        assert_eq!(hello["last_modifier"], "kapil@stacklet.io");
        assert_eq!(
            hello["remediation"],
            "gcloud run services update hello --project cloud-custodian --region us-central1 --binary-authorization default"
        );
        assert!(hello["remediation_note"].as_str().unwrap().contains("next deploy"), "{hello}");

        let job = resource(report, "job", "job");
        assert_eq!(job["violations"], json!(["binauthz_disabled"]));
        assert_eq!(job["last_modifier"], "kapil@stacklet.io", "jobs name their modifier under run.googleapis.com/");

        for name in ["function-3", "function-4"] {
            let f = resource(report, "function", name);
            assert_eq!(f["violations"], json!(["gen1_function"]), "{f}");
            let fix = f["remediation"].as_str().unwrap();
            assert!(fix.starts_with(&format!("gcloud alpha functions upgrade {name} --project cloud-custodian")));
            assert_eq!(fix.lines().count(), 3, "upgrade steps only: the uploaded source cannot be redeployed\n{fix}");
            assert!(!fix.contains("gcloud functions deploy"), "{fix}");
            assert!(f["remediation_note"].as_str().unwrap().contains("No safe command"), "{f}");
        }
    }
    let note = resource(&from_files, "function", "function-3")["remediation_note"].as_str().unwrap();
    assert!(note.contains("cannot be read back"), "the v1 shape says why: {note}");
}
