//! Unix signals as daemon events: SIGTERM/SIGINT stop, SIGHUP reloads.

use futures_util::Stream;
use futures_util::stream;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::daemon::Event;

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Shutdown,
            _ = self.int.recv() => Event::Shutdown,
            _ = self.hup.recv() => Event::Reload,
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = Event> {
        stream::unfold(self, |mut signals| async move { Some((signals.next().await, signals)) })
    }
}
