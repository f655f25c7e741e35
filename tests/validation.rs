//! Continuous validation (`[validation]`) end to end: the real binary against the fake
//! Google, with attestor keys and signatures made by openssl in each test. What serves is
//! judged against the policy today: every serving image needs a valid attestation from every
//! required attestor, and one that merely exists is not enough.

pub mod support;

use serde_json::{Value, json};
use support::attestation::{SigningKey, attestor, occurrence, payload};
use support::config::TestConfig;
use support::fake_google::world::World;
use support::harness::Harness;
use support::resources::*;

const P: &str = "shop";
const REGION: &str = "us-central1";
const CI: &str = "projects/shop/attestors/built-by-ci";
const CI_NOTE: &str = "projects/shop/notes/built-by-ci";
const QA: &str = "projects/shop/attestors/qa-passed";
const QA_NOTE: &str = "projects/shop/notes/qa-passed";

/// The digests of the scenes: `image('a')` is `.../web@sha256:aaaa...`.
fn image(fill: char) -> String {
    image_by_digest(P, REGION, "web", fill)
}

/// A project whose policy requires `attestors`, an attestor per name with its own key, and
/// a service `web` serving `targets` (revision, percent, tag, image).
struct Scene {
    h: Harness,
    keys: Vec<SigningKey>,
}

impl Scene {
    async fn new(attestors: &[&str], targets: &[(&str, u32, Option<&str>, String)]) -> Scene {
        let h = Harness::start(World::default()).await;
        let keys: Vec<SigningKey> =
            attestors.iter().enumerate().map(|(i, _)| SigningKey::new(h.dir(), &format!("key{i}"))).collect();
        h.fake.estate(|e| {
            for (name, key) in attestors.iter().zip(&keys) {
                e.attestors.insert((*name).into(), attestor(name, &[key.public_key()]));
            }
            let p = e.project(P);
            p.policy = Some(attestation_policy(P, attestors, &[]));
            let traffic: Vec<(&str, u32, Option<&str>)> = targets.iter().map(|(r, p, t, _)| (*r, *p, *t)).collect();
            p.services = vec![serving(service(P, REGION, "web"), &traffic)];
            p.revisions = targets.iter().map(|(r, _, _, i)| revision(P, REGION, "web", r, i)).collect();
            // A revision that no longer serves: never looked at.
            p.revisions.push(revision(P, REGION, "web", "web-00001-old", &image('0')));
        });
        Scene { h, keys }
    }

    /// Stores an attestation of `image` (as `uri`) for the attestor `key` belongs to (`note`),
    /// its payload as `payload_for`, signed by `signer`.
    fn attest_as(&self, note: &str, uri: &str, payload_for: &str, signer: &SigningKey, key_id: &str) {
        let body = payload(payload_for);
        let signature = signer.sign(&body);
        self.h.fake.estate(|e| {
            let o = occurrence(P, e.occurrences.len() + 1, note, uri, &body, &[(key_id, &signature)]);
            e.occurrences.push(o)
        });
    }

    /// A valid attestation of `image` by attestor `i` (its note, its key, gcloud's URI form).
    fn attest(&self, i: usize, image: &str) {
        let note = if i == 0 { CI_NOTE } else { QA_NOTE };
        self.attest_as(note, image, image, &self.keys[i], &self.keys[i].id);
    }

    fn config(&self) -> TestConfig {
        self.h.config(&[P]).set("validation.enabled", true)
    }

    async fn audit(&self) -> (i32, Value) {
        let (code, report, stderr) = self.h.audit(&self.config()).await;
        assert!(!stderr.contains("panicked"), "{stderr}");
        (code, report)
    }
}

fn web(report: &Value) -> &Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "service" && r["name"] == "web")
        .unwrap_or_else(|| panic!("web missing from {report:#}"))
}

fn violations(report: &Value) -> Vec<&str> {
    web(report)["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

fn revision_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    web(report)["serving"]
        .as_array()
        .unwrap_or_else(|| panic!("no serving revisions in {:#}", web(report)))
        .iter()
        .find(|r| r["revision"] == name)
        .unwrap_or_else(|| panic!("{name} not serving in {:#}", web(report)))
}

/// The cause the report gives for the attestor's verdict on the revision's first image.
fn cause(report: &Value, revision: &str, attestor: &str) -> Value {
    let image = &revision_of(report, revision)["images"][0];
    image["attestors"].as_array().unwrap().iter().find(|a| a["attestor"] == attestor).unwrap()["cause"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attested_revision_is_compliant() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    s.attest(0, &image('a'));
    let (code, report) = s.audit().await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(web(&report)["status"], "compliant");
    let r = revision_of(&report, "web-00002-abc");
    assert_eq!(r["percent"], 100);
    assert_eq!(r["verdict"], "attested");
    assert_eq!(r["images"][0]["image"], image('a'));
    assert_eq!(report["projects"][0]["validation"]["complete"], true, "{report:#}");
    assert!(report["projects"][0]["validation"]["last_complete"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_split_with_an_unattested_canary_moves_traffic_to_the_attested_revision() {
    let s =
        Scene::new(&[CI], &[("web-00002-abc", 90, None, image('a')), ("web-00003-can", 10, None, image('b'))]).await;
    s.attest(0, &image('a'));
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(violations(&report), ["unattested_revision"]);
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "attested");
    let canary = revision_of(&report, "web-00003-can");
    assert_eq!((canary["percent"].as_u64(), canary["verdict"].as_str()), (Some(10), Some("unattested")));
    assert_eq!(cause(&report, "web-00003-can", CI), "missing");
    assert_eq!(
        web(&report)["remediation"],
        "gcloud run services update-traffic web --project shop --region us-central1 --to-revisions=web-00002-abc=100"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_revision_at_zero_percent_serves_and_is_checked() {
    let s = Scene::new(
        &[CI],
        &[("web-00002-abc", 100, None, image('a')), ("web-00003-tag", 0, Some("preview"), image('b'))],
    )
    .await;
    s.attest(0, &image('a'));
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    let tagged = revision_of(&report, "web-00003-tag");
    assert_eq!(tagged["percent"], 0);
    assert_eq!(tagged["tags"], json!(["preview"]));
    assert_eq!(tagged["verdict"], "unattested");
    let fix = web(&report)["remediation"].as_str().unwrap();
    assert!(fix.contains("--remove-tags=preview") && fix.contains("--to-revisions=web-00002-abc=100"), "{fix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_by_a_key_the_attestor_does_not_list_is_no_attestation() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let stranger = SigningKey::new(s.h.dir(), "stranger");
    s.attest_as(CI_NOTE, &image('a'), &image('a'), &stranger, &stranger.id);
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(violations(&report), ["unattested_revision"]);
    assert_eq!(cause(&report, "web-00002-abc", CI), "unknown_key");
    assert_eq!(web(&report)["status"], "non_compliant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_for_another_digest_is_a_payload_mismatch() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    // The attestor's own key, signing image b's payload, filed under image a.
    s.attest_as(CI_NOTE, &image('a'), &image('b'), &s.keys[0], &s.keys[0].id);
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(cause(&report, "web-00002-abc", CI), "payload_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_signature_is_a_bad_signature() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let body = payload(&image('a'));
    let mut signature = s.keys[0].sign(&body);
    let last = signature.len() - 3;
    signature[last] ^= 0x55;
    let o = occurrence(P, 1, CI_NOTE, &image('a'), &body, &[(&s.keys[0].id, &signature)]);
    s.h.fake.estate(|e| e.occurrences.push(o));
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(cause(&report, "web-00002-abc", CI), "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_uri_with_or_without_https_names_the_image() {
    for uri in [format!("https://{}", image('a')), image('a')] {
        let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
        s.attest_as(CI_NOTE, &uri, &image('a'), &s.keys[0], &s.keys[0].id);
        let (code, report) = s.audit().await;
        assert_eq!((code, web(&report)["status"].as_str()), (0, Some("compliant")), "{uri}: {report:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_required_attestors_with_one_attested_is_unattested_by_the_other() {
    let s = Scene::new(&[CI, QA], &[("web-00002-abc", 100, None, image('a'))]).await;
    s.attest(0, &image('a'));
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    let attestors = &revision_of(&report, "web-00002-abc")["images"][0]["attestors"];
    let verdicts: Vec<(&str, &str)> = attestors
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attestor"].as_str().unwrap(), a["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts, [(CI, "attested"), (QA, "unattested")]);
    assert_eq!(cause(&report, "web-00002-abc", QA), "missing");
    // No serving revision passes and the attestor has no KMS key: nothing safe to paste.
    assert!(web(&report)["remediation"].is_null(), "{:#}", web(&report));
    let note = web(&report)["remediation_note"].as_str().unwrap();
    assert!(note.contains("No safe command") && note.contains(QA), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_allow_checks_nothing_and_always_deny_denies_what_serves() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let rule = |mode: &str| json!({"evaluationMode": mode, "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"});
    s.h.fake.estate(|e| e.project(P).policy.as_mut().unwrap()["defaultAdmissionRule"] = rule("ALWAYS_ALLOW"));
    let (_, report) = s.audit().await;
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "not_required");
    assert!(!violations(&report).contains(&"unattested_revision"), "{report:#}");
    let looked_up = s.h.fake.api_requests().iter().filter(|r| r.path.contains("/occurrences")).count();
    assert_eq!(looked_up, 0, "ALWAYS_ALLOW needs no attestation");

    s.h.fake.estate(|e| e.project(P).policy.as_mut().unwrap()["defaultAdmissionRule"] = rule("ALWAYS_DENY"));
    let (code, report) = s.audit().await;
    assert_eq!(code, 1);
    assert_eq!(violations(&report), ["denied_revision_serving"]);
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "denied");
    assert!(web(&report)["remediation_note"].as_str().unwrap().contains("ALWAYS_DENY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_image_is_exempt_and_not_looked_up() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let pattern = format!("{REGION}-docker.pkg.dev/{P}/apps/**");
    s.h.fake.estate(|e| e.project(P).policy = Some(attestation_policy(P, &[CI], &[&pattern])));
    let (_, report) = s.audit().await;
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "exempt");
    assert!(!violations(&report).contains(&"unattested_revision"), "{report:#}");
    assert!(s.h.fake.api_requests().iter().all(|r| !r.path.contains("/occurrences")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_off_changes_nothing_and_reads_nothing_more() {
    let s =
        Scene::new(&[CI], &[("web-00002-abc", 90, None, image('a')), ("web-00003-can", 10, None, image('b'))]).await;
    let (on_code, on) = s.audit().await;
    assert_eq!((on_code, violations(&on)), (1, vec!["unattested_revision"]));
    s.h.fake.forget_requests();
    let (code, off, _) = s.h.audit(&s.config().remove("validation")).await;
    assert_eq!(code, 0, "without [validation], the setting alone decides: {off:#}");
    assert!(web(&off).get("serving").is_none() && off["projects"][0].get("validation").is_none(), "{off:#}");
    let (plain_code, plain, _) = s.h.audit(&s.h.config(&[P])).await;
    assert_eq!((plain_code, &plain["resources"]), (code, &off["resources"]));
    let extra: Vec<String> = s
        .h
        .fake
        .api_requests()
        .iter()
        .filter(|r| r.path.contains("/revisions") || r.path.contains("/attestors/") || r.path.contains("/occurrences"))
        .map(|r| r.path.clone())
        .collect();
    assert!(extra.is_empty(), "validation off asked for {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_digest_is_looked_up_once_per_attestor_per_cycle() {
    // Five services all serving the same two digests, two attestors.
    let s = Scene::new(&[CI, QA], &[("web-00002-abc", 50, None, image('a')), ("web-00003-def", 50, None, image('b'))])
        .await;
    s.h.fake.estate(|e| {
        let p = e.project(P);
        for n in 1..5 {
            let name = format!("web{n}");
            let (r1, r2) = (format!("{name}-00002-abc"), format!("{name}-00003-def"));
            p.services.push(serving(service(P, REGION, &name), &[(&r1, 50, None), (&r2, 50, None)]));
            p.revisions.push(revision(P, REGION, &name, &r1, &image('a')));
            p.revisions.push(revision(P, REGION, &name, &r2, &image('b')));
        }
    });
    for i in 0..2 {
        s.attest(i, &image('a'));
        s.attest(i, &image('b'));
    }
    let (code, report) = s.audit().await;
    assert_eq!(code, 0, "{report:#}");
    let requests = s.h.fake.api_requests();
    let count = |needle: &str| requests.iter().filter(|r| r.path.contains(needle)).count();
    assert_eq!(count("/revisions"), 1, "one revisions list for the project");
    assert_eq!(count("/attestors/"), 2, "each attestor read once");
    assert_eq!(count("/occurrences"), 4, "2 digests × 2 attestors, however many services serve them");
    let (problems, seen) = support::discovery::check_traffic(&s.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    for method in [
        "run.v1:namespaces.revisions.list",
        "binaryauthorization.v1:projects.attestors.get",
        "containeranalysis.v1:projects.notes.occurrences.list",
    ] {
        assert!(seen.contains(method), "{method} not among {seen:?}");
    }
}

#[test]
fn the_test_payload_is_byte_for_byte_what_gcloud_prints() {
    // tests/fixtures/gcloud-528-create-signature-payload.json: the output of gcloud 528's
    // `gcloud container binauthz create-signature-payload --artifact-url=IMAGE` for this image
    // (reproduced with the real gcloud, research/continuous-validation.md §2.7).
    let image = "us-docker.pkg.dev/example-proj/repo/app@sha256:e9cad8c3f185bc7ef07d976e8f260e94de0d954bf25f91a992f6445c8abc0940";
    assert_eq!(
        String::from_utf8(payload(image)).unwrap(),
        include_str!("fixtures/gcloud-528-create-signature-payload.json")
    );
}
