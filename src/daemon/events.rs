//! Event mode inside the daemon: the listener's batches become re-reads, the re-reads fold
//! into each project's last-known inventory, and the projects they touched are evaluated and
//! published at once. A cycle that runs meanwhile gets the same re-reads laid over what it
//! read, so its older view never undoes a newer event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::runtime::EventSource;
use crate::audit::AuditOutcome;
use crate::clock::Clock;
use crate::collect::reread::Reader;
use crate::collect::validation::Validator;
use crate::config::Scope;
use crate::evaluate::{ProjectVerdict, Rules, evaluate_project};
use crate::events::EventMetrics;
use crate::events::listener::{Batch, Listener};
use crate::events::message::{Ignored, Trigger};
use crate::events::pubsub::Subscription;
use crate::events::reaudit::{self, Applied, InScope, Outcome, ProjectIds, Reread};
use crate::inventory::{Policy, ProjectInventory};
use crate::state::Published;

/// A batch and what reading its triggers again found.
pub type Reaudited = (Batch, Vec<(Trigger, Outcome)>);

pub struct EventMode {
    listener: Listener,
    reader: Arc<Reader>,
    validator: Option<Arc<Validator>>,
    ids: Arc<ProjectIds>,
    metrics: EventMetrics,
    /// Each audited project's inventory as the last cycle read it, with every re-read since
    /// folded in. Empty until the first cycle: events wait for it.
    inventories: BTreeMap<String, ProjectInventory>,
    /// Re-reads applied while a cycle runs (`None` when none runs).
    since_cycle_start: Option<Vec<Reread>>,
}

/// What a re-audit changed, for the daemon to publish, then acknowledge.
pub struct Settled {
    /// Projects to publish again.
    pub verdicts: Vec<ProjectVerdict>,
    /// Messages whose re-read is done (or that were out of scope).
    pub ack_ids: Vec<String>,
    /// When the changes they announced happened (for the lag histogram, once published).
    pub happened_at: Vec<f64>,
}

impl EventMode {
    /// Starts pulling `source`. After a reload, `previous` hands over what the old
    /// configuration's event mode knew, so that events need not wait for the next cycle.
    pub fn start(
        source: &EventSource,
        metrics: EventMetrics,
        clock: impl Clock,
        previous: Option<EventMode>,
    ) -> EventMode {
        let (inventories, since_cycle_start, ids) = match previous {
            Some(old) => (old.inventories, old.since_cycle_start, old.ids),
            None => (BTreeMap::new(), None, Arc::new(ProjectIds::default())),
        };
        EventMode {
            listener: Listener::start(Arc::clone(&source.subscription), source.feed, metrics.clone(), clock),
            reader: Arc::clone(&source.reader),
            validator: source.validator.clone(),
            ids,
            metrics,
            inventories,
            since_cycle_start,
        }
    }

    /// The next batch, once a first cycle has given events something to apply to.
    pub async fn next_batch(&self) -> Batch {
        if self.inventories.is_empty() {
            return std::future::pending().await;
        }
        self.listener.next().await
    }

    pub fn spawn_reaudit(&self, batch: Batch, scope: &Scope, concurrency: usize) -> JoinHandle<Reaudited> {
        let (reader, ids, scope) = (Arc::clone(&self.reader), Arc::clone(&self.ids), scope.clone());
        let projects: Vec<String> = self.inventories.keys().cloned().collect();
        let validator = self.validator.clone();
        // Only with validation: each project's policy, as the re-reads will be judged by it.
        let policies: BTreeMap<String, Policy> = match validator {
            Some(_) => {
                self.inventories.iter().filter_map(|(p, i)| Some((p.clone(), i.policy.seen()?.clone()))).collect()
            }
            None => BTreeMap::new(),
        };
        tokio::spawn(async move {
            let in_scope = InScope { projects: projects.iter().map(String::as_str).collect(), scope: &scope };
            let triggers = batch.keys().cloned().collect();
            let mut outcomes = reaudit::read_all(&reader, &ids, &in_scope, triggers, concurrency).await;
            if let Some(validator) = validator {
                outcomes = reaudit::validate_all(&validator, policies, outcomes).await;
            }
            (batch, outcomes)
        })
    }

    /// Folds a re-audit into the inventories and says which projects to publish again.
    pub fn settle(&mut self, (batch, outcomes): Reaudited, rules: &Rules) -> Settled {
        let mut touched = BTreeSet::new();
        let mut settled = Settled { verdicts: Vec::new(), ack_ids: Vec::new(), happened_at: Vec::new() };
        for (trigger, outcome) in outcomes {
            let deliveries = batch.get(&trigger).map_or(&[][..], Vec::as_slice);
            match outcome {
                Outcome::OutOfScope => {
                    self.metrics
                        .ignored
                        .with_label_values(&[Ignored::OutOfScope.as_str()])
                        .inc_by(deliveries.len() as u64);
                    tracing::debug!(?trigger, "event outside [scope] ignored");
                }
                Outcome::Failed(error) => {
                    self.metrics.reaudits.with_label_values(&[Applied::Failed.as_str()]).inc();
                    tracing::warn!(?trigger, %error, "cannot read again what an event announced; it will be delivered again");
                    continue;
                }
                Outcome::Read(reads) => {
                    for read in reads {
                        let Some(inventory) = self.inventories.get_mut(read.project()) else { continue };
                        let applied = read.apply(inventory);
                        if read.announced() {
                            self.metrics.reaudits.with_label_values(&[applied.as_str()]).inc();
                        }
                        if applied != Applied::Unchanged {
                            touched.insert(read.project().to_owned());
                        }
                        if let Some(pending) = &mut self.since_cycle_start {
                            pending.push(read);
                        }
                    }
                    settled.happened_at.extend(deliveries.iter().filter_map(|d| d.happened_at));
                }
            }
            settled.ack_ids.extend(deliveries.iter().map(|d| d.ack_id.clone()));
        }
        settled.verdicts = touched.iter().map(|p| evaluate_project(&self.inventories[p], rules)).collect();
        settled
    }

    /// Acknowledges in the background: a failure only means the messages come again, and
    /// their re-read changes nothing the second time.
    pub fn acknowledge(&self, ack_ids: Vec<String>) {
        if ack_ids.is_empty() {
            return;
        }
        let subscription: Arc<Subscription> = Arc::clone(self.listener.subscription());
        tokio::spawn(async move {
            if let Err(e) = subscription.acknowledge(&ack_ids).await {
                tracing::warn!(error = %e, "cannot acknowledge events; they will be delivered again");
            }
        });
    }

    pub fn observe_lag(&self, happened_at: &[f64], published_at: f64) {
        for at in happened_at {
            self.metrics.lag.observe((published_at - at).max(0.0));
        }
    }

    pub fn cycle_started(&mut self) {
        self.since_cycle_start = Some(Vec::new());
    }

    /// Takes a finished cycle's inventories as the new last-known ones, with the re-reads
    /// made while it ran laid over them (and their projects evaluated again), and counts
    /// what the cycle found changed that no event announced.
    pub fn cycle_finished(
        &mut self,
        outcome: &mut AuditOutcome,
        inventories: Vec<ProjectInventory>,
        before: &Published,
        rules: &Rules,
    ) {
        let mut inventories: BTreeMap<String, ProjectInventory> =
            inventories.into_iter().map(|i| (i.project.clone(), i)).collect();
        let mut overlaid = BTreeSet::new();
        for read in self.since_cycle_start.take().unwrap_or_default() {
            if let Some(inventory) = inventories.get_mut(read.project())
                && read.apply(inventory) != Applied::Unchanged
            {
                overlaid.insert(read.project().to_owned());
            }
        }
        let mut unexplained = 0;
        for verdict in &mut outcome.projects {
            if overlaid.contains(&verdict.project) {
                *verdict = evaluate_project(&inventories[&verdict.project], rules);
            }
            // The first cycle has nothing to compare with; events had no chance to announce.
            if !self.inventories.is_empty()
                && let Some(previous) = before.projects.get(&verdict.project)
            {
                unexplained += reaudit::unexplained_changes(&previous.shown, verdict);
            }
        }
        self.metrics.unexplained_changes.inc_by(unexplained as u64);
        if unexplained > 0 {
            tracing::warn!(
                unexplained,
                "the cycle found changes no event announced; is the log sink or subscription broken?"
            );
        }
        self.inventories = inventories;
    }
}
