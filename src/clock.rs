//! The time of day, as something the daemon is given: the schedule's ticker and the published
//! timestamps read it, and tests can hand them a clock that follows tokio's paused time.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Seconds since the Unix epoch, as metrics and reports carry them.
    fn unix_now(&self) -> f64 {
        self.now().timestamp_micros() as f64 / 1e6
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Seconds since the Unix epoch now, for the one-shot commands.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Wall-clock time that advances with tokio's clock, so `tokio::time::pause()` moves it too.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    started: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock { start, started: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + self.started.elapsed()
    }
}
