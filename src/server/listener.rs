//! The accept loop of one listener configuration: a cap on connections served at once, and at
//! the cap the longest-idle connection is closed to make room (nginx does the same with its
//! keep-alive connections), so idle or half-open connections cannot lock scrapes out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::connection::{self, Shared, Tracker};

/// How often a repeated condition (cap reached, accept failing) is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// A running accept loop and its connections.
pub struct Serving {
    pub shared: Arc<Shared>,
    stop: CancellationToken,
    drain: CancellationToken,
    kill: CancellationToken,
    connections: TaskTracker,
    /// `None` once it has been awaited (a JoinHandle must not be polled after it finished).
    accept: Option<JoinHandle<()>>,
}

impl Serving {
    pub fn start(listener: Arc<TcpListener>, shared: Arc<Shared>, cap: usize) -> Serving {
        let (stop, drain, kill) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        let connections = TaskTracker::new();
        let accept = tokio::spawn(
            AcceptLoop {
                listener,
                shared: Arc::clone(&shared),
                cap,
                permits: Arc::new(Semaphore::new(cap)),
                live: Arc::default(),
                stop: stop.clone(),
                drain: drain.clone(),
                kill: kill.clone(),
                connections: connections.clone(),
            }
            .run(),
        );
        Serving { shared, stop, drain, kill, connections, accept: Some(accept) }
    }

    /// Stops accepting and asks every connection to finish its request in flight and close.
    /// Synchronous, so that a successor can start accepting right after.
    pub fn stop_accepting(&self) {
        self.stop.cancel();
        self.drain.cancel();
    }

    /// Waits up to `drain` for the connections to close, then closes the rest.
    pub async fn retire(self, drain: Duration) {
        self.stop_accepting();
        self.connections.close();
        if tokio::time::timeout(drain, self.connections.wait()).await.is_err() {
            tracing::warn!("HTTP connections still open after {drain:?}; closing them");
        }
        self.kill.cancel();
        if let Some(accept) = self.accept {
            let _ = accept.await;
        }
    }

    /// Resolves only if the accept loop ended without being stopped (a bug: it retries errors).
    pub async fn failed(&mut self) -> String {
        let Some(accept) = &mut self.accept else {
            return std::future::pending().await;
        };
        let ended = accept.await;
        self.accept = None;
        match ended {
            Ok(()) if self.stop.is_cancelled() => std::future::pending().await,
            Ok(()) => "the accept loop stopped unexpectedly".to_owned(),
            Err(e) => e.to_string(),
        }
    }
}

type Live = Arc<Mutex<HashMap<u64, (Arc<Tracker>, CancellationToken)>>>;

struct AcceptLoop {
    listener: Arc<TcpListener>,
    shared: Arc<Shared>,
    cap: usize,
    permits: Arc<Semaphore>,
    live: Live,
    stop: CancellationToken,
    drain: CancellationToken,
    kill: CancellationToken,
    connections: TaskTracker,
}

impl AcceptLoop {
    async fn run(self) {
        let mut cap_log = Throttled::default();
        let mut error_log = Throttled::default();
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    if let Some(more) = error_log.due() {
                        tracing::warn!(error = %e, repeated = more, "accepting a connection failed");
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            };
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if let Some(more) = cap_log.due() {
                        tracing::warn!(
                            max_connections = self.cap,
                            repeated = more,
                            "connection limit reached (server.max_connections): closing the longest-idle connections to make room; new ones wait in the listen backlog while every connection is busy"
                        );
                    }
                    self.close_longest_idle();
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    }
                }
            };
            next_id += 1;
            let id = next_id;
            let tracker = Tracker::new(self.shared.limits);
            let kill = self.kill.child_token();
            self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (Arc::clone(&tracker), kill.clone()));
            let (shared, drain, live) = (Arc::clone(&self.shared), self.drain.clone(), Arc::clone(&self.live));
            self.connections.spawn(async move {
                let _permit = permit;
                connection::run(tcp, peer, shared, tracker, drain, kill).await;
                live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            });
        }
    }

    /// Closes the connection that has waited longest without a request in flight, if any.
    fn close_longest_idle(&self) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let longest = live
            .values()
            .filter(|(_, kill)| !kill.is_cancelled())
            .filter_map(|(tracker, kill)| tracker.idle_since().map(|since| (since, kill)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, kill)) = longest {
            kill.cancel();
        }
    }
}

/// At most one log line per `LOG_EVERY`, counting the ones left out.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    skipped: u64,
}

impl Throttled {
    /// `Some(skipped since the last line)` when a line is due.
    fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.skipped))
    }
}
