//! SPEC §3 at the seams where writes fail: the executor's keep_last re-check (rule 3), a
//! permanent refusal held back (rule 9), the daemon's dry run over several polls (rule 5),
//! and boundary cycles taking up a queue whose write failed (SPEC §5).
//!
//! Against the TRiNG simulator over loopback and the real client, as `rooster run` builds
//! them; the expected memberships are written out literally, never computed by rooster.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use common::*;
use rooster::cycle::{Clock, Mode, Reconciler};
use rooster::daemon::{self, NoNotifier};
use rooster::sim::tring::{Action, Fault, FaultKind};
use rooster::store::{OpenMode, Store};
use tokio_util::sync::CancellationToken;

/// A clock the test sets by hand.
#[derive(Clone)]
struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    fn at(t: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(AtomicI64::new(t.timestamp_millis())))
    }
    fn advance(&self, d: chrono::Duration) {
        self.0.fetch_add(d.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).expect("in range")
    }
}

/// A clock that moves three minutes (more than the harness's poll interval) on every
/// reading: the daemon finds every poll due at once, so several polls run in well under a
/// second of wall time without sleeping.
#[derive(Clone)]
struct SteppingClock(Arc<AtomicI64>);

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = self.0.fetch_add(180_000, Ordering::SeqCst);
        DateTime::from_timestamp_millis(ms).expect("in range")
    }
}

async fn reconciler_with<K: Clock>(
    h: &Harness,
    clock: K,
    store: Store,
    dry_run: bool,
) -> Reconciler<rooster::graph::GraphClient, TestPbx, K> {
    within(
        "building the reconciler",
        10,
        Reconciler::new(
            h.cfg.clone(),
            h.graph_client(),
            h.pbx.clone(),
            clock,
            Some(store),
            dry_run,
        ),
    )
    .await
    .expect("reconciler builds")
}

async fn full_cycle<C, P, K>(rec: &mut Reconciler<C, P, K>) -> rooster::cycle::CycleReport
where
    C: rooster::cycle::Calendars,
    P: rooster::cycle::Pbx,
    K: Clock,
{
    within(
        "a cycle",
        30,
        rec.cycle(Mode::Full, &CancellationToken::new()),
    )
    .await
    .expect("the cycle's store writes succeed")
}

fn adds_to(h: &Harness, queue: &str, member: &str) -> usize {
    writes(&h.tring.requests())
        .into_iter()
        .filter(|(a, q, e)| *a == Action::Add && q == queue && e == member)
        .count()
}

fn dels_in(h: &Harness, queue: &str) -> usize {
    writes(&h.tring.requests())
        .into_iter()
        .filter(|(a, q, _)| *a == Action::Del && q == queue)
        .count()
}

/// TRiNG refuses every add of Piet's mobile to 700 for good (`times`: how often; `None`:
/// always), as it does for a number that is no custom destination.
fn refuse_piets_mobile(h: &Harness, times: Option<u32>) {
    h.tring.inject(Fault {
        queue: Some(q("700")),
        action: Some(Action::Add),
        kind: FaultKind::ErrorIn200(PIET_UNKNOWN.clone()),
        times,
    });
}

/// TRiNG's answer to an add of a number it has no custom destination for.
static PIET_UNKNOWN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("Custom destination {PIET_MOBILE} not found"));

/// The tests that make TRiNG refuse Piet's mobile for good all log the same ERROR; the one
/// that counts it holds this, and so do the others, so the lines it counts are its own.
static REFUSAL_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The on-call hand-over of the harness: queue 700 (exclusive, keep_last) holds Jan's mobile,
/// and the rota now names Piet. Each way Piet's add can fail must leave Jan's mobile in the
/// queue: TRiNG does not know Piet's number (a permanent refusal), answers 500, or drops the
/// connection after the request left (uncertain).
#[tokio::test]
async fn a_hand_over_whose_new_member_is_not_added_leaves_the_old_member() {
    let _log = REFUSAL_LOG.lock().await;
    let cases = [
        (
            "custom destination unknown",
            FaultKind::ErrorIn200(PIET_UNKNOWN.clone()),
        ),
        ("http 500", FaultKind::Status(500)),
        ("connection dropped", FaultKind::DropConnection),
    ];
    for (case, fault) in cases {
        let h = Harness::start().await;
        h.tring.inject(Fault {
            queue: Some(q("700")),
            action: Some(Action::Add),
            kind: fault,
            times: None,
        });
        let mut rec = h.reconciler().await;
        let report = run_cycle(&mut rec).await;
        assert_eq!(
            h.tring.members(&q("700")),
            vec![m(&format!("cu:{JAN_MOBILE}"))],
            "{case}: the on-call queue must keep Jan's mobile"
        );
        assert_eq!(dels_in(&h, "700"), 0, "{case}: no del may be sent");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("queue 700: removal of cu:0612345678 refused")),
            "{case}: the refusal is reported: {:?}",
            report.errors
        );
        assert!(!report.all_good(), "{case}: `once` exits 1");
        // Once Piet's add goes through, the hand-over completes. (A permanent refusal is
        // held back for now: the next test covers when it is tried again.)
        if case == "custom destination unknown" {
            h.shutdown().await;
            continue;
        }
        h.clear_faults();
        run_cycle(&mut rec).await;
        assert_eq!(
            h.tring.members(&q("700")),
            vec![m(&format!("cu:{PIET_MOBILE}"))],
            "{case}: after the fault the hand-over completes"
        );
        h.shutdown().await;
    }
}

/// SPEC §3 rule 9: TRiNG refusing Piet's mobile for good is one ERROR, shown by `status`,
/// not a request every cycle; `once` exits 1 while it stands; an hour later, or when the
/// calendars feeding the queue change, it is tried again.
#[tokio::test]
async fn a_permanently_refused_add_is_sent_once_not_every_cycle() {
    let _log = REFUSAL_LOG.lock().await;
    let from = log_len();
    let h = Harness::start().await;
    refuse_piets_mobile(&h, None);
    let clock = ManualClock::at(Utc::now());
    let store = h.open_store().await.expect("store opens");
    let mut rec = reconciler_with(&h, clock.clone(), store, false).await;
    for n in 1..=3 {
        let report = full_cycle(&mut rec).await;
        assert_eq!(report.held, 1, "cycle {n}: the add is held back");
        assert!(
            !report.all_good(),
            "cycle {n}: `once` exits 1 while it stands"
        );
        clock.advance(chrono::Duration::minutes(2));
    }
    assert_eq!(
        adds_to(&h, "700", PIET_MOBILE),
        1,
        "the refused add is sent once, not every cycle"
    );
    let held = rec
        .store()
        .expect("store")
        .held_writes()
        .await
        .expect("held writes read");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].member, m(&format!("cu:{PIET_MOBILE}")));
    assert!(held[0].answer.contains("not found"), "{:?}", held[0].answer);
    let refused_lines: Vec<String> = log_since(from)
        .into_iter()
        .filter(|l| l.contains("refused the write for a reason retrying cannot fix"))
        .collect();
    assert_eq!(
        refused_lines.len(),
        1,
        "one ERROR for the refusal, not one per cycle: {refused_lines:#?}"
    );
    for part in [
        "ERROR",
        "queue=700",
        &format!("member=cu:{PIET_MOBILE}"),
        "Piet Jansen",
        "not found",
    ] {
        assert!(
            refused_lines[0].contains(part),
            "{part:?} in {refused_lines:?}"
        );
    }

    // `status` shows the hold (it reads the state beside the daemon).
    let status = within(
        "status",
        30,
        rooster::commands::status_report(&h.cfg, &secrets(), clock.now()),
    )
    .await
    .expect("status runs");
    let piket = status
        .queues
        .iter()
        .find(|s| s.queue == q("700"))
        .expect("queue 700 in status");
    assert_eq!(piket.held.len(), 1, "{:?}", piket.held);
    assert_eq!(piket.held[0].member, m(&format!("cu:{PIET_MOBILE}")));
    let mut text = Vec::new();
    rooster::commands::Report::render(&status, &mut text).expect("renders");
    let text = String::from_utf8(text).expect("utf-8");
    assert!(
        text.contains(&format!(
            "  held     add cu:{PIET_MOBILE} (Piet Jansen): TRiNG refused it for good"
        )),
        "{text}"
    );

    // Still held just before the hour is up (59 minutes after the refusal)...
    clock.advance(chrono::Duration::minutes(53));
    full_cycle(&mut rec).await;
    assert_eq!(adds_to(&h, "700", PIET_MOBILE), 1, "held for the hour");
    // ...and an hour after the refusal it is tried again (and refused again: held anew).
    clock.advance(chrono::Duration::minutes(2));
    full_cycle(&mut rec).await;
    assert_eq!(adds_to(&h, "700", PIET_MOBILE), 2, "retried after an hour");

    // The calendar feeding the queue changes: tried again at once; now TRiNG takes it.
    h.clear_faults();
    let mut piket = events(h.now)[PIKET].clone();
    piket[0].subject = "piket Piet Jansen (swapped)".into();
    h.graph.set_events(&mailbox(PIKET), None, piket);
    clock.advance(chrono::Duration::minutes(2));
    let report = full_cycle(&mut rec).await;
    assert_eq!(
        adds_to(&h, "700", PIET_MOBILE),
        3,
        "retried when the rota changed"
    );
    assert_eq!(report.held, 0);
    assert_eq!(
        h.tring.members(&q("700")),
        vec![m(&format!("cu:{PIET_MOBILE}"))]
    );
    let held = rec
        .store()
        .expect("store")
        .held_writes()
        .await
        .expect("read");
    assert!(
        held.is_empty(),
        "the hold is gone once the add landed: {held:?}"
    );
    h.shutdown().await;
}

/// SPEC §3 rule 5 for the daemon: `run --dry-run` beside an existing state reads every poll
/// and writes nothing, neither to TRiNG nor to the state, for as many polls as it runs.
#[tokio::test]
async fn the_daemon_in_dry_run_survives_many_polls_and_writes_nothing() {
    let h = Harness::start().await;
    let before = {
        let s = h.open_store().await.expect("store");
        let snapshot = (
            s.owned_all().await.expect("owned"),
            s.last_cycle().await.expect("cycle").map(|c| c.id),
            s.journal(h.now - chrono::Duration::days(1), 1000)
                .await
                .expect("journal")
                .len(),
        );
        s.close().await;
        snapshot
    };
    let store = within(
        "opening the state read-only",
        10,
        Store::open(&h.db, OpenMode::ReadOnly),
    )
    .await
    .expect("opens read-only");
    let clock = SteppingClock(Arc::new(AtomicI64::new(h.now.timestamp_millis())));
    let mut rec = reconciler_with(&h, clock, store, true).await;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let daemon = tokio::spawn(async move { daemon::run(&mut rec, &NoNotifier, stop).await });
    // Five polls: each lists the three queues.
    let five_polls = h.tring.until(|| {
        h.tring
            .requests()
            .iter()
            .filter(|r| r.action == Some(Action::List))
            .count()
            >= 15
    });
    let mut daemon = daemon;
    within("five dry-run polls", 30, async {
        tokio::select! {
            () = five_polls => {}
            r = &mut daemon => panic!("the dry-run daemon stopped early: {r:?}"),
        }
    })
    .await;
    cancel.cancel();
    within("the daemon stopping", 10, daemon)
        .await
        .expect("daemon task")
        .expect("the dry-run daemon ends without error");
    assert!(writes(&h.tring.requests()).is_empty(), "no TRiNG write");
    let s = h.open_store().await.expect("store");
    let after = (
        s.owned_all().await.expect("owned"),
        s.last_cycle().await.expect("cycle").map(|c| c.id),
        s.journal(h.now - chrono::Duration::days(1), 1000)
            .await
            .expect("journal")
            .len(),
    );
    assert_eq!(before, after, "the state is unchanged");
    h.shutdown().await;
}

/// SPEC §5: a boundary cycle whose write failed leaves the queue to be taken up by the next
/// boundary cycle, not by the next full poll.
#[tokio::test]
async fn a_boundary_write_that_failed_is_retried_at_the_next_boundary() {
    let h = Harness::start().await;
    // Whole seconds: the clock and Graph's dateTime strings must name the same instants.
    let t0 = DateTime::from_timestamp(h.now.timestamp(), 0).expect("in range");
    let start = t0 + chrono::Duration::minutes(30);
    let shift = |id: &str, s, e| event(id, "Sales", &["Sales"], s, e);
    // Anouk's sales shift starts in 30 minutes; a second event of hers ends at +31 minutes,
    // which makes a second boundary for the retry.
    h.graph.set_events(
        &mailbox(ANOUK),
        None,
        vec![
            shift("anouk-s", start, start + chrono::Duration::hours(2)),
            event(
                "anouk-x",
                "Support",
                &["Support"],
                t0,
                start + chrono::Duration::minutes(1),
            ),
        ],
    );
    let clock = ManualClock::at(t0);
    let store = h.open_store().await.expect("store");
    let mut rec = reconciler_with(&h, clock.clone(), store, false).await;
    full_cycle(&mut rec).await;
    assert!(!h.tring.members(&q("610")).contains(&m("ext:203")));

    h.tring.inject(Fault {
        queue: Some(q("610")),
        action: Some(Action::Add),
        kind: FaultKind::Status(500),
        times: Some(1),
    });
    clock.advance(chrono::Duration::minutes(30));
    let report = within(
        "a boundary cycle",
        30,
        rec.cycle(Mode::Boundary, &CancellationToken::new()),
    )
    .await
    .expect("cycle");
    assert!(!report.all_good(), "the add failed");
    assert!(!h.tring.members(&q("610")).contains(&m("ext:203")));

    // The next boundary (another queue's) takes queue 610 up again.
    clock.advance(chrono::Duration::minutes(1));
    within(
        "a boundary cycle",
        30,
        rec.cycle(Mode::Boundary, &CancellationToken::new()),
    )
    .await
    .expect("cycle");
    assert!(
        h.tring.members(&q("610")).contains(&m("ext:203")),
        "the failed add is retried at the next boundary"
    );
    h.shutdown().await;
}

/// SPEC §3 rule 9: a write held back is tried again once the config changes (the admin
/// registered the number, or corrected the config, and restarted rooster).
#[tokio::test]
async fn a_held_write_is_tried_again_when_the_config_changes() {
    let _log = REFUSAL_LOG.lock().await;
    let h = Harness::start().await;
    refuse_piets_mobile(&h, Some(1));
    let clock = ManualClock::at(Utc::now());
    let store = h.open_store().await.expect("store opens");
    let mut rec = reconciler_with(&h, clock.clone(), store, false).await;
    assert_eq!(full_cycle(&mut rec).await.held, 1);
    assert_eq!(
        full_cycle(&mut rec).await.held,
        1,
        "held while nothing changed"
    );
    assert_eq!(adds_to(&h, "700", PIET_MOBILE), 1);
    drop(rec);

    // The restart with an edited config: the hold no longer applies.
    let mut cfg = (*h.cfg).clone();
    cfg.queues[2].name = "Piket (24/7)".into();
    let store = h.open_store().await.expect("store opens");
    let mut rec = within(
        "building the reconciler",
        10,
        Reconciler::new(
            std::sync::Arc::new(cfg),
            h.graph_client(),
            h.pbx.clone(),
            clock.clone(),
            Some(store),
            false,
        ),
    )
    .await
    .expect("reconciler builds");
    let report = full_cycle(&mut rec).await;
    assert_eq!(
        adds_to(&h, "700", PIET_MOBILE),
        2,
        "tried again after the change"
    );
    assert_eq!(report.held, 0);
    assert_eq!(
        h.tring.members(&q("700")),
        vec![m(&format!("cu:{PIET_MOBILE}"))]
    );
    h.shutdown().await;
}
