//! The observe phase of a cycle (SPEC §5): every calendar a rule needs read (bounded, each
//! in full, failed ones counted as failed and their last stored events used for adds and
//! boundaries), every managed queue listed beside the reads, open intents settled against
//! those lists (SPEC §3 rule 7, `crate::journal`), and the owned sets read. Nothing here
//! decides or writes to TRiNG.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, warn};

use super::deadlines::Deadlines;
use super::ports::{CalendarResult, Calendars, Clock, Pbx, ReadError};
use super::{Reconciler, TRING_CONCURRENCY};
use crate::journal::Journal;
use crate::model::{CalendarRef, Event, Member, QueueNo};
use crate::schedule::{self, Schedule, ScheduleBuilder};
use crate::store::{CalendarRead, Store, StoreError};

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

impl<C: Calendars, P: Pbx, K: Clock> Reconciler<C, P, K> {
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
        let (from, to) = schedule::read_window(&self.cfg.roster(), now);
        // Until this read is over no calendar counts as read, so a read dropped half way (at
        // shutdown) can never lead to a removal. The old schedule goes first: at 100,000
        // events two side by side would set the daemon's peak memory.
        self.read_status.clear();
        let expected = self.schedule.len();
        self.schedule = Arc::new(Schedule::default());
        let mut builder =
            ScheduleBuilder::new(&self.cfg.roster()).with_capacity(expected + expected / 8);
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
            self.beat();
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
        match self.writer() {
            Some(store) => Journal::new(store).settle(live, now).await,
            None => Ok(()),
        }
    }

    /// Gathers what a decision needs. `read` = false reuses the events of the last read.
    pub async fn observe(&mut self, read: bool) -> Result<Observation, StoreError> {
        let deadlines = Deadlines::from_now(self.cfg.poll_interval);
        self.observe_queues(read, None, deadlines).await
    }

    pub(super) async fn observe_queues(
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
