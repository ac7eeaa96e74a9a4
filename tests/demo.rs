//! `rooster demo` end to end (SPEC §6): the scripted demo at a faster time scale, with the
//! real daemon against both simulators. Asserts every checkpoint, that nothing was removed
//! during the Graph outage, that the hand-made member survived, and that the output holds
//! the timeline and the table, and that its `coverage` shows the on-call week with exactly
//! the one evening nobody took.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Amsterdam;
use rooster::demo::{ChangeKind, DemoOptions, run};
use rooster::model::{Member, QueueNo};

/// 0.4 s per demo second: the ~59 s script takes ~24 s, and the narrowest margin between a
/// boundary and a checkpoint (1.5 demo seconds) is still 0.6 s on a loaded machine.
const SCALE: f64 = 0.4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_matches_every_checkpoint() {
    let mut out: Vec<u8> = Vec::new();
    let today = || Utc::now().with_timezone(&Amsterdam).date_naive();
    // The local date the demo starts on: one of these two, should it run across midnight.
    let mut days = vec![today()];
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
    days.push(today());
    days.dedup();
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
    the_coverage_section_shows_the_one_uncovered_evening(&text, &days);
}

/// The demo's on-call rota (700) runs for a week after the scripted minute with watches
/// around the clock, except that nobody took the evening of the day after tomorrow,
/// 18:00–22:00 Europe/Amsterdam. `coverage` must draw that and list exactly that gap. The
/// expectation is worked out here from that sentence alone (the local dates the demo may have
/// started on are in `days`), not from the rota's builder or the coverage code.
fn the_coverage_section_shows_the_one_uncovered_evening(text: &str, days: &[NaiveDate]) {
    let start = text
        .find("rooster coverage --queue 700")
        .unwrap_or_else(|| panic!("no coverage section\n{text}"));
    let end = text[start..]
        .find("rooster doctor: ")
        .map_or(text.len(), |i| start + i);
    let section = &text[start..end];
    assert!(section.contains("queue 700 Piket"), "{section}");
    assert!(
        !section.contains("queue 600"),
        "only 700 is shown\n{section}"
    );
    assert!(section.contains("  gaps (4h in all):"), "{section}");

    let gap_lines: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with("  gaps ("))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    let wanted: Vec<String> = days
        .iter()
        .map(|d| {
            format!(
                "    {} 18:00 – 22:00 (4h)",
                uncovered(*d).format("%Y-%m-%d")
            )
        })
        .collect();
    assert_eq!(gap_lines.len(), 1, "exactly one gap\n{section}");
    assert!(
        wanted.iter().any(|w| w == gap_lines[0]),
        "the gap is the evening of the day after tomorrow: {wanted:?}\n{section}"
    );

    // The grid: one character per half hour from local midnight. The uncovered evening is
    // '!' from 18:00 to 22:00 and the rest of that day '-' (one person on watch); no other
    // day shows a gap.
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.len() > 11 && l.as_bytes()[10] == b'|')
        .collect();
    assert_eq!(rows.len(), 7, "a row per day\n{section}");
    let mut gap_rows = 0;
    for row in rows {
        let (label, cells) = row.split_at(10);
        let cells = cells.trim_matches('|');
        let Some(day) = days
            .iter()
            .map(|d| uncovered(*d))
            .find(|d| d.format("%a %m-%d").to_string() == label.trim_end())
        else {
            assert!(!cells.contains('!'), "a gap on another day\n{section}");
            continue;
        };
        gap_rows += 1;
        let half_hours = |from: u32, to: u32| {
            let minutes = (local(day, to) - local(day, from)).num_minutes();
            usize::try_from(minutes / 30).expect("forward")
        };
        let (before, gap) = (half_hours(0, 18), half_hours(18, 22));
        let expected: String = (0..cells.chars().count())
            .map(|i| {
                if (before..before + gap).contains(&i) {
                    '!'
                } else {
                    '-'
                }
            })
            .collect();
        assert_eq!(cells, expected, "the row of {day}\n{section}");
    }
    assert_eq!(gap_rows, 1, "the uncovered evening's row\n{section}");
}

/// The day after tomorrow, for a demo started on `today`.
fn uncovered(today: NaiveDate) -> NaiveDate {
    today + chrono::Days::new(2)
}

/// `hour`:00 in Amsterdam on `date` (18:00 and 22:00 always exist; midnight does too there).
fn local(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    Amsterdam
        .from_local_datetime(&date.and_hms_opt(hour, 0, 0).expect("a valid hour"))
        .earliest()
        .expect("the hour exists in Amsterdam")
        .with_timezone(&Utc)
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
