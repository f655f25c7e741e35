//! Test fixtures shared by the unit tests of every module: workloads that start compliant
//! (change what a test is about with struct update), policies, and whole verdicts.

use crate::evaluate::{ProjectVerdict, Rules, Violation, evaluate_project};
use crate::inventory::{
    BinauthzSetting, FunctionGeneration, FunctionOrigin, FunctionSource, Kind, Observed, Policy, ProjectInventory,
    Workload,
};

pub const REGION: &str = "us-central1";

/// Continuous validation's images (an attested one and one that is not) and attestor.
pub const GOOD: &str =
    "us-docker.pkg.dev/p/app/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const BAD: &str =
    "us-docker.pkg.dev/p/app/web@sha256:2222222222222222222222222222222222222222222222222222222222222222";
pub const CI: &str = "projects/p/attestors/built-by-ci";

pub fn default_binauthz() -> Option<BinauthzSetting> {
    Some(BinauthzSetting { use_default: true, ..Default::default() })
}

pub fn workload(kind: Kind, name: &str) -> Workload {
    Workload {
        project: "p".into(),
        location: REGION.into(),
        kind,
        name: name.into(),
        binauthz: default_binauthz(),
        images: vec![format!("us-docker.pkg.dev/p/app/{name}:v1")],
        last_modifier: Some("dev@example.com".into()),
        function: None,
        managed_by_functions: false,
        labels: Default::default(),
        data_updated_at: None,
        traffic: None,
    }
}

pub fn gen2_function(name: &str) -> Workload {
    Workload {
        images: vec![],
        function: Some(FunctionOrigin::FunctionsApi {
            generation: FunctionGeneration::Gen2,
            build_repository: format!("{REGION}-docker.pkg.dev/p/gcf-artifacts"),
            backing_service: Some((REGION.into(), name.into())),
            source: FunctionSource::Flag(format!("gs://gcf-v2-sources-1-{REGION}/{name}/function-source.zip")),
        }),
        ..workload(Kind::Function, name)
    }
}

pub fn backing_service(name: &str, binauthz: Option<BinauthzSetting>) -> Workload {
    Workload { managed_by_functions: true, binauthz, ..workload(Kind::Service, name) }
}

pub fn run_admin_function(name: &str) -> Workload {
    Workload {
        function: Some(FunctionOrigin::RunAdmin {
            build_repository: format!("{REGION}-docker.pkg.dev/p/cloud-run-source-deploy"),
        }),
        ..workload(Kind::Service, name)
    }
}

pub fn enforcing_policy(patterns: &[&str]) -> Policy {
    Policy {
        admission_whitelist_patterns: patterns.iter().map(|p| p.to_string()).collect(),
        evaluation_mode: "REQUIRE_ATTESTATION".into(),
        enforcement_mode: "ENFORCED_BLOCK_AND_AUDIT_LOG".into(),
        global_policy_evaluation_mode: "ENABLE".into(),
        require_attestations_by: vec!["projects/p/attestors/built-by-ci".into()],
    }
}

pub const FUNCTION_REPOS: &[&str] =
    &["us-central1-docker.pkg.dev/p/gcf-artifacts/**", "us-central1-docker.pkg.dev/p/cloud-run-source-deploy/**"];

pub fn inventory(policy: Observed<Policy>, workloads: Vec<Workload>) -> ProjectInventory {
    let mut inv = ProjectInventory::new("p", policy);
    for kind in Kind::ALL {
        inv.record_listing(kind, Observed::Seen(()));
    }
    inv.workloads = workloads;
    inv
}

pub fn evaluate_one(policy: Observed<Policy>, workloads: Vec<Workload>, rules: &Rules) -> ProjectVerdict {
    evaluate_project(&inventory(policy, workloads), rules)
}

pub fn violations_of(verdict: &ProjectVerdict, name: &str) -> Vec<Violation> {
    verdict
        .resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} not reported"))
        .violations
        .clone()
}

/// A complete verdict for `project` with a compliant service, plus `bad` without Binary
/// Authorization when `violating`; used by the alert tests.
pub fn verdict_with_violation(project: &str, violating: bool) -> ProjectVerdict {
    let mut workloads = vec![workload(Kind::Service, "good")];
    if violating {
        workloads.push(Workload { binauthz: None, ..workload(Kind::Service, "bad") });
    }
    let mut inv = inventory(Observed::Seen(enforcing_policy(&[])), workloads);
    inv.project = project.into();
    evaluate_project(&inv, &Rules::default())
}

/// A verdict for `project` with `resources` compliant services; used by the state tests.
pub fn verdict(project: &str, complete: bool, resources: usize) -> ProjectVerdict {
    let workloads = (0..resources).map(|i| workload(Kind::Service, &format!("svc{i}"))).collect();
    let mut inv = inventory(Observed::Seen(enforcing_policy(&[])), workloads);
    inv.project = project.into();
    if !complete {
        inv.record_listing(Kind::Job, Observed::Failed("boom".into()));
    }
    evaluate_project(&inv, &Rules::default())
}
