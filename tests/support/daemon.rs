//! The daemon in-process: `Daemon::start` on a config listening on port 0, then `serve` fed
//! by the test's own events (a tick runs a cycle now; no sleeping on wall-clock schedules, no
//! subprocess, no port race).

use std::path::Path;
use std::time::{Duration, Instant};

use binauthz_auditor::clock::SystemClock;
use binauthz_auditor::daemon::{Daemon, Event};
use binauthz_auditor::error::AppError;
use futures_util::stream;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::run::{cycles, http_client};

pub struct InProcess {
    pub url: String,
    events: mpsc::Sender<Event>,
    task: JoinHandle<Result<(), AppError>>,
    http: reqwest::Client,
}

impl InProcess {
    /// Starts the daemon on `config` (which should listen on `127.0.0.1:0`).
    pub async fn start(config: &Path) -> InProcess {
        let daemon = Daemon::start(config, SystemClock).await.unwrap_or_else(|e| panic!("the daemon starts: {e}"));
        let url = daemon.url("");
        let (events, rx) = mpsc::channel(16);
        let stream = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let task = tokio::spawn(daemon.serve(stream));
        InProcess { url, events, task, http: http_client() }
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

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.url)).timeout(Duration::from_secs(10)).send().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    pub async fn report(&self) -> Value {
        self.get("/report").await.json().await.unwrap()
    }

    /// Waits until the daemon has counted `n` finished cycles; returns that scrape.
    pub async fn wait_for_cycles(&self, n: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = self.metrics().await;
            if cycles(&metrics) >= n {
                return metrics;
            }
            assert!(Instant::now() < deadline, "fewer than {n} cycles after 30s:\n{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
