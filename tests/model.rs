//! A model-based test of the whole cycle against SPEC §2–§3, with an oracle of its own.
//!
//! The reference model below is written from the SPEC, inside this file: it knows who is on
//! which shift, who is away and who is on call, and works out each queue's members from that
//! alone. It calls nothing in rooster that computes membership (`schedule`, `plan`, the
//! cycle's decisions): rooster is driven only through `Reconciler::cycle`, over in-process
//! fakes of Graph and TRiNG that fail the way the world does — calendars that fail to read,
//! lists that fail, writes that are refused for good, answer 500, or time out before or after
//! TRiNG applied them — and a TRiNG that answers `list` in a different shape every cycle (the
//! answer is rendered here, by this file's own code, and read by rooster's parser).
//!
//! After every cycle it checks the safety rules against what the fake TRiNG saw:
//! - a queue with `keep_last` that had a member still has one (no del ever empties it);
//! - no member added by hand is removed from the additive queue;
//! - no del is sent while a calendar feeding the queue failed this cycle;
//! - a queue whose `list` failed gets no write at all.
//!
//! When the faults stop, live equals the model's members within 2 cycles, and then a cycle
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures::Stream;
use rooster::config::Config;
use rooster::cycle::{
    CalendarResult, Calendars, Clock, Mode, Pbx, ReadError, Reconciler, WriteError,
};
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Member, QueueNo, Sensitivity, ShowAs,
};
use rooster::plan::ActionKind;
use rooster::store::{OpenMode, Store};
use rooster::tring::{KnownMembers, WriteOutcome};
use tokio_util::sync::CancellationToken;

// ---- a small deterministic random source -------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p` (0..=1).
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---- the team, as the config and the model both know it ----------------------------------

struct Person {
    name: &'static str,
    mailbox: &'static str,
    ext: &'static str,
    mobile: &'static str,
}

const TEAM: [Person; 4] = [
    Person {
        name: "Jan de Vries",
        mailbox: "jan@acme.nl",
        ext: "201",
        mobile: "0611111101",
    },
    Person {
        name: "Piet Jansen",
        mailbox: "piet@acme.nl",
        ext: "202",
        mobile: "0611111102",
    },
    Person {
        name: "Anouk Bakker",
        mailbox: "anouk@acme.nl",
        ext: "203",
        mobile: "0611111103",
    },
    Person {
        name: "Sanne Visser",
        mailbox: "sanne@acme.nl",
        ext: "204",
        mobile: "0611111104",
    },
];
const PIKET: &str = "piket@acme.nl";
/// Extensions nobody in the config has: what people put into queues by hand.
const HAND: [&str; 3] = ["281", "282", "283"];
/// Queue 610's fallback.
const FALLBACK: &str = "299";

fn config_text() -> String {
    let mut t = String::from(
        r#"
timezone = "Europe/Amsterdam"
poll_interval = "2m"
window = "14d"
state = "/nonexistent/rooster.db"

[tring]
base_url = "http://127.0.0.1:9/pbx/proxyapi.php"
tenant = "ACME"
key_env = "ROOSTER_MODEL_TEST_KEY"

[graph]
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "ROOSTER_MODEL_TEST_SECRET"
base_url = "http://127.0.0.1:9/v1.0"
authority = "http://127.0.0.1:9"
"#,
    );
    for p in &TEAM {
        t.push_str(&format!(
            "\n[[person]]\nname = \"{}\"\nmailbox = \"{}\"\nextension = \"{}\"\nmobile = \"{}\"\n",
            p.name, p.mailbox, p.ext, p.mobile
        ));
    }
    t.push_str(&format!(
        r#"
[[queue]]
number = "600"
name = "Support"
ownership = "additive"

[[queue]]
number = "610"
name = "Sales"
ownership = "exclusive"
fallback = ["ext:{FALLBACK}"]

[[queue]]
number = "700"
name = "Piket"
ownership = "exclusive"

[[rule]]
name = "support"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]

[[rule]]
name = "sales"
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

[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = {{ show_as = ["oof"] }}
"#
    ));
    t
}

// ---- the rota and the reference model ------------------------------------------------------

#[derive(Clone, Debug)]
enum Entry {
    Shift {
        queue: &'static str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Away {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// Who does what, per person (index into TEAM), and who is on call when.
#[derive(Clone, Debug, Default)]
struct Rota {
    own: Vec<Vec<Entry>>,
    piket: Vec<(usize, DateTime<Utc>, DateTime<Utc>)>,
}

fn slot(t0: DateTime<Utc>, rng: &mut Rng) -> DateTime<Utc> {
    t0 + Duration::minutes(15 * rng.below(4 * 48) as i64 - 60)
}

fn random_own(t0: DateTime<Utc>, rng: &mut Rng) -> Vec<Entry> {
    let mut out = Vec::new();
    for _ in 0..rng.below(7) {
        let from = slot(t0, rng);
        let to = from + Duration::minutes(30 * (1 + rng.below(16)) as i64);
        let queue = *rng.pick(&["600", "610"]);
        out.push(Entry::Shift { queue, from, to });
    }
    for _ in 0..rng.below(2) {
        let from = slot(t0, rng);
        out.push(Entry::Away {
            from,
            to: from + Duration::hours(1 + rng.below(10) as i64),
        });
    }
    out
}

fn random_piket(t0: DateTime<Utc>, rng: &mut Rng) -> Vec<(usize, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut t = t0 - Duration::hours(2);
    while t < t0 + Duration::hours(50) {
        let len = Duration::hours(1 + rng.below(6) as i64);
        // Now and then nobody is on call.
        if !rng.chance(0.15) {
            out.push((rng.below(TEAM.len() as u64) as usize, t, t + len));
        }
        t += len;
    }
    out
}

fn random_rota(t0: DateTime<Utc>, rng: &mut Rng) -> Rota {
    Rota {
        own: TEAM.iter().map(|_| random_own(t0, rng)).collect(),
        piket: random_piket(t0, rng),
    }
}

fn ext(s: &str) -> Member {
    format!("ext:{s}").parse().expect("member")
}
fn cu(s: &str) -> Member {
    format!("cu:{s}").parse().expect("member")
}

/// SPEC §2 for this config, from the rota alone: per queue, the members at `t`.
fn model_desired(rota: &Rota, t: DateTime<Utc>) -> BTreeMap<&'static str, BTreeSet<Member>> {
    let active = |from: &DateTime<Utc>, to: &DateTime<Utc>| *from <= t && t < *to;
    let away: Vec<bool> = rota
        .own
        .iter()
        .map(|es| {
            es.iter()
                .any(|e| matches!(e, Entry::Away { from, to } if active(from, to)))
        })
        .collect();
    let mut out: BTreeMap<&'static str, BTreeSet<Member>> = ["600", "610", "700"]
        .into_iter()
        .map(|q| (q, BTreeSet::new()))
        .collect();
    for (i, es) in rota.own.iter().enumerate() {
        for e in es {
            if let Entry::Shift { queue, from, to } = e
                && active(from, to)
                && !away[i]
            {
                out.get_mut(queue).expect("queue").insert(ext(TEAM[i].ext));
            }
        }
    }
    for (i, from, to) in &rota.piket {
        if active(from, to) && !away[*i] {
            out.get_mut("700")
                .expect("queue")
                .insert(cu(TEAM[*i].mobile));
        }
    }
    if out["610"].is_empty() {
        out.get_mut("610").expect("queue").insert(ext(FALLBACK));
    }
    out
}

fn event(
    id: String,
    subject: String,
    cats: &[&str],
    show_as: ShowAs,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Event {
    Event {
        id,
        subject,
        when: EventTime::Timed {
            start: from,
            end: to,
        },
        is_cancelled: false,
        show_as,
        categories: cats.iter().map(|c| c.to_string()).collect(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

/// The calendars as Graph would hand them over (already as events: Graph's JSON and its
/// parsing are tested elsewhere).
fn calendar_events(rota: &Rota) -> BTreeMap<String, Vec<Event>> {
    let mut out = BTreeMap::new();
    for (i, es) in rota.own.iter().enumerate() {
        let evs = es
            .iter()
            .enumerate()
            .map(|(n, e)| match e {
                Entry::Shift { queue, from, to } => {
                    let cat = if *queue == "600" { "Support" } else { "Sales" };
                    event(
                        format!("{i}-{n}"),
                        cat.into(),
                        &[cat],
                        ShowAs::Busy,
                        *from,
                        *to,
                    )
                }
                Entry::Away { from, to } => event(
                    format!("{i}-{n}"),
                    "Vrij".into(),
                    &[],
                    ShowAs::Oof,
                    *from,
                    *to,
                ),
            })
            .collect();
        out.insert(TEAM[i].mailbox.to_owned(), evs);
    }
    let piket = rota
        .piket
        .iter()
        .enumerate()
        .map(|(n, (i, from, to))| {
            event(
                format!("p-{n}"),
                format!("piket {}", TEAM[*i].name),
                &[],
                ShowAs::Busy,
                *from,
                *to,
            )
        })
        .collect();
    out.insert(PIKET.to_owned(), piket);
    out
}

// ---- the fakes -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteFate {
    Applied,
    RefusedForGood,
    Http500,
    TimeoutBeforeApplying,
    TimeoutAfterApplying,
    ConnectionRefused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    JsonStringsLocal,
    JsonStringsBare,
    JsonStringsSuffixed,
    JsonObjects,
    JsonObjectsUntyped,
    PlainLines,
    PlainPipe,
}

const SHAPES: [Shape; 7] = [
    Shape::JsonStringsLocal,
    Shape::JsonStringsBare,
    Shape::JsonStringsSuffixed,
    Shape::JsonObjects,
    Shape::JsonObjectsUntyped,
    Shape::PlainLines,
    Shape::PlainPipe,
];

/// A TRiNG `list` answer for `members` in `shape`, written from tring-api.md's examples.
fn render(queue: &str, members: &[Member], shape: Shape) -> String {
    let iface = |m: &Member| match m {
        Member::Agent(e) => format!("SIP/{}-ACME", e.as_str()),
        Member::Custom(c) => format!("Local/{}@ACME-custom", c.as_str()),
    };
    let id = |m: &Member| match m {
        Member::Agent(e) => e.as_str().to_owned(),
        Member::Custom(c) => c.as_str().to_owned(),
    };
    let quoted = |v: Vec<String>| {
        let items: Vec<String> = v.into_iter().map(|s| format!("\"{s}\"")).collect();
        format!("[{}]", items.join(","))
    };
    match shape {
        Shape::JsonStringsLocal | Shape::JsonStringsBare | Shape::JsonStringsSuffixed
            if members.is_empty() =>
        {
            "null".to_owned()
        }
        Shape::JsonStringsLocal => quoted(
            members
                .iter()
                .map(|m| match m {
                    Member::Agent(_) => format!("{}-ACME", id(m)),
                    Member::Custom(_) => iface(m),
                })
                .collect(),
        ),
        Shape::JsonStringsBare => quoted(
            members
                .iter()
                .map(|m| match m {
                    Member::Agent(_) => format!("{}-ACME", id(m)),
                    Member::Custom(_) => id(m),
                })
                .collect(),
        ),
        Shape::JsonStringsSuffixed => {
            quoted(members.iter().map(|m| format!("{}-ACME", id(m))).collect())
        }
        Shape::JsonObjects | Shape::JsonObjectsUntyped => {
            let items: Vec<String> = members
                .iter()
                .map(|m| {
                    let kind = match m {
                        Member::Agent(_) => "agent",
                        Member::Custom(_) => "CU",
                    };
                    let ty = if shape == Shape::JsonObjects {
                        format!(",\"type\":\"{kind}\"")
                    } else {
                        String::new()
                    };
                    format!(
                        "{{\"extension\":\"{}\",\"interface\":\"{}\",\"name\":\"\",\"penalty\":0,\"paused\":false{ty}}}",
                        id(m),
                        iface(m)
                    )
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        Shape::PlainLines => {
            let mut s = format!("Success|{} members in queue {queue}|\n", members.len());
            for m in members {
                s.push_str(&iface(m));
                s.push('\n');
            }
            s
        }
        Shape::PlainPipe if members.is_empty() => format!("Success|0 members in queue {queue}|"),
        Shape::PlainPipe => {
            let fields: Vec<String> = members.iter().map(iface).collect();
            format!("Success|{}|", fields.join("|"))
        }
    }
}

/// What happened to one write, as the fake TRiNG saw it.
#[derive(Clone, Debug)]
struct Seen {
    kind: ActionKind,
    queue: String,
    member: Member,
    /// The queue's members right after it.
    after: usize,
}

#[derive(Default)]
struct World {
    queues: BTreeMap<String, Vec<Member>>,
    /// This cycle's fates, drawn per request.
    rng_state: u64,
    faults: bool,
    shape: Option<Shape>,
    list_failed: BTreeSet<String>,
    seen: Vec<Seen>,
    /// Members TRiNG refuses for good (unknown custom destination).
    unknown: BTreeSet<Member>,
    /// Writes that met a fault.
    faulted: usize,
}

/// The fake TRiNG, and the numbers the config names (what `rooster run` gives its client).
#[derive(Clone)]
struct FakeTring(Arc<Mutex<World>>, KnownMembers);

impl FakeTring {
    fn new(known: KnownMembers) -> Self {
        FakeTring(Arc::new(Mutex::new(World::default())), known)
    }
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn fate(&self) -> WriteFate {
        let mut w = self.world();
        if !w.faults {
            return WriteFate::Applied;
        }
        let mut rng = Rng(w.rng_state);
        let r = rng.below(100);
        w.rng_state = rng.0;
        match r {
            0..=69 => WriteFate::Applied,
            70..=74 => WriteFate::RefusedForGood,
            75..=83 => WriteFate::Http500,
            84..=89 => WriteFate::TimeoutBeforeApplying,
            90..=95 => WriteFate::TimeoutAfterApplying,
            _ => WriteFate::ConnectionRefused,
        }
    }
}

impl Pbx for FakeTring {
    async fn list(&self, q: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        let (body, fail) = {
            let mut w = self.world();
            let mut rng = Rng(w.rng_state);
            let fail = w.faults && rng.chance(0.06);
            let shape = w
                .shape
                .unwrap_or(SHAPES[rng.below(SHAPES.len() as u64) as usize]);
            w.rng_state = rng.0;
            if fail {
                w.list_failed.insert(q.as_str().to_owned());
            }
            let members = w.queues.get(q.as_str()).cloned().unwrap_or_default();
            (render(q.as_str(), &members, shape), fail)
        };
        if fail {
            return Err(ReadError::transient(format!(
                "queue {q}: list failed: http 502"
            )));
        }
        rooster::tring::parse_list(&body, "ACME", &self.1)
            .map(|v| v.into_iter().collect())
            .map_err(|e| ReadError::transient(e.to_string()))
    }

    async fn write(
        &self,
        kind: ActionKind,
        q: &QueueNo,
        m: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let mut fate = self.fate();
        let mut w = self.world();
        if w.unknown.contains(m) && kind == ActionKind::Add {
            fate = WriteFate::RefusedForGood;
        }
        let apply = |w: &mut World| -> WriteOutcome {
            let queue = w.queues.entry(q.as_str().to_owned()).or_default();
            let had = queue.contains(m);
            match kind {
                ActionKind::Add if !had => queue.push(m.clone()),
                ActionKind::Del if had => queue.retain(|x| x != m),
                _ => {}
            }
            let after = queue.len();
            w.seen.push(Seen {
                kind,
                queue: q.as_str().to_owned(),
                member: m.clone(),
                after,
            });
            match (kind, had) {
                (ActionKind::Add, true) | (ActionKind::Del, false) => WriteOutcome::AlreadyInState,
                _ => WriteOutcome::Applied,
            }
        };
        let not_applied = |w: &mut World| {
            let after = w.queues.get(q.as_str()).map_or(0, Vec::len);
            w.seen.push(Seen {
                kind,
                queue: q.as_str().to_owned(),
                member: m.clone(),
                after,
            });
        };
        if fate != WriteFate::Applied {
            w.faulted += 1;
        }
        match fate {
            WriteFate::Applied => Ok(apply(&mut w)),
            WriteFate::ConnectionRefused => {
                not_applied(&mut w);
                Err(WriteError::transient(
                    "tring connection failed: connection refused",
                ))
            }
            WriteFate::RefusedForGood => {
                not_applied(&mut w);
                Err(WriteError::permanent(format!(
                    "tring refused the request: Custom destination {m} not found"
                )))
            }
            WriteFate::Http500 => {
                not_applied(&mut w);
                Err(WriteError::Uncertain("tring answered http 500".into()))
            }
            WriteFate::TimeoutBeforeApplying => {
                not_applied(&mut w);
                Err(WriteError::Uncertain("tring request timed out".into()))
            }
            WriteFate::TimeoutAfterApplying => {
                apply(&mut w);
                Err(WriteError::Uncertain("tring request timed out".into()))
            }
        }
    }
}

#[derive(Default)]
struct Cals {
    events: BTreeMap<String, Vec<Event>>,
    faults: bool,
    rng_state: u64,
    failed: BTreeSet<String>,
}

#[derive(Clone, Default)]
struct FakeGraph(Arc<Mutex<Cals>>);

impl FakeGraph {
    fn cals(&self) -> std::sync::MutexGuard<'_, Cals> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Calendars for FakeGraph {
    fn read_all<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> impl Stream<Item = CalendarResult> + Send + 'a {
        let results: Vec<CalendarResult> = {
            let mut c = self.cals();
            let mut rng = Rng(c.rng_state);
            let out = cals
                .iter()
                .map(|cal| {
                    let mb = cal.mailbox.as_str().to_owned();
                    if c.faults && rng.chance(0.04) {
                        c.failed.insert(mb.clone());
                        let e =
                            format!("calendar {cal}: read failed at page 2, so none of it is used");
                        return (cal.clone(), Err(ReadError::transient(e)));
                    }
                    (
                        cal.clone(),
                        Ok(c.events.get(&mb).cloned().unwrap_or_default()),
                    )
                })
                .collect();
            c.rng_state = rng.0;
            out
        };
        futures::stream::iter(results)
    }
}

#[derive(Clone)]
struct ManualClock(Arc<AtomicI64>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).expect("in range")
    }
}

// ---- the run -------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Totals {
    cycles: usize,
    write_faults: usize,
    writes: usize,
    list_faults: usize,
    calendar_faults: usize,
    violations: Vec<String>,
}

/// Queues every calendar feeds: the own calendars feed all three (the absence rule names no
/// queue), the on-call calendar feeds 700.
fn feeds(queue: &str, mailbox: &str) -> bool {
    mailbox != PIKET || queue == "700"
}

async fn run_seed(seed: u64, cycles: usize, totals: &mut Totals) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let t0 = DateTime::from_timestamp(1_790_000_000 + (seed as i64 % 1000) * 3600, 0).expect("t0");
    let cfg =
        Arc::new(Config::parse(&config_text(), Path::new("model.toml")).expect("config parses"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("rooster.db"), OpenMode::Writer)
        .await
        .expect("store");
    let tring = FakeTring::new(KnownMembers::from_config(&cfg));
    let graph = FakeGraph::default();
    let clock = ManualClock(Arc::new(AtomicI64::new(t0.timestamp_millis())));
    let mut rota = random_rota(t0, &mut rng);
    {
        let mut w = tring.world();
        w.rng_state = rng.next() | 1;
        for q in ["600", "610", "700"] {
            // Some queues start with people in them (put there by hand before rooster).
            let mut start = Vec::new();
            if rng.chance(0.5) {
                start.push(ext(HAND[rng.below(HAND.len() as u64) as usize]));
            }
            // A person's own extension put in by hand only where rooster owns the queue:
            // in the additive queue it would be the person's, not rooster's, to remove, and
            // the model does not track whose it is.
            if q != "600" && rng.chance(0.3) {
                start.push(ext(TEAM[rng.below(4) as usize].ext));
            }
            w.queues.insert(q.to_owned(), start);
        }
        if rng.chance(0.3) {
            w.unknown.insert(cu(TEAM[rng.below(4) as usize].mobile));
        }
    }
    graph.cals().events = calendar_events(&rota);
    graph.cals().rng_state = rng.next() | 1;
    let mut rec = Reconciler::new(
        cfg,
        graph.clone(),
        tring.clone(),
        clock.clone(),
        Some(store),
        false,
    )
    .await
    .expect("reconciler");
    let cancel = CancellationToken::new();

    for n in 0..cycles {
        let faults = n + 2 < cycles;
        // Hand edits and calendar edits between cycles.
        if faults {
            let mut w = tring.world();
            if rng.chance(0.25) {
                let q = *rng.pick(&["600", "610", "700"]);
                let m = ext(HAND[rng.below(HAND.len() as u64) as usize]);
                let queue = w.queues.get_mut(q).expect("queue");
                if !queue.contains(&m) {
                    queue.push(m);
                }
            }
            if rng.chance(0.1) {
                let q = *rng.pick(&["600", "610", "700"]);
                let queue = w.queues.get_mut(q).expect("queue");
                if !queue.is_empty() {
                    let i = rng.below(queue.len() as u64) as usize;
                    queue.remove(i);
                }
            }
        }
        if rng.chance(0.1) {
            let i = rng.below(TEAM.len() as u64) as usize;
            rota.own[i] = random_own(t0, &mut rng);
            graph.cals().events = calendar_events(&rota);
        }
        if n + 2 == cycles {
            // Faults stop. Holds of permanent refusals last an hour (SPEC §3 rule 9).
            clock
                .0
                .fetch_add(Duration::minutes(61).num_milliseconds(), Ordering::SeqCst);
            tring.world().unknown.clear();
        } else {
            let step = Duration::minutes(5 + 5 * rng.below(6) as i64);
            clock.0.fetch_add(step.num_milliseconds(), Ordering::SeqCst);
        }
        let before: BTreeMap<String, Vec<Member>> = {
            let mut w = tring.world();
            w.faults = faults;
            w.seen.clear();
            w.list_failed.clear();
            w.queues.clone()
        };
        {
            let mut c = graph.cals();
            c.faults = faults;
            c.failed.clear();
        }
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            rec.cycle(Mode::Full, &cancel),
        )
        .await
        .expect("a cycle hung")
        .expect("store writes succeed");
        totals.cycles += 1;
        let (seen, list_failed, after) = {
            let w = tring.world();
            (w.seen.clone(), w.list_failed.clone(), w.queues.clone())
        };
        let failed_cals = graph.cals().failed.clone();
        totals.list_faults += list_failed.len();
        totals.calendar_faults += failed_cals.len();
        totals.writes += seen.len();
        totals.write_faults += std::mem::take(&mut tring.world().faulted);
        let _ = report;
        let ctx = format!("seed {seed} cycle {n}");
        for s in &seen {
            // Rule 3: no del empties a queue (every queue here keeps its last member).
            if s.kind == ActionKind::Del && s.after == 0 {
                totals.violations.push(format!(
                    "{ctx}: del of {} emptied queue {}",
                    s.member, s.queue
                ));
            }
            // Additive: members added by hand are never removed.
            if s.kind == ActionKind::Del
                && s.queue == "600"
                && HAND.iter().any(|h| ext(h) == s.member)
            {
                totals.violations.push(format!(
                    "{ctx}: hand-added {} removed from additive queue 600",
                    s.member
                ));
            }
            // Rule 1: no del while a calendar feeding the queue failed.
            if s.kind == ActionKind::Del && failed_cals.iter().any(|mb| feeds(&s.queue, mb)) {
                totals.violations.push(format!(
                    "{ctx}: del of {} from {} while {failed_cals:?} failed",
                    s.member, s.queue
                ));
            }
            // Rule 2: a queue whose list failed is left alone.
            if list_failed.contains(&s.queue) {
                totals
                    .violations
                    .push(format!("{ctx}: write to {} whose list failed", s.queue));
            }
        }
        for (q, members) in &before {
            if !members.is_empty() && after.get(q).is_none_or(Vec::is_empty) {
                totals
                    .violations
                    .push(format!("{ctx}: queue {q} had {members:?} and was emptied"));
            }
        }
        // Convergence once the faults stopped: within 2 cycles, then a cycle writes nothing.
        if n + 1 == cycles {
            let want = model_desired(&rota, clock.now());
            for (q, members) in &after {
                let live: BTreeSet<Member> = members.iter().cloned().collect();
                let mut expect = want[q.as_str()].clone();
                if q == "600" {
                    expect.extend(
                        live.iter()
                            .filter(|m| HAND.iter().any(|h| ext(h) == **m))
                            .cloned(),
                    );
                }
                if expect.is_empty() {
                    // keep_last: at most the one member left (none if it was empty).
                    if live.len() > 1 {
                        totals.violations.push(format!(
                            "{ctx}: queue {q} should keep at most one member, has {live:?}"
                        ));
                    }
                } else if live != expect {
                    totals.violations.push(format!(
                        "{ctx}: queue {q} did not converge: live {live:?}, model {expect:?}"
                    ));
                }
            }
            tring.world().seen.clear();
            rec.cycle(Mode::Full, &cancel).await.expect("store");
            let wrote = tring.world().seen.clone();
            if !wrote.is_empty() {
                totals.violations.push(format!(
                    "{ctx}: the cycle after convergence wrote {wrote:?}"
                ));
            }
        }
    }
}

#[tokio::test]
async fn the_cycle_keeps_the_safety_rules_under_random_faults_and_converges_after() {
    let seeds: u64 = std::env::var("ROOSTER_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let mut totals = Totals::default();
    for seed in 1..=seeds {
        run_seed(seed, 30, &mut totals).await;
    }
    println!(
        "model: {} cycles, {} writes, {} write faults, {} list faults, {} calendar faults, {} violations",
        totals.cycles,
        totals.writes,
        totals.write_faults,
        totals.list_faults,
        totals.calendar_faults,
        totals.violations.len()
    );
    assert!(
        totals.write_faults > 0 && totals.list_faults > 0 && totals.calendar_faults > 0,
        "{totals:?}"
    );
    assert!(
        totals.violations.is_empty(),
        "{:#?}",
        &totals.violations[..totals.violations.len().min(20)]
    );
}
