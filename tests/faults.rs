//! The fault matrix: every Graph, TRiNG and state-database fault we know of,
//! injected into the simulators one case at a time, each asserting SPEC §3's outcome and that
//! a later fault-free cycle converges to the right membership. Also crash (kill -9) at every
//! step of a write, and SIGTERM mid-cycle. Summarised in docs/RELIABILITY.md.
//!
//! Drives only the public API against the simulators on 127.0.0.1; touches no real service.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_free_cycle_converges_and_is_idempotent() {
    let h = Harness::start().await;
    let mut rec = h.reconciler().await;
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(h.live(), converged_live());
    assert_eq!(owned(&rec).await, converged_owned());
    h.tring.clear_requests();
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(writes(&h.tring.requests()), vec![], "SPEC §3 rule 6");
    drop(rec);
    h.shutdown().await;
    assert_no_secrets_logged();
}

// ---------------------------------------------------------------------------------------
// The matrix

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rooster::sim::graph::{GraphFault, GraphFaultKind};
use rooster::sim::tring::{Action, Fault, FaultKind};
use rooster::store::{JournalRow, Outcome, WriteAction};

/// What the journal must say about `add ext:203` to 600 right after the faulty cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// Not looked at (the fault is elsewhere).
    Any,
    /// Written and confirmed.
    Applied,
    /// Intent recorded, TRiNG refused: outcome failed.
    Failed,
    /// Intent recorded, reply unknown: outcome uncertain, settled next cycle.
    Uncertain,
}

/// SPEC §3's outcome for one case.
struct Expect {
    /// Queues fed by a calendar that failed: no del may be sent to them (rule 1).
    no_dels: &'static [&'static str],
    /// Queues whose `list` failed: no write at all (rule 2).
    untouched: &'static [&'static str],
    /// Members live right after the faulty cycle (adds still happen).
    live_after: &'static [(&'static str, &'static str)],
    /// Members gone right after the faulty cycle (queues unaffected by the fault proceed).
    gone_after: &'static [(&'static str, &'static str)],
    /// Transient faults absorbed by retries leave the cycle all good.
    all_good: bool,
    add_203: Journal,
    /// A request the simulator holds on to; waited out before the fault-free cycle so the
    /// case does not race the simulator.
    held: Option<Duration>,
}

struct Case {
    name: &'static str,
    setup: fn(&Harness),
    expect: Expect,
}

const PIET_CU: &str = "cu:0687654321";
const JAN_CU: &str = "cu:0612345678";
const ALL_ADDS: &[(&str, &str)] = &[("600", "ext:203"), ("610", "ext:202"), ("700", PIET_CU)];

/// A Graph fault on Jan's calendar: 600 and 610 (fed by every own calendar) get adds only;
/// 700 (fed by the piket mailbox alone) runs its whole plan.
const GRAPH_JAN: Expect = Expect {
    no_dels: &["600", "610"],
    untouched: &[],
    live_after: ALL_ADDS,
    gone_after: &[("700", JAN_CU)],
    all_good: false,
    add_203: Journal::Applied,
    held: None,
};
/// The token endpoint fails: every calendar fails; adds come from the last events read.
const GRAPH_ALL: Expect = Expect {
    no_dels: &["600", "610", "700"],
    untouched: &[],
    live_after: ALL_ADDS,
    gone_after: &[],
    all_good: false,
    add_203: Journal::Applied,
    held: None,
};
/// A transient fault the retries absorb: the whole plan runs.
const ABSORBED: Expect = Expect {
    no_dels: &[],
    untouched: &[],
    live_after: ALL_ADDS,
    gone_after: &[("600", "ext:201"), ("610", "ext:298"), ("700", JAN_CU)],
    all_good: true,
    add_203: Journal::Applied,
    held: None,
};
/// TRiNG `list` of 600 fails: 600 is left alone, 610 and 700 proceed.
const LIST_600: Expect = Expect {
    no_dels: &[],
    untouched: &["600"],
    live_after: &[("610", "ext:202"), ("700", PIET_CU)],
    gone_after: &[("610", "ext:298"), ("700", JAN_CU)],
    all_good: false,
    add_203: Journal::Any,
    held: None,
};
/// Every TRiNG call fails: nothing is written anywhere.
const TRING_DOWN: Expect = Expect {
    no_dels: &[],
    untouched: &["600", "610", "700"],
    live_after: &[],
    gone_after: &[],
    all_good: false,
    add_203: Journal::Any,
    held: None,
};
/// The add of ext:203 to 600 fails; everything else proceeds.
const fn write_203(add_203: Journal, held: Option<Duration>) -> Expect {
    Expect {
        no_dels: &[],
        untouched: &[],
        live_after: &[("610", "ext:202"), ("700", PIET_CU)],
        gone_after: &[("600", "ext:201"), ("610", "ext:298"), ("700", JAN_CU)],
        all_good: false,
        add_203,
        held,
    }
}

fn graph_jan(h: &Harness, kind: GraphFaultKind) {
    h.graph.inject(GraphFault {
        mailbox: Some(mailbox(JAN)),
        kind,
        times: None,
    });
}
fn graph_any(h: &Harness, kind: GraphFaultKind, times: Option<u32>) {
    h.graph.inject(GraphFault {
        mailbox: None,
        kind,
        times,
    });
}
fn tring(h: &Harness, queue: &str, action: Action, kind: FaultKind, times: Option<u32>) {
    h.tring.inject(Fault {
        queue: Some(q(queue)),
        action: Some(action),
        kind,
        times,
    });
}
fn status(status: u16) -> GraphFaultKind {
    GraphFaultKind::Status {
        status,
        retry_after: None,
    }
}

const HTML_502: &str = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "graph 429 with Retry-After, every try",
            setup: |h| {
                graph_jan(
                    h,
                    GraphFaultKind::Throttle {
                        retry_after: Some(1),
                    },
                )
            },
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 429 without Retry-After, every try",
            setup: |h| graph_jan(h, GraphFaultKind::Throttle { retry_after: None }),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 429 with Retry-After, once",
            setup: |h| {
                graph_any(
                    h,
                    GraphFaultKind::Throttle {
                        retry_after: Some(1),
                    },
                    Some(1),
                )
            },
            expect: ABSORBED,
        },
        Case {
            name: "graph 500",
            setup: |h| graph_jan(h, status(500)),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 502",
            setup: |h| graph_jan(h, status(502)),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 503",
            setup: |h| graph_jan(h, status(503)),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 504",
            setup: |h| graph_jan(h, status(504)),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 503 once",
            setup: |h| graph_any(h, status(503), Some(1)),
            expect: ABSORBED,
        },
        Case {
            name: "graph timeout (no answer within the request timeout)",
            setup: |h| graph_jan(h, GraphFaultKind::Delay(Duration::from_secs(2))),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph garbage instead of JSON",
            setup: |h| graph_jan(h, GraphFaultKind::Garbage),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph page 2 missing (nextLink fails)",
            setup: |h| graph_jan(h, GraphFaultKind::FailPage(2)),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph token endpoint down",
            setup: |h| graph_any(h, GraphFaultKind::TokenDown, None),
            expect: GRAPH_ALL,
        },
        Case {
            name: "graph wrong client secret (AADSTS7000215)",
            setup: |h| graph_any(h, GraphFaultKind::WrongSecret, None),
            expect: GRAPH_ALL,
        },
        Case {
            name: "graph expired client secret (AADSTS7000222)",
            setup: |h| graph_any(h, GraphFaultKind::ExpiredSecret, None),
            expect: GRAPH_ALL,
        },
        Case {
            name: "graph 403 application access policy",
            setup: |h| graph_jan(h, GraphFaultKind::AccessDenied),
            expect: GRAPH_JAN,
        },
        Case {
            name: "graph 404 mailbox",
            setup: |h| graph_jan(h, GraphFaultKind::NotFound),
            expect: GRAPH_JAN,
        },
        Case {
            name: "tring list 500",
            setup: |h| tring(h, "600", Action::List, FaultKind::Status(500), None),
            expect: LIST_600,
        },
        Case {
            name: "tring list 503 once",
            setup: |h| tring(h, "600", Action::List, FaultKind::Status(503), Some(1)),
            expect: ABSORBED,
        },
        Case {
            name: "tring list timeout",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::List,
                    FaultKind::Delay(Duration::from_secs(2)),
                    None,
                )
            },
            expect: Expect {
                held: Some(Duration::from_secs(2)),
                ..LIST_600
            },
        },
        Case {
            name: "tring list garbage body",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::List,
                    FaultKind::Garbage("\u{1}\u{2}{[garbage".into()),
                    None,
                )
            },
            expect: LIST_600,
        },
        Case {
            name: "tring list error text with http 200",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::List,
                    FaultKind::ErrorIn200("Internal error".into()),
                    None,
                )
            },
            expect: LIST_600,
        },
        Case {
            name: "tring list html error page",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::List,
                    FaultKind::Garbage(HTML_502.into()),
                    None,
                )
            },
            expect: LIST_600,
        },
        Case {
            name: "tring list connection dropped",
            setup: |h| tring(h, "600", Action::List, FaultKind::DropConnection, None),
            expect: LIST_600,
        },
        Case {
            name: "tring unknown queue",
            setup: |h| {
                tring(
                    h,
                    "610",
                    Action::List,
                    FaultKind::ErrorIn200("Queue 610 not found".into()),
                    None,
                )
            },
            expect: Expect {
                untouched: &["610"],
                live_after: &[("600", "ext:203"), ("700", PIET_CU)],
                gone_after: &[("600", "ext:201"), ("700", JAN_CU)],
                add_203: Journal::Applied,
                ..LIST_600
            },
        },
        Case {
            name: "tring connection refused",
            setup: |h| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port();
                let dead = url::Url::parse(&format!("http://127.0.0.1:{port}/pbx/proxyapi.php"))
                    .expect("url");
                h.pbx
                    .use_alt(Some(h.other_tring_client(Some(dead), TRING_KEY)));
            },
            expect: TRING_DOWN,
        },
        Case {
            name: "tring wrong key",
            setup: |h| {
                h.pbx
                    .use_alt(Some(h.other_tring_client(None, WRONG_TRING_KEY)))
            },
            expect: TRING_DOWN,
        },
        Case {
            name: "tring add 500",
            setup: |h| tring(h, "600", Action::Add, FaultKind::Status(500), Some(1)),
            expect: write_203(Journal::Uncertain, None),
        },
        Case {
            name: "tring add timeout before it was applied",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::Add,
                    FaultKind::Delay(Duration::from_millis(1500)),
                    Some(1),
                )
            },
            expect: write_203(Journal::Uncertain, Some(Duration::from_millis(1500))),
        },
        Case {
            name: "tring add timeout after it was applied",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::Add,
                    FaultKind::ApplyThenTimeout(Duration::from_millis(1500)),
                    Some(1),
                )
            },
            expect: Expect {
                live_after: ALL_ADDS,
                ..write_203(Journal::Uncertain, Some(Duration::from_millis(1500)))
            },
        },
        Case {
            name: "tring add garbage body",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::Add,
                    FaultKind::Garbage("<<<>>>".into()),
                    Some(1),
                )
            },
            expect: write_203(Journal::Uncertain, None),
        },
        Case {
            name: "tring add error text with http 200",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::Add,
                    FaultKind::ErrorIn200("Internal error".into()),
                    Some(1),
                )
            },
            expect: write_203(Journal::Failed, None),
        },
        Case {
            name: "tring add html error page",
            setup: |h| {
                tring(
                    h,
                    "600",
                    Action::Add,
                    FaultKind::Garbage(HTML_502.into()),
                    Some(1),
                )
            },
            expect: write_203(Journal::Uncertain, None),
        },
        Case {
            name: "tring add connection dropped",
            setup: |h| tring(h, "600", Action::Add, FaultKind::DropConnection, Some(1)),
            expect: write_203(Journal::Uncertain, None),
        },
        Case {
            name: "tring del 500",
            setup: |h| tring(h, "600", Action::Del, FaultKind::Status(500), Some(1)),
            expect: Expect {
                live_after: ALL_ADDS,
                gone_after: &[("610", "ext:298"), ("700", JAN_CU)],
                ..write_203(Journal::Applied, None)
            },
        },
    ]
}

/// What one case did, for the table and the figures.
#[derive(Debug, Default)]
struct Row {
    name: &'static str,
    outcome: String,
    /// Dels sent to a queue whose calendars were not read completely (must be 0).
    removals_on_incomplete_reads: usize,
    /// Dels of the hand-made ext:299 from additive 600, in any cycle (must be 0).
    hand_made_removed: usize,
    /// Members rooster added that are live after convergence but not owned (must be 0).
    ownership_lost: usize,
    /// Writes to a queue whose list failed (must be 0).
    writes_to_unreadable: usize,
    problems: Vec<String>,
}

fn journal_203(rows: &[JournalRow]) -> Option<&JournalRow> {
    rows.iter().find(|r| {
        r.intent.queue == q("600")
            && r.intent.member == m("ext:203")
            && r.intent.action == WriteAction::Add
    })
}

fn short(s: &str, n: usize) -> String {
    let s: String = s.chars().take(n).collect();
    s.replace('|', "\\|").replace('\n', " ")
}

async fn run_case(c: &Case) -> Row {
    let e = &c.expect;
    let mut row = Row {
        name: c.name,
        ..Row::default()
    };
    let h = Harness::start().await;
    (c.setup)(&h);
    h.tring.clear_requests();
    let mut rec = h.reconciler().await;
    let report = run_cycle(&mut rec).await;
    let faulty = writes(&h.tring.requests());
    let live = h.live();
    let store = rec.store().expect("store").clone();
    let journal = within(
        "reading the journal",
        10,
        store.journal(h.now - chrono::Duration::hours(1), 100),
    )
    .await
    .expect("journal reads");

    let mut p = Vec::new();
    if report.all_good() != e.all_good {
        p.push(format!(
            "all_good {} (errors {:?})",
            report.all_good(),
            report.errors
        ));
    }
    for (action, queue, ext) in &faulty {
        if *action == Action::Del && e.no_dels.contains(&queue.as_str()) {
            row.removals_on_incomplete_reads += 1;
            p.push(format!("del {ext} from {queue} on an incomplete read"));
        }
        if e.untouched.contains(&queue.as_str()) {
            row.writes_to_unreadable += 1;
            p.push(format!("{action:?} {ext} in unreadable queue {queue}"));
        }
        if *action == Action::Clean {
            p.push(format!("clean of {queue}"));
        }
    }
    for (queue, member) in e.live_after {
        if !live[&q(queue)].contains(&m(member)) {
            p.push(format!(
                "{member} not live in {queue} after the faulty cycle"
            ));
        }
    }
    for (queue, member) in e.gone_after {
        if live[&q(queue)].contains(&m(member)) {
            p.push(format!(
                "{member} still live in {queue} after the faulty cycle"
            ));
        }
    }
    let j = journal_203(&journal).map(|r| r.outcome.as_ref().map(|(o, _)| o.clone()));
    let journal_ok = match e.add_203 {
        Journal::Any => true,
        Journal::Applied => matches!(j, Some(Some(Outcome::Applied))),
        Journal::Failed => matches!(j, Some(Some(Outcome::Failed(_)))),
        Journal::Uncertain => matches!(j, Some(Some(Outcome::Uncertain(_)))),
    };
    if !journal_ok {
        p.push(format!(
            "journal of add ext:203: expected {:?}, got {j:?}",
            e.add_203
        ));
    }
    let cause = report
        .errors
        .first()
        .map(|s| short(s, 90))
        .unwrap_or_else(|| "-".into());

    // Fault cleared: the next cycle settles and converges, the one after writes nothing.
    if let Some(d) = e.held {
        // The simulator still holds the faulty request; let it finish either way so the
        // clean cycle sees a settled queue.
        within(
            "the simulator finishing the held request",
            d.as_secs() + 10,
            h.tring.idle(),
        )
        .await;
    }
    h.clear_faults();
    h.tring.clear_requests();
    let clean = run_cycle(&mut rec).await;
    let clean_writes = writes(&h.tring.requests());
    if !clean.all_good() {
        p.push(format!("fault-free cycle not all good: {:?}", clean.errors));
    }
    let live_now = h.live();
    let owned_now = owned(&rec).await;
    if live_now != converged_live() {
        p.push(format!("not converged: live {live_now:?}"));
    }
    if owned_now != converged_owned() {
        p.push(format!("not converged: owned {owned_now:?}"));
    }
    for (queue, members) in converged_owned() {
        let owned_q = owned_now.get(&queue).cloned().unwrap_or_default();
        let live_q = live_now.get(&queue).cloned().unwrap_or_default();
        row.ownership_lost += members
            .iter()
            .filter(|x| live_q.contains(x) && !owned_q.contains(x))
            .count();
    }
    h.tring.clear_requests();
    let _ = run_cycle(&mut rec).await;
    let idle = writes(&h.tring.requests());
    if !idle.is_empty() {
        p.push(format!("rule 6: writes after convergence: {idle:?}"));
    }
    row.hand_made_removed = faulty
        .iter()
        .chain(&clean_writes)
        .chain(&idle)
        .filter(|(a, queue, ext)| *a == Action::Del && queue == "600" && ext == "299")
        .count();

    row.outcome = format!(
        "adds {} dels {} refused {} all_good {}; `{cause}`; then {} writes → converged",
        report.adds,
        report.dels,
        report.refused,
        report.all_good(),
        clean_writes.len(),
    );
    row.problems = p;
    drop(rec);
    drop(store);
    h.shutdown().await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix() {
    // Four cases at a time, in this task (each case has its own simulators and store).
    let cases = cases();
    let run = futures::stream::iter(cases.iter().enumerate())
        .map(|(i, c)| async move {
            let row = std::panic::AssertUnwindSafe(run_case(c))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Row {
                    name: c.name,
                    outcome: "panicked".into(),
                    problems: vec![format!(
                        "panicked: {}",
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    )],
                    ..Row::default()
                });
            (i, row)
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    let mut done = within("the fault matrix", 300, run).await;
    done.sort_by_key(|(i, _)| *i);
    let rows: Vec<Option<Row>> = done.into_iter().map(|(_, r)| Some(r)).collect();
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect();

    println!("| # | case | outcome (faulty cycle; fault-free cycle) | result |");
    println!("|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        let result = if r.problems.is_empty() {
            "ok".to_owned()
        } else {
            short(&r.problems.join("; "), 400)
        };
        println!("| {} | {} | {} | {} |", i + 1, r.name, r.outcome, result);
    }
    let sum = |f: fn(&Row) -> usize| rows.iter().map(f).sum::<usize>();
    let figures = [
        ("cases", rows.len()),
        (
            "removals made on incomplete reads",
            sum(|r| r.removals_on_incomplete_reads),
        ),
        (
            "hand-made members removed in additive mode",
            sum(|r| r.hand_made_removed),
        ),
        ("ownership lost", sum(|r| r.ownership_lost)),
        (
            "writes to unreadable queues",
            sum(|r| r.writes_to_unreadable),
        ),
        (
            "cases failing",
            rows.iter().filter(|r| !r.problems.is_empty()).count(),
        ),
    ];
    for (k, v) in figures {
        println!("{k}: {v}");
    }
    let failing: Vec<String> = rows
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| format!("{}: {}", r.name, r.problems.join("; ")))
        .collect();
    assert!(failing.is_empty(), "failing cases:\n{}", failing.join("\n"));
    assert_eq!(figures[1].1 + figures[2].1 + figures[3].1 + figures[4].1, 0);
    assert_no_secrets_logged();
}

// ---------------------------------------------------------------------------------------
// kill -9 at each step of a write (SPEC §3 rule 7), simulated in-process: the cycle future
// is dropped at the chosen step (nothing after that point runs, as with SIGKILL), the store
// is dropped (its lock must be released), and a new reconciler on a reopened store runs.

use rooster::cycle::Mode;
use rooster::plan::ActionKind;
use tokio_util::sync::CancellationToken;

struct Crash {
    name: &'static str,
    hang: Hang,
    /// Writes the restart cycle must (true) or must not (false) send.
    restart_writes: &'static [(Action, &'static str, &'static str, bool)],
    /// How the open intent of the crashed write must be settled (`None`: no open intent).
    /// Other queues' writes in flight at the crash may leave open intents too; each of those
    /// must be settled by what the restart's `list` shows.
    settled_applied: Option<bool>,
}

impl Crash {
    /// The queue and member of the write the crash interrupts, if it is a write.
    fn write(&self) -> Option<(&rooster::model::QueueNo, &rooster::model::Member)> {
        match &self.hang {
            Hang::List(_) => None,
            Hang::BeforeWrite(_, q, m) | Hang::AfterWrite(_, q, m) => Some((q, m)),
        }
    }
}

async fn crash_and_restart(c: &Crash) -> String {
    let h = Harness::start().await;
    h.pbx.hang_at(Some(c.hang.clone()));
    let mut rec = h.reconciler().await;
    let cancel = CancellationToken::new();
    let reaching = format!("{}: reaching the crash point", c.name);
    within(&reaching, 30, async {
        tokio::select! {
            r = rec.cycle(Mode::Full, &cancel) => panic!("{}: the cycle ended before the crash point: {r:?}", c.name),
            _ = h.pbx.hung.notified() => {}
        }
    })
    .await;
    // The process is gone: everything it held goes with it.
    drop(rec);
    h.pbx.hang_at(None);
    let before = h.live();
    h.tring.clear_requests();
    h.pbx.record_lists();

    let mut rec = h.reconciler().await; // panics if the lock was not released
    let open = within(
        "reading open intents",
        10,
        rec.store().expect("store").open_intents(),
    )
    .await
    .expect("open intents read");
    let report = run_cycle(&mut rec).await;
    let sent = writes(&h.tring.requests());
    assert!(report.all_good(), "{}: {:?}", c.name, report.errors);
    for (action, queue, ext, must) in c.restart_writes {
        let was = sent
            .iter()
            .any(|(a, qq, e)| a == action && qq == queue && e == ext);
        assert_eq!(
            was, *must,
            "{}: restart cycle sent {action:?} {ext} to {queue}: {was} (writes {sent:?})",
            c.name
        );
    }
    let journal = within(
        "reading the journal",
        10,
        rec.store()
            .expect("store")
            .journal(h.now - chrono::Duration::hours(1), 100),
    )
    .await
    .expect("journal");
    let settled = |id| {
        journal
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.settlement.as_ref())
            .unwrap_or_else(|| panic!("{}: open intent {id:?} was not settled", c.name))
            .applied
    };
    let crashed: Vec<_> = open
        .iter()
        .filter(|(_, i)| c.write() == Some((&i.queue, &i.member)))
        .collect();
    match c.settled_applied {
        None => assert!(open.is_empty(), "{}: open intents {open:?}", c.name),
        Some(applied) => {
            assert_eq!(crashed.len(), 1, "{}: open intents {open:?}", c.name);
            assert_eq!(settled(crashed[0].0), applied, "{}", c.name);
        }
    }
    // Writes to other queues that were in flight when the process died: each settled by
    // whether TRiNG had applied it, as the restart's `list` of its queue showed. (Not `before`:
    // a request sent just before the crash may reach the simulator just after it was read.)
    let listed = h.pbx.take_lists();
    for (id, i) in &open {
        let (_, seen) = listed
            .iter()
            .find(|(q, _)| *q == i.queue)
            .unwrap_or_else(|| panic!("{}: the restart did not list {}", c.name, i.queue));
        let present = seen.contains(&i.member);
        let applied = match i.action {
            WriteAction::Add => present,
            WriteAction::Del => !present,
        };
        assert_eq!(settled(*id), applied, "{}: {i:?}", c.name);
    }
    assert_eq!(h.live(), converged_live(), "{}", c.name);
    let own = owned(&rec).await;
    assert_eq!(own, converged_owned(), "{}: ownership", c.name);
    let outcome = format!(
        "live before restart: 600 {:?}; open intents {}; restart cycle sent {:?}; converged, owned {:?}",
        before[&q("600")],
        open.len(),
        sent,
        own[&q("600")]
    );
    drop(rec);
    h.shutdown().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_at_each_step_of_a_write_loses_no_ownership() {
    let add = |hang: fn(ActionKind, rooster::model::QueueNo, rooster::model::Member) -> Hang| {
        hang(ActionKind::Add, q("600"), m("ext:203"))
    };
    let del = |hang: fn(ActionKind, rooster::model::QueueNo, rooster::model::Member) -> Hang| {
        hang(ActionKind::Del, q("600"), m("ext:201"))
    };
    let crashes = [
        Crash {
            name: "before the intent (crash while listing)",
            hang: Hang::List(q("600")),
            restart_writes: &[
                (Action::Add, "600", "203", true),
                (Action::Del, "600", "201", true),
            ],
            settled_applied: None,
        },
        Crash {
            name: "add: after the intent, before TRiNG",
            hang: add(Hang::BeforeWrite),
            restart_writes: &[(Action::Add, "600", "203", true)],
            settled_applied: Some(false),
        },
        Crash {
            name: "add: after TRiNG applied, before the outcome",
            hang: add(Hang::AfterWrite),
            restart_writes: &[(Action::Add, "600", "203", false)],
            settled_applied: Some(true),
        },
        Crash {
            // A queue's writes go in order, so the add before it has its outcome recorded:
            // the restart must not send it again.
            name: "del: after the intent, before TRiNG (the add before it recorded)",
            hang: del(Hang::BeforeWrite),
            restart_writes: &[
                (Action::Add, "600", "203", false),
                (Action::Del, "600", "201", true),
            ],
            settled_applied: Some(false),
        },
        Crash {
            name: "del: after TRiNG applied, before the outcome",
            hang: del(Hang::AfterWrite),
            restart_writes: &[(Action::Del, "600", "201", false)],
            settled_applied: Some(true),
        },
        Crash {
            // Queues are written side by side: when 610's add hangs, 600's and 700's writes
            // are wherever they got to. Whatever that was, every open intent is settled by the
            // restart's `list` and the queues converge (checked below for every case).
            name: "while other queues' writes are in flight (crash at 610's add)",
            hang: Hang::BeforeWrite(ActionKind::Add, q("610"), m("ext:202")),
            restart_writes: &[(Action::Add, "610", "202", true)],
            settled_applied: Some(false),
        },
    ];
    for c in &crashes {
        let outcome = crash_and_restart(c).await;
        println!("| kill -9 {} | {outcome} |", c.name);
    }
    assert_no_secrets_logged();
}

// ---------------------------------------------------------------------------------------
// SIGTERM mid-cycle (SPEC §5): the write in flight completes and is recorded, no write
// starts after the signal, and the daemon returns within 5 s.

use rooster::daemon::{self, NoNotifier};
use rooster::store::{OpenMode, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_write_finishes_and_records_the_write() {
    let h = Harness::start().await;
    // The add answers after 300 ms (within the 500 ms request timeout): in flight when the
    // signal comes.
    h.tring.inject(Fault {
        queue: Some(q("600")),
        action: Some(Action::Add),
        kind: FaultKind::Delay(Duration::from_millis(300)),
        times: Some(1),
    });
    let mut rec = h.reconciler().await;
    let cancel = CancellationToken::new();
    let signal = async {
        let add_sent = || {
            writes(&h.tring.requests())
                .iter()
                .any(|(a, qq, _)| *a == Action::Add && qq == "600")
        };
        h.tring.until(add_sent).await;
        let sent = writes(&h.tring.requests()).len();
        cancel.cancel();
        (std::time::Instant::now(), sent)
    };
    let (run, (signalled, sent_at_signal)) =
        within("the daemon with a signal mid-write", 20, async {
            tokio::join!(daemon::run(&mut rec, &NoNotifier, cancel.clone()), signal)
        })
        .await;
    let stopped_after = signalled.elapsed();
    run.expect("the daemon stops cleanly");
    assert!(
        stopped_after < Duration::from_secs(5),
        "stopped {stopped_after:?} after the signal"
    );
    // Queue 600's plan is `add 203` then `del 201`: the signal came during the add, so the
    // del must not start. (Other queues write side by side and may each finish the one write
    // they had started; none has a second write to make.)
    let sent = writes(&h.tring.requests());
    assert!(
        !sent
            .iter()
            .any(|(a, qq, e)| *a == Action::Del && qq == "600" && e == "201"),
        "a write started after the signal: {sent:?}"
    );
    assert!(h.tring.members(&q("600")).contains(&m("ext:203")));
    let journal = within(
        "journal",
        10,
        rec.store()
            .expect("store")
            .journal(h.now - chrono::Duration::hours(1), 100),
    )
    .await
    .expect("journal");
    let row = journal_203(&journal).expect("the add in flight has an intent");
    assert!(
        matches!(row.outcome, Some((Outcome::Applied, _))),
        "the write in flight was not recorded as applied: {:?}",
        row.outcome
    );
    assert!(owned(&rec).await[&q("600")].contains(&m("ext:203")));
    let open = within(
        "open intents",
        10,
        rec.store().expect("store").open_intents(),
    )
    .await
    .expect("open intents");
    assert!(open.is_empty(), "writes left without an outcome: {open:?}");
    println!(
        "| SIGTERM while `add ext:203` is in flight | write completed and recorded applied, the queue's next write not started; {sent_at_signal} writes seen at the signal, {} in all, none without an outcome; stopped {:?} after the signal |",
        sent.len(),
        stopped_after
    );
    drop(rec);
    h.shutdown().await;
    assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_tring_never_answers_stops_after_the_grace() {
    let h = Harness::start().await;
    // TRiNG applies the add and the reply never comes (the client's own timeout would end
    // it, so the PBX wrapper holds it forever): the 5 s grace (SPEC §5) must end the wait.
    h.pbx.hang_at(Some(Hang::AfterWrite(
        ActionKind::Add,
        q("600"),
        m("ext:203"),
    )));
    let mut rec = h.reconciler().await;
    let cancel = CancellationToken::new();
    let signal = async {
        h.pbx.hung.notified().await;
        cancel.cancel();
        std::time::Instant::now()
    };
    let (run, signalled) = within("the daemon with a write that never answers", 30, async {
        tokio::join!(daemon::run(&mut rec, &NoNotifier, cancel.clone()), signal)
    })
    .await;
    let stopped_after = signalled.elapsed();
    run.expect("the daemon stops cleanly");
    // SPEC §5: wait at most 5 s for the reply, record it, and be gone within 5 s.
    assert!(
        stopped_after < Duration::from_secs(5),
        "stopped {stopped_after:?} after the signal"
    );
    let journal = within(
        "journal",
        10,
        rec.store()
            .expect("store")
            .journal(h.now - chrono::Duration::hours(1), 100),
    )
    .await
    .expect("journal");
    let row = journal_203(&journal).expect("the add in flight has an intent");
    assert!(
        matches!(row.outcome, Some((Outcome::Uncertain(_), _))),
        "{:?}",
        row.outcome
    );
    println!(
        "| SIGTERM while TRiNG never answers | recorded uncertain; stopped {stopped_after:?} after the signal |"
    );
    // The next start settles it as owned (TRiNG had applied it).
    drop(rec);
    h.pbx.hang_at(None);
    let mut rec = h.reconciler().await;
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(owned(&rec).await, converged_owned());
    drop(rec);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// State database faults: the store cannot be opened → a clear error and not one request to
// TRiNG or Graph (without its journal rooster must not write, SPEC §3 rules 7 and 8).

/// What `rooster once` does first: open the state as writer; only then touch TRiNG.
async fn once_like(h: &Harness) -> Result<rooster::cycle::CycleReport, StoreError> {
    let store = within("open", 10, Store::open(&h.db, OpenMode::Writer)).await?;
    let mut rec = within(
        "reconciler",
        10,
        rooster::cycle::Reconciler::new(
            h.cfg.clone(),
            h.graph_client(),
            h.pbx.clone(),
            rooster::cycle::SystemClock,
            Some(store),
            false,
        ),
    )
    .await?;
    within(
        "cycle",
        30,
        rec.cycle(Mode::Full, &CancellationToken::new()),
    )
    .await
}

fn assert_nothing_sent(h: &Harness, what: &str) {
    assert_eq!(
        h.tring.requests(),
        vec![],
        "{what}: tring requests were made"
    );
    assert_eq!(
        h.graph.requests(),
        vec![],
        "{what}: graph requests were made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_locked_by_another_process_sends_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let h = Harness::start().await;
    let lock = rooster::store::lock_path(&h.db);
    let Ok(mut child) = Command::new("flock")
        .arg("--nonblock")
        .arg(&lock)
        .args(["sh", "-c", "echo ready; read _"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: flock(1) is not available");
        return;
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let line = within(
        "the lock-holding child",
        10,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("join")
    .expect("read");
    assert_eq!(line.trim(), "ready", "the child could not take the lock");
    let err = once_like(&h).await.expect_err("a locked state must refuse");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("in use by another rooster"),
        "{err}"
    );
    assert_nothing_sent(&h, "locked");
    drop(child.stdin.take());
    let _ = within(
        "child exit",
        10,
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    println!("| state locked by another process | `{err}`; 0 requests |");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_read_only_sends_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let h = Harness::start().await;
    std::fs::set_permissions(&h.db, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    // Root ignores the mode; the immutable flag stops root too.
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&h.db)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let result = once_like(&h).await;
    if immutable {
        let _ = Command::new("chattr").arg("-i").arg(&h.db).status();
    }
    match result {
        Err(err) => {
            assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
            assert_nothing_sent(&h, "read-only");
            println!("| state read-only | `{err}`; 0 requests |");
        }
        Ok(_) => eprintln!("skipped: running as root without chattr, the file stayed writable"),
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_corrupt_sends_nothing() {
    let h = Harness::start().await;
    for suffix in ["-wal", "-shm"] {
        let mut p = h.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    std::fs::write(
        &h.db,
        b"this is not a sqlite database, it is garbage \x00\x01\x02".repeat(200),
    )
    .expect("write garbage");
    let err = once_like(&h)
        .await
        .expect_err("a corrupt state must refuse");
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err:?}");
    assert_nothing_sent(&h, "corrupt");
    println!("| state corrupt (garbage file) | `{err}`; 0 requests |");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_disk_full_never_writes_without_an_intent() {
    use std::process::Command;
    let h = Harness::start().await;
    let mnt = h.dir.path().join("full");
    std::fs::create_dir(&mnt).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (disk full not simulated)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let db = mnt.join("rooster.db");
    std::fs::copy(&h.db, &db).expect("copy the seeded state");
    let store = within("open", 10, Store::open(&db, OpenMode::Writer))
        .await
        .expect("opens");
    // Fill what is left of the file system.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|_| f.sync_data()).is_ok() {}
    }
    let mut rec = within(
        "reconciler",
        10,
        rooster::cycle::Reconciler::new(
            h.cfg.clone(),
            h.graph_client(),
            h.pbx.clone(),
            rooster::cycle::SystemClock,
            Some(store.clone()),
            false,
        ),
    )
    .await
    .expect("reconciler");
    let result = within(
        "cycle on a full disk",
        30,
        rec.cycle(Mode::Full, &CancellationToken::new()),
    )
    .await;
    let sent = writes(&h.tring.requests());
    let outcome = match &result {
        Err(e) => format!("cycle failed: `{}`", short(&e.to_string(), 120)),
        Ok(r) => format!(
            "cycle ran: adds {} dels {} errors {:?}",
            r.adds, r.dels, r.errors
        ),
    };
    std::fs::remove_file(&filler).expect("free the space");
    // Every write TRiNG saw has its intent in the journal.
    let journal = within(
        "journal",
        10,
        store.journal(h.now - chrono::Duration::hours(1), 100),
    )
    .await
    .expect("journal");
    for (action, queue, ext) in &sent {
        let has_intent = journal.iter().any(|r| {
            r.intent.queue.as_str() == queue
                && r.intent.member.id() == ext
                && matches!(
                    (action, r.intent.action),
                    (Action::Add, WriteAction::Add) | (Action::Del, WriteAction::Del)
                )
        });
        assert!(
            has_intent,
            "{action:?} {ext} to {queue} was sent without an intent"
        );
    }
    // Space again: the next cycle converges.
    h.tring.clear_requests();
    let report = run_cycle(&mut rec).await;
    assert!(report.all_good(), "{:?}", report.errors);
    assert_eq!(h.live(), converged_live());
    assert_eq!(owned(&rec).await, converged_owned());
    println!(
        "| state disk full (256 KiB tmpfs) | {outcome}; {} writes sent, each with an intent; converged after space freed |",
        sent.len()
    );
    drop(rec);
    within("close", 10, store.close()).await;
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Skipped-event warnings (SPEC §4): said once per event, and the daemon's memory of what it
// said holds only the warnings that still apply, so it does not grow for as long as it runs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_event_is_warned_once_and_again_only_when_it_comes_back() {
    let h = Harness::start().await;
    let piket = events(h.now)[PIKET].clone();
    let unknown = event(
        "piket-unknown",
        "piket Zwaantje Onbekend",
        &[],
        h.now + chrono::Duration::hours(1),
        h.now + chrono::Duration::hours(3),
    );
    let with_unknown = || [piket.clone(), vec![unknown.clone()]].concat();
    let said = || {
        log_text()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("Zwaantje Onbekend"))
            .count()
    };
    h.graph.set_events(&mailbox(PIKET), None, with_unknown());
    let mut rec = h.reconciler().await;
    for _ in 0..3 {
        run_cycle(&mut rec).await;
    }
    assert_eq!(said(), 1, "warned once over three cycles");
    // The event is deleted: nothing to say, and nothing remembered.
    h.graph.set_events(&mailbox(PIKET), None, piket.clone());
    run_cycle(&mut rec).await;
    // Someone puts it back: it is news again, said once more.
    h.graph.set_events(&mailbox(PIKET), None, with_unknown());
    run_cycle(&mut rec).await;
    run_cycle(&mut rec).await;
    assert_eq!(said(), 2, "warned again once the event came back");
    drop(rec);
    h.shutdown().await;
}
