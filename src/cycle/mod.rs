//! One reconcile pass (SPEC §5 "A cycle"): observe (calendars, TRiNG `list`, the store) →
//! decide (`schedule::desired_at`, `plan::plan_queue`, both pure) → act (TRiNG writes, each
//! between an intent and an outcome in the store) → record.
//!
//! Generic over [`Calendars`], [`Pbx`] and [`Clock`] so the same code runs against Graph and
//! TRiNG, the simulators, and in-process fakes. Knows no rules itself: every decision is made
//! by the pure core; this file only gathers its inputs and carries out its output.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{CalendarRef, Event, Member, QueueNo, sanitize};
use crate::plan::{
    ActionKind, PlanWarning, QueueInput, QueuePlan, RefusalKind, plan_queue, refusal_reason,
};
use crate::schedule::{self, Desired, Feeds, Schedule, ScheduleBuilder};
use crate::store::{
    CalendarRead, CycleRecord, HeldWrite, Intent, Outcome, Store, StoreError, WriteAction,
};
use crate::tring::WriteOutcome;

mod ports;
pub use ports::{
    CalendarResult, Calendars, Clock, Pbx, Permanence, ReadError, SystemClock, WriteError,
};

/// TRiNG calls in flight at once (tring-api.md "Limits": at most 4).
const TRING_CONCURRENCY: usize = 4;
/// SPEC §5: on shutdown, wait for the reply to the write in flight — "at most 5 s", and the
/// process must be gone within 5 s, so leave half a second to record the outcome and exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(4500);

/// SPEC §5: "a cycle ends within `poll_interval` even when everything fails (remaining
/// calendars count as failed)". Without it one unreachable Graph (5 s connect timeouts, 4
/// tries, backoff) would hold a 2,000-calendar cycle for an hour, and every boundary with it.
/// Reads get the first half of the interval, `list`s until three quarters, and no write starts
/// after the whole of it. Calendars not read by then count as failed (their last events from
/// the state still feed the schedule; removals from their queues are held back), queues not
/// listed are left alone, and writes not started wait for the next cycle. The write in flight
/// is never abandoned.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    poll: Duration,
    start: tokio::time::Instant,
    read: tokio::time::Instant,
    list: tokio::time::Instant,
    write: tokio::time::Instant,
}

impl Deadlines {
    fn from_now(poll: Duration) -> Self {
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
    fn share(&self, part: &str, deadline: tokio::time::Instant) -> String {
        format!(
            "{} ({part} of poll_interval {})",
            human(deadline - self.start),
            human(self.poll)
        )
    }
}

/// TRiNG `list` per queue; `Err` says why not (SPEC §3 rule 2).
pub type Lists = BTreeMap<QueueNo, Result<BTreeSet<Member>, ReadError>>;

/// When a full cycle starts its queue lists while the calendars are still being read: as
/// late as lets them end about when the reads do. Listing after the reads made a cycle the
/// sum of the two (200 lists at TRiNG's 4 in flight are 50 round trips, a second at 20 ms);
/// listing at once would make each list older than needed when the plan acts on it. The
/// estimate uses the pace the reads have shown so far and the last cycle's list rounds (the
/// reads' own pace before there is one). Should it be off, the lists end a little before the
/// reads, or a little after them; they never start later than the reads' end.
#[derive(Debug, Clone, Copy)]
struct ListStart {
    /// Calendars this read covers.
    calendars: usize,
    graph_concurrency: usize,
    /// Queues to list.
    lists: usize,
    /// One round of lists in the last cycle that listed every queue.
    list_round: Option<Duration>,
}

impl ListStart {
    /// Whether the lists are due, `read` calendars and `elapsed` into the reads.
    fn due(&self, read: usize, elapsed: Duration) -> bool {
        let in_flight = self.graph_concurrency.max(1);
        let left = self.calendars.saturating_sub(read);
        let read_rounds_left = left.div_ceil(in_flight);
        let list_rounds = self.lists.div_ceil(TRING_CONCURRENCY);
        if left == 0 || read == 0 {
            // Nothing to go on yet: take a round trip to either service to last as long.
            return read_rounds_left <= list_rounds;
        }
        // Rounds of reads so far (a fraction: the concurrency is not always filled).
        let read_rounds = read as f64 / in_flight as f64;
        let read_round = elapsed.div_f64(read_rounds);
        let reading_left = elapsed.mul_f64(left as f64 / read as f64);
        let listing = self
            .list_round
            .unwrap_or(read_round)
            .mul_f64(list_rounds as f64);
        reading_left <= listing
    }

    /// Resolves once the lists are due, or when the reads are over (`read` closed).
    fn when_due(self, mut read: watch::Receiver<usize>) -> impl Future<Output = ()> + Send {
        let began = tokio::time::Instant::now();
        async move {
            loop {
                let so_far = *read.borrow_and_update();
                if self.due(so_far, began.elapsed()) || read.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A duration as an operator reads it, to the millisecond: `1m 30s`, `1s 500ms`.
fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(
        d.as_millis().try_into().unwrap_or(u64::MAX),
    ))
}

/// The calendars of `cals` with no result yet when the read deadline passed, as failed reads.
fn unread(
    cals: &[CalendarRef],
    read: &BTreeMap<CalendarRef, CalendarStatus>,
    deadlines: &Deadlines,
) -> Vec<CalendarResult> {
    let within = deadlines.share("half", deadlines.read);
    cals.iter()
        .filter(|c| !read.contains_key(*c))
        .map(|c| {
            let e = format!("calendar {c}: not read within {within}; counted as failed this cycle");
            (c.clone(), Err(ReadError::transient(e)))
        })
        .collect()
}

/// Logs the failures with a common cause: one line per cause naming the number of calendars
/// it cost (SPEC §4 "Logs"), or the calendar's own line when only one has it.
fn log_common_failures(
    status: &BTreeMap<CalendarRef, CalendarStatus>,
    shared: &[(CalendarRef, ReadError)],
) {
    let common = common_failures(status);
    for (cal, e) in shared {
        if !common.iter().any(|(_, cals)| cals.contains(cal)) {
            warn!(calendar = %cal, error = %e, "calendar read failed; removals from queues it feeds are held back");
        }
    }
    for (line, cals) in &common {
        let permanent = shared
            .iter()
            .any(|(c, e)| cals.contains(c) && e.is_permanent());
        if permanent {
            error!(
                calendars_failed = cals.len(),
                "{line}; removals from the queues they feed are held back"
            );
        } else {
            warn!(
                calendars_failed = cals.len(),
                "{line}; removals from the queues they feed are held back"
            );
        }
    }
}

/// How one calendar fared in this cycle's read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarStatus {
    pub calendar: String,
    pub complete: bool,
    pub error: Option<String>,
    /// The cause, when many calendars share it ([`ReadError::common`]).
    #[serde(skip)]
    pub common: Option<String>,
}

/// The failed calendars of `status` whose cause is common to two or more of them, as one
/// sentence per cause ("12 of 12 calendars not read: graph token refused: …") with the
/// calendars it covers; a cause only one calendar has stays that calendar's own line.
/// SPEC §4 "Logs": such a failure is one line per cycle, and one entry in the cycle record.
pub fn common_failures(
    status: &BTreeMap<CalendarRef, CalendarStatus>,
) -> Vec<(String, BTreeSet<CalendarRef>)> {
    let mut by_cause: BTreeMap<&str, BTreeSet<CalendarRef>> = BTreeMap::new();
    for (cal, s) in status {
        if let Some(cause) = &s.common {
            by_cause.entry(cause).or_default().insert(cal.clone());
        }
    }
    by_cause
        .into_iter()
        .filter(|(_, cals)| cals.len() > 1)
        .map(|(cause, cals)| {
            let line = format!(
                "{} of {} calendars not read: {cause}",
                cals.len(),
                status.len()
            );
            (line, cals)
        })
        .collect()
}

/// Everything a decision needs, gathered by [`Reconciler::observe`].
#[derive(Debug, Clone)]
pub struct Observation {
    pub at: DateTime<Utc>,
    /// The schedule of the last read (built once per read, not per question asked): from
    /// the fresh events where the read succeeded, the last events stored where it failed (so
    /// boundaries and adds keep working through an outage; dels are held back by rule 1).
    pub schedule: Arc<Schedule>,
    pub calendars: BTreeMap<CalendarRef, CalendarStatus>,
    /// TRiNG `list` per managed queue; `Err` holds the sentence saying why not (rule 2).
    pub live: Lists,
    pub owned: BTreeMap<QueueNo, BTreeSet<Member>>,
}

/// The decision for one instant: desired sets and one plan per queue.
#[derive(Debug, Clone)]
pub struct Decision {
    pub desired: Desired,
    pub plans: Vec<QueuePlan>,
}

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
            needed: schedule::calendars_needed(&cfg),
            feeds: schedule::queue_feeds(&cfg),
            own_calendars: schedule::own_calendars(&cfg).into_iter().collect(),
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

    /// The next instant some queue's desired set changes, from the last events read.
    pub fn next_boundary(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_boundary(&self.cfg, after)
    }

    /// The store to write to: `None` in a dry run (SPEC §3 rule 5) or before the state
    /// exists. Every state write of a cycle, and the daemon's pruning, goes through this, so
    /// a dry run cannot write by forgetting a check; the store itself refuses writes when
    /// opened read-only as a second line.
    pub fn writer(&self) -> Option<&Store> {
        self.store.as_ref().filter(|_| !self.dry_run)
    }

    /// Reads every calendar a rule needs and builds the schedule from them, one calendar at a
    /// time as each read completes; a calendar that failed contributes its last events from
    /// the store.
    async fn read_calendars(
        &mut self,
        now: DateTime<Utc>,
        deadlines: Deadlines,
        // Calendars read so far. Dropped when the reads end, however they end, which lets
        // the lists start if they have not yet.
        progress: watch::Sender<usize>,
    ) -> Result<(), StoreError> {
        let (from, to) = schedule::read_window(&self.cfg, now);
        // Until this read is over no calendar counts as read, so a read dropped half way (at
        // shutdown) can never lead to a removal. The old schedule goes first: at 100,000
        // events two side by side would set the daemon's peak memory.
        self.read_status.clear();
        let expected = self.schedule.len();
        self.schedule = Arc::new(Schedule::default());
        let mut builder = ScheduleBuilder::new(&self.cfg).with_capacity(expected + expected / 8);
        let mut status = BTreeMap::new();
        let mut pending = PendingReads::default();
        let mut shared: Vec<(CalendarRef, ReadError)> = Vec::new();
        // Field by field (not `self.writer()`), as the loop below updates `fingerprints`.
        let store = self.store.as_ref().filter(|_| !self.dry_run);
        // The reads stop at the read deadline; the calendars not read by then follow as failed.
        let mut results = std::pin::pin!(
            self.calendars
                .read_all(&self.needed, from, to)
                .take_until(tokio::time::sleep_until(deadlines.read))
        );
        let mut late: Option<std::vec::IntoIter<CalendarResult>> = None;
        loop {
            let (cal, result) = match &mut late {
                None => match results.next().await {
                    Some(read) => read,
                    None => {
                        late = Some(unread(&self.needed, &status, &deadlines).into_iter());
                        continue;
                    }
                },
                Some(rest) => match rest.next() {
                    Some(read) => read,
                    None => break,
                },
            };
            progress.send_replace(status.len() + 1);
            if let Some(h) = &self.heartbeat {
                h.beat();
            }
            status.insert(
                cal.clone(),
                CalendarStatus {
                    calendar: cal.to_string(),
                    complete: result.is_ok(),
                    error: result.as_ref().err().map(ToString::to_string),
                    common: result.as_ref().err().and_then(|e| e.common.clone()),
                },
            );
            match result {
                Ok(events) => {
                    builder.add_calendar(&cal, &events);
                    let print = fingerprint(&events);
                    if store.is_some() {
                        if self.fingerprints.get(&cal) == Some(&print) {
                            pending.unchanged(cal.clone());
                        } else {
                            pending.changed(cal.clone(), events);
                        }
                    }
                    self.fingerprints.insert(cal, print);
                }
                Err(e) => {
                    // A cause many calendars share is logged once, after the reads.
                    if e.common.is_none() {
                        warn!(calendar = %cal, error = %e, "calendar read failed; removals from queues it feeds are held back");
                    } else {
                        shared.push((cal.clone(), e.clone()));
                    }
                    // Boundaries and adds keep working on the last events read.
                    if let Some(s) = &self.store
                        && let Some(events) = s.calendar_events(&cal).await?
                    {
                        builder.add_calendar(&cal, &events);
                    }
                    if store.is_some() {
                        pending.failed(cal, e.message);
                    }
                }
            }
            if pending.full()
                && let Some(s) = store
            {
                pending.flush(s, now).await?;
            }
        }
        if let Some(s) = store {
            pending.flush(s, now).await?;
        }
        log_common_failures(&status, &shared);
        self.schedule = Arc::new(builder.finish());
        self.read_status = status;
        Ok(())
    }

    /// The managed queues in `only` (all when `None`), in config order.
    fn queues_to_list(&self, only: Option<&BTreeSet<QueueNo>>) -> Vec<QueueNo> {
        self.cfg
            .queues
            .iter()
            .filter(|q| only.is_none_or(|o| o.contains(&q.number)))
            .map(|q| q.number.clone())
            .collect()
    }

    /// `list` for `queues`, at most [`TRING_CONCURRENCY`] at once, once `due` says so. Owns
    /// what it uses, so it can run beside the calendar reads; also says how long one round of
    /// lists took.
    fn list_queues<D: Future<Output = ()> + Send>(
        &self,
        queues: Vec<QueueNo>,
        deadlines: Deadlines,
        due: D,
    ) -> impl Future<Output = (Lists, Option<Duration>)> + Send + use<C, P, K, D> {
        let pbx = Arc::clone(&self.pbx);
        async move {
            due.await;
            let began = tokio::time::Instant::now();
            let within = deadlines.share("three quarters", deadlines.list);
            let rounds = queues.len().div_ceil(TRING_CONCURRENCY);
            // The futures are built before they enter the stream (no closure returning a
            // future inside it), which keeps the cycle's future `Send` for `tokio::spawn`.
            let lists: Vec<_> = queues
                .into_iter()
                .map(|q| {
                    let pbx = &pbx;
                    let within = &within;
                    async move {
                        let live = tokio::time::timeout_at(deadlines.list, pbx.list(&q))
                            .await
                            .unwrap_or_else(|_| {
                                Err(ReadError::transient(format!("no answer within {within}")))
                            });
                        (q, live)
                    }
                })
                .collect();
            let live: Lists = futures::stream::iter(lists)
                .buffer_unordered(TRING_CONCURRENCY)
                .collect()
                .await;
            let all_answered = live.values().all(Result::is_ok);
            let round = (rounds > 0 && all_answered)
                .then(|| began.elapsed() / u32::try_from(rounds).unwrap_or(u32::MAX));
            (live, round)
        }
    }

    /// SPEC §3 rule 7: open intents (a crash, or a write whose reply never came) are decided
    /// against live before anything is planned.
    async fn settle_open_intents(
        &self,
        live: &Lists,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(store) = self.writer() else {
            return Ok(());
        };
        for (id, intent) in store.open_intents().await? {
            let Some(Ok(set)) = live.get(&intent.queue) else {
                continue; // unreadable now: settle on a later cycle
            };
            let present = set.contains(&intent.member);
            let applied = match intent.action {
                WriteAction::Add => present,
                WriteAction::Del => !present,
            };
            let note = match (intent.action, applied) {
                (WriteAction::Add, true) => {
                    "found live after the write's reply was lost; taken as owned (had someone added it by hand meanwhile, rooster now owns it)"
                }
                (WriteAction::Add, false) => "not live: the add never reached TRiNG",
                (WriteAction::Del, true) => {
                    "gone from live: the del reached TRiNG; no longer owned"
                }
                (WriteAction::Del, false) => "still live: the del never reached TRiNG",
            };
            warn!(
                queue = %intent.queue,
                member = %intent.member,
                action = %intent.action,
                intent = %id,
                "open intent settled: {note}"
            );
            store.settle_intent(id, applied, note, now).await?;
        }
        Ok(())
    }

    /// Gathers what a decision needs. `read` = false reuses the events of the last read.
    pub async fn observe(&mut self, read: bool) -> Result<Observation, StoreError> {
        let deadlines = Deadlines::from_now(self.cfg.poll_interval);
        self.observe_queues(read, None, deadlines).await
    }

    async fn observe_queues(
        &mut self,
        read: bool,
        only: Option<&BTreeSet<QueueNo>>,
        deadlines: Deadlines,
    ) -> Result<Observation, StoreError> {
        let at = self.clock.now();
        let queues = self.queues_to_list(only);
        let (live, round) = if read || self.read_status.is_empty() {
            // The lists run beside the reads, started so that both end about together (see
            // `ListStart`): the cycle takes the longer of the two rather than their sum, and each
            // list is about as fresh when the plan acts on it as if it had followed the reads.
            // (SPEC §5 names the steps in order; the lists need nothing the reads give.)
            let (progress, read_so_far) = watch::channel(0);
            let start = ListStart {
                calendars: self.needed.len(),
                graph_concurrency: self.cfg.graph.concurrency,
                lists: queues.len(),
                list_round: self.list_round,
            };
            let lists = self.list_queues(queues, deadlines, start.when_due(read_so_far));
            let read = self.read_calendars(at, deadlines, progress);
            let (read, lists) = tokio::join!(read, lists);
            read?;
            lists
        } else {
            self.list_queues(queues, deadlines, async {}).await
        };
        if only.is_none() && round.is_some() {
            self.list_round = round;
        }
        self.settle_open_intents(&live, at).await?;
        let owned = match &self.store {
            Some(s) => s.owned_all().await?,
            None => BTreeMap::new(),
        };
        Ok(Observation {
            at,
            schedule: self.schedule.clone(),
            calendars: self.read_status.clone(),
            live,
            owned,
        })
    }

    /// The queues whose desired set at `at` differs from the last cycle's (all of them before
    /// the first cycle).
    fn changed_queues(&self, at: DateTime<Utc>) -> BTreeSet<QueueNo> {
        let desired = self.schedule.desired_at(&self.cfg, at);
        desired
            .queues
            .into_iter()
            .filter(|(q, d)| {
                self.last_desired
                    .get(q)
                    .is_none_or(|last| !last.iter().eq(d.keys()))
            })
            .map(|(q, _)| q)
            .collect()
    }

    /// Desired membership at `at` and the plan that turns live (as observed) into it.
    pub fn decide(&self, obs: &Observation, at: DateTime<Utc>) -> Decision {
        let desired = obs.schedule.desired_at(&self.cfg, at);
        let read_well = |c: &CalendarRef| obs.calendars.get(c).is_some_and(|s| s.complete);
        let own_read_well = self.own_calendars.iter().all(read_well);
        let empty_members = BTreeMap::new();
        let empty_set = BTreeSet::new();
        // Only the queues observed: all of them, or at a boundary those whose set changed.
        let plans =
            self.cfg
                .queues
                .iter()
                .filter(|q| obs.live.contains_key(&q.number))
                .map(|q| {
                    let complete = self.feeds.get(&q.number).is_none_or(|f| {
                        (!f.own || own_read_well) && f.shared.iter().all(read_well)
                    });
                    plan_queue(&QueueInput {
                        queue: q,
                        desired: desired.queues.get(&q.number).unwrap_or(&empty_members),
                        live: obs.live.get(&q.number).and_then(|r| r.as_ref().ok()),
                        owned: obs.owned.get(&q.number).unwrap_or(&empty_set),
                        complete,
                        persons: &self.cfg.persons,
                        timezone: self.cfg.timezone,
                    })
                })
                .collect();
        Decision { desired, plans }
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
                    let part = self.act(plan, live, cancel, &deadlines);
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

    /// Carries out one queue's plan: logs refusals and warnings, writes each action between
    /// an intent and an outcome, forgets owned members that left by themselves.
    /// One queue's part of the cycle, as a report of its own (merged by the caller).
    async fn act(
        &self,
        plan: &QueuePlan,
        live: Option<&BTreeSet<Member>>,
        cancel: &CancellationToken,
        deadlines: &Deadlines,
    ) -> Result<CycleReport, StoreError> {
        let mut report = CycleReport::default();
        // A queue whose turn comes after shutdown was requested is not started at all.
        if cancel.is_cancelled() {
            report.interrupted = true;
            return Ok(report);
        }
        if let Some(live) = live {
            report.live_after.insert(plan.queue.clone(), live.clone());
        }
        self.act_on(plan, cancel, deadlines, &mut report).await?;
        Ok(report)
    }

    async fn act_on(
        &self,
        plan: &QueuePlan,
        cancel: &CancellationToken,
        deadlines: &Deadlines,
        report: &mut CycleReport,
    ) -> Result<(), StoreError> {
        let q = &plan.queue;
        for w in &plan.warnings {
            // With nothing held back, the calendar's own failure (logged above) says it all.
            if !matches!(w, PlanWarning::IncompleteRead { postponed: 0, .. }) {
                warn!(queue = %q, "{w}");
            }
        }
        let mut refusal_lines = Vec::new();
        for r in &plan.refused {
            let member = r.member.as_ref().map(|m| m.to_string()).unwrap_or_default();
            self.refused(q, &member, r.kind, &r.reason, report, &mut refusal_lines);
        }
        let unreadable = plan
            .refused
            .iter()
            .any(|r| r.kind == RefusalKind::UnreadableQueue);
        if self.dry_run {
            for a in &plan.actions {
                info!(action = ?a.kind, queue = %q, member = %a.member, person = a.person.as_deref().unwrap_or("-"), reason = %a.reason, "dry run: would write");
            }
            if !unreadable {
                report.applied_in_full.insert(q.clone());
            }
            return Ok(());
        }
        let Some(store) = self.writer().cloned() else {
            return Ok(());
        };
        if unreadable {
            // Rule 2: nothing is known of this queue; its holds stay as they are.
            store.set_refusals(q, &refusal_lines).await?;
            return Ok(());
        }
        for m in &plan.forget_owned {
            info!(queue = %q, member = %m, "owned member left the queue outside rooster and is not desired; no longer owned");
            store.forget_owned(q, m).await?;
        }
        let basis = self.basis(q);
        let now = self.clock.now();
        let mut held: BTreeMap<(Member, WriteAction), HeldWrite> = store
            .held_writes()
            .await?
            .into_iter()
            .filter(|h| &h.queue == q)
            .map(|h| ((h.member.clone(), h.action), h))
            .collect();
        let wanted: Vec<(Member, WriteAction)> = plan
            .actions
            .iter()
            .map(|a| (a.member.clone(), write_action(a.kind)))
            .collect();
        // Holds of writes the plan no longer wants are over (SPEC §3 rule 9: "until the
        // config or the calendars feeding it change").
        store.release_held_writes(q, &wanted).await?;
        held.retain(|k, _| wanted.contains(k));

        // SPEC §3 rules 1, 3 and 4 asked again before each del, of the gate the plan asked,
        // now told only what TRiNG confirmed (an add that failed, was held back or whose
        // answer never came counts as not applied).
        let mut gate = plan.gate.clone();
        let mut in_full = true;
        for (n, a) in plan.actions.iter().enumerate() {
            self.beat();
            // SPEC §5 / STYLE 11: shutdown is checked between writes, never inside one.
            if cancel.is_cancelled() {
                report.interrupted = true;
                in_full = false;
                break;
            }
            // No write starts after the cycle's time is up; the next cycle plans them again.
            if tokio::time::Instant::now() >= deadlines.write {
                let left = plan.actions.len() - n;
                let line = format!(
                    "queue {q}: {left} write(s) postponed to the next cycle: this one reached poll_interval {}",
                    human(deadlines.poll)
                );
                warn!("{line}");
                report.errors.push(line);
                in_full = false;
                break;
            }
            let person = a.person.as_deref().unwrap_or("-");
            let action = write_action(a.kind);
            if a.kind == ActionKind::Del
                && let Some(kind) = gate.refuses(&a.member)
            {
                let mut reason = refusal_reason(kind, q, &a.member, gate.max_removals());
                if kind == RefusalKind::KeepLast {
                    reason.push_str(": the member meant to replace it was not added");
                }
                let member = a.member.to_string();
                self.refused(q, &member, kind, &reason, report, &mut refusal_lines);
                in_full = false;
                continue;
            }
            // SPEC §3 rule 9: a write TRiNG refused for good is not sent again until the
            // config or the calendars feeding the queue change, or an hour has passed.
            if let Some(h) = held.get(&(a.member.clone(), action))
                && h.basis == basis
                && now < h.since + HOLD_FOR
            {
                debug!(action = action.as_str(), queue = %q, member = %a.member, person, answer = %h.answer, "write held back: TRiNG refused it for good earlier");
                report.held += 1;
                report.errors.push(held_line(h));
                in_full = false;
                continue;
            }
            let id = store
                .record_intent(&Intent {
                    queue: q.clone(),
                    member: a.member.clone(),
                    action,
                    person: a.person.clone(),
                    reason: sanitize(&a.reason, 300),
                    at: self.clock.now(),
                })
                .await?;
            if a.kind == ActionKind::Del {
                gate.del_sent(&a.member);
            }
            let write = self.pbx.write(a.kind, q, &a.member);
            let result = tokio::select! {
                r = write => r,
                _ = async { cancel.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                    Err(WriteError::Uncertain("shutdown before TRiNG answered".into()))
                }
            };
            if let Some(m) = &self.metrics {
                m.tring_write(action.as_str(), &result);
            }
            match result {
                Ok(outcome) => {
                    let recorded = match outcome {
                        WriteOutcome::Applied => Outcome::Applied,
                        WriteOutcome::AlreadyInState => Outcome::AlreadyInState,
                    };
                    store
                        .record_outcome(id, &recorded, self.clock.now())
                        .await?;
                    if held.remove(&(a.member.clone(), action)).is_some() {
                        let still: Vec<_> = held.keys().cloned().collect();
                        store.release_held_writes(q, &still).await?;
                    }
                    let live = report.live_after.entry(q.clone()).or_default();
                    match a.kind {
                        ActionKind::Add => {
                            gate.added(&a.member);
                            report.adds += 1;
                            live.insert(a.member.clone());
                        }
                        ActionKind::Del => {
                            report.dels += 1;
                            live.remove(&a.member);
                        }
                    }
                    let msg = match (a.kind, a.drift) {
                        (ActionKind::Add, false) => "member added",
                        (ActionKind::Add, true) => "member added again after drift",
                        (ActionKind::Del, _) => "member removed",
                    };
                    info!(action = action.as_str(), queue = %q, member = %a.member, person, reason = %a.reason, "{msg}");
                }
                Err(WriteError::Refused {
                    permanence,
                    message,
                }) => {
                    in_full = false;
                    store
                        .record_outcome(id, &Outcome::Failed(message.clone()), self.clock.now())
                        .await?;
                    if a.kind == ActionKind::Del {
                        gate.del_refused(&a.member);
                    }
                    if permanence == Permanence::Permanent {
                        let h = HeldWrite {
                            queue: q.clone(),
                            member: a.member.clone(),
                            action,
                            person: a.person.clone(),
                            answer: sanitize(&message, 300),
                            basis,
                            since: self.clock.now(),
                        };
                        error!(action = action.as_str(), queue = %q, member = %a.member, person, answer = %h.answer, "TRiNG refused the write for a reason retrying cannot fix; not sending it again until the config or the calendars feeding the queue change, or for an hour");
                        store.hold_write(&h).await?;
                        report.held += 1;
                        report.errors.push(held_line(&h));
                    } else {
                        error!(action = action.as_str(), queue = %q, member = %a.member, person, error = %message, "write failed; the next cycle tries again");
                        report.errors.push(format!(
                            "queue {q}: {action} {} failed: {message}",
                            a.member
                        ));
                    }
                }
                Err(WriteError::Uncertain(e)) => {
                    in_full = false;
                    // The intent stays open; the next cycle's `list` settles it.
                    store
                        .record_outcome(id, &Outcome::Uncertain(e.clone()), self.clock.now())
                        .await?;
                    warn!(action = action.as_str(), queue = %q, member = %a.member, person, error = %e, "write outcome unknown; settled against the queue next cycle");
                    report
                        .errors
                        .push(format!("queue {q}: {} {} uncertain: {e}", action, a.member));
                }
            }
        }
        store.set_refusals(q, &refusal_lines).await?;
        if in_full {
            report.applied_in_full.insert(q.clone());
        }
        Ok(())
    }

    /// Logs and counts one del held back by a safety rule (the plan's or the executor's).
    fn refused(
        &self,
        q: &QueueNo,
        member: &str,
        kind: RefusalKind,
        reason: &str,
        report: &mut CycleReport,
        lines: &mut Vec<String>,
    ) {
        match kind {
            RefusalKind::KeepLast => {
                error!(queue = %q, member = %member, kind = "keep_last", "removal refused: {reason}")
            }
            // Already reported as the list failure.
            RefusalKind::UnreadableQueue => {}
            _ => {
                warn!(queue = %q, member = %member, kind = ?kind, "removal refused: {reason}")
            }
        }
        if kind != RefusalKind::UnreadableQueue {
            report.refused += 1;
            report
                .errors
                .push(format!("queue {q}: removal of {member} refused: {reason}"));
        }
        if let Some(m) = &self.metrics {
            m.refusal(kind);
        }
        lines.push(format!("{kind:?}: {member} {reason}"));
    }

    /// What a held write depends on (SPEC §3 rule 9): the config, and the last good read of
    /// every calendar feeding `q`. When it changes, a held write is tried again.
    fn basis(&self, q: &QueueNo) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.config_print.hash(&mut h);
        if let Some(f) = self.feeds.get(q) {
            let own = self.own_calendars.iter().filter(|_| f.own);
            for cal in own.chain(f.shared.iter()) {
                self.fingerprints
                    .get(cal)
                    .copied()
                    .unwrap_or(0)
                    .hash(&mut h);
            }
        }
        h.finish()
    }
}

/// SPEC §3 rule 9: how long a permanent refusal holds a write back at most.
const HOLD_FOR: chrono::Duration = chrono::Duration::hours(1);

fn write_action(kind: ActionKind) -> WriteAction {
    match kind {
        ActionKind::Add => WriteAction::Add,
        ActionKind::Del => WriteAction::Del,
    }
}

/// The sentence `once` and the cycle record carry while a write is held back.
fn held_line(h: &HeldWrite) -> String {
    let person = h
        .person
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    format!(
        "queue {}: {} {}{person} held back: TRiNG refused it for good ({}); not sent again until the config or the calendars feeding the queue change, or an hour after {}",
        h.queue,
        h.action,
        h.member,
        h.answer,
        h.since.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// A calendar's events in 64 bits, to tell whether a read changed anything since the last one.
/// Computed and compared in this process only, never stored. Two different reads colliding
/// would only skip rewriting that calendar's events in the store until they change again.
fn fingerprint(events: &[Event]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    events.hash(&mut h);
    h.finish()
}

/// Calendar reads waiting to be recorded. Recorded in batches: one transaction (one disk
/// sync) per batch rather than per calendar, while the events of changed calendars held
/// meanwhile stay a few thousand, not a whole tenant's.
#[derive(Default)]
struct PendingReads {
    changed: Vec<(CalendarRef, Vec<Event>)>,
    events: usize,
    unchanged: Vec<CalendarRef>,
    failed: Vec<(CalendarRef, String)>,
}

impl PendingReads {
    /// Events of changed calendars held before a batch is written.
    const MAX_EVENTS: usize = 2_000;

    fn changed(&mut self, cal: CalendarRef, events: Vec<Event>) {
        self.events += events.len();
        self.changed.push((cal, events));
    }
    fn unchanged(&mut self, cal: CalendarRef) {
        self.unchanged.push(cal);
    }
    fn failed(&mut self, cal: CalendarRef, error: String) {
        self.failed.push((cal, error));
    }
    fn full(&self) -> bool {
        self.events >= Self::MAX_EVENTS
    }

    async fn flush(&mut self, store: &Store, at: DateTime<Utc>) -> Result<(), StoreError> {
        let records: Vec<(CalendarRef, CalendarRead<'_>)> = self
            .changed
            .iter()
            .map(|(cal, events)| (cal.clone(), CalendarRead::Changed(events)))
            .chain(
                self.unchanged
                    .iter()
                    .map(|cal| (cal.clone(), CalendarRead::Unchanged)),
            )
            .chain(
                self.failed
                    .iter()
                    .map(|(cal, e)| (cal.clone(), CalendarRead::Failed(e))),
            )
            .collect();
        if !records.is_empty() {
            store.record_calendar_reads(at, &records).await?;
        }
        *self = PendingReads::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(calendars: usize, lists: usize, list_round: Option<Duration>) -> ListStart {
        ListStart {
            calendars,
            graph_concurrency: 8,
            lists,
            list_round,
        }
    }
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn lists_start_at_once_when_listing_takes_longer_than_reading() {
        // 100 calendars are 13 rounds at 8 in flight, 200 lists 50 rounds at 4.
        assert!(start(100, 200, None).due(0, Duration::ZERO));
        assert!(start(100, 200, Some(20 * MS)).due(0, Duration::ZERO));
    }

    #[test]
    fn on_a_large_tenant_lists_wait_until_the_reads_left_take_as_long_as_listing() {
        // 2,000 calendars (250 rounds) and 200 lists (50 rounds), both 20 ms a round trip.
        let s = start(2000, 200, None);
        assert!(!s.due(0, Duration::ZERO));
        // 800 read in 100 rounds: 150 rounds (3 s) left against 1 s of lists.
        assert!(!s.due(800, 2000 * MS));
        // 1,610 read in 201.25 rounds: 48.75 rounds (0.975 s) left.
        assert!(s.due(1610, 4025 * MS));
        assert!(s.due(2000, 5000 * MS));
    }

    #[test]
    fn the_last_cycles_list_rounds_set_the_start() {
        // Reads at 100 ms a round, lists at 20 ms: 50 rounds of lists take 1 s, so they start
        // with about 10 rounds of reads (80 calendars) left, not 50.
        let s = start(2000, 200, Some(20 * MS));
        assert!(!s.due(1600, 20_000 * MS));
        assert!(!s.due(1900, 23_750 * MS));
        assert!(s.due(1930, 24_125 * MS));
        // Without a measured list round, the reads' pace stands in for it.
        assert!(start(2000, 200, None).due(1610, 20_125 * MS));
    }

    #[test]
    fn nothing_to_read_or_list_is_due_at_once() {
        assert!(start(0, 200, None).due(0, Duration::ZERO));
        assert!(start(5, 0, None).due(5, MS));
    }
}
