//! End-to-end: the real cycle and daemon against the Graph and TRiNG simulators, for the
//! SPEC §3 rules that live above the pure plan (5 dry runs, 6 idempotence, 7 crash-safe
//! ownership, 8 one writer) and for rule 1 and drift as a whole, plus boundary wake-ups and
//! the CLI's exit codes. SPEC §5's read, list and write deadlines are tested on tokio's paused
//! clock against in-test ports instead (see `HeldClock`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rooster::config::Config;
use rooster::cycle::{Mode, Pbx, ReadError, Reconciler, SystemClock, WriteError};
use rooster::daemon::{self, NoNotifier};
use rooster::graph::GraphClient;
use rooster::graph::client::{GraphOptions, RetryPolicy as GraphRetry};
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Member, QueueNo, Secret, Sensitivity, ShowAs,
};
use rooster::plan::ActionKind;
use rooster::sim::graph::{GraphFault, GraphFaultKind, GraphSim, GraphSimOptions};
use rooster::sim::tring::{Action, Fault, FaultKind, SimTringOptions, TringSim};
use rooster::store::{OpenMode, Outcome, Store, StoreError};
use rooster::tring::{
    KnownMembers, RetryPolicy as TringRetry, TringClient, TringClientOptions, WriteOutcome,
};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const KEY: &str = "cycle-test-tring-key";
const SECRET: &str = "cycle-test-graph-secret";
const LIMIT: Duration = Duration::from_secs(20);

fn q(s: &str) -> QueueNo {
    QueueNo::parse(s).unwrap()
}
fn m(s: &str) -> Member {
    s.parse().unwrap()
}
fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

fn shift(id: &str, category: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: format!("{category} shift"),
        when: EventTime::Timed { start, end },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories: vec![category.into()],
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

/// Jan, Piet and Anouk; queue 600 (Support, additive) fed by Support shifts and 610 (Sales,
/// exclusive) by Sales shifts. Secrets in `tring-key` and `graph-secret` beside the file.
fn config_text(tring: &url::Url, graph: &url::Url, authority: &url::Url) -> String {
    format!(
        r#"
poll_interval = "10m"
state = "rooster.db"
[tring]
base_url = "{tring}"
tenant = "ACME"
key_file = "tring-key"
[graph]
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_file = "graph-secret"
base_url = "{graph}"
authority = "{authority}"
[[person]]
name = "Jan de Vries"
mailbox = "jan@t.nl"
extension = "201"
[[person]]
name = "Piet Jansen"
mailbox = "piet@t.nl"
extension = "202"
[[person]]
name = "Anouk Bakker"
mailbox = "anouk@t.nl"
extension = "203"
[[queue]]
number = "600"
name = "Support"
[[queue]]
number = "610"
name = "Sales"
ownership = "exclusive"
[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]
[[rule]]
name = "sales shifts"
calendar = "own"
match = {{ categories = ["Sales"] }}
queues = ["610"]
"#
    )
}

struct Harness {
    tring: TringSim,
    graph: GraphSim,
    cfg: Arc<Config>,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(&[]).await
    }

    /// With `extra` queues besides 600/610/620, each fed by the category of its own number.
    async fn start_with(extra: &[&str]) -> Harness {
        let mut queues = vec![
            (q("600"), vec![m("ext:299")]),
            (q("610"), vec![]),
            (q("620"), vec![]),
        ];
        queues.extend(extra.iter().map(|n| (q(n), vec![])));
        let tring = TringSim::start(SimTringOptions {
            key: Secret::new(KEY),
            tenant: "ACME".into(),
            queues,
            ..SimTringOptions::default()
        })
        .await
        .unwrap();
        let graph = GraphSim::start(GraphSimOptions {
            client_secret: SECRET.into(),
            ..GraphSimOptions::default()
        })
        .await
        .unwrap();
        for p in ["jan@t.nl", "piet@t.nl", "anouk@t.nl"] {
            graph.set_events(&mb(p), None, vec![]);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tring-key"), KEY).unwrap();
        std::fs::write(dir.path().join("graph-secret"), SECRET).unwrap();
        let text = config_text(&tring.base_url(), &graph.base_url(), &graph.authority())
            + r#"[[queue]]
number = "620"
name = "Backoffice"
ownership = "exclusive"
keep_last = false
max_removals = 2
"#;
        let text = extra.iter().fold(text, |t, n| {
            t + &format!(
                "[[queue]]\nnumber = \"{n}\"\n[[rule]]\nname = \"{n} shifts\"\ncalendar = \"own\"\nmatch = {{ categories = [\"Q{n}\"] }}\nqueues = [\"{n}\"]\n"
            )
        });
        let path = dir.path().join("rooster.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = Arc::new(Config::parse(&text, &path).unwrap());
        Harness {
            tring,
            graph,
            cfg,
            dir,
        }
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("rooster.toml")
    }

    fn clients(&self) -> (GraphClient, TringClient) {
        let graph = GraphClient::with_options(
            &self.cfg.graph,
            Secret::new(SECRET),
            GraphOptions {
                retry: GraphRetry {
                    max_tries: 2,
                    base_delay: Duration::from_millis(10),
                    ..GraphRetry::default()
                },
                ..GraphOptions::default()
            },
        )
        .unwrap();
        let tring = TringClient::with_options(
            &self.cfg.tring,
            Secret::new(KEY),
            TringClientOptions {
                retry: TringRetry {
                    max_tries: 2,
                    base_delay: Duration::from_millis(10),
                    ..TringRetry::default()
                },
                request_timeout: Duration::from_secs(2),
                ..TringClientOptions::default()
            },
        )
        .unwrap()
        .with_known_members(KnownMembers::from_config(&self.cfg));
        (graph, tring)
    }

    async fn store(&self) -> Store {
        Store::open(&self.cfg.state, OpenMode::Writer)
            .await
            .unwrap()
    }

    async fn reconciler(
        &self,
        store: Option<Store>,
        dry_run: bool,
    ) -> Reconciler<GraphClient, TringClient, SystemClock> {
        let (g, t) = self.clients();
        Reconciler::new(self.cfg.clone(), g, t, SystemClock, store, dry_run)
            .await
            .unwrap()
    }

    fn members(&self, queue: &str) -> BTreeSet<Member> {
        self.tring.members(&q(queue)).into_iter().collect()
    }

    fn writes(&self) -> usize {
        self.tring
            .requests()
            .iter()
            .filter(|r| matches!(r.action, Some(Action::Add | Action::Del | Action::Clean)))
            .count()
    }

    fn lists(&self) -> usize {
        self.tring
            .requests()
            .iter()
            .filter(|r| matches!(r.action, Some(Action::List)))
            .count()
    }

    /// Jan on a Support shift now.
    fn jan_on_shift(&self) {
        let now = Utc::now();
        self.graph.set_events(
            &mb("jan@t.nl"),
            None,
            vec![shift(
                "jan-1",
                "Support",
                now - chrono::Duration::hours(1),
                now + chrono::Duration::hours(1),
            )],
        );
    }
}

async fn cycle<C: rooster::cycle::Calendars, P: Pbx>(
    rec: &mut Reconciler<C, P, SystemClock>,
) -> rooster::cycle::CycleReport {
    timeout(LIMIT, rec.cycle(Mode::Full, &CancellationToken::new()))
        .await
        .expect("a cycle against the simulators hung")
        .expect("the state could not be written")
}

fn set(items: &[&str]) -> BTreeSet<Member> {
    items.iter().map(|s| m(s)).collect()
}

#[tokio::test]
async fn second_cycle_with_the_same_calendars_writes_nothing() {
    // SPEC §3 rule 6.
    let h = Harness::start().await;
    h.jan_on_shift();
    let mut rec = h.reconciler(Some(h.store().await), false).await;
    let report = cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
    h.tring.clear_requests();
    let report = cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(h.writes(), 0, "an unchanged cycle wrote to TRiNG");
    assert_eq!(h.lists(), 3, "exactly one list per managed queue");
}

#[tokio::test]
async fn dry_run_writes_nothing_to_tring_or_state() {
    // SPEC §3 rule 5.
    let h = Harness::start().await;
    h.jan_on_shift();
    // A state exists (created by a writer) but the dry run must not change it.
    drop(h.store().await);
    let store = Store::open(&h.cfg.state, OpenMode::ReadOnly).await.unwrap();
    let mut rec = h.reconciler(Some(store), true).await;
    let obs = rec.observe(true).await.unwrap();
    let plan = rec.decide(&obs, obs.at);
    assert_eq!(
        plan.plans[0].actions.len(),
        1,
        "the dry run sees the add it would make"
    );
    cycle(&mut rec).await;
    assert_eq!(h.writes(), 0, "a dry run wrote to TRiNG");
    assert_eq!(h.members("600"), set(&["ext:299"]));
    let check = h.store().await;
    assert!(
        check.last_cycle().await.unwrap().is_none(),
        "a dry run recorded a cycle"
    );
    assert!(check.owned_all().await.unwrap().is_empty());
    assert!(check.calendar_states().await.unwrap().is_empty());
}

#[tokio::test]
async fn graph_outage_holds_back_removals_and_hand_made_members_survive() {
    // SPEC §3 rule 1 and additive ownership, end to end.
    let h = Harness::start().await;
    h.jan_on_shift();
    let mut rec = h.reconciler(Some(h.store().await), false).await;
    cycle(&mut rec).await;
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));

    // The shift is deleted, but Graph is down: nothing may be removed.
    h.graph.set_events(&mb("jan@t.nl"), None, vec![]);
    h.graph.set_outage(true);
    let report = cycle(&mut rec).await;
    assert!(!report.all_good());
    assert_eq!(report.dels, 0);
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));

    h.graph.set_outage(false);
    let report = cycle(&mut rec).await;
    assert_eq!(report.dels, 1, "{:?}", report.errors);
    assert_eq!(
        h.members("600"),
        set(&["ext:299"]),
        "owned member removed, hand-made one kept"
    );
}

#[tokio::test]
async fn restarted_during_a_graph_outage_adds_from_the_events_stored_before() {
    // The daemon keeps no calendar events between reads; a calendar whose read fails
    // contributes its last good read from the state, also right after a restart.
    let h = Harness::start().await;
    h.jan_on_shift();
    {
        let mut rec = h.reconciler(Some(h.store().await), false).await;
        assert!(cycle(&mut rec).await.all_good());
    }
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
    // Someone removes Jan by hand, rooster restarts, and Graph is down.
    h.tring.set_members(&q("600"), vec![m("ext:299")]);
    h.graph.set_outage(true);
    let mut rec = h.reconciler(Some(h.store().await), false).await;
    let report = cycle(&mut rec).await;
    assert!(!report.all_good(), "every calendar read failed");
    assert_eq!(report.calendars_failed, 3);
    assert_eq!(report.adds, 1, "{:?}", report.errors);
    assert_eq!(report.dels, 0);
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
}

#[tokio::test]
async fn calendar_reads_are_recorded_in_batches_and_rewritten_only_when_changed() {
    // More changed events than one batch holds: every calendar still ends up stored.
    let h = Harness::start().await;
    let base = Utc::now() + chrono::Duration::hours(1);
    let many = |who: &str, n: i64| -> Vec<Event> {
        (0..n)
            .map(|i| {
                let start = base + chrono::Duration::minutes(10 * i);
                shift(
                    &format!("{who}-{i}"),
                    "Support",
                    start,
                    start + chrono::Duration::minutes(5),
                )
            })
            .collect()
    };
    h.graph
        .set_events(&mb("jan@t.nl"), None, many("jan", 1_500));
    h.graph
        .set_events(&mb("piet@t.nl"), None, many("piet", 1_500));
    h.graph
        .set_events(&mb("anouk@t.nl"), None, many("anouk", 10));
    let store = h.store().await;
    let mut rec = h.reconciler(Some(store.clone()), false).await;
    assert!(cycle(&mut rec).await.all_good());
    let stored = store.last_events().await.unwrap();
    let count = |who: &str| stored[&rooster::model::CalendarRef::default_of(mb(who))].len();
    assert_eq!(
        (count("jan@t.nl"), count("piet@t.nl"), count("anouk@t.nl")),
        (1_500, 1_500, 10)
    );
    // Unchanged on the next read: the events stay, the good-read time moves.
    let before = store.calendar_states().await.unwrap();
    h.graph
        .set_events(&mb("anouk@t.nl"), None, many("anouk", 3));
    assert!(cycle(&mut rec).await.all_good());
    let stored = store.last_events().await.unwrap();
    let count = |who: &str| stored[&rooster::model::CalendarRef::default_of(mb(who))].len();
    assert_eq!(
        (count("jan@t.nl"), count("piet@t.nl"), count("anouk@t.nl")),
        (1_500, 1_500, 3)
    );
    let after = store.calendar_states().await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert!(a.last_good_read > b.last_good_read, "{}", a.calendar);
    }
}

// ---------------------------------------------------------------------------------------
// SPEC §5 "a cycle ends within poll_interval": the read, list and write deadlines, on tokio's
// paused clock against in-test ports, so every instant asserted is exact and no test waits
// for one in wall-clock time.

/// The poll interval of the deadline tests: reads until 1 s, lists until 1.5 s, no write
/// started from 2 s on.
const POLL: Duration = Duration::from_secs(2);

/// Jan, Piet and Anouk each on a Support and a Sales shift now.
fn shifts_now() -> BTreeMap<Mailbox, Vec<Event>> {
    let now = Utc::now();
    let (from, to) = (
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    );
    ["jan", "piet", "anouk"]
        .into_iter()
        .map(|p| {
            let shifts = vec![
                shift(&format!("{p}-support"), "Support", from, to),
                shift(&format!("{p}-sales"), "Sales", from, to),
            ];
            (mb(&format!("{p}@t.nl")), shifts)
        })
        .collect()
}

fn everyone_on_shift(h: &Harness) {
    for (mailbox, events) in shifts_now() {
        h.graph.set_events(&mailbox, None, events);
    }
}

/// Holds tokio's paused clock still except in the windows a test opens with
/// [`HeldClock::run_until`].
///
/// Why: the store's SQLite connection answers from sqlx's worker thread, outside the
/// runtime. While a store call waits for it, a paused runtime has nothing to run and moves
/// its clock on to the next timer. Tried on this code: `Store::open` alone fails at once with
/// `PoolTimedOut` (sqlx's 30 s acquire timeout has "passed"), and a store call made while a
/// cycle deadline is pending moves the clock to that deadline, so the cycle would see its
/// reads or writes cut short by its own bookkeeping. A running `spawn_blocking` task stops
/// the clock from moving by itself (tokio `time::pause`, "Preventing auto-advance"): while
/// the clock is held, store calls take no virtual time. A test opens a window only while the
/// cycle waits on nothing but the fake ports and its own deadlines, which the fakes tell it
/// (see each test), and the window closes at an instant the test names, before the cycle's
/// next store call: in the window the clock runs as it would in the daemon.
struct HeldClock(Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>>);

impl HeldClock {
    /// Held from now on; call first, before the store is opened.
    fn new() -> Self {
        let clock = HeldClock(Arc::default());
        hold(&clock.0);
        clock
    }

    /// Lets the clock run until `until`, then holds it again.
    fn run_until(&self, until: tokio::time::Instant) {
        let slot = self.0.clone();
        // Spawned before the hold is let go: the runtime runs it (and so sets its timer)
        // before it can next move the clock, which therefore never passes `until`.
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            hold(&slot);
        });
        self.0.lock().unwrap().take();
    }
}

/// Holds the clock until the sender put in `slot` is dropped, or for [`LIMIT`] of wall time:
/// then a test that hangs with the clock held ends in its own (virtual) timeouts.
fn hold(slot: &std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv_timeout(LIMIT);
    });
    *slot.lock().unwrap() = Some(release);
}

/// How a fake calendar, queue list or write answers once asked.
#[derive(Debug, Clone, Copy, Default)]
enum Answer {
    #[default]
    Now,
    After(Duration),
    Never,
}

impl Answer {
    async fn wait(self) {
        match self {
            Answer::Now => {}
            Answer::After(d) => tokio::time::sleep(d).await,
            Answer::Never => std::future::pending().await,
        }
    }
}

/// What the cycle did with the fake ports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    ReadAsked(Mailbox),
    ReadAnswered(Mailbox),
    /// The cycle stopped waiting for a read that had not answered (dropped it).
    ReadGivenUp(Mailbox),
    /// The cycle is done with the calendars (dropped the read stream).
    ReadsDone,
    ListAsked(QueueNo),
    ListAnswered(QueueNo),
    ListGivenUp(QueueNo),
    WriteAsked(QueueNo, Member),
    WriteAnswered(QueueNo, Member),
    /// The cycle stopped waiting for a write's reply (dropped it).
    WriteGivenUp(QueueNo, Member),
}

/// The calendars and queues behind the fake ports, and what the cycle did with them, when.
/// Kept in a watch channel, so a test can wait for the moment to let time run.
#[derive(Default)]
struct World {
    events: BTreeMap<Mailbox, Vec<Event>>,
    reads: BTreeMap<Mailbox, Answer>,
    lists: BTreeMap<QueueNo, Answer>,
    writes: Answer,
    members: BTreeMap<QueueNo, BTreeSet<Member>>,
    seen: Vec<(tokio::time::Instant, Seen)>,
}

impl World {
    fn note(&mut self, what: Seen) {
        self.seen.push((tokio::time::Instant::now(), what));
    }

    fn count(&self, what: impl Fn(&Seen) -> bool) -> usize {
        self.seen.iter().filter(|(_, s)| what(s)).count()
    }

    /// Writes asked and not yet answered.
    fn writes_in_flight(&self) -> usize {
        self.count(|s| matches!(s, Seen::WriteAsked(..)))
            - self.count(|s| matches!(s, Seen::WriteAnswered(..)))
    }

    /// When each `what` happened, as time since `t0`.
    fn when(&self, t0: tokio::time::Instant, what: impl Fn(&Seen) -> bool) -> Vec<Duration> {
        self.seen
            .iter()
            .filter(|(_, s)| what(s))
            .map(|(at, _)| *at - t0)
            .collect()
    }
}

type SharedWorld = Arc<tokio::sync::watch::Sender<World>>;

/// Everyone on shift; queue 600 holds ext:299, put there by hand; 610 is empty. Every read,
/// list and write answers at once until a test says otherwise.
fn fake_world() -> SharedWorld {
    let world = World {
        events: shifts_now(),
        members: BTreeMap::from([(q("600"), set(&["ext:299"])), (q("610"), set(&[]))]),
        ..World::default()
    };
    Arc::new(tokio::sync::watch::Sender::new(world))
}

/// Waits until `done` holds of the world.
async fn until(world: &SharedWorld, what: &str, done: impl FnMut(&World) -> bool) {
    timeout(LIMIT, world.subscribe().wait_for(done))
        .await
        .unwrap_or_else(|_| panic!("the cycle never got to: {what}"))
        .expect("the world is kept by the test");
}

/// Notes `what` when dropped, unless defused first.
struct NoteOnDrop(SharedWorld, Option<Seen>);

impl NoteOnDrop {
    fn defuse(&mut self) {
        self.1 = None;
    }
}

impl Drop for NoteOnDrop {
    fn drop(&mut self) {
        if let Some(what) = self.1.take() {
            self.0.send_modify(|w| w.note(what));
        }
    }
}

/// The calendars of the [`World`].
struct FakeCalendars(SharedWorld);

impl rooster::cycle::Calendars for FakeCalendars {
    fn read_all<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> impl futures::Stream<Item = rooster::cycle::CalendarResult> + Send + 'a {
        use futures::StreamExt;
        let world = &self.0;
        let reads: Vec<_> = cals
            .iter()
            .map(|cal| async move {
                let mailbox = cal.mailbox.clone();
                let (answer, events) = {
                    let w = world.borrow();
                    let events = w.events.get(&mailbox).cloned().unwrap_or_default();
                    (w.reads.get(&mailbox).copied().unwrap_or_default(), events)
                };
                world.send_modify(|w| w.note(Seen::ReadAsked(mailbox.clone())));
                let mut given_up =
                    NoteOnDrop(world.clone(), Some(Seen::ReadGivenUp(mailbox.clone())));
                answer.wait().await;
                given_up.defuse();
                world.send_modify(|w| w.note(Seen::ReadAnswered(mailbox)));
                (cal.clone(), Ok(events))
            })
            .collect();
        let done = NoteOnDrop(world.clone(), Some(Seen::ReadsDone));
        futures::stream::iter(reads)
            .buffer_unordered(cals.len().max(1))
            .map(move |read| {
                let _ = &done;
                read
            })
    }
}

/// The queues of the [`World`].
struct FakePbx(SharedWorld);

impl Pbx for FakePbx {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        let answer = self
            .0
            .borrow()
            .lists
            .get(queue)
            .copied()
            .unwrap_or_default();
        self.0
            .send_modify(|w| w.note(Seen::ListAsked(queue.clone())));
        let mut given_up = NoteOnDrop(self.0.clone(), Some(Seen::ListGivenUp(queue.clone())));
        answer.wait().await;
        given_up.defuse();
        let mut live = BTreeSet::new();
        self.0.send_modify(|w| {
            w.note(Seen::ListAnswered(queue.clone()));
            live = w.members.get(queue).cloned().unwrap_or_default();
        });
        Ok(live)
    }

    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let answer = self.0.borrow().writes;
        self.0
            .send_modify(|w| w.note(Seen::WriteAsked(queue.clone(), member.clone())));
        let mut given_up = NoteOnDrop(
            self.0.clone(),
            Some(Seen::WriteGivenUp(queue.clone(), member.clone())),
        );
        answer.wait().await;
        given_up.defuse();
        let mut changed = false;
        self.0.send_modify(|w| {
            w.note(Seen::WriteAnswered(queue.clone(), member.clone()));
            let members = w.members.entry(queue.clone()).or_default();
            changed = match kind {
                ActionKind::Add => members.insert(member.clone()),
                ActionKind::Del => members.remove(member),
            };
        });
        Ok(if changed {
            WriteOutcome::Applied
        } else {
            WriteOutcome::AlreadyInState
        })
    }
}

/// A reconciler on the fake ports, polling every [`POLL`], with its state in `dir`. The clock
/// must be held (the store is opened here).
async fn fake_reconciler(
    world: &SharedWorld,
    dir: &Path,
) -> Reconciler<FakeCalendars, FakePbx, SystemClock> {
    // Never contacted: the ports are the fakes.
    let nowhere = url::Url::parse("http://127.0.0.1:9/").unwrap();
    let path = dir.join("rooster.toml");
    let mut cfg = Config::parse(&config_text(&nowhere, &nowhere, &nowhere), &path).unwrap();
    // Below the config's 10 s minimum, to keep the instants small.
    cfg.poll_interval = POLL;
    let store = Store::open(&cfg.state, OpenMode::Writer).await.unwrap();
    Reconciler::new(
        Arc::new(cfg),
        FakeCalendars(world.clone()),
        FakePbx(world.clone()),
        SystemClock,
        Some(store),
        false,
    )
    .await
    .unwrap()
}

/// Runs one cycle beside `script`, which opens the clock's windows.
async fn cycle_with(
    rec: &mut Reconciler<FakeCalendars, FakePbx, SystemClock>,
    script: impl Future<Output = ()>,
) -> rooster::cycle::CycleReport {
    let cycle = async {
        timeout(LIMIT, rec.cycle(Mode::Full, &CancellationToken::new()))
            .await
            .expect("the cycle hung")
            .expect("the state could not be written")
    };
    tokio::join!(cycle, script).0
}

#[tokio::test(start_paused = true)]
async fn a_calendar_not_read_within_half_the_poll_interval_counts_as_failed() {
    // SPEC §5: a cycle ends within poll_interval even when a calendar never answers; the
    // calendars not read by then count as failed (rule 1), the rest proceeds.
    let clock = HeldClock::new();
    let world = fake_world();
    let dir = tempfile::tempdir().unwrap();
    let mut rec = fake_reconciler(&world, dir.path()).await;
    let report = cycle_with(&mut rec, async {}).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(
        world.borrow().members[&q("600")],
        set(&["ext:201", "ext:202", "ext:203", "ext:299"])
    );
    // Piet's shifts are deleted but his calendar never answers; Anouk's answers a
    // millisecond before the read deadline; Jan is removed by hand.
    world.send_modify(|w| {
        w.events.insert(mb("piet@t.nl"), vec![]);
        w.reads.insert(mb("piet@t.nl"), Answer::Never);
        w.reads.insert(
            mb("anouk@t.nl"),
            Answer::After(POLL / 2 - Duration::from_millis(1)),
        );
        w.members.get_mut(&q("600")).unwrap().remove(&m("ext:201"));
        w.seen.clear();
    });
    let t0 = tokio::time::Instant::now();
    // Every calendar asked and every queue listed: until the read deadline the cycle waits
    // on the calendars alone (a read that answers makes no store call).
    let script = async {
        until(&world, "three reads asked and two queues listed", |w| {
            w.count(|s| matches!(s, Seen::ReadAsked(_))) == 3
                && w.count(|s| matches!(s, Seen::ListAnswered(_))) == 2
        })
        .await;
        clock.run_until(t0 + POLL / 2);
    };
    let report = cycle_with(&mut rec, script).await;
    assert_eq!(
        t0.elapsed(),
        POLL / 2,
        "the cycle waited for a calendar that never answers past the read deadline"
    );
    let w = world.borrow();
    assert_eq!(
        w.when(t0, |s| *s == Seen::ReadAnswered(mb("anouk@t.nl"))),
        [POLL / 2 - Duration::from_millis(1)]
    );
    assert_eq!(
        w.when(t0, |s| *s == Seen::ReadGivenUp(mb("piet@t.nl"))),
        [POLL / 2],
        "Piet's read given up at the read deadline, not before"
    );
    assert_eq!(report.calendars_failed, 1, "{:?}", report.errors);
    assert!(
        report.errors.iter().any(|e| e
            == "calendar piet@t.nl: not read within 1s (half of poll_interval 2s); counted as failed this cycle"),
        "{:?}",
        report.errors
    );
    assert_eq!(report.adds, 1, "Jan is added back: {:?}", report.errors);
    assert_eq!(report.dels, 0, "nothing removed on Piet's unread calendar");
    assert_eq!(
        w.members[&q("600")],
        set(&["ext:201", "ext:202", "ext:203", "ext:299"])
    );
}

#[tokio::test(start_paused = true)]
async fn a_queue_not_listed_within_three_quarters_of_the_poll_interval_is_left_alone() {
    let clock = HeldClock::new();
    let world = fake_world();
    world.send_modify(|w| {
        w.lists.insert(q("610"), Answer::Never);
    });
    let dir = tempfile::tempdir().unwrap();
    let mut rec = fake_reconciler(&world, dir.path()).await;
    let t0 = tokio::time::Instant::now();
    // The calendars done with (their reads recorded) and 600 listed: until the list
    // deadline the cycle waits on queue 610 alone.
    let script = async {
        until(&world, "the reads done, 600 listed and 610 asked", |w| {
            w.count(|s| *s == Seen::ReadsDone) == 1
                && w.count(|s| *s == Seen::ListAnswered(q("600"))) == 1
                && w.count(|s| *s == Seen::ListAsked(q("610"))) == 1
        })
        .await;
        clock.run_until(t0 + POLL * 3 / 4);
    };
    let report = cycle_with(&mut rec, script).await;
    assert_eq!(t0.elapsed(), POLL * 3 / 4);
    let w = world.borrow();
    assert_eq!(
        w.when(t0, |s| *s == Seen::ListGivenUp(q("610"))),
        [POLL * 3 / 4],
        "610's list given up at the list deadline, not before"
    );
    assert_eq!(report.queues_failed, 1, "{:?}", report.errors);
    assert!(
        report.errors.iter().any(|e| e
            == "queue 610: list failed: no answer within 1s 500ms (three quarters of poll_interval 2s)"),
        "{:?}",
        report.errors
    );
    assert_eq!(
        w.count(|s| matches!(s, Seen::WriteAsked(qq, _) if *qq == q("610"))),
        0,
        "nothing written to the unlisted queue"
    );
    assert_eq!(w.members[&q("610")], set(&[]));
    assert_eq!(
        w.members[&q("600")],
        set(&["ext:201", "ext:202", "ext:203", "ext:299"])
    );
}

#[tokio::test(start_paused = true)]
async fn writes_not_started_within_the_poll_interval_wait_for_the_next_cycle() {
    // Each add takes 1.1 s: queues are written side by side, one write at a time each, so
    // 600 and 610 each start an add at 0 s and at 1.1 s, and their third at 2.2 s would
    // start after the 2 s poll_interval.
    let clock = HeldClock::new();
    let world = fake_world();
    world.send_modify(|w| w.writes = Answer::After(Duration::from_millis(1100)));
    let dir = tempfile::tempdir().unwrap();
    let mut rec = fake_reconciler(&world, dir.path()).await;
    let t0 = tokio::time::Instant::now();
    // With a write in flight to each queue the cycle waits on the writes alone (its store
    // calls come between a queue's writes).
    let script = async {
        for (n, end) in [(2, 1100), (4, 2200)] {
            until(&world, &format!("{n} writes asked, 2 in flight"), |w| {
                w.count(|s| matches!(s, Seen::WriteAsked(..))) == n && w.writes_in_flight() == 2
            })
            .await;
            clock.run_until(t0 + Duration::from_millis(end));
        }
    };
    let report = cycle_with(&mut rec, script).await;
    let ms = Duration::from_millis;
    let w = world.borrow();
    assert_eq!(
        w.when(t0, |s| matches!(s, Seen::WriteAsked(..))),
        [ms(0), ms(0), ms(1100), ms(1100)],
        "writes started"
    );
    assert_eq!(report.adds, 4, "{:?}", report.errors);
    for queue in ["600", "610"] {
        let postponed = format!(
            "queue {queue}: 1 write(s) postponed to the next cycle: this one reached poll_interval 2s"
        );
        assert!(report.errors.contains(&postponed), "{:?}", report.errors);
    }
    drop(w);
    let open = rec.store().unwrap().open_intents().await.unwrap();
    assert!(open.is_empty(), "a write was abandoned half way: {open:?}");
    // The next cycle, with writes that answer at once, finishes the job.
    world.send_modify(|w| w.writes = Answer::Now);
    let report = cycle_with(&mut rec, async {}).await;
    assert!(report.all_good(), "{:?}", report.errors);
    let w = world.borrow();
    assert_eq!(
        w.members[&q("600")],
        set(&["ext:201", "ext:202", "ext:203", "ext:299"])
    );
    assert_eq!(
        w.members[&q("610")],
        set(&["ext:201", "ext:202", "ext:203"])
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_out_the_grace_for_a_write_in_flight_and_leaves_it_uncertain() {
    // SPEC §5: on shutdown the reply to a write in flight is awaited for at most
    // SHUTDOWN_GRACE, no other write starts, and a write whose reply never came is recorded
    // as uncertain (SPEC §3 rule 7), to be settled against live at the next start.
    let clock = HeldClock::new();
    let world = fake_world();
    world.send_modify(|w| w.writes = Answer::Never);
    let dir = tempfile::tempdir().unwrap();
    let mut rec = fake_reconciler(&world, dir.path()).await;
    let cancel = CancellationToken::new();
    // With the first add to each queue in flight the cycle waits on those writes alone.
    let script = async {
        until(&world, "a write in flight to each queue", |w| {
            w.writes_in_flight() == 2
        })
        .await;
        let signalled = tokio::time::Instant::now();
        cancel.cancel();
        clock.run_until(signalled + rooster::cycle::SHUTDOWN_GRACE);
        signalled
    };
    let cycle = async {
        timeout(LIMIT, rec.cycle(Mode::Full, &cancel))
            .await
            .expect("the cycle hung after shutdown was asked for")
            .expect("the state could not be written")
    };
    let (report, signalled) = tokio::join!(cycle, script);
    assert!(report.interrupted, "{report:?}");
    assert_eq!(report.adds, 0);
    let w = world.borrow();
    assert_eq!(
        w.when(signalled, |s| matches!(s, Seen::WriteGivenUp(..))),
        [rooster::cycle::SHUTDOWN_GRACE; 2],
        "each reply awaited for the grace after the signal, not less and not more"
    );
    assert_eq!(
        w.count(|s| matches!(s, Seen::WriteAsked(..))),
        2,
        "no write started after shutdown was asked for"
    );
    drop(w);
    let store = rec.store().unwrap();
    let rows = store.journal(DateTime::<Utc>::MIN_UTC, 100).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert!(
            matches!(&row.outcome, Some((Outcome::Uncertain(why), _)) if why.contains("shutdown")),
            "{row:?}"
        );
    }
    assert_eq!(
        store.open_intents().await.unwrap().len(),
        2,
        "left to settle"
    );
}

/// Counts writes in flight, in all and per queue, around the real client.
struct CountingPbx {
    inner: TringClient,
    in_flight: std::sync::Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    all: usize,
    per_queue: std::collections::HashMap<QueueNo, usize>,
    /// The most seen at once: (in all, to one queue).
    most: (usize, usize),
}

impl Pbx for CountingPbx {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        Pbx::list(&self.inner, queue).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        {
            let mut f = self.in_flight.lock().unwrap();
            f.all += 1;
            let in_queue = *f
                .per_queue
                .entry(queue.clone())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            f.most = (f.most.0.max(f.all), f.most.1.max(in_queue));
        }
        let r = Pbx::write(&self.inner, kind, queue, member).await;
        let mut f = self.in_flight.lock().unwrap();
        f.all -= 1;
        *f.per_queue.get_mut(queue).unwrap() -= 1;
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_written_side_by_side_and_each_queue_one_write_at_a_time() {
    // tring-api.md "Limits": at most 4 requests in flight, writes to one queue spaced. Six
    // queues with three adds each, every add taking 50 ms on the wire: the cycle has four
    // queues' writes in flight at once, never more, and never two to one queue.
    let extra = ["700", "701", "702", "703", "704", "705"];
    let h = Harness::start_with(&extra).await;
    let now = Utc::now();
    for p in ["jan", "piet", "anouk"] {
        let shifts = extra
            .iter()
            .map(|n| {
                shift(
                    &format!("{p}-{n}"),
                    &format!("Q{n}"),
                    now - chrono::Duration::hours(1),
                    now + chrono::Duration::hours(1),
                )
            })
            .collect();
        h.graph.set_events(&mb(&format!("{p}@t.nl")), None, shifts);
    }
    h.tring.inject(Fault {
        queue: None,
        action: Some(Action::Add),
        kind: FaultKind::Delay(Duration::from_millis(50)),
        times: None,
    });
    let (g, t) = h.clients();
    let pbx = CountingPbx {
        inner: t,
        in_flight: Default::default(),
    };
    let mut rec = Reconciler::new(
        h.cfg.clone(),
        g,
        pbx,
        SystemClock,
        Some(h.store().await),
        false,
    )
    .await
    .unwrap();
    let report = cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(report.adds, 18);
    for n in extra {
        assert_eq!(
            h.members(n),
            set(&["ext:201", "ext:202", "ext:203"]),
            "queue {n}"
        );
    }
    let open = rec.store().unwrap().open_intents().await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(
        rec.pbx().in_flight.lock().unwrap().most,
        (4, 1),
        "(most writes in flight, most in flight to one queue)"
    );
}

#[tokio::test]
async fn drift_is_repaired_and_owned_members_gone_by_themselves_are_forgotten() {
    let h = Harness::start().await;
    h.jan_on_shift();
    let store = h.store().await;
    let mut rec = h.reconciler(Some(store.clone()), false).await;
    cycle(&mut rec).await;
    // Someone removes Jan by hand while his shift runs: he is added again.
    h.tring.set_members(&q("600"), vec![m("ext:299")]);
    let report = cycle(&mut rec).await;
    assert_eq!(report.adds, 1);
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
    // Shift over and Jan removed by hand: nothing to write, and no longer owned.
    h.graph.set_events(&mb("jan@t.nl"), None, vec![]);
    h.tring.set_members(&q("600"), vec![m("ext:299")]);
    h.tring.clear_requests();
    cycle(&mut rec).await;
    assert_eq!(h.writes(), 0);
    assert!(store.owned(&q("600")).await.unwrap().is_empty());
}

/// Calendars read through the real client, counting the reads that have come back.
struct CountedReads {
    inner: GraphClient,
    done: Arc<std::sync::atomic::AtomicUsize>,
}

impl rooster::cycle::Calendars for CountedReads {
    fn read_all<'a>(
        &'a self,
        cals: &'a [rooster::model::CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl futures::Stream<Item = rooster::cycle::CalendarResult> + Send + 'a {
        use futures::StreamExt;
        self.inner.read_all(cals, from, to).inspect(|_| {
            self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    }
}

/// Queues listed through the real client, noting how many calendar reads had come back at
/// each `list`.
struct ListsSeeReads {
    inner: TringClient,
    done: Arc<std::sync::atomic::AtomicUsize>,
    seen: std::sync::Mutex<Vec<usize>>,
}

impl Pbx for ListsSeeReads {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        let done = self.done.load(std::sync::atomic::Ordering::SeqCst);
        self.seen.lock().unwrap().push(done);
        Pbx::list(&self.inner, queue).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        Pbx::write(&self.inner, kind, queue, member).await
    }
}

#[tokio::test]
async fn queues_are_listed_while_the_calendars_are_read() {
    // SPEC §5: a cycle takes the longer of reading and listing, not their sum. Three
    // calendars take one round trip at Graph concurrency 8, three lists one at TRiNG's 4, so
    // the lists are due at once; every calendar answers after 300 ms.
    let h = Harness::start().await;
    everyone_on_shift(&h);
    h.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::Delay(Duration::from_millis(300)),
        times: None,
    });
    let (g, t) = h.clients();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let graph = CountedReads {
        inner: g,
        done: done.clone(),
    };
    let pbx = ListsSeeReads {
        inner: t,
        done,
        seen: Default::default(),
    };
    let mut rec = Reconciler::new(
        h.cfg.clone(),
        graph,
        pbx,
        SystemClock,
        Some(h.store().await),
        false,
    )
    .await
    .unwrap();
    let report = cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(
        h.members("600"),
        set(&["ext:201", "ext:202", "ext:203", "ext:299"])
    );
    assert_eq!(
        *rec.pbx().seen.lock().unwrap(),
        vec![0, 0, 0],
        "calendar reads back at each list"
    );
}

/// A `Pbx` where someone adds the member by hand (through TRiNG, as `rooster queue add`
/// would) just before rooster's first `add` reaches TRiNG: the race between a cycle's `list`
/// and its write.
struct HandAddsFirst {
    inner: TringClient,
    raced: std::sync::atomic::AtomicBool,
}

impl Pbx for HandAddsFirst {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        Pbx::list(&self.inner, queue).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        if kind == ActionKind::Add && !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let by_hand = Pbx::write(&self.inner, kind, queue, member).await;
            assert_eq!(by_hand, Ok(WriteOutcome::Applied), "the hand add");
        }
        Pbx::write(&self.inner, kind, queue, member).await
    }
}

#[tokio::test]
async fn a_member_added_by_hand_after_the_list_stays_unowned_and_is_never_removed() {
    // SPEC §3 (additive): members added by hand are never removed, and a desired member that
    // is already live but not owned stays unowned. Jan is added by hand after rooster listed
    // queue 600 and before its own add: TRiNG answers "already a member".
    let h = Harness::start().await;
    h.jan_on_shift();
    let (g, t) = h.clients();
    let pbx = HandAddsFirst {
        inner: t,
        raced: Default::default(),
    };
    let store = h.store().await;
    let mut rec = Reconciler::new(
        h.cfg.clone(),
        g,
        pbx,
        SystemClock,
        Some(store.clone()),
        false,
    )
    .await
    .unwrap();
    let report = cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert!(rec.pbx().raced.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
    assert!(store.owned(&q("600")).await.unwrap().is_empty());
    // Jan's shift is over: rooster leaves the member someone else put there.
    h.graph.set_events(&mb("jan@t.nl"), None, vec![]);
    cycle(&mut rec).await;
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
}

/// A `Pbx` that performs a write through the real client and then never answers, as if the
/// process died between TRiNG applying the write and rooster recording the outcome.
struct DiesAfterWrite(TringClient);

impl Pbx for DiesAfterWrite {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        Pbx::list(&self.0, queue).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let _ = Pbx::write(&self.0, kind, queue, member).await;
        std::future::pending().await
    }
}

#[tokio::test]
async fn crash_after_tring_applied_keeps_ownership() {
    // SPEC §3 rule 7: an add that reached TRiNG before a crash is owned after restart, so
    // the member is removed when the shift ends (it would be kept forever if ownership were lost).
    let h = Harness::start().await;
    h.jan_on_shift();
    let (g, t) = h.clients();
    let cfg = h.cfg.clone();
    let store = h.store().await;
    let crashing = tokio::spawn(async move {
        let mut rec = Reconciler::new(cfg, g, DiesAfterWrite(t), SystemClock, Some(store), false)
            .await
            .unwrap();
        rec.cycle(Mode::Full, &CancellationToken::new()).await
    });
    timeout(
        LIMIT,
        h.tring.until(|| h.members("600").contains(&m("ext:201"))),
    )
    .await
    .expect("the add never reached the simulator");
    crashing.abort();
    let _ = crashing.await;

    // Restart: the lock is free again (the task that held it is gone), the open intent is
    // settled against live. Tried again only while the lock reads as this process's own: a
    // child another test forks holds a copy of the lock's file until it execs.
    let store = timeout(LIMIT, async {
        loop {
            match Store::open(&h.cfg.state, OpenMode::Writer).await {
                Ok(s) => return s,
                Err(StoreError::Locked { pid, .. }) if pid == Some(std::process::id()) => {
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("the crashed writer's state could not be opened: {e}"),
            }
        }
    })
    .await
    .expect("the crashed writer's lock was never released");
    assert_eq!(store.open_intents().await.unwrap().len(), 1);
    let mut rec = h.reconciler(Some(store.clone()), false).await;
    // SPEC §3 rules 7 and 2: while the queue cannot be listed the intent cannot be settled,
    // so it stays open and ownership is not guessed.
    h.tring.inject(Fault {
        queue: Some(q("600")),
        action: Some(Action::List),
        kind: FaultKind::Status(500),
        times: None,
    });
    let report = cycle(&mut rec).await;
    assert_eq!(report.queues_failed, 1, "{:?}", report.errors);
    assert_eq!(store.open_intents().await.unwrap().len(), 1, "left open");
    assert_eq!(store.owned(&q("600")).await.unwrap(), set(&[]));
    h.tring.clear_faults();
    cycle(&mut rec).await;
    assert!(store.open_intents().await.unwrap().is_empty());
    assert_eq!(store.owned(&q("600")).await.unwrap(), set(&["ext:201"]));

    h.graph.set_events(&mb("jan@t.nl"), None, vec![]);
    cycle(&mut rec).await;
    assert_eq!(h.members("600"), set(&["ext:299"]));
}

#[tokio::test]
async fn exclusive_queue_is_emptied_to_desired_but_never_below_one() {
    // Exclusive ownership plus keep_last (rule 3) end to end.
    let h = Harness::start().await;
    h.tring
        .set_members(&q("610"), vec![m("ext:202"), m("ext:203")]);
    let mut rec = h.reconciler(Some(h.store().await), false).await;
    let report = cycle(&mut rec).await;
    assert_eq!(report.dels, 1);
    assert_eq!(report.refused, 1, "the last member's removal is refused");
    assert!(!report.all_good(), "a refused removal makes `once` exit 1");
    assert_eq!(h.members("610").len(), 1);
}

/// Lets a test drive `daemon::run` on a [`ManualClock`]: the daemon re-reads the clock every
/// few milliseconds while it sleeps (its watchdog step), and `ready` says the first cycle is
/// done.
struct ClockWatcher {
    ready: tokio::sync::watch::Sender<bool>,
}

impl daemon::Notifier for ClockWatcher {
    fn ready(&self) {
        self.ready.send_replace(true);
    }
    fn watchdog_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }
}

#[tokio::test]
async fn daemon_applies_a_shift_start_at_its_boundary_not_at_the_next_poll() {
    // SPEC §5: poll_interval is 10 minutes here, so only a boundary wake-up can make this add.
    // The daemon runs on a manual clock: the shift starts when the test moves the clock there,
    // and the add must happen with the clock still at that instant.
    let h = Harness::start().await;
    // Whole seconds: Graph's dateTime strings carry 100 ns ticks.
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let start = t0 + chrono::Duration::seconds(3);
    h.graph.set_events(
        &mb("piet@t.nl"),
        None,
        vec![shift(
            "piet-1",
            "Support",
            start,
            start + chrono::Duration::hours(1),
        )],
    );
    let clock = ManualClock(Arc::new(std::sync::Mutex::new(t0)));
    let store = h.store().await;
    let (g, t) = h.clients();
    let mut rec = Reconciler::new(
        h.cfg.clone(),
        g,
        t,
        clock.clone(),
        Some(store.clone()),
        false,
    )
    .await
    .unwrap();
    let (ready, mut first_cycle_done) = tokio::sync::watch::channel(false);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let daemon =
        tokio::spawn(async move { daemon::run(&mut rec, &ClockWatcher { ready }, stop).await });
    timeout(LIMIT, first_cycle_done.wait_for(|done| *done))
        .await
        .expect("the daemon's first cycle did not finish")
        .unwrap();
    assert!(
        !h.members("600").contains(&m("ext:202")),
        "added before the shift started"
    );

    *clock.0.lock().unwrap() = start;
    timeout(
        LIMIT,
        h.tring.until(|| h.members("600").contains(&m("ext:202"))),
    )
    .await
    .expect("the daemon did not add Piet at his shift start");
    // Decided and written at the boundary itself, not at a later poll.
    let journal = store.journal(t0, 10).await.unwrap();
    let add = journal
        .iter()
        .find(|r| r.intent.member == m("ext:202"))
        .expect("Piet's add is journaled");
    assert_eq!(add.intent.at, start, "decided at the shift start");
    cancel.cancel();
    timeout(Duration::from_secs(5), daemon)
        .await
        .expect("the daemon did not stop within 5 s of cancellation")
        .unwrap()
        .unwrap();
}

fn rooster(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rooster"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("the rooster binary runs")
}

#[tokio::test]
async fn second_writer_exits_2_naming_the_lock_holder() {
    // SPEC §3 rule 8.
    let h = Harness::start().await;
    h.jan_on_shift();
    let _held = h.store().await;
    let path = h.config_path();
    let out = tokio::task::spawn_blocking(move || rooster(&path, &["once"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "in use by another rooster (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );
    assert_eq!(h.writes(), 0, "a refused writer still wrote to TRiNG");
}

#[tokio::test]
async fn once_exits_0_then_queue_clean_without_yes_exits_2_and_sends_nothing() {
    let h = Harness::start().await;
    h.jan_on_shift();
    let path = h.config_path();
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || rooster(&p, &["once"]))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.members("600"), set(&["ext:201", "ext:299"]));
    h.tring.clear_requests();
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || rooster(&p, &["queue", "clean", "600"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would remove 2 members"));
    assert_eq!(h.writes(), 0);
    // plan --json has SPEC §4's shape.
    let out = tokio::task::spawn_blocking(move || rooster(&path, &["plan", "--json"]))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queues"][0]["queue"], "600");
    assert_eq!(v["queues"][0]["desired"][0]["member"], "ext:201");
    assert_eq!(v["queues"][0]["desired"][0]["person"], "Jan de Vries");
    assert_eq!(
        v["queues"][0]["desired"][0]["why"][0]["rule"],
        "support shifts"
    );
    assert_eq!(v["queues"][0]["owned"][0], "ext:201");
    assert_eq!(v["calendars"][0]["complete"], true);
}

#[test]
fn bad_config_exits_2_with_file_and_line_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooster.toml");
    let text = include_str!("../config/rooster.example.toml").replacen(
        "queues = [\"700\"]",
        "queues = [\"701\"]",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let out = rooster(&path, &["once"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rooster.toml:") && stderr.contains("unknown queue \"701\""),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one sentence, no backtrace: {stderr}"
    );
    let out = rooster(&path, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn metrics_and_healthz_are_served_while_cycles_run() {
    use rooster::metrics::{self, Metrics};
    let h = Harness::start().await;
    h.jan_on_shift();
    let rec = h.reconciler(Some(h.store().await), false).await;
    let graph = rec.calendars().clone();
    // Started 31 minutes ago: 3 poll intervals without a completed cycle (SPEC §4).
    let m = Arc::new(
        Metrics::starting_at(
            h.cfg.poll_interval,
            Utc::now() - chrono::Duration::minutes(31),
        )
        .with_graph_counters(move || graph.stats()),
    );
    let cancel = CancellationToken::new();
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), m.clone(), cancel.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            let r = timeout(LIMIT, http.get(format!("http://{addr}{path}")).send())
                .await
                .expect("metrics endpoint hung")
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 503, "no cycle within 3 intervals");

    let mut rec = rec.with_metrics(m);
    cycle(&mut rec).await;
    assert_eq!(get("/healthz").await.0, 200);
    let (status, body) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "rooster_cycles_total{outcome=\"ok\"} 1",
        "rooster_cycle_duration_seconds_count 1",
        "rooster_tring_requests_total{action=\"add\",outcome=\"applied\"} 1",
        "rooster_tring_requests_total{action=\"list\",outcome=\"ok\"} 3",
        "rooster_queue_members{queue=\"600\",set=\"live\"} 2",
        "rooster_queue_members{queue=\"600\",set=\"desired\"} 1",
        "rooster_queue_members{queue=\"600\",set=\"owned\"} 1",
        "rooster_refusals_total{kind=\"keep_last\"} 0",
        "# TYPE rooster_cycle_duration_seconds histogram",
        "rooster_graph_throttled_total 0",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    assert!(
        body.contains("rooster_graph_requests_total{outcome="),
        "{body}"
    );
    assert!(!body.contains(KEY) && !body.contains(SECRET));

    // A Graph outage shows up as calendar read failures.
    h.graph.set_outage(true);
    cycle(&mut rec).await;
    let (_, body) = get("/metrics").await;
    // Every calendar the rules read (3) fails; a count, not a series per mailbox.
    assert!(body.contains("rooster_calendars_failing 3"), "{body}");
    assert!(!body.contains("jan@t.nl"), "no mailbox is a label: {body}");
    assert!(
        body.contains("rooster_cycles_total{outcome=\"failed\"} 1"),
        "{body}"
    );
    cancel.cancel();
}

/// A clock the test moves by hand.
#[derive(Clone)]
struct ManualClock(Arc<std::sync::Mutex<DateTime<Utc>>>);

impl rooster::cycle::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn boundary_cycle_touches_only_the_queues_whose_desired_set_changed() {
    // SPEC §5: a shift start must reach TRiNG fast; a boundary cycle reads no calendar and
    // lists only the queue that changes.
    let h = Harness::start().await;
    // Whole seconds: Graph's dateTime strings carry 100 ns ticks.
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let start = t0 + chrono::Duration::minutes(30);
    h.graph.set_events(
        &mb("piet@t.nl"),
        None,
        vec![shift(
            "piet-1",
            "Support",
            start,
            start + chrono::Duration::hours(1),
        )],
    );
    let clock = ManualClock(Arc::new(std::sync::Mutex::new(t0)));
    let (g, t) = h.clients();
    let mut rec = Reconciler::new(
        h.cfg.clone(),
        g,
        t,
        clock.clone(),
        Some(h.store().await),
        false,
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    timeout(LIMIT, rec.cycle(Mode::Full, &cancel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.next_boundary(t0), Some(start));

    // At the boundary: no Graph request, one list (queue 600 only), one add.
    *clock.0.lock().unwrap() = start;
    h.tring.clear_requests();
    let graph_before = h.graph.calendar_view_requests();
    let report = timeout(LIMIT, rec.cycle(Mode::Boundary, &cancel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.adds, 1);
    assert_eq!(h.graph.calendar_view_requests(), graph_before);
    assert_eq!(h.lists(), 1, "only the changed queue is listed");
    assert_eq!(h.members("600"), set(&["ext:202", "ext:299"]));

    // A boundary at which nothing changes costs no request at all.
    h.tring.clear_requests();
    timeout(LIMIT, rec.cycle(Mode::Boundary, &cancel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.tring.requests().len(), 0);
}

#[cfg(unix)]
#[tokio::test]
async fn run_tells_systemd_ready_watchdog_stopping_and_exits_0_on_sigterm() {
    // SPEC §4/§5: `run` under systemd (Type=notify): READY=1 after the first cycle, WATCHDOG=1
    // pings, STOPPING=1, and exit 0 within 5 s of SIGTERM.
    let h = Harness::start().await;
    h.jan_on_shift();
    let sock_path = h.dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rooster"))
        .arg("--config")
        .arg(h.config_path())
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    timeout(LIMIT, async {
        while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
            let n = sock.recv(&mut buf).await.unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no READY/WATCHDOG from the daemon; got {seen:?}"));
    assert_eq!(
        h.members("600"),
        set(&["ext:201", "ext:299"]),
        "ready after the first cycle"
    );

    let pid = child.id().unwrap().to_string();
    let signalled = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the daemon did not exit within 5 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    while let Ok(n) = sock.try_recv(&mut buf) {
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("STOPPING=1"), "{seen:?}");
}

#[tokio::test]
async fn removal_cap_postpones_dels_to_later_cycles() {
    // SPEC §3 rule 4: at most max_removals (2 here) dels per queue per cycle; the rest wait.
    let h = Harness::start().await;
    let stale = ["ext:401", "ext:402", "ext:403", "ext:404", "ext:405"];
    h.tring
        .set_members(&q("620"), stale.iter().map(|s| m(s)).collect());
    let mut rec = h.reconciler(Some(h.store().await), false).await;
    let mut left = Vec::new();
    for _ in 0..3 {
        let report = cycle(&mut rec).await;
        assert!(report.dels <= 2, "{} dels in one cycle", report.dels);
        left.push(h.members("620").len());
    }
    assert_eq!(
        left,
        vec![3, 1, 0],
        "two removals per cycle until the queue is clean"
    );
}

/// Writes through the real client; the first write takes "two minutes" of the manual clock.
struct SlowFirstWrite {
    inner: TringClient,
    clock: ManualClock,
    slowed: std::sync::atomic::AtomicBool,
}

impl Pbx for SlowFirstWrite {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        Pbx::list(&self.inner, queue).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let r = Pbx::write(&self.inner, kind, queue, member).await;
        if !self.slowed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            *self.clock.0.lock().unwrap() += chrono::Duration::minutes(2);
        }
        r
    }
}

#[tokio::test]
async fn a_boundary_passed_while_writing_is_applied_at_once_not_at_the_next_poll() {
    // Jan's shift runs now; Piet's starts 90 s later. The first cycle's write takes two
    // minutes, so Piet's start passes while rooster is writing. poll_interval is 10 minutes:
    // only a daemon that looks for boundaries from the instant it decided for adds Piet now.
    let h = Harness::start().await;
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    h.graph.set_events(
        &mb("jan@t.nl"),
        None,
        vec![shift(
            "jan-1",
            "Support",
            t0 - chrono::Duration::hours(1),
            t0 + chrono::Duration::hours(1),
        )],
    );
    let piet_start = t0 + chrono::Duration::seconds(90);
    h.graph.set_events(
        &mb("piet@t.nl"),
        None,
        vec![shift(
            "piet-1",
            "Support",
            piet_start,
            piet_start + chrono::Duration::hours(1),
        )],
    );
    let clock = ManualClock(Arc::new(std::sync::Mutex::new(t0)));
    let (g, t) = h.clients();
    let pbx = SlowFirstWrite {
        inner: t,
        clock: clock.clone(),
        slowed: std::sync::atomic::AtomicBool::new(false),
    };
    let mut rec = Reconciler::new(h.cfg.clone(), g, pbx, clock, Some(h.store().await), false)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let daemon = tokio::spawn(async move { daemon::run(&mut rec, &NoNotifier, stop).await });
    timeout(
        LIMIT,
        h.tring.until(|| h.members("600").contains(&m("ext:202"))),
    )
    .await
    .expect(
        "Piet was not added: the boundary that passed during the write was left to the next poll",
    );
    assert!(h.members("600").contains(&m("ext:201")));
    cancel.cancel();
    timeout(Duration::from_secs(5), daemon)
        .await
        .expect("the daemon did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn status_and_explain_tell_an_operator_what_is_there_and_why() {
    let h = Harness::start().await;
    h.jan_on_shift();
    let path = h.config_path();
    let run = |args: &'static [&'static str]| {
        let p = path.clone();
        tokio::task::spawn_blocking(move || rooster(&p, args))
    };
    assert_eq!(run(&["once"]).await.unwrap().status.code(), Some(0));

    let out = run(&["status"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "queue 600 Support",
        "live     ext:201 ext:299",
        "owned    ext:201",
        "desired  ext:201",
        "last cycle",
        "calendar jan@t.nl: last good read",
    ] {
        assert!(text.contains(want), "status lacks {want:?}:\n{text}");
    }
    let out = run(&["status", "--json"]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queues"][0]["owned"][0], "ext:201");
    assert_eq!(v["last_cycle"]["adds"], 1);

    let out = run(&["explain", "600"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ext:201 Jan de Vries — live, owned by rooster"),
        "{text}"
    );
    assert!(
        text.contains("desired: rule \"support shifts\": \"Support shift\" in jan@t.nl"),
        "{text}"
    );
    assert!(
        text.contains("ext:299  — live, added by hand, not owned"),
        "{text}"
    );
    // A queue the config does not name is refused, not guessed.
    assert_eq!(
        run(&["explain", "601"]).await.unwrap().status.code(),
        Some(2)
    );
}
