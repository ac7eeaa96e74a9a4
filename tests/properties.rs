//! Property tests for rooster's parsers of untrusted input, the proptest twins of the cargo-fuzz
//! targets in `fuzz/` (docs/RELIABILITY.md "Fuzzing"), so the same properties run in
//! the normal test suite on stable: the TRiNG answer parsers, Graph page normalisation and the
//! config parser never panic on any text, what they accept is valid, and what they reject is
//! reported in one loggable line (SPEC §3 rule 2, §4 Config and Logs). Structured generators add
//! the positive side: well-formed TRiNG lists parse to exactly their members, and model events
//! survive the trip through Graph's JSON as the simulator writes it (its writer is built from
//! Microsoft's documented shapes, not from the parser's types, so the trip is not circular).
//! Pure: no network, files or clock.

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;
use rooster::graph::normalize::normalize_page;
use rooster::model::{Event, EventKind, EventTime, Extension, Member, Mobile, Sensitivity, ShowAs};
use rooster::sim::graph_event::{GraphRendering, render_event};
use rooster::tring::{KnownMembers, TringError, parse_list};

const CASES: u32 = 256;
const EXAMPLE: &str = include_str!("../config/rooster.example.toml");

#[path = "support/checks.rs"]
mod checks;
use checks::*;

// ---- generators --------------------------------------------------------------------------------

/// Text in TRiNG's alphabet, so random bodies reach past the first branch of the parsers.
fn tring_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Success|".to_owned()),
        Just("Error|".to_owned()),
        Just("OK".to_owned()),
        Just("2 members in queue 600|".to_owned()),
        Just("\n".to_owned()),
        Just("SIP/201-ACME".to_owned()),
        Just("Local/0612345678@ACME-custom".to_owned()),
        Just("Local/201@ACME-agents".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(",".to_owned()),
        Just("null".to_owned()),
        Just("\"extension\":".to_owned()),
        Just("\"interface\":".to_owned()),
        Just("\"type\":\"CU\"".to_owned()),
        Just("\"number\":".to_owned()),
        "\"[0-9A-Za-z/@-]{0,16}\"",
        "[0-9]{1,16}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

/// JSON in the shape of a calendarView page, with field values near and off the valid ones.
fn graph_like() -> impl Strategy<Value = String> {
    let datetime = prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})",
        "\\PC{0,12}",
    ];
    let zone = prop_oneof![
        Just("UTC".to_owned()),
        Just("Europe/Amsterdam".to_owned()),
        Just("W. Europe Standard Time".to_owned()),
        Just("America/Sao_Paulo".to_owned()),
        "\\PC{0,8}",
    ];
    let when = (datetime, proptest::option::of(zone)).prop_map(|(d, z)| match z {
        Some(z) => serde_json::json!({ "dateTime": d, "timeZone": z }),
        None => serde_json::json!({ "dateTime": d }),
    });
    let event = (
        "\\PC{0,8}",
        proptest::option::of(when.clone()),
        proptest::option::of(when),
        proptest::option::of(any::<bool>()),
        proptest::option::of("\\PC{0,10}"),
    )
        .prop_map(|(id, start, end, all_day, show_as)| {
            let mut ev = serde_json::json!({ "id": id, "subject": "s" });
            if let Some(s) = start {
                ev["start"] = s;
            }
            if let Some(e) = end {
                ev["end"] = e;
            }
            if let Some(a) = all_day {
                ev["isAllDay"] = a.into();
            }
            if let Some(s) = show_as {
                ev["showAs"] = s.into();
            }
            ev
        });
    proptest::collection::vec(event, 0..6)
        .prop_map(|value| serde_json::json!({ "value": value }).to_string())
}

fn extension() -> impl Strategy<Value = Extension> {
    "[0-9]{1,10}".prop_map(|s| Extension::parse(&s).expect("generated extension is valid"))
}

fn mobile() -> impl Strategy<Value = Mobile> {
    "[0-9]{8,15}".prop_map(|s| Mobile::parse(&s).expect("generated mobile is valid"))
}

fn member() -> impl Strategy<Value = Member> {
    prop_oneof![
        3 => extension().prop_map(Member::Agent),
        1 => mobile().prop_map(Member::Custom),
    ]
}

/// How TRiNG may spell a member in a list (tring-api.md); `tenant` in any letter case.
fn spelling(m: &Member, style: u8, tenant: &str) -> String {
    match m {
        Member::Agent(e) => match style % 4 {
            0 => format!("{e}-{tenant}"),
            1 => format!("SIP/{e}-{tenant}"),
            2 => format!("PJSIP/{e}"),
            _ => format!("Local/{e}@{tenant}-agents"),
        },
        Member::Custom(c) => format!("Local/{c}@{tenant}-custom"),
    }
}

/// The same, with the spellings of a custom destination that only configured mobiles make
/// readable (tring-api.md "Recognising a member whatever the shape").
fn spelling_known(m: &Member, style: u8, tenant: &str) -> String {
    match m {
        Member::Custom(c) => match style % 4 {
            0 => c.to_string(),
            1 => format!("{c}-{tenant}"),
            2 => format!("SIP/{c}-{tenant}"),
            _ => format!("Local/{c}@{tenant}-custom"),
        },
        agent => spelling(agent, style, tenant),
    }
}

/// A list answer holding `spelled` entries: the JSON string array, or plain — the status
/// line with a count and one entry per line (`stated`), or one pipe-separated line (an
/// empty queue is only ever the stated `0 members`).
fn plain_or_json(spelled: &[String], plain: bool, stated: bool) -> String {
    if !plain {
        return serde_json::to_string(spelled).expect("serialise");
    }
    if stated || spelled.is_empty() {
        let head = format!("Success|{} members in queue 600|", spelled.len());
        std::iter::once(head)
            .chain(spelled.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        format!("Success|{}|", spelled.join("|"))
    }
}

/// An instant Graph can carry: whole 100 ns ticks (seven fractional digits) in years 1–9999.
fn graph_instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 0001-01-01 .. 9999-12-31 in seconds since the epoch.
    (-62_135_596_800i64..253_402_214_400, 0u32..10_000_000).prop_map(|(secs, ticks)| {
        DateTime::from_timestamp(secs, ticks * 100).expect("instant in range")
    })
}

fn graph_date() -> impl Strategy<Value = NaiveDate> {
    (1i32..3_652_000).prop_map(|d| NaiveDate::from_num_days_from_ce_opt(d).expect("date in range"))
}

fn address() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,12}@[a-z0-9-]{1,12}\\.[a-z]{2,6}"
}

fn event_time() -> impl Strategy<Value = EventTime> {
    prop_oneof![
        (graph_instant(), graph_instant()).prop_map(|(a, b)| EventTime::Timed {
            start: a.min(b),
            end: a.max(b),
        }),
        (graph_date(), 1u32..40).prop_filter_map("end date in range", |(s, days)| {
            s.checked_add_days(chrono::Days::new(days.into()))
                .filter(|e| e.format("%Y").to_string().len() == 4)
                .map(|e| EventTime::AllDay { start: s, end: e })
        }),
    ]
}

fn model_event() -> impl Strategy<Value = Event> {
    (
        ("\\PC{1,20}", "\\PC{0,30}", event_time(), any::<bool>()),
        (
            proptest::sample::select(ShowAs::ALL.to_vec()),
            proptest::collection::vec("\\PC{0,10}", 0..3),
            proptest::sample::select(vec![
                Sensitivity::Normal,
                Sensitivity::Personal,
                Sensitivity::Private,
                Sensitivity::Confidential,
            ]),
        ),
        (
            proptest::option::of(address()),
            proptest::collection::vec(address(), 0..3),
            proptest::sample::select(vec![
                EventKind::SingleInstance,
                EventKind::Occurrence,
                EventKind::Exception,
                EventKind::SeriesMaster,
            ]),
            proptest::option::of("\\PC{1,20}"),
        ),
    )
        .prop_map(
            |(
                (id, subject, when, is_cancelled),
                (show_as, categories, sensitivity),
                (organizer, attendees, kind, series_master_id),
            )| Event {
                id,
                subject,
                when,
                is_cancelled,
                show_as,
                categories,
                sensitivity,
                organizer,
                attendees,
                kind,
                series_master_id,
            },
        )
}

// ---- properties --------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn tring_parsers_survive_any_text(body in any::<String>()) {
        check_tring(&body);
    }

    #[test]
    fn tring_parsers_survive_text_in_their_own_alphabet(body in tring_like()) {
        check_tring(&body);
    }

    #[test]
    fn json_list_of_tenant_suffixed_strings_parses_to_those_agents(
        exts in proptest::collection::vec(extension(), 0..20),
        tenant in prop_oneof![Just("ACME"), Just("acme"), Just("Acme")],
    ) {
        let entries: Vec<String> = exts.iter().map(|e| format!("{e}-{tenant}")).collect();
        let body = serde_json::to_string(&entries).expect("serialise");
        let want: Vec<Member> = exts.into_iter().map(Member::Agent).collect();
        prop_assert_eq!(
            parse_list(&body, "ACME", &KnownMembers::default()).expect("well-formed list parses"),
            want
        );
    }

    #[test]
    fn lists_in_every_spelling_parse_to_their_members(
        members in proptest::collection::vec((member(), any::<u8>()), 0..12),
        plain in any::<bool>(),
        stated in any::<bool>(),
    ) {
        let spelled: Vec<String> = members.iter().map(|(m, s)| spelling(m, *s, "ACME")).collect();
        let body = plain_or_json(&spelled, plain, stated);
        let want: Vec<Member> = members.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(
            parse_list(&body, "ACME", &KnownMembers::default()).expect("well-formed list parses"),
            want
        );
    }

    #[test]
    fn configured_mobiles_read_back_as_custom_destinations_in_every_spelling(
        members in proptest::collection::vec((member(), any::<u8>()), 0..12),
        plain in any::<bool>(),
        stated in any::<bool>(),
    ) {
        // The config the parser is given: every mobile and extension in the list. Config
        // validation refuses a number that is both, so such lists are not generated.
        let mobiles: Vec<Mobile> = members.iter().filter_map(|(m, _)| match m {
            Member::Custom(c) => Some(c.clone()),
            Member::Agent(_) => None,
        }).collect();
        let extensions: Vec<Extension> = members.iter().filter_map(|(m, _)| match m {
            Member::Agent(e) => Some(e.clone()),
            Member::Custom(_) => None,
        }).collect();
        prop_assume!(!mobiles.iter().any(|c| extensions.iter().any(|e| e.as_str() == c.as_str())));
        let known = KnownMembers::new(mobiles, extensions);
        // A pipe-separated line holds interfaces only, so no bare number there.
        let pipe = plain && !stated;
        let spelled: Vec<String> = members
            .iter()
            .map(|(m, s)| spelling_known(m, if pipe && s % 4 == 0 { 1 } else { *s }, "ACME"))
            .collect();
        let body = plain_or_json(&spelled, plain, stated);
        let want: Vec<Member> = members.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(parse_list(&body, "ACME", &known).expect("well-formed list parses"), want);
    }

    #[test]
    fn a_list_with_one_foreign_entry_is_never_a_shorter_list(
        exts in proptest::collection::vec(extension(), 0..8),
        at in any::<prop::sample::Index>(),
    ) {
        // SPEC §3 rule 2: one entry of another tenant spoils the list; it is not dropped.
        let mut entries: Vec<String> = exts.iter().map(|e| format!("{e}-ACME")).collect();
        entries.insert(at.index(entries.len() + 1), "201-OTHER".to_owned());
        let body = serde_json::to_string(&entries).expect("serialise");
        let got = parse_list(&body, "ACME", &KnownMembers::default());
        prop_assert!(matches!(got, Err(TringError::Unparseable { .. })), "{:?}", got);
    }

    #[test]
    fn graph_normalisation_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_graph(&bytes);
    }

    #[test]
    fn graph_normalisation_survives_pages_of_odd_events(page in graph_like()) {
        check_graph(page.as_bytes());
    }

    #[test]
    fn model_events_round_trip_through_a_graph_page(
        events in proptest::collection::vec(model_event(), 0..6),
        next in proptest::option::of("https://graph\\.example/v1\\.0/[a-z]{1,8}\\?\\$skip=[0-9]{1,3}"),
        extras in any::<bool>(),
    ) {
        // Seven fractional digits: the generated instants have 100 ns ticks to lose.
        let rendering = GraphRendering { extras, ..GraphRendering::default() };
        let value: Vec<_> = events.iter().map(|e| render_event(e, &rendering)).collect();
        let mut page = serde_json::json!({ "value": value });
        if let Some(n) = &next {
            page["@odata.nextLink"] = n.clone().into();
        }
        let bytes = serde_json::to_vec(&page).expect("serialise");
        let (got, got_next) = normalize_page(&bytes).expect("a page built from valid events normalises");
        prop_assert_eq!(got, events);
        prop_assert_eq!(got_next, next);
    }

    #[test]
    fn config_parser_survives_any_text(text in any::<String>()) {
        check_config(&text);
    }

    #[test]
    fn config_parser_reports_real_lines_for_damaged_example(
        at in any::<prop::sample::Index>(),
        junk in prop_oneof![
            "\\PC{0,30}",
            Just("[[queue]]".to_owned()),
            Just("number = \"60a\"".to_owned()),
            Just("[[rule]]\nname = \"x\"".to_owned()),
            Just("lead = \"forever\"".to_owned()),
            Just("\"".to_owned()),
        ],
        delete in any::<bool>(),
    ) {
        let mut lines: Vec<&str> = EXAMPLE.lines().collect();
        let i = at.index(lines.len());
        if delete {
            lines.remove(i);
        } else {
            lines.insert(i, &junk);
        }
        check_config(&lines.join("\n"));
    }
}
