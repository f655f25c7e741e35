//! Re-auditing what events announced: read each trigger's workload or policy again
//! ([`read_all`], the I/O), with `[validation]` also what the re-read workloads serve
//! ([`validate_all`]), fold what was read into the project's last-known inventory
//! ([`Reread::apply`], pure), and tell whether a cycle found changes events never announced
//! ([`unexplained_changes`], pure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use futures_util::StreamExt;
use futures_util::stream;

use super::message::Trigger;
use crate::collect::reread::{Reader, WorkloadKey};
use crate::collect::validation::Validator;
use crate::config::Scope;
use crate::evaluate::{ProjectVerdict, Violation};
use crate::inventory::{Evidence, FunctionOrigin, Kind, Observed, Policy, ProjectInventory, Workload};
use crate::wire::wire_enum;

/// What one read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reread {
    /// `None`: the workload is gone.
    Workload {
        key: WorkloadKey,
        found: Option<Box<Workload>>,
    },
    Policy {
        project: String,
        policy: Policy,
    },
    /// What re-read workloads serve, validated (`[validation]`): added to what the last cycle
    /// validated (revisions never change; an image's check is replaced by the newer one).
    Evidence {
        project: String,
        evidence: Box<Evidence>,
    },
}

wire_enum! {
    /// What a re-read did to the project's last-known inventory (the `result` label of
    /// `binauthz_event_reaudits_total`, with `failed` for a read that did not succeed).
    pub enum Applied {
        Changed = "changed",
        Unchanged = "unchanged",
        Removed = "removed",
        Failed = "failed",
    }
}

impl Reread {
    pub fn project(&self) -> &str {
        match self {
            Reread::Workload { key, .. } => &key.project,
            Reread::Policy { project, .. } | Reread::Evidence { project, .. } => project,
        }
    }

    /// A read an event announced (counted in `binauthz_event_reaudits_total`); validation
    /// evidence only accompanies one.
    pub fn announced(&self) -> bool {
        !matches!(self, Reread::Evidence { .. })
    }

    /// Folds what was read into the project's inventory. Reads are of the present, so
    /// applying them in any order, or twice, ends in the same state.
    pub fn apply(&self, inventory: &mut ProjectInventory) -> Applied {
        match self {
            Reread::Policy { policy, .. } => {
                if inventory.policy.seen() == Some(policy) {
                    return Applied::Unchanged;
                }
                inventory.policy = Observed::Seen(policy.clone());
                Applied::Changed
            }
            Reread::Evidence { evidence, .. } => {
                let current = inventory.validation.get_or_insert_with(Evidence::default);
                let before = current.clone();
                current.revisions.extend(evidence.revisions.iter().map(|(k, v)| (k.clone(), v.clone())));
                current.attestations.extend(evidence.attestations.iter().map(|(k, v)| (k.clone(), v.clone())));
                current.kms_keys.extend(evidence.kms_keys.iter().map(|(k, v)| (k.clone(), v.clone())));
                if evidence.failure.is_some() {
                    current.failure.clone_from(&evidence.failure);
                }
                if *current == before { Applied::Unchanged } else { Applied::Changed }
            }
            Reread::Workload { key, found } => {
                let at = inventory.workloads.iter().position(|w| key.matches(w));
                match (at, found) {
                    (Some(i), None) => {
                        inventory.workloads.remove(i);
                        Applied::Removed
                    }
                    (None, None) => Applied::Unchanged,
                    (Some(i), Some(w)) if inventory.workloads[i] == **w => Applied::Unchanged,
                    (Some(i), Some(w)) => {
                        inventory.workloads[i] = (**w).clone();
                        Applied::Changed
                    }
                    (None, Some(w)) => {
                        inventory.workloads.push((**w).clone());
                        Applied::Changed
                    }
                }
            }
        }
    }
}

/// What the daemon knows of its scope when events arrive: the projects the last cycle
/// audited (`[scope]` found them, exclusions applied), and the kinds and regions it covers.
pub struct InScope<'a> {
    pub projects: BTreeSet<&'a str>,
    pub scope: &'a Scope,
}

impl InScope<'_> {
    fn covers(&self, trigger: &Trigger) -> bool {
        if !self.projects.contains(trigger.project()) {
            return false;
        }
        match trigger {
            Trigger::Policy { .. } => true,
            Trigger::Workload { kind, location, .. } => {
                self.scope.kinds.contains(kind)
                    && (self.scope.regions.is_empty() || self.scope.regions.contains(location))
            }
        }
    }
}

/// One trigger's outcome.
#[derive(Debug)]
pub enum Outcome {
    OutOfScope,
    Read(Vec<Reread>),
    Failed(String),
}

/// Project IDs learnt for project numbers: an asset name, or a v2 resource name, may carry
/// the number. Never forgotten (a number is never reused).
#[derive(Default)]
pub struct ProjectIds(Mutex<HashMap<String, String>>);

impl ProjectIds {
    async fn resolve(&self, reader: &Reader, project: &str) -> Result<String, String> {
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(project.to_owned());
        }
        if let Some(id) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(project) {
            return Ok(id.clone());
        }
        let id = reader.project_id(project).await.map_err(|e| e.to_string())?;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(project.to_owned(), id.clone());
        Ok(id)
    }
}

/// Reads every trigger again, `concurrency` at a time (requests are also bounded by the
/// client). A function's read also reads the Run service it runs on, whose setting its
/// verdict depends on.
pub async fn read_all(
    reader: &Reader,
    ids: &ProjectIds,
    in_scope: &InScope<'_>,
    triggers: Vec<Trigger>,
    concurrency: usize,
) -> Vec<(Trigger, Outcome)> {
    stream::iter(triggers)
        .map(|trigger| async move {
            let outcome = read_one(reader, ids, in_scope, &trigger).await;
            (trigger, outcome)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

async fn read_one(reader: &Reader, ids: &ProjectIds, in_scope: &InScope<'_>, trigger: &Trigger) -> Outcome {
    let project = match ids.resolve(reader, trigger.project()).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e),
    };
    let trigger = with_project(trigger, project);
    if !in_scope.covers(&trigger) {
        return Outcome::OutOfScope;
    }
    match trigger {
        Trigger::Policy { project } => match reader.policy(&project).await {
            Ok(policy) => Outcome::Read(vec![Reread::Policy { project, policy }]),
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Trigger::Workload { project, kind, location, name } => {
            let key = WorkloadKey { project, kind, location, name };
            let found = match reader.workload(&key).await {
                Ok(found) => found,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            let backing = backing_service(found.as_ref(), in_scope);
            let mut reads = vec![Reread::Workload { key, found: found.map(Box::new) }];
            if let Some(service) = backing {
                match reader.workload(&service).await {
                    Ok(found) => reads.push(Reread::Workload { key: service, found: found.map(Box::new) }),
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
            Outcome::Read(reads)
        }
    }
}

/// Validates what the re-read workloads of each outcome serve, under their project's policy
/// (as last known, or as re-read in the same batch), and adds the evidence to the outcome's
/// reads.
pub async fn validate_all(
    validator: &Validator,
    mut policies: BTreeMap<String, Policy>,
    outcomes: Vec<(Trigger, Outcome)>,
) -> Vec<(Trigger, Outcome)> {
    for (_, outcome) in &outcomes {
        if let Outcome::Read(reads) = outcome {
            for read in reads {
                if let Reread::Policy { project, policy } = read {
                    policies.insert(project.clone(), policy.clone());
                }
            }
        }
    }
    let (cycle, policies) = (&validator.cycle(), &policies);
    stream::iter(outcomes)
        .then(|(trigger, outcome)| async move {
            let Outcome::Read(mut reads) = outcome else { return (trigger, outcome) };
            let mut by_project: BTreeMap<String, ProjectInventory> = BTreeMap::new();
            for read in &reads {
                let (Reread::Workload { key, found: Some(w) }, Some(policy)) = (read, policies.get(read.project()))
                else {
                    continue;
                };
                let inventory = by_project.entry(key.project.clone()).or_insert_with(|| {
                    let mut inventory = ProjectInventory::new(key.project.clone(), Observed::Seen(policy.clone()));
                    inventory.record_listing(Kind::Service, Observed::Seen(()));
                    inventory
                });
                inventory.workloads.push((**w).clone());
            }
            for (project, inventory) in by_project {
                let evidence = validator.evidence(cycle, &inventory).await;
                reads.push(Reread::Evidence { project, evidence: Box::new(evidence) });
            }
            (trigger, Outcome::Read(reads))
        })
        .collect()
        .await
}

fn with_project(trigger: &Trigger, project: String) -> Trigger {
    match trigger {
        Trigger::Policy { .. } => Trigger::Policy { project },
        Trigger::Workload { kind, location, name, .. } => {
            Trigger::Workload { project, kind: *kind, location: location.clone(), name: name.clone() }
        }
    }
}

fn backing_service(function: Option<&Workload>, in_scope: &InScope<'_>) -> Option<WorkloadKey> {
    let w = function?;
    let Some(FunctionOrigin::FunctionsApi { backing_service: Some((location, name)), .. }) = &w.function else {
        return None;
    };
    let key =
        WorkloadKey { project: w.project.clone(), kind: Kind::Service, location: location.clone(), name: name.clone() };
    let as_trigger = Trigger::Workload {
        project: key.project.clone(),
        kind: key.kind,
        location: key.location.clone(),
        name: key.name.clone(),
    };
    in_scope.covers(&as_trigger).then_some(key)
}

/// Resources whose verdict a cycle found different from what events had kept up to date:
/// added, gone, or with other violations. Only projects read completely both times count,
/// and what continuous validation found is left out: attestations change without an event
/// (a read project's unknown workloads come from validation alone, so compliance is left
/// out with it).
pub fn unexplained_changes(before: &ProjectVerdict, after: &ProjectVerdict) -> usize {
    if !before.complete || !after.complete {
        return 0;
    }
    let (old, new) = (verdicts_by_resource(before), verdicts_by_resource(after));
    let changed = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).count();
    let gone = old.keys().filter(|k| !new.contains_key(*k)).count();
    let policy = usize::from(before.findings != after.findings || before.allowlist != after.allowlist);
    changed + gone + policy
}

type ResourceKey<'a> = (Kind, &'a str, &'a str);

fn verdicts_by_resource(v: &ProjectVerdict) -> BTreeMap<ResourceKey<'_>, Vec<Violation>> {
    let announced = |v: &&Violation| !matches!(v, Violation::UnattestedRevision | Violation::DeniedRevisionServing);
    v.resources
        .iter()
        .map(|r| {
            ((r.kind, r.location.as_str(), r.name.as_str()), r.violations.iter().filter(announced).copied().collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{Rules, evaluate_project};
    use crate::fixtures::{FUNCTION_REPOS, enforcing_policy, inventory, workload};

    fn key(kind: Kind, name: &str) -> WorkloadKey {
        WorkloadKey::of(&workload(kind, name))
    }

    fn read(kind: Kind, name: &str, found: Option<Workload>) -> Reread {
        Reread::Workload { key: key(kind, name), found: found.map(Box::new) }
    }

    #[test]
    fn reads_replace_add_and_remove_and_applying_twice_changes_nothing() {
        let mut inv = inventory(Observed::Seen(enforcing_policy(FUNCTION_REPOS)), vec![workload(Kind::Service, "web")]);
        let unprotected = Workload { binauthz: None, ..workload(Kind::Service, "web") };
        let change = read(Kind::Service, "web", Some(unprotected.clone()));
        assert_eq!(change.apply(&mut inv), Applied::Changed);
        assert_eq!(change.apply(&mut inv), Applied::Unchanged, "a duplicate message is harmless");
        assert_eq!(inv.workloads, vec![unprotected]);

        assert_eq!(read(Kind::Job, "etl", Some(workload(Kind::Job, "etl"))).apply(&mut inv), Applied::Changed);
        assert_eq!(inv.workloads.len(), 2);
        let gone = read(Kind::Service, "web", None);
        assert_eq!(gone.apply(&mut inv), Applied::Removed);
        assert_eq!(gone.apply(&mut inv), Applied::Unchanged);
        assert_eq!(inv.workloads, vec![workload(Kind::Job, "etl")]);
        // Same name, other kind: a job named web is not the service web.
        assert_eq!(read(Kind::Job, "web", None).apply(&mut inv), Applied::Unchanged);
    }

    #[test]
    fn a_policy_read_replaces_the_policy_the_project_is_judged_against() {
        let rules = Rules::default();
        let mut inv = inventory(
            Observed::Seen(enforcing_policy(FUNCTION_REPOS)),
            vec![
                crate::fixtures::gen2_function("hook"),
                crate::fixtures::backing_service("hook", crate::fixtures::default_binauthz()),
            ],
        );
        let before = evaluate_project(&inv, &rules);
        assert!(before.resources.iter().all(|r| r.violations.is_empty()), "{before:?}");
        let dropped = Reread::Policy { project: "p".into(), policy: enforcing_policy(&[]) };
        assert_eq!(dropped.apply(&mut inv), Applied::Changed);
        let after = evaluate_project(&inv, &rules);
        assert!(
            after.resources.iter().any(|r| r.violations.contains(&Violation::AllowlistMissing)),
            "the function's repository is no longer exempt: {after:?}"
        );
        assert_eq!(unexplained_changes(&before, &after), 2, "the function's verdict and the allowlist");
        assert_eq!(dropped.apply(&mut inv), Applied::Unchanged);
    }

    #[test]
    fn validation_evidence_adds_to_the_cycles_and_its_changes_are_not_unexplained() {
        use crate::attest::{Cause, Check};
        let mut inv = inventory(Observed::Seen(enforcing_policy(&[])), vec![workload(Kind::Service, "web")]);
        let mut cycle = Evidence::default();
        cycle.revisions.insert(("us-central1".into(), "web-1".into()), Ok(vec!["i@sha256:11".into()]));
        inv.validation = Some(cycle);
        let mut event = Evidence::default();
        event.revisions.insert(("us-central1".into(), "web-2".into()), Ok(vec!["i@sha256:22".into()]));
        event
            .attestations
            .insert(("a".into(), "i@sha256:22".into()), Check::Failed { cause: Cause::Missing, detail: String::new() });
        let read = Reread::Evidence { project: "p".into(), evidence: Box::new(event) };
        assert!(!read.announced());
        assert_eq!(read.apply(&mut inv), Applied::Changed);
        assert_eq!(read.apply(&mut inv), Applied::Unchanged);
        assert_eq!(inv.validation.as_ref().unwrap().revisions.len(), 2, "revisions never change: both are kept");

        let rules = Rules::default();
        let before = evaluate_project(&inv, &rules);
        let mut after = before.clone();
        after.resources[0].violations.push(Violation::UnattestedRevision);
        after.resources[0].compliance = crate::evaluate::Compliance::NonCompliant;
        assert_eq!(unexplained_changes(&before, &after), 0, "attestations change without an event");
    }

    #[test]
    fn only_changes_between_two_complete_reads_are_unexplained() {
        let rules = Rules::default();
        let policy = Observed::Seen(enforcing_policy(FUNCTION_REPOS));
        let base = evaluate_project(&inventory(policy.clone(), vec![workload(Kind::Service, "a")]), &rules);
        assert_eq!(unexplained_changes(&base, &base), 0);
        let added = evaluate_project(
            &inventory(policy.clone(), vec![workload(Kind::Service, "a"), workload(Kind::Job, "b")]),
            &rules,
        );
        assert_eq!(unexplained_changes(&base, &added), 1);
        assert_eq!(unexplained_changes(&added, &base), 1, "a resource gone counts too");
        let incomplete = ProjectVerdict { complete: false, ..added.clone() };
        assert_eq!(unexplained_changes(&base, &incomplete), 0);
    }

    #[test]
    fn scope_covers_audited_projects_and_configured_kinds_and_regions() {
        let scope = Scope {
            projects: vec![],
            project_query: None,
            folders: vec![],
            exclude_projects: vec![],
            regions: vec!["us-central1".into()],
            kinds: vec![Kind::Service],
            project_query_ttl: std::time::Duration::from_secs(1),
        };
        let in_scope = InScope { projects: ["p"].into(), scope: &scope };
        let t = |project: &str, kind, location: &str| Trigger::Workload {
            project: project.into(),
            kind,
            location: location.into(),
            name: "n".into(),
        };
        assert!(in_scope.covers(&t("p", Kind::Service, "us-central1")));
        assert!(!in_scope.covers(&t("other", Kind::Service, "us-central1")));
        assert!(!in_scope.covers(&t("p", Kind::Job, "us-central1")));
        assert!(!in_scope.covers(&t("p", Kind::Service, "europe-west1")));
        assert!(in_scope.covers(&Trigger::Policy { project: "p".into() }));
    }
}
