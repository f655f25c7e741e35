//! The real Google Cloud CLI against the fake Google: a snapshot made of gcloud's own output
//! audits exactly like the live APIs, and every fix the audit prints, pasted into a shell as
//! printed, makes its workload compliant. Skips with one line where gcloud is absent.

pub mod support;

use serde_json::{Value, json};
use support::config::TestConfig;
use support::discovery::check_traffic;
use support::fake_google::world::World;
use support::gcloud::Gcloud;
use support::harness::Harness;
use support::resources::*;

const REGION: &str = "us-central1";

/// A project with something of every kind and shape gcloud prints differently.
fn estate(world: &mut World, id: &str) {
    let p = world.project(id);
    p.policy = Some(set(policy_exempting_functions(id, REGION), "/etag", json!("\"etag-1\"")));
    p.services = vec![
        service(id, REGION, "web"),
        set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null),
        set(service(id, "europe-west1", "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-7")),
        set(
            set(service(id, REGION, "runfn"), "/buildConfig", json!({"functionTarget": "handle"})),
            "/template/containers/0/image",
            json!(format!("{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/runfn@sha256:{}", "b".repeat(64))),
        ),
        set(
            service(id, REGION, "from-source"),
            "/template/containers/0/image",
            json!(format!(
                "{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/from-source@sha256:{}",
                "c".repeat(64)
            )),
        ),
        set(backing_service(id, REGION, "hook"), "/binaryAuthorization", Value::Null),
        backing_service(id, "europe-west1", "faraway"),
    ];
    p.jobs = vec![job(id, REGION, "etl"), set(job(id, REGION, "batch"), "/binaryAuthorization", Value::Null)];
    p.worker_pools = vec![
        worker_pool(id, REGION, "consumer"),
        set(worker_pool(id, REGION, "pool"), "/binaryAuthorization/breakglassJustification", json!("INC-9")),
    ];
    p.functions = vec![
        function(id, REGION, "hook"),
        function(id, "europe-west1", "faraway"),
        gen1_function(id, REGION, "legacy"),
    ];
}

fn resources(report: &Value) -> Vec<Value> {
    report["resources"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_real_gcloud_output_audits_exactly_like_the_live_apis() {
    let mut world = World::default();
    estate(&mut world, "alpha-prod");
    estate(&mut world, "beta-prod");
    world.project("beta-prod").policy = None; // never set: Google's allow-all default
    let h = Harness::start(world).await;
    let Some(gcloud) =
        Gcloud::against(&h.fake, "a_snapshot_of_real_gcloud_output_audits_exactly_like_the_live_apis").await
    else {
        return;
    };
    let (code, live, stderr) = h.audit(&h.config(&["alpha-prod", "beta-prod"])).await;
    assert_eq!(code, 1, "{stderr}");

    let snapshot = h.path("snapshot");
    for project in ["alpha-prod", "beta-prod"] {
        let folder = snapshot.join(project);
        std::fs::create_dir_all(&folder).unwrap();
        let commands: [(&str, &[&str]); 5] = [
            ("services.json", &["run", "services", "list", "--format=json"]),
            ("jobs.json", &["run", "jobs", "list", "--format=json"]),
            ("worker_pools.json", &["beta", "run", "worker-pools", "list", "--format=json"]),
            ("functions.json", &["functions", "list", "--format=json"]),
            ("policy.yaml", &["container", "binauthz", "policy", "export"]),
        ];
        for (file, args) in commands {
            let args: Vec<&str> = args.iter().copied().chain(["--project", project]).collect();
            let (code, out, err) = gcloud.run(&args).await;
            assert_eq!(code, 0, "gcloud {args:?}: {err}");
            std::fs::write(folder.join(file), out).unwrap();
        }
    }
    let functions = std::fs::read_to_string(snapshot.join("alpha-prod/functions.json")).unwrap();
    let printed: Value = serde_json::from_str(&functions).unwrap();
    assert!(
        printed.as_array().unwrap().iter().any(|f| f.get("runtime").is_some() && f.get("environment").is_none()),
        "gcloud appends 1st gen functions in the v1 shape:\n{functions}"
    );
    assert!(std::fs::read_to_string(snapshot.join("alpha-prod/policy.yaml")).unwrap().contains("evaluationMode:"));

    let (code, from_gcloud, stderr) = h.audit(&TestConfig::snapshot(&snapshot)).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(resources(&from_gcloud), resources(&live));
    for (a, b) in live["projects"].as_array().unwrap().iter().zip(from_gcloud["projects"].as_array().unwrap()) {
        for field in ["project", "findings", "allowlist", "disabled_apis", "ok"] {
            assert_eq!(a[field], b[field], "{field} of {}", a["project"]);
        }
    }
    let legacy = resources(&live).into_iter().find(|r| r["name"] == "legacy").unwrap();
    assert_eq!(legacy["violations"], json!(["gen1_function"]));
    let (problems, seen) = check_traffic(&h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(seen.contains("cloudfunctions.v1.sdk:projects.locations.functions.list"), "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_fix_works_when_pasted_through_real_gcloud() {
    const TEST: &str = "every_printed_fix_works_when_pasted_through_real_gcloud";
    let id = "fix-prod";
    let mut world = World::default();
    estate(&mut world, id);
    let p = world.project(id);
    // An exemption nothing needs, a function built into a region the policy misses, and a
    // named platform policy.
    let mut policy = p.policy.clone().unwrap();
    let exemption = json!({"namePattern": format!("{REGION}-docker.pkg.dev/{id}/apps/exempt*")});
    policy["admissionWhitelistPatterns"].as_array_mut().unwrap().push(exemption);
    p.policy = Some(policy);
    p.services.push(service(id, REGION, "exempt"));
    // A 2nd gen function built from a Cloud Source Repository (gcloud keeps that source when
    // `--source` is left out), without Binary Authorization on it or its service.
    let repo = json!({"repoSource": {"projectId": id, "repoName": "fns", "branchName": "main", "dir": "a/b"}});
    let from_repo = set(function(id, REGION, "from-repo"), "/buildConfig/sourceProvenance", Value::Null);
    let from_repo = set(from_repo, "/buildConfig/source", repo);
    p.functions.push(set(from_repo, "/serviceConfig/binaryAuthorizationPolicy", Value::Null));
    p.services.push(set(backing_service(id, REGION, "from-repo"), "/binaryAuthorization", Value::Null));
    p.services.push(set(
        service(id, REGION, "named"),
        "/binaryAuthorization",
        json!({"policy": "projects/sec/platforms/cloudRun/policies/legacy"}),
    ));
    let h = Harness::start(world).await;
    let Some(mut gcloud) = Gcloud::against(&h.fake, TEST).await else { return };
    let worker_pools = gcloud.start_grpc(&h.fake, TEST).await;
    let config = h.config(&[id]);
    let (_, before, stderr) = h.audit(&config).await;
    let fixable: Vec<Value> = resources(&before)
        .into_iter()
        .filter(|r| r["remediation"].is_string())
        .filter(|r| worker_pools || r["kind"] != "worker_pool")
        .collect();
    let names: Vec<&str> = fixable.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.len() >= 8, "{names:?}\n{stderr}");

    let mut failures = Vec::new();
    for r in &fixable {
        let script = r["remediation"].as_str().unwrap();
        let (code, _, err) = gcloud.paste(script).await;
        if code != 0 {
            failures.push(format!("{} {}: exit {code}\n{script}\n{err}", r["kind"], r["name"]));
        }
    }
    assert!(failures.is_empty(), "fixes that fail when pasted:\n{}", failures.join("\n\n"));

    let (_, after, _) = h.audit(&config).await;
    for fixed in &fixable {
        let now = resources(&after)
            .into_iter()
            .find(|r| r["kind"] == fixed["kind"] && r["name"] == fixed["name"])
            .unwrap_or_else(|| panic!("{} gone", fixed["name"]));
        assert_eq!(now["compliant"], true, "pasting the fix left {now:#}");
    }
    // What has no safe command is left as it was, and says why.
    let source = resources(&after).into_iter().find(|r| r["name"] == "from-source").unwrap();
    assert_eq!(source["violations"], json!(["exempt_image"]));
    let policy = h.fake.estate(|e| e.projects[id].policy.clone().unwrap());
    let patterns: Vec<&str> = policy["admissionWhitelistPatterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["namePattern"].as_str().unwrap())
        .collect();
    let added = format!("europe-west1-docker.pkg.dev/{id}/gcf-artifacts/**");
    assert_eq!(patterns.iter().filter(|p| **p == added).count(), 1, "added exactly once: {patterns:?}");
    assert!(!patterns.iter().any(|p| p.ends_with("/apps/exempt*")), "the unneeded exemption was removed");
    let legacy = h.fake.estate(|e| {
        e.projects[id].functions.iter().find(|f| f["name"].as_str().unwrap().ends_with("/legacy")).cloned()
    });
    assert_eq!(legacy.unwrap()["environment"], "GEN_2", "the 1st gen function was upgraded");
}
