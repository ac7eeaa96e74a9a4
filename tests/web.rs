//! The status page (SPEC §4 "Status page") served over the state a real cycle left against
//! the simulators, fetched over HTTP and parsed with an HTML parser: its structure, every
//! queue, well-formed SVG, hostile calendar subjects escaped and inert, and no phone number or
//! secret anywhere in it.

mod common;

use std::sync::Arc;

use common::*;
use rooster::sim::tring::{Action, Fault, FaultKind};
use scraper::{Html, Selector};
use tokio_util::sync::CancellationToken;

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("test selector parses")
}

#[tokio::test]
async fn the_page_shows_every_queue_and_keeps_calendar_text_inert() {
    let h = Harness::start_with(hostile).await;
    // TRiNG's answer names the mobile and echoes the key it was sent (the key travels in
    // the query string): the page must show neither, and the state must not keep the key.
    h.tring.inject(Fault {
        queue: Some(q("700")),
        action: Some(Action::Add),
        kind: FaultKind::ErrorIn200(format!(
            "Custom destination {PIET_MOBILE} not found (key={TRING_KEY})"
        )),
        times: None,
    });
    let mut rec = h.reconciler().await;
    run_cycle(&mut rec).await;
    let store = rec.store().expect("a writer store");
    let held = store.held_writes().await.expect("held writes read");
    assert_eq!(held.len(), 1, "the refused add is held: {held:?}");
    let journal = store
        .journal(chrono::DateTime::<chrono::Utc>::MIN_UTC, 1000)
        .await
        .expect("journal read");
    let stored = format!("{held:?} {journal:?}");
    assert!(
        stored.contains("not found"),
        "TRiNG's answer is kept: {stored}"
    );
    assert!(
        !stored.contains(TRING_KEY),
        "the key reached the state: {stored}"
    );

    let cancel = CancellationToken::new();
    let addr = within(
        "starting the page",
        10,
        rooster::web::serve(
            "127.0.0.1:0".parse().expect("address"),
            Arc::new((*h.cfg).clone()),
            cancel.clone(),
        ),
    )
    .await
    .expect("the page listens");
    let resp = within(
        "fetching the page",
        10,
        reqwest::get(format!("http://{addr}/")),
    )
    .await
    .expect("the page answers");
    assert_eq!(resp.status(), 200);
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "no script may run: {csp}"
    );
    let body = within("reading the page", 10, resp.text())
        .await
        .expect("a body");
    cancel.cancel();

    // No phone number and no secret, in any form the page could carry them.
    for needle in [
        JAN_MOBILE,
        PIET_MOBILE,
        TRING_KEY,
        GRAPH_SECRET,
        TOKEN_PREFIX,
    ] {
        assert!(!body.contains(needle), "the page contains {needle:?}");
    }
    // The bidi override never reaches the page as such.
    assert!(
        !body.contains('\u{202E}'),
        "a bidi override reached the page"
    );

    let doc = Html::parse_document(&body);
    assert!(body.starts_with("<!DOCTYPE html>"));
    // Structure: a title, a refresh, no script anywhere, no element from calendar text.
    assert_eq!(doc.select(&sel("head > title")).count(), 1);
    assert_eq!(
        doc.select(&sel(r#"meta[http-equiv="refresh"]"#)).count(),
        1,
        "the page refreshes itself"
    );
    assert_eq!(doc.select(&sel("script")).count(), 0, "no script element");
    assert_eq!(doc.select(&sel("img")).count(), 0, "no img element");
    assert_eq!(doc.select(&sel("a")).count(), 0, "no link at all");
    for el in doc.select(&sel("*")) {
        for (name, value) in el.value().attrs() {
            assert!(
                !name.starts_with("on"),
                "event handler attribute {name} on <{}>",
                el.value().name()
            );
            assert!(
                !value.to_lowercase().contains("javascript:"),
                "javascript: URL in attribute {name}"
            );
        }
    }
    // The hostile subjects are there as text (escaped), in the history's reasons.
    let text: String = doc.root_element().text().collect();
    for subject in [SCRIPT, IMG, JS_URL] {
        assert!(text.contains(subject), "subject {subject:?} shown as text");
    }
    assert!(text.contains("piket Piet Jansen ?gnp.exe"));
    assert!(body.contains("&lt;script&gt;"), "the script tag is escaped");

    // Every queue, with its name and who is on by name.
    for (number, name, on) in [
        ("600", "Support", vec!["Anouk Bakker"]),
        ("610", "Sales", vec!["Jan de Vries", "Piet Jansen"]),
        ("700", "Piket", vec!["Piet Jansen (mobile)"]),
    ] {
        let section = doc
            .select(&sel(&format!("section#queue-{number}")))
            .next()
            .unwrap_or_else(|| panic!("queue {number} is on the page"));
        let heading: String = section
            .select(&sel("h2"))
            .next()
            .expect("a heading")
            .text()
            .collect();
        assert_eq!(heading, format!("Queue {number} {name}"));
        let now_line: String = section
            .select(&sel("p"))
            .next()
            .expect("who is on")
            .text()
            .collect();
        assert_eq!(now_line, format!("Now: {}", on.join(", ")));
        // The timeline: one SVG, well-formed XML, seven rows of cells.
        let svgs: Vec<_> = section.select(&sel("svg")).collect();
        assert_eq!(svgs.len(), 1, "queue {number}: one timeline");
        let svg = svgs[0].html();
        let xml = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("queue {number}: the SVG is not well-formed XML: {e}"));
        let rows = xml.descendants().filter(|n| n.has_tag_name("g")).count();
        assert_eq!(rows, 7, "queue {number}: a row per day");
        assert!(xml.descendants().any(|n| n.has_tag_name("rect")));
    }
    // The history table lists the writes, people by name.
    let rows: Vec<String> = doc
        .select(&sel("section.history tbody tr"))
        .map(|r| r.text().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("Piet Jansen (mobile)") && r.contains("FAILED")),
        "the failed add of Piet's mobile, by name: {rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r.contains("[mobile]")),
        "TRiNG's answer with the number masked: {rows:#?}"
    );
    h.shutdown().await;
}
