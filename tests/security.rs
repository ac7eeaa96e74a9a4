//! Security tests: calendar text crafted to inject changes nothing outside
//! the rules and is logged escaped and truncated (SPEC §2 "calendar text only chooses among
//! persons and queues that the config names", §4 "Logs"); only configured mobiles are ever
//! added as CU; secrets travel only over https except to loopback; a secret file others can
//! read is named in a warning; and no log line carries the TRiNG key, the Graph secret or a
//! token.
//!
//! Drives only the public API against the simulators on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use rooster::config::Config;
use rooster::model::Event;
use rooster::sim::tring::Action;

const LONG_RUN: usize = 5000;

/// The known calendars of the harness plus crafted ones: in the piket rota (who = subject)
/// and as categories of Jan's own calendar, all active now.
fn crafted(now: DateTime<Utc>) -> BTreeMap<&'static str, Vec<Event>> {
    let mut evs = events(now);
    let from = now - chrono::Duration::minutes(30);
    let to = now + chrono::Duration::hours(2);
    let long = format!("piket {} Piet Jansen", "A".repeat(LONG_RUN));
    let piket = evs.get_mut(PIKET).expect("piket calendar");
    for (id, subject) in [
        ("x-amp", "piket Piet Jansen 201&action=clean"),
        (
            "x-pct",
            "piket %26action%3Dclean%26number%3D600 Piet Jansen",
        ),
        ("x-nl", "piket nobody\nINJECTED-LINE ERROR fake entry"),
        (
            "x-ansi",
            "piket \u{1b}[31mRED\u{1b}[0m \u{1b}]0;title\u{7} nobody",
        ),
        ("x-rtl", "piket \u{202E}nesnaJ teiP\u{202C} nobody"),
        ("x-long", long.as_str()),
        ("x-two", "piket PJ"),
        ("x-mobile", "piket 0699999999"),
        (
            "x-mobile2",
            "piket cu:0699999999 &extension=0699999999&type=CU",
        ),
    ] {
        piket.push(event(id, subject, &[], from, to));
    }
    // Categories that merely contain "Support" must not match the Support rule.
    evs.get_mut(JAN).expect("jan calendar").push(event(
        "x-cat",
        "crafted categories",
        &[
            "Support&action=clean",
            "Support%26",
            "Support\nINJECTED-CATEGORY",
            "\u{202E}Support",
            "\u{1b}[1mSupport",
        ],
        from,
        to,
    ));
    evs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_calendar_text_changes_nothing_outside_the_rules() {
    let mut h = Harness::start_with(crafted).await;
    // "PJ" is an alias of two persons: an event naming it must be skipped, never guessed.
    let text = config_text(
        h.tring.base_url().as_str(),
        h.graph.base_url().as_str(),
        h.graph.authority().as_str(),
        &h.db,
    )
    .replace("aliases = [\"JdV\"]", "aliases = [\"JdV\", \"PJ\"]")
    .replace(
        &format!("mobile = \"{PIET_MOBILE}\""),
        &format!("mobile = \"{PIET_MOBILE}\"\naliases = [\"PJ\"]"),
    );
    h.cfg =
        Arc::new(Config::parse(&text, Path::new("test.toml")).expect("config with a shared alias"));
    h.tring.clear_requests();
    let mut rec = h.reconciler().await;
    let report = run_cycle(&mut rec).await;
    let _ = run_cycle(&mut rec).await;
    let reqs = h.tring.requests();

    // Only the writes the rules call for, nothing else: no clean, no stranger.
    let mut sent = writes(&reqs);
    sent.sort();
    let mut expected = vec![
        (Action::Add, "600".to_owned(), "203".to_owned()),
        (Action::Del, "600".to_owned(), "201".to_owned()),
        (Action::Add, "610".to_owned(), "202".to_owned()),
        (Action::Del, "610".to_owned(), "298".to_owned()),
        (Action::Add, "700".to_owned(), PIET_MOBILE.to_owned()),
        (Action::Del, "700".to_owned(), JAN_MOBILE.to_owned()),
    ];
    expected.sort();
    assert_eq!(
        sent, expected,
        "writes beyond the rules (report {:?})",
        report.errors
    );
    for r in &reqs {
        assert_ne!(r.action, Some(Action::Clean), "a clean was sent: {r:?}");
        for v in [&r.extension, &r.queue].into_iter().flatten() {
            assert!(
                v.chars().all(|c| c.is_ascii_digit()),
                "non-digit parameter {v:?} in {r:?}"
            );
        }
        assert!(!r.query_redacted.contains("clean"), "{}", r.query_redacted);
    }
    // SPEC §2: only a configured person's mobile can ever be added as CU.
    assert!(
        reqs.iter()
            .all(|r| r.extension.as_deref() != Some(STRANGER_MOBILE)),
        "a mobile from calendar text reached TRiNG"
    );
    assert_eq!(h.live(), converged_live());
    assert_eq!(owned(&rec).await, converged_owned());

    // Logged safely: escaped (no raw control or bidi characters, no forged line) and
    // truncated (no 5000-character run), yet the skipped events are still named.
    let log = log_text();
    assert!(!log.contains('\u{1b}'), "raw ESC in the log");
    assert!(!log.contains('\u{7}'), "raw BEL in the log");
    assert!(
        !log.contains('\u{202E}') && !log.contains('\u{202C}'),
        "raw bidi override in the log"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("INJECTED"),
            "calendar text forged a log line: {line:?}"
        );
    }
    assert!(
        !log.contains(&"A".repeat(300)),
        "a very long subject was logged untruncated"
    );
    assert!(
        log.contains("INJECTED-LINE"),
        "the skipped event with a newline was not named"
    );
    assert!(
        log.contains("PJ"),
        "the ambiguous event was not named in a warning"
    );
    println!(
        "crafted subjects: {} writes, all within the rules; log escaped and truncated",
        sent.len()
    );
    drop(rec);
    h.shutdown().await;
    assert_no_secrets_logged();
}

// ---------------------------------------------------------------------------------------
// https only, except on loopback (SPEC §4: secrets travel to these URLs)

fn parse_with(tring: &str, graph_base: &str, authority: &str) -> Result<Config, String> {
    let text = config_text(tring, graph_base, authority, Path::new("/tmp/x/rooster.db"));
    Config::parse(&text, Path::new("rooster.toml")).map_err(|e| e.to_string())
}

const TRING_OK: &str = "https://api.tring.nu/pbx/proxyapi.php";
const GRAPH_OK: &str = "https://graph.microsoft.com/v1.0";
const AUTH_OK: &str = "https://login.microsoftonline.com";

#[test]
fn plain_http_is_refused_except_on_loopback() {
    assert!(parse_with(TRING_OK, GRAPH_OK, AUTH_OK).is_ok());
    let cases = [
        (
            "tring base_url",
            "http://api.tring.nu/pbx/proxyapi.php",
            GRAPH_OK,
            AUTH_OK,
            "base_url",
        ),
        (
            "graph base_url",
            TRING_OK,
            "http://graph.microsoft.com/v1.0",
            AUTH_OK,
            "base_url",
        ),
        (
            "graph authority",
            TRING_OK,
            GRAPH_OK,
            "http://login.microsoftonline.com",
            "authority",
        ),
        (
            "ftp scheme",
            "ftp://api.tring.nu/pbx/proxyapi.php",
            GRAPH_OK,
            AUTH_OK,
            "base_url",
        ),
        (
            "http to a look-alike of loopback",
            "http://127.0.0.1.evil.example/pbx/proxyapi.php",
            GRAPH_OK,
            AUTH_OK,
            "base_url",
        ),
    ];
    for (what, t, g, a, key) in cases {
        let err = parse_with(t, g, a).expect_err(what);
        assert!(err.contains("https"), "{what}: {err}");
        assert!(err.contains(key), "{what}: the key is not named: {err}");
        // `path:line:` so the operator finds it (exit 2 is main's mapping of ConfigError).
        assert!(err.starts_with("rooster.toml:"), "{what}: {err}");
    }
    for ok in [
        "http://127.0.0.1:8080/pbx/proxyapi.php",
        "http://localhost:8080/pbx/proxyapi.php",
        "http://[::1]:8080/pbx/proxyapi.php",
    ] {
        parse_with(ok, GRAPH_OK, AUTH_OK).unwrap_or_else(|e| panic!("{ok} is loopback: {e}"));
    }
    parse_with(TRING_OK, "http://127.0.0.1:9/v1.0", "http://127.0.0.1:9/")
        .unwrap_or_else(|e| panic!("loopback graph: {e}"));
}

// ---------------------------------------------------------------------------------------
// Secret files

#[test]
fn secret_file_readable_by_others_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("tring-key");
    let secret = dir.path().join("graph-secret");
    std::fs::write(&key, format!("{TRING_KEY}\n")).expect("write key");
    std::fs::write(&secret, GRAPH_SECRET).expect("write secret");
    let text = config_text(TRING_OK, GRAPH_OK, AUTH_OK, &dir.path().join("rooster.db"))
        .replace(
            "key_env = \"ROOSTER_TEST_TRING_KEY\"",
            &format!("key_file = \"{}\"", key.display()),
        )
        .replace(
            "client_secret_env = \"ROOSTER_TEST_GRAPH_SECRET\"",
            &format!("client_secret_file = \"{}\"", secret.display()),
        );
    let cfg = Config::parse(&text, &dir.path().join("rooster.toml")).expect("config");

    for (path, mode) in [(&key, 0o600), (&secret, 0o600)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let (secrets, warnings) = cfg.load_secrets_with(&|_| None).expect("secrets load");
    assert_eq!(warnings, Vec::<String>::new(), "mode 600 must not warn");
    assert_eq!(
        secrets.tring_key.expose(),
        TRING_KEY,
        "trailing newline trimmed"
    );
    // Debug of the loaded secrets never shows them.
    let debug = format!("{secrets:?}");
    assert!(
        !debug.contains(TRING_KEY) && !debug.contains(GRAPH_SECRET),
        "{debug}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (_, warnings) = cfg.load_secrets_with(&|_| None).expect("secrets load");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&key.display().to_string()),
        "{warnings:?}"
    );
    assert!(
        !warnings[0].contains(TRING_KEY),
        "the warning leaks the key"
    );

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o604)).expect("chmod");
    let (_, warnings) = cfg.load_secrets_with(&|_| None).expect("secrets load");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1].contains(&secret.display().to_string()),
        "{warnings:?}"
    );
}
