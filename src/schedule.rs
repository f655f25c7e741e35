//! Cron schedules: the 5-field crontab form people know, or the cron crate's 6/7-field form.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A validated schedule, evaluated in UTC.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    inner: cron::Schedule,
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let expression = expression.trim();
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let translated = match fields.len() {
            1 if expression.starts_with('@') => expression.to_owned(),
            5 => {
                let dow = crontab_day_of_week(fields[4])?;
                format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], dow)
            }
            6 | 7 => expression.to_owned(),
            n => {
                return Err(format!(
                    "cron expression {expression:?} has {n} fields; expected 5 (crontab: minute hour day month weekday) or 6-7 (with seconds first)"
                ));
            }
        };
        let inner = cron::Schedule::from_str(&translated)
            // The cron crate's messages span lines; errors here are one line.
            .map_err(|e| format!("invalid cron expression {expression:?}: {}", one_line(&e.to_string())))?;
        if inner.upcoming(Utc).next().is_none() {
            return Err(format!("cron expression {expression:?} never fires"));
        }
        Ok(Schedule { expression: expression.to_owned(), inner })
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.after(&after).next()
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
    fn bad_expressions_say_what_is_wrong() {
        assert!(Schedule::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("0 9 * * 8").unwrap_err().contains("out of range"));
        assert!(Schedule::parse("61 * * * *").unwrap_err().contains("invalid cron expression"));
        assert!(Schedule::parse("0 9 * * 5-1").unwrap_err().contains("backwards"));
    }
}
