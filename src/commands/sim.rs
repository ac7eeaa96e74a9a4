//! `rooster demo` and `rooster sim` (SPEC §4, §6): the simulators with a small made-up team.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{CommandError, EXIT_FAILED, EXIT_OK, write_private};
use crate::model::{Event, EventTime, Mailbox, QueueNo};

/// `demo`: SPEC §6. Exit 0 only when every checkpoint matched.
pub async fn demo(color: bool) -> Result<u8, CommandError> {
    use crate::demo::{DemoOptions, run};
    let mut stdout = std::io::stdout();
    let outcome = run(DemoOptions { scale: 1.0, color }, &mut stdout)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(if outcome.all_ok { EXIT_OK } else { EXIT_FAILED })
}

/// `sim`: both simulators standalone with a small team, until Ctrl-C; optionally writes a
/// config (and its secret files beside it) that points at them.
pub async fn sim(
    tring_addr: std::net::SocketAddr,
    graph_addr: std::net::SocketAddr,
    write_config: Option<&Path>,
) -> Result<u8, CommandError> {
    use crate::model::{Mobile, Secret};
    use crate::sim::graph::{GraphSim, GraphSimOptions};
    use crate::sim::tring::{SimTringOptions, TringSim};

    let q = |s: &str| QueueNo::parse(s).expect("static queue number");
    let failed = |what: &str, e: std::io::Error| CommandError::Failed(format!("{what}: {e}"));
    let tring = TringSim::start(SimTringOptions {
        key: Secret::new("sim-tring-key"),
        tenant: "ACME".into(),
        queues: vec![(q("600"), vec![]), (q("700"), vec![])],
        custom_destinations: ["0612345678", "0612345679"]
            .iter()
            .map(|m| Mobile::parse(m).expect("static mobile"))
            .collect(),
        addr: Some(tring_addr),
        ..SimTringOptions::default()
    })
    .await
    .map_err(|e| failed("tring simulator", e))?;
    let gopts = GraphSimOptions {
        client_secret: "sim-graph-secret".to_owned(),
        // Small pages, so `rooster calendar jan@acme.nl` shows paging at work.
        page_size: 3,
        ..GraphSimOptions::default()
    };
    let graph = GraphSim::start_on(gopts.clone(), graph_addr)
        .await
        .map_err(|e| failed("graph simulator", e))?;
    for (mb, events) in sample_calendars(Utc::now()) {
        graph.set_events(&Mailbox::parse(mb).expect("static mailbox"), None, events);
    }
    println!("tring simulator: {}", tring.base_url());
    println!(
        "graph simulator: {} (authority {})",
        graph.base_url(),
        graph.authority()
    );
    if let Some(path) = write_config {
        let dir = path.parent().unwrap_or(Path::new("."));
        // Secrets and config alike: readable by the owner only.
        let write = |p: PathBuf, text: &str| {
            write_private(&p, text).map_err(|e| failed(&p.display().to_string(), e))
        };
        write(dir.join("sim-tring-key"), "sim-tring-key\n")?;
        write(dir.join("sim-graph-secret"), "sim-graph-secret\n")?;
        let text = format!(
            r#"# Written by `rooster sim`: points at the simulators on this machine.
timezone = "Europe/Amsterdam"
poll_interval = "30s"
state = "rooster-sim.db"

[tring]
base_url = "{tring_url}"
tenant = "ACME"
key_file = "sim-tring-key"

[graph]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
client_secret_file = "sim-graph-secret"
base_url = "{graph_url}"
authority = "{authority}"

[[person]]
name = "Jan de Vries"
mailbox = "jan@acme.nl"
extension = "201"
mobile = "0612345678"

[[person]]
name = "Piet Jansen"
mailbox = "piet@acme.nl"
extension = "202"
mobile = "0612345679"

[[queue]]
number = "600"
name = "Support"

[[queue]]
number = "700"
name = "Piket"
ownership = "exclusive"

[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]

[[rule]]
name = "on call"
calendar = "piket@acme.nl"
match = {{ subject = "piket" }}
queues = ["700"]
as = "mobile"

[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = {{ show_as = ["oof"] }}
"#,
            tring_url = tring.base_url(),
            graph_url = graph.base_url(),
            authority = graph.authority(),
            tenant_id = gopts.tenant_id,
            client_id = gopts.client_id,
        );
        write(path.to_owned(), &text)?;
        println!("config written to {}", path.display());
    }
    println!("press Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    graph.shutdown();
    tring.shutdown().await;
    Ok(EXIT_OK)
}

/// The calendars `rooster sim` serves: Jan on Support now and on the coming days, Piet
/// starting a shift in an hour and out of office tomorrow, and Jan on call now in the rota,
/// which then goes on for a week ([`sample::on_call_week`]): Piet and Jan take turns, nobody
/// took the evening of the day after tomorrow (18:00–22:00), and Piet's watch tomorrow falls
/// on his day off, so `coverage` has gaps to show.
fn sample_calendars(now: DateTime<Utc>) -> Vec<(&'static str, Vec<Event>)> {
    use crate::model::{EventKind, Sensitivity, ShowAs};
    use crate::sim::sample;
    // The zone of the config `sim --write-config` writes.
    let tz = chrono_tz::Europe::Amsterdam;
    let h = chrono::Duration::hours;
    let event = |id: &str, subject: &str, when: EventTime, show_as: ShowAs, cats: &[&str]| Event {
        id: id.to_owned(),
        subject: subject.to_owned(),
        when,
        is_cancelled: false,
        show_as,
        categories: cats.iter().map(|c| (*c).to_owned()).collect(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
    };
    let timed = |from: DateTime<Utc>, to: DateTime<Utc>| EventTime::Timed {
        start: from,
        end: to,
    };
    let jan = (0..5)
        .map(|d| {
            let start = now - h(1) + chrono::Duration::days(d);
            event(
                &format!("jan-{d}"),
                "Support",
                timed(start, start + h(6)),
                ShowAs::Busy,
                &["Support"],
            )
        })
        .collect();
    let tomorrow = now.date_naive() + chrono::Duration::days(1);
    let piet = vec![
        event(
            "piet-1",
            "Support",
            timed(now + h(1), now + h(5)),
            ShowAs::Busy,
            &["Support"],
        ),
        event(
            "piet-2",
            "Vrij",
            EventTime::AllDay {
                start: tomorrow,
                end: tomorrow + chrono::Duration::days(1),
            },
            ShowAs::Oof,
            &[],
        ),
    ];
    let handover = sample::next_handover(now + h(1), tz);
    let today = now.with_timezone(&tz).date_naive();
    let piket = std::iter::once(sample::watch(
        "piket-1",
        "Jan de Vries",
        now - h(2),
        handover,
    ))
    .chain(sample::on_call_week(
        handover,
        today + chrono::Days::new(8),
        today + chrono::Days::new(2),
        &["Piet Jansen", "Jan de Vries"],
        tz,
    ))
    .collect();
    vec![
        ("jan@acme.nl", jan),
        ("piet@acme.nl", piet),
        ("piket@acme.nl", piket),
    ]
}
