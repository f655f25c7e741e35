//! One audit cycle: each project is evaluated as soon as it is collected (collection hands
//! every inventory to the evaluator and drops it), so the two meet only here.

use std::time::{Duration, Instant};

use crate::collect::Collector;
use crate::config::Scope;
use crate::evaluate::{ProjectVerdict, Rules, evaluate_project};

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
