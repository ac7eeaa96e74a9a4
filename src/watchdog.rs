//! The systemd watchdog (SPEC §5 "watchdog pings for systemd"): pings come from a side task
//! that checks the daemon loop is alive, not from the loop between cycles, so a cycle that
//! takes as long as `WatchdogSec` (a slow TRiNG, many writes) cannot get a healthy daemon
//! killed in the middle of a write.
//!
//! The loop and the cycle beat a [`Heartbeat`] as they go (each calendar read, each write,
//! each step of the sleep between cycles); [`keep_alive`] pings while the last beat is
//! younger than the stall limit, and stops pinging once the loop has been silent for longer,
//! so systemd restarts a daemon that is really stuck. Knows nothing of what a cycle does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::daemon::Notifier;

/// How long the loop may go without a beat before it counts as stuck: a cycle ends within
/// `poll_interval` (SPEC §5), and the write in flight then may still take its TRiNG request
/// time with retries; a minute covers that.
pub fn stall_limit(poll_interval: Duration) -> Duration {
    poll_interval + Duration::from_secs(60)
}

/// Whether systemd's `WatchdogSec` is shorter than twice `poll_interval`: then a cycle that
/// hangs for real is caught late relative to the polls, and a misconfiguration is likely.
pub fn watchdog_too_short(watchdog_sec: Duration, poll_interval: Duration) -> bool {
    watchdog_sec < poll_interval * 2
}

/// When the daemon loop last showed progress. Shared by the loop, the cycle and the side task.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// The loop made progress now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long ago the last beat was.
    pub fn age(&self) -> Duration {
        let last = self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(last)
    }
}

/// Pings `notifier` every `every` while `heartbeat` is younger than `limit`, until `stop`.
/// Says once when it starts withholding pings (the loop is stuck) and when the loop is back.
pub async fn keep_alive(
    notifier: &dyn Notifier,
    heartbeat: &Heartbeat,
    every: Duration,
    limit: Duration,
    stop: &CancellationToken,
) {
    let mut withheld = false;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let age = heartbeat.age();
        if age <= limit {
            notifier.watchdog();
            if withheld {
                info!("daemon loop alive again; watchdog pings resumed");
                withheld = false;
            }
        } else if !withheld {
            error!(
                silent_s = age.as_secs(),
                limit_s = limit.as_secs(),
                "daemon loop made no progress within its limit; withholding watchdog pings so systemd restarts rooster"
            );
            withheld = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records when each ping came, on tokio's clock.
    #[derive(Default)]
    struct FakeNotifier {
        pings: Mutex<Vec<Instant>>,
    }

    impl Notifier for FakeNotifier {
        fn watchdog(&self) {
            self.pings.lock().expect("pings").push(Instant::now());
        }
    }

    impl FakeNotifier {
        /// The longest time systemd went without a ping between `from` and `to`.
        fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
            let mut times = vec![from];
            times.extend(self.pings.lock().expect("pings").iter().copied());
            times.push(to);
            times
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default()
        }
    }

    #[test]
    fn watchdog_shorter_than_two_polls_is_warned_about() {
        let m = |s| Duration::from_secs(s);
        assert!(watchdog_too_short(m(120), m(120)));
        assert!(watchdog_too_short(m(239), m(120)));
        assert!(!watchdog_too_short(m(240), m(120)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cycle_as_long_as_watchdog_sec_is_never_left_without_a_ping() {
        // WatchdogSec = poll_interval = 120 s; systemd asks for pings every 60 s.
        let watchdog_sec = Duration::from_secs(120);
        let poll = Duration::from_secs(120);
        let notifier = FakeNotifier::default();
        let heartbeat = Heartbeat::default();
        let stop = CancellationToken::new();
        let start = Instant::now();
        // The daemon loop: one cycle of 110 s (reads, then 10 writes of 8 s each against a
        // slow TRiNG, a beat before each), then the sleep until the next poll, beating per step.
        let daemon = async {
            heartbeat.beat();
            tokio::time::sleep(Duration::from_secs(30)).await;
            for _ in 0..10 {
                heartbeat.beat();
                tokio::time::sleep(Duration::from_secs(8)).await;
            }
            heartbeat.beat();
            for _ in 0..2 {
                tokio::time::sleep(watchdog_sec / 2).await;
                heartbeat.beat();
            }
            stop.cancel();
        };
        tokio::join!(
            daemon,
            keep_alive(
                &notifier,
                &heartbeat,
                watchdog_sec / 2,
                stall_limit(poll),
                &stop
            )
        );
        let gap = notifier.longest_gap(start, Instant::now());
        assert!(
            gap <= watchdog_sec / 2,
            "systemd went {gap:?} without a ping (WatchdogSec {watchdog_sec:?})"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_loop_stops_the_pings_so_systemd_restarts_it() {
        let poll = Duration::from_secs(120);
        let every = Duration::from_secs(60);
        let notifier = FakeNotifier::default();
        let heartbeat = Heartbeat::default();
        let stop = CancellationToken::new();
        let start = Instant::now();
        heartbeat.beat();
        // The loop hangs after its first beat; the side task runs for 10 minutes.
        let watch = keep_alive(&notifier, &heartbeat, every, stall_limit(poll), &stop);
        let _ = tokio::time::timeout(Duration::from_secs(600), watch).await;
        let pings = notifier.pings.lock().expect("pings").clone();
        let last = pings
            .last()
            .copied()
            .expect("pinged while the loop was alive");
        assert!(
            last - start <= stall_limit(poll),
            "pinged {:?} after the last beat, past the stall limit",
            last - start
        );
        assert!(
            Instant::now() - last > Duration::from_secs(120),
            "systemd has gone a whole WatchdogSec without a ping"
        );
    }
}
