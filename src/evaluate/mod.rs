//! Inventory + rules -> verdicts. Pure: no I/O, no clock.

pub mod allowlist;
mod remediation;
pub mod validation;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::inventory::{
    Api, BinauthzSetting, Evidence, FunctionOrigin, Kind, Observed, Policy, ProjectInventory, Workload,
};
use crate::wire::wire_enum;
use validation::ServingRevision;

/// Operator choices that change what counts as compliant (`[rules]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Named platform policies accepted in place of the project default.
    pub accepted_policies: Vec<String>,
    pub allow_breakglass: bool,
}

wire_enum! {
    /// Why a workload is not protected. The names are a contract (metrics, JSON, config).
    pub enum Violation {
        BinauthzDisabled = "binauthz_disabled",
        NonDefaultPolicy = "non_default_policy",
        Breakglass = "breakglass",
        AllowlistMissing = "allowlist_missing",
        Gen1Function = "gen1_function",
        ExemptImage = "exempt_image",
        /// A revision that serves (traffic, or a tag) runs an image without a valid
        /// attestation from every attestor the policy requires today.
        UnattestedRevision = "unattested_revision",
        /// The policy's default rule is ALWAYS_DENY, and a revision still serves an image the
        /// allowlist does not exempt.
        DeniedRevisionServing = "denied_revision_serving",
    }
}

wire_enum! {
    /// Something wrong with a project's policy as a whole.
    pub enum Finding {
        /// The default rule is ALWAYS_ALLOW: `--binary-authorization default` enforces nothing.
        PolicyAlwaysAllow = "policy_always_allow",
        /// The default rule only logs (DRYRUN_AUDIT_LOG_ONLY).
        PolicyDryRun = "policy_dry_run",
        /// An allowlist pattern exempts more than one repository.
        AllowlistTooBroad = "allowlist_too_broad",
        /// The Binary Authorization API is not enabled in the project.
        PolicyApiDisabled = "policy_api_disabled",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compliance {
    Compliant,
    NonCompliant,
    /// Something needed to decide could not be read; never shown as compliant.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceVerdict {
    pub location: String,
    pub kind: Kind,
    pub name: String,
    /// A function deployed through the Cloud Run Admin API is a service that is also a function.
    pub is_function: bool,
    pub compliance: Compliance,
    pub violations: Vec<Violation>,
    pub unknown_reason: Option<String>,
    pub image: Option<String>,
    pub last_modifier: Option<String>,
    /// What to paste into a shell, exactly as printed; `None` when no safe command exists.
    pub remediation: Option<String>,
    /// Why the fix is what it is, or what to do where no command is safe.
    pub remediation_note: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// When the source last saw the resource change (Asset Inventory); `None` for live reads.
    pub data_updated_at: Option<String>,
    /// What serves now and what the policy today says of it; `None` unless `[validation]` is on.
    pub serving: Option<Vec<ServingRevision>>,
}

/// How the policy's allowlist covers a build repository that functions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowlistStatus {
    /// A pattern exempts everything in the repository (`REPO/**`, as Google documents).
    Present,
    /// Only `REPO/*`: images directly in the repository, no nested path. Not the documented
    /// pattern, so a function deploy may still be refused.
    NotDocumentedPattern,
    Missing,
}

/// A build repository some function needs exempted, and whether the policy exempts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AllowlistEntry {
    pub location: String,
    pub repository: String,
    /// `status == Present` (the `binauthz_policy_allowlist_entry_present` value).
    pub present: bool,
    pub status: AllowlistStatus,
}

impl AllowlistEntry {
    fn judge(location: &str, repository: &str, patterns: &[String]) -> AllowlistEntry {
        let status = if allowlist::repository_exempted(patterns, repository) {
            AllowlistStatus::Present
        } else if patterns.iter().any(|p| allowlist::exempts_top_level_only(p, repository)) {
            AllowlistStatus::NotDocumentedPattern
        } else {
            AllowlistStatus::Missing
        };
        AllowlistEntry {
            location: location.to_owned(),
            repository: repository.to_owned(),
            present: status == AllowlistStatus::Present,
            status,
        }
    }

    /// The pattern Google documents for this repository.
    pub fn documented_pattern(&self) -> String {
        format!("{}/**", self.repository)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectVerdict {
    pub project: String,
    /// Everything in scope was read.
    pub complete: bool,
    pub error: Option<String>,
    pub findings: Vec<Finding>,
    pub policy: Option<Policy>,
    pub disabled_apis: Vec<Api>,
    pub allowlist: Vec<AllowlistEntry>,
    pub resources: Vec<ResourceVerdict>,
    /// `None` unless `[validation]` is on.
    pub validation: Option<ValidationStatus>,
}

/// Whether continuous validation read everything it needed for a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationStatus {
    pub complete: bool,
    /// The first read that failed.
    pub error: Option<String>,
}

/// What the evaluator knows about the project's policy.
#[derive(Clone, Copy)]
enum PolicyView<'a> {
    Known(&'a Policy),
    /// The Binary Authorization API is disabled: no policy exists, nothing is enforced.
    Absent,
    Unreadable,
}

pub fn evaluate_project(inventory: &ProjectInventory, rules: &Rules) -> ProjectVerdict {
    let policy = match &inventory.policy {
        Observed::Seen(p) => PolicyView::Known(p),
        Observed::ApiDisabled => PolicyView::Absent,
        Observed::Failed(_) => PolicyView::Unreadable,
    };
    let ctx = Context::new(inventory, rules, policy);
    let allowlist = allowlist_entries(&ctx, &inventory.workloads);

    let mut resources: Vec<ResourceVerdict> = inventory
        .workloads
        .iter()
        .filter(|w| !ctx.services.is_backing(w))
        .map(|w| ctx.evaluate(w, &allowlist))
        .collect();
    resources.sort_by(|a, b| (a.kind, &a.location, &a.name).cmp(&(b.kind, &b.location, &b.name)));

    let mut disabled_apis: BTreeSet<Api> =
        inventory.listings.iter().filter(|(_, o)| *o == Observed::ApiDisabled).map(|(k, _)| k.api()).collect();
    if matches!(policy, PolicyView::Absent) {
        disabled_apis.insert(Api::Binaryauthorization);
    }

    ProjectVerdict {
        project: inventory.project.clone(),
        complete: inventory.first_failure().is_none(),
        error: inventory.first_failure().map(str::to_owned),
        findings: project_findings(policy),
        policy: inventory.policy.seen().cloned(),
        disabled_apis: disabled_apis.into_iter().collect(),
        allowlist,
        resources,
        validation: inventory
            .validation
            .as_ref()
            .map(|e| ValidationStatus { complete: e.failure.is_none(), error: e.failure.clone() }),
    }
}

fn project_findings(policy: PolicyView<'_>) -> Vec<Finding> {
    match policy {
        PolicyView::Known(p) => {
            let mut findings = Vec::new();
            if p.evaluation_mode == "ALWAYS_ALLOW" {
                findings.push(Finding::PolicyAlwaysAllow);
            }
            if p.enforcement_mode == "DRYRUN_AUDIT_LOG_ONLY" {
                findings.push(Finding::PolicyDryRun);
            }
            if p.admission_whitelist_patterns.iter().any(|pat| allowlist::exempts_more_than_one_repository(pat)) {
                findings.push(Finding::AllowlistTooBroad);
            }
            findings
        }
        PolicyView::Absent => vec![Finding::PolicyApiDisabled],
        PolicyView::Unreadable => Vec::new(),
    }
}

/// The build repositories the project's functions need exempted. 1st gen functions never
/// need one (they do not run on Cloud Run), nor do the Run services behind gen2 functions
/// (their function needs the entry).
fn allowlist_entries(ctx: &Context<'_>, workloads: &[Workload]) -> Vec<AllowlistEntry> {
    let patterns: &[String] = match ctx.policy {
        PolicyView::Known(p) => &p.admission_whitelist_patterns,
        PolicyView::Absent => &[],
        PolicyView::Unreadable => return Vec::new(),
    };
    let needed: BTreeSet<(&str, &str)> = workloads
        .iter()
        .filter(|w| !ctx.services.is_backing(w))
        .filter_map(|w| match &w.function {
            Some(origin) if !origin.is_gen1() => Some((w.location.as_str(), origin.build_repository())),
            _ => None,
        })
        .collect();
    needed.into_iter().map(|(location, repository)| AllowlistEntry::judge(location, repository, patterns)).collect()
}

/// A project's Run services by (location, name), and which of them gen2 functions run on:
/// a function is judged, and validated, through its service, which is not reported on its own.
pub(crate) struct RunServices<'a> {
    pub by_name: BTreeMap<(&'a str, &'a str), &'a Workload>,
    backing: BTreeSet<(&'a str, &'a str)>,
}

impl<'a> RunServices<'a> {
    pub fn of(inventory: &'a ProjectInventory) -> Self {
        let workloads = &inventory.workloads;
        RunServices {
            by_name: workloads
                .iter()
                .filter(|w| w.kind == Kind::Service)
                .map(|w| ((w.location.as_str(), w.name.as_str()), w))
                .collect(),
            backing: workloads
                .iter()
                .filter_map(|w| match &w.function {
                    Some(FunctionOrigin::FunctionsApi { backing_service: Some((l, n)), .. }) => {
                        Some((l.as_str(), n.as_str()))
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// A Run service a gen2 function runs on.
    pub fn is_backing(&self, w: &Workload) -> bool {
        w.kind == Kind::Service
            && (w.managed_by_functions || self.backing.contains(&(w.location.as_str(), w.name.as_str())))
    }
}

struct Context<'a> {
    rules: &'a Rules,
    policy: PolicyView<'a>,
    services: RunServices<'a>,
    services_listing: Option<&'a Observed<()>>,
    evidence: Option<&'a Evidence>,
}

impl<'a> Context<'a> {
    fn new(inventory: &'a ProjectInventory, rules: &'a Rules, policy: PolicyView<'a>) -> Self {
        Context {
            rules,
            policy,
            services: RunServices::of(inventory),
            services_listing: inventory.listing(Kind::Service),
            evidence: inventory.validation.as_ref(),
        }
    }

    fn evaluate(&self, w: &Workload, allowlist: &[AllowlistEntry]) -> ResourceVerdict {
        let mut violations = BTreeSet::new();
        let mut unknown = None;
        let mut fix = remediation::Context::default();

        if w.function.as_ref().is_some_and(FunctionOrigin::is_gen1) {
            violations.insert(Violation::Gen1Function);
            // The upgraded function will build into gcf-artifacts: its deploy needs the entry.
            if let (PolicyView::Known(p), Some(origin)) = (self.policy, &w.function) {
                fix.allowlist = Some(AllowlistEntry::judge(
                    &w.location,
                    origin.build_repository(),
                    &p.admission_whitelist_patterns,
                ))
                .filter(|e| !e.present);
            }
        } else {
            self.check_setting(w.binauthz.as_ref(), &mut violations);
            if let Some(FunctionOrigin::FunctionsApi { backing_service: Some((l, n)), .. }) = &w.function {
                match self.services.by_name.get(&(l.as_str(), n.as_str())) {
                    Some(service) => self.check_setting(service.binauthz.as_ref(), &mut violations),
                    None if matches!(self.services_listing, Some(Observed::Failed(_))) => {
                        unknown = Some(format!("backing Cloud Run service {n} could not be listed"));
                    }
                    // Not in scope (region or kind) or already gone: the function's own setting decides.
                    None => {}
                }
            }
            match (self.policy, &w.function) {
                (PolicyView::Known(_), Some(origin)) => {
                    let entry = allowlist
                        .iter()
                        .find(|e| e.location == w.location && e.repository == origin.build_repository());
                    if let Some(entry) = entry.filter(|e| !e.present) {
                        violations.insert(Violation::AllowlistMissing);
                        fix.allowlist = Some(entry.clone());
                    }
                }
                (PolicyView::Known(p), None) => {
                    fix.exempted_by = exempting_patterns(p, w, allowlist);
                    if !fix.exempted_by.is_empty() {
                        violations.insert(Violation::ExemptImage);
                    }
                }
                (PolicyView::Unreadable, _) => {
                    unknown.get_or_insert_with(|| "the project's Binary Authorization policy could not be read".into());
                }
                (PolicyView::Absent, _) => {}
            }
        }
        let serving = self.validate(w, &mut violations, &mut unknown, &mut fix);

        let violations: Vec<Violation> = violations.into_iter().collect();
        let compliance = if !violations.is_empty() {
            Compliance::NonCompliant
        } else if unknown.is_some() {
            Compliance::Unknown
        } else {
            Compliance::Compliant
        };
        let remediation = remediation::for_violations(w, &violations, &fix);
        ResourceVerdict {
            location: w.location.clone(),
            kind: w.kind,
            name: w.name.clone(),
            is_function: w.function.is_some(),
            compliance,
            remediation: remediation.command,
            remediation_note: remediation.note,
            violations,
            unknown_reason: if compliance == Compliance::Unknown { unknown } else { None },
            image: w.images.first().cloned(),
            last_modifier: w.last_modifier.clone(),
            labels: w.labels.clone(),
            data_updated_at: w.data_updated_at.clone(),
            serving,
        }
    }

    /// Continuous validation, when on: what serves must pass the policy today. A project
    /// without a Binary Authorization policy (API disabled) has nothing to check.
    fn validate(
        &self,
        w: &Workload,
        violations: &mut BTreeSet<Violation>,
        unknown: &mut Option<String>,
        fix: &mut remediation::Context,
    ) -> Option<Vec<ServingRevision>> {
        let evidence = self.evidence?;
        let PolicyView::Known(policy) = self.policy else { return Some(Vec::new()) };
        let services_read = self.services_listing.is_some();
        let validated = validation::validate(w, policy, evidence, &self.services.by_name, services_read);
        violations.extend(validated.violation);
        if unknown.is_none() {
            *unknown = validated.unknown.map(|why| format!("continuous validation: {why}"));
        }
        fix.serving = validated.fix;
        Some(validated.serving)
    }

    fn check_setting(&self, setting: Option<&BinauthzSetting>, violations: &mut BTreeSet<Violation>) {
        let Some(setting) = setting else {
            violations.insert(Violation::BinauthzDisabled);
            return;
        };
        match &setting.policy {
            Some(policy) if !self.rules.accepted_policies.iter().any(|p| p == policy) => {
                violations.insert(Violation::NonDefaultPolicy);
            }
            Some(_) => {}
            None if !setting.use_default => {
                violations.insert(Violation::BinauthzDisabled);
            }
            None => {}
        }
        let breakglass = setting.breakglass_justification.as_deref().is_some_and(|j| !j.trim().is_empty());
        if breakglass && !self.rules.allow_breakglass {
            violations.insert(Violation::Breakglass);
        }
    }
}

/// The patterns that exempt one of `w`'s images, each with whether functions need it: it
/// exempts a repository a function of the project builds into, or it is one of the entries
/// Google documents for functions (`gcf-artifacts/**`, `cloud-run-source-deploy/**`), kept for
/// the next function deploy even when none exists yet.
fn exempting_patterns(policy: &Policy, w: &Workload, allowlist: &[AllowlistEntry]) -> Vec<remediation::Exemption> {
    policy
        .admission_whitelist_patterns
        .iter()
        .filter(|pattern| w.images.iter().any(|image| allowlist::matches(pattern, image)))
        .map(|pattern| remediation::Exemption {
            pattern: pattern.clone(),
            needed_by_functions: allowlist.iter().any(|e| allowlist::exempts_repository(pattern, &e.repository))
                || allowlist::is_documented_function_pattern(pattern),
        })
        .collect()
}

#[cfg(test)]
mod tests;
