//! Criterion benchmark of the pure core: one "full evaluation" — the desired
//! membership of every queue at an instant (`Schedule::desired_at`) plus the plan of all 200
//! queues (`plan::plan_queue`) — on 2,000 persons × 50 events, 200 queues and 400 rules.
//! Target: ≤ 20 ms per evaluation on the 2-core machine; figures go to docs/BENCHMARKS.md.
//!
//! The schedule is built once outside the measured loop, as the daemon does once per calendar
//! read; `Schedule::new` is measured on its own and is not part of the 20 ms. No network, no
//! files, no clock: the world is generated from a fixed seed and parsed with `Config::parse`,
//! so this touches nothing outside the process.
//!
//! Run: `cargo bench --bench core`.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rooster::config::Config;
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Member, QueueNo, Sensitivity, ShowAs,
};
use rooster::plan::{QueueInput, QueuePlan, plan_queue};
use rooster::schedule::{CalendarEvents, DesiredMember, Schedule};
use rooster::words::Words;

const PERSONS: usize = 2000;
const EVENTS: usize = 50;
const QUEUES: usize = 200;
/// Instants evaluated round-robin, so the figure is not one lucky quarter hour.
const INSTANTS: i64 = 8;
const SEED: u64 = 0x0c0e_2026;

/// SplitMix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn queue_number(k: usize) -> usize {
    6000 + k
}

/// 2,000 persons with their own calendars, 200 queues, 400 rules: one category rule per queue
/// (`Qk`), 199 stand-by rules (`Sk` → queues k and k+1) and one absence rule (show as oof,
/// every queue).
fn config_toml() -> String {
    let mut t = String::from(
        "timezone = \"Europe/Amsterdam\"\npoll_interval = \"2m\"\nwindow = \"14d\"\n\
         state = \"/nonexistent/rooster-bench.db\"\n\n\
         [tring]\nbase_url = \"http://127.0.0.1:9/proxyapi.php\"\ntenant = \"ACME\"\n\
         key_env = \"ROOSTER_BENCH_TRING_KEY\"\n\n\
         [graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n\
         client_secret_env = \"ROOSTER_BENCH_GRAPH_SECRET\"\n\
         base_url = \"http://127.0.0.1:9/v1.0\"\nauthority = \"http://127.0.0.1:9\"\n",
    );
    for i in 0..PERSONS {
        t += &format!(
            "\n[[person]]\nname = \"Person {i}\"\nmailbox = \"p{i}@bench.test\"\nextension = \"{}\"\n",
            100_000 + i
        );
    }
    for k in 0..QUEUES {
        t += &format!(
            "\n[[queue]]\nnumber = \"{}\"\nname = \"Q{k}\"\nkeep_last = false\n",
            queue_number(k)
        );
    }
    for k in 0..QUEUES {
        t += &format!(
            "\n[[rule]]\nname = \"queue {k}\"\ncalendar = \"own\"\n\
             match = {{ categories = [\"Q{k}\"] }}\nqueues = [\"{}\"]\nlead = \"2m\"\n",
            queue_number(k)
        );
    }
    for k in 0..QUEUES - 1 {
        t += &format!(
            "\n[[rule]]\nname = \"standby {k}\"\ncalendar = \"own\"\n\
             match = {{ categories = [\"S{k}\"] }}\nqueues = [\"{}\", \"{}\"]\n",
            queue_number(k),
            queue_number(k + 1)
        );
    }
    t += "\n[[rule]]\nname = \"away\"\ncalendar = \"own\"\neffect = \"absent\"\n\
          match = { show_as = [\"oof\"] }\n";
    t
}

/// 50 shifts per person on quarter hours from yesterday to 14 days ahead, 1–4 h long, tagged
/// with the person's home queues; one in four also stand-by, one in forty an absence.
fn person_events(i: usize, base: DateTime<Utc>) -> Vec<Event> {
    let mut rng = Rng(SEED ^ (i as u64).wrapping_mul(0x1000_0001));
    let homes = [i % QUEUES, (i * 7 + 3) % QUEUES];
    (0..EVENTS)
        .map(|j| {
            let day = (j * 15 / EVENTS) as i64 - 1;
            let start = base + TimeDelta::days(day) + TimeDelta::minutes(15 * rng.below(96) as i64);
            let end = start + TimeDelta::minutes(15 * (4 + rng.below(13)) as i64);
            let mut categories = match rng.below(3) {
                0 => vec![format!("Q{}", homes[0])],
                1 => vec![format!("Q{}", homes[1])],
                _ => vec![format!("Q{}", homes[0]), format!("Q{}", homes[1])],
            };
            if rng.below(4) == 0 {
                categories.push(format!("S{}", homes[0].min(QUEUES - 2)));
            }
            let show_as = if rng.below(40) == 0 {
                categories = vec!["Vrij".to_owned()];
                ShowAs::Oof
            } else {
                ShowAs::Busy
            };
            Event {
                id: format!("ev-{i}-{j}"),
                subject: "Dienst".into(),
                when: EventTime::Timed { start, end },
                is_cancelled: false,
                show_as,
                categories,
                sensitivity: Sensitivity::Normal,
                organizer: None,
                attendees: Vec::new(),
                kind: EventKind::SingleInstance,
                series_master_id: None,
            }
        })
        .collect()
}

/// Per queue, the live members (also taken as owned).
type Live = BTreeMap<QueueNo, BTreeSet<Member>>;

struct World {
    cfg: Config,
    events: CalendarEvents,
    /// (instant, live = owned per queue: the desired sets a quarter hour earlier).
    instants: Vec<(DateTime<Utc>, Live)>,
}

fn world() -> World {
    let cfg = Config::parse(&config_toml(), Path::new("bench.toml"))
        .unwrap_or_else(|e| panic!("generated config does not parse: {e}"));
    assert_eq!(cfg.persons.len(), PERSONS);
    assert_eq!(cfg.queues.len(), QUEUES);
    assert_eq!(cfg.rules.len(), 400);
    // Monday 30 March 2026, 00:00 UTC.
    let base = DateTime::from_timestamp(1_774_828_800, 0).expect("valid instant");
    let events: CalendarEvents = (0..PERSONS)
        .map(|i| {
            let mb = Mailbox::parse(&format!("p{i}@bench.test")).expect("valid mailbox");
            (CalendarRef::default_of(mb), person_events(i, base))
        })
        .collect();
    let schedule = Schedule::new(&cfg.roster(), &events);
    // Quarter hours spread over the window (every edge lies on a quarter hour ± the 2 min
    // lead), with live and owned as they were a quarter hour before: each plan has work.
    let instants = (0..INSTANTS)
        .map(|n| {
            let t = base + TimeDelta::minutes(15 * (97 * n + 200)) - TimeDelta::minutes(2);
            let before = schedule.desired_at(&cfg.roster(), t - TimeDelta::minutes(15));
            let live = before
                .queues
                .into_iter()
                .map(|(q, set)| (q, set.into_keys().collect()))
                .collect();
            (t, live)
        })
        .collect();
    World {
        cfg,
        events,
        instants,
    }
}

/// One full evaluation: desired at `t`, then the plan of every queue, with each action's
/// sentence worded as the cycle words it for the log.
fn evaluate(w: &World, schedule: &Schedule, t: DateTime<Utc>, live: &Live) -> Vec<QueuePlan> {
    let empty_desired: BTreeMap<Member, DesiredMember> = BTreeMap::new();
    let empty_set: BTreeSet<Member> = BTreeSet::new();
    let desired = schedule.desired_at(&w.cfg.roster(), t);
    let words = Words::new(w.cfg.roster());
    w.cfg
        .queues
        .iter()
        .map(|q| {
            let set = live.get(&q.number).unwrap_or(&empty_set);
            let plan = plan_queue(&QueueInput {
                queue: q,
                desired: desired.queues.get(&q.number).unwrap_or(&empty_desired),
                live: Some(set),
                owned: set,
                complete: true,
            });
            for a in &plan.actions {
                std::hint::black_box(words.action(a));
            }
            plan
        })
        .collect()
}

fn core(c: &mut Criterion) {
    let w = world();
    let schedule = Schedule::new(&w.cfg.roster(), &w.events);
    // What one evaluation does, so the figure can be read against real work.
    for (t, live) in &w.instants {
        let plans = evaluate(&w, &schedule, *t, live);
        let members: usize = live.values().map(BTreeSet::len).sum();
        let adds: usize = plans.iter().map(|p| p.adds().count()).sum();
        let dels: usize = plans.iter().map(|p| p.dels().count()).sum();
        eprintln!("{t}: {members} live members, {adds} adds, {dels} dels over {QUEUES} queues");
    }

    let mut group = c.benchmark_group("core");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    let mut n = 0usize;
    group.bench_function("desired_at + plan (200 queues)", |b| {
        b.iter(|| {
            let (t, live) = &w.instants[n % w.instants.len()];
            n += 1;
            black_box(evaluate(&w, &schedule, *t, live))
        })
    });
    group.finish();

    // Once per calendar read: tens of milliseconds, so flat sampling and few samples.
    let mut group = c.benchmark_group("core");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("Schedule::new (100,000 events)", |b| {
        b.iter(|| black_box(Schedule::new(&w.cfg.roster(), &w.events)))
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
