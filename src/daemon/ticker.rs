//! The schedule as a stream of ticks: one each time the cron expression fires, following
//! schedule changes (a reload) as they come.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::schedule::Schedule;

/// A schedule that never fires again is looked at once a day (a reload may change it).
const NEVER: Duration = Duration::from_secs(86_400);

/// Yields the time of each firing of the current schedule, from now on.
pub fn ticks<C: Clock>(schedule: watch::Receiver<Schedule>, clock: C) -> impl Stream<Item = DateTime<Utc>> {
    let last = clock.now();
    stream::unfold((schedule, clock, last), |(mut schedule, clock, mut last)| async move {
        loop {
            let next = schedule.borrow().next_after(last.max(clock.now()));
            let wait = next.map_or(NEVER, |t| (t - clock.now()).to_std().unwrap_or_default());
            tokio::select! {
                () = tokio::time::sleep(wait) => match next {
                    Some(fired) => {
                        last = fired;
                        return Some((fired, (schedule, clock, last)));
                    }
                    None => last = clock.now(),
                },
                changed = schedule.changed() => {
                    // The daemon is gone: so are its ticks.
                    changed.ok()?;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use futures_util::StreamExt;

    use super::*;
    use crate::clock::TokioClock;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 30).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_follow_the_schedule_and_its_changes() {
        let (tx, rx) = watch::channel(Schedule::parse("*/15 * * * *").unwrap());
        let mut ticks = Box::pin(ticks(rx, TokioClock::starting_at(noon())));
        assert_eq!(ticks.next().await, Some(Utc.with_ymd_and_hms(2026, 11, 29, 12, 15, 0).unwrap()));
        assert_eq!(ticks.next().await, Some(Utc.with_ymd_and_hms(2026, 11, 29, 12, 30, 0).unwrap()));
        tx.send(Schedule::parse("0 13 * * *").unwrap()).unwrap();
        assert_eq!(ticks.next().await, Some(Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()));
        drop(tx);
        assert_eq!(ticks.next().await, None, "no daemon, no ticks");
    }
}
