//! Cycle benchmark: rooster's reconcile cycle against the Graph and TRiNG
//! simulators with injected latency, next to a naive admin script on the same simulators.
//!
//! Two processes, so the figures are rooster's own: this (parent) process runs the
//! simulators, counts the requests they receive and prints the report; a child (this binary
//! again, `--child`) runs only rooster (`Reconciler` with `GraphClient`, `TringClient` and a
//! SQLite store) and reports its wall time, CPU time and peak RSS per step over a line-based
//! JSON protocol on stdin/stdout. The boundary-lag and idle-wake measurements run
//! `daemon::run` in this process with thin timing wrappers around the real clients.
//!
//! Touches nothing outside a temporary directory and 127.0.0.1. Run with
//! `cargo bench --bench cycle -- [--calendars N] [--events N] [--queues N]
//! [--concurrency N] [--latency-ms N] [--page-size N] [--no-lag] [--quick]`
//! (see docs/BENCHMARKS.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::Stream;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use rooster::config::Config;
use rooster::cycle::{
    Calendars, Mode, Observation, Pbx, ReadError, Reconciler, SystemClock, WriteError,
};
use rooster::daemon::{self, NoNotifier};
use rooster::graph::client::GraphOptions;
use rooster::graph::{GraphClient, RetryPolicy};
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Extension, Mailbox, Member, QueueNo, Secret,
    Sensitivity, ShowAs,
};
use rooster::plan::ActionKind;
use rooster::schedule::{self, CalendarEvents};
use rooster::sim::graph::{GraphFault, GraphFaultKind, GraphSim, GraphSimOptions};
use rooster::sim::tring::{Action, Fault, FaultKind, SimTringOptions, TringSim};
use rooster::store::{OpenMode, Store};
use rooster::tring::client::TringClientOptions;
use rooster::tring::{KnownMembers, TringClient, WriteOutcome};

const SEED: u64 = 0x5EED_2026_0008;
const TRING_KEY: &str = "sim-key";
/// TRiNG's documented limit on requests in flight (tring-api.md "Limits"), enforced by
/// `TringClient`; part of the round-trip limit for the TRiNG phase.
const TRING_IN_FLIGHT: u64 = 4;
/// Wall-time budget of the simulated day's decides (96 quarter hours).
const DAY_BUDGET: Duration = Duration::from_secs(60);
/// The naive script's cadence when it runs as often as rooster polls (SPEC §4's example).
const NAIVE_POLL: Duration = Duration::from_secs(120);

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone)]
struct Args {
    sizes: Vec<usize>,
    events: usize,
    queues: usize,
    concurrency: usize,
    latency: Duration,
    page_size: usize,
    lag: bool,
    lag_boundaries: usize,
    child: Option<ChildArgs>,
}

#[derive(Debug, Clone)]
struct ChildArgs {
    config: PathBuf,
    state: PathBuf,
    graph_secret: String,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        sizes: vec![100, 500, 2000],
        events: 50,
        queues: 200,
        concurrency: 8,
        latency: Duration::from_millis(20),
        page_size: 1000,
        lag: true,
        lag_boundaries: 24,
        child: None,
    };
    let mut child = false;
    let (mut config, mut state, mut secret) = (None, None, None);
    let mut it = std::env::args().skip(1);
    let num = |name: &str, v: Option<String>| -> Res<usize> {
        v.ok_or(format!("{name}: needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{name}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            "--calendars" => {
                a.sizes = it
                    .next()
                    .ok_or("--calendars: needs a value")?
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|e| format!("--calendars: {e}")))
                    .collect::<Res<_>>()?
            }
            "--events" => a.events = num(&arg, it.next())?,
            "--queues" => a.queues = num(&arg, it.next())?.max(1),
            "--concurrency" => a.concurrency = num(&arg, it.next())?.clamp(1, 64),
            "--latency-ms" => a.latency = Duration::from_millis(num(&arg, it.next())? as u64),
            "--page-size" => a.page_size = num(&arg, it.next())?.max(1),
            "--lag-boundaries" => a.lag_boundaries = num(&arg, it.next())?.max(1),
            "--no-lag" => a.lag = false,
            "--quick" => {
                a.sizes = vec![50];
                a.queues = 20;
                a.lag_boundaries = 6;
            }
            "--child" => child = true,
            "--config" => config = it.next().map(PathBuf::from),
            "--state" => state = it.next().map(PathBuf::from),
            "--graph-secret" => secret = it.next(),
            other => return Err(format!("{other}: unknown argument")),
        }
    }
    if child {
        a.child = Some(ChildArgs {
            config: config.ok_or("--child needs --config")?,
            state: state.ok_or("--child needs --state")?,
            graph_secret: secret.ok_or("--child needs --graph-secret")?,
        });
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// Process figures from /proc (no libc: the crate forbids unsafe code)

fn proc_status_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds(ticks: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the `(comm)`: index 0 is field 3 (state); utime is 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (get(11) + get(12)) / ticks
}

// ---------------------------------------------------------------------------------------
// The generated world: persons with their own calendar, one queue and rule per category

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mailbox(i: usize) -> Res<Mailbox> {
    Mailbox::parse(&format!("p{i}@bench.test")).map_err(|e| e.to_string())
}
fn queue_no(k: usize) -> Res<QueueNo> {
    QueueNo::parse(&(6000 + k).to_string()).map_err(|e| e.to_string())
}
fn extension(i: usize) -> String {
    (100_000 + i).to_string()
}

/// Shifts on quarter hours, spread over the read window (yesterday to 14 days ahead) and
/// over the day, each tagged with one or both of the person's two home queues.
fn person_events(i: usize, n: usize, queues: usize, base: DateTime<Utc>) -> Vec<Event> {
    let mut rng = Rng(SEED ^ (i as u64).wrapping_mul(0x1000_0001));
    let homes = [i % queues, (i * 7 + 3) % queues];
    (0..n)
        .map(|j| {
            let day = (j * 15 / n.max(1)) as i64;
            let start = base + TimeDelta::days(day) + TimeDelta::minutes(15 * rng.below(96) as i64);
            let end = start + TimeDelta::minutes(15 * (4 + rng.below(13)) as i64);
            let cats = match rng.below(3) {
                0 => vec![format!("Q{}", homes[0])],
                1 => vec![format!("Q{}", homes[1])],
                _ => vec![format!("Q{}", homes[0]), format!("Q{}", homes[1])],
            };
            shift(format!("ev-{i}-{j}"), start, end, cats)
        })
        .collect()
}

fn shift(id: String, start: DateTime<Utc>, end: DateTime<Utc>, categories: Vec<String>) -> Event {
    Event {
        id,
        subject: "Dienst".into(),
        when: EventTime::Timed { start, end },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories,
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

struct World {
    persons: usize,
    queues: usize,
    concurrency: usize,
    lead: &'static str,
    /// `poll_interval`. A cycle must end within it (SPEC §5), so the size runs use SPEC §4's
    /// example of 2 minutes: the cold cycle at 2,000 calendars writes for half a minute.
    poll: &'static str,
}

fn config_toml(w: &World, graph: &GraphSim, tring: &TringSim, state: &Path) -> String {
    let o = graph.options();
    let mut t = format!(
        "timezone = \"Europe/Amsterdam\"\npoll_interval = \"{}\"\nwindow = \"14d\"\nstate = \"{}\"\n\n\
         [tring]\nbase_url = \"{}\"\ntenant = \"ACME\"\nkey_env = \"ROOSTER_BENCH_TRING_KEY\"\n\n\
         [graph]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"ROOSTER_BENCH_GRAPH_SECRET\"\n\
         base_url = \"{}\"\nauthority = \"{}\"\nconcurrency = {}\n",
        w.poll,
        state.display(),
        tring.base_url(),
        o.tenant_id,
        o.client_id,
        graph.base_url(),
        graph.authority(),
        w.concurrency
    );
    for i in 0..w.persons {
        t += &format!(
            "\n[[person]]\nname = \"Person {i}\"\nmailbox = \"p{i}@bench.test\"\nextension = \"{}\"\n",
            extension(i)
        );
    }
    for k in 0..w.queues {
        t += &format!(
            "\n[[queue]]\nnumber = \"{}\"\nname = \"Q{k}\"\nkeep_last = false\n",
            6000 + k
        );
    }
    for k in 0..w.queues {
        t += &format!(
            "\n[[rule]]\nname = \"queue {k}\"\ncalendar = \"own\"\nmatch = {{ categories = [\"Q{k}\"] }}\nqueues = [\"{}\"]\nlead = \"{}\"\n",
            6000 + k,
            w.lead
        );
    }
    t
}

async fn start_sims(queues: usize, page_size: usize) -> Res<(GraphSim, TringSim)> {
    let graph = GraphSim::start(GraphSimOptions {
        page_size,
        ..GraphSimOptions::default()
    })
    .await
    .map_err(|e| format!("graph simulator: {e}"))?;
    let tring = TringSim::start(SimTringOptions {
        key: Secret::new(TRING_KEY),
        queues: (0..queues)
            .map(|k| Ok((queue_no(k)?, Vec::new())))
            .collect::<Res<_>>()?,
        ..SimTringOptions::default()
    })
    .await
    .map_err(|e| format!("tring simulator: {e}"))?;
    Ok((graph, tring))
}

/// A permanent delay on every Graph call (the token endpoint excepted: the simulator's
/// `Delay` applies to calendar routes only) and every TRiNG call.
fn inject_latency(graph: &GraphSim, tring: &TringSim, latency: Duration) {
    if latency.is_zero() {
        return;
    }
    graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::Delay(latency),
        times: None,
    });
    tring.inject(Fault::always(FaultKind::Delay(latency)));
}

// ---------------------------------------------------------------------------------------
// Request counters on the simulator side

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    graph_total: u64,
    graph_views: u64,
    graph_tokens: u64,
    tring: [u64; 5],
}

const ACTIONS: [(Action, &str); 5] = [
    (Action::List, "list"),
    (Action::Add, "add"),
    (Action::Del, "del"),
    (Action::Clean, "clean"),
    (Action::ListQueues, "listqueues"),
];

fn counts(graph: &GraphSim, tring: &TringSim) -> Counts {
    let mut c = Counts {
        // The simulator records token requests among the others.
        graph_total: graph.requests().len() as u64,
        graph_views: graph.calendar_view_requests(),
        graph_tokens: graph.token_requests(),
        tring: [0; 5],
    };
    for r in tring.requests() {
        if let Some(i) = ACTIONS.iter().position(|(a, _)| Some(*a) == r.action) {
            c.tring[i] += 1;
        }
    }
    c
}

impl Counts {
    fn since(&self, before: &Counts) -> Counts {
        let mut t = [0; 5];
        for (i, v) in t.iter_mut().enumerate() {
            *v = self.tring[i] - before.tring[i];
        }
        Counts {
            graph_total: self.graph_total - before.graph_total,
            graph_views: self.graph_views - before.graph_views,
            graph_tokens: self.graph_tokens - before.graph_tokens,
            tring: t,
        }
    }
    fn tring_total(&self) -> u64 {
        self.tring.iter().sum()
    }
    fn tring_writes(&self) -> u64 {
        self.tring[1] + self.tring[2] + self.tring[3]
    }
    fn tring_text(&self) -> String {
        ACTIONS
            .iter()
            .zip(self.tring)
            .filter(|(_, n)| *n > 0)
            .map(|((_, name), n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// `ceil(requests / concurrency) × latency` (the round-trip limit).
    fn limit(&self, concurrency: usize, latency: Duration) -> Duration {
        let reqs = self.graph_total + self.tring_total();
        latency * reqs.div_ceil(concurrency as u64) as u32
    }
    /// The same limit phase by phase as `cycle.rs` runs them: reads at the configured
    /// concurrency with the `list`s beside them at TRiNG's 4 in flight, then the writes, also
    /// at 4 in flight (four queues at once, one at a time per queue): what this design can
    /// reach at best.
    fn design_limit(&self, concurrency: usize, latency: Duration) -> Duration {
        let graph = self.graph_total.div_ceil(concurrency as u64);
        let lists = self.tring[0].div_ceil(TRING_IN_FLIGHT);
        let writes = self.tring_writes().div_ceil(TRING_IN_FLIGHT);
        latency * (graph.max(lists) + writes) as u32
    }
}

// ---------------------------------------------------------------------------------------
// Child: rooster alone

async fn child_main(a: &ChildArgs) -> Res<()> {
    let ticks = clock_ticks();
    let text = std::fs::read_to_string(&a.config).map_err(|e| format!("config: {e}"))?;
    let cfg = Arc::new(Config::parse(&text, &a.config).map_err(|e| e.to_string())?);
    let graph = GraphClient::with_options(
        &cfg.graph,
        Secret::new(a.graph_secret.clone()),
        GraphOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(50),
                ..RetryPolicy::default()
            },
            ..GraphOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let tring = TringClient::with_options(
        &cfg.tring,
        Secret::new(TRING_KEY),
        TringClientOptions::default(),
    )
    .map_err(|e| e.to_string())?
    .with_known_members(KnownMembers::from_config(&cfg));
    let store = Store::open(&a.state, OpenMode::Writer)
        .await
        .map_err(|e| e.to_string())?;
    let mut rec = Reconciler::new(
        cfg.clone(),
        graph.clone(),
        tring.clone(),
        SystemClock,
        Some(store),
        false,
    )
    .await
    .map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(cmd) = lines.next_line().await.map_err(|e| e.to_string())? {
        let cpu0 = cpu_seconds(ticks);
        let t0 = Instant::now();
        let mut v = match cmd.trim() {
            "cycle" => {
                let r = rec
                    .cycle(Mode::Full, &cancel)
                    .await
                    .map_err(|e| e.to_string())?;
                json!({"adds": r.adds, "dels": r.dels, "errors": r.errors.len(),
                       "calendars_failed": r.calendars_failed, "queues_failed": r.queues_failed})
            }
            "decide" => decide_bench(&mut rec).await?,
            "naive" => naive_cycle(&cfg, &graph, &tring).await?,
            "quit" => break,
            other => return Err(format!("{other}: unknown command")),
        };
        v["wall_ms"] = json!(t0.elapsed().as_secs_f64() * 1e3);
        v["cpu_s"] = json!(cpu_seconds(ticks) - cpu0);
        v["cpu_total_s"] = json!(cpu_seconds(ticks));
        v["vmhwm_kb"] = json!(proc_status_kb("VmHWM:"));
        v["vmrss_kb"] = json!(proc_status_kb("VmRSS:"));
        v["client_token_requests"] = json!(graph.stats().token_requests);
        let line = format!("{v}\n");
        out.write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        out.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// schedule+plan time (`Reconciler::decide`) and a simulated day: 96 quarter-hour instants
/// from now. Every activation edge lies on a quarter hour (lead 0), so the 96 instants see
/// every change rooster would make. Beside rooster's writes: the lower bound any tool must
/// write to follow the rota (the members entering or leaving each queue's desired set from
/// one instant to the next), the naive script run at every poll of rooster's default
/// `poll_interval` (2 minutes, SPEC §4: the same cadence, the comparison the targets use), and
/// the same script as a cron job every 15 minutes (at the 96 instants), which favours it: its
/// shifts then start up to 15 minutes late.
async fn decide_bench<C: Calendars, P: Pbx>(rec: &mut Reconciler<C, P, SystemClock>) -> Res<Value> {
    let mut obs: Observation = rec.observe(false).await.map_err(|e| e.to_string())?;
    let t_nb = Instant::now();
    let nb = rec.next_boundary(obs.at);
    let next_boundary_ms = t_nb.elapsed().as_secs_f64() * 1e3;

    let mut times = Vec::new();
    // The decide a real cycle makes: against the live sets just listed.
    for _ in 0..5 {
        let t = Instant::now();
        let d = rec.decide(&obs, obs.at);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(d);
    }

    let day0 = obs
        .at
        .duration_trunc(TimeDelta::minutes(15))
        .map_err(|e| e.to_string())?;
    let start = rec.decide(&obs, day0).desired;
    let mut live: BTreeMap<QueueNo, BTreeSet<Member>> = start
        .queues
        .iter()
        .map(|(q, ms)| (q.clone(), ms.keys().cloned().collect()))
        .collect();
    let mut owned = live.clone();
    let (mut writes, mut naive_writes, mut changed_instants) = (0u64, 0u64, 0u64);
    let mut min_writes = 0u64;
    let mut prev: BTreeMap<QueueNo, BTreeSet<Member>> = live.clone();
    // At large sizes one decide can take seconds (see docs/BENCHMARKS.md); the day is cut
    // short after DAY_BUDGET of decide time and the instants covered are reported.
    let budget = Instant::now();
    let mut instants = 0u64;
    for k in 1..=96 {
        if budget.elapsed() > DAY_BUDGET {
            break;
        }
        instants += 1;
        let at = day0 + TimeDelta::minutes(15 * k);
        obs.live = live
            .iter()
            .map(|(q, s)| (q.clone(), Ok(s.clone())))
            .collect();
        obs.owned = owned.clone();
        let t = Instant::now();
        let d = rec.decide(&obs, at);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let mut any = false;
        for p in &d.plans {
            let (l, o) = (
                live.entry(p.queue.clone()).or_default(),
                owned.entry(p.queue.clone()).or_default(),
            );
            for m in &p.forget_owned {
                o.remove(m);
            }
            for a in &p.actions {
                writes += 1;
                any = true;
                match a.kind {
                    ActionKind::Add => {
                        l.insert(a.member.clone());
                        o.insert(a.member.clone());
                    }
                    ActionKind::Del => {
                        l.remove(&a.member);
                        o.remove(&a.member);
                    }
                }
            }
        }
        changed_instants += u64::from(any);
        for (q, ms) in &d.desired.queues {
            let now: BTreeSet<Member> = ms.keys().cloned().collect();
            let was = prev.entry(q.clone()).or_default();
            min_writes += now.symmetric_difference(was).count() as u64;
            *was = now;
        }
        // The naive script: per queue one `clean` and one `add` per desired member.
        naive_writes += d
            .desired
            .queues
            .values()
            .map(|ms| 1 + ms.len() as u64)
            .sum::<u64>();
    }
    // The naive script at every poll over the same span (a poll's desired sets, no plan).
    let mut naive_poll_writes = 0u64;
    let polls = (instants * 15 * 60) / NAIVE_POLL.as_secs();
    for k in 1..=polls {
        let at = day0 + TimeDelta::seconds((k * NAIVE_POLL.as_secs()) as i64);
        naive_poll_writes += obs
            .schedule
            .desired_at(&rec.config().roster(), at)
            .queues
            .values()
            .map(|ms| 1 + ms.len() as u64)
            .sum::<u64>();
    }
    times.sort_by(f64::total_cmp);
    Ok(json!({
        "decide_ms_median": percentile(&times, 0.5),
        "decide_ms_p95": percentile(&times, 0.95),
        "decide_ms_max": percentile(&times, 1.0),
        "decide_samples": times.len(),
        "next_boundary_ms": next_boundary_ms,
        "next_boundary_found": nb.is_some(),
        "activations": obs.schedule.len(),
        "day_writes": writes,
        "day_changed_instants": changed_instants,
        "day_naive_writes": naive_writes,
        "day_min_writes": min_writes,
        "day_naive_poll_writes": naive_poll_writes,
        "day_instants": instants,
    }))
}

/// The admin's script: calendars read one after another, then per queue `clean` and an
/// `add` for everyone desired. Same clients, same desired sets (schedule::desired_at).
async fn naive_cycle(cfg: &Config, graph: &GraphClient, tring: &TringClient) -> Res<Value> {
    let now = Utc::now();
    let (from, to) = schedule::read_window(&cfg.roster(), now);
    let mut events = CalendarEvents::new();
    let mut failed = 0;
    for cal in schedule::calendars_needed(&cfg.roster()) {
        match graph.read_calendar(&cal, from, to).await {
            Ok(read) => {
                events.insert(cal, read.events);
            }
            Err(_) => failed += 1,
        }
    }
    let desired = schedule::desired_at(&cfg.roster(), &events, now);
    let mut write_errors = 0;
    for q in &cfg.queues {
        if tring.clean(&q.number).await.is_err() {
            write_errors += 1;
        }
        for m in desired
            .queues
            .get(&q.number)
            .into_iter()
            .flat_map(|ms| ms.keys())
        {
            if tring.add(&q.number, m).await.is_err() {
                write_errors += 1;
            }
        }
    }
    Ok(json!({"calendars_failed": failed, "write_errors": write_errors}))
}

// ---------------------------------------------------------------------------------------
// Parent: one size

struct Child {
    proc: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn ask(&mut self, cmd: &str) -> Res<Value> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| format!("child stdin: {e}"))?;
        self.stdin.flush().await.map_err(|e| e.to_string())?;
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| format!("child stdout: {e}"))?
            .ok_or(format!("child ended during `{cmd}`"))?;
        serde_json::from_str(&line).map_err(|e| format!("child answer {line:?}: {e}"))
    }
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}
fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(Debug, Default, Clone)]
struct Row {
    calendars: usize,
    cold_s: f64,
    cold: Counts,
    steady_s: f64,
    steady: Counts,
    steady_token_delta: u64,
    naive_s: f64,
    naive: Counts,
    limit_steady_s: f64,
    design_limit_cold_s: f64,
    limit_cold_s: f64,
    decide_med_ms: f64,
    decide_max_ms: f64,
    next_boundary_ms: f64,
    rss_rooster_mb: f64,
    rss_cycles_mb: f64,
    rss_sims_mb: f64,
    cpu_cold_s: f64,
    cpu_steady_s: f64,
    day_writes: u64,
    day_naive_writes: u64,
    day_min_writes: u64,
    day_naive_poll_writes: u64,
    day_instants: u64,
}

async fn run_size(a: &Args, calendars: usize) -> Res<Row> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let (graph, tring) = start_sims(a.queues, a.page_size).await?;
    let base = (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::minutes(15))
        .map_err(|e| e.to_string())?;
    for i in 0..calendars {
        graph.set_events(
            &mailbox(i)?,
            None,
            person_events(i, a.events, a.queues, base),
        );
    }
    inject_latency(&graph, &tring, a.latency);
    let rss_sims_mb = proc_status_kb("VmRSS:").unwrap_or(0) as f64 / 1024.0;

    let state = dir.path().join("rooster.db");
    let world = World {
        persons: calendars,
        queues: a.queues,
        concurrency: a.concurrency,
        lead: "0s",
        poll: "2m",
    };
    let cfg_path = dir.path().join("rooster.toml");
    std::fs::write(&cfg_path, config_toml(&world, &graph, &tring, &state))
        .map_err(|e| format!("config: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut proc = tokio::process::Command::new(exe)
        .arg("--child")
        .arg("--config")
        .arg(&cfg_path)
        .arg("--state")
        .arg(&state)
        .arg("--graph-secret")
        .arg(&graph.options().client_secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("child: {e}"))?;
    let stdin = proc.stdin.take().ok_or("child stdin")?;
    let stdout = proc.stdout.take().ok_or("child stdout")?;
    let mut child = Child {
        proc,
        stdin,
        lines: BufReader::new(stdout).lines(),
    };

    let c0 = counts(&graph, &tring);
    let cold = child.ask("cycle").await?;
    let c1 = counts(&graph, &tring);
    let steady = child.ask("cycle").await?;
    let c2 = counts(&graph, &tring);
    let decide = child.ask("decide").await?;
    let c3 = counts(&graph, &tring);
    let naive = child.ask("naive").await?;
    let c4 = counts(&graph, &tring);
    let _ = child.ask("quit").await;
    let _ = child.proc.wait().await;

    let (cold_n, steady_n, naive_n) = (c1.since(&c0), c2.since(&c1), c4.since(&c3));
    let _ = c3;
    eprintln!(
        "  {calendars} calendars: cold {:.2}s ({} adds, {} errors), steady {:.2}s ({} errors), naive {:.2}s",
        f(&cold, "wall_ms") / 1e3,
        u(&cold, "adds"),
        u(&cold, "errors"),
        f(&steady, "wall_ms") / 1e3,
        u(&steady, "errors"),
        f(&naive, "wall_ms") / 1e3
    );
    graph.shutdown();
    tring.shutdown().await;
    Ok(Row {
        calendars,
        cold_s: f(&cold, "wall_ms") / 1e3,
        cold: cold_n,
        steady_s: f(&steady, "wall_ms") / 1e3,
        steady: steady_n,
        steady_token_delta: u(&steady, "client_token_requests") - u(&cold, "client_token_requests"),
        naive_s: f(&naive, "wall_ms") / 1e3,
        naive: naive_n,
        limit_steady_s: secs(steady_n.limit(a.concurrency, a.latency)),
        limit_cold_s: secs(cold_n.limit(a.concurrency, a.latency)),
        design_limit_cold_s: secs(cold_n.design_limit(a.concurrency, a.latency)),
        decide_med_ms: f(&decide, "decide_ms_median"),
        decide_max_ms: f(&decide, "decide_ms_max"),
        next_boundary_ms: f(&decide, "next_boundary_ms"),
        // VmHWM after rooster's cycles and the decide runs, before the naive script.
        rss_rooster_mb: f(&decide, "vmhwm_kb") / 1024.0,
        // VmHWM after the cold and steady cycles only: what the daemon itself needs.
        rss_cycles_mb: f(&steady, "vmhwm_kb") / 1024.0,
        rss_sims_mb,
        cpu_cold_s: f(&cold, "cpu_s"),
        cpu_steady_s: f(&steady, "cpu_s"),
        day_writes: u(&decide, "day_writes"),
        day_naive_writes: u(&decide, "day_naive_writes"),
        day_min_writes: u(&decide, "day_min_writes"),
        day_naive_poll_writes: u(&decide, "day_naive_poll_writes"),
        day_instants: u(&decide, "day_instants"),
    })
}

// ---------------------------------------------------------------------------------------
// Boundary lag and idle wake-ups: daemon::run in this process

/// When a write's reply came, and which write it was.
type WriteSeen = (DateTime<Utc>, ActionKind, QueueNo, Member);

/// `TringClient` that notes when each write's reply came and counts `list` calls.
#[derive(Clone)]
struct TimedPbx {
    inner: TringClient,
    writes: Arc<Mutex<Vec<WriteSeen>>>,
    lists: Arc<AtomicU64>,
}

impl Pbx for TimedPbx {
    async fn list(&self, q: &QueueNo) -> Result<BTreeSet<Member>, ReadError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        Pbx::list(&self.inner, q).await
    }
    async fn write(
        &self,
        kind: ActionKind,
        q: &QueueNo,
        m: &Member,
    ) -> Result<WriteOutcome, WriteError> {
        let r = Pbx::write(&self.inner, kind, q, m).await;
        if let Ok(mut w) = self.writes.lock() {
            w.push((Utc::now(), kind, q.clone(), m.clone()));
        }
        r
    }
}

/// `GraphClient` that counts full reads (one per full cycle).
struct CountedCalendars {
    inner: GraphClient,
    reads: Arc<AtomicU64>,
}

impl Calendars for CountedCalendars {
    fn read_all<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Stream<Item = rooster::cycle::CalendarResult> + Send + 'a {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Calendars::read_all(&self.inner, cals, from, to)
    }
}

struct LagResult {
    boundaries: usize,
    lags_ms: Vec<f64>,
    missing: usize,
    full_cycles: u64,
    expected_full: u64,
    boundary_cycles: u64,
    run_s: f64,
    spacing_s: f64,
}

async fn run_lag(a: &Args) -> Res<LagResult> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let (graph, tring) = start_sims(a.queues, a.page_size).await?;
    let n = a.lag_boundaries;
    let spacing = TimeDelta::seconds(2);
    let lead = TimeDelta::minutes(2);
    let t0 = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .map_err(|e| e.to_string())?
        + TimeDelta::seconds(6);
    let mut boundaries = Vec::new();
    for i in 0..n {
        let b = t0 + spacing * i as i32;
        boundaries.push((b, queue_no(i % a.queues)?, Member::Agent(ext(i)?)));
        let start = b + lead;
        graph.set_events(
            &mailbox(i)?,
            None,
            vec![shift(
                format!("lag-{i}"),
                start,
                start + TimeDelta::minutes(30),
                vec![format!("Q{}", i % a.queues)],
            )],
        );
    }
    inject_latency(&graph, &tring, a.latency);
    let state = dir.path().join("rooster.db");
    let world = World {
        persons: n,
        queues: a.queues,
        concurrency: a.concurrency,
        lead: "2m",
        poll: "10s",
    };
    let cfg_path = dir.path().join("rooster.toml");
    let text = config_toml(&world, &graph, &tring, &state);
    let cfg = Arc::new(Config::parse(&text, &cfg_path).map_err(|e| e.to_string())?);
    let gc = GraphClient::new(
        &cfg.graph,
        Secret::new(graph.options().client_secret.clone()),
    )
    .map_err(|e| e.to_string())?;
    let reads = Arc::new(AtomicU64::new(0));
    let pbx = TimedPbx {
        inner: TringClient::new(&cfg.tring, Secret::new(TRING_KEY))
            .map_err(|e| e.to_string())?
            .with_known_members(KnownMembers::from_config(&cfg)),
        writes: Arc::new(Mutex::new(Vec::new())),
        lists: Arc::new(AtomicU64::new(0)),
    };
    let store = Store::open(&state, OpenMode::Writer)
        .await
        .map_err(|e| e.to_string())?;
    let mut rec = Reconciler::new(
        cfg.clone(),
        CountedCalendars {
            inner: gc,
            reads: reads.clone(),
        },
        pbx.clone(),
        SystemClock,
        Some(store),
        false,
    )
    .await
    .map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let end = t0 + spacing * n as i32 + TimeDelta::seconds(2);
    let stop = cancel.clone();
    let started = Utc::now();
    let stopper = tokio::spawn(async move {
        let wait = (end - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        stop.cancel();
    });
    daemon::run(&mut rec, &NoNotifier, cancel)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stopper.await;
    let run_s = (Utc::now() - started).as_seconds_f64();

    let writes = pbx.writes.lock().map_err(|_| "write log poisoned")?.clone();
    let mut lags = Vec::new();
    let mut missing = 0;
    for (b, q, m) in &boundaries {
        match writes
            .iter()
            .find(|(_, k, wq, wm)| *k == ActionKind::Add && wq == q && wm == m)
        {
            Some((at, ..)) => lags.push((*at - *b).as_seconds_f64() * 1e3),
            None => missing += 1,
        }
    }
    lags.sort_by(f64::total_cmp);
    // Every cycle that did something is recorded in the state (a boundary cycle lists only
    // the queues that changed, so `list` calls no longer count cycles).
    let cycles = match rec.store() {
        Some(store) => store
            .last_cycle()
            .await
            .map_err(|e| e.to_string())?
            .map_or(0, |c| c.id.0 as u64),
        None => 0,
    };
    let full = reads.load(Ordering::Relaxed);
    graph.shutdown();
    tring.shutdown().await;
    Ok(LagResult {
        boundaries: n,
        lags_ms: lags,
        missing,
        full_cycles: full,
        expected_full: 1 + (run_s / cfg.poll_interval.as_secs_f64()) as u64,
        boundary_cycles: cycles.saturating_sub(full),
        run_s,
        spacing_s: spacing.as_seconds_f64(),
    })
}

fn ext(i: usize) -> Res<Extension> {
    Extension::parse(&extension(i)).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Report

fn machine() -> String {
    let cmd = |c: &str, args: &[&str]| {
        std::process::Command::new(c)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default()
    };
    let model = cmd("lscpu", &[])
        .lines()
        .find(|l| l.starts_with("Model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let mem = cmd("free", &["-g"])
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    format!("{} CPUs ({model}), {mem} GiB RAM", cmd("nproc", &[]).trim())
}

fn report(a: &Args, rows: &[Row], lag: Option<&LagResult>) {
    let lat = a.latency.as_millis();
    println!(
        "\n## rooster cycle benchmark\n\nmachine: {}\nparameters: events/calendar {}, queues {}, graph concurrency {}, latency {lat} ms per request, page size {}\n",
        machine(),
        a.events,
        a.queues,
        a.concurrency,
        a.page_size
    );
    println!(
        "| calendars | cold cycle | steady cycle | round-trip limit (steady) | steady / limit | naive cycle | naive / steady | naive / cold |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2}× | {:.2} s | {:.1}× | {:.1}× |",
            r.calendars,
            r.cold_s,
            r.steady_s,
            r.limit_steady_s,
            r.steady_s / r.limit_steady_s,
            r.naive_s,
            r.naive_s / r.steady_s,
            r.naive_s / r.cold_s
        );
    }
    println!(
        "\n| calendars | cold: Graph req (views/token) | cold: TRiNG req | cold limit (issue / this design) | steady: Graph req (token) | steady: TRiNG req | naive: Graph req | naive: TRiNG req |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} ({}/{}) | {} | {:.2} s / {:.2} s | {} ({}; client {}) | {} | {} | {} |",
            r.calendars,
            r.cold.graph_total,
            r.cold.graph_views,
            r.cold.graph_tokens,
            r.cold.tring_text(),
            r.limit_cold_s,
            r.design_limit_cold_s,
            r.steady.graph_total,
            r.steady.graph_tokens,
            r.steady_token_delta,
            r.steady.tring_text(),
            r.naive.graph_total,
            r.naive.tring_text()
        );
    }
    println!(
        "\n| calendars | schedule+plan median / max | next_boundary | peak RSS rooster: cycles only / with the simulated day (child) | RSS simulators (parent) | CPU cold / steady |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} / {:.1} ms | {:.1} ms | {:.1} / {:.1} MB | {:.1} MB | {:.2} / {:.2} s |",
            r.calendars,
            r.decide_med_ms,
            r.decide_max_ms,
            r.next_boundary_ms,
            r.rss_cycles_mb,
            r.rss_rooster_mb,
            r.rss_sims_mb,
            r.cpu_cold_s,
            r.cpu_steady_s,
        );
    }
    println!(
        "\n| calendars | day: quarter hours | rooster writes | lower bound (membership changes) | naive at rooster's 2-min poll | ratio | naive as a 15-min cron | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = |n: u64| n as f64 / r.day_writes.max(1) as f64;
        println!(
            "| {} | {} | {} | {} | {} | {:.0}× | {} | {:.0}× |",
            r.calendars,
            r.day_instants,
            r.day_writes,
            r.day_min_writes,
            r.day_naive_poll_writes,
            ratio(r.day_naive_poll_writes),
            r.day_naive_writes,
            ratio(r.day_naive_writes)
        );
    }
    println!("\ntargets (issue 8 §3), per size:");
    for r in rows {
        let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
        let cold_limit = r.cold_s / r.limit_cold_s;
        let steady_limit = r.steady_s / r.limit_steady_s;
        let (naive_cold, naive_steady) = (r.naive_s / r.cold_s, r.naive_s / r.steady_s);
        let fewer = r.day_naive_poll_writes as f64 / r.day_writes.max(1) as f64;
        println!(
            "  {} calendars: cycle / round-trip limit: cold {cold_limit:.2}×, steady {steady_limit:.2}× (want ≤ 2) → {}; \
             naive / cycle: cold {naive_cold:.1}×, steady {naive_steady:.1}× (want ≥ 5) → {}; \
             schedule+plan max {:.1} ms (want ≤ 20) → {}; peak RSS {:.1} MB (want ≤ 40) → {}; \
             naive writes at the same poll / rooster's {fewer:.0}× (want ≥ 10) → {}",
            r.calendars,
            verdict(cold_limit <= 2.0 && steady_limit <= 2.0),
            verdict(naive_cold >= 5.0 && naive_steady >= 5.0),
            r.decide_max_ms,
            verdict(r.decide_max_ms <= 20.0),
            r.rss_rooster_mb,
            verdict(r.rss_rooster_mb <= 40.0),
            verdict(fewer >= 10.0),
        );
    }
    println!("\nsteady-state checks (issue 8 §3):");
    for r in rows {
        let lists_ok = r.steady.tring[0] == a.queues as u64;
        println!(
            "  {} calendars: TRiNG writes {} (want 0), lists {} (want {}), token requests {} (want 0) → {}",
            r.calendars,
            r.steady.tring_writes(),
            r.steady.tring[0],
            a.queues,
            r.steady.graph_tokens + r.steady_token_delta,
            if r.steady.tring_writes() == 0 && lists_ok && r.steady.graph_tokens == 0 {
                "ok"
            } else {
                "MISSED"
            }
        );
    }
    if let Some(l) = lag {
        let med = percentile(&l.lags_ms, 0.5);
        let max = percentile(&l.lags_ms, 1.0);
        println!(
            "\nboundary lag (start − lead → TRiNG add answered), {} boundaries {:.0} s apart, {} queues: median {:.0} ms, max {:.0} ms, missing {} → {}",
            l.boundaries,
            l.spacing_s,
            a.queues,
            med,
            max,
            l.missing,
            if max <= 1000.0 && l.missing == 0 {
                "ok"
            } else {
                "MISSED (target ≤ 1000 ms)"
            }
        );
        println!(
            "idle wake-ups over {:.1} s: {} full cycles (polls expected: {}), {} boundary cycles that changed a queue for {} boundaries → {}",
            l.run_s,
            l.full_cycles,
            l.expected_full,
            l.boundary_cycles,
            l.boundaries,
            if l.full_cycles <= l.expected_full && l.boundary_cycles <= l.boundaries as u64 {
                "ok: no wake-up beyond polls and boundaries"
            } else {
                "MISSED: extra wake-ups"
            }
        );
    }
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cycle bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cycle bench: runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        if let Some(c) = &args.child {
            return child_main(c).await;
        }
        let mut rows = Vec::new();
        for &n in &args.sizes {
            eprintln!(
                "running {n} calendars × {} events, {} queues…",
                args.events, args.queues
            );
            rows.push(run_size(&args, n).await?);
        }
        let lag = if args.lag {
            eprintln!("running boundary lag ({} boundaries)…", args.lag_boundaries);
            Some(run_lag(&args).await?)
        } else {
            None
        };
        report(&args, &rows, lag.as_ref());
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cycle bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
