//! Shared harness for the end-to-end fault and security tests: starts the Graph and TRiNG
//! simulators on 127.0.0.1, builds a [`Config`] through `Config::parse` pointing at them, a
//! writer [`Store`] in a temporary directory seeded to a known state, clients with fast
//! retries and short timeouts, and [`Reconciler`]s over them. Also installs one capturing
//! `tracing` subscriber for the whole test binary so every log line can be scanned for
//! secrets (SPEC §4 "Logs").
//!
//! It only drives the library's public API; it must not reach into the simulators' or the
//! store's internals beyond what they export.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rooster::config::Config;
use rooster::cycle::{CycleReport, Mode, Pbx, ReadError, Reconciler, SystemClock, WriteError};
use rooster::graph::GraphClient;
use rooster::graph::client::GraphOptions;
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Member, Mobile, QueueNo, Secret,
    Sensitivity, ShowAs,
};
use rooster::plan::ActionKind;
use rooster::sim::graph::{GraphSim, GraphSimOptions};
use rooster::sim::tring::{Action, RecordedRequest, SimTringOptions, TringSim};
use rooster::store::{Intent, OpenMode, Outcome, Store, StoreError, WriteAction};
use rooster::tring::{KnownMembers, TringClient, TringClientOptions, WriteOutcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Recognisable secrets: any occurrence in a log line is a leak.
pub const TRING_KEY: &str = "TRING-KEY-SECRET-7781";
pub const WRONG_TRING_KEY: &str = "TRING-WRONG-KEY-4410";
pub const GRAPH_SECRET: &str = "GRAPH-SECRET-5513";
/// Every access token the Graph simulator issues starts with this.
pub const TOKEN_PREFIX: &str = "sim-access-token";

pub const JAN: &str = "jan@acme.nl";
pub const PIET: &str = "piet@acme.nl";
pub const ANOUK: &str = "anouk@acme.nl";
pub const PIKET: &str = "piket@acme.nl";
pub const JAN_MOBILE: &str = "0612345678";
pub const PIET_MOBILE: &str = "0687654321";
/// Registered in TRiNG as a custom destination but nobody's configured mobile.
pub const STRANGER_MOBILE: &str = "0699999999";

/// Every await in these tests is bounded; the message says what hanging would mean.
pub async fn within<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {secs} s"))
}

pub fn q(s: &str) -> QueueNo {
    QueueNo::parse(s).expect("test queue number")
}
pub fn m(s: &str) -> Member {
    s.parse().expect("test member")
}
pub fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("test mailbox")
}
pub fn cal(s: &str) -> CalendarRef {
    CalendarRef::default_of(mailbox(s))
}
pub fn set(members: &[&str]) -> BTreeSet<Member> {
    members.iter().map(|s| m(s)).collect()
}

// ---------------------------------------------------------------------------------------
// Log capture

#[path = "../support/log_capture.rs"]
mod log_capture;

/// Everything any test in this binary logged, at TRACE (URL-logging dependencies capped as
/// in production by `rooster::logging::filter`).
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    log_capture::capture("trace")
}

/// The secrets of the harness's config, as `Config::load` would read them.
pub fn secrets() -> rooster::config::Secrets {
    rooster::config::Secrets {
        tring_key: Secret::new(TRING_KEY),
        graph_client_secret: Secret::new(GRAPH_SECRET),
    }
}

/// The log's length so far: an offset for [`log_since`].
pub fn log_len() -> usize {
    log_capture::offset(logs())
}

/// The lines logged since `from` (a [`log_len`]). Tests that count lines some other test in
/// the binary may also log hold a lock of their own around both.
pub fn log_since(from: usize) -> Vec<String> {
    log_capture::lines_since(logs(), from)
}

/// The captured log so far, as text.
pub fn log_text() -> String {
    let buf = logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf).into_owned()
}

/// How often each secret (key, wrong key, Graph secret, any issued token) occurs in the
/// captured log. SPEC §4: must be 0 for every one.
pub fn secret_occurrences() -> BTreeMap<&'static str, usize> {
    let text = log_text();
    [TRING_KEY, WRONG_TRING_KEY, GRAPH_SECRET, TOKEN_PREFIX]
        .into_iter()
        .map(|s| (s, text.matches(s).count()))
        .collect()
}

pub fn assert_no_secrets_logged() {
    let found = secret_occurrences();
    let text = log_text();
    assert!(!text.is_empty(), "the log capture caught nothing at all");
    for (s, n) in &found {
        if *n > 0 {
            let line = text.lines().find(|l| l.contains(s)).unwrap_or_default();
            panic!("secret {s:?} logged {n} times, e.g. {line:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The known state every case starts from

/// The known starting point, relative to `now`:
/// - 600 (additive): live ext:201 (owned; Jan's Support shift ended 10 min ago → del due)
///   and ext:299 (added by hand: never to be removed); Anouk's shift runs → add ext:203.
/// - 610 (exclusive): live ext:298 (not desired → del due); Piet's Sales shift runs → add ext:202.
/// - 700 (exclusive, the piket rota in a shared mailbox, as mobiles): live cu:Jan (owned, his
///   watch ended) → del; Piet is on call → add cu:Piet.
///
/// Jan's calendar has three events in the read window so that, with two per page, it spans
/// two pages (the "missing page" case fails the second).
pub fn events(now: DateTime<Utc>) -> BTreeMap<&'static str, Vec<Event>> {
    let h = |n: i64| now + chrono::Duration::minutes(n);
    let mut out = BTreeMap::new();
    out.insert(
        JAN,
        vec![
            event("jan-1", "Support", &["Support"], h(-180), h(-10)),
            event(
                "jan-2",
                "Support early",
                &["Support"],
                h(-20 * 60),
                h(-18 * 60),
            ),
            event(
                "jan-3",
                "Support late",
                &["Support"],
                h(-23 * 60),
                h(-21 * 60),
            ),
        ],
    );
    out.insert(
        ANOUK,
        vec![event("anouk-1", "Support", &["Support"], h(-60), h(180))],
    );
    out.insert(
        PIET,
        vec![event("piet-1", "Sales", &["Sales"], h(-60), h(180))],
    );
    out.insert(
        PIKET,
        vec![
            event("piket-1", "piket Piet Jansen", &[], h(-60), h(180)),
            event("piket-2", "piket Jan de Vries", &[], h(-300), h(-10)),
        ],
    );
    out
}

pub fn event(
    id: &str,
    subject: &str,
    categories: &[&str],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Event {
    Event {
        id: id.into(),
        subject: subject.into(),
        when: EventTime::Timed { start, end },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories: categories.iter().map(|c| c.to_string()).collect(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

/// Membership after convergence: live and owned per queue.
pub fn converged_live() -> BTreeMap<QueueNo, BTreeSet<Member>> {
    [
        ("600", set(&["ext:203", "ext:299"])),
        ("610", set(&["ext:202"])),
        ("700", set(&[&format!("cu:{PIET_MOBILE}")])),
    ]
    .into_iter()
    .map(|(k, v)| (q(k), v))
    .collect()
}

pub fn converged_owned() -> BTreeMap<QueueNo, BTreeSet<Member>> {
    [
        ("600", set(&["ext:203"])),
        ("610", set(&["ext:202"])),
        ("700", set(&[&format!("cu:{PIET_MOBILE}")])),
    ]
    .into_iter()
    .map(|(k, v)| (q(k), v))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Hostile calendar text, for the status page's tests (tests/web.rs, tests/browser.rs)

pub const SCRIPT: &str = "<script>alert('rooster')</script>Support";
pub const IMG: &str = "\"><img src=x onerror=alert(1)>Support";
pub const JS_URL: &str = "javascript:alert(document.cookie)";
/// A right-to-left override: would make "exe.gnp" read as "png.exe".
pub const BIDI: &str = "piket Piet Jansen \u{202E}gnp.exe";

/// Everyone on now, each event's subject hostile in its own way; each puts its person into a
/// queue, so each subject reaches the history as the reason of a write: Anouk into 600, Jan
/// and Piet into 610, Piet's mobile into 700.
pub fn hostile(now: DateTime<Utc>) -> BTreeMap<&'static str, Vec<Event>> {
    let h = |n: i64| now + chrono::Duration::minutes(n);
    BTreeMap::from([
        (
            ANOUK,
            vec![event("a", SCRIPT, &["Support"], h(-60), h(180))],
        ),
        (JAN, vec![event("j", IMG, &["Sales"], h(-60), h(120))]),
        (PIET, vec![event("p", JS_URL, &["Sales"], h(-60), h(240))]),
        (PIKET, vec![event("k", BIDI, &[], h(-60), h(300))]),
    ])
}

pub fn config_text(tring: &str, graph_base: &str, authority: &str, state: &Path) -> String {
    format!(
        r#"
timezone = "Europe/Amsterdam"
poll_interval = "2m"
window = "14d"
state = "{state}"

[tring]
base_url = "{tring}"
tenant = "ACME"
key_env = "ROOSTER_TEST_TRING_KEY"

[graph]
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "ROOSTER_TEST_GRAPH_SECRET"
base_url = "{graph_base}"
authority = "{authority}"

[[person]]
name = "Jan de Vries"
mailbox = "{JAN}"
extension = "201"
mobile = "{JAN_MOBILE}"
aliases = ["JdV"]

[[person]]
name = "Piet Jansen"
mailbox = "{PIET}"
extension = "202"
mobile = "{PIET_MOBILE}"

[[person]]
name = "Anouk Bakker"
mailbox = "{ANOUK}"
extension = "203"

[[queue]]
number = "600"
name = "Support"
ownership = "additive"

[[queue]]
number = "610"
name = "Sales"
ownership = "exclusive"

[[queue]]
number = "700"
name = "Piket"
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

[[rule]]
name = "on call"
calendar = "{PIKET}"
who = "subject"
match = {{ subject = "piket" }}
queues = ["700"]
as = "mobile"
"#,
        state = state.display()
    )
}

// ---------------------------------------------------------------------------------------
// The PBX seen by the reconciler: the real client, switchable and crashable

/// Where [`TestPbx`] stops answering, for crash simulation (SPEC §3 rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hang {
    /// `list` of this queue never returns (a crash before any intent is written).
    List(QueueNo),
    /// This write never reaches TRiNG and never returns (a crash after the intent).
    BeforeWrite(ActionKind, QueueNo, Member),
    /// This write is applied by TRiNG, then the reply never comes (a crash after TRiNG
    /// applied it, before the outcome).
    AfterWrite(ActionKind, QueueNo, Member),
}

#[derive(Default)]
struct PbxControl {
    /// When set, used instead of the good client (wrong key, connection refused).
    alt: Option<TringClient>,
    hang: Option<Hang>,
    /// Every successful `list` answer, in order, from [`TestPbx::record_lists`] until
    /// [`TestPbx::take_lists`]; not recording otherwise (the soak lists for hours).
    lists: Option<Vec<(QueueNo, BTreeSet<Member>)>>,
}

/// A [`Pbx`] over the real [`TringClient`] that a test can redirect to another client or
/// make hang at a chosen step. Cheap to clone; clones share control.
#[derive(Clone)]
pub struct TestPbx {
    real: TringClient,
    control: Arc<Mutex<PbxControl>>,
    /// Notified once a hang point is reached.
    pub hung: Arc<Notify>,
}

impl TestPbx {
    pub fn new(real: TringClient) -> Self {
        TestPbx {
            real,
            control: Arc::new(Mutex::new(PbxControl::default())),
            hung: Arc::new(Notify::new()),
        }
    }
    fn control(&self) -> std::sync::MutexGuard<'_, PbxControl> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn use_alt(&self, client: Option<TringClient>) {
        self.control().alt = client;
    }
    pub fn hang_at(&self, hang: Option<Hang>) {
        self.control().hang = hang;
    }
    /// Starts recording `list` answers.
    pub fn record_lists(&self) {
        self.control().lists = Some(Vec::new());
    }
    /// The `list` answers seen since [`TestPbx::record_lists`], in order; stops recording.
    pub fn take_lists(&self) -> Vec<(QueueNo, BTreeSet<Member>)> {
        self.control().lists.take().unwrap_or_default()
    }
    fn client(&self) -> TringClient {
        self.control()
            .alt
            .clone()
            .unwrap_or_else(|| self.real.clone())
    }
    /// Signals the test, then never returns: the test aborts the task (the "crash").
    async fn hang_forever(&self) {
        self.hung.notify_one();
        std::future::pending::<()>().await;
    }
}

impl Pbx for TestPbx {
    async fn list(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        let hang = self.control().hang.clone();
        if hang == Some(Hang::List(queue.clone())) {
            self.hang_forever().await;
        }
        let live = Pbx::list(&self.client(), queue).await;
        if let (Ok(members), Some(lists)) = (&live, &mut self.control().lists) {
            lists.push((queue.clone(), members.clone()));
        }
        live
    }

    async fn write(
        &self,
        kind: ActionKind,
        queue: &QueueNo,
        member: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let hang = self.control().hang.clone();
        let this = (kind, queue.clone(), member.clone());
        if hang == Some(Hang::BeforeWrite(this.0, this.1.clone(), this.2.clone())) {
            self.hang_forever().await;
        }
        let result = Pbx::write(&self.client(), kind, queue, member).await;
        if hang == Some(Hang::AfterWrite(this.0, this.1, this.2)) {
            self.hang_forever().await;
        }
        result
    }
}

// ---------------------------------------------------------------------------------------
// The harness

pub type Rec = Reconciler<GraphClient, TestPbx, SystemClock>;

pub struct Harness {
    pub graph: GraphSim,
    pub tring: TringSim,
    pub cfg: Arc<Config>,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub pbx: TestPbx,
    pub now: DateTime<Utc>,
}

pub fn tring_options() -> TringClientOptions {
    TringClientOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        retry: rooster::tring::RetryPolicy {
            max_tries: 4,
            base_delay: Duration::from_millis(20),
            ..rooster::tring::RetryPolicy::default()
        },
    }
}

pub fn graph_options() -> GraphOptions {
    GraphOptions {
        retry: rooster::graph::RetryPolicy {
            max_tries: 4,
            base_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(120),
        },
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        // Remembered for the rest of the cycle only, so a cleared fault heals the next one.
        token_backoff: Duration::ZERO,
        ..GraphOptions::default()
    }
}

impl Harness {
    /// Simulators, config and a store seeded to the known state of [`events`].
    pub async fn start() -> Harness {
        Self::start_with(events).await
    }

    /// As [`Harness::start`] with other calendars (the simulators' queues and the store's
    /// ownership are the same).
    pub async fn start_with(
        events_at: fn(DateTime<Utc>) -> BTreeMap<&'static str, Vec<Event>>,
    ) -> Harness {
        logs();
        let now = Utc::now();
        let graph = within(
            "starting the graph simulator",
            10,
            GraphSim::start(GraphSimOptions {
                client_secret: GRAPH_SECRET.into(),
                page_size: 2,
                ..GraphSimOptions::default()
            }),
        )
        .await
        .expect("graph simulator starts");
        let evs = events_at(now);
        for (mb, list) in &evs {
            graph.set_events(&mailbox(mb), None, list.clone());
        }
        for mb in [JAN, PIET, ANOUK, PIKET] {
            if !evs.contains_key(mb) {
                graph.set_events(&mailbox(mb), None, Vec::new());
            }
        }
        let tring = within(
            "starting the tring simulator",
            10,
            TringSim::start(SimTringOptions {
                key: Secret::new(TRING_KEY),
                queues: vec![
                    (q("600"), vec![m("ext:201"), m("ext:299")]),
                    (q("610"), vec![m("ext:298")]),
                    (q("700"), vec![m(&format!("cu:{JAN_MOBILE}"))]),
                ],
                custom_destinations: [JAN_MOBILE, PIET_MOBILE, STRANGER_MOBILE]
                    .iter()
                    .map(|s| Mobile::parse(s).expect("test mobile"))
                    .collect(),
                ..SimTringOptions::default()
            }),
        )
        .await
        .expect("tring simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("rooster.db");
        let text = config_text(
            tring.base_url().as_str(),
            graph.base_url().as_str(),
            graph.authority().as_str(),
            &db,
        );
        let cfg = Arc::new(
            Config::parse(&text, Path::new("test.toml"))
                .unwrap_or_else(|e| panic!("harness config must parse: {e}")),
        );
        let real = TringClient::with_options(&cfg.tring, Secret::new(TRING_KEY), tring_options())
            .expect("tring client")
            .with_known_members(KnownMembers::from_config(&cfg));
        let h = Harness {
            graph,
            tring,
            cfg,
            dir,
            db,
            pbx: TestPbx::new(real),
            now,
        };
        h.seed(&evs).await;
        h
    }

    /// The state a daemon that ran before would have: what it added (ext:201 in 600,
    /// cu:Jan in 700) and the last events it read.
    async fn seed(&self, evs: &BTreeMap<&'static str, Vec<Event>>) {
        let store = self.open_store().await.expect("seed store opens");
        for (queue, member) in [
            ("600", "ext:201".to_owned()),
            ("700", format!("cu:{JAN_MOBILE}")),
        ] {
            let id = store
                .record_intent(&Intent {
                    queue: q(queue),
                    member: m(&member),
                    action: WriteAction::Add,
                    person: Some("Jan de Vries".into()),
                    reason: "seeded by the test harness".into(),
                    at: self.now - chrono::Duration::hours(4),
                })
                .await
                .expect("seed intent");
            store
                .record_outcome(id, &Outcome::Applied, self.now - chrono::Duration::hours(4))
                .await
                .expect("seed outcome");
        }
        for mb in [JAN, PIET, ANOUK, PIKET] {
            let list = evs.get(mb).cloned().unwrap_or_default();
            store
                .record_calendar_read(&cal(mb), self.now - chrono::Duration::minutes(5), Ok(&list))
                .await
                .expect("seed last events");
        }
        within("closing the seed store", 10, store.close()).await;
    }

    pub async fn open_store(&self) -> Result<Store, StoreError> {
        // Other tests in this binary spawn processes (`flock`, `chattr`, `mount`). A child
        // holds a copy of every open file of this process from its fork to its exec, and with
        // it the flock of a lock file just closed here: then the lock reads as held by our own
        // pid for that moment. Only that case is tried again, at once (the child's exec ends
        // it, not a timer), for at most two seconds.
        let ours = Some(std::process::id());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let opened = within(
                "opening the store",
                10,
                Store::open(&self.db, OpenMode::Writer),
            )
            .await;
            match opened {
                Err(StoreError::Locked { pid, .. })
                    if pid == ours && std::time::Instant::now() < deadline =>
                {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }

    pub fn graph_client(&self) -> GraphClient {
        GraphClient::with_options(&self.cfg.graph, Secret::new(GRAPH_SECRET), graph_options())
            .expect("graph client")
    }

    /// A TRiNG client with another key or base URL (the "wrong key" and "connection refused"
    /// cases).
    pub fn other_tring_client(&self, base_url: Option<url::Url>, key: &str) -> TringClient {
        let mut cfg = self.cfg.tring.clone();
        if let Some(u) = base_url {
            cfg.base_url = u;
        }
        TringClient::with_options(&cfg, Secret::new(key), tring_options())
            .expect("tring client")
            .with_known_members(KnownMembers::from_config(&self.cfg))
    }

    /// A reconciler as `rooster run` builds it: writer store, fresh Graph client (no token
    /// cached yet), the harness's PBX.
    pub async fn reconciler(&self) -> Rec {
        let store = self.open_store().await.expect("store opens as writer");
        within(
            "building the reconciler",
            10,
            Reconciler::new(
                self.cfg.clone(),
                self.graph_client(),
                self.pbx.clone(),
                SystemClock,
                Some(store),
                false,
            ),
        )
        .await
        .expect("reconciler builds")
    }

    pub fn clear_faults(&self) {
        self.graph.clear_faults();
        self.tring.clear_faults();
        self.pbx.use_alt(None);
        self.pbx.hang_at(None);
    }

    /// Live membership per managed queue, from the simulator.
    pub fn live(&self) -> BTreeMap<QueueNo, BTreeSet<Member>> {
        ["600", "610", "700"]
            .into_iter()
            .map(|n| (q(n), self.tring.members(&q(n)).into_iter().collect()))
            .collect()
    }

    pub async fn shutdown(self) {
        self.graph.shutdown();
        within("stopping the tring simulator", 5, self.tring.shutdown()).await;
    }
}

/// One cycle, bounded.
pub async fn run_cycle(rec: &mut Rec) -> CycleReport {
    let cancel = CancellationToken::new();
    within("a cycle", 30, rec.cycle(Mode::Full, &cancel))
        .await
        .expect("the cycle's store writes succeed")
}

pub async fn owned(rec: &Rec) -> BTreeMap<QueueNo, BTreeSet<Member>> {
    let store = rec.store().expect("the reconciler has a store");
    let mut all = within("reading owned", 10, store.owned_all())
        .await
        .expect("owned reads");
    all.retain(|_, v| !v.is_empty());
    all
}

/// The writes among recorded requests: (action, queue, extension parameter).
pub fn writes(reqs: &[RecordedRequest]) -> Vec<(Action, String, String)> {
    reqs.iter()
        .filter(|r| matches!(r.action, Some(Action::Add | Action::Del | Action::Clean)))
        .filter_map(|r| {
            Some((
                r.action?,
                r.queue.clone().unwrap_or_default(),
                r.extension.clone().unwrap_or_default(),
            ))
        })
        .collect()
}
