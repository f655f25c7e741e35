//! Continuous validation's reads (`[validation]`): the digests of the revisions that serve,
//! the attestors the policy requires, and the attestations of each serving image. What to
//! read comes from `evaluate::validation::plan`; what it means is decided there too, and in
//! `attest`. This module only reads, and reads as little as it can:
//!
//! - a revision is immutable: its digests are read once (one revisions list per project when
//!   a serving revision is new) and kept while it serves;
//! - in one cycle, each attestor is read once, and each digest is looked up at most once per
//!   attestor's note, however many projects, services and repositories serve it;
//! - an image that passed is not looked up again for `recheck_interval`, unless its
//!   attestor's keys changed (the attestor is read every cycle, so a revoked key shows at
//!   once); what failed is looked up again every cycle.

mod attestations;
mod revisions;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::client::ApiClient;
use crate::config::Endpoints;
use crate::evaluate::validation::{attestations_needed, plan};
use crate::inventory::{Evidence, ProjectInventory};

pub use revisions::RevisionKey;

/// Lives as long as the configuration: its caches span cycles.
pub struct Validator {
    client: Arc<ApiClient>,
    endpoints: Endpoints,
    recheck: Duration,
    revisions: revisions::Cache,
    passed: attestations::Passed,
}

/// One cycle's reads, shared by every project of the cycle.
pub struct Cycle {
    started: Instant,
    attestors: Once<String, attestations::AttestorRead>,
    lookups: Once<(String, String), attestations::Lookup>,
    /// The revisions that served this cycle: the cache keeps these, and only these.
    served: Mutex<Vec<RevisionKey>>,
}

impl Validator {
    pub fn new(client: Arc<ApiClient>, endpoints: Endpoints, recheck: Duration) -> Validator {
        Validator {
            client,
            endpoints,
            recheck,
            revisions: revisions::Cache::default(),
            passed: attestations::Passed::default(),
        }
    }

    pub fn cycle(&self) -> Cycle {
        Cycle {
            started: Instant::now(),
            attestors: Once::default(),
            lookups: Once::default(),
            served: Mutex::new(Vec::new()),
        }
    }

    /// Forgets what no longer serves, and passes older than `recheck_interval`.
    pub fn finish(&self, cycle: Cycle) {
        let served = cycle.served.into_inner().unwrap_or_else(|p| p.into_inner());
        self.revisions.keep_only(&served);
        self.passed.forget_before(cycle.started.checked_sub(self.recheck));
    }

    /// Everything validation needs to judge `inventory`'s serving workloads.
    pub async fn evidence(&self, cycle: &Cycle, inventory: &ProjectInventory) -> Evidence {
        let mut evidence = Evidence::default();
        let wanted = plan(inventory).revisions;
        if wanted.is_empty() {
            return evidence;
        }
        evidence.revisions = self.revisions.read(&self.client, &self.endpoints, &inventory.project, &wanted).await;
        cycle
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(wanted.iter().map(|(location, name)| RevisionKey::new(&inventory.project, location, name)));
        evidence.failure = evidence.revisions.values().find_map(|r| r.as_ref().err()).cloned();
        let Some(policy) = inventory.policy.seen() else { return evidence };
        let images = evidence.revisions.values().filter_map(|r| r.as_ref().ok()).flatten();
        let needed = attestations_needed(policy, images);
        attestations::check(self, cycle, needed, &mut evidence).await;
        evidence
    }
}

/// Values computed once per key, however many callers ask at once.
struct Once<K, V>(Mutex<HashMap<K, Arc<OnceCell<V>>>>);

impl<K, V> Default for Once<K, V> {
    fn default() -> Self {
        Once(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V: Clone> Once<K, V> {
    async fn get_or_init<F: Future<Output = V>>(&self, key: K, init: impl FnOnce() -> F) -> V {
        let cell = Arc::clone(self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default());
        cell.get_or_init(init).await.clone()
    }
}
