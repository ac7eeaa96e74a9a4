//! `rooster demo` (SPEC §6): the real daemon — [`daemon::run`] over a [`Reconciler`] with the
//! real Graph and TRiNG clients and a real SQLite [`Store`] — against the simulators of
//! [`crate::sim`] on 127.0.0.1, with a made-up team and a scripted minute: shifts seconds long,
//! a recurring shift with a moved occurrence, an absence, an on-call mobile from a shared
//! mailbox, a hand-made queue member that must survive, a calendar edit and a short Graph
//! outage. It prints a timeline of what the daemon did to the queues and why (read back from
//! the simulator and the daemon's own journal), and checks the queues at scripted checkpoints
//! against membership written out by hand in [`CHECKS`] — never computed by the code under test.
//!
//! Needs no config, secrets or network beyond 127.0.0.1; its state lives in a fresh temporary
//! directory that is removed afterwards. It must not touch any real config, state, TRiNG or
//! Graph, and it decides nothing itself: every add and del is the daemon's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, Person};
use crate::cycle::{Reconciler, SystemClock};
use crate::daemon::{self, NoNotifier};
use crate::graph::client::GraphOptions;
use crate::graph::{GraphClient, GraphError};
use crate::model::{
    Event, EventKind, EventTime, Mailbox, Member, Mobile, QueueNo, Secret, Sensitivity, ShowAs,
    sanitize,
};
use crate::sim::graph::{GraphSim, GraphSimOptions};
use crate::sim::sample;
use crate::sim::tring::{SimTringOptions, TringSim};
use crate::store::{OpenMode, Store, StoreError, WriteAction};
use crate::tring::{KnownMembers, TringClient, TringClientOptions, TringError};
use crate::words;

// ---- the script, in demo seconds (`DemoOptions::scale` stretches or shrinks them) ----------
//
// Every instant below is seconds after the daemon starts. Calendars are polled every
// POLL_SECS (t = 0, 10, 20, 30, …); shift starts and ends are applied at their boundary
// (SPEC §5), not at the next poll. The queue changes the script leads to:
//
//   t=0   first cycle: +ext:201 (Jan) in 600, +ext:205 (Lotte) in 610, −ext:298 (stale, 610
//         is exclusive), +cu:Pieter in 700 (on call). ext:299 in 600 was put there by hand.
//   t=5   +ext:202 Sanne (recurring Support shift, occurrence 1 at 7–12, lead 2 s)
//   t=9   −ext:201 Jan is out of office (dentist 9–16): absence beats membership
//   t=12  −ext:202 Sanne's occurrence ends
//   t=15  calendar edit (seen by the poll at 20): Lotte's Sales shift ends at 24, not 40
//   t=16  +ext:201 Jan is back
//   t=18  +ext:202 Sanne's second occurrence, an exception moved from 17–22 to 20–31
//   t=19  on-call hand-over in 700: +cu:Fatima −cu:Pieter
//   t=23  +ext:206 Daan's Sales shift;  t=24 −ext:205 Lotte (the edit);  t=25 −ext:201 Jan
//   t=28  Graph goes down; the poll at 30 fails, so every queue gets adds only (SPEC §3 rule 1)
//   t=31  Sanne's shift ends: her removal is held back
//   t=35  +ext:203 Pieter's Support shift (37–56, lead 2): adds still happen, from the last
//         events read
//   t=36  Graph is back; the daemon polls less often after a failed poll, so the next
//         complete read is at 50 (or 40 — the checkpoints allow both)
//   t=50  −ext:202 Sanne, now that a complete read says her shift is over
//   t=56  −ext:203 Pieter's shift ends;  t=58 the last checkpoint.
//
// Beside the scripted minute, the on-call rota of 700 holds a normal week: Fatima's watch
// lasts until the first hand-over (08:00 or 18:00 local) after the demo has ended, then Pieter
// and Fatima take turns, watch by watch, to the end of the week, except that nobody took the
// evening of the day after tomorrow, 18:00–22:00 local ([`crate::sim::sample`]). Shifts
// seconds long are invisible on `coverage`'s 15-minute grid, so this week is what the demo's
// `coverage` shows: watches around the clock with exactly one gap. It changes nothing during
// the minute (its first hand-over comes after the end), so every checkpoint stands as written.

/// How often the demo daemon reads calendars. SPEC §4's minimum; the demo scales it with
/// everything else (see [`build_config`]).
const POLL_SECS: f64 = 10.0;
/// `lead` of the Support rule: members join this long before their shift starts.
const SUPPORT_LEAD_SECS: f64 = 2.0;
/// When Lotte's Sales shift is shortened (read by the poll at 20, effective at 24).
const EDIT_AT: f64 = 15.0;
/// The Graph outage: every Graph call answers 503 in between.
const OUTAGE: (f64, f64) = (28.0, 36.0);
/// When the demo stops.
const END_AT: f64 = 58.5;
/// The on-call week (see the script above) begins with the first hand-over at least this long
/// after the start: a demo minute after the end, so nothing in it happens during the demo.
const WEEK_AFTER: f64 = END_AT + 60.0;
/// The on-call week: its days after today's, and the day (counted from today) whose evening
/// nobody took.
const WEEK_DAYS: u64 = 8;
const UNCOVERED_DAY: u64 = 2;

/// The three queues, in the order of [`Check::expect`].
const QUEUES: [(&str, &str); 3] = [("600", "Support"), ("610", "Sales"), ("700", "Piket")];
/// Put in 600 by hand before the start; 600 is additive, so it must survive.
const HAND_MADE: &str = "ext:299";
/// Left in 610 from before; 610 is exclusive, so rooster removes it.
const STALE: &str = "ext:298";
const PIKET_MAILBOX: &str = "piket@demo.example";
const PIETER_CU: &str = "cu:0612345603";
const FATIMA_CU: &str = "cu:0612345604";

/// The team: name, mailbox local part, extension, mobile.
const TEAM: [(&str, &str, &str, Option<&str>); 6] = [
    ("Jan de Vries", "jan", "201", None),
    ("Sanne Bakker", "sanne", "202", None),
    ("Pieter Jansen", "pieter", "203", Some("0612345603")),
    ("Fatima el Amrani", "fatima", "204", Some("0612345604")),
    ("Lotte Visser", "lotte", "205", None),
    ("Daan Mulder", "daan", "206", None),
];

/// A checkpoint: at `at` demo seconds, queues 600, 610 and 700 hold exactly `expect`.
/// Each is placed at least 1.5 demo seconds from any boundary or poll that changes a queue
/// (the one after the outage from both a poll at 40 and at 50, so either backoff passes).
struct Check {
    at: f64,
    name: &'static str,
    expect: [&'static [&'static str]; 3],
}

const CHECKS: &[Check] = &[
    Check {
        at: 2.5,
        name: "first cycle: shifts in progress, stale Sales member gone",
        expect: [&["ext:201", HAND_MADE], &["ext:205"], &[PIETER_CU]],
    },
    Check {
        at: 7.0,
        name: "Sanne's recurring shift has begun (lead 2 s)",
        expect: [
            &["ext:201", "ext:202", HAND_MADE],
            &["ext:205"],
            &[PIETER_CU],
        ],
    },
    Check {
        at: 10.5,
        name: "Jan is out of office: absence beats his shift",
        expect: [&["ext:202", HAND_MADE], &["ext:205"], &[PIETER_CU]],
    },
    Check {
        at: 14.0,
        name: "between shifts only the hand-made member is left",
        expect: [&[HAND_MADE], &["ext:205"], &[PIETER_CU]],
    },
    Check {
        at: 21.0,
        name: "moved occurrence and on-call hand-over",
        expect: [
            &["ext:201", "ext:202", HAND_MADE],
            &["ext:205"],
            &[FATIMA_CU],
        ],
    },
    Check {
        at: 27.0,
        name: "after the calendar edit: Lotte left at 24, not 40",
        expect: [&["ext:202", HAND_MADE], &["ext:206"], &[FATIMA_CU]],
    },
    Check {
        at: 33.0,
        name: "Graph down: Sanne's shift ended at 31, she stays",
        expect: [&["ext:202", HAND_MADE], &["ext:206"], &[FATIMA_CU]],
    },
    Check {
        at: 38.5,
        name: "Graph back, no complete read yet: adds only",
        expect: [
            &["ext:202", "ext:203", HAND_MADE],
            &["ext:206"],
            &[FATIMA_CU],
        ],
    },
    Check {
        at: 53.0,
        name: "first complete read after the outage: Sanne removed",
        expect: [&["ext:203", HAND_MADE], &["ext:206"], &[FATIMA_CU]],
    },
    Check {
        at: 58.0,
        name: "end",
        expect: [&[HAND_MADE], &["ext:206"], &[FATIMA_CU]],
    },
];

/// Every person's calendar and the shared on-call calendar, `edited` after the edit at
/// [`EDIT_AT`]. `at` turns demo seconds into instants; `tz` places the on-call week's
/// hand-overs.
fn calendars(
    at: &dyn Fn(f64) -> DateTime<Utc>,
    edited: bool,
    tz: Tz,
) -> Vec<(&'static str, Vec<Event>)> {
    let shift = |id: &str, subject: &str, category: &str, from: f64, to: f64| {
        event(id, subject, at(from), at(to), ShowAs::Busy, &[category])
    };
    let occurrence = |id: &str, kind: EventKind, from: f64, to: f64| Event {
        kind,
        series_master_id: Some("sanne-support-series".to_owned()),
        ..shift(id, "Support", "Support", from, to)
    };
    let lotte_end = if edited { 24.0 } else { 40.0 };
    // The week after the scripted minute (see the script above).
    let today = at(0.0).with_timezone(&tz).date_naive();
    let handover = sample::next_handover(at(WEEK_AFTER), tz);
    let week = sample::on_call_week(
        handover,
        today + chrono::Days::new(WEEK_DAYS),
        today + chrono::Days::new(UNCOVERED_DAY),
        &["Pieter Jansen", "Fatima el Amrani"],
        tz,
    );
    vec![
        (
            "jan",
            vec![
                shift("jan-support", "Support", "Support", 0.0, 25.0),
                event(
                    "jan-dentist",
                    "Tandarts",
                    at(9.0),
                    at(16.0),
                    ShowAs::Oof,
                    &[],
                ),
            ],
        ),
        (
            "sanne",
            vec![
                occurrence("sanne-support-1", EventKind::Occurrence, 7.0, 12.0),
                // The second occurrence (17–22) was moved to 20–31: Graph calls that an
                // exception of the same series.
                occurrence("sanne-support-2", EventKind::Exception, 20.0, 31.0),
                occurrence("sanne-support-3", EventKind::Occurrence, 67.0, 72.0),
            ],
        ),
        (
            "pieter",
            vec![shift("pieter-support", "Support", "Support", 37.0, 56.0)],
        ),
        ("fatima", vec![]),
        (
            "lotte",
            vec![shift("lotte-sales", "Verkoop", "Sales", -5.0, lotte_end)],
        ),
        (
            "daan",
            vec![shift("daan-sales", "Verkoop", "Sales", 23.0, 70.0)],
        ),
        (
            "piket",
            vec![
                event(
                    "piket-1",
                    "Piket Pieter Jansen",
                    at(-10.0),
                    at(19.0),
                    ShowAs::Busy,
                    &[],
                ),
                // Her watch runs on into the week, until its first hand-over.
                event(
                    "piket-2",
                    "Piket Fatima el Amrani",
                    at(19.0),
                    handover,
                    ShowAs::Busy,
                    &[],
                ),
            ]
            .into_iter()
            .chain(week)
            .collect(),
        ),
    ]
}

fn event(
    id: &str,
    subject: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    show_as: ShowAs,
    categories: &[&str],
) -> Event {
    Event {
        id: id.to_owned(),
        subject: subject.to_owned(),
        when: EventTime::Timed { start, end },
        is_cancelled: false,
        show_as,
        categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

/// Where the Graph simulator listens and what it accepts.
struct GraphUrls<'a> {
    base_url: &'a str,
    authority: &'a str,
    options: &'a GraphSimOptions,
}

/// The demo's config as an operator would write it (SPEC §4), pointing at the simulators.
fn config_text(tring_url: &str, graph: &GraphUrls<'_>, state: &Path, scale: f64) -> String {
    let opts = graph.options;
    let mut persons = String::new();
    for (name, local, ext, mobile) in TEAM {
        persons.push_str(&format!(
            "[[person]]\nname = \"{name}\"\nmailbox = \"{local}@demo.example\"\nextension = \"{ext}\"\n"
        ));
        if let Some(m) = mobile {
            persons.push_str(&format!("mobile = \"{m}\"\n"));
        }
        persons.push('\n');
    }
    let lead_ms = (SUPPORT_LEAD_SECS * scale * 1000.0).round() as u64;
    format!(
        r#"timezone = "Europe/Amsterdam"
poll_interval = "10s"
# 8 days: the on-call week of 700, for `coverage` at the end.
window = "8d"
state = '{state}'

[tring]
base_url = "{tring_url}"
tenant = "DEMO"
key_env = "ROOSTER_DEMO_TRING_KEY"

[graph]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
client_secret_env = "ROOSTER_DEMO_GRAPH_SECRET"
base_url = "{graph_url}"
authority = "{authority}"

{persons}[[queue]]
number = "600"
name = "Support"
ownership = "additive"

[[queue]]
number = "610"
name = "Sales"
ownership = "exclusive"
keep_last = true

[[queue]]
number = "700"
name = "Piket"
ownership = "exclusive"

[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]
lead = "{lead_ms}ms"

[[rule]]
name = "sales shifts"
calendar = "own"
match = {{ categories = ["Sales"] }}
queues = ["610"]

[[rule]]
name = "on call"
calendar = "{PIKET_MAILBOX}"
who = "subject"
match = {{ subject = "piket" }}
queues = ["700"]
as = "mobile"

[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = {{ show_as = ["oof"] }}
"#,
        state = state.display(),
        tenant_id = opts.tenant_id,
        client_id = opts.client_id,
        graph_url = graph.base_url,
        authority = graph.authority,
    )
}

/// Parses [`config_text`] like any config, then compresses the poll interval with the rest
/// of the script: the config keeps SPEC §4's 10 s minimum, which is what scale 1.0 uses; a
/// faster demo (the tests) needs the poll to shrink with the shifts it has to see.
fn build_config(text: &str, scale: f64) -> Result<Config, ConfigError> {
    let mut cfg = Config::parse(text, Path::new("demo.toml"))?;
    cfg.poll_interval = Duration::from_secs_f64(POLL_SECS * scale);
    Ok(cfg)
}

// ---- public API ----------------------------------------------------------------------------

/// How to run the demo.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Real seconds per demo second: 1.0 is the ~60 s demo; tests use less. 0.1 to 10.
    pub scale: f64,
    /// ANSI colours in the timeline (when stdout is a terminal).
    pub color: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            color: false,
        }
    }
}

/// One queue at one checkpoint: the membership the script states and what TRiNG held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    /// Demo time (unscaled) after the daemon started.
    pub at: Duration,
    pub queue: QueueNo,
    pub expected: BTreeSet<Member>,
    pub actual: BTreeSet<Member>,
    pub ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
}

/// A change of a queue as seen in the TRiNG simulator, with the daemon's reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Demo time (unscaled) at which the change was seen (within a tenth of a demo second).
    pub at: Duration,
    pub queue: QueueNo,
    pub kind: ChangeKind,
    pub member: Member,
    pub person: Option<String>,
    /// The reason from the daemon's journal, or a note that the change was not rooster's.
    pub why: String,
}

/// What the demo saw. `all_ok` is the exit status of `rooster demo`.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub checkpoints: Vec<Checkpoint>,
    pub changes: Vec<Change>,
    /// The Graph outage, in demo time.
    pub outage: (Duration, Duration),
    /// Removals seen while Graph was down: SPEC §3 rule 1 says there must be none.
    pub removed_during_outage: Vec<Change>,
    /// The hand-made member of the additive queue was never removed.
    pub hand_made_survived: bool,
    pub all_ok: bool,
}

/// Why the demo could not run (a mismatch is not an error: it is in [`DemoOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo scale {0}: expected a number from 0.1 to 10")]
    ScaleRejected(f64),
    #[error("{which} simulator: did not start: {source}")]
    SimulatorStartFailed {
        which: &'static str,
        source: io::Error,
    },
    #[error("demo state directory {path}: could not be created: {source}", path = .path.display())]
    StateDirFailed { path: PathBuf, source: io::Error },
    #[error("built-in demo config was refused: {0}")]
    ConfigRejected(#[from] ConfigError),
    #[error("demo state: {0}")]
    StoreFailed(#[from] StoreError),
    #[error("graph client: could not be built: {0}")]
    GraphClientFailed(#[from] GraphError),
    #[error("tring client: could not be built: {0}")]
    TringClientFailed(#[from] TringError),
    #[error("daemon: stopped with a state error: {0}")]
    DaemonFailed(StoreError),
    #[error("daemon: stopped before the demo ended")]
    DaemonStoppedEarly,
    #[error("daemon: task panicked")]
    DaemonPanicked,
    #[error("daemon: did not stop within {0:?} of the shutdown request")]
    DaemonStopTimedOut(Duration),
    #[error("timeline output: write failed: {0}")]
    OutputFailed(#[from] io::Error),
}

/// Runs the scripted demo (about a minute at `scale` 1.0), printing the timeline and the final
/// table to `out`. Starts and stops everything it needs; touches nothing outside 127.0.0.1 and
/// its own temporary directory.
pub async fn run(
    opts: DemoOptions,
    out: &mut (dyn Write + Send),
) -> Result<DemoOutcome, DemoError> {
    if !(opts.scale.is_finite() && (0.1..=10.0).contains(&opts.scale)) {
        return Err(DemoError::ScaleRejected(opts.scale));
    }
    let started = |which| move |source| DemoError::SimulatorStartFailed { which, source };
    let graph = GraphSim::start(GraphSimOptions::default())
        .await
        .map_err(started("graph"))?;
    let tring = match TringSim::start(tring_options()).await {
        Ok(t) => t,
        Err(e) => {
            graph.shutdown();
            return Err(started("tring")(e));
        }
    };
    let result = async {
        let dir = StateDir::create()?;
        run_with(opts, &graph, &tring, &dir.0, out).await
    }
    .await;
    graph.shutdown();
    tring.shutdown().await;
    result
}

// ---- the run -------------------------------------------------------------------------------

fn tring_options() -> SimTringOptions {
    let q = |s: &str| QueueNo::parse(s).expect("demo queue numbers are valid");
    let m = |s: &str| s.parse::<Member>().expect("demo members are valid");
    SimTringOptions {
        key: Secret::new("demo-tring-key"),
        tenant: "DEMO".to_owned(),
        queues: vec![
            // Put in by hand in the portal before rooster ever ran.
            (q("600"), vec![m(HAND_MADE)]),
            (q("610"), vec![m(STALE)]),
            (q("700"), vec![]),
        ],
        custom_destinations: TEAM
            .iter()
            .filter_map(|(_, _, _, mobile)| *mobile)
            .map(|s| Mobile::parse(s).expect("demo mobiles are valid"))
            .collect(),
        ..SimTringOptions::default()
    }
}

/// A fresh directory for the demo's SQLite state, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn create() -> Result<StateDir, DemoError> {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("rooster-demo-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| DemoError::StateDirFailed {
            path: path.clone(),
            source,
        })?;
        Ok(StateDir(path))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir harms nobody.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything between the simulators' start and stop.
async fn run_with(
    opts: DemoOptions,
    graph: &GraphSim,
    tring: &TringSim,
    dir: &Path,
    out: &mut (dyn Write + Send),
) -> Result<DemoOutcome, DemoError> {
    let scale = opts.scale;
    let state = dir.join("rooster.db");
    let (graph_url, authority) = (graph.base_url(), graph.authority());
    let urls = GraphUrls {
        base_url: graph_url.as_str(),
        authority: authority.as_str(),
        options: graph.options(),
    };
    let text = config_text(tring.base_url().as_str(), &urls, &state, scale);
    let cfg = Arc::new(build_config(&text, scale)?);

    let (graph_client, tring_client) = clients(&cfg, graph)?;
    let store = Store::open(&state, OpenMode::Writer).await?;
    let mut rec = Reconciler::new(
        cfg.clone(),
        graph_client,
        tring_client,
        SystemClock,
        Some(store.clone()),
        false,
    )
    .await?;

    let mut p = Printer {
        out,
        color: opts.color,
        tz: cfg.timezone,
        start: Instant::now(),
        scale,
    };
    intro(&mut p, graph, tring, scale)?;

    // Demo time 0: events are placed relative to it, and the daemon starts at it.
    let t0 = Utc::now();
    let at = move |secs: f64| t0 + chrono::Duration::milliseconds((secs * scale * 1000.0) as i64);
    for (local, events) in calendars(&at, false, cfg.timezone) {
        graph.set_events(&mailbox(local), None, events);
    }
    p.start = Instant::now();
    let cancel = CancellationToken::new();
    let daemon_cancel = cancel.clone();
    let mut daemon =
        tokio::spawn(async move { daemon::run(&mut rec, &NoNotifier, daemon_cancel).await });
    // Stops the daemon on every way out of this function, errors included.
    let _stop = cancel.clone().drop_guard();

    let mut watch = Watch {
        tring,
        store: store.clone(),
        since: t0 - chrono::Duration::hours(1),
        last: BTreeMap::new(),
        refusals_seen: BTreeSet::new(),
        changes: Vec::new(),
        persons: &cfg.persons,
    };
    watch.last = watch.snapshot();
    p.heading("timeline")?;
    for (q, name) in QUEUES {
        let members = watch.last.get(&queue(q)).cloned().unwrap_or_default();
        p.line(&format!(
            "{q} {name:<8}  at the start: {}",
            show_set(&members)
        ))?;
    }

    let tick = Duration::from_secs_f64((0.1 * scale).max(0.02));
    let mut checkpoints = Vec::new();
    for (when, step) in script() {
        let due = p.start + Duration::from_secs_f64(when * scale);
        loop {
            watch.observe(&mut p).await?;
            if daemon.is_finished() {
                return Err(match (&mut daemon).await {
                    Ok(Ok(())) => DemoError::DaemonStoppedEarly,
                    Ok(Err(e)) => DemoError::DaemonFailed(e),
                    Err(_) => DemoError::DaemonPanicked,
                });
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            tokio::time::sleep(tick.min(due - now)).await;
        }
        match step {
            Step::Edit => {
                for (local, events) in calendars(&at, true, cfg.timezone) {
                    if local == "lotte" {
                        graph.set_events(&mailbox(local), None, events);
                    }
                }
                p.note(
                    "33",
                    "EDIT",
                    "Lotte Visser shortens her Sales shift: it now ends at t+24s instead of \
                     t+40s (seen at the next poll)",
                )?;
            }
            Step::OutageStarts => {
                graph.set_outage(true);
                p.note(
                    "33",
                    "OUTAGE",
                    "Microsoft Graph goes down: every call answers 503",
                )?;
            }
            Step::OutageEnds => {
                graph.set_outage(false);
                p.note(
                    "33",
                    "OUTAGE",
                    "Microsoft Graph is back (removals wait for the next complete read)",
                )?;
            }
            Step::Check(check) => {
                let rows = check_now(check, &watch.snapshot());
                let ok = rows.iter().all(|r| r.ok);
                let (code, label) = if ok {
                    ("32", "CHECK ok")
                } else {
                    ("31", "CHECK FAILED")
                };
                p.note(code, label, check.name)?;
                for r in rows.iter().filter(|r| !r.ok) {
                    p.line(&format!(
                        "            queue {}: expected {}, actual {}",
                        r.queue,
                        show_set(&r.expected),
                        show_set(&r.actual)
                    ))?;
                }
                checkpoints.extend(rows);
            }
            Step::End => {}
        }
    }

    cancel.cancel();
    stop_daemon(daemon).await?;
    // SPEC §4 `history`: what an operator would read afterwards, from the same journal.
    let history = crate::commands::history::read(
        &store,
        watch.since,
        Utc::now(),
        &crate::commands::history::HistoryFilter::default(),
    )
    .await;
    store.close().await;

    let outcome = verdict(checkpoints, watch.changes);
    summary(&mut p, &outcome)?;
    p.heading("rooster history (the last entries)")?;
    match history {
        Ok(entries) => {
            for e in entries.iter().rev().take(8).rev() {
                let mut line = Vec::new();
                e.render(cfg.timezone, &mut line)?;
                p.line(String::from_utf8_lossy(&line).trim_end())?;
            }
        }
        Err(e) => p.line(&format!("history could not be read: {e}"))?,
    }
    coverage_of_the_week(&mut p, &cfg).await?;
    doctor_checklist(&mut p, &cfg, graph).await?;
    Ok(outcome)
}

/// SPEC §4 `coverage`, as `rooster coverage --queue 700` prints it, from the events the
/// daemon last read (the state the demo leaves; no network). Only 700: the calendars of 600
/// and 610 hold nothing but the scripted minute, so every day after it would be one long gap;
/// 700's rota holds a normal week with one evening nobody took. Informative, like `history`:
/// the demo's verdict is its checkpoints.
async fn coverage_of_the_week(p: &mut Printer<'_>, cfg: &Config) -> io::Result<()> {
    p.heading("rooster coverage --queue 700 (the on-call week, from the events last read)")?;
    let report = crate::commands::coverage::coverage(cfg, 7, Some("700"), Utc::now()).await;
    match report {
        Ok(report) => {
            let mut text = Vec::new();
            report.render(&mut text)?;
            for l in String::from_utf8_lossy(&text).lines() {
                p.line(l)?;
            }
        }
        Err(e) => p.line(&format!("coverage could not be computed: {e}"))?,
    }
    Ok(())
}

/// Ends the demo the way an install starts (SPEC §4 "Doctor"): `rooster doctor` against the
/// same simulators and the state the demo left, its checklist printed as is. Informative only:
/// the demo's verdict is its checkpoints.
async fn doctor_checklist(p: &mut Printer<'_>, cfg: &Config, graph: &GraphSim) -> io::Result<()> {
    let secrets = crate::config::Secrets {
        tring_key: Secret::new("demo-tring-key"),
        graph_client_secret: Secret::new(graph.options().client_secret.clone()),
    };
    let opts = crate::commands::doctor::DoctorOptions::default();
    let report = crate::commands::doctor::doctor_with(cfg, &secrets, &opts).await;
    let mut text = Vec::new();
    report.render(&mut text)?;
    p.line("")?;
    p.line("Before going live, an admin runs `rooster doctor`; against the simulators it says:")?;
    for l in String::from_utf8_lossy(&text).lines() {
        p.line(l)?;
    }
    Ok(())
}

/// The real clients, pointed at the simulators by the config. They retry fast: a demo
/// second is short, and an outage must fail a poll quickly rather than outlast it (SPEC §5's
/// defaults would spend 7 s backing off).
fn clients(cfg: &Config, graph: &GraphSim) -> Result<(GraphClient, TringClient), DemoError> {
    let graph_client = GraphClient::with_options(
        &cfg.graph,
        Secret::new(graph.options().client_secret.clone()),
        GraphOptions {
            retry: crate::graph::RetryPolicy {
                max_tries: 3,
                base_delay: Duration::from_millis(50),
                max_retry_after: Duration::from_millis(200),
            },
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            token_backoff: Duration::from_secs(1),
            ..GraphOptions::default()
        },
    )?;
    let tring_client = TringClient::with_options(
        &cfg.tring,
        Secret::new("demo-tring-key"),
        TringClientOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            retry: crate::tring::RetryPolicy {
                max_tries: 3,
                base_delay: Duration::from_millis(50),
                ..crate::tring::RetryPolicy::default()
            },
        },
    )?
    .with_known_members(KnownMembers::from_config(cfg));
    Ok((graph_client, tring_client))
}

/// Waits for the cancelled daemon to finish its write in flight and stop (SPEC §5: within
/// 5 s; the demo allows twice that before calling it hung).
async fn stop_daemon(
    mut daemon: tokio::task::JoinHandle<Result<(), StoreError>>,
) -> Result<(), DemoError> {
    const STOP_WAIT: Duration = Duration::from_secs(10);
    match tokio::time::timeout(STOP_WAIT, &mut daemon).await {
        Err(_) => {
            daemon.abort();
            Err(DemoError::DaemonStopTimedOut(STOP_WAIT))
        }
        Ok(Err(_)) => Err(DemoError::DaemonPanicked),
        Ok(Ok(Err(e))) => Err(DemoError::DaemonFailed(e)),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

/// Judges the run: every checkpoint matched, nothing was removed while Graph was down
/// (SPEC §3 rule 1, SPEC §6) and the hand-made member of the additive queue survived.
fn verdict(checkpoints: Vec<Checkpoint>, changes: Vec<Change>) -> DemoOutcome {
    let secs = Duration::from_secs_f64;
    let outage = (secs(OUTAGE.0), secs(OUTAGE.1));
    let removed_during_outage: Vec<Change> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Removed && c.at >= outage.0 && c.at <= outage.1)
        .cloned()
        .collect();
    let hand_made: Member = HAND_MADE.parse().expect("demo members are valid");
    let hand_made_survived = !changes
        .iter()
        .any(|c| c.kind == ChangeKind::Removed && c.member == hand_made && c.queue == queue("600"));
    let all_ok = !checkpoints.is_empty()
        && checkpoints.iter().all(|c| c.ok)
        && removed_during_outage.is_empty()
        && hand_made_survived;
    DemoOutcome {
        checkpoints,
        changes,
        outage,
        removed_during_outage,
        hand_made_survived,
        all_ok,
    }
}

enum Step {
    Edit,
    OutageStarts,
    OutageEnds,
    Check(&'static Check),
    End,
}

/// The scripted happenings in time order.
fn script() -> Vec<(f64, Step)> {
    let mut steps = vec![
        (EDIT_AT, Step::Edit),
        (OUTAGE.0, Step::OutageStarts),
        (OUTAGE.1, Step::OutageEnds),
        (END_AT, Step::End),
    ];
    steps.extend(CHECKS.iter().map(|c| (c.at, Step::Check(c))));
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    steps
}

fn queue(s: &str) -> QueueNo {
    QueueNo::parse(s).expect("demo queue numbers are valid")
}

fn mailbox(local: &str) -> Mailbox {
    let addr = if local == "piket" {
        PIKET_MAILBOX.to_owned()
    } else {
        format!("{local}@demo.example")
    };
    Mailbox::parse(&addr).expect("demo mailboxes are valid")
}

/// The rows of one checkpoint: the script's expectation against the simulator's queues.
fn check_now(check: &Check, actual: &BTreeMap<QueueNo, BTreeSet<Member>>) -> Vec<Checkpoint> {
    QUEUES
        .iter()
        .zip(check.expect)
        .map(|((q, _), expect)| {
            let q = queue(q);
            let expected: BTreeSet<Member> = expect
                .iter()
                .map(|m| m.parse().expect("demo members are valid"))
                .collect();
            let actual = actual.get(&q).cloned().unwrap_or_default();
            Checkpoint {
                name: check.name.to_owned(),
                at: Duration::from_secs_f64(check.at),
                ok: expected == actual,
                queue: q,
                expected,
                actual,
            }
        })
        .collect()
}

// ---- watching the daemon -------------------------------------------------------------------

/// Follows the TRiNG simulator's queues and the daemon's journal and refusals.
struct Watch<'a> {
    tring: &'a TringSim,
    store: Store,
    since: DateTime<Utc>,
    last: BTreeMap<QueueNo, BTreeSet<Member>>,
    refusals_seen: BTreeSet<(QueueNo, String)>,
    changes: Vec<Change>,
    /// The configured persons, to name members the journal does not.
    persons: &'a [Person],
}

impl Watch<'_> {
    fn snapshot(&self) -> BTreeMap<QueueNo, BTreeSet<Member>> {
        QUEUES
            .iter()
            .map(|(q, _)| {
                let q = queue(q);
                let members = self.tring.members(&q).into_iter().collect();
                (q, members)
            })
            .collect()
    }

    /// Prints every queue change since the last look, with the daemon's reason, and every
    /// new removal the daemon refused.
    async fn observe(&mut self, p: &mut Printer<'_>) -> Result<(), DemoError> {
        let now = self.snapshot();
        let mut seen = Vec::new();
        for (q, members) in &now {
            let before = self.last.get(q).cloned().unwrap_or_default();
            for m in before.difference(members) {
                seen.push((q.clone(), ChangeKind::Removed, m.clone()));
            }
            for m in members.difference(&before) {
                seen.push((q.clone(), ChangeKind::Added, m.clone()));
            }
        }
        self.last = now;
        if !seen.is_empty() {
            let journal = self.store.journal(self.since, 500).await?;
            for (q, kind, m) in seen {
                let action = match kind {
                    ChangeKind::Added => WriteAction::Add,
                    ChangeKind::Removed => WriteAction::Del,
                };
                // Newest first: the write that made this change.
                let row = journal.iter().find(|r| {
                    r.intent.queue == q && r.intent.member == m && r.intent.action == action
                });
                let (person, why) = match row {
                    Some(r) => (r.intent.person.clone(), short_reason(&r.intent.reason)),
                    None => (
                        words::person_of(self.persons, &m),
                        "not in rooster's journal: changed outside rooster".to_owned(),
                    ),
                };
                let change = Change {
                    at: p.demo_time(),
                    queue: q,
                    kind,
                    member: m,
                    person,
                    why,
                };
                p.change(&change)?;
                self.changes.push(change);
            }
        }
        for (q, lines) in self.store.refusals().await? {
            for line in lines {
                if self.refusals_seen.insert((q.clone(), line.clone())) {
                    // Recorded as "Kind: member queue Q: sentence"; the sentence says it all.
                    let text = line.find("queue ").map_or(line.as_str(), |i| &line[i..]);
                    p.note("33", "HELD", &sanitize(text, 160))?;
                }
            }
        }
        Ok(())
    }
}

// ---- printing ------------------------------------------------------------------------------

struct Printer<'o> {
    out: &'o mut (dyn Write + Send),
    color: bool,
    tz: Tz,
    start: Instant,
    scale: f64,
}

impl Printer<'_> {
    fn demo_time(&self) -> Duration {
        Duration::from_secs_f64(self.start.elapsed().as_secs_f64() / self.scale)
    }

    /// Wraps `s` in an SGR colour `code` when colours are on.
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn stamp(&self) -> String {
        let wall = Utc::now().with_timezone(&self.tz).format("%H:%M:%S");
        let t = self.demo_time().as_secs_f64();
        self.paint("2", &format!("{wall}  t+{t:>4.1}s"))
    }

    fn line(&mut self, s: &str) -> io::Result<()> {
        writeln!(self.out, "{s}")
    }

    fn heading(&mut self, s: &str) -> io::Result<()> {
        let h = self.paint("1", s);
        writeln!(self.out, "\n{h}")
    }

    fn note(&mut self, code: &str, label: &str, text: &str) -> io::Result<()> {
        let line = format!(
            "{}  {} {text}",
            self.stamp(),
            self.paint(code, &format!("{label:<8}"))
        );
        self.line(&line)
    }

    fn change(&mut self, c: &Change) -> io::Result<()> {
        let (code, sign) = match c.kind {
            ChangeKind::Added => ("32", "+"),
            ChangeKind::Removed => ("31", "-"),
        };
        let name = QUEUES
            .iter()
            .find(|(q, _)| *q == c.queue.as_str())
            .map_or("", |(_, n)| n);
        let member = self.paint(code, &format!("{sign} {:<15}", c.member.to_string()));
        let person = c.person.as_deref().unwrap_or("-");
        let line = format!(
            "{}  queue {} {name:<8} {member} {person:<17} {}",
            self.stamp(),
            c.queue,
            self.paint("2", &c.why)
        );
        self.line(&line)
    }
}

/// The daemon's reason without its trailing `YYYY-MM-DD HH:MM–HH:MM` span: at minute
/// resolution it says nothing about shifts seconds long, and the timeline shows the time.
fn short_reason(reason: &str) -> String {
    static SPAN: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r" \d{4}-\d{2}-\d{2} \d{2}:\d{2}–(\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}(;|$)")
            .ok()
    });
    let short = match SPAN.as_ref() {
        Some(re) => re.replace_all(reason, "$2").into_owned(),
        None => reason.to_owned(),
    };
    sanitize(&short, 140)
}

fn show_set(s: &BTreeSet<Member>) -> String {
    if s.is_empty() {
        "(empty)".to_owned()
    } else {
        s.iter()
            .map(Member::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn intro(p: &mut Printer<'_>, graph: &GraphSim, tring: &TringSim, scale: f64) -> io::Result<()> {
    let title = p.paint(
        "1",
        "rooster demo: the real daemon against simulated Microsoft Graph and TRiNG",
    );
    p.line(&title)?;
    p.line(&format!(
        "  Graph simulator {}, TRiNG simulator {}; one demo second is {scale:.2} s; calendars \
         are read every {POLL_SECS:.0} demo seconds and shifts apply at their boundaries",
        graph.authority(),
        tring.addr()
    ))?;
    p.heading("team")?;
    for (name, local, ext, mobile) in TEAM {
        let cu = mobile
            .map(|m| format!(", mobile cu:{m}"))
            .unwrap_or_default();
        p.line(&format!("  {name:<17} {local}@demo.example, ext:{ext}{cu}"))?;
    }
    p.heading("queues and rules")?;
    for line in [
        "  600 Support  additive: rooster only removes whom it added; ext:299 was put there by hand",
        "  610 Sales    exclusive, keep_last: rooster owns it; the stale ext:298 has to go",
        "  700 Piket    exclusive: the on-call person's mobile, from piket@demo.example by subject",
        "  rules: Support/Sales category in one's own calendar (Support joins 2 s early);",
        "         out of office (show as oof) removes a person from every queue",
    ] {
        p.line(line)?;
    }
    p.heading("script (demo seconds)")?;
    for line in [
        "  recurring Support shift for Sanne (second occurrence moved), Jan at the dentist 9-16,",
        "  on-call hand-over at 19, Lotte's shift shortened at 15, Graph down 28-36 while",
        "  Sanne's shift ends at 31: her removal must wait for a complete read after the outage;",
        "  after the minute, the on-call rota goes on for a normal week (hand-overs at 08:00 and",
        "  18:00) in which nobody took the evening of the day after tomorrow, 18:00-22:00",
    ] {
        p.line(line)?;
    }
    Ok(())
}

fn summary(p: &mut Printer<'_>, o: &DemoOutcome) -> io::Result<()> {
    p.heading("expected vs actual at every checkpoint")?;
    let name_w = CHECKS.iter().map(|c| c.name.len()).max().unwrap_or(10);
    let rows: Vec<(String, String, String, String, bool)> = o
        .checkpoints
        .iter()
        .map(|c| {
            let qname = QUEUES
                .iter()
                .find(|(q, _)| *q == c.queue.as_str())
                .map_or("", |(_, n)| n);
            (
                format!("t+{:.1}s {}", c.at.as_secs_f64(), c.name),
                format!("{} {qname}", c.queue),
                show_set(&c.expected),
                show_set(&c.actual),
                c.ok,
            )
        })
        .collect();
    let exp_w = rows.iter().map(|r| r.2.len()).max().unwrap_or(8).max(8);
    let act_w = rows.iter().map(|r| r.3.len()).max().unwrap_or(6).max(6);
    let cp_w = name_w + 9;
    let header = format!(
        "  {:<cp_w$}  {:<11}  {:<exp_w$}  {:<act_w$}  ok",
        "checkpoint", "queue", "expected", "actual"
    );
    let header = p.paint("1", &header);
    p.line(&header)?;
    let mut last = String::new();
    for (cp, q, exp, act, ok) in rows {
        let label = if cp == last {
            String::new()
        } else {
            cp.clone()
        };
        last = cp;
        let mark = if ok {
            p.paint("32", "ok")
        } else {
            p.paint("31", "MISMATCH")
        };
        p.line(&format!(
            "  {label:<cp_w$}  {q:<11}  {exp:<exp_w$}  {act:<act_w$}  {mark}"
        ))?;
    }
    let verdict = |ok: bool| if ok { "ok" } else { "FAILED" };
    p.line("")?;
    p.line(&format!(
        "  nothing removed during the Graph outage (t+{:.0}s to t+{:.0}s): {}",
        o.outage.0.as_secs_f64(),
        o.outage.1.as_secs_f64(),
        verdict(o.removed_during_outage.is_empty())
    ))?;
    for c in &o.removed_during_outage {
        p.line(&format!(
            "    removed at t+{:.1}s: {} from queue {}",
            c.at.as_secs_f64(),
            c.member,
            c.queue
        ))?;
    }
    p.line(&format!(
        "  hand-made member {HAND_MADE} kept in 600 Support: {}",
        verdict(o.hand_made_survived)
    ))?;
    let passed = o.checkpoints.iter().filter(|c| c.ok).count();
    let result = if o.all_ok {
        p.paint(
            "32;1",
            &format!(
                "demo passed: {passed} of {} queue checks matched",
                o.checkpoints.len()
            ),
        )
    } else {
        p.paint(
            "31;1",
            &format!(
                "demo FAILED: {passed} of {} queue checks matched",
                o.checkpoints.len()
            ),
        )
    };
    p.line(&format!("\n{result}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_parses_and_is_in_time_order() {
        for c in CHECKS {
            for set in c.expect {
                for m in set {
                    assert!(m.parse::<Member>().is_ok(), "{m}");
                }
            }
        }
        let times: Vec<f64> = script().iter().map(|s| s.0).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(times.last(), Some(&END_AT));
    }

    fn change(at: f64, kind: ChangeKind, q: &str, m: &str) -> Change {
        Change {
            at: Duration::from_secs_f64(at),
            queue: queue(q),
            kind,
            member: m.parse().unwrap(),
            person: None,
            why: String::new(),
        }
    }

    fn passing_checkpoints() -> Vec<Checkpoint> {
        let live: BTreeMap<QueueNo, BTreeSet<Member>> = QUEUES
            .iter()
            .zip(CHECKS[0].expect)
            .map(|((q, _), ms)| (queue(q), ms.iter().map(|m| m.parse().unwrap()).collect()))
            .collect();
        check_now(&CHECKS[0], &live)
    }

    #[test]
    fn verdict_fails_on_a_removal_during_the_outage() {
        let mid = (OUTAGE.0 + OUTAGE.1) / 2.0;
        let ok = verdict(
            passing_checkpoints(),
            vec![change(
                OUTAGE.1 + 1.0,
                ChangeKind::Removed,
                "600",
                "ext:202",
            )],
        );
        assert!(ok.all_ok);
        let bad = verdict(
            passing_checkpoints(),
            vec![change(mid, ChangeKind::Removed, "600", "ext:202")],
        );
        assert!(!bad.all_ok);
        assert_eq!(bad.removed_during_outage.len(), 1);
        // An add during the outage is fine: adds go on from the last events read.
        assert!(
            verdict(
                passing_checkpoints(),
                vec![change(mid, ChangeKind::Added, "600", "ext:203")]
            )
            .all_ok
        );
    }

    #[test]
    fn verdict_fails_when_the_hand_made_member_goes_or_a_queue_differs() {
        let gone = verdict(
            passing_checkpoints(),
            vec![change(1.0, ChangeKind::Removed, "600", HAND_MADE)],
        );
        assert!(!gone.hand_made_survived && !gone.all_ok);
        let empty = BTreeMap::new();
        let rows = check_now(&CHECKS[0], &empty);
        assert!(rows.iter().all(|r| !r.ok));
        assert!(!verdict(rows, vec![]).all_ok);
        assert!(!verdict(vec![], vec![]).all_ok, "no checkpoints is no pass");
    }

    #[test]
    fn reasons_lose_their_minute_span_only() {
        assert_eq!(
            short_reason(
                "rule \"on call\": \"Piket Jan\" in piket@x.nl 2026-11-25 13:36–13:37; \
                 rule \"b\": \"S\" in j@x.nl 2026-11-25 23:00–2026-11-26 01:00"
            ),
            "rule \"on call\": \"Piket Jan\" in piket@x.nl; rule \"b\": \"S\" in j@x.nl"
        );
        assert_eq!(short_reason("not desired: x"), "not desired: x");
    }

    #[test]
    fn colours_only_when_asked() {
        let mut buf: Vec<u8> = Vec::new();
        for color in [false, true] {
            let p = Printer {
                out: &mut buf,
                color,
                tz: chrono_tz::Europe::Amsterdam,
                start: Instant::now(),
                scale: 1.0,
            };
            assert_eq!(p.paint("32", "x").contains('\x1b'), color);
        }
    }

    #[test]
    fn built_in_config_is_valid_and_scales_the_poll() {
        let opts = GraphSimOptions::default();
        let urls = GraphUrls {
            base_url: "http://127.0.0.1:9/v1.0",
            authority: "http://127.0.0.1:9/",
            options: &opts,
        };
        let text = config_text(
            "http://127.0.0.1:8/pbx/proxyapi.php",
            &urls,
            Path::new("/tmp/rooster-demo-test/rooster.db"),
            0.5,
        );
        let cfg = build_config(&text, 0.5).expect("demo config parses");
        assert_eq!(cfg.poll_interval, Duration::from_secs(5));
        assert_eq!(cfg.persons.len(), TEAM.len());
        assert_eq!(cfg.queues.len(), QUEUES.len());
        assert_eq!(cfg.rules.len(), 4);
        assert_eq!(cfg.rules[0].lead, Duration::from_secs(1));
    }
}
