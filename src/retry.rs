//! The one retry policy of both HTTP clients (SPEC §5 "Clients"): at most 4 tries per
//! request; without a `Retry-After`, backoff 1 s, 2 s, 4 s with jitter; a `Retry-After` in
//! seconds honoured up to 120 s. The policy is pure: it computes delays and never sleeps. The
//! Graph client spends them through a [`Sleeper`] (`GraphOptions::sleeper`), the tokio timer
//! unless a test injects one that notes the wait asked for and returns at once, as the cycle's
//! `Clock` is injected; the TRiNG client, whose tests wait milliseconds, uses the timer.
//!
//! Jitter only ever lengthens a wait (by 0–50 %), so the first retry is never sooner than the
//! base delay and clients that failed together do not retry in lockstep.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

/// SPEC §5: the longest `Retry-After` honoured; a server asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The largest jitter, as a fraction of the nominal backoff.
const MAX_JITTER: f64 = 0.5;

/// How often and how patiently a request is tried. The defaults are SPEC §5's; tests and the
/// demo shrink `base_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_tries: u32,
    /// The first backoff; each next one doubles.
    pub base_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 4,
            base_delay: Duration::from_secs(1),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The backoffs between the tries of one request, in order (`max_tries − 1` of them),
    /// with random jitter.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.delays_with(|| rand::random_range(0.0..1.0))
    }

    /// [`RetryPolicy::delays`] with the jitter drawn from `jitter`, which returns a fraction
    /// in `0.0..1.0` of the largest jitter (tests pass a fixed sequence).
    pub fn delays_with<J: FnMut() -> f64>(
        &self,
        mut jitter: J,
    ) -> impl Iterator<Item = Duration> + use<J> {
        let base = self.base_delay;
        (1..self.max_tries).map(move |n| backoff(base, n, jitter()))
    }

    /// The wait before the next try: what `Retry-After` asked for, capped at
    /// `max_retry_after`, or else the backoff.
    pub fn wait(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after),
            None => backoff,
        }
    }

    /// A `Retry-After` header value in seconds, capped; `None` when it is not a number of
    /// seconds (an HTTP date is ignored, and the backoff applies).
    pub fn retry_after(&self, value: &str) -> Option<Duration> {
        let secs: u64 = value.trim().parse().ok()?;
        Some(Duration::from_secs(secs).min(self.max_retry_after))
    }
}

/// Where a client waits between tries.
pub trait Sleeper: fmt::Debug + Send + Sync {
    fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()>;
}

/// The tokio timer: every client outside tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The wait before retry `n` (1-based): `base · 2^(n−1)`, lengthened by `jitter` (clamped to
/// `0.0..=1.0`) times [`MAX_JITTER`] of itself.
pub fn backoff(base: Duration, n: u32, jitter: f64) -> Duration {
    let nominal = doubled(base, n.saturating_sub(1), u32::MAX);
    nominal + nominal.mul_f64(jitter.clamp(0.0, 1.0) * MAX_JITTER)
}

/// `base` doubled `times` times, but never more than `cap` × `base`: the one doubling every
/// backoff in rooster uses (request retries here, token failures, polls while everything
/// fails).
pub fn doubled(base: Duration, times: u32, cap: u32) -> Duration {
    base.saturating_mul(1u32 << times.min(16))
        .min(base.saturating_mul(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let p = RetryPolicy::default();
        let d: Vec<Duration> = p.delays_with(|| 0.0).collect();
        assert_eq!(d, [secs(1.0), secs(2.0), secs(4.0)]);
    }

    #[test]
    fn jitter_lengthens_by_at_most_half() {
        let p = RetryPolicy::default();
        let mut draws = [1.0, 0.5, 0.25].into_iter();
        let d: Vec<Duration> = p
            .delays_with(|| draws.next().expect("one draw per delay"))
            .collect();
        assert_eq!(d, [secs(1.5), secs(2.5), secs(4.5)]);
    }

    #[test]
    fn jitter_outside_its_range_is_clamped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, -3.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 1, 7.0), Duration::from_millis(150));
    }

    #[test]
    fn random_delays_stay_within_the_jitter_band() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let d: Vec<Duration> = p.delays().collect();
            assert_eq!(d.len(), 3);
            assert!(d[0] >= secs(1.0) && d[0] < secs(1.5), "{d:?}");
            assert!(d[1] >= secs(2.0) && d[1] < secs(3.0), "{d:?}");
            assert!(d[2] >= secs(4.0) && d[2] < secs(6.0), "{d:?}");
        }
    }

    #[test]
    fn one_try_has_no_delays_and_large_counts_do_not_overflow() {
        let one = RetryPolicy {
            max_tries: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(one.delays().count(), 0);
        let huge = backoff(Duration::from_secs(1), 40, 0.0);
        assert_eq!(huge, secs(65536.0));
    }

    #[test]
    fn retry_after_wins_over_the_backoff_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait(secs(1.0), Some(secs(7.0))), secs(7.0));
        assert_eq!(p.wait(secs(1.0), Some(secs(9999.0))), secs(120.0));
        assert_eq!(p.wait(secs(2.0), None), secs(2.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_sleeper_waits_exactly_what_it_is_asked() {
        let start = tokio::time::Instant::now();
        TokioSleeper.sleep(secs(7.0)).await;
        assert_eq!(start.elapsed(), secs(7.0));
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after(" 7 "), Some(secs(7.0)));
        assert_eq!(p.retry_after("9999"), Some(secs(120.0)));
        assert_eq!(p.retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(p.retry_after("-1"), None);
    }
}
