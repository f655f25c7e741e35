//! systemd's notify protocol: readiness, status lines, stopping, and watchdog pings. Outside
//! systemd `NOTIFY_SOCKET` is unset and every call is a no-op.

use std::future::pending;

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState<'_>]) {
    let _ = sd_notify::notify(states);
}

/// Pings at half the watchdog period, when systemd asked for a watchdog.
pub struct Watchdog(Option<tokio::time::Interval>);

impl Watchdog {
    pub fn from_env() -> Watchdog {
        Watchdog(sd_notify::watchdog_enabled().map(|period| tokio::time::interval(period / 2)))
    }

    /// Resolves when the next ping is due, and sends it; never without a watchdog.
    pub async fn ping(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
            None => pending().await,
        }
    }
}
