//! The TRiNG adapter end to end: every known answer shape through the parser (fixtures), the
//! client against the simulator and against wiremock (127.0.0.1 only), idempotent writes,
//! retries, uncertain writes, connection failures, the ops commands, and the promise that
//! the key never shows up in an error or a log line (SPEC §4 Logs, tring-api.md).
//!
//! Every test uses the same recognisable key, and one TRACE subscriber (with `log` records
//! from reqwest/hyper bridged in) collects all output of this test binary into one buffer,
//! so the redaction check also covers what the other tests logged.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rooster::config::{SecretSource, TringConfig};
use rooster::model::{Extension, Member, Mobile, QueueNo, Secret};
use rooster::plan::ActionKind;
use rooster::sim::tring::{Action, Fault, FaultKind, ListShape, SimTringOptions, TringSim};
use rooster::tring::{
    CleanOutcome, KnownMembers, RejectReason, RetryPolicy, TringClient, TringClientOptions,
    TringError, WriteOutcome, parse_clean, parse_list, parse_listqueues, parse_write,
};
use url::Url;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SECRET-KEY-4242";
const TENANT: &str = "ACME";
/// Longer than any single test step may take; hitting it means something hangs.
const LIMIT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung for {LIMIT:?}"),
    }
}

// ---------- log capture ----------

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogBuffer;

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the TRACE subscriber once per test binary. `try_init` also bridges the `log`
/// crate (reqwest and wiremock log through it). wiremock is the test's own server and logs
/// unmatched requests verbatim, so it is left out; everything rooster and the HTTP stack
/// emit is kept.
fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::prelude::*;
        let filter = Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_target("wiremock", LevelFilter::OFF);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| LogBuffer);
        // Another test of this binary may have won the race; that is the same subscriber.
        let _ = tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init();
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------- builders ----------

fn q(s: &str) -> QueueNo {
    QueueNo::parse(s).unwrap()
}
fn ext(s: &str) -> Member {
    Member::Agent(Extension::parse(s).unwrap())
}
fn cu(s: &str) -> Member {
    Member::Custom(Mobile::parse(s).unwrap())
}

/// The configured persons' numbers, as `KnownMembers::from_config` would give them: Jan
/// (extension 201, mobile 0612345678) and Piet (extension 202).
fn known() -> KnownMembers {
    KnownMembers::new(
        [Mobile::parse("0612345678").unwrap()],
        [
            Extension::parse("201").unwrap(),
            Extension::parse("202").unwrap(),
        ],
    )
}

fn fast_options() -> TringClientOptions {
    TringClientOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(400),
        retry: RetryPolicy {
            max_tries: 4,
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
    }
}

fn client_for(base_url: Url, key: &str) -> TringClient {
    let cfg = TringConfig {
        base_url,
        tenant: TENANT.to_owned(),
        key: SecretSource::Env("TRING_KEY".to_owned()),
    };
    TringClient::with_options(&cfg, Secret::new(key), fast_options())
        .unwrap()
        .with_known_members(known())
}

fn sim_options() -> SimTringOptions {
    SimTringOptions {
        key: Secret::new(KEY),
        read_only_key: Some(Secret::new("READONLY-KEY-77")),
        tenant: TENANT.to_owned(),
        queues: vec![
            (q("600"), vec![ext("201"), cu("0612345678")]),
            (q("700"), vec![]),
        ],
        custom_destinations: vec![Mobile::parse("0612345678").unwrap()],
        shape: ListShape::JsonStrings,
        addr: None,
    }
}

async fn sim() -> (TringSim, TringClient) {
    capture_logs();
    let sim = within("starting the simulator", TringSim::start(sim_options()))
        .await
        .unwrap();
    let client = client_for(sim.base_url(), KEY);
    (sim, client)
}

fn count(sim: &TringSim, action: Action) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.action == Some(action))
        .count()
}

// ---------- fixtures: one file per known shape ----------

#[derive(Clone, Copy, Debug)]
enum Call {
    List,
    /// The answer to an `add` (writes are read for the action sent).
    Add,
    /// The answer to a `del`.
    Del,
    Clean,
    ListQueues,
}

/// Every fixture and what each parser must make of it. Adding a shape = a file + a line.
const FIXTURES: &[(&str, Call, &str)] = &[
    ("list_json_strings.json", Call::List, "ok: ext:201 ext:202"),
    (
        "list_json_strings_mixed.json",
        Call::List,
        "ok: ext:201 ext:202 cu:0612345678",
    ),
    ("list_json_null.json", Call::List, "ok:"),
    ("list_json_empty_array.json", Call::List, "ok:"),
    (
        "list_json_objects.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_json_objects_tenant_suffixed.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_json_objects_without_type.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_plain_interfaces.txt",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    ("list_plain_empty.txt", Call::List, "ok:"),
    // How a custom destination is spelled in the observed string array is unknown; each
    // spelling reads as the configured mobile (tring-api.md "Recognising a member").
    (
        "list_json_strings_cu_bare.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_json_strings_cu_suffixed.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_json_strings_cu_local.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_json_objects_without_type_bare.json",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_plain_pipe.txt",
        Call::List,
        "ok: ext:201 cu:0612345678",
    ),
    (
        "list_plain_pipe_agents.txt",
        Call::List,
        "ok: ext:201 ext:202",
    ),
    // SPEC §3 rule 2: a plain answer that is no list is never an empty queue.
    (
        "list_plain_pipe_not_interfaces.txt",
        Call::List,
        "unparseable",
    ),
    (
        "list_plain_lines_without_count.txt",
        Call::List,
        "unparseable",
    ),
    ("listqueues_json.json", Call::ListQueues, "ok: 600 700"),
    ("listqueues_json_empty.json", Call::ListQueues, "ok:"),
    ("listqueues_plain.txt", Call::ListQueues, "ok: 600 700"),
    ("write_ok.txt", Call::Add, "ok: applied"),
    ("write_ok.txt", Call::Del, "ok: applied"),
    ("add_success_agent.txt", Call::Add, "ok: applied"),
    ("add_success_custom.txt", Call::Add, "ok: applied"),
    ("del_success.txt", Call::Del, "ok: applied"),
    ("add_already_member.txt", Call::Add, "ok: already"),
    ("del_not_member.txt", Call::Del, "ok: already"),
    // The idempotent messages only count for the action they answer (tring-api.md).
    ("add_not_member.txt", Call::Add, "rejected: Other"),
    ("del_already_member.txt", Call::Del, "rejected: Other"),
    (
        "clean_success.txt",
        Call::Clean,
        "ok: Queue 600 cleaned, 3 members removed",
    ),
    ("write_ok.txt", Call::Clean, "ok: OK"),
    (
        "error_invalid_key.txt",
        Call::List,
        "rejected: InvalidKey permanent",
    ),
    (
        "error_invalid_key.txt",
        Call::Add,
        "rejected: InvalidKey permanent",
    ),
    (
        "error_invalid_tenant.txt",
        Call::List,
        "rejected: InvalidTenant permanent",
    ),
    (
        "error_queue_not_found.txt",
        Call::List,
        "rejected: QueueNotFound permanent",
    ),
    (
        "error_queue_not_found.txt",
        Call::Clean,
        "rejected: QueueNotFound permanent",
    ),
    (
        "error_read_only_key.txt",
        Call::Add,
        "rejected: PermissionDenied permanent",
    ),
    (
        "error_custom_destination_not_found.txt",
        Call::Add,
        "rejected: CustomDestinationNotFound permanent",
    ),
    (
        "error_invalid_extension.txt",
        Call::Add,
        "rejected: InvalidExtension permanent",
    ),
    (
        "error_invalid_extension.txt",
        Call::ListQueues,
        "rejected: InvalidExtension permanent",
    ),
    ("add_already_member.txt", Call::List, "rejected: Other"),
    ("garbage_html_proxy_page.html", Call::List, "unparseable"),
    ("garbage_html_proxy_page.html", Call::Add, "unparseable"),
    ("garbage_html_proxy_page.html", Call::Clean, "unparseable"),
    (
        "garbage_html_proxy_page.html",
        Call::ListQueues,
        "unparseable",
    ),
    ("garbage_empty_body.txt", Call::List, "unparseable"),
    ("garbage_empty_body.txt", Call::Add, "unparseable"),
    ("garbage_empty_body.txt", Call::ListQueues, "ok:"),
    ("garbage_truncated_json.json", Call::List, "unparseable"),
    (
        "garbage_truncated_json.json",
        Call::ListQueues,
        "unparseable",
    ),
    ("garbage_other_json.json", Call::List, "unparseable"),
    ("garbage_other_json.json", Call::ListQueues, "unparseable"),
    (
        "garbage_list_foreign_tenant.json",
        Call::List,
        "unparseable",
    ),
    ("list_json_strings.json", Call::Add, "unparseable"),
    ("list_plain_interfaces.txt", Call::Add, "unparseable"),
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tring")
}

fn summarise<T>(r: Result<T, TringError>, ok: impl Fn(T) -> String) -> String {
    match r {
        Ok(v) => format!("ok:{}", ok(v)),
        Err(TringError::Rejected { reason, .. }) => {
            let e = TringError::Rejected {
                reason,
                message: String::new(),
            };
            let permanent = if e.is_permanent() { " permanent" } else { "" };
            format!("rejected: {reason:?}{permanent}")
        }
        Err(TringError::Unparseable { .. }) => "unparseable".to_owned(),
        Err(other) => format!("unexpected error: {other}"),
    }
}

fn parse_fixture(call: Call, body: &str) -> String {
    let words = |v: Vec<String>| v.iter().map(|s| format!(" {s}")).collect::<String>();
    match call {
        Call::List => summarise(parse_list(body, TENANT, &known()), |ms| {
            words(ms.iter().map(ToString::to_string).collect())
        }),
        Call::ListQueues => summarise(parse_listqueues(body), |qs| {
            words(qs.iter().map(ToString::to_string).collect())
        }),
        Call::Add | Call::Del => {
            let action = match call {
                Call::Add => ActionKind::Add,
                _ => ActionKind::Del,
            };
            summarise(parse_write(body, action), |o| match o {
                WriteOutcome::Applied => " applied".to_owned(),
                WriteOutcome::AlreadyInState => " already".to_owned(),
            })
        }
        Call::Clean => summarise(parse_clean(body), |m| format!(" {m}")),
    }
}

#[test]
fn every_fixture_parses_as_its_shape_says() {
    let mut failures = Vec::new();
    for (file, call, want) in FIXTURES {
        let body = std::fs::read_to_string(fixture_dir().join(file))
            .unwrap_or_else(|e| panic!("fixture {file} unreadable: {e}"));
        let got = parse_fixture(*call, &body);
        if got != *want {
            failures.push(format!("{file} as {call:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_file_has_an_expectation() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !FIXTURES.iter().any(|(f, _, _)| *f == name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures without expectation: {missing:?}"
    );
}

// ---------- client against the simulator ----------

#[test]
fn a_bare_number_needs_the_configured_mobiles_to_read_as_a_custom_destination() {
    // Without the config's numbers the observed string array cannot say that "0612345678"
    // is Jan's mobile: read alone it is an extension, which made an exclusive queue add
    // cu:0612345678 and del ext:0612345678 every cycle.
    let body = fixture("list_json_strings_cu_bare.json");
    assert_eq!(
        parse_list(&body, TENANT, &KnownMembers::default()),
        Ok(vec![ext("201"), ext("0612345678")])
    );
    assert_eq!(
        parse_list(&body, TENANT, &known()),
        Ok(vec![ext("201"), cu("0612345678")])
    );
}

#[test]
fn a_plain_pipe_list_of_two_agents_is_two_members() {
    assert_eq!(
        parse_list("Success|SIP/201-ACME|SIP/202-ACME|", TENANT, &known()),
        Ok(vec![ext("201"), ext("202")])
    );
    assert_eq!(
        parse_list(
            "Success|SIP/201-ACME|SIP/202-ACME|",
            TENANT,
            &KnownMembers::default()
        ),
        Ok(vec![ext("201"), ext("202")])
    );
}

#[test]
fn idempotent_answers_to_the_other_action_are_refusals() {
    for (file, action) in [
        ("add_not_member.txt", ActionKind::Add),
        ("del_already_member.txt", ActionKind::Del),
    ] {
        match parse_write(&fixture(file), action) {
            Err(
                e @ TringError::Rejected {
                    reason: RejectReason::Other,
                    ..
                },
            ) => assert!(!e.is_permanent() && !e.is_retryable(), "{file}: {e}"),
            other => panic!("{file} answering {action:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn list_reads_every_simulated_shape() {
    capture_logs();
    for shape in ListShape::ALL {
        let sim = within(
            "start",
            TringSim::start(SimTringOptions {
                shape,
                ..sim_options()
            }),
        )
        .await
        .unwrap();
        let client = client_for(sim.base_url(), KEY);
        let full = within("list 600", client.list(&q("600"))).await;
        assert_eq!(full, Ok(vec![ext("201"), cu("0612345678")]), "{shape:?}");
        let empty = within("list 700", client.list(&q("700"))).await;
        assert_eq!(empty, Ok(vec![]), "{shape:?}");
        within("shutdown", sim.shutdown()).await;
    }
}

/// The raw `list` answer of the simulator, asked as rooster asks (`format=json`).
async fn raw_list(sim: &TringSim, queue: &str) -> String {
    let mut url = sim.base_url();
    url.query_pairs_mut()
        .append_pair("key", KEY)
        .append_pair("reqtype", "queue")
        .append_pair("tenant", TENANT)
        .append_pair("number", queue)
        .append_pair("action", "list")
        .append_pair("format", "json");
    within("raw list", async {
        reqwest::get(url).await.unwrap().text().await.unwrap()
    })
    .await
}

#[tokio::test]
async fn the_simulator_spells_a_custom_destination_in_every_shape() {
    // The simulator's own rendering, checked against tring-api.md's example bodies without
    // going through rooster's parser. Queue 600 holds ext:201 and cu:0612345678.
    use serde_json::{Value, json};
    capture_logs();
    let (sim, _client) = sim().await;
    let objects = |ty: bool| {
        let agent = if ty {
            json!({"extension":"201","interface":"SIP/201-ACME","name":"","type":"agent","penalty":0,"paused":false})
        } else {
            json!({"extension":"201","name":"","penalty":0,"paused":false})
        };
        let custom = if ty {
            json!({"extension":"0612345678","interface":"Local/0612345678@ACME-custom","name":"","type":"CU","penalty":0,"paused":false})
        } else {
            json!({"extension":"0612345678","name":"","penalty":0,"paused":false})
        };
        json!([agent, custom])
    };
    let mut suffixed = objects(true);
    suffixed[0]["extension"] = json!("201-ACME");
    let cases: Vec<(ListShape, Value, Value)> = vec![
        (
            ListShape::JsonStrings,
            json!(["201-ACME", "Local/0612345678@ACME-custom"]),
            Value::Null,
        ),
        (
            ListShape::JsonStringsCuBare,
            json!(["201-ACME", "0612345678"]),
            Value::Null,
        ),
        (
            ListShape::JsonStringsCuSuffixed,
            json!(["201-ACME", "0612345678-ACME"]),
            Value::Null,
        ),
        (ListShape::JsonObjects, objects(true), json!([])),
        (ListShape::JsonObjectsTenantSuffixed, suffixed, json!([])),
        (ListShape::JsonObjectsWithoutType, objects(false), json!([])),
    ];
    for (shape, full, empty) in cases {
        sim.set_shape(shape);
        let body: Value = serde_json::from_str(&raw_list(&sim, "600").await).unwrap();
        assert_eq!(body, full, "{shape:?}");
        let body: Value = serde_json::from_str(&raw_list(&sim, "700").await).unwrap();
        assert_eq!(body, empty, "{shape:?} empty");
    }
    let empty = "Success|0 members in queue 700|\n";
    for (shape, full) in [
        (
            ListShape::Plain,
            "Success|2 members in queue 600|\nSIP/201-ACME\nLocal/0612345678@ACME-custom\n",
        ),
        (
            ListShape::PlainPipe,
            "Success|SIP/201-ACME|Local/0612345678@ACME-custom|",
        ),
    ] {
        sim.set_shape(shape);
        assert_eq!(sim.shape(), shape);
        assert_eq!(raw_list(&sim, "600").await, full, "{shape:?}");
        assert_eq!(raw_list(&sim, "700").await, empty, "{shape:?} empty");
    }
    within("shutdown", sim.shutdown()).await;
}

#[tokio::test]
async fn list_sends_the_seed_parameters_in_order() {
    let (sim, client) = sim().await;
    within("list", client.list(&q("600"))).await.unwrap();
    within("add", client.add(&q("700"), &cu("0612345678")))
        .await
        .unwrap();
    within("del", client.del(&q("700"), &cu("0612345678")))
        .await
        .unwrap();
    within(
        "listqueues",
        client.list_queues(&Extension::parse("201").unwrap()),
    )
    .await
    .unwrap();
    let queries: Vec<String> = sim
        .requests()
        .into_iter()
        .map(|r| r.query_redacted)
        .collect();
    let k = "key=%5Bredacted%5D";
    assert_eq!(
        queries,
        vec![
            format!("{k}&reqtype=queue&tenant=ACME&number=600&action=list&format=json&cache=no"),
            format!(
                "{k}&reqtype=queue&tenant=ACME&number=700&extension=0612345678&action=add&type=CU"
            ),
            format!("{k}&reqtype=queue&tenant=ACME&number=700&extension=0612345678&action=del"),
            format!("{k}&reqtype=AGENT&action=listqueues&tenant=ACME&format=json&extension=201"),
        ]
    );
    assert!(sim.requests().iter().all(|r| r.key_ok));
}

#[tokio::test]
async fn writes_apply_and_repeat_idempotently() {
    let (sim, client) = sim().await;
    let q600 = q("600");
    assert_eq!(
        within("add", client.add(&q600, &ext("202"))).await,
        Ok(WriteOutcome::Applied)
    );
    assert_eq!(
        within("add again", client.add(&q600, &ext("202"))).await,
        Ok(WriteOutcome::AlreadyInState)
    );
    assert_eq!(
        sim.members(&q600),
        vec![ext("201"), cu("0612345678"), ext("202")]
    );
    assert_eq!(
        within("del", client.del(&q600, &ext("201"))).await,
        Ok(WriteOutcome::Applied)
    );
    assert_eq!(
        within("del again", client.del(&q600, &ext("201"))).await,
        Ok(WriteOutcome::AlreadyInState)
    );
    assert_eq!(
        within(
            "listqueues",
            client.list_queues(&Extension::parse("202").unwrap())
        )
        .await,
        Ok(vec![q600.clone()])
    );
    let message = within("clean", client.clean(&q600)).await.unwrap();
    assert!(message.contains("2 members removed"), "{message}");
    assert_eq!(sim.members(&q600), vec![]);
    let stats = client.stats();
    assert_eq!(stats.get("add", "ok"), 1);
    assert_eq!(stats.get("add", "already"), 1);
    assert_eq!(stats.get("del", "already"), 1);
    assert_eq!(stats.get("clean", "ok"), 1);
}

#[tokio::test]
async fn refusals_are_typed_and_permanent() {
    let (sim, client) = sim().await;
    let reason = |r: Result<WriteOutcome, TringError>| match r {
        Err(e @ TringError::Rejected { .. }) => {
            assert!(e.is_permanent(), "{e}");
            assert!(!e.is_retryable(), "{e}");
            match e {
                TringError::Rejected { reason, .. } => reason,
                _ => unreachable!(),
            }
        }
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(
        reason(within("cu add", client.add(&q("600"), &cu("0699999999"))).await),
        RejectReason::CustomDestinationNotFound
    );
    assert_eq!(
        reason(within("unknown queue", client.add(&q("601"), &ext("201"))).await),
        RejectReason::QueueNotFound
    );
    let wrong = client_for(sim.base_url(), "WRONG-KEY");
    assert_eq!(
        reason(within("wrong key", wrong.add(&q("600"), &ext("202"))).await),
        RejectReason::InvalidKey
    );
    let read_only = client_for(sim.base_url(), "READONLY-KEY-77");
    assert_eq!(
        within("read-only list", read_only.list(&q("600"))).await,
        Ok(vec![ext("201"), cu("0612345678")])
    );
    assert_eq!(
        reason(within("read-only add", read_only.add(&q("600"), &ext("202"))).await),
        RejectReason::PermissionDenied
    );
    assert_eq!(sim.members(&q("600")), vec![ext("201"), cu("0612345678")]);
    // One request each: a refusal is never retried.
    assert_eq!(count(&sim, Action::Add), 4);
}

#[tokio::test]
async fn reads_retry_5xx_timeouts_and_dropped_connections() {
    let (sim, client) = sim().await;
    for kind in [
        FaultKind::Status(503),
        FaultKind::Delay(Duration::from_secs(2)),
        FaultKind::DropConnection,
    ] {
        sim.clear_requests();
        sim.inject(Fault {
            queue: Some(q("600")),
            action: Some(Action::List),
            kind: kind.clone(),
            times: Some(2),
        });
        let got = within("list with faults", client.list(&q("600"))).await;
        assert_eq!(got, Ok(vec![ext("201"), cu("0612345678")]), "{kind:?}");
        assert_eq!(count(&sim, Action::List), 3, "{kind:?}");
    }
    assert_eq!(client.stats().get("list", "retried"), 6);
}

#[tokio::test]
async fn reads_give_up_after_four_tries() {
    let (sim, client) = sim().await;
    sim.inject(Fault::always(FaultKind::Status(500)));
    let err = within("list", client.list(&q("600"))).await.unwrap_err();
    assert!(
        matches!(err, TringError::HttpStatus { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable() && !err.is_permanent());
    assert_eq!(count(&sim, Action::List), 4);
    assert_eq!(client.stats().get("list", "http_status"), 1);
}

#[tokio::test]
async fn unparseable_and_error_answers_are_not_retried() {
    let (sim, client) = sim().await;
    sim.inject(Fault::always(FaultKind::Garbage(
        "<html>oops</html>".into(),
    )));
    let err = within("list", client.list(&q("600"))).await.unwrap_err();
    assert_eq!(
        err,
        TringError::Unparseable {
            body_excerpt: "<html>oops</html>".into()
        }
    );
    sim.clear_faults();
    sim.inject(Fault::always(FaultKind::ErrorIn200(
        "Invalid tenant".into(),
    )));
    let err = within("list", client.list(&q("600"))).await.unwrap_err();
    assert!(matches!(
        err,
        TringError::Rejected {
            reason: RejectReason::InvalidTenant,
            ..
        }
    ));
    assert_eq!(count(&sim, Action::List), 2);
}

#[tokio::test]
async fn writes_that_may_have_landed_are_uncertain_and_not_retried() {
    let (sim, client) = sim().await;
    let q600 = q("600");

    sim.inject(Fault {
        queue: None,
        action: Some(Action::Add),
        kind: FaultKind::ApplyThenTimeout(Duration::from_secs(2)),
        times: Some(1),
    });
    let err = within("add", client.add(&q600, &ext("202")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TringError::WriteUncertain { action: "add", .. }),
        "{err:?}"
    );
    assert!(
        sim.members(&q600).contains(&ext("202")),
        "the write was applied"
    );
    assert_eq!(count(&sim, Action::Add), 1);

    for kind in [FaultKind::Status(502), FaultKind::DropConnection] {
        sim.clear_requests();
        sim.inject(Fault {
            queue: None,
            action: Some(Action::Del),
            kind: kind.clone(),
            times: Some(1),
        });
        let err = within("del", client.del(&q600, &ext("201")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TringError::WriteUncertain { action: "del", .. }),
            "{kind:?}: {err:?}"
        );
        assert_eq!(count(&sim, Action::Del), 1, "{kind:?}");
    }
    assert!(
        sim.members(&q600).contains(&ext("201")),
        "the faults applied nothing"
    );
    assert_eq!(client.stats().get("del", "uncertain"), 2);
}

/// A port with nothing listening: bind, note the port, let go.
async fn refused_url() -> Url {
    let listener = within("bind", tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}/pbx/proxyapi.php")).unwrap()
}

#[tokio::test]
async fn connection_refused_is_retried_even_for_writes() {
    capture_logs();
    let client = client_for(refused_url().await, KEY);
    let err = within("list", client.list(&q("600"))).await.unwrap_err();
    assert!(matches!(err, TringError::ConnectFailed { .. }), "{err:?}");
    let err = within("add", client.add(&q("600"), &ext("201")))
        .await
        .unwrap_err();
    // Never reached TRiNG, so not uncertain: the caller knows nothing changed.
    assert!(matches!(err, TringError::ConnectFailed { .. }), "{err:?}");
    let stats = client.stats();
    assert_eq!(stats.get("list", "retried"), 3);
    assert_eq!(stats.get("add", "retried"), 3);
    assert_eq!(stats.get("add", "connect"), 1);
}

// ---------- ops commands ----------

#[tokio::test]
async fn queue_clean_without_yes_sends_no_write() {
    let (sim, client) = sim().await;
    let mut out = Vec::new();
    let outcome = within(
        "clean without yes",
        rooster::tring::queue_clean(&client, &q("600"), false, false, &mut out),
    )
    .await
    .unwrap();
    assert_eq!(outcome, CleanOutcome::NotConfirmed { would_remove: 2 });
    assert_eq!(count(&sim, Action::Clean), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("would remove 2 members (ext:201, cu:0612345678)"),
        "{text}"
    );

    let mut out = Vec::new();
    let outcome = within(
        "clean with yes",
        rooster::tring::queue_clean(&client, &q("600"), true, true, &mut out),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, CleanOutcome::Cleaned { .. }));
    assert_eq!(sim.members(&q("600")), vec![]);
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["confirmed"], true);
}

#[tokio::test]
async fn queue_commands_print_text_and_json() {
    let (sim, client) = sim().await;
    let mut out = Vec::new();
    within(
        "list",
        rooster::tring::queue_list(&client, &q("600"), false, &mut out),
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "queue 600: 2 members\n  ext:201\n  cu:0612345678\n"
    );
    let mut out = Vec::new();
    within(
        "list json",
        rooster::tring::queue_list(&client, &q("600"), true, &mut out),
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"queue": "600", "members": ["ext:201", "cu:0612345678"]})
    );

    let mut out = Vec::new();
    let outcome = within(
        "add",
        rooster::tring::queue_add(&client, &q("600"), &ext("201"), false, &mut out),
    )
    .await
    .unwrap();
    assert_eq!(outcome, WriteOutcome::AlreadyInState);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "queue 600: ext:201 already was a member\n"
    );

    let mut out = Vec::new();
    within(
        "del",
        rooster::tring::queue_del(&client, &q("600"), &cu("0612345678"), true, &mut out),
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["outcome"], "applied");
    assert_eq!(sim.members(&q("600")), vec![ext("201")]);

    let mut out = Vec::new();
    within(
        "agent queues",
        rooster::tring::agent_queues(&client, &Extension::parse("201").unwrap(), false, &mut out),
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "extension 201 is in queues 600\n"
    );
}

// ---------- client against wiremock ----------

async fn mock_server() -> MockServer {
    capture_logs();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    within(
        "wiremock start",
        MockServer::builder().listener(listener).start(),
    )
    .await
}

fn url_of(server: &MockServer) -> Url {
    Url::parse(&format!("{}/pbx/proxyapi.php", server.uri())).unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap()
}

#[tokio::test]
async fn list_against_wiremock_for_every_list_fixture() {
    for (file, call, want) in FIXTURES {
        if !matches!(call, Call::List) || !want.starts_with("ok") {
            continue;
        }
        let server = mock_server().await;
        Mock::given(method("GET"))
            .and(path("/pbx/proxyapi.php"))
            .and(query_param("key", KEY))
            .and(query_param("reqtype", "queue"))
            .and(query_param("tenant", TENANT))
            .and(query_param("number", "600"))
            .and(query_param("action", "list"))
            .and(query_param("format", "json"))
            .and(query_param("cache", "no"))
            .and(header(
                "user-agent",
                concat!("rooster/", env!("CARGO_PKG_VERSION")),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_string(fixture(file)))
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(url_of(&server), KEY);
        let got = within("list", client.list(&q("600"))).await;
        let summary = summarise(got, |ms| {
            ms.iter().map(|m| format!(" {m}")).collect::<String>()
        });
        assert_eq!(summary, *want, "{file}");
        within("verify", server.verify()).await;
    }
}

#[tokio::test]
async fn writes_and_listqueues_against_wiremock() {
    let server = mock_server().await;
    Mock::given(query_param("action", "add"))
        .and(query_param("type", "CU"))
        .and(query_param("extension", "0612345678"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("add_success_custom.txt")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(query_param("action", "del"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("del_not_member.txt")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(query_param("reqtype", "AGENT"))
        .and(query_param("action", "listqueues"))
        .and(query_param("format", "json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("listqueues_json.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(url_of(&server), KEY);
    assert_eq!(
        within("add", client.add(&q("700"), &cu("0612345678"))).await,
        Ok(WriteOutcome::Applied)
    );
    assert_eq!(
        within("del", client.del(&q("700"), &ext("201"))).await,
        Ok(WriteOutcome::AlreadyInState)
    );
    assert_eq!(
        within(
            "listqueues",
            client.list_queues(&Extension::parse("201").unwrap())
        )
        .await,
        Ok(vec![q("600"), q("700")])
    );
    within("verify", server.verify()).await;
}

#[tokio::test]
async fn an_idempotent_answer_to_the_other_action_is_no_success() {
    let server = mock_server().await;
    Mock::given(query_param("action", "add"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("add_not_member.txt")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(query_param("action", "del"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("del_already_member.txt")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(url_of(&server), KEY);
    for (what, got) in [
        (
            "add",
            within("add", client.add(&q("600"), &ext("201"))).await,
        ),
        (
            "del",
            within("del", client.del(&q("600"), &ext("201"))).await,
        ),
    ] {
        // A clear refusal: not applied, not uncertain, not permanent.
        assert!(
            matches!(
                got,
                Err(TringError::Rejected {
                    reason: RejectReason::Other,
                    ..
                })
            ),
            "{what}: {got:?}"
        );
    }
    let stats = client.stats();
    assert_eq!(stats.get("add", "rejected"), 1);
    assert_eq!(stats.get("del", "rejected"), 1);
    assert_eq!(stats.get("add", "already") + stats.get("del", "already"), 0);
    within("verify", server.verify()).await;
}

#[tokio::test]
async fn proxy_error_pages_are_retried_then_reported_with_an_excerpt() {
    let server = mock_server().await;
    Mock::given(query_param("action", "list"))
        .respond_with(
            ResponseTemplate::new(502).set_body_string(fixture("garbage_html_proxy_page.html")),
        )
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(query_param("action", "add"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(url_of(&server), KEY);
    match within("list", client.list(&q("600"))).await {
        Err(TringError::HttpStatus {
            status: 502,
            body_excerpt,
        }) => {
            assert!(
                body_excerpt.starts_with("<!DOCTYPE html>"),
                "{body_excerpt}"
            );
            assert!(!body_excerpt.contains('\n'));
        }
        other => panic!("expected http 502, got {other:?}"),
    }
    let err = within("add", client.add(&q("600"), &ext("201")))
        .await
        .unwrap_err();
    assert!(matches!(err, TringError::WriteUncertain { .. }), "{err:?}");
    within("verify", server.verify()).await;
}

// ---------- redaction ----------

#[tokio::test]
async fn the_key_never_appears_in_errors_debug_or_logs() {
    let (sim, client) = sim().await;
    let mut errors: Vec<TringError> = Vec::new();

    // Connection refused, for a read and a write.
    let refused = client_for(refused_url().await, KEY);
    errors.push(
        within("refused list", refused.list(&q("600")))
            .await
            .unwrap_err(),
    );
    errors.push(
        within("refused add", refused.add(&q("600"), &ext("202")))
            .await
            .unwrap_err(),
    );

    // Timeout, 500, garbage, HTML, a dropped connection, and a body that echoes the key.
    for kind in [
        FaultKind::Delay(Duration::from_secs(2)),
        FaultKind::Status(500),
        FaultKind::Garbage(format!("garbage with {KEY} inside")),
        FaultKind::Garbage(fixture("garbage_html_proxy_page.html")),
        FaultKind::ErrorIn200(format!("Invalid key {KEY}")),
        FaultKind::DropConnection,
        FaultKind::ApplyThenTimeout(Duration::from_secs(2)),
    ] {
        sim.clear_faults();
        sim.inject(Fault::always(kind));
        errors.push(
            within("faulty list", client.list(&q("600")))
                .await
                .unwrap_err(),
        );
        errors.push(
            within("faulty add", client.add(&q("600"), &ext("203")))
                .await
                .unwrap_err(),
        );
        errors.push(
            within("faulty clean", client.clean(&q("700")))
                .await
                .unwrap_err(),
        );
        errors.push(
            within(
                "faulty listqueues",
                client.list_queues(&Extension::parse("201").unwrap()),
            )
            .await
            .unwrap_err(),
        );
    }
    sim.clear_faults();
    // The wrong-key path, with the real key in the client's memory elsewhere.
    let wrong = client_for(sim.base_url(), "WRONG-KEY");
    errors.push(
        within("wrong key", wrong.list(&q("600")))
            .await
            .unwrap_err(),
    );

    assert!(errors.len() >= 30);
    for e in &errors {
        let shown = format!("{e} | {e:?}");
        assert!(!shown.contains(KEY), "key leaked in error: {shown}");
        assert!(!shown.contains("4242"), "key part leaked in error: {shown}");
    }
    let debug = format!("{client:?} {sim:?} {:?}", sim.requests());
    assert!(!debug.contains(KEY), "key leaked in Debug: {debug}");

    let logs = captured_logs();
    assert!(
        !logs.is_empty(),
        "the log capture recorded nothing, so it proves nothing"
    );
    assert!(
        logs.contains("tring call failed"),
        "rooster's own events were not captured"
    );
    assert!(!logs.contains(KEY), "key leaked in logs:\n{logs}");
}
