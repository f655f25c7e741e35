//! Hostile input never panics: arbitrary bytes into every parser (API list responses of every
//! API and shape, Run v1 and v2 lists of every kind, gcloud output and saved errors as
//! snapshots hold them, Asset Inventory pages and exports, Pub/Sub pulls and the messages they
//! carry, policies in JSON and YAML, the policy filter, and what continuous validation reads:
//! revisions, attestors, note occurrences, Google's verdicts and signed payloads), arbitrary
//! text into the config and cron parsers (whose errors stay on one line), and awkward names
//! through the exposition format.

pub mod support;

use std::path::Path;

use binauthz_auditor::attest::{Attestor, ImageRef, judge, payload::signed_digest, pkix::PkixKey};
use binauthz_auditor::collect::{asset, snapshot};
use binauthz_auditor::config::Config;
use binauthz_auditor::events::message::{self, Feed};
use binauthz_auditor::google::status::RpcStatus;
use binauthz_auditor::google::{
    Page, binauthz_v1, containeranalysis_v1, functions_v1, functions_v2, pubsub_v1, resourcemanager_v3, run_v1, run_v2,
    shape,
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
    // Continuous validation: revisions and their digests, an attestor and its keys, a note's
    // occurrences judged for an image, Google's verdict, a signed payload.
    if let Ok(page) = serde_json::from_slice::<run_v1::KnativeList<run_v1::Revision>>(bytes) {
        page.into_items().iter().for_each(|r| drop((r.location(), r.images())));
    }
    if let Ok(attestor) = serde_json::from_slice::<binauthz_v1::Attestor>(bytes) {
        let _ = Attestor::from_api(attestor).map(|a| a.kms_key_versions());
    }
    if let Ok(page) = serde_json::from_slice::<containeranalysis_v1::ListNoteOccurrencesResponse>(bytes) {
        let attestor =
            Attestor { name: "projects/a/attestors/ci".into(), note: "projects/a/notes/ci".into(), keys: vec![] };
        let image = ImageRef::parse(&format!("r.example/p/app@sha256:{}", "a".repeat(64))).unwrap();
        let _ = judge(&attestor, &image, &page.into_items());
    }
    let _ = serde_json::from_slice::<binauthz_v1::ValidateAttestationOccurrenceResponse>(bytes);
    let _ = signed_digest(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = (ImageRef::parse(text), ImageRef::repository_of(text));
        let _ = PkixKey::parse(text, "ECDSA_P256_SHA256");
    }
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
                    Just("status".to_string()),
                    Just("containerStatuses".to_string()),
                    Just("imageDigest".to_string()),
                    Just("traffic".to_string()),
                    Just("userOwnedGrafeasNote".to_string()),
                    Just("publicKeys".to_string()),
                    Just("pkixPublicKey".to_string()),
                    Just("occurrences".to_string()),
                    Just("attestation".to_string()),
                    Just("serializedPayload".to_string()),
                    Just("signatures".to_string()),
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

/// One attestor with a real ECDSA key (made by openssl once for the whole run), the image it
/// must vouch for, and the only signature that does: the key's, over that image's payload.
struct Forgery {
    attestor: Attestor,
    image: String,
    payload: Vec<u8>,
    good: Vec<u8>,
    /// The same key over the payload of another digest: a valid signature, the wrong image.
    other_digest: (Vec<u8>, Vec<u8>),
    /// Another key over the right payload.
    stranger: Vec<u8>,
}

fn forgery() -> &'static Forgery {
    static FORGERY: std::sync::OnceLock<Forgery> = std::sync::OnceLock::new();
    FORGERY.get_or_init(|| {
        use support::attestation::{SigningKey, attestor, payload};
        let dir = tempfile::tempdir().unwrap();
        let (key, other_key) = (SigningKey::new(dir.path(), "ci"), SigningKey::new(dir.path(), "stranger"));
        let api: binauthz_v1::Attestor =
            serde_json::from_value(attestor("projects/a/attestors/ci", &[key.public_key()])).unwrap();
        let image = format!("r.example/p/app@sha256:{}", "a".repeat(64));
        let other_payload = payload(&format!("r.example/p/app@sha256:{}", "b".repeat(64)));
        let payload = payload(&image);
        Forgery {
            attestor: Attestor::from_api(api).unwrap(),
            good: key.sign(&payload),
            other_digest: (other_payload.clone(), key.sign(&other_payload)),
            stranger: other_key.sign(&payload),
            image,
            payload,
        }
    })
}

/// An occurrence built from choices: which resource, kind, note, payload and signatures.
fn forged_occurrence(
    f: &Forgery,
    (uri, kind, note, payload): (u8, bool, bool, u8),
    signatures: &[(bool, u8, Vec<u8>)],
    junk: &[u8],
) -> (Value, bool) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let resource_uri = match uri % 5 {
        0 => f.image.clone(),
        1 => format!("https://{}", f.image),
        2 => format!("http://{}", f.image),
        3 => f.image.replace("/app@", "/other@"),
        _ => String::from_utf8_lossy(junk).into_owned(),
    };
    let (payload_field, payload_bytes) = match payload % 4 {
        0 => (b64(&f.payload), Some(f.payload.clone())),
        1 => (b64(&f.other_digest.0), Some(f.other_digest.0.clone())),
        2 => (b64(junk), Some(junk.to_vec())),
        _ => ("not base64 at all!".to_string(), None),
    };
    let mut verifies = false;
    let signatures: Vec<Value> = signatures
        .iter()
        .map(|(right_id, which, bytes)| {
            let signature = match which % 7 {
                0 => b64(&f.good),
                1 => b64(&f.other_digest.1),
                2 => b64(&f.stranger),
                3 => b64(bytes),
                4 => b64(&f.good[..f.good.len() / 2]),
                5 => {
                    let mut flipped = f.good.clone();
                    let i = bytes.first().map_or(0, |b| *b as usize) % flipped.len();
                    flipped[i] ^= 0x01;
                    b64(&flipped)
                }
                _ => "%%%".to_string(),
            };
            let id = if *right_id { f.attestor.keys[0].id.clone() } else { "ni:///sha-256;someone-else".into() };
            // The one combination that must verify: the attestor's key id, its signature over
            // this image's payload, carried by that exact payload.
            verifies |= *right_id && which % 7 == 0 && payload_bytes.as_deref() == Some(&f.payload[..]);
            json!({"publicKeyId": id, "signature": signature})
        })
        .collect();
    let attested = kind && note && uri % 5 < 2;
    let occurrence = json!({
        "name": "projects/a/occurrences/x",
        "resourceUri": resource_uri,
        "noteName": if note { f.attestor.note.clone() } else { "projects/a/notes/other".into() },
        "kind": if kind { "ATTESTATION" } else { "DISCOVERY" },
        "attestation": {"serializedPayload": payload_field, "signatures": signatures},
    });
    (occurrence, attested && verifies)
}

/// The choice that makes a field right, two times in three, so that valid attestations and
/// near misses are both common.
fn mostly_zero() -> impl Strategy<Value = u8> {
    prop_oneof![2 => Just(0u8), 1 => any::<u8>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An attestation that merely exists is never enough: whatever is mangled (resource,
    /// kind, note, payload, key id, signature), the image is verified exactly when one
    /// occurrence carries the attestor's own signature over this image's payload.
    #[test]
    fn no_mangled_attestation_verifies(
        occurrences in prop::collection::vec(
            (
                (mostly_zero(), prop::bool::weighted(0.8), prop::bool::weighted(0.8), mostly_zero()),
                prop::collection::vec(
                    (prop::bool::weighted(0.8), mostly_zero(), prop::collection::vec(any::<u8>(), 0..72)),
                    0..3,
                ),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..4,
        )
    ) {
        let f = forgery();
        let mut expected = false;
        let mut stored = Vec::new();
        for (choices, signatures, junk) in &occurrences {
            let (occurrence, verifies) = forged_occurrence(f, *choices, signatures, junk);
            expected |= verifies;
            stored.push(serde_json::from_value::<containeranalysis_v1::Occurrence>(occurrence).unwrap());
        }
        let judged = judge(&f.attestor, &ImageRef::parse(&f.image).unwrap(), &stored);
        prop_assert_eq!(judged == binauthz_auditor::attest::Judgement::Verified, expected, "{:?}", judged);
    }
}
