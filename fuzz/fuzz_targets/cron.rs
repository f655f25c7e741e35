//! Hostile cron expressions: parsing never panics, errors are one line, and a schedule that
//! parsed can always compute its next firing without panicking.
#![no_main]

use binauthz_auditor::schedule::Schedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else { return };
    match Schedule::parse(expression) {
        Ok(schedule) => {
            let now = chrono::Utc::now();
            if let Some(next) = schedule.next_after(now) {
                assert!(next > now, "{expression:?}: next firing {next} is not after {now}");
            }
            let _ = schedule.to_string();
        }
        Err(e) => assert!(!e.contains('\n'), "multi-line cron error for {expression:?}: {e}"),
    }
});
