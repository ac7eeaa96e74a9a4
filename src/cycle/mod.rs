//! One reconcile pass (SPEC §5 "A cycle"): observe (calendars, TRiNG `list`, the store) →
//! decide (`schedule::desired_at`, `plan::plan_queue`, both pure) → act (TRiNG writes, each
//! between an intent and an outcome in the store) → record.
//!
//! Generic over [`Calendars`], [`Pbx`] and [`Clock`] so the same code runs against Graph and
//! TRiNG, the simulators, and in-process fakes. Knows no rules itself: every decision is made
//! by the pure core; this module only gathers its inputs and carries out its output.
//!
//! One file per phase: `ports` (the traits and typed errors crossing them), `observe`,
//! `decide`, `act`, `deadlines` (SPEC §5's time budget of a cycle). This file holds the
//! [`Reconciler`] that carries state between cycles, and [`Reconciler::cycle`] that runs the
//! phases in order. The write protocol itself (SPEC §3 rule 7) is `crate::journal`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{CalendarRef, Member, QueueNo};
use crate::schedule::{self, Feeds, Schedule};
use crate::store::{CycleRecord, HeldWrite, Store, StoreError};

mod act;
mod deadlines;
use deadlines::Deadlines;
mod decide;
mod observe;
mod ports;
pub use decide::Decision;
pub use observe::{CalendarStatus, Lists, Observation, common_failures};
pub use ports::{
    CalendarResult, Calendars, Clock, Pbx, Permanence, ReadError, SystemClock, WriteError,
};

/// TRiNG calls in flight at once (tring-api.md "Limits": at most 4).
const TRING_CONCURRENCY: usize = 4;
/// SPEC §5: on shutdown, wait for the reply to the write in flight — "at most 5 s", and the
/// process must be gone within 5 s, so leave half a second to record the outcome and exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(4500);

/// Whether a cycle reads calendars first. A boundary cycle reuses the events of the last
/// read so a shift start reaches TRiNG within a second of `start − lead` (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Boundary,
}

/// What a cycle did; `once` turns it into the exit code (SPEC §4).
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    pub adds: u32,
    pub dels: u32,
    pub refused: u32,
    /// One sentence per failed calendar, queue or write, and per refused removal.
    pub errors: Vec<String>,
    pub calendars_failed: usize,
    pub calendars_total: usize,
    pub queues_failed: usize,
    pub queues_total: usize,
    /// The cycle stopped early because shutdown was requested.
    pub interrupted: bool,
    /// Writes held back because TRiNG refused them for good (SPEC §3 rule 9), this cycle.
    pub held: u32,
    /// The queues whose plan ran to its end with every write confirmed: only their desired
    /// sets count as applied, so a boundary cycle takes up the others again.
    pub applied_in_full: BTreeSet<QueueNo>,
    /// Each readable queue's membership after this cycle's successful writes.
    pub live_after: BTreeMap<QueueNo, BTreeSet<Member>>,
    /// Each queue's owned members after this cycle (filled only when metrics are kept).
    pub owned_after: BTreeMap<QueueNo, BTreeSet<Member>>,
    /// The instant the desired sets were computed for. Boundaries after it and before the
    /// cycle ended (it was writing) are still due: the daemon looks for the next boundary from
    /// here, not from the end of the cycle.
    pub decided_at: Option<DateTime<Utc>>,
}

impl CycleReport {
    /// SPEC §4 `once`: 0 when nothing failed and nothing was refused.
    pub fn all_good(&self) -> bool {
        self.errors.is_empty()
    }
    /// Every calendar or every queue failed: the daemon backs off (SPEC §5).
    pub fn everything_failed(&self) -> bool {
        (self.calendars_total > 0 && self.calendars_failed == self.calendars_total)
            || (self.queues_total > 0 && self.queues_failed == self.queues_total)
    }
}

/// Carries state between cycles: the events of the last read, which skipped events were
/// already warned about, and the adapters.
pub struct Reconciler<C, P, K> {
    cfg: Arc<Config>,
    calendars: C,
    /// Shared with the queue lists, which run beside the calendar reads.
    pbx: Arc<P>,
    clock: K,
    /// `None` before the first `once`/`run` created the state (`plan` on a fresh install).
    store: Option<Store>,
    dry_run: bool,
    /// Of each calendar's last good read: a fingerprint of its events, to tell whether the
    /// next read changed them (only then are they rewritten in the store). The events
    /// themselves are not kept: the schedule holds what the rules made of them, and the
    /// store the events of calendars whose read fails.
    fingerprints: HashMap<CalendarRef, u64>,
    schedule: Arc<Schedule>,
    /// Which calendars feed each queue (rule 1); fixed by the config.
    feeds: BTreeMap<QueueNo, Feeds>,
    /// Every calendar some rule reads; fixed by the config.
    needed: Vec<CalendarRef>,
    /// Every person's own calendar, for queues an `own` rule feeds.
    own_calendars: Vec<CalendarRef>,
    /// Each queue's desired set as of the last cycle: a boundary cycle only touches the
    /// queues whose set changed since.
    last_desired: BTreeMap<QueueNo, BTreeSet<Member>>,
    read_status: BTreeMap<CalendarRef, CalendarStatus>,
    /// How long one round of `list`s (TRING_CONCURRENCY at once) took in the last full
    /// listing; tells the next cycle when to start its lists during the reads.
    list_round: Option<Duration>,
    /// The skipped-event warnings already logged that still hold (their events not over).
    warned: HashSet<String>,
    /// A fingerprint of the persons, queues and rules: part of what a write held back by
    /// SPEC §3 rule 9 depends on.
    config_print: u64,
    metrics: Option<Arc<Metrics>>,
    /// Beaten as the cycle makes progress, for the watchdog (SPEC §5).
    heartbeat: Option<Arc<crate::watchdog::Heartbeat>>,
}

impl<C: Calendars, P: Pbx, K: Clock> Reconciler<C, P, K> {
    /// The daemon's heartbeat: beaten at each calendar read and before each write, so the
    /// watchdog tells a long cycle from a stuck one.
    pub fn set_heartbeat(&mut self, heartbeat: Arc<crate::watchdog::Heartbeat>) {
        self.heartbeat = Some(heartbeat);
    }

    fn beat(&self) {
        if let Some(h) = &self.heartbeat {
            h.beat();
        }
    }

    /// `dry_run` (SPEC §3 rule 5): no TRiNG writes and no state changes at all.
    pub async fn new(
        cfg: Arc<Config>,
        calendars: C,
        pbx: P,
        clock: K,
        store: Option<Store>,
        dry_run: bool,
    ) -> Result<Self, StoreError> {
        // The first cycle always reads (`read_status` is empty); until then the schedule is
        // empty and no calendar counts as read.
        let config_print = {
            let mut h = std::hash::DefaultHasher::new();
            format!("{:?}", (&cfg.persons, &cfg.queues, &cfg.rules)).hash(&mut h);
            h.finish()
        };
        Ok(Reconciler {
            config_print,
            schedule: Arc::new(Schedule::default()),
            needed: schedule::calendars_needed(&cfg.roster()),
            feeds: schedule::queue_feeds(&cfg.roster()),
            own_calendars: schedule::own_calendars(&cfg.roster()).into_iter().collect(),
            fingerprints: HashMap::new(),
            cfg,
            calendars,
            pbx: Arc::new(pbx),
            clock,
            store,
            dry_run,
            last_desired: BTreeMap::new(),
            read_status: BTreeMap::new(),
            list_round: None,
            warned: HashSet::new(),
            metrics: None,
            heartbeat: None,
        })
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn clock(&self) -> &K {
        &self.clock
    }
    pub fn calendars(&self) -> &C {
        &self.calendars
    }
    pub fn pbx(&self) -> &P {
        &self.pbx
    }
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }
    /// The schedule of the last read (coverage and gap alerts, SPEC §4).
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The next instant some queue's desired set changes, from the last events read.
    pub fn next_boundary(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_boundary(&self.cfg.roster(), after)
    }

    /// The store to write to: `None` in a dry run (SPEC §3 rule 5) or before the state
    /// exists. Every state write of a cycle, and the daemon's pruning, goes through this, so
    /// a dry run cannot write by forgetting a check; the store itself refuses writes when
    /// opened read-only as a second line.
    pub fn writer(&self) -> Option<&Store> {
        self.store.as_ref().filter(|_| !self.dry_run)
    }

    /// One full pass: observe, decide, act, record. Store errors end the cycle (the state
    /// is the safety net; without it nothing is written).
    pub async fn cycle(
        &mut self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, StoreError> {
        // `id` is the cycle record's (SPEC §4 "Logs": every line of a cycle carries it), filled
        // in once the store gave it; dry runs record no cycle and have none.
        let span =
            info_span!("cycle", id = tracing::field::Empty, mode = ?mode, dry_run = self.dry_run);
        self.cycle_inner(mode, cancel).instrument(span).await
    }

    async fn cycle_inner(
        &mut self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, StoreError> {
        let started = std::time::Instant::now();
        let deadlines = Deadlines::from_now(self.cfg.poll_interval);
        let start_at = self.clock.now();
        // A boundary cycle plans from the last read and only touches the queues whose desired
        // set changed, so the shift change reaches TRiNG in one `list` and one write.
        let only = match mode {
            Mode::Full => None,
            Mode::Boundary => {
                let changed = self.changed_queues(start_at);
                if changed.is_empty() {
                    debug!("boundary: no queue's desired set changed");
                    return Ok(CycleReport {
                        decided_at: Some(start_at),
                        ..CycleReport::default()
                    });
                }
                Some(changed)
            }
        };
        let cycle_id = match self.writer() {
            Some(s) => Some(s.start_cycle(start_at).await?),
            None => None,
        };
        if let Some(id) = cycle_id {
            tracing::Span::current().record("id", id.0);
        }
        // Reads may be dropped at shutdown (nothing is written yet); writes may not (`act`).
        let obs = tokio::select! {
            o = self.observe_queues(mode == Mode::Full, only.as_ref(), deadlines) => o?,
            _ = cancel.cancelled() => {
                info!("shutdown requested while reading; cycle abandoned before any write");
                return Ok(CycleReport { interrupted: true, ..CycleReport::default() });
            }
        };
        // Decide for the moment the observation is complete, not when it began: listing 200
        // queues takes a second, and a boundary passed meanwhile belongs in this plan.
        let decided_at = self.clock.now().max(obs.at);
        let decision = self.decide(&obs, decided_at);
        // Until this cycle shows otherwise, no queue observed counts as applied: a boundary
        // cycle then takes up a queue whose list or write failed (SPEC §5).
        for q in obs.live.keys() {
            self.last_desired.remove(q);
        }
        let mut report = CycleReport {
            decided_at: Some(decided_at),
            calendars_total: obs.calendars.len(),
            queues_total: obs.live.len(),
            live_after: obs
                .live
                .iter()
                .filter_map(|(q, r)| Some((q.clone(), r.as_ref().ok()?.clone())))
                .collect(),
            ..CycleReport::default()
        };

        let common = common_failures(&obs.calendars);
        let grouped: HashSet<&CalendarRef> = common.iter().flat_map(|(_, c)| c).collect();
        report
            .errors
            .extend(common.iter().map(|(line, _)| line.clone()));
        for (cal, status) in &obs.calendars {
            if let Some(e) = &status.error {
                report.calendars_failed += 1;
                if grouped.contains(cal) {
                    continue;
                }
                // Graph's errors already name the calendar; other sources may not.
                let line = if e.contains(&cal.to_string()) {
                    e.clone()
                } else {
                    format!("calendar {cal}: {e}")
                };
                report.errors.push(line);
            }
        }
        // Skipped events are warnings, not failures (SPEC §4), and said once per event. The
        // set remembered is this cycle's warnings (events not yet over), so it does not grow
        // for as long as the daemon runs.
        let said = std::mem::take(&mut self.warned);
        for w in &decision.desired.warnings {
            let line = w.to_string();
            if self.warned.insert(line.clone()) && !said.contains(&line) {
                warn!("{line}");
            }
        }
        for (q, r) in &obs.live {
            if let Err(e) = r {
                report.queues_failed += 1;
                error!(queue = %q, error = %e, permanent = e.is_permanent(), "queue list failed; the queue is left alone this cycle");
                report.errors.push(format!("queue {q}: list failed: {e}"));
            }
        }

        // Queues are written side by side, at most `TRING_CONCURRENCY` at once, and each
        // queue's plan one write at a time in plan order (tring-api.md "Limits": 4 requests in
        // flight, writes to one queue spaced). Every write still sits between its intent and
        // its outcome, so a crash leaves at most one open intent per queue being written, each
        // settled against that queue's `list` on the next start (SPEC §3 rule 7); on shutdown
        // every write in flight is finished and recorded (SPEC §5). Each queue's part runs to
        // its end (never dropped mid-write) and the parts merge in plan order, so the report
        // does not depend on which queue finished first.
        // A queue's part is built only when its turn comes: an unstarted one is as large as
        // its deepest await (the HTTP request inside), and a tenant has hundreds of queues.
        // The holds of SPEC §3 rule 9, read once for the cycle rather than once per queue.
        let mut held: BTreeMap<QueueNo, Vec<HeldWrite>> = BTreeMap::new();
        if let Some(store) = self.writer() {
            for h in store.held_writes().await? {
                held.entry(h.queue.clone()).or_default().push(h);
            }
        }
        let mut parts = Vec::with_capacity(decision.plans.len());
        {
            let mut waiting = decision.plans.iter().enumerate();
            let mut running = futures::stream::FuturesUnordered::new();
            loop {
                while running.len() < TRING_CONCURRENCY {
                    let Some((n, plan)) = waiting.next() else {
                        break;
                    };
                    let live = obs.live.get(&plan.queue).and_then(|r| r.as_ref().ok());
                    let holds = held.get(&plan.queue).map_or(&[][..], Vec::as_slice);
                    let part = self.act(plan, live, holds, cancel, &deadlines);
                    running.push(async move { (n, part.await) });
                }
                match running.next().await {
                    Some(done) => parts.push(done),
                    None => break,
                }
            }
        }
        parts.sort_by_key(|(n, _)| *n);
        for (_, part) in parts {
            let r = part?;
            report.adds += r.adds;
            report.dels += r.dels;
            report.refused += r.refused;
            report.errors.extend(r.errors);
            report.interrupted |= r.interrupted;
            report.held += r.held;
            for (q, live) in r.live_after {
                report.live_after.insert(q, live);
            }
            report.applied_in_full.extend(r.applied_in_full);
        }
        for q in &report.applied_in_full {
            if let Some(d) = decision.desired.queues.get(q) {
                self.last_desired
                    .insert(q.clone(), d.keys().cloned().collect());
            }
        }

        // Only the metrics gauge reads it: no extra query per cycle without metrics.
        if let (Some(store), Some(_)) = (&self.store, &self.metrics) {
            report.owned_after = store.owned_all().await?;
        }
        let elapsed = started.elapsed();
        info!(
            adds = report.adds,
            dels = report.dels,
            refused = report.refused,
            calendars = report.calendars_total,
            calendars_failed = report.calendars_failed,
            queues = report.queues_total,
            queues_failed = report.queues_failed,
            duration_ms = elapsed.as_millis() as u64,
            "cycle finished"
        );
        if let Some(m) = &self.metrics {
            m.cycle_finished(
                &report,
                elapsed,
                self.clock.now(),
                &decision,
                &obs,
                mode == Mode::Full,
            );
        }
        if let (Some(store), Some(id)) = (self.writer(), cycle_id) {
            store
                .finish_cycle(
                    id,
                    &CycleRecord {
                        ended: self.clock.now(),
                        adds: report.adds,
                        dels: report.dels,
                        refused: report.refused,
                        errors: report.errors.clone(),
                        dry_run: false,
                    },
                )
                .await?;
        }
        Ok(report)
    }
}
