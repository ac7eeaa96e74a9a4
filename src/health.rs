//! Whether rooster is doing its job, as one sentence (SPEC §4 "Metrics", `/healthz`): the one
//! function that both `/healthz` and `status` use, so they say the same thing.
//!
//! Pure: it takes the facts (when a cycle last completed, when a calendar was last read and a
//! queue last listed, and why not since) and the instant, and returns the verdict. No clock,
//! no HTTP, no SQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the verdict is drawn from. Times are `None` when it never happened (since `since`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFacts {
    pub poll_interval: Duration,
    /// When watching began (the daemon's start); `None` when unknown (`status` reads the
    /// state of a daemon it did not start): then only the facts themselves count.
    pub since: Option<DateTime<Utc>>,
    pub last_cycle: Option<DateTime<Utc>>,
    /// The end of the last cycle in which at least one calendar was read.
    pub last_calendar_read: Option<DateTime<Utc>>,
    /// The end of the last cycle in which at least one managed queue was listed.
    pub last_queue_listed: Option<DateTime<Utc>>,
    pub calendars_total: usize,
    pub queues_total: usize,
    /// Why every calendar failed in the last cycle that read them (the common cause when
    /// they share one, else the first calendar's error); `None` when one was read then.
    pub calendar_cause: Option<String>,
    /// Why no queue could be listed in the last cycle (the first queue's error); `None` when
    /// one was listed then.
    pub queue_cause: Option<String>,
    /// The last cycle's partial failures, one sentence each (calendars and queues).
    pub partial: Vec<String>,
}

/// The verdict: `healthy` (200) or not (503), one sentence, and detail lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub sentence: String,
    pub details: Vec<String>,
}

impl Health {
    /// The `/healthz` body: the sentence, then one detail per line.
    pub fn body(&self) -> String {
        let mut s = self.sentence.clone();
        s.push('\n');
        for d in &self.details {
            s.push_str(d);
            s.push('\n');
        }
        s
    }
}

/// SPEC §4: 503 when (b) every calendar read failed, (c) no managed queue could be listed,
/// or (a) no cycle completed, each within 3 poll intervals; else 200, with the partial
/// failures as details. (b) and (c) are tried first: while everything fails the daemon polls
/// less often, and the sentence must name the cause, not the slower polling.
pub fn judge(f: &HealthFacts, now: DateTime<Utc>) -> Health {
    let window = f.poll_interval * 3;
    let limit = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let took = humantime::format_duration(window);
    // Too long ago (or never, while watching for longer than the window).
    let stale = |t: Option<DateTime<Utc>>| match t.or(f.since) {
        Some(t) => now - t > limit,
        None => true,
    };
    let unhealthy = |sentence: String| Health {
        healthy: false,
        sentence,
        details: Vec::new(),
    };
    // A cause is only known from a cycle that failed; a daemon that stopped cycling falls
    // through to (a).
    let ran = f.last_cycle.is_some();
    if let Some(cause) = &f.calendar_cause
        && ran
        && stale(f.last_calendar_read)
    {
        let prefix = if cause.contains("AADSTS7000222") {
            "expired secret: "
        } else {
            ""
        };
        return unhealthy(format!(
            "{prefix}every calendar read failed in the last {took} (3 poll intervals): {cause}"
        ));
    }
    if let Some(cause) = &f.queue_cause
        && ran
        && stale(f.last_queue_listed)
    {
        return unhealthy(format!(
            "no managed queue could be listed in TRiNG in the last {took} (3 poll intervals): {cause}"
        ));
    }
    if stale(f.last_cycle) {
        return unhealthy(match f.last_cycle {
            Some(t) => format!(
                "no cycle completed in the last {took} (3 poll intervals); the last ended {} ago",
                humantime::format_duration(Duration::from_secs(
                    (now - t).num_seconds().max(0) as u64
                ))
            ),
            None => format!("no cycle completed in the {took} (3 poll intervals) since start"),
        });
    }
    Health {
        healthy: true,
        sentence: "ok".into(),
        details: f.partial.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    /// A daemon started at 0 with a 2-minute poll, every cycle fine until minute `upto`.
    fn facts(upto: i64) -> HealthFacts {
        HealthFacts {
            poll_interval: Duration::from_secs(120),
            since: Some(t(0)),
            last_cycle: Some(t(upto)),
            last_calendar_read: Some(t(upto)),
            last_queue_listed: Some(t(upto)),
            calendars_total: 12,
            queues_total: 3,
            ..HealthFacts::default()
        }
    }

    #[test]
    fn healthy_while_cycles_complete() {
        let h = judge(&facts(10), t(11));
        assert_eq!(
            h,
            Health {
                healthy: true,
                sentence: "ok".into(),
                details: vec![]
            }
        );
    }

    #[test]
    fn starting_daemon_is_healthy_until_three_intervals_pass_without_a_cycle() {
        let f = HealthFacts {
            last_cycle: None,
            last_calendar_read: None,
            last_queue_listed: None,
            ..facts(0)
        };
        assert!(judge(&f, t(5)).healthy);
        assert_eq!(
            judge(&f, t(7)).sentence,
            "no cycle completed in the 6m (3 poll intervals) since start"
        );
    }

    #[test]
    fn an_expired_secret_for_three_intervals_says_so_with_its_code() {
        let cause = "12 of 12 calendars not read: graph token refused: the client secret expired (AADSTS7000222): create a new secret";
        let f = HealthFacts {
            last_cycle: Some(t(9)),
            last_calendar_read: Some(t(2)),
            calendar_cause: Some(cause.into()),
            ..facts(9)
        };
        // 5 minutes without a read: not yet 3 intervals.
        assert!(judge(&f, t(7)).healthy);
        let h = judge(&f, t(9));
        assert!(!h.healthy);
        assert_eq!(
            h.sentence,
            format!(
                "expired secret: every calendar read failed in the last 6m (3 poll intervals): {cause}"
            )
        );
    }

    #[test]
    fn all_calendars_failing_is_named_before_the_slower_polling_it_causes() {
        // Backed off to 4 intervals: the last cycle ended 7 minutes ago.
        let f = HealthFacts {
            last_cycle: Some(t(2)),
            last_calendar_read: None,
            calendar_cause: Some("graph request failed: connection failed".into()),
            ..facts(2)
        };
        let h = judge(&f, t(9));
        assert!(
            h.sentence.starts_with("every calendar read failed"),
            "{}",
            h.sentence
        );
    }

    #[test]
    fn no_queue_listed_for_three_intervals() {
        let f = HealthFacts {
            last_queue_listed: Some(t(1)),
            queue_cause: Some("queue 600: list failed: connection refused".into()),
            ..facts(9)
        };
        assert_eq!(
            judge(&f, t(9)).sentence,
            "no managed queue could be listed in TRiNG in the last 6m (3 poll intervals): queue 600: list failed: connection refused"
        );
    }

    #[test]
    fn partial_failures_are_healthy_with_details() {
        let f = HealthFacts {
            partial: vec!["calendar jan@acme.nl: not found".into()],
            ..facts(9)
        };
        let h = judge(&f, t(10));
        assert!(h.healthy);
        assert_eq!(h.body(), "ok\ncalendar jan@acme.nl: not found\n");
    }

    #[test]
    fn a_hung_daemon_is_unhealthy_with_the_age_of_its_last_cycle() {
        assert_eq!(
            judge(&facts(1), t(9)).sentence,
            "no cycle completed in the last 6m (3 poll intervals); the last ended 8m ago"
        );
    }
}
