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

/// Requests for validation's reads in the fake's log since it was last cleared.
fn validation_reads(h: &Harness) -> [usize; 3] {
    let requests = h.fake.api_requests();
    let count = |needle: &str| requests.iter().filter(|r| r.path.contains(needle)).count();
    [count("/revisions"), count("/attestors/"), count("/occurrences")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reuses_passes_for_recheck_interval_and_rereads_attestors_every_cycle() {
    let s =
        Scene::new(&[CI], &[("web-00002-abc", 90, None, image('a')), ("web-00003-can", 10, None, image('b'))]).await;
    s.attest(0, &image('a'));
    let config = s.config().set("validation.recheck_interval", "1h").in_process(true);
    let daemon = s.h.daemon(&config).await;
    let metrics = daemon.wait_for_cycles(1).await;
    assert_eq!(validation_reads(&s.h), [1, 1, 2], "first cycle: the revisions, the attestor, both digests");
    for line in [
        r#"binauthz_resource_violation{project="shop",location="us-central1",kind="service",name="web",reason="unattested_revision",suppressed="false"} 1"#,
        r#"binauthz_serving_revision_traffic_percent{project="shop",location="us-central1",kind="service",name="web",revision="web-00003-can"} 10"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let a = image('a');
    let b = image('b');
    assert!(metrics.contains(&format!(
        r#"binauthz_serving_image_compliant{{project="shop",location="us-central1",kind="service",name="web",revision="web-00002-abc",image="{a}"}} 1"#
    )));
    assert!(metrics.contains(&format!(
        r#"binauthz_serving_image_unattested{{project="shop",location="us-central1",kind="service",name="web",revision="web-00003-can",image="{b}",attestor="{CI}",cause="missing"}} 1"#
    )));
    assert!(metrics.contains(r#"binauthz_validation_last_complete_timestamp_seconds{project="shop"}"#));

    // Second cycle: revisions are cached, the attestor is read again, the pass is reused,
    // and only the failing digest is looked up again.
    s.h.fake.forget_requests();
    daemon.tick_until(2).await;
    assert_eq!(validation_reads(&s.h), [0, 1, 1]);

    // The attestor's key is rotated out: the earlier pass no longer counts.
    let other = SigningKey::new(s.h.dir(), "rotated");
    s.h.fake.estate(|e| {
        e.attestors.insert(CI.into(), attestor(CI, &[other.public_key()]));
    });
    s.h.fake.forget_requests();
    let metrics = daemon.tick_until(3).await;
    assert_eq!(validation_reads(&s.h), [0, 1, 2]);
    assert!(
        metrics.contains(&format!(
            r#"binauthz_serving_image_unattested{{project="shop",location="us-central1",kind="service",name="web",revision="web-00002-abc",image="{a}",attestor="{CI}",cause="unknown_key"}} 1"#
        )),
        "{metrics}"
    );
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_attestations_make_the_workload_unknown_never_compliant() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    s.attest(0, &image('a'));
    s.h.fake.behaviour(|b| {
        b.faults.push(support::fake_google::world::Fault::status(
            "/occurrences",
            403,
            json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}}),
        ))
    });
    let (code, report) = s.audit().await;
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(web(&report)["status"], "unknown");
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "unknown");
    assert_eq!(report["projects"][0]["validation"]["complete"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_workload_false_counts_serving_images_per_project() {
    let s =
        Scene::new(&[CI], &[("web-00002-abc", 90, None, image('a')), ("web-00003-can", 10, None, image('b'))]).await;
    s.attest(0, &image('a'));
    let config = s.config().set("metrics.per_workload", false).in_process(true);
    let daemon = s.h.daemon(&config).await;
    let metrics = daemon.wait_for_cycles(1).await;
    assert!(!metrics.contains("binauthz_serving_image_compliant{"), "{metrics}");
    for line in [
        r#"binauthz_project_serving_images{project="shop",verdict="attested"} 1"#,
        r#"binauthz_project_serving_images{project="shop",verdict="unattested"} 1"#,
        r#"binauthz_project_violations{project="shop",kind="service",reason="unattested_revision",suppressed="false"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_ring_cannot_check_is_asked_of_google_and_a_job_is_unknown() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let pgp = json!({"id": "0123456789ABCDEF0123456789ABCDEF01234567",
                     "asciiArmoredPgpPublicKey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBF...\n-----END PGP PUBLIC KEY BLOCK-----\n"});
    let body = payload(&image('a'));
    let signature = b"a detached PGP signature";
    let o = occurrence(P, 1, CI_NOTE, &image('a'), &body, &[(pgp["id"].as_str().unwrap(), signature)]);
    let encoded = o["attestation"]["signatures"][0]["signature"].as_str().unwrap().to_owned();
    s.h.fake.estate(|e| {
        e.attestors.insert(CI.into(), attestor(CI, std::slice::from_ref(&pgp)));
        e.occurrences.push(o);
        e.google_verifies.push((pgp["id"].as_str().unwrap().into(), encoded));
        e.project(P).jobs = vec![job(P, REGION, "etl")];
    });
    let (code, report) = s.audit().await;
    assert_eq!(revision_of(&report, "web-00002-abc")["verdict"], "attested", "{report:#}");
    let etl = report["resources"].as_array().unwrap().iter().find(|r| r["name"] == "etl").unwrap();
    assert_eq!(etl["status"], "unknown", "a job's running digests are recorded nowhere: {etl:#}");
    assert!(etl["unknown_reason"].as_str().unwrap().contains("job"), "{etl:#}");
    assert_eq!(code, 2);
    let (problems, seen) = support::discovery::check_traffic(&s.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(seen.contains("binaryauthorization.v1:projects.attestors.validateAttestationOccurrence"), "{seen:?}");

    // Google says no: unattested, with the cause.
    s.h.fake.estate(|e| e.google_verifies.clear());
    let (_, report) = s.audit().await;
    assert_eq!(cause(&report, "web-00002-abc", CI), "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_made_by_real_gcloud_is_accepted() {
    const TEST: &str = "an_attestation_made_by_real_gcloud_is_accepted";
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    let Some(gcloud) = support::gcloud::Gcloud::against(&s.h.fake, TEST).await else { return };
    let (code, _) = s.audit().await;
    assert_eq!(code, 1, "unattested before");

    // What an attestor's signer does: gcloud's payload, signed with the attestor's key.
    let (status, printed, err) = gcloud
        .run(&["container", "binauthz", "create-signature-payload", &format!("--artifact-url={}", image('a'))])
        .await;
    assert_eq!(status, 0, "{err}");
    let signature = s.h.path("signature.der");
    std::fs::write(&signature, s.keys[0].sign(printed.as_bytes())).unwrap();
    let (status, _, err) = gcloud
        .run(&[
            "container",
            "binauthz",
            "attestations",
            "create",
            "--project=shop",
            &format!("--artifact-url={}", image('a')),
            &format!("--attestor={CI}"),
            &format!("--signature-file={}", signature.display()),
            &format!("--public-key-id={}", s.keys[0].id),
            "--validate",
        ])
        .await;
    assert_eq!(status, 0, "{err}");
    assert!(!err.contains("WARNING"), "gcloud's --validate found the attestation unverifiable: {err}");
    // gcloud sends bytes in the URL-safe alphabet; Google (and the fake) answers standard base64.

    let (code, report) = s.audit().await;
    assert_eq!((code, revision_of(&report, "web-00002-abc")["verdict"].as_str()), (0, Some("attested")), "{report:#}");
    let (problems, seen) = support::discovery::check_traffic(&s.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(seen.contains("containeranalysis.v1:projects.occurrences.create"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_traffic_fix_works_when_pasted_through_real_gcloud() {
    const TEST: &str = "the_printed_traffic_fix_works_when_pasted_through_real_gcloud";
    let s = Scene::new(
        &[CI],
        &[
            ("web-00002-abc", 80, None, image('a')),
            ("web-00003-can", 20, None, image('b')),
            ("web-00004-tag", 0, Some("preview"), image('c')),
        ],
    )
    .await;
    s.attest(0, &image('a'));
    let Some(gcloud) = support::gcloud::Gcloud::against(&s.h.fake, TEST).await else { return };
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    let fix = web(&report)["remediation"].as_str().unwrap().to_owned();
    let (status, _, err) = gcloud.paste(&fix).await;
    assert_eq!(status, 0, "{fix}\n{err}");
    let (code, report) = s.audit().await;
    assert_eq!(code, 0, "after {fix}: {report:#}");
    let serving: Vec<&str> =
        web(&report)["serving"].as_array().unwrap().iter().map(|r| r["revision"].as_str().unwrap()).collect();
    assert_eq!(serving, ["web-00002-abc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_kms_signing_fix_works_when_pasted_through_real_gcloud() {
    const TEST: &str = "the_printed_kms_signing_fix_works_when_pasted_through_real_gcloud";
    // Cloud KMS at Google's host name, and at a private endpoint of the operator's own (where
    // gcloud alone would name the key `//127.0.0.1:PORT/v1/...`, an id no attestor lists).
    for private_endpoint in [false, true] {
        if !kms_fix_pasted(TEST, private_endpoint).await {
            return;
        }
    }
}

/// Audits an image no one attested, whose attestor's only key is a Cloud KMS key version,
/// pastes the printed fix into real gcloud and audits again. `false` when gcloud is absent.
async fn kms_fix_pasted(test: &str, private_endpoint: bool) -> bool {
    // In another project than the attestor's, as a shared signing project often is.
    const VERSION: &str = "projects/shop-keys/locations/global/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/1";
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    // The fake KMS holds the private half.
    s.h.fake.estate(|e| {
        e.attestors.insert(CI.into(), attestor(CI, &[s.keys[0].kms_public_key(VERSION)]));
        e.kms_keys.insert(VERSION.into(), s.keys[0].clone());
    });
    let Some(gcloud) = support::gcloud::Gcloud::against(&s.h.fake, test).await else { return false };
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    let fix = web(&report)["remediation"].as_str().unwrap().to_owned();
    assert!(fix.contains("attestations sign-and-create"), "no revision passes, so the fix signs: {fix}");
    let note = web(&report)["remediation_note"].as_str().unwrap();
    assert!(note.contains("only for images the attestor vouches for"), "{note}");

    // The operator's shell, then the fix exactly as printed.
    let shell = match private_endpoint {
        true => format!("export CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS={}/\n", s.h.fake.base_url),
        false => String::new(),
    };
    let (status, _, err) = gcloud.paste(&format!("{shell}{fix}")).await;
    assert_eq!(status, 0, "{shell}{fix}\n{err}");
    assert!(!err.contains("No public key with ID"), "gcloud signed under an id the attestor does not list: {err}");
    let (code, report) = s.audit().await;
    let verdict = revision_of(&report, "web-00002-abc")["verdict"].as_str();
    assert_eq!((code, verdict), (0, Some("attested")), "private endpoint {private_endpoint}: {report:#}");

    // What it signed: the serving digest, and nothing else.
    let stored = s.h.fake.estate(|e| e.occurrences.clone());
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(
        (stored[0]["resourceUri"].as_str(), stored[0]["noteName"].as_str()),
        (Some(&*image('a')), Some(CI_NOTE))
    );
    let (problems, seen) = support::discovery::check_traffic(&s.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    for method in [
        "binaryauthorization.v1beta1.sdk:projects.attestors.get",
        "cloudkms.v1.sdk:projects.locations.keyRings.cryptoKeys.cryptoKeyVersions.getPublicKey",
        "cloudkms.v1.sdk:projects.locations.keyRings.cryptoKeys.cryptoKeyVersions.asymmetricSign",
        "containeranalysis.v1:projects.occurrences.create",
    ] {
        assert!(seen.contains(method), "{method} not in {seen:?}");
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_is_judged_by_its_instance_splits() {
    let s = Scene::new(&[CI], &[("web-00002-abc", 100, None, image('a'))]).await;
    s.attest(0, &image('a'));
    let pool_image = |fill| image_by_digest(P, REGION, "consumer", fill);
    s.attest(0, &pool_image('d'));
    s.h.fake.estate(|e| {
        let p = e.project(P);
        p.worker_pools = vec![splitting(
            worker_pool(P, REGION, "consumer"),
            &[("consumer-00002-abc", 70), ("consumer-00003-new", 30)],
        )];
        p.revisions.push(revision(P, REGION, "consumer", "consumer-00002-abc", &pool_image('d')));
        p.revisions.push(revision(P, REGION, "consumer", "consumer-00003-new", &pool_image('e')));
    });
    let (code, report) = s.audit().await;
    assert_eq!(code, 1, "{report:#}");
    let pool = report["resources"].as_array().unwrap().iter().find(|r| r["kind"] == "worker_pool").unwrap();
    assert_eq!(pool["violations"], json!(["unattested_revision"]), "{pool:#}");
    let verdicts: Vec<(&str, u64, &str)> = pool["serving"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_str().unwrap(), r["percent"].as_u64().unwrap(), r["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts, [("consumer-00002-abc", 70, "attested"), ("consumer-00003-new", 30, "unattested")]);
    assert_eq!(web(&report)["status"], "compliant");
    // No traffic command is printed for worker pools: what is needed is said instead.
    assert!(pool["remediation"].is_null(), "{pool:#}");
    assert!(pool["remediation_note"].as_str().unwrap().contains("consumer-00003-new"), "{pool:#}");
}
