//! Optional metrics (SPEC §4 "Metrics"): counters the cycle updates, rendered as Prometheus
//! text on `GET /metrics`, and `GET /healthz` (200 while the last cycle completed within 3
//! poll intervals, else 503). Names follow Prometheus conventions: `rooster_` prefix, base
//! units, `_total` for counters.
//!
//! Holds no secrets and no calendar text: labels are queue numbers, calendar addresses from the
//! config, and fixed words.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::cycle::{CycleReport, Decision, Observation, WriteError};
use crate::plan::RefusalKind;
use crate::tring::WriteOutcome;

/// Upper bounds of the cycle duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

type GraphCounters = Box<dyn Fn() -> (BTreeMap<String, u64>, u64) + Send + Sync>;

#[derive(Default)]
struct Inner {
    cycles: BTreeMap<&'static str, u64>,
    duration_buckets: [u64; BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    tring: BTreeMap<(&'static str, &'static str), u64>,
    refusals: BTreeMap<&'static str, u64>,
    members: BTreeMap<(String, &'static str), usize>,
    calendar_failures: BTreeMap<String, u64>,
    last_good_cycle: Option<DateTime<Utc>>,
    last_cycle: Option<DateTime<Utc>>,
}

/// Shared between the cycle (writer) and the HTTP endpoint (reader).
pub struct Metrics {
    inner: Mutex<Inner>,
    poll_interval: Duration,
    graph: Option<GraphCounters>,
}

impl Metrics {
    pub fn new(poll_interval: Duration) -> Self {
        Metrics {
            inner: Mutex::new(Inner::default()),
            poll_interval,
            graph: None,
        }
    }

    /// Graph request counters by outcome and the throttled count, read at scrape time.
    pub fn with_graph_counters(
        mut self,
        f: impl Fn() -> (BTreeMap<String, u64>, u64) + Send + Sync + 'static,
    ) -> Self {
        self.graph = Some(Box::new(f));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave counters inconsistent in a way that
        // matters for monitoring; keep serving them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn calendar_read(&self, calendar: &str, ok: bool) {
        if !ok {
            *self
                .lock()
                .calendar_failures
                .entry(calendar.to_owned())
                .or_default() += 1;
        }
    }

    pub fn refusal(&self, kind: RefusalKind) {
        let name = match kind {
            RefusalKind::IncompleteRead => "incomplete_read",
            RefusalKind::KeepLast => "keep_last",
            RefusalKind::RemovalCap => "removal_cap",
            RefusalKind::UnreadableQueue => "unreadable_queue",
        };
        *self.lock().refusals.entry(name).or_default() += 1;
    }

    pub fn tring_write(&self, action: &'static str, result: &Result<WriteOutcome, WriteError>) {
        let outcome = match result {
            Ok(WriteOutcome::Applied) => "applied",
            Ok(WriteOutcome::AlreadyInState) => "already_in_state",
            Err(WriteError::Refused { .. }) => "failed",
            Err(WriteError::Uncertain(_)) => "uncertain",
        };
        *self.lock().tring.entry((action, outcome)).or_default() += 1;
    }

    pub fn cycle_finished(
        &self,
        report: &CycleReport,
        elapsed: Duration,
        now: DateTime<Utc>,
        decision: &Decision,
        obs: &Observation,
    ) {
        let mut m = self.lock();
        let outcome = if report.all_good() { "ok" } else { "failed" };
        *m.cycles.entry(outcome).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                m.duration_buckets[i] += 1;
            }
        }
        m.duration_count += 1;
        m.duration_sum += secs;
        for r in obs.live.values() {
            let list_outcome = if r.is_ok() { "ok" } else { "failed" };
            *m.tring.entry(("list", list_outcome)).or_default() += 1;
        }
        for (q, live) in &report.live_after {
            m.members.insert((q.to_string(), "live"), live.len());
        }
        for q in obs.live.keys() {
            m.members.insert(
                (q.to_string(), "owned"),
                report.owned_after.get(q).map_or(0, |o| o.len()),
            );
        }
        for (q, d) in &decision.desired.queues {
            m.members.insert((q.to_string(), "desired"), d.len());
        }
        m.last_cycle = Some(now);
        if !report.interrupted && report.queues_failed < report.queues_total.max(1) {
            m.last_good_cycle = Some(now);
        }
    }

    /// SPEC §4: healthy while the last cycle completed within 3 poll intervals.
    pub fn healthy(&self, now: DateTime<Utc>) -> bool {
        let limit = chrono::Duration::from_std(self.poll_interval * 3).unwrap_or_default();
        self.lock()
            .last_good_cycle
            .is_some_and(|t| now - t <= limit)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let m = self.lock();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            out.len()
        };
        family(
            "rooster_cycles_total",
            "counter",
            "Reconcile cycles run, by outcome.",
        );
        let mut lines = String::new();
        for outcome in ["ok", "failed"] {
            let _ = writeln!(
                lines,
                "rooster_cycles_total{{outcome=\"{outcome}\"}} {}",
                m.cycles.get(outcome).copied().unwrap_or(0)
            );
        }
        out.push_str(&lines);
        let _ = writeln!(
            out,
            "# HELP rooster_cycle_duration_seconds Wall time of a reconcile cycle.\n# TYPE rooster_cycle_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "rooster_cycle_duration_seconds_bucket{{le=\"{b}\"}} {}",
                m.duration_buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "rooster_cycle_duration_seconds_bucket{{le=\"+Inf\"}} {}\nrooster_cycle_duration_seconds_sum {}\nrooster_cycle_duration_seconds_count {}",
            m.duration_count, m.duration_sum, m.duration_count
        );
        let _ = writeln!(
            out,
            "# HELP rooster_tring_requests_total TRiNG calls by action and outcome.\n# TYPE rooster_tring_requests_total counter"
        );
        for ((action, outcome), n) in &m.tring {
            let _ = writeln!(
                out,
                "rooster_tring_requests_total{{action=\"{action}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        if let Some(graph) = &self.graph {
            let (by_outcome, throttled) = graph();
            let _ = writeln!(
                out,
                "# HELP rooster_graph_requests_total Microsoft Graph requests by outcome.\n# TYPE rooster_graph_requests_total counter"
            );
            for (outcome, n) in by_outcome {
                let _ = writeln!(
                    out,
                    "rooster_graph_requests_total{{outcome=\"{}\"}} {n}",
                    label(&outcome)
                );
            }
            let _ = writeln!(
                out,
                "# HELP rooster_graph_throttled_total Graph responses 429/503 (throttled).\n# TYPE rooster_graph_throttled_total counter\nrooster_graph_throttled_total {throttled}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rooster_refusals_total Removals or queues held back by a safety rule, by kind.\n# TYPE rooster_refusals_total counter"
        );
        for kind in [
            "incomplete_read",
            "keep_last",
            "removal_cap",
            "unreadable_queue",
        ] {
            let _ = writeln!(
                out,
                "rooster_refusals_total{{kind=\"{kind}\"}} {}",
                m.refusals.get(kind).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP rooster_queue_members Members per queue: live (TRiNG list), desired (calendars), owned (added by rooster).\n# TYPE rooster_queue_members gauge"
        );
        for ((q, set), n) in &m.members {
            let _ = writeln!(
                out,
                "rooster_queue_members{{queue=\"{q}\",set=\"{set}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rooster_calendar_read_failures_total Failed calendar reads, by calendar.\n# TYPE rooster_calendar_read_failures_total counter"
        );
        for (cal, n) in &m.calendar_failures {
            let _ = writeln!(
                out,
                "rooster_calendar_read_failures_total{{calendar=\"{}\"}} {n}",
                label(cal)
            );
        }
        let _ = writeln!(
            out,
            "# HELP rooster_last_successful_cycle_timestamp_seconds Unix time of the last cycle that completed.\n# TYPE rooster_last_successful_cycle_timestamp_seconds gauge\nrooster_last_successful_cycle_timestamp_seconds {}",
            m.last_good_cycle.map_or(0, |t| t.timestamp())
        );
        let _ = writeln!(
            out,
            "# HELP rooster_seconds_since_last_successful_cycle Seconds since the last cycle that completed (-1 before the first).\n# TYPE rooster_seconds_since_last_successful_cycle gauge\nrooster_seconds_since_last_successful_cycle {}",
            m.last_good_cycle.map_or(-1, |t| (now - t).num_seconds())
        );
        out
    }
}

/// Escapes a label value (Prometheus text format: backslash, quote, newline).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics` and `/healthz` on `addr` until `cancel`. Returns the bound address
/// (useful with port 0 in tests).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(metrics);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok(bound)
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(Utc::now()),
    )
}

async fn healthz_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.healthy(Utc::now()) {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no cycle completed within 3 poll intervals\n",
        )
    }
}
