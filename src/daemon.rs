//! The long-running service: scheduled cycles, HTTP serving, reload on SIGHUP, clean stop on
//! SIGTERM, and systemd readiness/watchdog notifications.

use std::future::pending;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::alertmanager::{PushState, Pusher, plan};
use crate::audit::{AuditOutcome, run_cycle};
use crate::collect::Source;
use crate::config::Config;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::report::Summary;
use crate::server::Endpoint;
use crate::server::web_config::WebConfig;
use crate::signals::{Event, Signals};
use crate::state::Store;
use crate::suppress::Suppressions;

/// How long a stopping daemon waits for open HTTP connections.
const SERVER_DRAIN: Duration = Duration::from_secs(3);

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Everything the daemon runs on, validated as a whole before any of it is used; rebuilt on
/// reload (a running cycle keeps the generation it started with).
pub struct Generation {
    pub config: Config,
    source: Arc<Source>,
    pub web: WebConfig,
    pusher: Option<Arc<Pusher>>,
}

impl Generation {
    pub fn load(path: &Path, metrics: &Metrics) -> Result<Generation, AppError> {
        let config = Config::load(path)?;
        let source = Source::from_config(&config, metrics.client.clone()).map_err(AppError::Setup)?;
        let web = match &config.server.web_config {
            Some(p) => WebConfig::load(p).map_err(AppError::Setup)?,
            None => WebConfig::default(),
        };
        let pusher = config
            .alertmanager
            .clone()
            .map(|am| Pusher::new(am, metrics.alertmanager_notifications.clone()).map(Arc::new))
            .transpose()
            .map_err(AppError::Setup)?;
        Ok(Generation { config, source: Arc::new(source), web, pusher })
    }

    fn spawn_cycle(&self) -> JoinHandle<AuditOutcome> {
        let source = Arc::clone(&self.source);
        let rules = self.config.rules.clone();
        let scope = self.config.scope.clone();
        let concurrency = self.config.gcp.concurrency;
        tokio::spawn(async move { run_cycle(&source, &rules, &scope, concurrency).await })
    }
}

pub async fn run(config_path: &Path) -> Result<(), AppError> {
    let state = Arc::new(Store::default());
    let metrics = Arc::new(Metrics::new());
    let mut current = Generation::load(config_path, &metrics)?;
    record_reload(&metrics, true);
    let mut signals = Signals::new().map_err(AppError::Signals)?;

    let listen = current.config.server.listen;
    let mut endpoint = Endpoint::start(&current.config, &current.web, Arc::clone(&metrics), Arc::clone(&state)).await?;
    tracing::info!(%listen, schedule = %current.config.schedule, config = %config_path.display(), "binauthz-auditor started");
    notify(&[NotifyState::Ready, NotifyState::Status("waiting for the first audit cycle")]);

    let mut push_state = PushState::default();
    let mut watchdog = watchdog_interval();
    let mut cycle: Option<JoinHandle<AuditOutcome>> = current.config.run_on_start.then(|| current.spawn_cycle());
    let mut last_fire = Utc::now();
    loop {
        let next_fire = current.config.schedule.next_after(last_fire.max(Utc::now()));
        let until_next =
            next_fire.map_or(Duration::from_secs(86_400), |t| (t - Utc::now()).to_std().unwrap_or_default());
        tokio::select! {
            event = signals.next() => match event {
                Event::Shutdown => break,
                Event::Reload => reload(config_path, &metrics, &mut current, &mut endpoint).await,
            },
            finished = finished(&mut cycle) => {
                cycle = None;
                match finished {
                    Ok(outcome) => {
                        publish(&state, &metrics, outcome, &current.config.suppressions);
                        if let Some(pusher) = &current.pusher {
                            // Alerts outlive three missed cycles, then lapse on their own.
                            let hold = cycle_interval(&current.config.schedule) * 3;
                            let generator_url = endpoint.url("/report");
                            let (alerts, next) = plan(&state.load(), &push_state, Utc::now(), hold, &generator_url);
                            push_state = next;
                            pusher.push(alerts);
                        }
                    }
                    Err(e) => {
                        metrics.cycles.with_label_values(&["failed"]).inc();
                        tracing::error!(error = %e, "audit cycle crashed; keeping the last published results");
                    }
                }
            }
            _ = tokio::time::sleep(until_next) => {
                last_fire = next_fire.unwrap_or_else(Utc::now);
                if cycle.is_some() {
                    metrics.cycles.with_label_values(&["skipped"]).inc();
                    tracing::warn!("the previous audit cycle is still running; skipping this one");
                } else {
                    cycle = Some(current.spawn_cycle());
                }
            }
            _ = tick(&mut watchdog) => notify(&[NotifyState::Watchdog]),
            // The server only ends by itself on an error: exit, so that systemd restarts us.
            why = endpoint.failed() => return Err(AppError::Serve(why)),
        }
    }

    tracing::info!("stopping");
    notify(&[NotifyState::Stopping]);
    if let Some(running) = cycle {
        running.abort();
    }
    endpoint.shutdown(SERVER_DRAIN).await;
    Ok(())
}

/// The schedule's period (the gap between its next two firings), at least a second.
fn cycle_interval(schedule: &crate::schedule::Schedule) -> Duration {
    let first = schedule.next_after(Utc::now());
    let second = first.and_then(|t| schedule.next_after(t));
    match (first, second) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default().max(Duration::from_secs(1)),
        _ => Duration::from_secs(3600),
    }
}

async fn finished(cycle: &mut Option<JoinHandle<AuditOutcome>>) -> Result<AuditOutcome, tokio::task::JoinError> {
    match cycle {
        Some(handle) => handle.await,
        None => pending().await,
    }
}

fn publish(state: &Store, metrics: &Metrics, outcome: AuditOutcome, suppressions: &Suppressions) {
    let published = state.load().merge(outcome, unix_now(), suppressions);
    // Counts only: a full report would copy every workload on each cycle.
    let s = Summary::of(&published);
    let result = if published.complete() {
        "success"
    } else if published.discovery_error.is_some() && published.projects.is_empty() {
        "failed"
    } else {
        "incomplete"
    };
    tracing::info!(
        result,
        projects = s.projects,
        projects_incomplete = s.projects_incomplete,
        resources = s.resources,
        non_compliant = s.non_compliant,
        unknown = s.unknown,
        findings = s.findings,
        duration_s = published.last_duration.unwrap_or_default(),
        "audit cycle finished"
    );
    for (project, p) in published.projects.iter().filter(|(_, p)| !p.complete) {
        tracing::warn!(%project, error = p.error.as_deref().unwrap_or(""), "project audit incomplete");
    }
    if let Some(e) = &published.discovery_error {
        tracing::warn!(error = %e, "project discovery failed");
    }
    let status = format!(
        "last cycle {result}: {} resources, {} non-compliant, {} unknown, {}/{} projects complete",
        s.resources,
        s.non_compliant,
        s.unknown,
        s.projects - s.projects_incomplete,
        s.projects
    );
    state.store(published);
    // Counted once published: whoever sees the count go up can read the new results.
    metrics.cycles.with_label_values(&[result]).inc();
    notify(&[NotifyState::Status(&status)]);
}

async fn reload(path: &Path, metrics: &Metrics, current: &mut Generation, endpoint: &mut Endpoint) {
    // The endpoint serves the new listener settings (address, TLS, users, limits) or the
    // whole reload fails: it never reports success while serving the old ones.
    let loaded = match Generation::load(path, metrics) {
        Ok(next) => endpoint.apply(&next.config, &next.web, SERVER_DRAIN).await.map(|()| next).map_err(AppError::Setup),
        Err(e) => Err(e),
    };
    match loaded {
        Ok(next) => {
            *current = next;
            record_reload(metrics, true);
            tracing::info!(config = %path.display(), "configuration reloaded");
        }
        Err(e) => {
            record_reload(metrics, false);
            tracing::error!(error = %e, "configuration reload failed; keeping the previous configuration");
        }
    }
}

fn record_reload(metrics: &Metrics, ok: bool) {
    metrics.config_reload_successful.set(i64::from(ok));
    if ok {
        metrics.config_reload_timestamp.set(unix_now() as i64);
    }
}

fn notify(states: &[NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    let _ = sd_notify::notify(states);
}

/// Pings at half the watchdog period, when systemd asked for a watchdog.
fn watchdog_interval() -> Option<tokio::time::Interval> {
    sd_notify::watchdog_enabled().map(|period| tokio::time::interval(period / 2))
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => pending().await,
    }
}
