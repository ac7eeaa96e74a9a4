//! `history` and `coverage` end to end (SPEC §4 "History and coverage"): real cycles against
//! the Graph and TRiNG simulators, then the commands read the state the cycles left. Expected
//! values are written out here (the gap of a known rota, TRiNG's answer the simulator was told
//! to give), never taken from the code under test.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::*;
use rooster::commands::history::{self, EntryOutcome, HistoryArgs, HistoryEntry};
use rooster::commands::{EXIT_FAILED, coverage};
use rooster::coverage::Level;
use rooster::cycle::Mode;
use rooster::model::Event;
use rooster::plan::ActionKind;
use rooster::sim::tring::{Action, Fault, FaultKind};
use tokio_util::sync::CancellationToken;

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time is RFC 3339")
        .with_timezone(&Utc)
}

async fn history_of(h: &Harness, args: HistoryArgs) -> Vec<HistoryEntry> {
    let now = Utc::now() + chrono::Duration::minutes(1);
    within("history", 10, history::history(&h.cfg, &args, now))
        .await
        .expect("history reads the state")
        .entries
}

/// A known rota on Monday 3 June 2030 (CEST, UTC+2): Anouk 09:00–13:00, Jan 14:30–22:00 local,
/// both in the Support queue 600 (no fallback). Nobody else works.
fn known_rota(_now: DateTime<Utc>) -> BTreeMap<&'static str, Vec<Event>> {
    BTreeMap::from([
        (
            ANOUK,
            vec![event(
                "a",
                "Support",
                &["Support"],
                ts("2030-06-03T07:00:00Z"),
                ts("2030-06-03T11:00:00Z"),
            )],
        ),
        (
            JAN,
            vec![event(
                "j",
                "Support",
                &["Support"],
                ts("2030-06-03T12:30:00Z"),
                ts("2030-06-03T20:00:00Z"),
            )],
        ),
    ])
}

#[tokio::test]
async fn coverage_of_a_known_rota_shows_exactly_its_gaps() {
    let h = Harness::start_with(known_rota).await;
    // 08:00 local: from now to local midnight.
    let now = ts("2030-06-03T06:00:00Z");
    let report = within(
        "coverage",
        10,
        coverage::coverage(&h.cfg, 1, Some("600"), now),
    )
    .await
    .expect("coverage reads the state");
    assert_eq!(report.exit_code(), EXIT_FAILED, "a gap exits 1");
    let q = &report.queues[0];
    assert_eq!(q.queue.as_str(), "600");
    let gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = q.gaps.iter().map(|g| (g.from, g.to)).collect();
    assert_eq!(
        gaps,
        vec![
            (ts("2030-06-03T06:00:00Z"), ts("2030-06-03T07:00:00Z")),
            (ts("2030-06-03T11:00:00Z"), ts("2030-06-03T12:30:00Z")),
            (ts("2030-06-03T20:00:00Z"), ts("2030-06-03T22:00:00Z")),
        ]
    );
    assert_eq!(q.gap_seconds, (60 + 90 + 120) * 60);
    assert!(q.fallback_only.is_empty());
    // The day row: past cells blank, then the levels the rota gives, quarter by quarter.
    let day = &q.days[0];
    assert_eq!(day.cells.len(), 96);
    let at = |hour: usize, quarter: usize| day.cells[hour * 4 + quarter];
    assert_eq!(at(7, 3), None, "07:45 local is before now");
    assert_eq!(at(8, 0), Some(Level::Gap));
    assert_eq!(at(9, 0), Some(Level::One));
    assert_eq!(at(12, 3), Some(Level::One));
    assert_eq!(at(13, 0), Some(Level::Gap));
    assert_eq!(at(14, 1), Some(Level::Gap));
    assert_eq!(at(14, 2), Some(Level::One));
    assert_eq!(at(22, 0), Some(Level::Gap));

    let mut text = Vec::new();
    report.render(&mut text).expect("renders");
    let text = String::from_utf8(text).expect("utf-8");
    for line in [
        "    2030-06-03 08:00 – 09:00 (1h)",
        "    2030-06-03 13:00 – 14:30 (1h 30m)",
        "    2030-06-03 22:00 – 2030-06-04 00:00 (2h)",
        // One character per half hour; 00:00–08:00 is past.
        "Mon 06-03 |                !!--------!!!---------------!!!!|",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
    h.shutdown().await;
}

/// The on-call hand-over of the harness (700: Jan's mobile out, Piet's in) with TRiNG not
/// knowing Piet's number: the add fails with TRiNG's answer, the del is refused (keep_last),
/// and the next cycle holds the add back.
#[tokio::test]
async fn history_shows_a_failed_add_with_trings_answer_and_the_refusals() {
    let h = Harness::start().await;
    let answer = format!("Custom destination {PIET_MOBILE} not found");
    h.tring.inject(Fault {
        queue: Some(q("700")),
        action: Some(Action::Add),
        kind: FaultKind::ErrorIn200(answer.clone()),
        times: None,
    });
    let mut rec = h.reconciler().await;
    run_cycle(&mut rec).await;
    run_cycle(&mut rec).await;

    let entries = history_of(
        &h,
        HistoryArgs {
            queue: Some("700".into()),
            ..HistoryArgs::default()
        },
    )
    .await;
    let piet = format!("cu:{PIET_MOBILE}");
    let jan = format!("cu:{JAN_MOBILE}");
    let failed: Vec<&HistoryEntry> = entries
        .iter()
        .filter(|e| e.entry == "write" && e.outcome == EntryOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "one add sent and failed: {entries:#?}");
    let f = failed[0];
    assert_eq!(f.action, "add");
    assert_eq!(f.member.as_ref().map(|m| m.to_string()), Some(piet.clone()));
    assert_eq!(f.person.as_deref(), Some("Piet Jansen"));
    assert_eq!(f.cycle, Some(1), "written by the first cycle");
    assert!(
        f.detail.as_deref().is_some_and(|d| d.contains(&answer)),
        "TRiNG's answer {answer:?} in {:?}",
        f.detail
    );
    assert!(f.reason.contains("on call"), "the rule in {:?}", f.reason);

    let keep_last: Vec<&HistoryEntry> =
        entries.iter().filter(|e| e.action == "keep_last").collect();
    assert_eq!(
        keep_last.len(),
        1,
        "one row for the standing refusal: {entries:#?}"
    );
    let k = keep_last[0];
    assert_eq!(k.outcome, EntryOutcome::Refused);
    assert_eq!(k.member.as_ref().map(|m| m.to_string()), Some(jan));
    assert_eq!(k.person.as_deref(), Some("Jan de Vries"));
    assert_eq!((k.cycle, k.last_cycle), (Some(1), Some(2)));
    assert!(k.standing);

    let held: Vec<&HistoryEntry> = entries.iter().filter(|e| e.action == "held").collect();
    assert_eq!(
        held.len(),
        1,
        "the second cycle held the add back: {entries:#?}"
    );
    assert_eq!(held[0].outcome, EntryOutcome::Held);
    assert_eq!(held[0].cycle, Some(2));
    assert!(
        held[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(&answer))
    );

    // Filters: by person and by bare number; another queue's entries stay out.
    let by_person = history_of(
        &h,
        HistoryArgs {
            person: Some("piet".into()),
            ..HistoryArgs::default()
        },
    )
    .await;
    assert!(!by_person.is_empty());
    assert!(
        by_person
            .iter()
            .all(|e| e.person.as_deref() == Some("Piet Jansen"))
    );
    let by_member = history_of(
        &h,
        HistoryArgs {
            member: Some(PIET_MOBILE.into()),
            queue: Some("700".into()),
            ..HistoryArgs::default()
        },
    )
    .await;
    assert_eq!(
        by_member.len(),
        2,
        "the failed add and its hold: {by_member:#?}"
    );

    // JSON lines: one object per entry.
    let report = within(
        "history",
        10,
        history::history(
            &h.cfg,
            &HistoryArgs::default(),
            Utc::now() + chrono::Duration::minutes(1),
        ),
    )
    .await
    .expect("history");
    let mut out = Vec::new();
    report.render_json(&mut out).expect("renders");
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(text.lines().count(), report.entries.len());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(v["queue"].is_string() && v["outcome"].is_string(), "{line}");
    }
    h.shutdown().await;
}

/// A write whose reply never came (the process died after TRiNG applied it) is settled by the
/// next start, and history says so.
#[tokio::test]
async fn history_shows_an_intent_settled_after_a_crash() {
    let h = Harness::start().await;
    h.pbx.hang_at(Some(Hang::AfterWrite(
        ActionKind::Add,
        q("600"),
        m("ext:203"),
    )));
    let mut rec = h.reconciler().await;
    let cancel = CancellationToken::new();
    within("reaching the crash point", 30, async {
        tokio::select! {
            r = rec.cycle(Mode::Full, &cancel) => panic!("the cycle ended before the crash point: {r:?}"),
            _ = h.pbx.hung.notified() => {}
        }
    })
    .await;
    drop(rec);
    h.pbx.hang_at(None);
    let mut rec = h.reconciler().await;
    run_cycle(&mut rec).await;

    let entries = history_of(
        &h,
        HistoryArgs {
            member: Some("ext:203".into()),
            ..HistoryArgs::default()
        },
    )
    .await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = &entries[0];
    assert_eq!(e.outcome, EntryOutcome::SettledApplied);
    assert_eq!(e.cycle, Some(1), "the crashed cycle wrote it");
    assert!(
        e.detail
            .as_deref()
            .is_some_and(|d| d.contains("found live"))
    );
    h.shutdown().await;
}
