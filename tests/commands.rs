//! The commands' typed reports (SPEC §4): `--json` and the text come from the same values,
//! `plan --json` has SPEC §4's shape, and a `cu:` member named by hand must be a configured
//! mobile. Against the simulators over loopback, with the harness's known rota.

mod common;

use chrono::Utc;
use common::*;
use rooster::commands::{self, PlanReport, Report, status_report};

#[tokio::test]
async fn status_json_and_text_say_the_same() {
    let h = Harness::start().await;
    let mut rec = h.reconciler().await;
    run_cycle(&mut rec).await;
    drop(rec);
    let report = within("status", 30, status_report(&h.cfg, &secrets(), Utc::now()))
        .await
        .expect("status runs");
    let json = serde_json::to_value(&report).expect("serialises");
    let mut text = Vec::new();
    report.render(&mut text).expect("renders");
    let text = String::from_utf8(text).expect("utf-8");
    // The converged state of the harness, written out (tests/common converged_live).
    assert_eq!(json["queues"][0]["queue"], "600");
    assert_eq!(
        json["queues"][0]["live"],
        serde_json::json!(["ext:203", "ext:299"])
    );
    assert_eq!(
        json["queues"][2]["owned"],
        serde_json::json!(["cu:0687654321"])
    );
    assert!(json["last_cycle"]["started"].as_str().is_some());
    for line in [
        "queue 600 Support",
        "  live     ext:203 ext:299",
        "  owned    ext:203",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn plan_json_has_the_shape_of_spec_section_4() {
    let h = Harness::start().await;
    let mut rec = h.reconciler().await;
    let obs = within("observing", 30, rec.observe(true))
        .await
        .expect("observes");
    let decision = rec.decide(&obs, obs.at);
    let json =
        serde_json::to_value(PlanReport::new(&h.cfg, &obs, &decision, obs.at)).expect("serialises");
    let q600 = &json["queues"][0];
    assert_eq!(q600["queue"], "600");
    assert_eq!(q600["actions"][0]["action"], "add");
    assert_eq!(q600["actions"][0]["member"], "ext:203");
    assert_eq!(q600["actions"][0]["person"], "Anouk Bakker");
    assert_eq!(q600["desired"][0]["why"][0]["rule"], "support shifts");
    assert!(q600["desired"][0]["why"][0]["from"].as_str().is_some());
    assert_eq!(json["calendars"][0]["complete"], true);
    // A dry observation wrote nothing.
    assert!(writes(&h.tring.requests()).is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_mobile_named_by_hand_must_be_a_configured_one() {
    let h = Harness::start().await;
    let stranger = m(&format!("cu:{STRANGER_MOBILE}"));
    let err = commands::configured_mobile(&h.cfg, &stranger).expect_err("refused");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains(STRANGER_MOBILE), "{err}");
    commands::configured_mobile(&h.cfg, &m(&format!("cu:{JAN_MOBILE}"))).expect("Jan's mobile");
    commands::configured_mobile(&h.cfg, &m("ext:999")).expect("extensions are not checked");
    h.shutdown().await;
}
