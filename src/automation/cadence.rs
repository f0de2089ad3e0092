//! When a snapshot schedule runs: every so many seconds, or on a standard 5-field cron
//! expression read in UTC (parsed by `croner`). A schedule that was due while Flex was down
//! runs once when it is next checked, then returns to its cadence: the next run is the first
//! one after now, never a backlog.

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

use crate::store::Cadence;

/// Reads a standard cron expression: minute, hour, day of month, month, day of week.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "cron '{expression}' must have 5 fields (minute hour day-of-month month day-of-week), \
             not {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| format!("cron '{expression}' is not valid: {err}"))
}

/// The first run of a new schedule created at `now`.
pub fn first_run(cadence: &Cadence, now: i64) -> Result<i64, String> {
    match cadence {
        Cadence::Interval(secs) => Ok(now + secs),
        Cadence::Cron(expression) => next_cron_run(expression, now),
    }
}

/// The run after the one that was due at `due`, seen at `now` (`due <= now`): the first run
/// of the cadence after now, so missed runs are not made up one by one.
pub fn next_run(cadence: &Cadence, due: i64, now: i64) -> Result<i64, String> {
    match cadence {
        Cadence::Interval(secs) => {
            let secs = (*secs).max(1);
            let missed = (now - due).max(0) / secs;
            Ok(due + secs * (missed + 1))
        }
        Cadence::Cron(expression) => next_cron_run(expression, now),
    }
}

fn next_cron_run(expression: &str, now: i64) -> Result<i64, String> {
    let cron = parse_cron(expression)?;
    let start: DateTime<Utc> =
        DateTime::from_timestamp(now, 0).ok_or_else(|| format!("{now} is not a time"))?;
    cron.find_next_occurrence(&start, false)
        .map(|next| next.timestamp())
        .map_err(|err| format!("cron '{expression}' has no next run: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03T10:07:30Z
    const NOW: i64 = 1_796_292_450;

    #[test]
    fn intervals_skip_the_runs_missed_while_down() {
        let every_minute = Cadence::Interval(60);
        assert_eq!(first_run(&every_minute, NOW), Ok(NOW + 60));
        assert_eq!(next_run(&every_minute, NOW, NOW), Ok(NOW + 60));
        // Down for ten and a half minutes: one run now, the next on the old grid.
        assert_eq!(next_run(&every_minute, NOW, NOW + 630), Ok(NOW + 660));
    }

    #[test]
    fn cron_runs_on_the_next_matching_minute_in_utc() {
        let hourly = Cadence::Cron("15 * * * *".into());
        let next = first_run(&hourly, NOW).unwrap();
        assert_eq!(next - NOW, 7 * 60 + 30, "10:15:00 follows 10:07:30");
        let daily = Cadence::Cron("0 2 * * *".into());
        let next = DateTime::from_timestamp(next_run(&daily, NOW - 86_400, NOW).unwrap(), 0);
        assert_eq!(next.unwrap().to_rfc3339(), "2026-12-04T02:00:00+00:00");
    }

    #[test]
    fn only_five_field_expressions_are_read() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        for bad in [
            "* * * *",
            "0 */5 * * * *",
            "61 * * * *",
            "@hourly",
            "x * * * *",
            "",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
