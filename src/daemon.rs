//! `rooster run` (SPEC §5): cycles on `poll_interval`, wakes early at every boundary (the next
//! instant a queue's desired set changes, from the last events read, so it keeps working
//! while Graph is down), backs off while everything fails, tells systemd it is ready and alive,
//! and stops cleanly on the cancellation token (SIGTERM/SIGINT in `main`).
//!
//! The loop only decides *when*; what a cycle does is [`crate::cycle`]'s business.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::coverage::{self, GapWatch};
use crate::cycle::{Calendars, Clock, Mode, Pbx, Reconciler};
use crate::store::StoreError;
use crate::watchdog::{Heartbeat, keep_alive, stall_limit, watchdog_too_short};

/// SPEC §4 "State": the journal is kept 90 days.
const JOURNAL_DAYS: i64 = 90;
/// While every calendar or TRiNG fails, polls are spaced out up to this many poll intervals.
const MAX_BACKOFF_FACTOR: u32 = 4;

/// How long to wait after `failures` consecutive cycles in which everything failed: the poll
/// interval, doubled per failure, capped (STYLE: backoff as a pure function, not inline).
fn poll_delay(poll_interval: Duration, failures: u32) -> Duration {
    crate::retry::doubled(poll_interval, failures, MAX_BACKOFF_FACTOR)
}

/// When to wake next and for what: the earlier of the next poll and the next boundary.
fn next_wake(
    now: DateTime<Utc>,
    next_poll: DateTime<Utc>,
    boundary: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, Mode) {
    match boundary {
        Some(b) if b < next_poll => (b.max(now), Mode::Boundary),
        _ => (next_poll.max(now), Mode::Full),
    }
}

/// systemd notification (`Type=notify`), a no-op without `$NOTIFY_SOCKET`.
pub trait Notifier: Send + Sync {
    fn ready(&self) {}
    fn watchdog(&self) {}
    fn stopping(&self) {}
    /// How often to ping the watchdog, if systemd asked for it.
    fn watchdog_interval(&self) -> Option<Duration> {
        None
    }
}

/// Talks to systemd through `sd-notify` when `$NOTIFY_SOCKET` is set.
pub struct SystemdNotifier {
    interval: Option<Duration>,
}

impl SystemdNotifier {
    pub fn from_env() -> Self {
        // Ping at half the watchdog period, as sd_watchdog_enabled(3) advises.
        let interval = sd_notify::watchdog_enabled().map(|d| d / 2);
        SystemdNotifier { interval }
    }
    fn send(&self, state: &[sd_notify::NotifyState]) {
        if std::env::var_os("NOTIFY_SOCKET").is_some()
            && let Err(e) = sd_notify::notify(state)
        {
            warn!(error = %e, "systemd notification failed");
        }
    }
}

impl Notifier for SystemdNotifier {
    fn ready(&self) {
        self.send(&[sd_notify::NotifyState::Ready]);
    }
    fn watchdog(&self) {
        self.send(&[sd_notify::NotifyState::Watchdog]);
    }
    fn stopping(&self) {
        self.send(&[sd_notify::NotifyState::Stopping]);
    }
    fn watchdog_interval(&self) -> Option<Duration> {
        self.interval
    }
}

/// No systemd (tests, the demo).
pub struct NoNotifier;
impl Notifier for NoNotifier {}

/// Runs cycles until `cancel`. Returns `Err` only when the state cannot be written: without
/// its journal rooster must not write to TRiNG (SPEC §3 rule 7).
pub async fn run<C: Calendars, P: Pbx, K: Clock>(
    rec: &mut Reconciler<C, P, K>,
    notifier: &dyn Notifier,
    cancel: CancellationToken,
) -> Result<(), StoreError> {
    let poll = rec.config().poll_interval;
    let heartbeat = Arc::new(Heartbeat::default());
    heartbeat.beat();
    rec.set_heartbeat(heartbeat.clone());
    let Some(every) = notifier.watchdog_interval() else {
        return run_loop(rec, notifier, cancel, &heartbeat).await;
    };
    // sd_watchdog_enabled(3): the interval asked for is half of WatchdogSec.
    let watchdog_sec = every * 2;
    if watchdog_too_short(watchdog_sec, poll) {
        warn!(watchdog_sec = %humantime::format_duration(watchdog_sec), poll_interval = %humantime::format_duration(poll),
            "WatchdogSec is less than twice poll_interval; set WatchdogSec to at least twice poll_interval so a slow cycle is told from a stuck one");
    }
    // The pings come from a side task watching the loop's heartbeat (SPEC §5), so a long
    // cycle is not mistaken for a hung one.
    let stop = CancellationToken::new();
    let watch = keep_alive(notifier, &heartbeat, every, stall_limit(poll), &stop);
    let daemon = async {
        let r = run_loop(rec, notifier, cancel, &heartbeat).await;
        stop.cancel();
        r
    };
    let (r, ()) = tokio::join!(daemon, watch);
    r
}

async fn run_loop<C: Calendars, P: Pbx, K: Clock>(
    rec: &mut Reconciler<C, P, K>,
    notifier: &dyn Notifier,
    cancel: CancellationToken,
    heartbeat: &Heartbeat,
) -> Result<(), StoreError> {
    let poll = rec.config().poll_interval;
    let mut mode = Mode::Full;
    let mut failures: u32 = 0;
    let mut last_full = rec.clock().now();
    let mut last_prune: Option<DateTime<Utc>> = None;
    let mut gaps = GapWatch::default();
    let mut ready = false;
    info!(poll_interval = %humantime::format_duration(poll), "rooster started");

    loop {
        if mode == Mode::Full {
            last_full = rec.clock().now();
        }
        heartbeat.beat();
        let report = rec.cycle(mode, &cancel).await?;
        heartbeat.beat();
        if !ready {
            notifier.ready();
            ready = true;
        }
        if cancel.is_cancelled() {
            break;
        }
        if mode == Mode::Full {
            failures = if report.everything_failed() {
                failures.saturating_add(1)
            } else {
                0
            };
            if failures > 0 {
                warn!(failures, next_poll_in = %humantime::format_duration(poll_delay(poll, failures)), "every calendar or every queue failed; polling less often (boundaries still apply)");
            }
        }
        let now = rec.clock().now();
        if mode == Mode::Full {
            watch_gaps(rec, &mut gaps, now);
        }
        // Pruning writes: only through the writer, never in a dry run (SPEC §3 rule 5).
        if last_prune.is_none_or(|t| now - t > chrono::Duration::days(1)) {
            if let Some(store) = rec.writer() {
                let pruned = store
                    .prune_journal(now - chrono::Duration::days(JOURNAL_DAYS))
                    .await?;
                debug!(
                    rows = pruned.journal_rows,
                    cycles = pruned.cycles,
                    refusals = pruned.refusals,
                    "journal pruned"
                );
            }
            last_prune = Some(now);
        }

        let delay = poll_delay(poll, failures);
        let next_poll = last_full + chrono::Duration::from_std(delay).unwrap_or_default();
        // A boundary that passed while the cycle was writing is due now, not at the next poll.
        let after = report.decided_at.unwrap_or(now).min(now);
        let (wake, next_mode) = next_wake(now, next_poll, rec.next_boundary(after));
        debug!(wake = %wake, mode = ?next_mode, "sleeping");
        if !sleep_until(rec.clock(), wake, notifier, heartbeat, &cancel).await {
            break;
        }
        mode = next_mode;
    }
    notifier.stopping();
    info!("rooster stopped");
    Ok(())
}

/// SPEC §4: gaps are exported for the next 7 days and warned about within 72 h.
const GAP_HORIZON: chrono::Duration = chrono::Duration::days(7);
const GAP_WARN_WITHIN: chrono::Duration = chrono::Duration::hours(72);

/// SPEC §4 "History and coverage": exports each queue's next gap and its gap seconds over
/// the next 7 days, and warns once per queue about a gap starting within 72 h. After full
/// cycles only: a boundary cycle reads no events, so the coverage cannot have changed.
fn watch_gaps<C: Calendars, P: Pbx, K: Clock>(
    rec: &Reconciler<C, P, K>,
    watch: &mut GapWatch,
    now: DateTime<Utc>,
) {
    let outlook = coverage::gap_outlook(rec.schedule(), rec.config(), now, GAP_HORIZON);
    let tz = rec.config().timezone;
    for gap in watch.check(&outlook, now, GAP_WARN_WITHIN) {
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
        let until = match gap.to {
            Some(to) => format!("to {}", local(to)),
            None => format!(
                "to beyond {} (as far as rooster looks)",
                local(now + GAP_HORIZON)
            ),
        };
        warn!(
            queue = %gap.queue,
            gap_from = %gap.from.to_rfc3339(),
            gap_to = gap.to.map(|t| t.to_rfc3339()).unwrap_or_default(),
            "queue {} will have nobody in it from {} {until}: no calendar event puts anyone in and no static or fallback member covers it",
            gap.queue,
            local(gap.from),
        );
    }
    if let Some(m) = rec.metrics() {
        m.gaps(&outlook);
    }
}

/// Sleeps until `wake` (by `clock`), beating the heartbeat at the watchdog's pace. Returns
/// false when cancelled.
async fn sleep_until<K: Clock>(
    clock: &K,
    wake: DateTime<Utc>,
    notifier: &dyn Notifier,
    heartbeat: &Heartbeat,
    cancel: &CancellationToken,
) -> bool {
    loop {
        let left = (wake - clock.now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return true;
        }
        let step = notifier.watchdog_interval().map_or(left, |w| left.min(w));
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(step) => heartbeat.beat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = Duration::from_secs(120);
        assert_eq!(poll_delay(p, 0), p);
        assert_eq!(poll_delay(p, 1), p * 2);
        assert_eq!(poll_delay(p, 2), p * 4);
        assert_eq!(poll_delay(p, 30), p * 4);
    }

    #[test]
    fn wakes_at_the_earlier_of_poll_and_boundary() {
        let t = |m| Utc.with_ymd_and_hms(2026, 11, 25, 8, m, 0).unwrap();
        assert_eq!(next_wake(t(0), t(2), Some(t(1))), (t(1), Mode::Boundary));
        assert_eq!(next_wake(t(0), t(2), Some(t(3))), (t(2), Mode::Full));
        assert_eq!(next_wake(t(0), t(2), None), (t(2), Mode::Full));
        // A boundary already passed (a slow cycle) is acted on at once.
        assert_eq!(next_wake(t(1), t(2), Some(t(0))), (t(1), Mode::Boundary));
    }
}
