//! Fuzz target: Graph calendarView page normalisation (`rooster::graph::normalize_page`) on
//! arbitrary bytes. Properties (issue 7; SPEC §2, graph-notes B4–B5): never panics; every event
//! it returns starts no later than it ends (all-day events strictly before); every error renders
//! as one line without control characters, because it goes into a log.
//! Touches nothing but the pure normaliser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rooster::graph::normalize_page;
use rooster::model::EventTime;

fuzz_target!(|data: &[u8]| {
    match normalize_page(data) {
        Ok((events, _next)) => {
            for ev in events {
                match ev.when {
                    EventTime::Timed { start, end } => assert!(start <= end, "{ev:?}"),
                    EventTime::AllDay { start, end } => assert!(start < end, "{ev:?}"),
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                !text.chars().any(char::is_control),
                "error message carries a control character: {text:?}"
            );
        }
    }
});
