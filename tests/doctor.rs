//! `rooster doctor` (SPEC §4 "Doctor") against the simulated Graph and TRiNG: one planted
//! mistake per test — a mailbox outside the access policy, a wrong and an expired secret, a
//! category typo, an unknown mobile or extension, an unparseable list body, a drifting clock —
//! each expecting its FAIL/warn line, its fix and the exit code, and every run proving that
//! nothing was written (no TRiNG add/del/clean, the state directory untouched). Expected lines
//! are written here by hand from the SPEC, never taken from the code under test.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rooster::commands::doctor::{Area, Check, DoctorOptions, DoctorReport, Status, doctor};
use rooster::model::{
    Event, EventKind, EventTime, Mailbox, Member, Mobile, QueueNo, Secret, Sensitivity, ShowAs,
};
use rooster::sim::graph::{GraphFault, GraphFaultKind, GraphSim, GraphSimOptions};
use rooster::sim::tring::{Action, Fault, FaultKind, SimTringOptions, TringSim};

const TRING_KEY: &str = "doctor-tring-key-5ecr3t";
const GRAPH_SECRET: &str = "doctor-graph-secret-5ecr3t";
/// Subjects that must never reach a saved reply.
const JAN_SUBJECT: &str = "Ochtenddienst Zebrapad";
const PIKET_SUBJECT: &str = "Piket Jan de Vries Kanarie";

struct Setup {
    graph: GraphSim,
    tring: TringSim,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let graph = GraphSim::start(GraphSimOptions {
            client_secret: GRAPH_SECRET.into(),
            ..GraphSimOptions::default()
        })
        .await
        .expect("graph simulator starts");
        let q = |s: &str| QueueNo::parse(s).unwrap();
        let tring = TringSim::start(SimTringOptions {
            key: Secret::new(TRING_KEY),
            tenant: "ACME".into(),
            queues: vec![
                (q("600"), vec![Member::Agent("201".parse().unwrap())]),
                (q("700"), vec![]),
            ],
            custom_destinations: vec![
                Mobile::parse("0612345678").unwrap(),
                Mobile::parse("0623456789").unwrap(),
            ],
            ..SimTringOptions::default()
        })
        .await
        .expect("tring simulator starts");
        let now = Utc::now();
        let h = TimeDelta::hours;
        let ev = |id: &str, subject: &str, from, to, cats: &[&str]| Event {
            id: id.into(),
            subject: subject.into(),
            when: EventTime::Timed {
                start: from,
                end: to,
            },
            is_cancelled: false,
            show_as: ShowAs::Busy,
            categories: cats.iter().map(|c| (*c).to_owned()).collect(),
            sensitivity: Sensitivity::Normal,
            organizer: None,
            attendees: vec![],
            kind: EventKind::SingleInstance,
            series_master_id: None,
        };
        let mb = |s: &str| Mailbox::parse(s).unwrap();
        graph.set_events(
            &mb("jan@acme.nl"),
            None,
            vec![ev("j1", JAN_SUBJECT, now - h(1), now + h(5), &["Support"])],
        );
        graph.set_events(&mb("piet@acme.nl"), None, vec![]);
        graph.set_events(
            &mb("piket@acme.nl"),
            None,
            vec![ev("p1", PIKET_SUBJECT, now, now + h(24), &[])],
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let s = Setup { graph, tring, dir };
        s.write_config(|t| t);
        s
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("rooster.toml")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes the config (changed by `edit`) and both secret files beside it.
    fn write_config(&self, edit: impl FnOnce(String) -> String) {
        let dir = self.dir.path();
        std::fs::write(dir.join("tring-key"), format!("{TRING_KEY}\n")).unwrap();
        std::fs::write(dir.join("graph-secret"), format!("{GRAPH_SECRET}\n")).unwrap();
        #[cfg(unix)]
        for f in ["tring-key", "graph-secret"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let o = self.graph.options();
        let text = format!(
            r#"state = "{state}"

[tring]
base_url = "{tring}"
tenant = "ACME"
key_file = "tring-key"

[graph]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
client_secret_file = "graph-secret"
base_url = "{graph}"
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
mobile = "0623456789"

[[queue]]
number = "600"
name = "Support"

[[queue]]
number = "700"
name = "Piket"

[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]

[[rule]]
name = "on call"
calendar = "piket@acme.nl"
who = "subject"
match = {{ subject = "piket" }}
queues = ["700"]
as = "mobile"
"#,
            state = self.state_dir().join("rooster.db").display(),
            tring = self.tring.base_url(),
            graph = self.graph.base_url(),
            authority = self.graph.authority(),
            tenant_id = o.tenant_id,
            client_id = o.client_id,
        );
        let text = edit(text);
        std::fs::write(self.config(), text).unwrap();
    }

    async fn doctor(&self, opts: &DoctorOptions) -> DoctorReport {
        tokio::time::timeout(Duration::from_secs(60), doctor(&self.config(), opts))
            .await
            .expect("doctor hung: a check waits on a simulator that never answers")
    }

    /// SPEC §4: doctor never writes — TRiNG saw only reads, the state directory is untouched.
    fn assert_nothing_written(&self) {
        for r in self.tring.requests() {
            assert!(
                matches!(
                    r.action,
                    Some(Action::List | Action::ListQueues | Action::CustomList)
                ),
                "doctor sent a TRiNG request that is not a read: {r:?}"
            );
        }
        let left: Vec<_> = std::fs::read_dir(self.state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "doctor wrote into the state directory: {left:?}"
        );
    }
}

fn text(r: &DoctorReport) -> String {
    let mut out = Vec::new();
    r.render(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The one line of `area` with `status` whose message contains `needle`.
fn line<'a>(r: &'a DoctorReport, area: Area, status: Status, needle: &str) -> &'a Check {
    let found: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| c.area == area && c.status == status && c.message.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {status} {area:?} line containing {needle:?}:\n{}",
        text(r)
    );
    found[0]
}

fn fix(c: &Check) -> &str {
    c.fix.as_deref().expect("every warn and FAIL carries a fix")
}

#[tokio::test]
async fn everything_in_order_is_all_ok_and_exits_0() {
    let s = Setup::start().await;
    let r = s.doctor(&DoctorOptions::default()).await;
    assert_eq!(r.exit_code, 0, "{}", text(&r));
    assert_eq!(
        r.count(Status::Warn) + r.count(Status::Fail),
        0,
        "{}",
        text(&r)
    );
    line(&r, Area::Config, Status::Ok, "is valid");
    line(&r, Area::Clock, Status::Ok, "Graph's");
    line(&r, Area::Clock, Status::Ok, "TRiNG's");
    line(&r, Area::Token, Status::Ok, "token issued");
    line(
        &r,
        Area::Calendar,
        Status::Ok,
        "jan@acme.nl: readable over the window",
    );
    line(
        &r,
        Area::Calendar,
        Status::Ok,
        "piket@acme.nl: readable over the window",
    );
    line(
        &r,
        Area::Rule,
        Status::Ok,
        "rule \"support shifts\": 1 event(s)",
    );
    line(&r, Area::Rule, Status::Ok, "rule \"on call\": 1 event(s)");
    line(&r, Area::Tring, Status::Ok, "key and tenant ACME accepted");
    line(
        &r,
        Area::Tring,
        Status::Ok,
        "queue 600 (Support): listed, 1 member(s)",
    );
    line(
        &r,
        Area::Tring,
        Status::Ok,
        "extension 201 (Jan de Vries): known",
    );
    line(
        &r,
        Area::Tring,
        Status::Ok,
        "mobile 0623456789 (Piet Jansen): a custom destination",
    );
    line(&r, Area::State, Status::Ok, "is writable by this user");
    line(&r, Area::State, Status::Ok, "does not exist yet");
    line(
        &r,
        Area::State,
        Status::Ok,
        "no rooster daemon holds the writer lock",
    );
    // SPEC order: the areas never go backwards.
    let areas: Vec<Area> = r.checks.iter().map(|c| c.area).collect();
    assert!(areas.windows(2).all(|w| w[0] <= w[1]), "{}", text(&r));
    s.assert_nothing_written();
}

#[tokio::test]
async fn a_mailbox_outside_the_access_policy_fails_with_the_scope_section() {
    let s = Setup::start().await;
    s.graph.inject(GraphFault {
        mailbox: Some(Mailbox::parse("piet@acme.nl").unwrap()),
        kind: GraphFaultKind::AccessDenied,
        times: None,
    });
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Calendar, Status::Fail, "piet@acme.nl");
    assert!(c.message.contains("access policy"), "{}", text(&r));
    assert!(fix(c).contains("INSTALL.md section 3"), "{}", text(&r));
    line(&r, Area::Calendar, Status::Ok, "jan@acme.nl");
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn a_wrong_secret_fails_with_aadsts7000215_and_the_value_not_the_id() {
    let s = Setup::start().await;
    s.write_config(|t| t.replace("graph-secret\"", "wrong-secret\""));
    std::fs::write(s.dir.path().join("wrong-secret"), "not-the-secret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            s.dir.path().join("wrong-secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Token, Status::Fail, "AADSTS7000215");
    assert!(fix(c).contains("Value (not its Secret ID)"), "{}", text(&r));
    line(&r, Area::Calendar, Status::Warn, "not checked");
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn an_expired_secret_fails_with_aadsts7000222_and_the_rotation_section() {
    let s = Setup::start().await;
    s.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::ExpiredSecret,
        times: None,
    });
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Token, Status::Fail, "AADSTS7000222");
    assert!(fix(c).contains("new client secret"), "{}", text(&r));
    assert!(fix(c).contains("section 9"), "{}", text(&r));
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn missing_consent_fails_the_calendars_with_the_consent_fix() {
    let s = Setup::start().await;
    s.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::NoPermission,
        times: None,
    });
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Calendar, Status::Fail, "jan@acme.nl");
    assert!(fix(c).contains("admin consent"), "{}", text(&r));
    assert_eq!(r.exit_code, 1);
}

#[tokio::test]
async fn a_category_typo_warns_about_the_rule_and_still_exits_0() {
    let s = Setup::start().await;
    s.write_config(|t| t.replace("categories = [\"Support\"]", "categories = [\"Suport\"]"));
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(
        &r,
        Area::Rule,
        Status::Warn,
        "rule \"support shifts\": no event",
    );
    assert!(c.message.contains("\"suport\""), "{}", text(&r));
    assert!(fix(c).contains("typo"), "{}", text(&r));
    assert_eq!(r.exit_code, 0, "warnings alone exit 0:\n{}", text(&r));
    s.assert_nothing_written();
}

#[tokio::test]
async fn a_rota_name_that_matches_nobody_is_listed() {
    let s = Setup::start().await;
    let now = Utc::now();
    s.graph.set_events(
        &Mailbox::parse("piket@acme.nl").unwrap(),
        None,
        vec![Event {
            id: "p9".into(),
            subject: "Piket Klaas".into(),
            when: EventTime::Timed {
                start: now,
                end: now + TimeDelta::hours(3),
            },
            is_cancelled: false,
            show_as: ShowAs::Busy,
            categories: vec![],
            sensitivity: Sensitivity::Normal,
            organizer: None,
            attendees: vec![],
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }],
    );
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Rule, Status::Warn, "\"Piket Klaas\"");
    assert!(
        c.message.contains("names no configured person"),
        "{}",
        text(&r)
    );
    assert!(fix(c).contains("alias"), "{}", text(&r));
    line(
        &r,
        Area::Rule,
        Status::Warn,
        "rule \"on call\": 1 event(s) match it",
    );
    assert_eq!(r.exit_code, 0);
}

#[tokio::test]
async fn a_mobile_that_is_no_custom_destination_fails() {
    let s = Setup::start().await;
    s.write_config(|t| t.replace("0623456789", "0699999999"));
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(
        &r,
        Area::Tring,
        Status::Fail,
        "mobile 0699999999 (Piet Jansen)",
    );
    assert!(
        c.message.contains("not a custom destination"),
        "{}",
        text(&r)
    );
    assert!(
        fix(c).contains("custom destination for 0699999999"),
        "{}",
        text(&r)
    );
    line(&r, Area::Tring, Status::Ok, "mobile 0612345678");
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn mobiles_that_cannot_be_checked_warn() {
    let s = Setup::start().await;
    s.tring.set_custom_list_refused(true);
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Tring, Status::Warn, "mobile 0612345678");
    assert!(c.message.contains("cannot check"), "{}", text(&r));
    assert_eq!(r.exit_code, 0);
}

#[tokio::test]
async fn an_unknown_extension_fails() {
    let s = Setup::start().await;
    s.tring.set_known_extensions(Some(vec!["201".into()]));
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Tring, Status::Fail, "extension 202 (Piet Jansen)");
    assert!(fix(c).contains("Piet Jansen"), "{}", text(&r));
    assert_eq!(r.exit_code, 1);
}

#[tokio::test]
async fn an_unparseable_list_body_fails_with_the_redacted_excerpt() {
    let s = Setup::start().await;
    s.tring.inject(Fault {
        queue: Some(QueueNo::parse("700").unwrap()),
        action: Some(Action::List),
        kind: FaultKind::Garbage(format!("<html>proxy says key={TRING_KEY}</html>")),
        times: None,
    });
    let r = s.doctor(&DoctorOptions::default()).await;
    let c = line(&r, Area::Tring, Status::Fail, "queue 700 (Piket)");
    assert!(
        c.message.contains("<html>proxy says key=[redacted]</html>"),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains(TRING_KEY));
    assert!(fix(c).contains("--save-replies"), "{}", text(&r));
    line(&r, Area::Tring, Status::Ok, "queue 600 (Support)");
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn a_clock_off_by_more_than_two_seconds_fails_with_the_offset() {
    let s = Setup::start().await;
    s.tring.set_clock_offset(TimeDelta::seconds(30));
    s.graph.set_clock_offset(TimeDelta::seconds(-10));
    let r = s.doctor(&DoctorOptions::default()).await;
    let t = line(&r, Area::Clock, Status::Fail, "behind TRiNG's");
    // A Date header has whole seconds: the offset is known to within about a second.
    assert!(
        t.message.contains("29.") || t.message.contains("30."),
        "{}",
        text(&r)
    );
    assert!(fix(t).contains("chrony"), "{}", text(&r));
    let g = line(&r, Area::Clock, Status::Fail, "ahead of Graph's");
    assert!(
        g.message.contains("9.") || g.message.contains("10."),
        "{}",
        text(&r)
    );
    assert_eq!(r.exit_code, 1);
    s.assert_nothing_written();
}

#[tokio::test]
async fn an_invalid_config_exits_2() {
    let s = Setup::start().await;
    s.write_config(|t| t.replace("[[queue]]\nnumber = \"700\"", "[[queue]]\nnumber = \"7x0\""));
    let r = s.doctor(&DoctorOptions::default()).await;
    assert_eq!(r.exit_code, 2, "{}", text(&r));
    assert!(r.config_invalid);
    let c = &r.checks[0];
    assert_eq!((c.area, c.status), (Area::Config, Status::Fail));
    assert!(s.tring.requests().is_empty() && s.graph.requests().is_empty());
}

#[tokio::test]
async fn it_works_beside_a_daemon_and_names_the_lock_holder() {
    let s = Setup::start().await;
    let db = s.state_dir().join("rooster.db");
    let store = rooster::store::Store::open(&db, rooster::store::OpenMode::Writer)
        .await
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let r = s.doctor(&DoctorOptions::default()).await;
    line(
        &r,
        Area::State,
        Status::Ok,
        &format!("holds the writer lock (pid {})", std::process::id()),
    );
    line(
        &r,
        Area::State,
        Status::Ok,
        "readable and its migrations are current",
    );
    assert_eq!(r.exit_code, 0, "{}", text(&r));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "doctor changed the state"
    );
    store.close().await;
}

#[tokio::test]
async fn json_is_one_object_with_every_check() {
    let s = Setup::start().await;
    s.write_config(|t| t.replace("categories = [\"Support\"]", "categories = [\"Suport\"]"));
    let mut out = Vec::new();
    let opts = DoctorOptions::default();
    let code = rooster::commands::doctor::run(&s.config(), &opts, true, &mut out)
        .await
        .unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["config_invalid"], false);
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| {
        ["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap())
            && c["area"].is_string()
            && c["message"].is_string()
    }));
    let warn = checks
        .iter()
        .find(|c| c["status"] == "warn")
        .expect("the typo's warning");
    assert_eq!(warn["area"], "rule");
    assert!(warn["fix"].as_str().unwrap().contains("typo"));
    assert!(checks.iter().any(|c| c["area"] == "clock"));
}

#[tokio::test]
async fn saved_replies_hold_no_secret_token_or_calendar_text() {
    let s = Setup::start().await;
    let out = s.dir.path().join("replies");
    let r = s
        .doctor(&DoctorOptions {
            save_replies: Some(out.clone()),
        })
        .await;
    assert_eq!(r.exit_code, 0, "{}", text(&r));
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "entra-token.json",
        "graph-calendarview-jan@acme.nl-1.json",
        "graph-calendarview-piket@acme.nl-1.json",
        "tring-list-600.json",
        "tring-listqueues-202.json",
        "tring-custom-list.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert_eq!(names.len(), r.saved_replies.len());
    let all: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for forbidden in [
        TRING_KEY,
        GRAPH_SECRET,
        "sim-access-token",
        JAN_SUBJECT,
        PIKET_SUBJECT,
        "Kanarie",
        "Zebrapad",
    ] {
        assert!(
            !all.contains(forbidden),
            "{forbidden:?} survived in {}",
            out.display()
        );
    }
    assert!(
        all.contains("[subject]"),
        "placeholders stand where the subjects were"
    );
    // The TRiNG answer itself is kept, so a new shape can be taught to the parser.
    let list = std::fs::read_to_string(out.join("tring-list-600.json")).unwrap();
    assert!(list.contains("201-ACME"), "{list}");
    s.assert_nothing_written();
}
