//! Fuzz target: the schedule (`rooster::schedule::desired_at` / `next_boundary`) on events
//! derived from arbitrary bytes, against a fixed config whose leads and lags also come from
//! the bytes. Properties (issue 7; SPEC §2): never panics, whatever the instants (up to
//! chrono's extremes) or durations; every queue in the result is a configured queue; every
//! desired member is a configured person's extension or mobile, or the queue's static or
//! fallback member — calendar text only ever chooses among what the config names; a boundary,
//! when there is one, lies after the instant asked about. Touches nothing but pure functions.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rooster::config::Config;
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Member, Sensitivity, ShowAs,
};
use rooster::schedule::{CalendarEvents, desired_at, next_boundary};

const CONFIG: &str = r#"
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
mobile = "0612345678"
aliases = ["Jan", "JdV"]
[[person]]
name = "Piet Jansen"
mailbox = "piet@acme.nl"
extension = "202"
aliases = ["Jan"]
[[person]]
name = "Anouk Bakker"
mailbox = "anouk@acme.nl"
extension = "203"
mobile = "0687654321"
[[queue]]
number = "600"
fallback = ["ext:200"]
[[queue]]
number = "700"
static = ["cu:0611111111"]
[[rule]]
name = "support"
calendar = "own"
match = { categories = ["Support"] }
queues = ["600"]
[[rule]]
name = "on call"
calendar = "piket@acme.nl"
who = "subject"
match = { subject = "piket" }
queues = ["700"]
as = "mobile"
[[rule]]
name = "attending"
calendar = "piket@acme.nl"
who = "attendees"
match = { show_as = ["free", "busy"] }
queues = ["600", "700"]
[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = { show_as = ["oof"] }
"#;

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| Config::parse(CONFIG, Path::new("fuzz.toml")).expect("fuzz config is valid"))
}

const WORDS: &[&str] = &[
    "piket",
    "Jan",
    "JdV",
    "Piet Jansen",
    "Anouk Bakker",
    "anouk",
    "Jän",
    "jan-",
    " ",
    "/",
    "é",
    "Support",
];
const MAILBOXES: &[&str] = &[
    "jan@acme.nl",
    "piet@acme.nl",
    "anouk@acme.nl",
    "piket@acme.nl",
    "x@y.z",
];

fn instant(u: &mut Unstructured) -> Result<DateTime<Utc>> {
    Ok(match u.int_in_range(0..=3)? {
        0 => DateTime::<Utc>::MIN_UTC,
        1 => DateTime::<Utc>::MAX_UTC,
        // Around 2026, minute-grained, where real shifts live.
        2 => DateTime::from_timestamp(
            1_790_000_000 + i64::from(u.int_in_range(-5000..=5000i32)?) * 60,
            0,
        )
        .unwrap_or_default(),
        _ => {
            DateTime::from_timestamp(u.arbitrary::<i64>()? % 300_000_000_000, 0).unwrap_or_default()
        }
    })
}

fn date(u: &mut Unstructured) -> Result<NaiveDate> {
    Ok(match u.int_in_range(0..=2)? {
        0 => NaiveDate::MIN,
        1 => NaiveDate::MAX,
        _ => NaiveDate::from_num_days_from_ce_opt(739_000 + u.int_in_range(-400..=400)?)
            .unwrap_or(NaiveDate::MIN),
    })
}

fn text(u: &mut Unstructured) -> Result<String> {
    let mut s = String::new();
    for _ in 0..u.int_in_range(0..=4)? {
        if u.ratio(1, 4)? {
            s.push_str(u.arbitrary::<&str>()?);
        } else {
            s.push_str(u.choose(WORDS)?);
        }
        s.push(' ');
    }
    Ok(s)
}

fn event(u: &mut Unstructured, n: usize) -> Result<Event> {
    let when = if u.arbitrary()? {
        EventTime::AllDay {
            start: date(u)?,
            end: date(u)?,
        }
    } else {
        EventTime::Timed {
            start: instant(u)?,
            end: instant(u)?,
        }
    };
    let attendees = (0..u.int_in_range(0..=3)?)
        .map(|_| u.choose(MAILBOXES).map(|s| (*s).to_owned()))
        .collect::<Result<_>>()?;
    Ok(Event {
        id: format!("e{n}"),
        subject: text(u)?,
        when,
        is_cancelled: u.ratio(1, 8)?,
        show_as: *u.choose(&ShowAs::ALL)?,
        categories: if u.arbitrary()? {
            vec!["support".into()]
        } else {
            vec![text(u)?]
        },
        sensitivity: Sensitivity::Normal,
        organizer: if u.arbitrary()? {
            Some(u.choose(MAILBOXES)?.to_string())
        } else {
            None
        },
        attendees,
        kind: EventKind::SingleInstance,
        series_master_id: None,
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    let mut cfg = config().clone();
    for rule in &mut cfg.rules {
        rule.lead = Duration::from_secs(u.int_in_range(0..=u64::MAX)? >> u.int_in_range(0..=63)?);
        rule.lag = Duration::from_secs(u.int_in_range(0..=u64::MAX)? >> u.int_in_range(0..=63)?);
    }
    let mut events: CalendarEvents = BTreeMap::new();
    let mut n = 0;
    while !u.is_empty() && n < 64 {
        let mailbox = Mailbox::parse(u.choose(MAILBOXES)?).expect("fixed mailbox is valid");
        let ev = event(u, n)?;
        events
            .entry(CalendarRef::default_of(mailbox))
            .or_default()
            .push(ev);
        n += 1;
    }
    let t = instant(u).unwrap_or_default();
    check(&cfg, &events, t);
    Ok(())
}

fn check(cfg: &Config, events: &CalendarEvents, t: DateTime<Utc>) {
    let desired = desired_at(cfg, events, t);
    let configured: BTreeSet<_> = cfg.queues.iter().map(|q| q.number.clone()).collect();
    assert_eq!(
        desired.queues.keys().cloned().collect::<BTreeSet<_>>(),
        configured
    );
    let persons: BTreeSet<Member> = cfg
        .persons
        .iter()
        .flat_map(|p| {
            std::iter::once(Member::Agent(p.extension.clone()))
                .chain(p.mobile.clone().map(Member::Custom))
        })
        .collect();
    for q in &cfg.queues {
        for m in desired.queues[&q.number].keys() {
            assert!(
                persons.contains(m) || q.static_members.contains(m) || q.fallback.contains(m),
                "queue {} got unconfigured member {m}",
                q.number
            );
        }
    }
    if let Some(b) = next_boundary(cfg, events, t) {
        assert!(b > t, "boundary {b} not after {t}");
    }
    // Also look one second later: boundaries are exclusive ends (SPEC §2: start-lead <= t < end+lag).
    let _ = desired_at(
        cfg,
        events,
        t.checked_add_signed(TimeDelta::seconds(1)).unwrap_or(t),
    );
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
