//! Hostile input never panics: arbitrary bytes into every parser (API list responses of every
//! API and shape, Run v1 and v2 lists of every kind, gcloud output and saved errors as
//! snapshots hold them, Asset Inventory pages and exports, Pub/Sub pulls and the messages they
//! carry, policies in JSON and YAML, and the policy filter), arbitrary text into the config
//! and cron parsers (whose errors stay on one line), and awkward names through the exposition
//! format.

pub mod support;

use std::path::Path;

use binauthz_auditor::collect::{asset, snapshot};
use binauthz_auditor::config::Config;
use binauthz_auditor::events::message::{self, Feed};
use binauthz_auditor::google::status::RpcStatus;
use binauthz_auditor::google::{
    Page, binauthz_v1, functions_v1, functions_v2, pubsub_v1, resourcemanager_v3, run_v1, run_v2, shape,
};
use binauthz_auditor::inventory::{Kind, Policy};
use binauthz_auditor::schedule::Schedule;
use proptest::prelude::*;
use serde_json::{Value, json};

fn parse_everything(bytes: &[u8]) {
    let _ = RpcStatus::parse(bytes);
    if let Ok(page) = serde_json::from_slice::<run_v2::ListServicesResponse>(bytes) {
        page.into_items().into_iter().for_each(|s| drop(s.into_workload("p", Kind::Service)));
    }
    if let Ok(page) = serde_json::from_slice::<run_v2::ListJobsResponse>(bytes) {
        page.into_items().into_iter().for_each(|j| drop(j.into_workload("p", Kind::Job)));
    }
    if let Ok(page) = serde_json::from_slice::<run_v1::KnativeList<run_v1::Service>>(bytes) {
        page.into_items().into_iter().for_each(|s| drop(s.into_workload("p", Kind::Service)));
    }
    if let Ok(page) = serde_json::from_slice::<functions_v2::ListFunctionsResponse>(bytes) {
        page.into_items().into_iter().for_each(|f| drop(f.into_workload("p")));
    }
    if let Ok(policy) = serde_json::from_slice::<binauthz_v1::PolicyResource>(bytes) {
        let _ = Policy::from(policy);
    }
    if let Ok(page) = serde_json::from_slice::<run_v1::KnativeList<run_v1::Job>>(bytes) {
        page.into_items().into_iter().for_each(|j| drop(j.into_workload("p", Kind::Job)));
    }
    if let Ok(page) = serde_json::from_slice::<run_v2::ListWorkerPoolsResponse>(bytes) {
        page.into_items().into_iter().for_each(|w| drop(w.into_workload("p", Kind::WorkerPool)));
    }
    if let Ok(f) = serde_json::from_slice::<functions_v1::Function>(bytes) {
        let _ = f.into_workload("p");
    }
    // What a snapshot file or an asset's `resource.data` holds: any shape, any kind.
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(bytes) {
        for kind in Kind::ALL {
            items.iter().cloned().for_each(|item| drop(shape::workload(kind, item, "p")));
        }
    }
    // An Asset Inventory page, and a `gcloud asset list --format=json` export.
    if let Ok(page) = serde_json::from_slice::<asset::ListAssetsResponse>(bytes) {
        let _ = asset::inventories(page.into_items(), &Kind::ALL);
    }
    if let Ok(assets) = serde_json::from_slice::<Vec<asset::Asset>>(bytes) {
        let _ = asset::inventories(assets, &Kind::ALL);
    }
    // Snapshot files: a listing of any kind (or a saved error), a policy in JSON or YAML.
    for kind in Kind::ALL {
        let _ = snapshot::saved_listing(bytes, kind, "p", Path::new("saved.json"));
    }
    let _ = snapshot::saved_policy(bytes, Path::new("policy.yaml"));
    let _ = serde_json::from_slice::<run_v1::ListLocationsResponse>(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = binauthz_auditor::policy_edit::edit(text, &["a/b/c/**".into()], &["x".into()]);
        let _ = serde_yaml_ng::from_str::<binauthz_v1::PolicyResource>(text);
    }
    let _ = serde_json::from_slice::<resourcemanager_v3::SearchProjectsResponse>(bytes);
    // Pub/Sub: a pull's answer, and a message's data in both event sources' forms.
    if let Ok(pulled) = serde_json::from_slice::<pubsub_v1::PullResponse>(bytes) {
        pulled.received_messages.iter().for_each(|m| drop(m.message.payload()));
    }
    for feed in [Feed::AuditLog, Feed::AssetFeed] {
        let _ = message::parse(feed, bytes);
    }
    let _ = serde_json::from_slice::<resourcemanager_v3::ListFoldersResponse>(bytes);
}

/// JSON values shaped like API responses, with hostile leaves.
fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z/\\-\"\\\\\n{}*]{0,30}".prop_map(Value::String),
        Just(json!("projects/p/locations/l/services/s")),
        Just(json!("GEN_1")),
        Just(json!("google.cloud.run.v1.Services.ReplaceService")),
        Just(json!("namespaces/p/services/s")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("services".to_string()),
                    Just("functions".to_string()),
                    Just("name".to_string()),
                    Just("binaryAuthorization".to_string()),
                    Just("useDefault".to_string()),
                    Just("serviceConfig".to_string()),
                    Just("template".to_string()),
                    Just("containers".to_string()),
                    Just("metadata".to_string()),
                    Just("annotations".to_string()),
                    Just("runtime".to_string()),
                    Just("sourceArchiveUrl".to_string()),
                    Just("buildConfig".to_string()),
                    Just("ancestors".to_string()),
                    Just("assetType".to_string()),
                    Just("admissionWhitelistPatterns".to_string()),
                    Just("error".to_string()),
                    Just("nextPageToken".to_string()),
                    Just("protoPayload".to_string()),
                    Just("methodName".to_string()),
                    Just("resourceName".to_string()),
                    Just("resource".to_string()),
                    Just("labels".to_string()),
                    Just("receivedMessages".to_string()),
                    Just("message".to_string()),
                    Just("data".to_string()),
                    Just("asset".to_string()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_everything(&bytes);
    }

    #[test]
    fn response_shaped_json_never_panics_a_parser(value in json_strategy()) {
        parse_everything(value.to_string().as_bytes());
    }

    #[test]
    fn config_errors_are_one_line_whatever_the_input(text in "[\\[\\]a-z_=\" \n0-9.*/:-]{0,120}") {
        if let Err(e) = Config::parse(&text, Path::new("/x/config.toml")) {
            prop_assert!(!e.0.contains('\n'), "{}", e.0);
            prop_assert!(e.0.starts_with("/x/config.toml"), "{}", e.0);
        }
    }

    #[test]
    fn cron_expressions_parse_or_explain(text in "[0-9*/,\\- a-zA-Z?@]{0,40}") {
        match Schedule::parse(&text) {
            Ok(s) => prop_assert!(s.next_after(chrono::Utc::now()).is_some()),
            Err(e) => prop_assert!(!e.contains('\n')),
        }
    }
}

/// Names no real API would send, but a hostile or buggy one might.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_names_are_escaped_in_the_exposition_format() {
    use support::fake_google::world::World;
    use support::harness::Harness;
    use support::resources::{enforcing_policy, service, set};
    use support::run::promtool_check_metrics;

    let awkward = ["quote\"d", "back\\slash", "new\nline", "ünïcödé-✓", "{braces}=,"];
    let mut world = World::default();
    let p = world.project("p");
    p.policy = Some(enforcing_policy("p", &[]));
    p.services = awkward
        .iter()
        .map(|n| {
            set(
                set(
                    service("p", "us-central1", "x"),
                    "/name",
                    json!(format!("projects/p/locations/us-central1/services/{n}")),
                ),
                "/binaryAuthorization",
                Value::Null,
            )
        })
        .collect();
    let h = Harness::start(world).await;
    let daemon = h.daemon(&h.config(&["p"]).in_process(true)).await;
    let metrics = daemon.wait_for_cycles(1).await;

    promtool_check_metrics(&metrics);
    assert!(metrics.contains(r#"name="quote\"d""#), "{metrics}");
    assert!(metrics.contains(r#"name="back\\slash""#));
    assert!(metrics.contains(r#"name="new\nline""#));
    assert!(metrics.contains(r#"name="ünïcödé-✓""#));
    let violations = metrics.lines().filter(|l| l.starts_with("binauthz_resource_violation{")).count();
    assert_eq!(violations, awkward.len());
}
