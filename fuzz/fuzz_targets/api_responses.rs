//! Hostile Google API bodies: every list response type the collector parses, mapped onto the
//! inventory and evaluated. Nothing may panic, whatever the bytes.
#![no_main]

use binauthz_auditor::evaluate::{self, Compliance, Rules};
use binauthz_auditor::google::status::RpcStatus;
use binauthz_auditor::google::{
    Page, binauthz_v1, functions_v2, resourcemanager_v3, run_v1, run_v2,
};
use binauthz_auditor::inventory::{Kind, Observed, Policy, ProjectInventory, Workload};
use libfuzzer_sys::fuzz_target;

const PROJECT: &str = "p";

/// Parses `data` as page type `P` and exercises the accessors every page has.
fn page<P: Page>(data: &[u8]) -> Option<Vec<P::Item>> {
    let page: P = serde_json::from_slice(data).ok()?;
    let _ = page.next_page_token();
    let _ = page.unreachable().len();
    Some(page.into_items())
}

/// Maps items onto workloads the way the collector does: a bad item fails the listing.
fn record<T>(
    inventory: &mut ProjectInventory,
    kind: Kind,
    items: Option<Vec<T>>,
    into_workload: impl Fn(T) -> Result<Workload, String>,
) {
    let Some(items) = items else { return };
    let mut outcome = Observed::Seen(());
    for item in items {
        match into_workload(item) {
            Ok(w) => inventory.workloads.push(w),
            Err(e) => outcome = Observed::Failed(e),
        }
    }
    inventory.record_listing(kind, outcome);
}

fuzz_target!(|data: &[u8]| {
    if let Some(status) = RpcStatus::parse(data) {
        let _ = status.reason();
        let _ = status.retry_delay();
        let _ = status.is_service_disabled();
    }

    let policy: Option<Policy> =
        serde_json::from_slice::<binauthz_v1::PolicyResource>(data).ok().map(Policy::from);

    let mut inventory = ProjectInventory::new(
        PROJECT,
        match &policy {
            Some(p) => Observed::Seen(p.clone()),
            None => Observed::Failed("policy body did not parse".into()),
        },
    );

    // Cloud Run Admin v2.
    record(&mut inventory, Kind::Service, page::<run_v2::ListServicesResponse>(data), |s| {
        s.into_workload(PROJECT, Kind::Service)
    });
    record(&mut inventory, Kind::Job, page::<run_v2::ListJobsResponse>(data), |j| {
        j.into_workload(PROJECT, Kind::Job)
    });
    record(&mut inventory, Kind::WorkerPool, page::<run_v2::ListWorkerPoolsResponse>(data), |w| {
        w.into_workload(PROJECT, Kind::WorkerPool)
    });
    // What snapshots may also hold: gcloud's bare array.
    if let Ok(items) = serde_json::from_slice::<Vec<run_v2::Service>>(data) {
        record(&mut inventory, Kind::Service, Some(items), |s| s.into_workload(PROJECT, Kind::Service));
    }

    // Cloud Functions v2.
    record(&mut inventory, Kind::Function, page::<functions_v2::ListFunctionsResponse>(data), |f| {
        f.into_workload(PROJECT)
    });

    // Cloud Run Admin v1 (Knative).
    record(&mut inventory, Kind::Service, page::<run_v1::KnativeList<run_v1::Service>>(data), |s| {
        s.into_workload(PROJECT, Kind::Service)
    });
    record(&mut inventory, Kind::Job, page::<run_v1::KnativeList<run_v1::Job>>(data), |j| {
        j.into_workload(PROJECT, Kind::Job)
    });
    if let Some(locations) = page::<run_v1::ListLocationsResponse>(data) {
        let _ = locations.iter().map(|l| l.location_id.len()).sum::<usize>();
    }

    // Resource Manager v3.
    if let Some(projects) = page::<resourcemanager_v3::SearchProjectsResponse>(data) {
        let _ = projects.iter().filter(|p| p.state == "ACTIVE").count();
    }

    // Evaluate with the policy as read, then as if the Binary Authorization API were disabled.
    let rules = Rules::default();
    for policy_view in [inventory.policy.clone(), Observed::ApiDisabled] {
        inventory.policy = policy_view;
        let verdict = evaluate::evaluate_project(&inventory, &rules);
        assert!(verdict.resources.len() <= inventory.workloads.len());
        assert_eq!(verdict.complete, verdict.error.is_none());
        for r in &verdict.resources {
            assert_eq!(r.compliance == Compliance::NonCompliant, !r.violations.is_empty(), "{r:?}");
            assert_eq!(r.unknown_reason.is_some(), r.compliance == Compliance::Unknown, "{r:?}");
        }
    }
});
