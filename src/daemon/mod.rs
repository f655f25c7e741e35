//! The long-running service. [`run`] takes the process's edges (the configuration file, the
//! signals, the schedule's clock, the listening socket) and hands them to [`Daemon::serve`],
//! which only reacts to [`Event`]s: tests drive it in-process with events of their own.
//!
//! One cycle: a tick spawns it (never two at once), it collects and evaluates, and its outcome
//! is published (state.rs), logged, counted and pushed to Alertmanager. In event mode
//! (`[events]`, events.rs) the listener's batches are re-audits spawned the same way, one at a
//! time, and published, pushed and acknowledged as they finish.

mod events;
mod runtime;
mod status;
mod systemd;
mod ticker;

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt, stream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alertmanager::Alerts;
use crate::audit::{AuditOutcome, run_cycle, run_cycle_keeping_inventories};
use crate::clock::{Clock, SystemClock};
use crate::config::ServerOverrides;
use crate::error::AppError;
use crate::events::listener::Batch;
use crate::inventory::ProjectInventory;
use crate::metrics::Metrics;
use crate::schedule::Schedule;
use crate::server::Endpoint;
use crate::signals::Signals;
use crate::state::Store;
use events::{EventMode, Reaudited};

pub use runtime::{Counters, Runtime};
pub use ticker::ticks;

/// How long a stopping daemon waits for open HTTP connections.
const SERVER_DRAIN: Duration = Duration::from_secs(3);

/// What the daemon reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM/SIGINT: stop, cancelling a running cycle.
    Shutdown,
    /// SIGHUP: read the configuration again.
    Reload,
    /// The schedule fired: audit now, unless a cycle is still running.
    Tick,
}

/// Runs the daemon on this process's edges until a signal stops it.
pub async fn run(config_path: &Path, overrides: ServerOverrides) -> Result<(), AppError> {
    let daemon = Daemon::start_overridden(config_path, overrides, SystemClock).await?;
    let signals = Signals::new().map_err(AppError::Signals)?.into_stream();
    let ticks = ticks(daemon.schedule(), SystemClock).map(|_| Event::Tick);
    daemon.serve(stream::select(signals, ticks)).await
}

pub struct Daemon<C: Clock> {
    config_path: PathBuf,
    overrides: ServerOverrides,
    clock: C,
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    runtime: Runtime,
    endpoint: Endpoint,
    alerts: Option<Alerts>,
    schedule: watch::Sender<Schedule>,
    events: Option<EventMode>,
}

/// What a spawned cycle hands back: in event mode, the inventories it read as well.
type CycleResult = (AuditOutcome, Option<Vec<ProjectInventory>>);

impl<C: Clock + Clone> Daemon<C> {
    /// Loads and checks the configuration, binds the listener and starts serving HTTP, then
    /// tells systemd it is ready. Nothing is audited until [`Daemon::serve`].
    pub async fn start(config_path: &Path, clock: C) -> Result<Daemon<C>, AppError> {
        Daemon::start_overridden(config_path, ServerOverrides::default(), clock).await
    }

    /// [`Daemon::start`] with the command line's `[server]` settings over the file's, at
    /// start and at every reload.
    pub async fn start_overridden(
        config_path: &Path,
        overrides: ServerOverrides,
        clock: C,
    ) -> Result<Daemon<C>, AppError> {
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(Store::default());
        let runtime = Runtime::load(config_path, &overrides, &metrics.counters())?;
        record_reload(&metrics, &clock, true);
        let endpoint = Endpoint::start(&runtime.config, &runtime.web, Arc::clone(&metrics), Arc::clone(&store)).await?;
        tracing::info!(
            listen = %endpoint.url(""),
            schedule = %runtime.config.schedule,
            config = %config_path.display(),
            "binauthz-auditor started"
        );
        systemd::ready("waiting for the first audit cycle");
        let (schedule, _) = watch::channel(runtime.config.schedule.clone());
        let events = runtime.events.as_ref().map(|e| EventMode::start(e, metrics.events.clone(), clock.clone(), None));
        Ok(Daemon {
            events,
            config_path: config_path.to_owned(),
            overrides,
            clock,
            alerts: runtime.pusher.clone().map(Alerts::new),
            metrics,
            store,
            runtime,
            endpoint,
            schedule,
        })
    }

    /// `scheme://address/path` of the HTTP endpoint, as clients reach it now.
    pub fn url(&self, path: &str) -> String {
        self.endpoint.url(path)
    }

    /// The schedule in force, following reloads: what the ticker fires on.
    pub fn schedule(&self) -> watch::Receiver<Schedule> {
        self.schedule.subscribe()
    }

    /// Serves until [`Event::Shutdown`] (or the end of `events`), or until the HTTP server
    /// breaks down for good (an error: systemd restarts the daemon).
    pub async fn serve(mut self, events: impl Stream<Item = Event>) -> Result<(), AppError> {
        let mut events = pin!(events);
        let mut watchdog = systemd::Watchdog::from_env();
        let mut cycle: Option<JoinHandle<CycleResult>> = self.runtime.config.run_on_start.then(|| self.spawn_cycle());
        let mut reaudit: Option<JoinHandle<Reaudited>> = None;
        // A reload that turns event mode on while a cycle runs: that cycle keeps no estate for
        // events to apply to, so one more starts when it ends.
        let mut cycle_for_events = false;
        loop {
            tokio::select! {
                event = events.next() => match event.unwrap_or(Event::Shutdown) {
                    Event::Shutdown => break,
                    Event::Reload => {
                        let had_events = self.events.is_some();
                        self.reload().await;
                        // Turned on by this reload, event mode has nothing to apply events to
                        // until a cycle reads the estate: one starts now, not at the next tick
                        // (which may be hours away).
                        if !had_events && self.events.is_some() {
                            match cycle {
                                None => cycle = Some(self.spawn_cycle()),
                                Some(_) => cycle_for_events = true,
                            }
                        }
                    }
                    Event::Tick if cycle.is_some() => {
                        self.metrics.cycles.with_label_values(&["skipped"]).inc();
                        tracing::warn!("the previous audit cycle is still running; skipping this one");
                    }
                    Event::Tick => cycle = Some(self.spawn_cycle()),
                },
                finished = finished(&mut cycle) => {
                    cycle = None;
                    match finished {
                        Ok(result) => self.publish_cycle(result),
                        Err(e) => {
                            self.metrics.cycles.with_label_values(&["failed"]).inc();
                            tracing::error!(error = %e, "audit cycle crashed; keeping the last published results");
                        }
                    }
                    if std::mem::take(&mut cycle_for_events) && self.events.is_some() {
                        cycle = Some(self.spawn_cycle());
                    }
                }
                batch = next_batch(self.events.as_ref(), reaudit.is_none()) => {
                    reaudit = self.events.as_ref().map(|e| {
                        let config = &self.runtime.config;
                        e.spawn_reaudit(batch, &config.scope, config.gcp.concurrency)
                    });
                }
                finished = finished(&mut reaudit) => {
                    reaudit = None;
                    match finished {
                        Ok(reaudited) => self.publish_reaudit(reaudited),
                        Err(e) => tracing::error!(error = %e, "event re-audit crashed; the messages will be delivered again"),
                    }
                }
                () = resend_due(self.alerts.as_ref()) => self.push_alerts(),
                () = watchdog.ping() => {}
                why = self.endpoint.failed() => return Err(AppError::Serve(why)),
            }
        }
        tracing::info!("stopping");
        systemd::stopping();
        for running in [cycle.map(|c| c.abort_handle()), reaudit.map(|r| r.abort_handle())].into_iter().flatten() {
            running.abort();
        }
        self.endpoint.shutdown(SERVER_DRAIN).await;
        Ok(())
    }

    fn spawn_cycle(&mut self) -> JoinHandle<CycleResult> {
        let collector = Arc::clone(&self.runtime.collector);
        let config = &self.runtime.config;
        let (rules, scope, concurrency) = (config.rules.clone(), config.scope.clone(), config.gcp.concurrency);
        match &mut self.events {
            Some(events) => {
                events.cycle_started();
                tokio::spawn(async move {
                    let (outcome, inventories) =
                        run_cycle_keeping_inventories(&collector, &rules, &scope, concurrency).await;
                    (outcome, Some(inventories))
                })
            }
            None => tokio::spawn(async move { (run_cycle(&collector, &rules, &scope, concurrency).await, None) }),
        }
    }

    fn publish_cycle(&mut self, (mut outcome, inventories): CycleResult) {
        let config = &self.runtime.config;
        let before = self.store.load();
        if let (Some(events), Some(inventories)) = (&mut self.events, inventories) {
            events.cycle_finished(&mut outcome, inventories, &before, &config.rules);
        }
        let mut published = before.merge(outcome, self.clock.unix_now(), &config.suppressions);
        published.metrics = config.metrics.clone();
        let status = status::log_cycle(&published);
        let result = status::result(&published);
        self.store.store(published);
        // Counted once published: whoever sees the count go up can read the new results.
        self.metrics.cycles.with_label_values(&[result]).inc();
        systemd::status(&status);
        self.push_alerts();
    }

    /// Publishes what an event's re-reads changed, pushes the alerts that changes, then
    /// acknowledges the messages: a crash before that point only means they come again.
    fn publish_reaudit(&mut self, reaudited: Reaudited) {
        let Some(events) = &mut self.events else { return };
        let config = &self.runtime.config;
        let settled = events.settle(reaudited, &config.rules);
        let now = self.clock.unix_now();
        if !settled.verdicts.is_empty() {
            let projects = settled.verdicts.len();
            let published = self.store.load().with_projects(settled.verdicts, now, &config.suppressions);
            self.store.store(published);
            tracing::debug!(projects, "published what events changed");
        }
        events.observe_lag(&settled.happened_at, now);
        events.acknowledge(settled.ack_ids);
        self.push_alerts();
    }

    /// After every cycle and re-audit, and every `resend_interval` in between.
    fn push_alerts(&mut self) {
        if let Some(alerts) = &mut self.alerts {
            let now = self.clock.now();
            let config = &self.runtime.config;
            let auditor = match config.alertmanager.as_ref().and_then(|am| am.external_url.clone()) {
                Some(url) => url,
                None => default_external_url(&self.endpoint.url("")),
            };
            alerts.push(&self.store.load(), now, config.schedule.period(now), &auditor);
        }
    }

    /// Reads the configuration again. The endpoint serves the new listener settings (address,
    /// TLS, users, limits) or the whole reload fails: it never reports success while serving
    /// the old ones. A running cycle finishes with the runtime it started with.
    async fn reload(&mut self) {
        let path = self.config_path.clone();
        let loaded = match Runtime::load(&path, &self.overrides, &self.metrics.counters()) {
            Ok(next) => {
                self.endpoint.apply(&next.config, &next.web, SERVER_DRAIN).await.map(|()| next).map_err(AppError::Setup)
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok(next) => {
                self.alerts = match (self.alerts.take(), next.pusher.clone()) {
                    (Some(mut alerts), Some(pusher)) => {
                        alerts.reconfigure(pusher);
                        Some(alerts)
                    }
                    (_, pusher) => pusher.map(Alerts::new),
                };
                self.schedule.send_replace(next.config.schedule.clone());
                // A new listener on the new client (what the old one held is delivered again),
                // with what the old one knew of the estate. Turned on by this reload, events
                // need a cycle to read the estate: `serve` starts one.
                let previous = self.events.take();
                self.events = next
                    .events
                    .as_ref()
                    .map(|e| EventMode::start(e, self.metrics.events.clone(), self.clock.clone(), previous));
                self.runtime = next;
                record_reload(&self.metrics, &self.clock, true);
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
            Err(e) => {
                record_reload(&self.metrics, &self.clock, false);
                tracing::error!(error = %e, "configuration reload failed; keeping the previous configuration");
            }
        }
    }
}

async fn finished<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn resend_due(alerts: Option<&Alerts>) {
    match alerts {
        Some(alerts) => alerts.resend_due().await,
        None => std::future::pending().await,
    }
}

/// Without `[alertmanager] external_url`, what Prometheus does without `--web.external-url`:
/// the machine's host name and the port served, never a loopback or wildcard address that
/// means nothing to whoever reads the alert elsewhere.
fn default_external_url(served: &str) -> String {
    let hostname =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let Some((scheme, address)) = served.split_once("://") else { return served.to_owned() };
    let port = address.rsplit_once(':').map_or("", |(_, port)| port);
    if hostname.is_empty() || port.is_empty() { served.to_owned() } else { format!("{scheme}://{hostname}:{port}") }
}

/// The listener's next batch, while no re-audit runs (the listener coalesces meanwhile).
async fn next_batch(events: Option<&EventMode>, free: bool) -> Batch {
    match events {
        Some(events) if free => events.next_batch().await,
        _ => std::future::pending().await,
    }
}

fn record_reload(metrics: &Metrics, clock: &impl Clock, ok: bool) {
    metrics.config_reload_successful.set(i64::from(ok));
    if ok {
        metrics.config_reload_timestamp.set(clock.now().timestamp());
    }
}
