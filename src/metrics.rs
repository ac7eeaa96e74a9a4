//! Optional metrics (SPEC §4 "Metrics"): the families the cycle updates, exposed in the
//! Prometheus text format on `GET /metrics` through `prometheus-client`, and `GET /healthz`,
//! whose verdict is [`crate::health::judge`]'s (the same sentence `status` prints).
//!
//! Every series with a known label set is created at 0 when the metrics are (outcomes,
//! actions, refusal kinds, AADSTS codes, each configured queue), so an `increase()` alert sees
//! the first failure. Holds no secrets and no calendar text: labels are queue numbers and
//! fixed words; no mailbox is a label (which calendars fail is `status`'s business).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

use crate::cycle::{CycleReport, Decision, Observation, WriteError, common_failures};
use crate::graph::GraphStats;
use crate::graph::token::TokenError;
use crate::health::{Health, HealthFacts, judge};
use crate::model::QueueNo;
use crate::plan::RefusalKind;
use crate::tring::WriteOutcome;

/// Upper bounds of the cycle duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Every outcome the Graph client counts a request under (`graph::client`).
const GRAPH_OUTCOMES: [&str; 10] = [
    "ok",
    "timeout",
    "transport_failed",
    "throttled",
    "server_error",
    "unauthorized",
    "access_denied",
    "forbidden",
    "not_found",
    "refused",
];
const SETS: [&str; 3] = ["live", "desired", "owned"];
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 for user
/// space on every architecture (sysconf(_SC_CLK_TCK) would need unsafe code for the same).
const USER_HZ: f64 = 100.0;

type Labels = Vec<(&'static str, String)>;
type GraphCounters = Box<dyn Fn() -> GraphStats + Send + Sync>;

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.into_iter().map(|(k, v)| (k, v.to_owned())).collect()
}

/// The families, registered once.
struct Families {
    cycles: Family<Labels, Counter>,
    cycle_duration: Histogram,
    tring: Family<Labels, Counter>,
    graph: Family<Labels, Counter>,
    graph_throttled: Counter,
    token_failures: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    members: Family<Labels, Gauge>,
    /// Per queue: when its next gap starts (0: none within 7 days), and the seconds of gap
    /// in the next 7 days (SPEC §4 "History and coverage").
    next_gap: Family<Labels, Gauge>,
    gap_seconds: Family<Labels, Gauge>,
    calendars: Gauge,
    calendars_failing: Gauge,
    last_cycle: Gauge,
    last_complete_read: Gauge,
    resident_memory: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    open_fds: Gauge,
}

/// Shared between the cycle (writer) and the HTTP endpoint (reader).
pub struct Metrics {
    registry: Registry,
    /// The process metrics, without the `rooster_` prefix.
    process: Registry,
    f: Families,
    facts: Mutex<HealthFacts>,
    graph: Option<GraphCounters>,
    /// Serialises scrapes: the pulled counters are brought up to date by their increase.
    scrape: Mutex<()>,
}

impl Metrics {
    /// Every family with its known series at 0; watching starts now (for `/healthz`).
    pub fn new(poll_interval: Duration) -> Self {
        Self::starting_at(poll_interval, Utc::now())
    }

    /// As [`Metrics::new`], watching since `since` (tests with their own clock).
    pub fn starting_at(poll_interval: Duration, since: DateTime<Utc>) -> Self {
        let mut registry = Registry::with_prefix("rooster");
        let f = Families {
            cycles: Family::default(),
            cycle_duration: Histogram::new(BUCKETS),
            tring: Family::default(),
            graph: Family::default(),
            graph_throttled: Counter::default(),
            token_failures: Family::default(),
            refusals: Family::default(),
            members: Family::default(),
            next_gap: Family::default(),
            gap_seconds: Family::default(),
            calendars: Gauge::default(),
            calendars_failing: Gauge::default(),
            last_cycle: Gauge::default(),
            last_complete_read: Gauge::default(),
            resident_memory: Gauge::default(),
            cpu_seconds: Counter::default(),
            open_fds: Gauge::default(),
        };
        for outcome in ["ok", "failed"] {
            let _ = f.cycles.get_or_create(&labels([("outcome", outcome)]));
        }
        for (action, outcomes) in [
            ("list", &["ok", "failed"][..]),
            (
                "add",
                &["applied", "already_in_state", "failed", "uncertain"],
            ),
            (
                "del",
                &["applied", "already_in_state", "failed", "uncertain"],
            ),
        ] {
            for outcome in outcomes {
                let _ = f
                    .tring
                    .get_or_create(&labels([("action", action), ("outcome", outcome)]));
            }
        }
        for outcome in GRAPH_OUTCOMES {
            let _ = f.graph.get_or_create(&labels([("outcome", outcome)]));
        }
        for code in TokenError::CODE_LABELS {
            let _ = f.token_failures.get_or_create(&labels([("code", code)]));
        }
        for kind in RefusalKind::ALL {
            let _ = f.refusals.get_or_create(&labels([("kind", kind.as_str())]));
        }
        registry.register(
            "cycles",
            "Reconcile cycles run, by outcome (failed: something failed or was refused)",
            f.cycles.clone(),
        );
        registry.register_with_unit(
            "cycle_duration",
            "Wall time of a reconcile cycle",
            Unit::Seconds,
            f.cycle_duration.clone(),
        );
        registry.register(
            "tring_requests",
            "TRiNG calls by action and outcome",
            f.tring.clone(),
        );
        registry.register(
            "graph_requests",
            "Microsoft Graph requests by outcome",
            f.graph.clone(),
        );
        registry.register(
            "graph_throttled",
            "Graph answers 429 or 503 (throttled)",
            f.graph_throttled.clone(),
        );
        registry.register(
            "graph_token_failures",
            "Failed Graph token requests by AADSTS code (7000222: the client secret expired; unreachable: no answer from Entra)",
            f.token_failures.clone(),
        );
        registry.register(
            "refusals",
            "Removals or queues held back by a safety rule, by kind",
            f.refusals.clone(),
        );
        registry.register(
            "queue_members",
            "Members per queue: live (TRiNG list), desired (calendars), owned (added by rooster)",
            f.members.clone(),
        );
        registry.register_with_unit(
            "queue_next_gap_timestamp",
            "Unix time at which the queue's next gap (nobody desired) starts, 0 when none within 7 days",
            Unit::Seconds,
            f.next_gap.clone(),
        );
        registry.register_with_unit(
            "queue_gap_next_7_days",
            "Seconds in the next 7 days in which nobody is desired in the queue",
            Unit::Seconds,
            f.gap_seconds.clone(),
        );
        registry.register("calendars", "Calendars the rules read", f.calendars.clone());
        registry.register(
            "calendars_failing",
            "Calendars whose last read failed (which ones: rooster status)",
            f.calendars_failing.clone(),
        );
        registry.register_with_unit(
            "last_cycle_timestamp",
            "Unix time the last cycle completed (0: none yet)",
            Unit::Seconds,
            f.last_cycle.clone(),
        );
        registry.register_with_unit(
            "last_complete_read_timestamp",
            "Unix time of the last cycle in which every calendar was read (0: none yet)",
            Unit::Seconds,
            f.last_complete_read.clone(),
        );
        registry.register(
            "build",
            "rooster's version",
            Info::new(labels([("version", env!("CARGO_PKG_VERSION"))])),
        );
        // The usual process metrics, under their usual unprefixed names.
        let mut process = Registry::default();
        process.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            f.resident_memory.clone(),
        );
        process.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            f.cpu_seconds.clone(),
        );
        process.register(
            "process_open_fds",
            "Open file descriptors",
            f.open_fds.clone(),
        );
        Metrics {
            registry,
            process,
            f,
            facts: Mutex::new(HealthFacts {
                poll_interval,
                since: Some(since),
                ..HealthFacts::default()
            }),
            graph: None,
            scrape: Mutex::new(()),
        }
    }

    /// Graph's request counters, read at scrape time.
    pub fn with_graph_counters(
        mut self,
        f: impl Fn() -> GraphStats + Send + Sync + 'static,
    ) -> Self {
        self.graph = Some(Box::new(f));
        self
    }

    /// The managed queues: their member series exist at 0 from start.
    pub fn with_queues<'a>(self, queues: impl IntoIterator<Item = &'a QueueNo>) -> Self {
        for q in queues {
            for set in SETS {
                let _ = self
                    .f
                    .members
                    .get_or_create(&labels([("queue", q.as_str()), ("set", set)]));
            }
        }
        self
    }

    /// The gap outlook of the last full cycle, per queue.
    pub fn gaps(&self, outlook: &std::collections::BTreeMap<QueueNo, crate::coverage::GapOutlook>) {
        for (q, o) in outlook {
            let l = labels([("queue", q.as_str())]);
            let next = o.next_gap.map_or(0, |(from, _)| from.timestamp());
            self.f.next_gap.get_or_create(&l).set(next);
            self.f.gap_seconds.get_or_create(&l).set(o.gap_seconds);
        }
    }

    fn facts(&self) -> std::sync::MutexGuard<'_, HealthFacts> {
        // A panic while holding the lock cannot leave the facts inconsistent in a way that
        // matters for monitoring; keep serving them.
        self.facts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn refusal(&self, kind: RefusalKind) {
        self.f
            .refusals
            .get_or_create(&labels([("kind", kind.as_str())]))
            .inc();
    }

    pub fn tring_write(&self, action: &'static str, result: &Result<WriteOutcome, WriteError>) {
        let outcome = match result {
            Ok(WriteOutcome::Applied) => "applied",
            Ok(WriteOutcome::AlreadyInState) => "already_in_state",
            Err(WriteError::Refused { .. }) => "failed",
            Err(WriteError::Uncertain(_)) => "uncertain",
        };
        self.f
            .tring
            .get_or_create(&labels([("action", action), ("outcome", outcome)]))
            .inc();
    }

    /// Records a finished cycle; `read` says whether it read the calendars itself (a full
    /// cycle) rather than reusing the last read (a boundary cycle).
    pub fn cycle_finished(
        &self,
        report: &CycleReport,
        elapsed: Duration,
        now: DateTime<Utc>,
        decision: &Decision,
        obs: &Observation,
        read: bool,
    ) {
        let f = &self.f;
        let outcome = if report.all_good() { "ok" } else { "failed" };
        f.cycles
            .get_or_create(&labels([("outcome", outcome)]))
            .inc();
        f.cycle_duration.observe(elapsed.as_secs_f64());
        for r in obs.live.values() {
            let list = if r.is_ok() { "ok" } else { "failed" };
            f.tring
                .get_or_create(&labels([("action", "list"), ("outcome", list)]))
                .inc();
        }
        let set = |q: &QueueNo, set: &str, n: usize| {
            f.members
                .get_or_create(&labels([("queue", q.as_str()), ("set", set)]))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        for (q, live) in &report.live_after {
            set(q, "live", live.len());
        }
        for q in obs.live.keys() {
            set(q, "owned", report.owned_after.get(q).map_or(0, |o| o.len()));
        }
        for (q, d) in &decision.desired.queues {
            set(q, "desired", d.len());
        }
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        f.calendars.set(count(report.calendars_total));
        f.calendars_failing.set(count(report.calendars_failed));
        if report.interrupted {
            return;
        }
        f.last_cycle.set(now.timestamp());
        if read && report.calendars_failed == 0 {
            f.last_complete_read.set(now.timestamp());
        }

        let mut facts = self.facts();
        facts.last_cycle = Some(now);
        facts.calendars_total = report.calendars_total;
        facts.queues_total = facts.queues_total.max(report.queues_total);
        let common = common_failures(&obs.calendars);
        if read && report.calendars_failed < report.calendars_total {
            facts.last_calendar_read = Some(now);
        }
        if read {
            let all_failed =
                report.calendars_total > 0 && report.calendars_failed == report.calendars_total;
            facts.calendar_cause = all_failed
                .then(|| {
                    common
                        .first()
                        .map(|(line, _)| line.clone())
                        .or_else(|| obs.calendars.values().find_map(|s| s.error.clone()))
                })
                .flatten();
        }
        if report.queues_failed < report.queues_total {
            facts.last_queue_listed = Some(now);
            facts.queue_cause = None;
        }
        let queue_errors: Vec<String> = obs
            .live
            .iter()
            .filter_map(|(q, r)| Some(format!("queue {q}: list failed: {}", r.as_ref().err()?)))
            .collect();
        if report.queues_total > 0 && report.queues_failed == report.queues_total {
            facts.queue_cause = queue_errors.first().cloned();
        }
        if read {
            let grouped: std::collections::HashSet<_> =
                common.iter().flat_map(|(_, c)| c.iter()).collect();
            facts.partial = common
                .iter()
                .map(|(line, _)| line.clone())
                .chain(obs.calendars.iter().filter_map(|(c, s)| {
                    (!grouped.contains(c)).then_some(s.error.clone()).flatten()
                }))
                .collect();
        } else {
            facts.partial.retain(|l| !l.starts_with("queue "));
        }
        facts.partial.extend(queue_errors);
    }

    /// SPEC §4 `/healthz`: the verdict at `now` ([`crate::health::judge`]).
    pub fn health(&self, now: DateTime<Utc>) -> Health {
        judge(&self.facts(), now)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(graph) = &self.graph {
            let s = graph();
            for (outcome, n) in &s.requests_by_outcome {
                let c = self.f.graph.get_or_create(&labels([("outcome", outcome)]));
                c.inc_by(n.saturating_sub(c.get()));
            }
            self.f
                .graph_throttled
                .inc_by(s.throttled.saturating_sub(self.f.graph_throttled.get()));
            for (code, n) in &s.token_failures {
                let c = self
                    .f
                    .token_failures
                    .get_or_create(&labels([("code", code)]));
                c.inc_by(n.saturating_sub(c.get()));
            }
        }
        let p = process_stats();
        if let Some(rss) = p.resident_bytes {
            self.f.resident_memory.set(rss);
        }
        if let Some(cpu) = p.cpu_seconds {
            let before = self.f.cpu_seconds.get();
            if cpu > before {
                self.f.cpu_seconds.inc_by(cpu - before);
            }
        }
        if let Some(fds) = p.open_fds {
            self.f.open_fds.set(fds);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.process);
        out
    }
}

/// This process's resident memory, CPU time and open descriptors, from `/proc/self`
/// (`None` where it cannot be read: not Linux, or no /proc).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessStats {
    resident_bytes: Option<i64>,
    cpu_seconds: Option<f64>,
    open_fds: Option<i64>,
}

fn process_stats() -> ProcessStats {
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_rss_bytes(&s));
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_seconds(&s));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX));
    ProcessStats {
        resident_bytes,
        cpu_seconds,
        open_fds,
    }
}

/// `VmRSS:    12345 kB` from `/proc/self/status`.
fn vm_rss_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`, in seconds. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
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
        m.render(),
    )
}

async fn healthz_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let h = m.health(Utc::now());
    let status = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, h.body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_self_is_parsed_even_with_a_command_name_holding_spaces() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 5 0 100 1000000 300 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.8));
        assert_eq!(
            vm_rss_bytes("Name:\trooster\nVmRSS:\t   2048 kB\n"),
            Some(2048 * 1024)
        );
        let live = process_stats();
        assert!(live.resident_bytes.is_some_and(|b| b > 0));
        assert!(live.open_fds.is_some_and(|n| n >= 3));
    }

    #[test]
    fn every_known_series_exists_at_zero_from_start() {
        let q = QueueNo::parse("600").expect("queue");
        let body = Metrics::new(Duration::from_secs(120))
            .with_queues([&q])
            .render();
        for line in [
            "rooster_cycles_total{outcome=\"failed\"} 0",
            "rooster_tring_requests_total{action=\"list\",outcome=\"failed\"} 0",
            "rooster_tring_requests_total{action=\"del\",outcome=\"uncertain\"} 0",
            "rooster_graph_requests_total{outcome=\"timeout\"} 0",
            "rooster_graph_token_failures_total{code=\"7000222\"} 0",
            "rooster_refusals_total{kind=\"keep_last\"} 0",
            "rooster_queue_members{queue=\"600\",set=\"owned\"} 0",
            "rooster_calendars_failing 0",
            "rooster_last_cycle_timestamp_seconds 0",
            "rooster_last_complete_read_timestamp_seconds 0",
            "rooster_graph_throttled_total 0",
            concat!(
                "rooster_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
            "# TYPE rooster_cycle_duration_seconds histogram",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
        ] {
            assert!(body.contains(line), "missing {line:?} in\n{body}");
        }
        assert!(!body.contains("calendar=\""), "no mailbox is a label");
    }
}
