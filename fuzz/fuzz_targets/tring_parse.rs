//! Fuzz target: every TRiNG answer parser (`rooster::tring::parse`) on arbitrary text.
//! Properties (issue 7; SPEC §3 safety rule 2, §4 Logs): no parser panics; a list that parses
//! holds only valid members (checked by a round trip through their `ext:`/`cu:` spelling);
//! every error renders as one line without control characters, because it goes into a log.
//! Touches nothing but the pure parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rooster::model::{Extension, Member, Mobile, QueueNo};
use rooster::plan::ActionKind;
use rooster::tring::{KnownMembers, parse_clean, parse_list, parse_listqueues, parse_write};

fn assert_loggable(e: &rooster::tring::TringError) {
    let text = e.to_string();
    assert!(
        !text.chars().any(char::is_control),
        "error message carries a control character: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let configured = KnownMembers::new(
        [Mobile::parse("0612345678").expect("test mobile")],
        [Extension::parse("201").expect("test extension")],
    );
    for known in [KnownMembers::default(), configured] {
        for tenant in ["ACME", ""] {
            match parse_list(&body, tenant, &known) {
                Ok(members) => {
                    for m in members {
                        let again: Member =
                            m.to_string().parse().expect("a parsed member re-parses");
                        assert_eq!(again, m);
                    }
                }
                Err(e) => assert_loggable(&e),
            }
        }
    }
    for action in [ActionKind::Add, ActionKind::Del] {
        if let Err(e) = parse_write(&body, action) {
            assert_loggable(&e);
        }
    }
    match parse_clean(&body) {
        Ok(message) => assert!(!message.chars().any(char::is_control), "{message:?}"),
        Err(e) => assert_loggable(&e),
    }
    match parse_listqueues(&body) {
        Ok(queues) => {
            for q in queues {
                assert_eq!(QueueNo::parse(q.as_str()).as_ref(), Ok(&q));
            }
        }
        Err(e) => assert_loggable(&e),
    }
});
