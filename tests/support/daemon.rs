//! The daemon in-process: `Daemon::start` on a config listening on port 0, then `serve` fed
//! by the test's own events (a tick runs a cycle now; no sleeping on wall-clock schedules, no
//! subprocess, no port race).

use std::path::Path;

use binauthz_auditor::clock::SystemClock;
use binauthz_auditor::daemon::{Daemon, Event};
use binauthz_auditor::error::AppError;
use futures_util::stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::run::Endpoint;

pub struct InProcess {
    endpoint: Endpoint,
    events: mpsc::Sender<Event>,
    task: JoinHandle<Result<(), AppError>>,
}

/// The daemon is scraped like any endpoint.
impl std::ops::Deref for InProcess {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl InProcess {
    /// Starts the daemon on `config` (which should listen on `127.0.0.1:0`).
    pub async fn start(config: &Path) -> InProcess {
        let daemon = Daemon::start(config, SystemClock).await.unwrap_or_else(|e| panic!("the daemon starts: {e}"));
        let endpoint = Endpoint::new(daemon.url(""));
        let (events, rx) = mpsc::channel(16);
        let stream = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let task = tokio::spawn(daemon.serve(stream));
        InProcess { endpoint, events, task }
    }

    pub async fn send(&self, event: Event) {
        self.events.send(event).await.expect("the daemon is serving");
    }

    /// Runs a cycle now (as the schedule firing would) and waits until `n` cycles are counted.
    pub async fn tick_until(&self, n: u64) -> String {
        self.send(Event::Tick).await;
        self.wait_for_cycles(n).await
    }

    /// Stops it as SIGTERM would; the daemon's own result.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.send(Event::Shutdown).await;
        self.task.await.expect("the daemon did not panic")
    }
}
