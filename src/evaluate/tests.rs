//! Table-driven tests of the compliance rules, one table per reason.

use super::*;
use crate::fixtures::*;
use crate::inventory::{
    BinauthzSetting, FunctionGeneration, FunctionOrigin, FunctionSource, Kind, Observed, Policy, ProjectInventory,
    Workload,
};

#[test]
fn run_workloads_are_judged_by_their_binauthz_setting() {
    let named = "projects/sec/platforms/cloudRun/policies/strict";
    let setting = |use_default: bool, policy: Option<&str>, breakglass: Option<&str>| {
        Some(BinauthzSetting {
            use_default,
            policy: policy.map(Into::into),
            breakglass_justification: breakglass.map(Into::into),
        })
    };
    let table: Vec<(&str, Option<BinauthzSetting>, Rules, Vec<Violation>)> = vec![
        ("default", setting(true, None, None), Rules::default(), vec![]),
        ("absent", None, Rules::default(), vec![Violation::BinauthzDisabled]),
        ("use_default_false", setting(false, None, None), Rules::default(), vec![Violation::BinauthzDisabled]),
        ("named_policy", setting(false, Some(named), None), Rules::default(), vec![Violation::NonDefaultPolicy]),
        (
            "accepted_named_policy",
            setting(false, Some(named), None),
            Rules { accepted_policies: vec![named.into()], ..Default::default() },
            vec![],
        ),
        ("breakglass", setting(true, None, Some("INC-42")), Rules::default(), vec![Violation::Breakglass]),
        (
            "allowed_breakglass",
            setting(true, None, Some("INC-42")),
            Rules { allow_breakglass: true, ..Default::default() },
            vec![],
        ),
        ("blank_breakglass", setting(true, None, Some("  ")), Rules::default(), vec![]),
    ];
    for kind in [Kind::Service, Kind::Job, Kind::WorkerPool] {
        for (case, binauthz, rules, expected) in &table {
            let w = Workload { binauthz: binauthz.clone(), ..workload(kind, case) };
            let v = evaluate_one(Observed::Seen(enforcing_policy(&[])), vec![w], rules);
            assert_eq!(&violations_of(&v, case), expected, "{kind} {case}");
            let r = &v.resources[0];
            assert_eq!(r.compliance == Compliance::Compliant, expected.is_empty(), "{kind} {case}");
            assert_eq!(r.remediation.is_some(), !expected.is_empty(), "{kind} {case}");
        }
    }
}

#[test]
fn functions_need_their_build_repository_exempted() {
    let table: Vec<(&str, Workload, &[&str], Vec<Violation>)> = vec![
        ("gen2_exempted", gen2_function("a"), FUNCTION_REPOS, vec![]),
        (
            "gen2_missing",
            gen2_function("b"),
            &["us-central1-docker.pkg.dev/p/cloud-run-source-deploy/**"],
            vec![Violation::AllowlistMissing],
        ),
        (
            "gen2_other_region",
            gen2_function("c"),
            &["europe-west1-docker.pkg.dev/p/gcf-artifacts/**"],
            vec![Violation::AllowlistMissing],
        ),
        ("run_admin_exempted", run_admin_function("d"), FUNCTION_REPOS, vec![]),
        (
            "run_admin_missing",
            run_admin_function("e"),
            &["us-central1-docker.pkg.dev/p/gcf-artifacts/**"],
            vec![Violation::AllowlistMissing],
        ),
    ];
    for (case, w, patterns, expected) in table {
        let name = w.name.clone();
        let v = evaluate_one(Observed::Seen(enforcing_policy(patterns)), vec![w], &Rules::default());
        assert_eq!(violations_of(&v, &name), expected, "{case}");
        assert_eq!(v.allowlist.len(), 1, "{case}: one needed repository");
        assert_eq!(v.allowlist[0].present, expected.is_empty(), "{case}");
    }
}

#[test]
fn a_gen2_function_is_reported_once_and_judged_with_its_backing_service() {
    type Case = (&'static str, Option<BinauthzSetting>, Option<BinauthzSetting>, Vec<Violation>);
    let table: Vec<Case> = vec![
        ("both_default", default_binauthz(), default_binauthz(), vec![]),
        ("function_empty", None, default_binauthz(), vec![Violation::BinauthzDisabled]),
        ("service_disabled", default_binauthz(), None, vec![Violation::BinauthzDisabled]),
        (
            "service_breakglass",
            default_binauthz(),
            Some(BinauthzSetting { use_default: true, policy: None, breakglass_justification: Some("x".into()) }),
            vec![Violation::Breakglass],
        ),
    ];
    for (case, function_setting, service_setting, expected) in table {
        let f = Workload { binauthz: function_setting, ..gen2_function(case) };
        let s = Workload { managed_by_functions: false, ..backing_service(case, service_setting) };
        let v = evaluate_one(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![f, s], &Rules::default());
        assert_eq!(v.resources.len(), 1, "{case}: the backing service is not reported on its own");
        assert_eq!(v.resources[0].kind, Kind::Function);
        assert_eq!(v.resources[0].violations, expected, "{case}");
    }
}

#[test]
fn a_gen1_function_cannot_be_protected() {
    let gen1 = Workload {
        function: Some(FunctionOrigin::FunctionsApi {
            generation: FunctionGeneration::Gen1,
            build_repository: format!("{REGION}-docker.pkg.dev/p/gcf-artifacts"),
            backing_service: None,
            source: FunctionSource::Flag("gs://b/old.zip".into()),
        }),
        binauthz: None,
        ..gen2_function("old")
    };
    let v = evaluate_one(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![gen1], &Rules::default());
    assert_eq!(violations_of(&v, "old"), vec![Violation::Gen1Function]);
    assert!(v.allowlist.is_empty(), "gen1 builds need no allowlist entry");
    let fix = v.resources[0].remediation.as_deref().unwrap();
    assert!(!fix.contains("--gen2"), "gcloud refuses --gen2 for an existing 1st gen function: {fix}");
    let steps: Vec<&str> = fix.lines().collect();
    assert_eq!(steps.len(), 4, "{fix}");
    assert!(steps[0].starts_with("gcloud alpha functions upgrade old") && steps[0].ends_with("--setup-config &&"));
    assert!(steps[2].ends_with("--commit &&"));
    assert!(steps[3].starts_with("gcloud functions deploy old") && steps[3].contains("--source=gs://b/old.zip"));
}

#[test]
fn a_non_function_image_matched_by_the_allowlist_is_exempt() {
    let source_deploy = Workload {
        images: vec!["us-central1-docker.pkg.dev/p/cloud-run-source-deploy/web@sha256:abc".into()],
        ..workload(Kind::Service, "web")
    };
    let elsewhere = workload(Kind::Service, "api");
    let v = evaluate_one(
        Observed::Seen(enforcing_policy(FUNCTION_REPOS)),
        vec![source_deploy, elsewhere],
        &Rules::default(),
    );
    assert_eq!(violations_of(&v, "web"), vec![Violation::ExemptImage]);
    assert_eq!(violations_of(&v, "api"), vec![]);
}

#[test]
fn project_findings_follow_the_policy() {
    let table: Vec<(&str, Observed<Policy>, Vec<Finding>)> = vec![
        ("enforcing", Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![]),
        (
            "always_allow",
            Observed::Seen(Policy { evaluation_mode: "ALWAYS_ALLOW".into(), ..enforcing_policy(&[]) }),
            vec![Finding::PolicyAlwaysAllow],
        ),
        (
            "dry_run",
            Observed::Seen(Policy { enforcement_mode: "DRYRUN_AUDIT_LOG_ONLY".into(), ..enforcing_policy(&[]) }),
            vec![Finding::PolicyDryRun],
        ),
        (
            "too_broad",
            Observed::Seen(enforcing_policy(&["us-central1-docker.pkg.dev/p/**"])),
            vec![Finding::AllowlistTooBroad],
        ),
        ("api_disabled", Observed::ApiDisabled, vec![Finding::PolicyApiDisabled]),
        ("unreadable", Observed::Failed("x".into()), vec![]),
    ];
    for (case, policy, expected) in table {
        let v = evaluate_one(policy, vec![], &Rules::default());
        assert_eq!(v.findings, expected, "{case}");
    }
}

#[test]
fn an_unreadable_policy_never_yields_compliant() {
    let ok = workload(Kind::Service, "ok");
    let bad = Workload { binauthz: None, ..workload(Kind::Job, "bad") };
    let v = evaluate_one(
        Observed::Failed("GET policy: HTTP 500".into()),
        vec![ok, gen2_function("f"), bad],
        &Rules::default(),
    );
    assert!(!v.complete);
    assert_eq!(v.error.as_deref(), Some("GET policy: HTTP 500"));
    let by_name = |n: &str| v.resources.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("ok").compliance, Compliance::Unknown);
    assert_eq!(by_name("f").compliance, Compliance::Unknown);
    assert!(by_name("f").unknown_reason.as_deref().unwrap().contains("policy"));
    assert_eq!(by_name("bad").compliance, Compliance::NonCompliant, "what is known to be wrong stays wrong");
    assert!(v.allowlist.is_empty());
}

#[test]
fn a_function_whose_backing_service_could_not_be_listed_is_unknown() {
    let mut inv = inventory(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![gen2_function("f")]);
    inv.record_listing(Kind::Service, Observed::Failed("GET services: timeout".into()));
    let v = evaluate_project(&inv, &Rules::default());
    assert_eq!(v.resources[0].compliance, Compliance::Unknown);
    assert!(!v.complete);
}

#[test]
fn disabled_apis_are_facts_not_failures() {
    let inv = inventory(Observed::ApiDisabled, vec![workload(Kind::Service, "s")]);
    let v = evaluate_project(&inv, &Rules::default());
    assert!(v.complete);
    assert_eq!(v.disabled_apis, vec![Api::Binaryauthorization]);
    assert_eq!(v.resources[0].compliance, Compliance::Compliant);
    let mut only_disabled = ProjectInventory::new("p", Observed::Seen(enforcing_policy(&[])));
    only_disabled.record_listing(Kind::Function, Observed::ApiDisabled);
    only_disabled.record_listing(Kind::Service, Observed::ApiDisabled);
    let v = evaluate_project(&only_disabled, &Rules::default());
    assert_eq!(v.disabled_apis, vec![Api::Run, Api::Functions]);
    assert!(v.resources.is_empty());
}

fn fix_of(v: &ProjectVerdict, name: &str) -> (Option<String>, Option<String>) {
    let r = v.resources.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("{name} not reported"));
    (r.remediation.clone(), r.remediation_note.clone())
}

#[test]
fn a_function_fix_exempts_its_repository_before_it_redeploys_the_deployed_source() {
    let f = Workload { binauthz: None, ..gen2_function("hook") };
    let v = evaluate_one(Observed::Seen(enforcing_policy(&[])), vec![f], &Rules::default());
    assert_eq!(violations_of(&v, "hook"), vec![Violation::BinauthzDisabled, Violation::AllowlistMissing]);
    let (command, _) = fix_of(&v, "hook");
    let steps: Vec<&str> = command.as_deref().unwrap().lines().collect();
    assert_eq!(steps.len(), 2);
    assert!(steps[0].contains("binauthz-auditor allowlist --add 'us-central1-docker.pkg.dev/p/gcf-artifacts/**'"));
    assert_eq!(
        steps[1],
        "gcloud functions deploy hook --project p --region us-central1 --source=gs://gcf-v2-sources-1-us-central1/hook/function-source.zip --binary-authorization default"
    );
}

#[test]
fn a_function_whose_source_cannot_be_named_gets_no_deploy_command() {
    let mut f = Workload { binauthz: None, ..gen2_function("local") };
    if let Some(FunctionOrigin::FunctionsApi { source, .. }) = &mut f.function {
        *source = FunctionSource::NotReusable("uploaded from a local directory".into());
    }
    let firebase = Workload {
        labels: [("deployment-tool".to_string(), "cli-firebase".to_string())].into(),
        binauthz: None,
        ..gen2_function("fire")
    };
    let v = evaluate_one(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![f, firebase], &Rules::default());
    let (command, note) = fix_of(&v, "local");
    assert_eq!(command, None, "never a deploy that would upload the current directory");
    assert!(note.unwrap().contains("uploaded from a local directory"));
    let (command, note) = fix_of(&v, "fire");
    assert_eq!(command, None);
    assert!(note.unwrap().contains("Firebase deploy"));
}

#[test]
fn a_worker_pool_in_breakglass_is_cleared_before_default_is_set() {
    let pool = Workload {
        binauthz: Some(BinauthzSetting { use_default: true, policy: None, breakglass_justification: Some("x".into()) }),
        ..workload(Kind::WorkerPool, "pool")
    };
    let v = evaluate_one(Observed::Seen(enforcing_policy(&[])), vec![pool], &Rules::default());
    let (command, note) = fix_of(&v, "pool");
    assert_eq!(
        command.as_deref(),
        Some(
            "gcloud beta run worker-pools update pool --project p --region us-central1 --clear-binary-authorization &&\ngcloud beta run worker-pools update pool --project p --region us-central1 --binary-authorization default"
        )
    );
    assert!(note.unwrap().contains("never after"));
}

#[test]
fn a_single_level_allowlist_entry_is_not_the_documented_one() {
    let v = evaluate_one(
        Observed::Seen(enforcing_policy(&["us-central1-docker.pkg.dev/p/gcf-artifacts/*"])),
        vec![gen2_function("f")],
        &Rules::default(),
    );
    assert_eq!(v.allowlist[0].status, AllowlistStatus::NotDocumentedPattern);
    assert!(!v.allowlist[0].present);
    let (command, note) = fix_of(&v, "f");
    assert!(command.unwrap().contains("--add 'us-central1-docker.pkg.dev/p/gcf-artifacts/**'"));
    assert!(note.unwrap().contains("not the documented"));
}

#[test]
fn an_exemption_no_function_needs_is_removed_and_a_documented_one_is_explained() {
    let app = workload(Kind::Service, "app");
    let v = evaluate_one(
        Observed::Seen(enforcing_policy(&["us-docker.pkg.dev/p/app/*", "us-docker.pkg.dev/p/other/**"])),
        vec![app],
        &Rules::default(),
    );
    assert_eq!(violations_of(&v, "app"), vec![Violation::ExemptImage]);
    let (command, _) = fix_of(&v, "app");
    let command = command.unwrap();
    assert!(command.contains("allowlist --remove 'us-docker.pkg.dev/p/app/*' >"), "{command}");
    assert!(!command.contains("other"), "only the pattern that exempts the image: {command}");
}

#[test]
fn names_from_a_hostile_snapshot_are_quoted_in_every_command() {
    let evil = Workload { binauthz: None, ..workload(Kind::Service, "x; touch /tmp/owned") };
    let v = evaluate_one(Observed::Seen(enforcing_policy(&[])), vec![evil], &Rules::default());
    let (command, _) = fix_of(&v, "x; touch /tmp/owned");
    assert_eq!(
        command.as_deref(),
        Some(
            "gcloud run services update 'x; touch /tmp/owned' --project p --region us-central1 --binary-authorization default"
        )
    );
}

mod validation {
    use super::*;
    use crate::attest::{Cause, Check};
    use crate::evaluate::validation::ServingVerdict;
    use crate::inventory::{Evidence, TrafficTarget};

    fn serving(traffic: &[(&str, u32, Option<&str>)]) -> Option<Vec<TrafficTarget>> {
        Some(
            traffic
                .iter()
                .map(|(r, p, t)| TrafficTarget { revision: (*r).into(), percent: *p, tag: t.map(Into::into) })
                .collect(),
        )
    }

    fn evidence(images: &[(&str, &str)], attested: &[&str]) -> Evidence {
        let mut e = Evidence::default();
        for (revision, image) in images {
            e.revisions.insert((REGION.into(), (*revision).into()), Ok(vec![(*image).into()]));
            let check = match attested.contains(image) {
                true => Check::Verified,
                false => Check::Failed { cause: Cause::UnknownKey, detail: "signed by key-9".into() },
            };
            e.attestations.insert((CI.into(), (*image).into()), check);
        }
        e
    }

    fn evaluate_with(workloads: Vec<Workload>, evidence: Option<Evidence>) -> ProjectVerdict {
        let mut inv = inventory(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), workloads);
        inv.validation = evidence;
        evaluate_project(&inv, &Rules::default())
    }

    #[test]
    fn an_unattested_canary_is_a_violation_fixed_by_moving_its_traffic() {
        let web = Workload {
            traffic: serving(&[("web-1", 90, None), ("web-2", 10, Some("canary"))]),
            ..workload(Kind::Service, "web")
        };
        let v = evaluate_with(vec![web.clone()], Some(evidence(&[("web-1", GOOD), ("web-2", BAD)], &[GOOD])));
        let r = &v.resources[0];
        assert_eq!(r.violations, vec![Violation::UnattestedRevision]);
        assert_eq!(
            r.remediation.as_deref(),
            Some(
                "gcloud run services update-traffic web --project p --region us-central1 --remove-tags=canary --to-revisions=web-1=100"
            )
        );
        let serving = r.serving.as_ref().unwrap();
        assert_eq!(serving[1].images[0].attestors[0].cause, Some(Cause::UnknownKey));
        assert_eq!(v.validation, Some(ValidationStatus { complete: true, error: None }));

        let off = evaluate_with(vec![web], None);
        assert_eq!((off.resources[0].violations.as_slice(), &off.resources[0].serving), (&[][..], &None));
        assert_eq!(off.validation, None, "[validation] off changes nothing");
    }

    #[test]
    fn a_gen2_function_is_validated_through_its_run_service() {
        let f = gen2_function("hook");
        let s = Workload { traffic: serving(&[("hook-1", 100, None)]), ..backing_service("hook", default_binauthz()) };
        let v = evaluate_with(vec![f, s], Some(evidence(&[("hook-1", BAD)], &[])));
        assert_eq!(v.resources.len(), 1);
        let r = &v.resources[0];
        assert_eq!((r.kind, r.violations.clone()), (Kind::Function, vec![Violation::UnattestedRevision]));
        assert_eq!(r.remediation, None, "no Run traffic command for a function, and no KMS key to sign with");
        assert!(r.remediation_note.as_deref().unwrap().contains("No safe command"), "{r:?}");
    }

    #[test]
    fn a_kms_attestor_gets_a_sign_and_create_command_when_no_revision_passes() {
        let web = Workload { traffic: serving(&[("web-2", 100, None)]), ..workload(Kind::Service, "web") };
        let mut e = evidence(&[("web-2", BAD)], &[]);
        let key = "projects/p/locations/global/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/1";
        e.kms_keys.insert(CI.into(), vec![key.into()]);
        let r = &evaluate_with(vec![web], Some(e)).resources[0];
        assert_eq!(
            r.remediation.as_deref().unwrap(),
            format!(
                "gcloud beta container binauthz attestations sign-and-create --project=p --artifact-url={BAD} --attestor={CI} --keyversion={key} --public-key-id-override=//cloudkms.googleapis.com/v1/{key}"
            )
        );
    }

    #[test]
    fn unreadable_validation_makes_the_workload_unknown_and_the_project_incomplete_for_validation() {
        let web = Workload { traffic: serving(&[("web-1", 100, None)]), ..workload(Kind::Service, "web") };
        let mut e = evidence(&[("web-1", GOOD)], &[]);
        e.attestations.insert((CI.into(), GOOD.into()), Check::Unknown("GET note: HTTP 403".into()));
        e.failure = Some("GET note: HTTP 403".into());
        let v = evaluate_with(vec![web], Some(e));
        let r = &v.resources[0];
        assert_eq!(r.compliance, Compliance::Unknown);
        assert!(r.unknown_reason.as_deref().unwrap().starts_with("continuous validation: serving revision web-1"));
        assert_eq!(r.serving.as_ref().unwrap()[0].verdict, ServingVerdict::Unknown);
        assert!(v.complete, "the listings were read; validation says what it could not");
        assert!(!v.validation.unwrap().complete);
    }
}
