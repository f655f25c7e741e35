//! The long-running service. [`run`] takes the process's edges (the configuration file, the
//! signals, the schedule's clock, the listening socket) and hands them to [`Daemon::serve`],
//! which only reacts to [`Event`]s: tests drive it in-process with events of their own.
//!
//! One cycle: a tick spawns it (never two at once), it collects and evaluates, and its outcome
//! is published (state.rs), logged, counted and pushed to Alertmanager.

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

pub use runtime::{Counters, Runtime};
pub use ticker::ticks;

use crate::alertmanager::Alerts;
use crate::audit::{AuditOutcome, run_cycle};
use crate::clock::{Clock, SystemClock};
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::schedule::Schedule;
use crate::server::Endpoint;
use crate::signals::Signals;
use crate::state::Store;

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
pub async fn run(config_path: &Path) -> Result<(), AppError> {
    let daemon = Daemon::start(config_path, SystemClock).await?;
    let signals = Signals::new().map_err(AppError::Signals)?.into_stream();
    let ticks = ticks(daemon.schedule(), SystemClock).map(|_| Event::Tick);
    daemon.serve(stream::select(signals, ticks)).await
}

pub struct Daemon<C: Clock> {
    config_path: PathBuf,
    clock: C,
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    runtime: Runtime,
    endpoint: Endpoint,
    alerts: Option<Alerts>,
    schedule: watch::Sender<Schedule>,
}

impl<C: Clock + Clone> Daemon<C> {
    /// Loads and checks the configuration, binds the listener and starts serving HTTP, then
    /// tells systemd it is ready. Nothing is audited until [`Daemon::serve`].
    pub async fn start(config_path: &Path, clock: C) -> Result<Daemon<C>, AppError> {
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(Store::default());
        let runtime = Runtime::load(config_path, &metrics.counters())?;
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
        Ok(Daemon {
            config_path: config_path.to_owned(),
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
        let mut cycle: Option<JoinHandle<AuditOutcome>> = self.runtime.config.run_on_start.then(|| self.spawn_cycle());
        loop {
            tokio::select! {
                event = events.next() => match event.unwrap_or(Event::Shutdown) {
                    Event::Shutdown => break,
                    Event::Reload => self.reload().await,
                    Event::Tick if cycle.is_some() => {
                        self.metrics.cycles.with_label_values(&["skipped"]).inc();
                        tracing::warn!("the previous audit cycle is still running; skipping this one");
                    }
                    Event::Tick => cycle = Some(self.spawn_cycle()),
                },
                finished = finished(&mut cycle) => {
                    cycle = None;
                    match finished {
                        Ok(outcome) => self.publish(outcome),
                        Err(e) => {
                            self.metrics.cycles.with_label_values(&["failed"]).inc();
                            tracing::error!(error = %e, "audit cycle crashed; keeping the last published results");
                        }
                    }
                }
                () = watchdog.ping() => {}
                why = self.endpoint.failed() => return Err(AppError::Serve(why)),
            }
        }
        tracing::info!("stopping");
        systemd::stopping();
        if let Some(running) = cycle {
            running.abort();
        }
        self.endpoint.shutdown(SERVER_DRAIN).await;
        Ok(())
    }

    fn spawn_cycle(&self) -> JoinHandle<AuditOutcome> {
        let collector = Arc::clone(&self.runtime.collector);
        let config = &self.runtime.config;
        let (rules, scope, concurrency) = (config.rules.clone(), config.scope.clone(), config.gcp.concurrency);
        tokio::spawn(async move { run_cycle(&collector, &rules, &scope, concurrency).await })
    }

    fn publish(&mut self, outcome: AuditOutcome) {
        let config = &self.runtime.config;
        let published = self.store.load().merge(outcome, self.clock.unix_now(), &config.suppressions);
        let status = status::log_cycle(&published);
        let result = status::result(&published);
        self.store.store(published);
        // Counted once published: whoever sees the count go up can read the new results.
        self.metrics.cycles.with_label_values(&[result]).inc();
        systemd::status(&status);
        if let Some(alerts) = &mut self.alerts {
            let now = self.clock.now();
            let hold = config.schedule.period(now) * 3;
            alerts.after_cycle(&self.store.load(), now, hold, &self.endpoint.url("/report"));
        }
    }

    /// Reads the configuration again. The endpoint serves the new listener settings (address,
    /// TLS, users, limits) or the whole reload fails: it never reports success while serving
    /// the old ones. A running cycle finishes with the runtime it started with.
    async fn reload(&mut self) {
        let path = self.config_path.clone();
        let loaded = match Runtime::load(&path, &self.metrics.counters()) {
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

async fn finished(cycle: &mut Option<JoinHandle<AuditOutcome>>) -> Result<AuditOutcome, tokio::task::JoinError> {
    match cycle {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

fn record_reload(metrics: &Metrics, clock: &impl Clock, ok: bool) {
    metrics.config_reload_successful.set(i64::from(ok));
    if ok {
        metrics.config_reload_timestamp.set(clock.now().timestamp());
    }
}
