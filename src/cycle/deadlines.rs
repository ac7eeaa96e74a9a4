//! SPEC §5 "a cycle ends within `poll_interval`": the instants a cycle's reads, lists and
//! writes must be done by, and the sentences that name them.

use std::time::Duration;

/// SPEC §5: "a cycle ends within `poll_interval` even when everything fails (remaining
/// calendars count as failed)". Without it one unreachable Graph (5 s connect timeouts, 4
/// tries, backoff) would hold a 2,000-calendar cycle for an hour, and every boundary with it.
/// Reads get the first half of the interval, `list`s until three quarters, and no write starts
/// after the whole of it. Calendars not read by then count as failed (their last events from
/// the state still feed the schedule; removals from their queues are held back), queues not
/// listed are left alone, and writes not started wait for the next cycle. The write in flight
/// is never abandoned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) poll: Duration,
    pub(super) start: tokio::time::Instant,
    pub(super) read: tokio::time::Instant,
    pub(super) list: tokio::time::Instant,
    pub(super) write: tokio::time::Instant,
}

impl Deadlines {
    pub(super) fn from_now(poll: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Deadlines {
            poll,
            start: now,
            read: now + poll / 2,
            list: now + poll * 3 / 4,
            write: now + poll,
        }
    }

    /// `d` as an operator reads it, with the interval it is part of.
    /// "1s (half of poll_interval 2s)": the time a deadline gave, for the sentences.
    pub(super) fn share(&self, part: &str, deadline: tokio::time::Instant) -> String {
        format!(
            "{} ({part} of poll_interval {})",
            human(deadline - self.start),
            human(self.poll)
        )
    }
}

/// A duration as an operator reads it, to the millisecond: `1m 30s`, `1s 500ms`.
pub(super) fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(
        d.as_millis().try_into().unwrap_or(u64::MAX),
    ))
}
