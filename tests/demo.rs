//! `rooster demo` end to end (SPEC §6): the scripted demo at a faster time scale, with the
//! real daemon against both simulators. Asserts every checkpoint, that nothing was removed
//! during the Graph outage, that the hand-made member survived, and that the output holds
//! the timeline and the table.

use std::time::Duration;

use rooster::demo::{ChangeKind, DemoOptions, run};
use rooster::model::{Member, QueueNo};

/// 0.4 s per demo second: the ~59 s script takes ~24 s, and the narrowest margin between a
/// boundary and a checkpoint (1.5 demo seconds) is still 0.6 s on a loaded machine.
const SCALE: f64 = 0.4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_matches_every_checkpoint() {
    let mut out: Vec<u8> = Vec::new();
    let outcome = tokio::time::timeout(
        Duration::from_secs(90),
        run(
            DemoOptions {
                scale: SCALE,
                color: false,
            },
            &mut out,
        ),
    )
    .await
    .expect("the demo hung: it should end after ~24 s at scale 0.4")
    .expect("the demo could not run");
    let text = String::from_utf8(out).expect("the demo prints UTF-8");
    // Shown with `--nocapture`.
    println!("{text}");

    let failed: Vec<_> = outcome.checkpoints.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "checkpoints failed: {failed:#?}\n{text}");
    // 10 checkpoints × 3 queues.
    assert_eq!(outcome.checkpoints.len(), 30, "{text}");
    assert!(
        outcome.removed_during_outage.is_empty(),
        "removed while Graph was down: {:?}\n{text}",
        outcome.removed_during_outage
    );
    assert!(outcome.hand_made_survived, "{text}");
    assert!(outcome.all_ok, "{text}");

    // The timeline shows the daemon's work, with reasons from its journal.
    let q600 = QueueNo::parse("600").unwrap();
    let sanne: Member = "ext:202".parse().unwrap();
    let removal = outcome
        .changes
        .iter()
        .find(|c| {
            c.queue == q600
                && c.member == sanne
                && c.kind == ChangeKind::Removed
                && c.at > outcome.outage.1
        })
        .unwrap_or_else(|| panic!("Sanne's held-back removal never came\n{text}"));
    assert!(removal.why.starts_with("not desired"), "{}", removal.why);
    let hand_made: Member = "ext:299".parse().unwrap();
    assert!(
        !outcome
            .changes
            .iter()
            .any(|c| c.member == hand_made && c.kind == ChangeKind::Removed),
        "{text}"
    );
    let jan_added = outcome
        .changes
        .iter()
        .find(|c| c.member == "ext:201".parse::<Member>().unwrap() && c.kind == ChangeKind::Added)
        .unwrap_or_else(|| panic!("Jan was never added\n{text}"));
    assert_eq!(jan_added.person.as_deref(), Some("Jan de Vries"));
    assert!(
        jan_added.why.contains("support shifts"),
        "{}",
        jan_added.why
    );

    // The printed output: timeline lines, the held-back removal, the final table, no colours.
    assert!(text.contains("queue 600 Support"), "{text}");
    assert!(text.contains("+ ext:201"), "{text}");
    assert!(text.contains("- ext:298"), "{text}");
    assert!(text.contains("HELD"), "{text}");
    assert!(text.contains("OUTAGE"), "{text}");
    assert!(text.contains("EDIT"), "{text}");
    assert!(
        text.contains("expected vs actual at every checkpoint"),
        "{text}"
    );
    assert!(text.contains("demo passed: 30 of 30"), "{text}");
    // The demo ends with doctor's checklist against its simulators (SPEC §4 "Doctor").
    assert!(text.contains("rooster doctor: "), "{text}");
    assert!(
        text.contains("tring key and tenant DEMO accepted"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "colour codes without a terminal\n{text}"
    );
}

#[tokio::test]
async fn demo_refuses_a_nonsensical_scale() {
    let mut out: Vec<u8> = Vec::new();
    for scale in [0.0, -1.0, f64::NAN, 100.0] {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            run(
                DemoOptions {
                    scale,
                    color: false,
                },
                &mut out,
            ),
        )
        .await
        .expect("refusing a scale should be immediate");
        assert!(r.is_err(), "scale {scale} accepted");
    }
    assert!(out.is_empty());
}
