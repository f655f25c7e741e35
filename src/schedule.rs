//! Cron schedules: the 5-field crontab form people know, or the cron crate's 6/7-field form.
//!
//! The 5-field form follows crontab(5) exactly, including its one surprise: when both
//! day-of-month and day-of-week are restricted (neither starts with `*`), the job runs when
//! EITHER matches (`0 0 1 * 1` is every 1st and every Monday). The cron crate ANDs them, so
//! such an expression becomes two cron schedules whose firings are merged.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A validated schedule, evaluated in UTC.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    /// Fires when any of these fires (two only for crontab's day-of-month OR day-of-week).
    inner: Vec<cron::Schedule>,
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let expression = expression.trim();
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let translated: Vec<String> = match fields.len() {
            1 if expression.starts_with('@') => vec![expression.to_owned()],
            5 => {
                let (minute, hour, dom, month, dow) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
                let dow = crontab_day_of_week(dow)?;
                let line = |dom: &str, dow: &str| format!("0 {minute} {hour} {dom} {month} {dow}");
                if fields[2].starts_with('*') || fields[4].starts_with('*') {
                    vec![line(dom, &dow)]
                } else {
                    vec![line(dom, "*"), line("*", &dow)]
                }
            }
            6 | 7 => vec![expression.to_owned()],
            n => {
                return Err(format!(
                    "cron expression {expression:?} has {n} fields; expected 5 (crontab: minute hour day month weekday) or 6-7 (with seconds first)"
                ));
            }
        };
        let inner = translated
            .iter()
            .map(|t| {
                cron::Schedule::from_str(t)
                    // The cron crate's messages span lines; errors here are one line.
                    .map_err(|e| format!("invalid cron expression {expression:?}: {}", one_line(&e.to_string())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = Schedule { expression: expression.to_owned(), inner };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("cron expression {expression:?} never fires"));
        }
        Ok(schedule)
    }

    /// The gap between the two firings after `now`, at least a second (an hour if it never
    /// fires twice): how long one cycle's results stand.
    pub fn period(&self, now: DateTime<Utc>) -> std::time::Duration {
        let first = self.next_after(now);
        match (first, first.and_then(|t| self.next_after(t))) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default().max(std::time::Duration::from_secs(1)),
            _ => std::time::Duration::from_secs(3600),
        }
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.iter().filter_map(|s| s.after(&after).next()).min()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expression)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Crontab weekdays are 0-7 with Sunday as 0 or 7; the cron crate counts 1-7 from Sunday.
/// Numbers become names so that neither reading can be mistaken, and ranges are expanded
/// because `Fri-Sun` would wrap in the cron crate's numbering.
fn crontab_day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: usize = s.parse().map_err(|_| format!("invalid weekday step {s:?} in {field:?}"))?;
                if step == 0 {
                    return Err(format!("weekday step 0 in {field:?}"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (first, last) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (day_number(a, field)?, day_number(b, field)?),
                None if step > 1 => (day_number(r, field)?, 6),
                None => (day_number(r, field)?, day_number(r, field)?),
            },
        };
        if first > last {
            return Err(format!("weekday range {range:?} in {field:?} runs backwards"));
        }
        for day in (first..=last).step_by(step) {
            days[day % 7] = true;
        }
    }
    Ok(DAY_NAMES.iter().zip(days).filter(|(_, on)| *on).map(|(n, _)| *n).collect::<Vec<_>>().join(","))
}

fn day_number(s: &str, field: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 { Ok(n) } else { Err(format!("weekday {n} out of range 0-7 in {field:?}")) };
    }
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("invalid weekday {s:?} in {field:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Weekday};
    use proptest::prelude::*;

    fn next(expr: &str, after: DateTime<Utc>) -> DateTime<Utc> {
        Schedule::parse(expr).unwrap().next_after(after).unwrap()
    }

    // 2026-11-29 is a Sunday.
    fn sunday_noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    #[test]
    fn crontab_monday_means_monday() {
        let t = next("0 9 * * 1", sunday_noon());
        assert_eq!((t.weekday(), t.format("%H:%M").to_string()), (Weekday::Mon, "09:00".into()));
    }

    #[test]
    fn sunday_is_both_zero_and_seven() {
        for expr in ["0 13 * * 0", "0 13 * * 7", "0 13 * * sun"] {
            assert_eq!(next(expr, sunday_noon()), Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap(), "{expr}");
        }
    }

    #[test]
    fn a_weekend_range_wraps_correctly() {
        assert_eq!(crontab_day_of_week("5-7").unwrap(), "Sun,Fri,Sat");
        assert_eq!(crontab_day_of_week("1-5").unwrap(), "Mon,Tue,Wed,Thu,Fri");
        assert_eq!(crontab_day_of_week("*/2").unwrap(), "Sun,Tue,Thu,Sat");
    }

    #[test]
    fn every_fifteen_minutes_in_both_forms() {
        let after = Utc.with_ymd_and_hms(2026, 11, 29, 12, 1, 0).unwrap();
        let expected = Utc.with_ymd_and_hms(2026, 11, 29, 12, 15, 0).unwrap();
        assert_eq!(next("*/15 * * * *", after), expected);
        assert_eq!(next("0 */15 * * * *", after), expected);
    }

    #[test]
    fn restricted_day_of_month_and_weekday_fire_on_either_like_crontab() {
        // 2026-12-01 is a Tuesday; the next Monday is 2026-12-07; 2027-01-01 a Friday.
        let s = Schedule::parse("0 0 1 * 1").unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let first = s.next_after(after).unwrap();
        let second = s.next_after(first).unwrap();
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(), "a Monday that is not the 1st");
        assert_eq!(second, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), "a 1st that is not a Monday");
        // A star in either field means both must match (crontab: "starts with *").
        let every_other_day_on_mondays = Schedule::parse("0 0 */2 * 1").unwrap();
        let t = every_other_day_on_mondays.next_after(after).unwrap();
        assert_eq!(t.weekday(), Weekday::Mon);
        assert_eq!(t.day() % 2, 1);
    }

    /// crontab(5), read independently of the cron crate: each field a set of values, and the
    /// day matching when both day fields are restricted, then the next minute by search.
    mod reference {
        use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

        fn values(field: &str, min: u32, max: u32) -> Vec<bool> {
            let mut on = vec![false; (max + 1) as usize];
            for item in field.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().unwrap()),
                    None => (item, 1),
                };
                let (lo, hi) = match range {
                    "*" => (min, max),
                    r => match r.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (r.parse().unwrap(), r.parse().unwrap()),
                    },
                };
                let mut v = lo;
                while v <= hi {
                    on[v as usize] = true;
                    v += step;
                }
            }
            on
        }

        pub fn next_after(expression: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
            let f: Vec<&str> = expression.split_whitespace().collect();
            let (minutes, hours, doms, months) =
                (values(f[0], 0, 59), values(f[1], 0, 23), values(f[2], 1, 31), values(f[3], 1, 12));
            let mut dows = values(f[4], 0, 7);
            dows[0] |= dows[7];
            let either = !f[2].starts_with('*') && !f[4].starts_with('*');
            let start = after.with_second(0).unwrap().with_nanosecond(0).unwrap() + Duration::minutes(1);
            let mut day = start.date_naive();
            for _ in 0..(366 * 8) {
                let (dom, dow) = (doms[day.day() as usize], dows[day.weekday().num_days_from_sunday() as usize]);
                let day_matches = if either { dom || dow } else { dom && dow };
                if day_matches && months[day.month() as usize] {
                    for hour in (0..24).filter(|h| hours[*h as usize]) {
                        for minute in (0..60).filter(|m| minutes[*m as usize]) {
                            let t = day.and_hms_opt(hour, minute, 0).unwrap().and_utc();
                            if t >= start {
                                return Some(t);
                            }
                        }
                    }
                }
                day = day.succ_opt()?;
            }
            None
        }
    }

    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        let single = (min..=max).prop_map(|v| v.to_string());
        let range = (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b)));
        let stepped = (min..=max, min..=max, 1..5u32).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b)));
        let item = prop_oneof![single, range, stepped];
        prop_oneof![
            Just("*".to_string()),
            (2..7u32).prop_map(|s| format!("*/{s}")),
            proptest::collection::vec(item, 1..3).prop_map(|items| items.join(",")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn five_field_schedules_fire_exactly_when_crontab_would(
            minute in field(0, 59), hour in field(0, 23), dom in field(1, 31), month in field(1, 12), dow in field(0, 7),
            start in 1_700_000_000i64..1_900_000_000,
        ) {
            let expression = format!("{minute} {hour} {dom} {month} {dow}");
            let mut t = DateTime::from_timestamp(start, 0).unwrap();
            let Ok(schedule) = Schedule::parse(&expression) else {
                // Refused only when it could never fire (e.g. 30 February).
                prop_assert_eq!(reference::next_after(&expression, Utc::now()), None, "{} was refused", expression);
                return Ok(());
            };
            for _ in 0..3 {
                let expected = reference::next_after(&expression, t);
                prop_assert_eq!(schedule.next_after(t), expected, "{} after {}", expression, t);
                let Some(next) = expected else { break };
                t = next;
            }
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!(Schedule::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("0 9 * * 8").unwrap_err().contains("out of range"));
        assert!(Schedule::parse("61 * * * *").unwrap_err().contains("invalid cron expression"));
        assert!(Schedule::parse("0 9 * * 5-1").unwrap_err().contains("backwards"));
    }
}
