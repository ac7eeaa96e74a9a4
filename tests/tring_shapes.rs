//! A custom destination rooster added must read back as the same `cu:` member in every
//! `list` shape the TRiNG simulator can serve (tring-api.md "Recognising a member whatever
//! the shape"), or an exclusive queue flaps: `add cu:X` and `del ext:X` every cycle. For each
//! shape, the real reconciler runs two cycles against the simulators: the first adds the
//! on-call mobile, the second writes nothing (SPEC §3 rule 6).
//!
//! Expected members are written out literally; nothing here calls rooster's parser.

mod common;

use common::*;
use rooster::model::Secret;
use rooster::sim::tring::{Action, ListShape};
use rooster::tring::TringClient;

/// Cycle 1 from the harness's known state, then cycle 2 with nothing changed; returns the
/// writes TRiNG saw in each cycle.
async fn two_cycles(h: &Harness) -> (Vec<(Action, String, String)>, Vec<(Action, String, String)>) {
    let mut rec = h.reconciler().await;
    h.tring.clear_requests();
    run_cycle(&mut rec).await;
    let first = writes(&h.tring.requests());
    h.tring.clear_requests();
    run_cycle(&mut rec).await;
    let second = writes(&h.tring.requests());
    (first, second)
}

async fn converges_and_stays_in(shape: ListShape) {
    let h = Harness::start().await;
    h.tring.set_shape(shape);
    let (first, second) = two_cycles(&h).await;

    // Queue 700 is exclusive; Piet is on call, so his mobile is desired; Jan's watch ended.
    assert!(
        first.contains(&(Action::Add, "700".into(), "0687654321".into())),
        "{shape:?}: cycle 1 did not add Piet's mobile: {first:?}"
    );
    assert!(
        first.contains(&(Action::Del, "700".into(), "0612345678".into())),
        "{shape:?}: cycle 1 did not remove Jan's mobile: {first:?}"
    );
    assert_eq!(
        h.tring.members(&q("700")),
        vec![m("cu:0687654321")],
        "{shape:?}"
    );
    assert_eq!(
        h.tring.members(&q("600")),
        vec![m("ext:299"), m("ext:203")],
        "{shape:?}"
    );
    assert_eq!(h.tring.members(&q("610")), vec![m("ext:202")], "{shape:?}");
    assert_eq!(
        second,
        vec![],
        "{shape:?}: cycle 2 wrote to TRiNG although nothing changed"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn json_strings_with_custom_destination_as_local_interface() {
    converges_and_stays_in(ListShape::JsonStrings).await;
}

#[tokio::test]
async fn json_strings_with_custom_destination_as_bare_number() {
    converges_and_stays_in(ListShape::JsonStringsCuBare).await;
}

#[tokio::test]
async fn json_strings_with_custom_destination_tenant_suffixed() {
    converges_and_stays_in(ListShape::JsonStringsCuSuffixed).await;
}

#[tokio::test]
async fn json_objects_with_type() {
    converges_and_stays_in(ListShape::JsonObjects).await;
}

#[tokio::test]
async fn json_objects_with_type_and_tenant_suffixed_agents() {
    converges_and_stays_in(ListShape::JsonObjectsTenantSuffixed).await;
}

#[tokio::test]
async fn json_objects_without_type() {
    converges_and_stays_in(ListShape::JsonObjectsWithoutType).await;
}

#[tokio::test]
async fn plain_status_line_and_one_interface_per_line() {
    converges_and_stays_in(ListShape::Plain).await;
}

#[tokio::test]
async fn plain_pipe_separated_line() {
    converges_and_stays_in(ListShape::PlainPipe).await;
}

#[tokio::test]
async fn without_the_configured_mobiles_a_bare_number_flaps() {
    // The control: a client that was not given the config's numbers reads the bare
    // "0687654321" as an extension, so the second cycle writes again. This is what the
    // tests above would catch if a client were built without `with_known_members`.
    let h = Harness::start().await;
    h.tring.set_shape(ListShape::JsonStringsCuBare);
    let blind = TringClient::with_options(&h.cfg.tring, Secret::new(TRING_KEY), tring_options())
        .expect("tring client");
    h.pbx.use_alt(Some(blind));
    let (_, second) = two_cycles(&h).await;
    assert!(
        second
            .iter()
            .any(|(_, queue, id)| queue == "700" && id == "0687654321"),
        "a client blind to configured mobiles should have written again: {second:?}"
    );
    h.shutdown().await;
}
