//! `audit` against the fake Google: the real binary, real HTTP, real OAuth.

pub mod support;

use serde_json::{Value, json};
use support::config::TestConfig;
use support::fake_google::world::{Api, Behaviour, Fault, Node, World};
use support::harness::Harness;
use support::resources::*;
use support::run::run_cli;

const REGION: &str = "us-central1";

fn resource<'a>(report: &'a Value, project: &str, kind: &str, name: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["project"] == project && r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("{project}/{kind}/{name} missing from {report:#}"))
}

fn violations(report: &Value, project: &str, kind: &str, name: &str) -> Vec<String> {
    resource(report, project, kind, name)["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The report's resources without `data_updated_at`, which only Asset Inventory knows.
fn without_data_age(report: &Value) -> Value {
    let mut resources = report["resources"].clone();
    for r in resources.as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("data_updated_at");
    }
    resources
}

fn project<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["projects"].as_array().unwrap().iter().find(|p| p["project"] == name).unwrap()
}

/// A clean project with one workload of every kind.
fn compliant_project(world: &mut World, id: &str) {
    let p = world.project(id);
    p.policy = Some(policy_exempting_functions(id, REGION));
    p.services =
        vec![service(id, REGION, "web"), service(id, "europe-west1", "api"), backing_service(id, REGION, "hook")];
    p.jobs = vec![job(id, REGION, "etl")];
    p.worker_pools = vec![worker_pool(id, REGION, "consumer")];
    p.functions = vec![function(id, REGION, "hook")];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_estate_is_complete_and_exits_zero() {
    let mut world = World::behaving(Behaviour { page_size: 1, knative_pages: true, ..Behaviour::default() });
    compliant_project(&mut world, "alpha-prod");
    compliant_project(&mut world, "beta-prod");
    let h = Harness::start(world).await;
    let config = h.config(&["alpha-prod", "beta-prod"]);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["complete"], true);
    // Per project: two services, a job, a worker pool and a function (its service is not counted).
    assert_eq!(report["summary"]["resources"], 10, "{report:#}");
    assert_eq!(report["summary"]["compliant"], 10);
    let hook = resource(&report, "alpha-prod", "function", "hook");
    assert_eq!(hook["compliant"], true);
    assert!(
        !report["resources"].as_array().unwrap().iter().any(|r| r["kind"] == "service" && r["name"] == "hook"),
        "a function's backing service is reported through the function only"
    );
    let requests = h.fake.requests();
    assert!(requests.iter().any(|r| r.query.iter().any(|(k, _)| k == "continue")), "paging was exercised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_costs_five_requests_through_the_run_v1_global_endpoint() {
    let mut world = World::behaving(Behaviour { page_size: 100, ..Behaviour::default() });
    compliant_project(&mut world, "alpha-prod");
    compliant_project(&mut world, "beta-prod");
    let h = Harness::start(world).await;
    let config = h.config(&["alpha-prod", "beta-prod"]);

    let (code, _, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "{stderr}");
    let requests = h.fake.requests();
    for project in ["alpha-prod", "beta-prod"] {
        let mut paths: Vec<String> =
            requests.iter().filter(|r| r.path.contains(&format!("/{project}/"))).map(|r| r.path.clone()).collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                format!("/apis/run.googleapis.com/v1/namespaces/{project}/jobs"),
                format!("/apis/run.googleapis.com/v1/namespaces/{project}/workerpools"),
                format!("/v1/projects/{project}/locations/-/services"),
                format!("/v1/projects/{project}/policy"),
                format!("/v2/projects/{project}/locations/-/functions"),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_v1_and_run_v2_listings_give_the_same_verdicts() {
    let id = "same-prod";
    let mut world = World::default();
    compliant_project(&mut world, id);
    let p = world.project(id);
    p.services.push(set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null));
    p.services.push(set(
        service(id, REGION, "named"),
        "/binaryAuthorization",
        json!({"policy": "projects/x/platforms/cloudRun/policies/y"}),
    ));
    p.services.push(set(service(id, REGION, "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-2")));
    p.services.push(set(service(id, "europe-west1", "runfn"), "/buildConfig", json!({"functionTarget": "f"})));
    p.jobs.push(set(job(id, REGION, "batch"), "/binaryAuthorization", Value::Null));
    let h = Harness::start(world).await;
    let v1 = h.config(&[id]);
    let (_, v1_report, _) = h.audit(&v1).await;
    let (_, v2_report, _) = h.audit(&v1.set("gcp.run_api", "v2")).await;

    assert_eq!(v1_report["complete"], true);
    assert_eq!(v1_report["resources"], v2_report["resources"]);
    // open, named, glass, batch, and runfn (its europe-west1 source repository is not exempted).
    assert_eq!(v1_report["summary"]["non_compliant"], 5);
    assert!(h.fake.requests().iter().any(|r| r.path.ends_with("/locations/us-central1/services")), "v2 was used too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_is_reported_with_its_fix_and_exits_one() {
    let id = "gamma-prod";
    let mut world = World::default();
    let p = world.project(id);
    // Functions in us-central1 are exempted; a function in europe-west1 is not.
    p.policy = Some(enforcing_policy(
        id,
        &[
            &format!("{REGION}-docker.pkg.dev/{id}/gcf-artifacts/**"),
            &format!("{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/**"),
        ],
    ));
    p.services = vec![
        service(id, REGION, "ok"),
        set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null),
        set(service(id, REGION, "off"), "/binaryAuthorization", json!({"useDefault": false})),
        set(
            service(id, REGION, "named"),
            "/binaryAuthorization",
            json!({"policy": "projects/sec/platforms/cloudRun/policies/p"}),
        ),
        set(service(id, REGION, "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-1")),
        set(
            service(id, REGION, "source"),
            "/template/containers/0/image",
            json!(format!("{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/source:latest")),
        ),
        set(
            set(service(id, "europe-west1", "runfn"), "/buildConfig", json!({"functionTarget": "handle"})),
            "/template/containers/0/image",
            json!(format!("europe-west1-docker.pkg.dev/{id}/cloud-run-source-deploy/runfn@sha256:{}", "b".repeat(64))),
        ),
        set(backing_service(id, REGION, "hook"), "/binaryAuthorization", Value::Null),
    ];
    p.jobs = vec![set(job(id, REGION, "batch"), "/binaryAuthorization", Value::Null)];
    p.worker_pools =
        vec![set(worker_pool(id, REGION, "pool"), "/binaryAuthorization/breakglassJustification", json!("x"))];
    p.functions = vec![
        function(id, REGION, "hook"),
        function(id, "europe-west1", "faraway"),
        set(function(id, REGION, "nopolicy"), "/serviceConfig/binaryAuthorizationPolicy", Value::Null),
        set(set(function(id, REGION, "old"), "/environment", json!("GEN_1")), "/serviceConfig/service", Value::Null),
    ];
    let h = Harness::start(world).await;
    let config = h.config(&[id]);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 1, "{stderr}\n{report:#}");
    assert_eq!(report["complete"], true);
    let expect = [
        ("service", "ok", vec![]),
        ("service", "open", vec!["binauthz_disabled"]),
        ("service", "off", vec!["binauthz_disabled"]),
        ("service", "named", vec!["non_default_policy"]),
        ("service", "glass", vec!["breakglass"]),
        ("service", "source", vec!["exempt_image"]),
        ("service", "runfn", vec!["allowlist_missing"]),
        ("job", "batch", vec!["binauthz_disabled"]),
        ("worker_pool", "pool", vec!["breakglass"]),
        ("function", "hook", vec!["binauthz_disabled"]),
        ("function", "faraway", vec!["allowlist_missing"]),
        ("function", "nopolicy", vec!["binauthz_disabled"]),
        ("function", "old", vec!["gen1_function"]),
    ];
    for (kind, name, expected) in expect {
        assert_eq!(violations(&report, id, kind, name), expected, "{kind} {name}");
        let r = resource(&report, id, kind, name);
        assert_eq!(r["compliant"], expected.is_empty(), "{kind} {name}");
        // A source deploy exempted by the entry functions need has no safe command, only a note.
        let commanded = !expected.is_empty() && name != "source";
        assert_eq!(r["remediation"].is_string(), commanded, "{kind} {name}");
        assert_eq!(r["remediation_note"].is_string(), !expected.is_empty(), "{kind} {name}");
    }
    assert_eq!(resource(&report, id, "service", "runfn")["function"], true);
    assert_eq!(
        resource(&report, id, "service", "open")["remediation"],
        format!("gcloud run services update open --project {id} --region {REGION} --binary-authorization default")
    );
    assert_eq!(resource(&report, id, "service", "open")["last_modifier"], "dev@example.com");
    let allowlist = project(&report, id)["allowlist"].as_array().unwrap().clone();
    assert!(
        allowlist.contains(&json!({"location": "europe-west1",
        "repository": format!("europe-west1-docker.pkg.dev/{id}/gcf-artifacts"), "present": false, "status": "missing"})),
        "{allowlist:?}"
    );
    assert!(
        allowlist.contains(&json!({"location": REGION,
        "repository": format!("{REGION}-docker.pkg.dev/{id}/gcf-artifacts"), "present": true, "status": "present"})),
        "{allowlist:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_findings_and_disabled_apis_are_facts_of_a_complete_audit() {
    let mut world = World::default();
    world.project("allow-all").services = vec![service("allow-all", REGION, "s")];
    let dry = world.project("dry-run");
    dry.policy = Some(set(
        enforcing_policy("dry-run", &["us-central1-docker.pkg.dev/dry-run/**"]),
        "/defaultAdmissionRule/enforcementMode",
        json!("DRYRUN_AUDIT_LOG_ONLY"),
    ));
    let off = world.project("no-apis");
    off.disabled = vec![Api::Run, Api::Functions, Api::BinaryAuthorization];
    let h = Harness::start(world).await;
    let config = h.config(&["allow-all", "dry-run", "no-apis"]);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "findings alone do not fail the audit: {stderr}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(project(&report, "allow-all")["findings"], json!(["policy_always_allow"]));
    assert_eq!(project(&report, "dry-run")["findings"], json!(["policy_dry_run", "allowlist_too_broad"]));
    let off = project(&report, "no-apis");
    assert_eq!(off["ok"], true);
    assert_eq!(off["findings"], json!(["policy_api_disabled"]));
    assert_eq!(off["disabled_apis"], json!(["run", "functions", "binaryauthorization"]));

    let config = h.write(&config, "config.toml");
    let strict = run_cli(&["audit", "--config", config.to_str().unwrap(), "--fail-on-findings"]).await;
    assert_eq!(strict.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_that_cannot_be_read_makes_the_audit_incomplete_but_others_stay_right() {
    let mut world = World::default();
    compliant_project(&mut world, "visible");
    let bad = world.project("half-broken");
    bad.services = vec![set(service("half-broken", REGION, "open"), "/binaryAuthorization", Value::Null)];
    bad.functions_unreachable = vec!["asia-east1".into()];
    world.behaviour.faults.push(Fault::status(
        "/v1/projects/half-broken/policy",
        500,
        json!({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}),
    ));
    let h = Harness::start(world).await;
    let config = h.config(&["visible", "half-broken", "ghost-project"]);

    let (code, report, _) = h.audit(&config).await;

    assert_eq!(code, 2);
    assert_eq!(report["complete"], false);
    assert_eq!(project(&report, "visible")["ok"], true);
    assert_eq!(report["summary"]["compliant"], 5, "the healthy project is fully audited");
    let ghost = project(&report, "ghost-project");
    assert_eq!(ghost["ok"], false);
    assert!(ghost["error"].as_str().unwrap().contains("HTTP 403 PERMISSION_DENIED"), "{ghost}");
    let broken = project(&report, "half-broken");
    assert_eq!(broken["ok"], false);
    assert!(broken["error"].as_str().unwrap().contains("/v1/projects/half-broken/policy: HTTP 500"), "{broken}");
    assert_eq!(resource(&report, "half-broken", "service", "open")["compliant"], false, "known violations stay");
    let retries = h.fake.requests().iter().filter(|r| r.path == "/v1/projects/half-broken/policy").count();
    assert_eq!(retries, 4, "a 500 is retried max_retries (3) times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_function_regions_are_an_incomplete_audit_not_an_empty_one() {
    let mut world = World::default();
    compliant_project(&mut world, "p1");
    world.project("p1").functions_unreachable = vec!["asia-east1".into()];
    let h = Harness::start(world).await;
    let config = h.config(&["p1"]);

    let (code, report, _) = h.audit(&config).await;

    assert_eq!(code, 2);
    assert!(project(&report, "p1")["error"].as_str().unwrap().contains("unreachable locations: asia-east1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_honouring_retry_after() {
    let mut world = World::default();
    compliant_project(&mut world, "p1");
    world.behaviour.faults.push(
        Fault::status(
            "/v1/projects/p1/policy",
            429,
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}]}}),
        )
        .header("retry-after", "1")
        .times(2),
    );
    let h = Harness::start(world).await;
    let config = h.config(&["p1"]);

    let started = std::time::Instant::now();
    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "two Retry-After: 1 waits were honoured");
    assert_eq!(h.fake.requests().iter().filter(|r| r.path == "/v1/projects/p1/policy").count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_query_adds_only_active_projects() {
    let mut world = World::default();
    compliant_project(&mut world, "found-active");
    compliant_project(&mut world, "listed");
    world.estate.hierarchy.projects = vec![
        Node::active("found-active", "folders/42"),
        Node::deleted("found-deleted", "folders/42"),
        Node::active("elsewhere", "folders/7"),
    ];
    let h = Harness::start(world).await;
    let config = h.config(&["listed"]).set("scope.project_query", "parent:folders/42");

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "{stderr}");
    let audited: Vec<&str> =
        report["projects"].as_array().unwrap().iter().map(|p| p["project"].as_str().unwrap()).collect();
    assert_eq!(audited, vec!["found-active", "listed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_regions_and_kinds_limit_what_is_listed() {
    let mut world = World::default();
    compliant_project(&mut world, "p1");
    let h = Harness::start(world).await;
    let config =
        h.config(&["p1"]).set("scope.regions", vec!["europe-west1"]).set("scope.kinds", vec!["service", "function"]);

    let (code, report, _) = h.audit(&config).await;

    assert_eq!(code, 0);
    // Functions are listed for every region at once (`locations/-`): the us-central1 one
    // is dropped after listing, as are the v1 all-regions services outside europe-west1.
    let names: Vec<&str> =
        report["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["api"]);
    let requests = h.fake.requests();
    assert!(!requests.iter().any(|r| r.path.ends_with("/locations")), "configured regions need no lookup");
    assert!(requests.iter().any(|r| r.path.contains("/functions")));
    assert!(!requests.iter().any(|r| r.path.contains("/jobs") || r.path.contains("/workerpools")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_format_is_for_people() {
    let mut world = World::default();
    compliant_project(&mut world, "p1");
    world.project("p1").jobs = vec![set(job("p1", REGION, "batch"), "/binaryAuthorization", Value::Null)];
    let h = Harness::start(world).await;
    let config = h.write(&h.config(&["p1"]), "config.toml");

    let out = run_cli(&["audit", "--config", config.to_str().unwrap()]).await;

    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    let first_row = table.lines().nth(1).unwrap();
    assert!(first_row.contains("batch") && first_row.contains("VIOLATION"), "violations come first:\n{table}");
    assert!(table.contains(
        "fix: gcloud run jobs update batch --project p1 --region us-central1 --binary-authorization default"
    ));
    assert!(table.contains("5 resources: 4 compliant, 1 non-compliant"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_refuses_fails_the_audit_without_leaking_secrets() {
    let mut world = World::default();
    compliant_project(&mut world, "p1");
    world.behaviour.faults.push(Fault::status(
        "/token",
        400,
        json!({"error": "invalid_grant", "error_description": "Invalid JWT"}),
    ));
    let h = Harness::start(world).await;
    let config = h.config(&["p1"]);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 2);
    let error = project(&report, "p1")["error"].as_str().unwrap();
    assert!(error.contains("cannot get a Google access token"), "{error}");
    assert!(report["resources"].as_array().unwrap().is_empty(), "nothing unseen is reported");
    let everything = format!("{report}{stderr}");
    assert!(!everything.contains("PRIVATE KEY") && !everything.contains("ya29."), "no secrets in output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_inventory_feed_and_its_gcloud_export_give_the_same_verdicts() {
    let id = "inv-prod";
    let mut world = World::behaving(Behaviour { page_size: 3, ..Behaviour::default() });
    compliant_project(&mut world, id);
    compliant_project(&mut world, "inv-dev");
    world.project(id).services.push(set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null));
    world.project(id).jobs.push(set(
        job(id, REGION, "glass"),
        "/binaryAuthorization/breakglassJustification",
        json!("x"),
    ));
    let h = Harness::start(world).await;
    let live = h.config(&[id, "inv-dev"]);
    let (_, expected, _) = h.audit(&live).await;

    let asset = live.set("source.kind", "asset_inventory").set("source.scope", "organizations/42");
    let (code, from_assets, stderr) = h.audit(&asset).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(without_data_age(&from_assets), expected["resources"]);
    assert!(from_assets["resources"][0]["data_updated_at"].is_string(), "assets say how old their data is");
    let asset_requests: Vec<_> = h.fake.requests().into_iter().filter(|r| r.path.ends_with("/assets")).collect();
    assert!(asset_requests.len() >= 2, "paged");
    assert!(asset_requests.iter().all(|r| r.path == "/v1/organizations/42/assets"));
    assert_eq!(asset_requests[0].query.iter().filter(|(k, _)| k == "assetTypes").count(), 6);

    // The same feed in the Knative shape, and as a `gcloud asset list --format=json` file.
    h.fake.behaviour(|b| b.assets_in_v1_shape = true);
    let (_, from_v1_assets, _) = h.audit(&asset).await;
    assert_eq!(without_data_age(&from_v1_assets), expected["resources"]);
    h.fake.behaviour(|b| b.page_size = 1000);
    let query = [("contentType", "RESOURCE"), ("pageSize", "1000")].map(|(k, v)| (k.to_string(), v.to_string()));
    let export = h.fake.get_json("/v1/organizations/42/assets", &query).await;
    let file = h.path("assets.json");
    std::fs::write(&file, export["assets"].to_string()).unwrap();
    let (code, from_file, stderr) = h.audit(&TestConfig::snapshot(&file)).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(without_data_age(&from_file), expected["resources"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_walked_to_every_depth_and_exclusions_are_never_read() {
    let mut world = World::default();
    for id in ["top-app", "deep-app", "sys-logging", "search-only"] {
        compliant_project(&mut world, id);
    }
    world.estate.hierarchy.folders = vec![
        Node::active("folders/10", "organizations/1"),
        Node::active("folders/20", "folders/10"),
        Node::deleted("folders/30", "folders/10"),
    ];
    world.estate.hierarchy.projects = vec![
        Node::active("top-app", "folders/10"),
        Node::active("deep-app", "folders/20"),
        Node::active("sys-logging", "folders/20"),
        Node::deleted("gone-app", "folders/20"),
        Node::active("in-deleted-folder", "folders/30"),
    ];
    let h = Harness::start(world).await;
    let config = h
        .config(&["search-only"])
        .set("scope.folders", vec!["organizations/1"])
        .set("scope.exclude_projects", vec!["sys-*"]);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let audited: Vec<&str> =
        report["projects"].as_array().unwrap().iter().map(|p| p["project"].as_str().unwrap()).collect();
    assert_eq!(audited, vec!["deep-app", "search-only", "top-app"], "grandchildren found, deleted skipped");
    let requests = h.fake.requests();
    assert!(!requests.iter().any(|r| r.path.contains("/sys-logging")), "an excluded project is not read at all");
    let parents: Vec<String> = requests
        .iter()
        .filter(|r| r.path == "/v3/folders")
        .flat_map(|r| r.query.iter().filter(|(k, _)| k == "parent").map(|(_, v)| v.clone()))
        .collect();
    assert!(parents.contains(&"folders/20".to_string()) && !parents.contains(&"folders/30".to_string()), "{parents:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_services_are_read_whole_with_or_without_server_paging() {
    let id = "big-prod";
    let mut world = World::behaving(Behaviour { page_size: 100, ..Behaviour::default() });
    compliant_project(&mut world, id);
    world.project(id).services = (0..1000).map(|i| service(id, REGION, &format!("svc-{i:04}"))).collect();
    let h = Harness::start(world).await;
    let config = h.config(&[id]).set("scope.kinds", vec!["service"]);
    let services_path = format!("/v1/projects/{id}/locations/-/services");

    let (code, report, stderr) = h.audit(&config).await;
    assert_eq!((code, report["summary"]["resources"].as_u64()), (0, Some(1000)), "{stderr}");
    let calls: Vec<_> = h.fake.requests().into_iter().filter(|r| r.path == services_path).collect();
    assert_eq!(calls.len(), 1, "like gcloud: one request");
    assert!(calls[0].query.iter().all(|(k, _)| k != "limit"), "no limit that could truncate silently");

    // Were the server to page anyway, every `metadata.continue` is followed.
    h.fake.behaviour(|b| b.knative_pages = true);
    h.fake.forget_requests();
    let (code, report, stderr) = h.audit(&config).await;
    assert_eq!((code, report["summary"]["resources"].as_u64()), (0, Some(1000)), "{stderr}");
    assert_eq!(h.fake.requests().iter().filter(|r| r.path == services_path).count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_source_deploy_is_an_exempt_image_through_run_v1_and_v2_alike() {
    let id = "src-prod";
    let mut world = World::default();
    compliant_project(&mut world, id);
    let built = format!("{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/web@sha256:{}", "c".repeat(64));
    // What `gcloud run deploy --source` records on every service: build settings without a
    // function target.
    world.project(id).services.push(set(
        set(service(id, REGION, "from-source"), "/template/containers/0/image", json!(built)),
        "/buildConfig",
        json!({"imageUri": format!("{REGION}-docker.pkg.dev/{id}/cloud-run-source-deploy/from-source")}),
    ));
    let h = Harness::start(world).await;
    let v1 = h.config(&[id]);
    let v2 = v1.clone().set("gcp.run_api", "v2");

    let (_, from_v1, _) = h.audit(&v1).await;
    let (_, from_v2, _) = h.audit(&v2).await;

    assert_eq!(from_v1["resources"], from_v2["resources"]);
    let r = resource(&from_v1, id, "service", "from-source");
    assert_eq!(r["function"], false, "build settings alone do not make a function");
    assert_eq!(r["violations"], json!(["exempt_image"]));
    assert_eq!(r["remediation"], Value::Null, "the entry functions need cannot be removed safely");
    assert!(r["remediation_note"].as_str().unwrap().contains("every `gcloud run deploy --source` build"), "{r}");
}
