//! One audit cycle: each project is evaluated as soon as it is collected (collection hands
//! every inventory to the evaluator and drops it), so the two meet only here.

use std::time::{Duration, Instant};

use crate::collect::Collector;
use crate::config::Scope;
use crate::evaluate::{ProjectVerdict, Rules, evaluate_project};
use crate::inventory::ProjectInventory;

#[derive(Debug, Clone)]
pub struct AuditOutcome {
    pub projects: Vec<ProjectVerdict>,
    pub discovery_error: Option<String>,
    pub duration: Duration,
}

pub async fn run_cycle(source: &Collector, rules: &Rules, scope: &Scope, concurrency: usize) -> AuditOutcome {
    let started = Instant::now();
    let collected = source.collect(scope, concurrency, |inventory| evaluate_project(&inventory, rules)).await;
    AuditOutcome {
        projects: collected.projects,
        discovery_error: collected.discovery_error,
        duration: started.elapsed(),
    }
}

/// A cycle that also keeps what it read: event mode re-evaluates a project from its
/// last-known inventory when one of its workloads changes. (Otherwise inventories are
/// dropped as soon as they are evaluated: they are most of a cycle's memory.)
pub async fn run_cycle_keeping_inventories(
    source: &Collector,
    rules: &Rules,
    scope: &Scope,
    concurrency: usize,
) -> (AuditOutcome, Vec<ProjectInventory>) {
    let started = Instant::now();
    let collected =
        source.collect(scope, concurrency, |inventory| (evaluate_project(&inventory, rules), inventory)).await;
    let (projects, inventories) = collected.projects.into_iter().unzip();
    let outcome = AuditOutcome { projects, discovery_error: collected.discovery_error, duration: started.elapsed() };
    (outcome, inventories)
}
