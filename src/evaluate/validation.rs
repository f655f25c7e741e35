//! Continuous validation's verdicts (`[validation]`): what each workload serves right now,
//! judged against the project's policy today. The allowlist first (exempt images are not
//! checked), then the default rule only: Cloud Run has no clusters, namespaces or service
//! accounts for the other rules to apply to. Pure: the revisions' digests and the attestations'
//! checks were read by `collect::validation`, which asks [`plan`] what to read.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Violation;
use super::{RunServices, allowlist};
use crate::attest::{Cause, Check, ImageRef};
use crate::inventory::{Evidence, FunctionOrigin, Kind, Policy, ProjectInventory, TrafficTarget, Workload};
use crate::wire::wire_enum;

/// Why a job's images are never validated: what its executions ran is recorded nowhere.
pub const JOB_DIGEST_UNKNOWN: &str = "no Cloud Run API records the image digest a job execution runs (executions and tasks carry none, only revisions do), so the images running now cannot be checked against the policy";

wire_enum! {
    /// What the policy today says of a serving revision, or of one of its images.
    pub enum ServingVerdict {
        /// Attested by every attestor the default rule requires.
        Attested = "attested",
        /// Matched by an allowlist pattern: never checked, by the policy's choice.
        Exempt = "exempt",
        /// The default rule is ALWAYS_ALLOW: nothing to check.
        NotRequired = "not_required",
        Unattested = "unattested",
        /// The default rule is ALWAYS_DENY.
        Denied = "denied",
        Unknown = "unknown",
    }
}

impl ServingVerdict {
    /// Of several verdicts, the one the whole takes: the worst.
    fn severity(self) -> u8 {
        match self {
            ServingVerdict::NotRequired => 0,
            ServingVerdict::Exempt => 1,
            ServingVerdict::Attested => 2,
            ServingVerdict::Unknown => 3,
            ServingVerdict::Unattested => 4,
            ServingVerdict::Denied => 5,
        }
    }

    pub fn passes(self) -> bool {
        matches!(self, ServingVerdict::Attested | ServingVerdict::Exempt | ServingVerdict::NotRequired)
    }
}

/// One attestor's word on one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttestorResult {
    pub attestor: String,
    /// `attested`, `unattested` or `unknown`.
    pub verdict: ServingVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingImage {
    /// `REPO@sha256:...`, as the revision recorded it.
    pub image: String,
    pub verdict: ServingVerdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<AttestorResult>,
}

/// A revision that serves: traffic above 0 %, or a tag (its own URL).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingRevision {
    pub revision: String,
    pub percent: u32,
    pub tags: Vec<String>,
    pub verdict: ServingVerdict,
    /// Empty when the policy needed none read (ALWAYS_ALLOW) or they could not be.
    pub images: Vec<ServingImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// The default rule as validation applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule<'a> {
    NothingToCheck,
    DenyAll,
    Attestors(&'a [String]),
}

impl<'a> Rule<'a> {
    pub fn of(policy: &'a Policy) -> Rule<'a> {
        match policy.evaluation_mode.as_str() {
            "ALWAYS_DENY" => Rule::DenyAll,
            "REQUIRE_ATTESTATION" => Rule::Attestors(&policy.require_attestations_by),
            _ => Rule::NothingToCheck,
        }
    }
}

/// Where a workload's serving revisions come from.
pub enum Serves {
    /// A service's or worker pool's own traffic, or a gen2 function's Run service's.
    Revisions {
        location: String,
        traffic: Vec<TrafficTarget>,
    },
    /// A job: the digests its executions run are recorded nowhere.
    Job,
    /// A 1st gen function: not on Cloud Run.
    NotOnRun,
    Undecided(String),
}

/// What serves `w`; `services` are the project's Run services by (location, name).
pub fn serves(w: &Workload, services: &BTreeMap<(&str, &str), &Workload>, services_read: bool) -> Serves {
    let own = |w: &Workload, what: &str| match &w.traffic {
        Some(traffic) => Serves::Revisions { location: w.location.clone(), traffic: traffic.clone() },
        None => Serves::Undecided(format!("the {what} status names no traffic targets, so what serves is not known")),
    };
    match (w.kind, &w.function) {
        (Kind::Job, _) => Serves::Job,
        (_, Some(origin)) if origin.is_gen1() => Serves::NotOnRun,
        (Kind::Function, Some(FunctionOrigin::FunctionsApi { backing_service: Some((l, n)), .. })) => {
            match services.get(&(l.as_str(), n.as_str())) {
                Some(service) => own(service, "function's Run service"),
                None if services_read => {
                    Serves::Undecided(format!("the function's Run service {n} is not among the services read"))
                }
                None => Serves::Undecided(format!(
                    "the function's Run service {n} was not read (services are not in [scope] kinds)"
                )),
            }
        }
        (Kind::Function, _) => Serves::Undecided("the function names no Run service".into()),
        (_, _) => own(w, &w.kind.to_string().replace('_', " ")),
    }
}

/// The revisions a workload's traffic reaches, each once: shares added up, tags gathered;
/// an entry at 0 % without a tag serves nothing.
pub fn serving(traffic: &[TrafficTarget]) -> Vec<(String, u32, Vec<String>)> {
    let mut by_revision: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
    for t in traffic.iter().filter(|t| t.percent > 0 || t.tag.is_some()) {
        let entry = by_revision.entry(&t.revision).or_default();
        entry.0 += t.percent;
        entry.1.extend(t.tag.clone());
    }
    let mut served: Vec<(String, u32, Vec<String>)> =
        by_revision.into_iter().map(|(r, (percent, tags))| (r.to_owned(), percent, tags)).collect();
    served.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    served
}

/// What collection must read for a project: the serving revisions' digests, then the
/// attestations of the images the policy does not exempt.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// (location, revision).
    pub revisions: BTreeSet<(String, String)>,
}

/// Which revisions' images the policy needs: none under ALWAYS_ALLOW, nor for workloads a
/// named platform policy governs.
pub fn plan(inventory: &ProjectInventory) -> Plan {
    let Some(policy) = inventory.policy.seen() else { return Plan::default() };
    if Rule::of(policy) == Rule::NothingToCheck {
        return Plan::default();
    }
    let services = RunServices::of(inventory);
    let services_read = inventory.listing(Kind::Service).is_some();
    let mut revisions = BTreeSet::new();
    for w in inventory.workloads.iter().filter(|w| !services.is_backing(w) && named_policy(w).is_none()) {
        if let Serves::Revisions { location, traffic } = serves(w, &services.by_name, services_read) {
            revisions.extend(serving(&traffic).into_iter().map(|(r, _, _)| (location.clone(), r)));
        }
    }
    Plan { revisions }
}

/// The attestations to check: every image of `images` the allowlist does not exempt, with
/// every attestor the default rule requires.
pub fn attestations_needed<'a, 'i>(
    policy: &'a Policy,
    images: impl IntoIterator<Item = &'i String>,
) -> BTreeSet<(&'a str, ImageRef)> {
    let Rule::Attestors(attestors) = Rule::of(policy) else { return BTreeSet::new() };
    let mut needed = BTreeSet::new();
    for image in images {
        if exempt(policy, image) {
            continue;
        }
        if let Some(parsed) = ImageRef::parse(image) {
            needed.extend(attestors.iter().map(|a| (a.as_str(), parsed.clone())));
        }
    }
    needed
}

fn exempt(policy: &Policy, image: &str) -> bool {
    policy.admission_whitelist_patterns.iter().any(|p| allowlist::matches(p, image))
}

fn named_policy(w: &Workload) -> Option<&str> {
    w.binauthz.as_ref().and_then(|b| b.policy.as_deref())
}

/// One workload's validation, for its verdict, report and fix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    pub serving: Vec<ServingRevision>,
    pub violation: Option<Violation>,
    pub unknown: Option<String>,
    pub fix: ServingFix,
}

/// What would make a workload's serving images pass: the facts the printed fix needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingFix {
    /// A serving revision that passes today, to move all traffic to (the busiest one).
    pub keep: Option<String>,
    /// Tags that keep failing revisions addressable.
    pub drop_tags: Vec<String>,
    /// (image, attestor, the attestor's Cloud KMS key version if it has one) still unattested.
    pub attest: Vec<(String, String, Option<String>)>,
    /// Revisions that fail, by name.
    pub failing: Vec<String>,
}

/// Judges what `w` serves. `services` as for [`serves`].
pub fn validate(
    w: &Workload,
    policy: &Policy,
    evidence: &Evidence,
    services: &BTreeMap<(&str, &str), &Workload>,
    services_read: bool,
) -> Validated {
    let rule = Rule::of(policy);
    let mut validated = Validated::default();
    if let (Some(named), false) = (named_policy(w), rule == Rule::NothingToCheck) {
        validated.unknown =
            Some(format!("it is governed by the platform policy {named}, which continuous validation does not read"));
        return validated;
    }
    let (location, traffic) = match serves(w, services, services_read) {
        Serves::Revisions { location, traffic } => (location, traffic),
        Serves::NotOnRun => return validated,
        Serves::Job => {
            if rule != Rule::NothingToCheck && w.images.iter().any(|i| !exempt(policy, i)) {
                validated.unknown = Some(JOB_DIGEST_UNKNOWN.into());
            }
            return validated;
        }
        Serves::Undecided(why) => {
            if rule != Rule::NothingToCheck {
                validated.unknown = Some(why);
            }
            return validated;
        }
    };
    for (revision, percent, tags) in serving(&traffic) {
        let read = evidence.revisions.get(&(location.clone(), revision.clone()));
        let served = judge_revision(policy, rule, evidence, revision, percent, tags, read);
        validated.serving.push(served);
    }
    let worst = validated.serving.iter().map(|r| r.verdict).max_by_key(|v| v.severity());
    validated.violation = match worst {
        Some(ServingVerdict::Denied) => Some(Violation::DeniedRevisionServing),
        Some(ServingVerdict::Unattested) => Some(Violation::UnattestedRevision),
        _ => None,
    };
    validated.unknown = validated.serving.iter().find_map(|r| {
        (r.verdict == ServingVerdict::Unknown).then(|| {
            let why = r.unknown_reason.clone().unwrap_or_else(|| "its attestations could not be read".into());
            format!("serving revision {}: {why}", r.revision)
        })
    });
    validated.fix = fix(&validated.serving, evidence);
    validated
}

fn judge_revision(
    policy: &Policy,
    rule: Rule<'_>,
    evidence: &Evidence,
    revision: String,
    percent: u32,
    tags: Vec<String>,
    read: Option<&Result<Vec<String>, String>>,
) -> ServingRevision {
    let mut served = ServingRevision {
        revision,
        percent,
        tags,
        verdict: ServingVerdict::NotRequired,
        images: Vec::new(),
        unknown_reason: None,
    };
    let images = match (rule, read) {
        (Rule::NothingToCheck, read) => {
            let images = read.and_then(|r| r.as_ref().ok()).into_iter().flatten();
            served.images = images
                .map(|i| ServingImage { image: i.clone(), verdict: ServingVerdict::NotRequired, attestors: vec![] })
                .collect();
            return served;
        }
        (_, Some(Ok(images))) => images,
        (_, Some(Err(why))) => {
            served.verdict = ServingVerdict::Unknown;
            served.unknown_reason = Some(why.clone());
            return served;
        }
        (_, None) => {
            served.verdict = ServingVerdict::Unknown;
            served.unknown_reason = Some("its images were not read".into());
            return served;
        }
    };
    served.images = images.iter().map(|image| judge_image(policy, rule, evidence, image)).collect();
    served.verdict =
        served.images.iter().map(|i| i.verdict).max_by_key(|v| v.severity()).unwrap_or(ServingVerdict::Attested);
    served
}

fn judge_image(policy: &Policy, rule: Rule<'_>, evidence: &Evidence, image: &str) -> ServingImage {
    let mut served = ServingImage { image: image.to_owned(), verdict: ServingVerdict::Attested, attestors: vec![] };
    if exempt(policy, image) {
        served.verdict = ServingVerdict::Exempt;
        return served;
    }
    let attestors = match rule {
        Rule::NothingToCheck => {
            served.verdict = ServingVerdict::NotRequired;
            return served;
        }
        Rule::DenyAll => {
            served.verdict = ServingVerdict::Denied;
            return served;
        }
        Rule::Attestors(attestors) => attestors,
    };
    for attestor in attestors {
        let check = evidence.attestations.get(&(attestor.clone(), image.to_owned()));
        let (verdict, cause, detail) = match check {
            Some(Check::Verified) => (ServingVerdict::Attested, None, None),
            Some(Check::Failed { cause, detail }) => (ServingVerdict::Unattested, Some(*cause), Some(detail.clone())),
            Some(Check::Unknown(why)) => (ServingVerdict::Unknown, None, Some(why.clone())),
            None if ImageRef::parse(image).is_none() => {
                (ServingVerdict::Unknown, None, Some(format!("{image} is not an image by digest")))
            }
            None => (ServingVerdict::Unknown, None, Some("its attestations were not read".into())),
        };
        served.attestors.push(AttestorResult { attestor: attestor.clone(), verdict, cause, detail });
    }
    served.verdict =
        served.attestors.iter().map(|a| a.verdict).max_by_key(|v| v.severity()).unwrap_or(ServingVerdict::Attested);
    served
}

/// Moving all traffic to a revision that passes is the safe fix when there is one (Binary
/// Authorization checks every revision a traffic change routes to); otherwise the images need
/// attestations.
fn fix(serving: &[ServingRevision], evidence: &Evidence) -> ServingFix {
    let failing: Vec<&ServingRevision> =
        serving.iter().filter(|r| matches!(r.verdict, ServingVerdict::Unattested | ServingVerdict::Denied)).collect();
    if failing.is_empty() {
        return ServingFix::default();
    }
    let keep = serving.iter().find(|r| r.verdict.passes() && r.percent > 0).map(|r| r.revision.clone());
    let mut attest = Vec::new();
    for image in failing.iter().flat_map(|r| &r.images) {
        for a in image.attestors.iter().filter(|a| a.verdict == ServingVerdict::Unattested) {
            let key = evidence.kms_keys.get(&a.attestor).and_then(|keys| keys.first()).cloned();
            let entry = (image.image.clone(), a.attestor.clone(), key);
            if !attest.contains(&entry) {
                attest.push(entry);
            }
        }
    }
    ServingFix {
        keep,
        drop_tags: failing.iter().flat_map(|r| r.tags.iter().cloned()).collect(),
        attest,
        failing: failing.iter().map(|r| r.revision.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::inventory::Observed;

    fn target(revision: &str, percent: u32, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget { revision: revision.into(), percent, tag: tag.map(Into::into) }
    }

    fn evidence(revisions: &[(&str, &str)], verified: &[&str]) -> Evidence {
        let mut e = Evidence::default();
        for (revision, image) in revisions {
            e.revisions.insert((REGION.into(), (*revision).into()), Ok(vec![(*image).into()]));
            let check = if verified.contains(image) {
                Check::Verified
            } else {
                Check::Failed { cause: Cause::Missing, detail: "none".into() }
            };
            e.attestations.insert((CI.into(), (*image).into()), check);
        }
        e
    }

    fn run(w: &Workload, policy: &Policy, e: &Evidence) -> Validated {
        validate(w, policy, e, &BTreeMap::new(), true)
    }

    #[test]
    fn every_revision_that_serves_is_judged_a_tag_serves_at_zero_percent() {
        let w = Workload {
            traffic: Some(vec![
                target("web-1", 90, None),
                target("web-2", 10, Some("canary")),
                target("web-0", 0, None),
                target("web-3", 0, Some("preview")),
            ]),
            ..workload(Kind::Service, "web")
        };
        let e = evidence(&[("web-1", GOOD), ("web-2", BAD), ("web-3", BAD)], &[GOOD]);
        let v = run(&w, &enforcing_policy(&[]), &e);
        let verdicts: Vec<(&str, u32, ServingVerdict)> =
            v.serving.iter().map(|r| (r.revision.as_str(), r.percent, r.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("web-1", 90, ServingVerdict::Attested),
                ("web-2", 10, ServingVerdict::Unattested),
                ("web-3", 0, ServingVerdict::Unattested)
            ],
            "web-0 at 0 % without a tag does not serve"
        );
        assert_eq!(v.violation, Some(Violation::UnattestedRevision));
        assert_eq!(v.fix.keep.as_deref(), Some("web-1"));
        assert_eq!(v.fix.drop_tags, vec!["canary", "preview"]);
        assert_eq!(v.serving[1].images[0].attestors[0].cause, Some(Cause::Missing));
    }

    #[test]
    fn the_rule_decides_what_is_checked() {
        let w = Workload { traffic: Some(vec![target("web-1", 100, None)]), ..workload(Kind::Service, "web") };
        let e = evidence(&[("web-1", BAD)], &[]);
        let allow = Policy { evaluation_mode: "ALWAYS_ALLOW".into(), ..enforcing_policy(&[]) };
        let v = run(&w, &allow, &e);
        assert_eq!((v.violation, v.serving[0].verdict), (None, ServingVerdict::NotRequired));
        let deny = Policy { evaluation_mode: "ALWAYS_DENY".into(), ..enforcing_policy(&[]) };
        assert_eq!(run(&w, &deny, &e).violation, Some(Violation::DeniedRevisionServing));
        let exempting =
            Policy { evaluation_mode: "ALWAYS_DENY".into(), ..enforcing_policy(&["us-docker.pkg.dev/p/app/**"]) };
        let v = run(&w, &exempting, &e);
        assert_eq!((v.violation, v.serving[0].verdict), (None, ServingVerdict::Exempt), "the allowlist comes first");
        let two = Policy {
            require_attestations_by: vec![CI.into(), "projects/p/attestors/qa".into()],
            ..enforcing_policy(&[])
        };
        let both_needed = run(&w, &two, &evidence(&[("web-1", GOOD)], &[GOOD]));
        assert_eq!(both_needed.serving[0].verdict, ServingVerdict::Unknown, "qa's word was never read: not attested");
        assert_eq!(both_needed.violation, None);
        assert!(both_needed.unknown.unwrap().contains("web-1"));
    }

    #[test]
    fn what_cannot_be_read_is_unknown_never_attested() {
        let w = Workload { traffic: Some(vec![target("web-1", 100, None)]), ..workload(Kind::Service, "web") };
        let mut e = Evidence::default();
        e.revisions.insert((REGION.into(), "web-1".into()), Err("GET x: HTTP 403".into()));
        let v = run(&w, &enforcing_policy(&[]), &e);
        assert_eq!((v.violation, v.serving[0].verdict), (None, ServingVerdict::Unknown));
        assert!(v.unknown.unwrap().contains("HTTP 403"));
        let mut e = evidence(&[("web-1", GOOD)], &[]);
        e.attestations.insert((CI.into(), GOOD.into()), Check::Unknown("GET note: HTTP 403".into()));
        assert_eq!(run(&w, &enforcing_policy(&[]), &e).serving[0].verdict, ServingVerdict::Unknown);
        let silent = Workload { traffic: None, ..workload(Kind::Service, "web") };
        assert!(run(&silent, &enforcing_policy(&[]), &e).unknown.unwrap().contains("names no traffic targets"));
    }

    #[test]
    fn jobs_are_unknown_when_something_would_need_checking() {
        let job = workload(Kind::Job, "etl");
        assert_eq!(
            run(&job, &enforcing_policy(&[]), &Evidence::default()).unknown.as_deref(),
            Some(JOB_DIGEST_UNKNOWN)
        );
        let allow = Policy { evaluation_mode: "ALWAYS_ALLOW".into(), ..enforcing_policy(&[]) };
        assert_eq!(run(&job, &allow, &Evidence::default()).unknown, None);
        let exempting = enforcing_policy(&["us-docker.pkg.dev/p/app/**"]);
        assert_eq!(run(&job, &exempting, &Evidence::default()).unknown, None, "an exempt image needs no check");
    }

    #[test]
    fn the_plan_reads_only_what_the_policy_needs() {
        let web = Workload {
            traffic: Some(vec![target("web-1", 100, None), target("web-0", 0, None)]),
            ..workload(Kind::Service, "web")
        };
        let inv = inventory(Observed::Seen(enforcing_policy(&[])), vec![web.clone()]);
        assert_eq!(plan(&inv).revisions, BTreeSet::from([(REGION.to_string(), "web-1".to_string())]));
        let allow = Policy { evaluation_mode: "ALWAYS_ALLOW".into(), ..enforcing_policy(&[]) };
        assert!(plan(&inventory(Observed::Seen(allow), vec![web])).revisions.is_empty());
        let policy = enforcing_policy(&["us-docker.pkg.dev/p/app/web@*"]);
        let images = [GOOD.to_string(), "gcr.io/x/y@sha256:33".to_string()];
        let needed = attestations_needed(&policy, &images);
        assert_eq!(needed.len(), 1, "{needed:?}");
        assert_eq!(needed.first().unwrap().0, CI);
    }
}
