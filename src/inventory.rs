//! What was seen: plain data, produced by `collect`, consumed by `evaluate`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attest::Check;
use crate::wire::wire_enum;

wire_enum! {
    /// The kinds of workload that Binary Authorization can (or should) protect on Cloud Run.
    pub enum Kind {
        Service = "service",
        Job = "job",
        WorkerPool = "worker_pool",
        Function = "function",
    }
}

impl Kind {
    /// The Google API that lists this kind.
    pub fn api(self) -> Api {
        match self {
            Kind::Function => Api::Functions,
            _ => Api::Run,
        }
    }
}

wire_enum! {
    /// The Google APIs the auditor reads, plus `Token` for the OAuth token endpoint: the `api`
    /// label of request metrics.
    pub enum Api {
        Run = "run",
        Functions = "functions",
        Binaryauthorization = "binaryauthorization",
        Resourcemanager = "resourcemanager",
        Asset = "asset",
        Pubsub = "pubsub",
        Containeranalysis = "containeranalysis",
        Token = "token",
    }
}

/// The outcome of trying to read one thing from Google.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed<T> {
    Seen(T),
    /// The API is not enabled in the project (403 `SERVICE_DISABLED`): nothing of this kind
    /// can exist there, which is a fact, not an error.
    ApiDisabled,
    /// Could not be read this time; the message names the endpoint and the cause.
    Failed(String),
}

impl<T> Observed<T> {
    pub fn seen(&self) -> Option<&T> {
        match self {
            Observed::Seen(t) => Some(t),
            _ => None,
        }
    }

    pub fn failure(&self) -> Option<&str> {
        match self {
            Observed::Failed(msg) => Some(msg),
            _ => None,
        }
    }
}

/// Why a listing could not be taken: the error side of reading a kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Unlisted {
    /// The API is not enabled in the project (403 `SERVICE_DISABLED`).
    ApiDisabled,
    /// The message names the endpoint (or file) and the cause.
    Failed(String),
}

impl<T> From<Unlisted> for Observed<T> {
    fn from(u: Unlisted) -> Observed<T> {
        match u {
            Unlisted::ApiDisabled => Observed::ApiDisabled,
            Unlisted::Failed(why) => Observed::Failed(why),
        }
    }
}

/// How a workload is configured for Binary Authorization, in Run v2 terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinauthzSetting {
    /// Evaluated against the project's policy (`--binary-authorization default`).
    pub use_default: bool,
    /// A named platform policy, e.g. `projects/X/platforms/cloudRun/policies/NAME`.
    pub policy: Option<String>,
    pub breakglass_justification: Option<String>,
}

/// A Cloud Functions function's generation: only 2nd gen functions run on Cloud Run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FunctionGeneration {
    Gen1,
    Gen2,
}

/// Where a function's deployed code can be read again. `gcloud functions deploy` rebuilds
/// from `--source`, and without it from the operator's current directory (unless the function
/// builds from a Cloud Source Repository): a fix may only redeploy a function whose source it
/// can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionSource {
    /// The value for `--source`: `gs://BUCKET/OBJECT.zip`, or a Cloud Source Repositories URL
    /// in the one form gcloud parses (at most one directory after `/paths/`).
    Flag(String),
    /// A 2nd gen function built from a Cloud Source Repository: `gcloud functions deploy`
    /// without `--source` sends no source and keeps it (gcloud 528, seen on the wire).
    KeptWithoutFlag,
    /// Why the deployed source cannot be named (e.g. uploaded from a local directory).
    NotReusable(String),
}

/// Where a function came from decides which repository the policy must exempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionOrigin {
    /// `gcloud functions deploy` (Cloud Functions v2 API, or v1 for 1st gen).
    FunctionsApi {
        generation: FunctionGeneration,
        /// `HOST/PROJECT/REPO` the function's image is built into.
        build_repository: String,
        /// The Run service behind a gen2 function, as (location, short name).
        backing_service: Option<(String, String)>,
        source: FunctionSource,
    },
    /// `gcloud run deploy --function` (Cloud Run Admin API); listed as a service.
    RunAdmin { build_repository: String },
}

impl FunctionOrigin {
    pub fn build_repository(&self) -> &str {
        match self {
            FunctionOrigin::FunctionsApi { build_repository, .. } => build_repository,
            FunctionOrigin::RunAdmin { build_repository } => build_repository,
        }
    }

    pub fn is_gen1(&self) -> bool {
        matches!(self, FunctionOrigin::FunctionsApi { generation: FunctionGeneration::Gen1, .. })
    }
}

/// One entry of what a service (or worker pool) routes to, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficTarget {
    /// The revision's short name; empty when the status names none.
    pub revision: String,
    /// Share of the traffic (worker pools: of the instances).
    pub percent: u32,
    /// A tag gives the revision its own URL: it serves even at 0 %.
    pub tag: Option<String>,
}

/// One deployed workload, whatever API it was listed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub project: String,
    pub location: String,
    pub kind: Kind,
    /// Short name (the last segment of the resource name).
    pub name: String,
    /// `None` when the resource has no Binary Authorization setting at all.
    pub binauthz: Option<BinauthzSetting>,
    pub images: Vec<String>,
    pub last_modifier: Option<String>,
    pub function: Option<FunctionOrigin>,
    /// A Run service that Cloud Functions manages for a gen2 function (label
    /// `goog-managed-by: cloudfunctions`); reported through its function, not on its own.
    pub managed_by_functions: bool,
    /// The resource's user labels (`team`, `owner`, `deployment-tool`, ...).
    pub labels: BTreeMap<String, String>,
    /// When the source last saw the resource change: Cloud Asset Inventory's `updateTime`.
    /// `None` for live reads, which are current by construction.
    pub data_updated_at: Option<String>,
    /// What a service or worker pool serves now (its status); `None` for kinds that serve
    /// nothing, or when the source did not say.
    pub traffic: Option<Vec<TrafficTarget>>,
}

impl Workload {
    /// Deployed by the Firebase CLI: a `gcloud` redeploy would be undone by the next
    /// `firebase deploy`.
    pub fn is_firebase_managed(&self) -> bool {
        self.labels.get("deployment-tool").is_some_and(|t| t == "cli-firebase")
    }
}

/// The project's Binary Authorization policy, reduced to what decides compliance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub admission_whitelist_patterns: Vec<String>,
    pub evaluation_mode: String,
    pub enforcement_mode: String,
    pub global_policy_evaluation_mode: String,
    /// The attestors the default rule requires (REQUIRE_ATTESTATION).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_attestations_by: Vec<String>,
}

/// What continuous validation read for one project: the images of its serving revisions and
/// what the attestations of those images came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// By (location, revision): its images by digest (`REPO@sha256:...`), or why they are
    /// not known.
    pub revisions: BTreeMap<(String, String), Result<Vec<String>, String>>,
    /// By (attestor, image).
    pub attestations: BTreeMap<(String, String), Check>,
    /// The Cloud KMS key versions of each attestor read (the printed fix signs with them).
    pub kms_keys: BTreeMap<String, Vec<String>>,
    /// The first read that failed: validation of this project is not complete.
    pub failure: Option<String>,
}

/// Everything collected about one project in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectInventory {
    pub project: String,
    pub policy: Observed<Policy>,
    /// One entry per kind in scope: was the listing complete?
    pub listings: Vec<(Kind, Observed<()>)>,
    pub workloads: Vec<Workload>,
    /// `None` unless `[validation]` is on.
    pub validation: Option<Evidence>,
}

impl ProjectInventory {
    pub fn new(project: impl Into<String>, policy: Observed<Policy>) -> Self {
        ProjectInventory {
            project: project.into(),
            policy,
            listings: Vec::new(),
            workloads: Vec::new(),
            validation: None,
        }
    }

    /// Records a listing; repeated listings of one kind (one per region) fold into one
    /// outcome: any failure wins over success, success wins over "API disabled".
    pub fn record_listing(&mut self, kind: Kind, outcome: Observed<()>) {
        match self.listings.iter_mut().find(|(k, _)| *k == kind) {
            None => self.listings.push((kind, outcome)),
            Some((_, existing)) => {
                let replace = match (&*existing, &outcome) {
                    (Observed::Failed(_), _) => false,
                    (_, Observed::Failed(_)) => true,
                    (Observed::ApiDisabled, Observed::Seen(())) => true,
                    _ => false,
                };
                if replace {
                    *existing = outcome;
                }
            }
        }
    }

    /// Records one listing of `kind` and what it found.
    pub fn record(&mut self, kind: Kind, listing: Result<Vec<Workload>, Unlisted>) {
        match listing {
            Ok(workloads) => {
                self.record_listing(kind, Observed::Seen(()));
                self.workloads.extend(workloads);
            }
            Err(unlisted) => self.record_listing(kind, unlisted.into()),
        }
    }

    pub fn listing(&self, kind: Kind) -> Option<&Observed<()>> {
        self.listings.iter().find(|(k, _)| *k == kind).map(|(_, o)| o)
    }

    /// Why this project's audit is incomplete, if it is: the first failure.
    pub fn first_failure(&self) -> Option<&str> {
        self.policy.failure().or_else(|| self.listings.iter().find_map(|(_, o)| o.failure()))
    }
}

/// Splits `projects/P/locations/L/services/S` into (L, S).
pub fn location_and_name(resource_name: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = resource_name.split('/').collect();
    match parts.as_slice() {
        ["projects", _, "locations", location, _, name] => Some((location, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_region_makes_the_whole_kind_failed_whatever_the_order() {
        let mut inv = ProjectInventory::new("p", Observed::ApiDisabled);
        inv.record_listing(Kind::Service, Observed::Seen(()));
        inv.record_listing(Kind::Service, Observed::Failed("boom".into()));
        inv.record_listing(Kind::Service, Observed::Seen(()));
        assert_eq!(inv.listing(Kind::Service), Some(&Observed::Failed("boom".into())));
        assert_eq!(inv.first_failure(), Some("boom"));
    }

    #[test]
    fn resource_names_split_into_location_and_short_name() {
        assert_eq!(location_and_name("projects/p/locations/europe-west1/services/api"), Some(("europe-west1", "api")));
        assert_eq!(location_and_name("api"), None);
    }
}
