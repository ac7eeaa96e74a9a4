//! Regression tests from fuzzing (docs/RELIABILITY.md "Fuzzing"): every input a
//! cargo-fuzz target in `fuzz/` crashed on is kept here, minimised and inline, with the
//! property it broke, so the bug cannot come back without the normal suite noticing. Next to
//! them are the inputs at the edges the fuzzers are built to reach (cut UTF-8 boundaries,
//! extreme instants, empty and one-byte bodies), replayed through the same checks the targets
//! make. Pure: no network, files or clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rooster::config::Config;
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, QueueNo, Sensitivity, ShowAs,
};
use rooster::schedule::{CalendarEvents, desired_at, next_boundary};

#[path = "support/checks.rs"]
mod checks;
use checks::*;

// ---- edges the fuzzers reach -------------------------------------------------------------------

#[test]
fn tring_parsers_survive_cut_and_odd_bodies() {
    for body in [
        "",
        "n",
        "|",
        "Error|",
        "error",
        "Success|",
        "Success|\n",
        "Success|0 members in queue 600|",
        "Success|18446744073709551616 members|\n201",
        // `Local/` compared case-insensitively: a multi-byte char where the prefix ends must
        // not split a char (strip_prefix_ci takes `get(..6)`).
        "Success|1 member|\nLoca\u{e9}/201@ACME-agents",
        "Success|1 member|\nLocal/\u{e9}@ACME-custom",
        "[\"\u{e9}-ACME\"]",
        "[{\"type\":\"CU\"}]",
        "[{\"extension\":1e400}]",
        "[{\"number\":-0}]",
        "Error|\u{1b}[31mred\u{202e}|",
        "Success|\u{0}|",
    ] {
        check_tring(body);
    }
}

#[test]
fn graph_normalisation_survives_cut_dates_and_zones() {
    let event = |start: &str, end: &str, zone: &str, all_day: bool| {
        format!(
            r#"{{"value":[{{"id":"e\n1","isAllDay":{all_day},"start":{{"dateTime":"{start}","timeZone":"{zone}"}},"end":{{"dateTime":"{end}","timeZone":"{zone}"}}}}]}}"#
        )
    };
    for page in [
        String::new(),
        "{\"value\":null}".to_owned(),
        "{\"value\":[1]}".to_owned(),
        "{\"value\":[{\"id\":\"\\u001b[31m\"}]}".to_owned(),
        // All-day dates are cut at 10 bytes: a multi-byte char there must not split.
        event("2026-11-2\u{e9}", "2026-11-28", "UTC", true),
        event("2026-11-28", "2026-11-27", "UTC", true),
        event(
            "+262143-12-31T23:59:59",
            "+262143-12-31T23:59:59",
            "UTC",
            false,
        ),
        event(
            "2026-03-29T02:30:00",
            "2026-03-29T03:30:00",
            "Europe/Amsterdam",
            false,
        ),
        event(
            "2026-11-24T09:00:00",
            "2026-11-24T08:59:59.9999999",
            "UTC",
            false,
        ),
        event(
            "2026-11-24T09:00:00Z",
            "2026-11-24T09:00:00-23:59",
            "\u{7}",
            false,
        ),
    ] {
        check_graph(page.as_bytes());
    }
}

#[test]
fn config_errors_name_real_lines_in_multibyte_and_cut_text() {
    for text in [
        "",
        "\u{e9}",
        "[tring]\nbase_url = \"\u{e9}",
        "timezone = \"\u{1f600}\"\n",
        "[[queue]]\nnumber = \"\u{0}\"",
        "a = 1\r\nb = \"\n",
        "\n\n\n[graph]\nconcurrency = -1\n",
        "poll_interval = \"99999999999999999999y\"",
    ] {
        check_config(text);
    }
}

#[test]
fn schedule_survives_events_at_the_ends_of_time_and_huge_lead_and_lag() {
    let text = r#"
[tring]
base_url = "https://tring.example/pbx/proxyapi.php"
tenant = "ACME"
key_env = "K"
[graph]
tenant_id = "t"
client_id = "c"
client_secret_env = "S"
[[person]]
name = "Jan de Vries"
mailbox = "jan@acme.nl"
extension = "201"
[[queue]]
number = "600"
fallback = ["ext:200"]
[[rule]]
name = "support"
calendar = "own"
match = { categories = ["Support"] }
queues = ["600"]
[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = { show_as = ["oof"] }
"#;
    let mut cfg = Config::parse(text, Path::new("t.toml")).expect("test config is valid");
    for rule in &mut cfg.rules {
        rule.lead = Duration::from_secs(u64::MAX);
        rule.lag = Duration::from_secs(u64::MAX);
    }
    let ev = |id: &str, when: EventTime, show_as: ShowAs| Event {
        id: id.to_owned(),
        subject: "dienst".to_owned(),
        when,
        is_cancelled: false,
        show_as,
        categories: vec!["support".to_owned()],
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    };
    let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let mut events: CalendarEvents = BTreeMap::new();
    events.insert(
        CalendarRef::default_of(Mailbox::parse("jan@acme.nl").expect("valid")),
        vec![
            ev(
                "a",
                EventTime::Timed {
                    start: min,
                    end: max,
                },
                ShowAs::Busy,
            ),
            ev(
                "b",
                EventTime::Timed {
                    start: max,
                    end: min,
                },
                ShowAs::Busy,
            ),
            ev(
                "c",
                EventTime::AllDay {
                    start: NaiveDate::MIN,
                    end: NaiveDate::MAX,
                },
                ShowAs::Oof,
            ),
            ev(
                "d",
                EventTime::AllDay {
                    start: NaiveDate::MAX,
                    end: NaiveDate::MIN,
                },
                ShowAs::Busy,
            ),
        ],
    );
    for t in [min, max, DateTime::<Utc>::UNIX_EPOCH] {
        let desired = desired_at(&cfg.roster(), &events, t);
        let queue = QueueNo::parse("600").expect("valid");
        for m in desired.queues[&queue].keys() {
            assert!(
                ["ext:201", "ext:200"].contains(&m.to_string().as_str()),
                "unconfigured member {m}"
            );
        }
        if let Some(b) = next_boundary(&cfg.roster(), &events, t) {
            assert!(b > t, "boundary {b} not after {t}");
        }
    }
}

// ---- crashes found by fuzzing ------------------------------------------------------------------
//
// None yet: the runs recorded in docs/RELIABILITY.md ("Fuzzing") found no crash. A crash that
// a later run finds goes here as `<target>_<what_broke>`, its minimised input inline as a byte
// string (`cargo fuzz tmin <target> <artifact>`), asserting the property it broke.
