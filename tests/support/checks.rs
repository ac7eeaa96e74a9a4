//! The checks each cargo-fuzz target in `fuzz/` makes, shared by `tests/properties.rs`
//! (proptest twins) and `tests/fuzz_regressions.rs` (kept inputs), so the three agree.

use std::path::Path;

use rooster::config::Config;
use rooster::graph::normalize_page;
use rooster::model::{EventTime, Extension, Member, Mobile, QueueNo};
use rooster::plan::ActionKind;
use rooster::tring::{KnownMembers, parse_clean, parse_list, parse_listqueues, parse_write};

pub fn assert_loggable(text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "message carries a control character: {text:?}"
    );
}

/// Numbers a config might name, so list parsing is also fuzzed with known members.
fn known_members() -> KnownMembers {
    KnownMembers::new(
        [Mobile::parse("0612345678").expect("test mobile")],
        [Extension::parse("201").expect("test extension")],
    )
}

/// `fuzz_targets/tring_parse.rs`.
pub fn check_tring(body: &str) {
    for known in [KnownMembers::default(), known_members()] {
        for tenant in ["ACME", ""] {
            match parse_list(body, tenant, &known) {
                Ok(members) => {
                    for m in members {
                        let again: Member =
                            m.to_string().parse().expect("a parsed member re-parses");
                        assert_eq!(again, m);
                    }
                }
                Err(e) => assert_loggable(&e.to_string()),
            }
        }
    }
    for action in [ActionKind::Add, ActionKind::Del] {
        if let Err(e) = parse_write(body, action) {
            assert_loggable(&e.to_string());
        }
    }
    match parse_clean(body) {
        Ok(message) => assert_loggable(&message),
        Err(e) => assert_loggable(&e.to_string()),
    }
    match parse_listqueues(body) {
        Ok(queues) => {
            for q in queues {
                assert_eq!(QueueNo::parse(q.as_str()).as_ref(), Ok(&q));
            }
        }
        Err(e) => assert_loggable(&e.to_string()),
    }
}

/// `fuzz_targets/graph_normalize.rs`.
pub fn check_graph(bytes: &[u8]) {
    match normalize_page(bytes) {
        Ok((events, _)) => {
            for ev in events {
                match ev.when {
                    EventTime::Timed { start, end } => assert!(start <= end, "{ev:?}"),
                    EventTime::AllDay { start, end } => assert!(start < end, "{ev:?}"),
                }
            }
        }
        Err(e) => assert_loggable(&e.to_string()),
    }
}

/// `fuzz_targets/config_parse.rs`.
pub fn check_config(text: &str) {
    if let Err(e) = Config::parse(text, Path::new("f.toml")) {
        if let Some(line) = e.line {
            let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
        }
        assert!(
            !e.message.contains('\n'),
            "multi-line message: {:?}",
            e.message
        );
    }
}
