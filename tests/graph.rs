//! The Graph calendar reader against the Graph simulator and wiremock, all on 127.0.0.1
//! (SPEC §5, graph-notes B2, B9, B12): paging, throttling, faults, token handling (its
//! User-Agent included), the complete-or-error contract (SPEC §3 rule 1) and secrets kept out
//! of logs and errors. Independent oracles for the Graph JSON: literal documents in
//! Microsoft's documented shapes normalised to literal events, and the simulator's writer
//! compared with literal JSON.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rooster::config::{GraphConfig, SecretSource};
use rooster::graph::client::GraphOptions;
use rooster::graph::{
    GraphClient, GraphError, RequestError, RetryPolicy, TokenError, TokenSource, normalize_page,
};
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Secret, Sensitivity, ShowAs,
};
use rooster::retry::Sleeper;
use rooster::sim::graph::{GraphFault, GraphFaultKind, GraphSim, GraphSimOptions};
use rooster::sim::graph_event::{Fraction, GraphRendering, render_event};
use serde_json::json;
use url::Url;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "00000000-0000-0000-0000-000000000000";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const SECRET: &str = "SECRET-cs-7d1f3a9e";
const WM_TOKEN: &str = "TOKEN-wm-9c2e51b0";

/// Every await in these tests is bounded; hanging means a retry or paging loop never ended.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for 30 s"))
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("test mailbox")
}

fn cal(s: &str) -> CalendarRef {
    CalendarRef::default_of(mailbox(s))
}

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + chrono::Duration::hours(h.into())
}

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (t(0), t(24 * 14))
}

fn fast() -> GraphOptions {
    GraphOptions {
        retry: RetryPolicy {
            max_tries: 4,
            base_delay: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(120),
        },
        ..GraphOptions::default()
    }
}

fn config(base: Url, authority: Url) -> GraphConfig {
    GraphConfig {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        client_secret: SecretSource::Env("GRAPH_SECRET".into()),
        base_url: base,
        authority,
        concurrency: 8,
    }
}

fn shift(id: &str, start_h: u32) -> Event {
    Event {
        id: id.into(),
        subject: format!("shift {id}"),
        when: EventTime::Timed {
            start: t(start_h),
            end: t(start_h + 8),
        },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories: vec!["Support".into()],
        sensitivity: Sensitivity::Normal,
        organizer: Some("jan@acme.nl".into()),
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

async fn sim() -> GraphSim {
    within(
        "starting the simulator",
        GraphSim::start(GraphSimOptions {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
            ..GraphSimOptions::default()
        }),
    )
    .await
    .expect("simulator starts")
}

fn sim_client(sim: &GraphSim) -> GraphClient {
    GraphClient::with_options(
        &config(sim.base_url(), sim.authority()),
        Secret::new(SECRET),
        fast(),
    )
    .expect("client builds")
}

// ---------------------------------------------------------------- against the simulator

#[tokio::test]
async fn sim_paging_reads_every_page_and_every_event() {
    let sim = sim().await;
    let mb = mailbox("jan@acme.nl");
    let events: Vec<Event> = (0..25)
        .map(|i| shift(&format!("e{i:02}"), i * 10))
        .collect();
    sim.set_events(&mb, None, events.clone());
    let client = sim_client(&sim);
    let (from, to) = (t(0), t(24 * 30));
    let read = within(
        "reading 3 pages",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("read completes");
    assert_eq!(read.pages, 3);
    assert_eq!(read.events, events);
    assert_eq!(sim.calendar_view_requests(), 3);
    // SPEC §5: UTC window with Z, $select, no Prefer header needed to read it.
    let first = &sim.requests()[1];
    let q = first.query.as_deref().unwrap_or_default();
    assert!(q.contains("startDateTime=2026-11-24T00%3A00%3A00Z"), "{q}");
    assert!(q.contains("%24select") || q.contains("$select"), "{q}");
    sim.shutdown();
}

#[tokio::test]
async fn sim_window_filters_by_overlap() {
    let sim = sim().await;
    let mb = mailbox("jan@acme.nl");
    sim.set_events(
        &mb,
        None,
        vec![shift("before", 0), shift("inside", 30), shift("after", 100)],
    );
    let client = sim_client(&sim);
    // [20h, 40h): "before" ends at 8h, "after" starts at 100h.
    let read = within(
        "reading",
        client.read_calendar(&cal("jan@acme.nl"), t(20), t(40)),
    )
    .await
    .expect("read completes");
    let ids: Vec<&str> = read.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["inside"]);
}

#[tokio::test]
async fn sim_token_is_cached_across_reads() {
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![shift("a", 1)]);
    sim.set_events(&mailbox("ans@acme.nl"), None, vec![shift("b", 2)]);
    let client = sim_client(&sim);
    let (from, to) = window();
    for _ in 0..5 {
        let cals = [cal("jan@acme.nl"), cal("ans@acme.nl")];
        for (c, r) in within("reading many", client.read_many(&cals, from, to)).await {
            r.unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    }
    assert_eq!(sim.token_requests(), 1);
    assert_eq!(client.stats().token_requests, 1);
    assert_eq!(client.stats().requests_by_outcome.get("ok"), Some(&10));
}

#[tokio::test]
async fn sim_401_refreshes_the_token_once() {
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![shift("a", 1)]);
    let client = sim_client(&sim);
    let (from, to) = window();
    within(
        "first read",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("first read");
    sim.revoke_tokens();
    let read = within(
        "read after revoke",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("a 401 is answered with one refresh");
    assert_eq!(read.events.len(), 1);
    assert_eq!(sim.token_requests(), 2);
    assert_eq!(
        client.stats().requests_by_outcome.get("unauthorized"),
        Some(&1)
    );
}

#[tokio::test]
async fn sim_failed_page_two_fails_the_whole_read() {
    let sim = sim().await;
    let mb = mailbox("jan@acme.nl");
    sim.set_events(
        &mb,
        None,
        (0..15).map(|i| shift(&format!("e{i}"), i)).collect(),
    );
    sim.inject(GraphFault {
        mailbox: Some(mb),
        kind: GraphFaultKind::FailPage(2),
        times: None,
    });
    let client = sim_client(&sim);
    let (from, to) = window();
    let err = within(
        "reading with a broken page",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("a missing page must fail the read, not shorten it");
    match &err {
        GraphError::PageMissing {
            page: 2,
            source:
                RequestError::ServerFailed {
                    status: 500,
                    tries: 4,
                },
            ..
        } => {}
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(!err.is_permanent());
    assert!(
        err.to_string()
            .starts_with("calendar jan@acme.nl: read failed at page 2"),
        "{err}"
    );
}

#[tokio::test]
async fn sim_failed_page_recovers_within_the_retries() {
    let sim = sim().await;
    let mb = mailbox("jan@acme.nl");
    sim.set_events(
        &mb,
        None,
        (0..15).map(|i| shift(&format!("e{i}"), i)).collect(),
    );
    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::FailPage(2),
        times: Some(2),
    });
    let client = sim_client(&sim);
    let (from, to) = window();
    let read = within(
        "reading",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("two failures are within four tries");
    assert_eq!(read.events.len(), 15);
}

#[tokio::test]
async fn sim_named_calendar_is_resolved_and_cached() {
    let sim = sim().await;
    let mb = mailbox("piket@acme.nl");
    sim.set_events(&mb, None, vec![shift("default", 1)]);
    // Eleven named calendars: the list itself needs two pages at the simulator's size 10.
    for i in 0..10 {
        sim.set_events(&mb, Some(&format!("Other {i}")), vec![]);
    }
    sim.set_events(&mb, Some("Rota"), vec![shift("rota", 2)]);
    let client = sim_client(&sim);
    let rota = CalendarRef {
        mailbox: mb.clone(),
        name: Some("Rota".into()),
    };
    let (from, to) = window();
    for _ in 0..2 {
        let read = within(
            "reading a named calendar",
            client.read_calendar(&rota, from, to),
        )
        .await
        .expect("named calendar reads");
        assert_eq!(read.events[0].id, "rota");
    }
    let listings = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/calendars"))
        .count();
    assert_eq!(listings, 2, "two list pages, then the id is cached");
    let missing = CalendarRef {
        mailbox: mb,
        name: Some("Nope".into()),
    };
    let err = within(
        "reading an unknown calendar",
        client.read_calendar(&missing, from, to),
    )
    .await
    .expect_err("unknown calendar name");
    assert!(
        matches!(err, GraphError::CalendarNotFound { .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(err.to_string().contains("\"Nope\""), "{err}");
}

#[tokio::test]
async fn sim_access_policy_and_unknown_mailbox_are_permanent_and_independent() {
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![shift("a", 1)]);
    sim.set_events(&mailbox("ceo@acme.nl"), None, vec![shift("b", 1)]);
    sim.inject(GraphFault {
        mailbox: Some(mailbox("ceo@acme.nl")),
        kind: GraphFaultKind::AccessDenied,
        times: None,
    });
    let client = sim_client(&sim);
    let (from, to) = window();
    let cals = [cal("jan@acme.nl"), cal("ceo@acme.nl"), cal("gone@acme.nl")];
    let results = within("reading three calendars", client.read_many(&cals, from, to)).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].0, cals[0]);
    assert!(results[0].1.is_ok());
    let denied = results[1].1.as_ref().expect_err("policy denies ceo");
    assert!(
        matches!(denied, GraphError::AccessPolicyDenied { .. }),
        "{denied:?}"
    );
    assert!(denied.is_permanent());
    assert!(
        denied.to_string().contains("application access policy"),
        "{denied}"
    );
    let gone = results[2].1.as_ref().expect_err("unknown mailbox");
    assert!(
        matches!(gone, GraphError::MailboxNotFound { .. }),
        "{gone:?}"
    );
    assert!(gone.is_permanent());
}

#[tokio::test]
async fn sim_token_errors_are_classified_with_operator_messages() {
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![]);
    let (from, to) = window();
    let c = cal("jan@acme.nl");

    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::ExpiredSecret,
        times: Some(1),
    });
    let err = within(
        "expired secret",
        sim_client(&sim).read_calendar(&c, from, to),
    )
    .await
    .expect_err("expired secret");
    assert!(
        matches!(
            err,
            GraphError::TokenFailed {
                source: TokenError::SecretExpired { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("the client secret expired (AADSTS7000222): create a new secret in Entra ID"),
        "{err}"
    );
    assert!(err.is_permanent());

    let wrong = GraphClient::with_options(
        &config(sim.base_url(), sim.authority()),
        Secret::new("not-the-secret"),
        fast(),
    )
    .expect("client");
    let err = within("wrong secret", wrong.read_calendar(&c, from, to))
        .await
        .expect_err("wrong secret");
    assert!(
        matches!(
            err,
            GraphError::TokenFailed {
                source: TokenError::SecretRejected { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let mut cfg = config(sim.base_url(), sim.authority());
    cfg.tenant_id = "99999999-0000-0000-0000-000000000000".into();
    let err = within(
        "unknown tenant",
        GraphClient::with_options(&cfg, Secret::new(SECRET), fast())
            .expect("client")
            .read_calendar(&c, from, to),
    )
    .await
    .expect_err("unknown tenant");
    assert!(
        matches!(
            err,
            GraphError::TokenFailed {
                source: TokenError::TenantNotFound { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let mut cfg = config(sim.base_url(), sim.authority());
    cfg.client_id = "22222222-0000-0000-0000-000000000000".into();
    let err = within(
        "unknown app",
        GraphClient::with_options(&cfg, Secret::new(SECRET), fast())
            .expect("client")
            .read_calendar(&c, from, to),
    )
    .await
    .expect_err("unknown app");
    assert!(
        matches!(
            err,
            GraphError::TokenFailed {
                source: TokenError::AppNotFound { .. },
                ..
            }
        ),
        "{err:?}"
    );

    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::TokenDown,
        // A 500 is retried like any request (4 tries), so it fails only when all do.
        times: Some(4),
    });
    let err = within(
        "token endpoint down",
        sim_client(&sim).read_calendar(&c, from, to),
    )
    .await
    .expect_err("token endpoint down");
    assert!(
        matches!(
            err,
            GraphError::TokenFailed {
                source: TokenError::EndpointFailed { status: 500, .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn sim_garbage_answer_fails_the_read() {
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![shift("a", 1)]);
    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::Garbage,
        times: Some(1),
    });
    let (from, to) = window();
    let err = within(
        "garbage",
        sim_client(&sim).read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("garbage is not an empty calendar");
    assert!(
        matches!(err, GraphError::EventNotUnderstood { page: 1, .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- against wiremock

async fn wiremock_with_token() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": WM_TOKEN
        })))
        .mount(&server)
        .await;
    server
}

fn wm_client(server: &MockServer, opts: GraphOptions) -> GraphClient {
    let base = Url::parse(&format!("{}/v1.0", server.uri())).expect("url");
    let authority = Url::parse(&server.uri()).expect("url");
    GraphClient::with_options(&config(base, authority), Secret::new(SECRET), opts).expect("client")
}

fn page(ids: &[&str], next: Option<String>) -> serde_json::Value {
    let value: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "subject": "s", "isAllDay": false,
            "start": {"dateTime": "2026-11-24T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-24T09:00:00.0000000", "timeZone": "UTC"}})
        })
        .collect();
    let mut v = json!({ "value": value });
    if let Some(n) = next {
        v["@odata.nextLink"] = json!(n);
    }
    v
}

const VIEW: &str = "/v1.0/users/jan@acme.nl/calendarView";

#[tokio::test]
async fn wiremock_paging_follows_next_links_verbatim() {
    let server = wiremock_with_token().await;
    let next = |skip: u32| Some(format!("{}{VIEW}?$skiptoken=opaque{skip}", server.uri()));
    Mock::given(method("GET"))
        .and(path(VIEW))
        .and(query_param("$top", "1000"))
        .and(query_param("startDateTime", "2026-11-24T00:00:00Z"))
        .and(query_param_is_missing("$skiptoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a", "b"], next(1))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .and(query_param("$skiptoken", "opaque1"))
        // graph-notes B2: an empty page with a nextLink is not the end.
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&[], next(2))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .and(query_param("$skiptoken", "opaque2"))
        // "b" again: calendarView can repeat an item across pages; it is collapsed.
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["b", "c"], None)))
        .expect(1)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    let read = within(
        "paging",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("read completes");
    assert_eq!(read.pages, 3);
    let ids: Vec<&str> = read.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let requests = server.received_requests().await.unwrap_or_default();
    for r in requests.iter().filter(|r| r.url.path() == VIEW) {
        assert!(
            r.headers.get("prefer").is_none(),
            "no Prefer header (SPEC §5)"
        );
        let ua = r
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ua.starts_with("rooster/"), "{ua}");
    }
}

async fn one_page_after(server: &MockServer, first: ResponseTemplate, first_times: u64) {
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(first)
        .up_to_n_times(first_times)
        .expect(first_times)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a"], None)))
        .expect(1)
        .with_priority(2)
        .mount(server)
        .await;
}

/// Notes each wait between tries that a client asks for and returns at once: the test reads
/// the waits without spending them (the tokio timer itself is tested in `retry::tests`).
#[derive(Debug, Default)]
struct RecordedWaits(Mutex<Vec<Duration>>);

impl Sleeper for RecordedWaits {
    fn sleep(&self, wait: Duration) -> futures::future::BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(wait);
        Box::pin(async {})
    }
}

/// One throttled read answering `Retry-After: retry_after`, then a page: the waits between its
/// tries.
async fn waits_after_429(retry_after: &str) -> Vec<Duration> {
    let server = wiremock_with_token().await;
    one_page_after(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", retry_after),
        1,
    )
    .await;
    let waits = Arc::new(RecordedWaits::default());
    let client = wm_client(
        &server,
        GraphOptions {
            sleeper: waits.clone(),
            ..fast()
        },
    );
    let (from, to) = window();
    within(
        "throttled read",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("retried after Retry-After");
    assert_eq!(client.stats().throttled, 1);
    waits.0.lock().unwrap().clone()
}

#[tokio::test]
async fn wiremock_429_with_retry_after_waits_that_long() {
    // SPEC §5: `Retry-After` is honoured, not the 10 ms backoff of `fast()`; up to 120 s.
    assert_eq!(
        waits_after_429("1").await,
        [Duration::from_secs(1)],
        "Retry-After: 1 honoured"
    );
    assert_eq!(
        waits_after_429("9999").await,
        [Duration::from_secs(120)],
        "Retry-After: 9999 capped at 120 s"
    );
}

#[tokio::test]
async fn wiremock_429_without_retry_after_backs_off_and_recovers() {
    let server = wiremock_with_token().await;
    let throttled = ResponseTemplate::new(429).set_body_json(json!({"error": {
        "code": "ErrorTooManyObjectsOpened", "message": "too many"}}));
    one_page_after(&server, throttled, 2).await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    within(
        "throttled read",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("recovers within four tries");
    assert_eq!(client.stats().throttled, 2);
}

#[tokio::test]
async fn wiremock_503_is_retried() {
    let server = wiremock_with_token().await;
    one_page_after(&server, ResponseTemplate::new(503), 1).await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    within(
        "503 read",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("503 is transient");
}

#[tokio::test]
async fn wiremock_throttled_on_every_try_is_an_incomplete_read() {
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(429))
        .expect(4)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    let err = within(
        "throttled read",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("four 429s");
    assert!(
        matches!(
            err,
            GraphError::PageMissing {
                page: 1,
                source: RequestError::Throttled { tries: 4 },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn wiremock_timeout_is_retried_then_fails() {
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(&["a"], None))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(2)
        .mount(&server)
        .await;
    let mut opts = fast();
    opts.request_timeout = Duration::from_millis(300);
    opts.retry.max_tries = 2;
    let client = wm_client(&server, opts);
    let (from, to) = window();
    let err = within(
        "timing out",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("every try times out");
    match &err {
        GraphError::PageMissing {
            source: RequestError::TransportFailed { detail, tries: 2 },
            ..
        } => {
            assert!(detail.contains("timed out"), "{detail}");
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(client.stats().requests_by_outcome.get("timeout"), Some(&2));
}

#[tokio::test]
async fn wiremock_403_policy_and_404_are_permanent_and_not_retried() {
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": "ErrorAccessDenied", "message": "Access to OData is disabled."}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/nobody@acme.nl/calendarView"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}})))
        .expect(1)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    let err = within("403", client.read_calendar(&cal("jan@acme.nl"), from, to))
        .await
        .expect_err("403");
    assert!(
        matches!(err, GraphError::AccessPolicyDenied { .. }) && err.is_permanent(),
        "{err:?}"
    );
    let err = within(
        "404",
        client.read_calendar(&cal("nobody@acme.nl"), from, to),
    )
    .await
    .expect_err("404");
    assert!(
        matches!(err, GraphError::MailboxNotFound { ref code, .. } if code == "MailboxNotEnabledForRESTAPI"),
        "{err:?}"
    );
}

#[tokio::test]
async fn wiremock_next_link_to_a_foreign_host_is_refused() {
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            &["a"],
            Some("https://evil.example/v1.0/users/jan@acme.nl/calendarView?$skip=1".into()),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    let err = within(
        "foreign link",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("a foreign nextLink fails the read");
    assert!(
        matches!(err, GraphError::NextLinkRefused { page: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("https://evil.example"), "{err}");
}

#[tokio::test]
async fn wiremock_second_401_is_an_error_without_the_token() {
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": "InvalidAuthenticationToken", "message": "Access token validation failure."}})))
        .expect(2)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    let err = within(
        "401 twice",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect_err("401 after a refresh");
    assert!(
        matches!(
            err,
            GraphError::PageMissing {
                source: RequestError::Unauthorized { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(client.stats().token_requests, 2, "exactly one refresh");
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains(WM_TOKEN) && !text.contains(SECRET), "{text}");
    }
}

#[tokio::test]
async fn token_post_names_rooster_and_its_version_whatever_client_it_is_given() {
    // SPEC §5 "Clients": every request carries a User-Agent naming rooster and its version;
    // the token POST too, even over a bare reqwest client that sets none of its own.
    let ua = concat!("rooster/", env!("CARGO_PKG_VERSION"));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .and(header("user-agent", ua))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": WM_TOKEN
        })))
        .expect(1)
        .mount(&server)
        .await;
    let authority = Url::parse(&server.uri()).expect("url");
    let source = TokenSource::new(
        reqwest::Client::new(),
        &authority,
        TENANT,
        CLIENT,
        Secret::new(SECRET),
    )
    .expect("token source");
    let token = within("token POST", source.token())
        .await
        .expect("the mock answers only a POST with rooster's User-Agent");
    assert_eq!(token.expose(), WM_TOKEN);
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1);
    let uas: Vec<_> = requests[0].headers.get_all("user-agent").iter().collect();
    assert_eq!(uas, [ua], "exactly one User-Agent, rooster's");
}

#[tokio::test]
async fn graph_client_sends_its_user_agent_on_the_token_post_and_the_reads() {
    let ua = concat!("rooster/", env!("CARGO_PKG_VERSION"));
    let server = wiremock_with_token().await;
    Mock::given(method("GET"))
        .and(path(VIEW))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a"], None)))
        .expect(1)
        .mount(&server)
        .await;
    let client = wm_client(&server, fast());
    let (from, to) = window();
    within("read", client.read_calendar(&cal("jan@acme.nl"), from, to))
        .await
        .expect("read completes");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 2, "one token POST, one page");
    for r in &requests {
        let uas: Vec<_> = r.headers.get_all("user-agent").iter().collect();
        assert_eq!(uas, [ua], "{} {}", r.method, r.url.path());
    }
}

// ------------------------------------------- documented Graph JSON, checked by literal values
//
// These documents are written from Microsoft's published shapes (event resource, event-get,
// event-list-instances, user-list-calendarview on learn.microsoft.com), as Graph answers
// without `Prefer: outlook.timezone`, and the expected events are spelled out by hand: neither
// side is produced by rooster's code, so the parser cannot agree with itself by construction.

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test date")
}

/// Normalises a calendarView page holding exactly one event.
fn only_event(page: serde_json::Value) -> Event {
    let (mut events, _) = normalize_page(page.to_string().as_bytes()).expect("page normalises");
    assert_eq!(events.len(), 1);
    events.remove(0)
}

#[test]
fn documented_timed_event_in_utc_normalises_to_its_instants_and_addresses() {
    let page = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('jan%40acme.nl')/calendarView",
        "value": [{
            "@odata.etag": "W/\"IiLKjG2I7E+Xv0+ys6MD0wAEd5/kNQ==\"",
            "id": "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e-T7KzowPTAAAAAAENAAAiIsqMbYjsT5e-T7KzowPTAAAa_WKzAAA=",
            "iCalUId": "040000008200E00074C5B7101A82E00800000000D3D70B8A6A17D70100000000000000001000000074665914A06C3F49BB4B7D7EEE4304DA",
            "subject": "Support shift",
            "bodyPreview": "Take the support line",
            "body": {"contentType": "html", "content": "<html><body>Take the support line</body></html>"},
            "start": {"dateTime": "2026-03-30T07:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-30T15:00:00.0000000", "timeZone": "UTC"},
            "originalStartTimeZone": "W. Europe Standard Time",
            "originalEndTimeZone": "W. Europe Standard Time",
            "isAllDay": false,
            "isCancelled": false,
            "showAs": "busy",
            "categories": ["Support"],
            "sensitivity": "normal",
            "location": {"displayName": "Conf Room Rainier", "locationType": "default",
                "uniqueId": "Conf Room Rainier", "uniqueIdType": "private"},
            "organizer": {"emailAddress": {"name": "Irvin Sayers", "address": "IrvinS@M365x214355.onmicrosoft.com"}},
            "attendees": [{
                "type": "required",
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": "Engineering", "address": "engineering@M365x214355.onmicrosoft.com"}
            }],
            "type": "singleInstance",
            "seriesMasterId": null,
            "webLink": "https://outlook.office365.com/owa/?itemid=AAMkAGVmMDEzMTM4&exvsurl=1&path=/calendar/item"
        }]
    });
    assert_eq!(
        only_event(page),
        Event {
            id: "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e-T7KzowPTAAAAAAENAAAiIsqMbYjsT5e-T7KzowPTAAAa_WKzAAA=".into(),
            subject: "Support shift".into(),
            // 09:00–17:00 in Amsterdam on the Monday after the spring switch (CEST, UTC+2).
            when: EventTime::Timed {
                start: utc("2026-03-30T07:00:00Z"),
                end: utc("2026-03-30T15:00:00Z"),
            },
            is_cancelled: false,
            show_as: ShowAs::Busy,
            categories: vec!["Support".into()],
            sensitivity: Sensitivity::Normal,
            organizer: Some("irvins@m365x214355.onmicrosoft.com".into()),
            attendees: vec!["engineering@m365x214355.onmicrosoft.com".into()],
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }
    );
}

#[test]
fn documented_all_day_event_across_the_spring_switch_keeps_its_dates() {
    let page = json!({"value": [{
        "@odata.etag": "W/\"x3IAvB5fbUWf4XNcBFLNUwAAKuA3yQ==\"",
        "id": "AAMkAGI2TG93AAA=",
        "subject": "Leave",
        "start": {"dateTime": "2026-03-28T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-30T00:00:00.0000000", "timeZone": "UTC"},
        "isAllDay": true,
        "isCancelled": false,
        "showAs": "oof",
        "categories": [],
        "sensitivity": "normal",
        "organizer": {"emailAddress": {"name": "Ans", "address": "ans@acme.nl"}},
        "attendees": [],
        "type": "singleInstance",
        "seriesMasterId": null
    }]});
    let e = only_event(page);
    assert_eq!(
        e,
        Event {
            id: "AAMkAGI2TG93AAA=".into(),
            subject: "Leave".into(),
            // Saturday 28 and Sunday 29 March 2026 (the switch day); the end is exclusive.
            when: EventTime::AllDay {
                start: date(2026, 3, 28),
                end: date(2026, 3, 30),
            },
            is_cancelled: false,
            show_as: ShowAs::Oof,
            categories: vec![],
            sensitivity: Sensitivity::Normal,
            organizer: Some("ans@acme.nl".into()),
            attendees: vec![],
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }
    );
    // SPEC §2: local midnight to local midnight, so these two days are 24 + 23 hours.
    let tz: chrono_tz::Tz = "Europe/Amsterdam".parse().expect("zone");
    assert_eq!(
        rooster::schedule::local_midnight(date(2026, 3, 28), tz),
        utc("2026-03-27T23:00:00Z")
    );
    assert_eq!(
        rooster::schedule::local_midnight(date(2026, 3, 30), tz),
        utc("2026-03-29T22:00:00Z")
    );
}

#[test]
fn documented_private_event_is_private_and_described_without_its_subject() {
    let page = json!({"value": [{
        "@odata.etag": "W/\"DwAAABYAAAA2\"",
        "id": "AAMkAGI2UHJpdmF0ZQAA",
        "subject": "Dentist",
        "start": {"dateTime": "2026-11-24T13:30:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-24T14:15:00.0000000", "timeZone": "UTC"},
        "isAllDay": false,
        "isCancelled": false,
        "showAs": "oof",
        "categories": [],
        "sensitivity": "private",
        "organizer": {"emailAddress": {"name": "Piet Jansen", "address": "Piet.Jansen@acme.nl"}},
        "attendees": [],
        "type": "singleInstance",
        "seriesMasterId": null
    }]});
    let e = only_event(page);
    assert_eq!(
        e,
        Event {
            id: "AAMkAGI2UHJpdmF0ZQAA".into(),
            subject: "Dentist".into(),
            when: EventTime::Timed {
                start: utc("2026-11-24T13:30:00Z"),
                end: utc("2026-11-24T14:15:00Z"),
            },
            is_cancelled: false,
            show_as: ShowAs::Oof,
            categories: vec![],
            sensitivity: Sensitivity::Private,
            organizer: Some("piet.jansen@acme.nl".into()),
            attendees: vec![],
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }
    );
    assert_eq!(e.display_subject(), "private event");
}

#[test]
fn documented_cancelled_occurrence_is_cancelled_and_keeps_its_series() {
    let page = json!({
        "value": [{
            "@odata.etag": "W/\"x3IAvB5fbUWf4XNcBFLNUwAAKuA3yQ==\"",
            "id": "AAMkAGUzYAgI1ru1JMcAAEYAAAAAlNFb2CNPe0ucP9you",
            "subject": "Canceled: Weekly on call",
            "seriesMasterId": "AAMkAGUzYRgWAAA=",
            "type": "occurrence",
            "recurrence": null,
            "start": {"dateTime": "2026-10-26T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-10-26T16:00:00.0000000", "timeZone": "UTC"},
            "isAllDay": false,
            "isCancelled": true,
            "showAs": "free",
            "categories": ["Piket"],
            "sensitivity": "normal",
            "organizer": {"emailAddress": {"name": "Piket", "address": "piket@acme.nl"}},
            "attendees": [
                {"type": "required", "status": {"response": "accepted", "time": "2026-10-01T09:12:00Z"},
                 "emailAddress": {"name": "Ans", "address": "ANS@acme.nl"}},
                {"type": "optional", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                 "emailAddress": {"name": "Jan", "address": "jan@acme.nl"}}
            ]
        }],
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/piket@acme.nl/calendarView?startDateTime=2026-10-25T00:00:00Z&endDateTime=2026-11-08T00:00:00Z&$skip=10"
    });
    let (events, next) = normalize_page(page.to_string().as_bytes()).expect("page normalises");
    assert_eq!(
        next.as_deref(),
        Some(
            "https://graph.microsoft.com/v1.0/users/piket@acme.nl/calendarView?startDateTime=2026-10-25T00:00:00Z&endDateTime=2026-11-08T00:00:00Z&$skip=10"
        )
    );
    assert_eq!(
        events,
        [Event {
            id: "AAMkAGUzYAgI1ru1JMcAAEYAAAAAlNFb2CNPe0ucP9you".into(),
            subject: "Canceled: Weekly on call".into(),
            // 09:00–17:00 Amsterdam the day after the autumn switch (CET, UTC+1).
            when: EventTime::Timed {
                start: utc("2026-10-26T08:00:00Z"),
                end: utc("2026-10-26T16:00:00Z"),
            },
            is_cancelled: true,
            show_as: ShowAs::Free,
            categories: vec!["Piket".into()],
            sensitivity: Sensitivity::Normal,
            organizer: Some("piket@acme.nl".into()),
            attendees: vec!["ans@acme.nl".into(), "jan@acme.nl".into()],
            kind: EventKind::Occurrence,
            series_master_id: Some("AAMkAGUzYRgWAAA=".into()),
        }]
    );
}

/// The simulator's made-up etag for [`known_event`]: a digest of what it shows of the event.
const KNOWN_ETAG: &str = "W/\"dfc0d27152b5e42b\"";

/// One event with every field the simulator writes set to something telling.
fn known_event() -> Event {
    Event {
        id: "AAMkSIM-occ-1".into(),
        subject: "Weekly on call".into(),
        when: EventTime::Timed {
            start: utc("2026-03-30T07:00:00Z"),
            end: utc("2026-03-30T15:00:00Z"),
        },
        is_cancelled: false,
        show_as: ShowAs::WorkingElsewhere,
        categories: vec!["Piket".into()],
        sensitivity: Sensitivity::Confidential,
        organizer: Some("piket@acme.nl".into()),
        attendees: vec!["jan.de.vries@acme.nl".into()],
        kind: EventKind::Occurrence,
        series_master_id: Some("AAMkSIM-master".into()),
    }
}

#[test]
fn sim_renders_a_known_event_as_literal_graph_json() {
    let got = render_event(&known_event(), &GraphRendering::default());
    let want = json!({
        "@odata.etag": KNOWN_ETAG,
        "id": "AAMkSIM-occ-1",
        "iCalUId": "040000008200E00074C5B7101A82E0080000000042CFC48C7AC16D02",
        "subject": "Weekly on call",
        "start": {"dateTime": "2026-03-30T07:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-30T15:00:00.0000000", "timeZone": "UTC"},
        "isAllDay": false,
        "isCancelled": false,
        "showAs": "workingElsewhere",
        "categories": ["Piket"],
        "sensitivity": "confidential",
        "organizer": {"emailAddress": {"name": "Piket", "address": "piket@acme.nl"}},
        "attendees": [{
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": "Jan De Vries", "address": "jan.de.vries@acme.nl"}
        }],
        "type": "occurrence",
        "seriesMasterId": "AAMkSIM-master"
    });
    assert_eq!(got, want);

    let all_day = Event {
        id: "AAMkSIM-leave".into(),
        when: EventTime::AllDay {
            start: date(2026, 3, 28),
            end: date(2026, 3, 30),
        },
        organizer: None,
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
        ..known_event()
    };
    let short = GraphRendering {
        fraction: Fraction::None,
        ..GraphRendering::default()
    };
    let got = render_event(&all_day, &short);
    assert_eq!(got["isAllDay"], json!(true));
    assert_eq!(
        got["start"],
        json!({"dateTime": "2026-03-28T00:00:00", "timeZone": "UTC"})
    );
    assert_eq!(
        got["end"],
        json!({"dateTime": "2026-03-30T00:00:00", "timeZone": "UTC"})
    );
    assert_eq!(got["type"], json!("singleInstance"));
    assert_eq!(got["seriesMasterId"], json!(null));
    assert!(got.get("organizer").is_none(), "{got}");
}

#[tokio::test]
async fn sim_answers_select_with_only_those_properties_id_and_etag() {
    let sim = sim().await;
    let mb = mailbox("piket@acme.nl");
    sim.set_events(&mb, None, vec![known_event()]);
    let http = reqwest::Client::new();
    let token_url = sim
        .authority()
        .join(&format!("{TENANT}/oauth2/v2.0/token"))
        .expect("url");
    let token: serde_json::Value = within(
        "token",
        http.post(token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send(),
    )
    .await
    .expect("token answer")
    .text()
    .await
    .map(|t| serde_json::from_str(&t).expect("token json"))
    .expect("token body");
    let bearer = token["access_token"].as_str().expect("access_token");
    let url = format!(
        "{}/users/piket@acme.nl/calendarView?startDateTime=2026-03-30T00:00:00Z&endDateTime=2026-03-31T00:00:00Z&$select=subject,start",
        sim.base_url()
    );
    let body: serde_json::Value = within("calendarView", http.get(url).bearer_auth(bearer).send())
        .await
        .expect("calendarView answer")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("calendarView json"))
        .expect("calendarView body");
    assert_eq!(
        body["value"],
        json!([{
            "@odata.etag": KNOWN_ETAG,
            "id": "AAMkSIM-occ-1",
            "subject": "Weekly on call",
            "start": {"dateTime": "2026-03-30T07:00:00.0000000", "timeZone": "UTC"}
        }])
    );
    assert!(body.get("@odata.nextLink").is_none(), "{body}");
    sim.shutdown();
}

#[tokio::test]
async fn sim_extras_and_fraction_less_times_are_read_as_the_same_events() {
    // What real Graph may add (body, location, webLink, unknown properties, mixed-case
    // addresses, `$select` not honoured) and times without a fraction change nothing.
    let sim = within(
        "starting the simulator",
        GraphSim::start(GraphSimOptions {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
            page_size: 2,
            rendering: GraphRendering {
                extras: true,
                fraction: Fraction::None,
            },
            ..GraphSimOptions::default()
        }),
    )
    .await
    .expect("simulator starts");
    let leave = Event {
        id: "leave".into(),
        when: EventTime::AllDay {
            start: t(24).date_naive(),
            end: t(72).date_naive(),
        },
        show_as: ShowAs::Oof,
        ..shift("leave", 0)
    };
    let private = Event {
        sensitivity: Sensitivity::Private,
        ..shift("private", 30)
    };
    let occurrence = Event {
        kind: EventKind::Occurrence,
        series_master_id: Some("master".into()),
        attendees: vec!["ans@acme.nl".into(), "jan.de.vries@acme.nl".into()],
        is_cancelled: true,
        ..shift("occ", 50)
    };
    let events = vec![shift("single", 2), leave, private, occurrence];
    sim.set_events(&mailbox("jan@acme.nl"), None, events.clone());
    let client = sim_client(&sim);
    let (from, to) = window();
    let read = within(
        "reading with extras",
        client.read_calendar(&cal("jan@acme.nl"), from, to),
    )
    .await
    .expect("read completes");
    assert_eq!(read.events, events);
    assert_eq!(read.pages, 2);
    sim.shutdown();
}

// ---------------------------------------------------------------- redaction

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One TRACE-level subscriber for the whole test binary (it also bridges `log` records,
/// which is how reqwest logs), so every test's logs are in the buffer.
fn captured_logs() -> Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let buf = Buffer::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only global subscriber in this test binary");
        buf
    })
    .clone()
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_logs_or_errors() {
    let logs = captured_logs();
    let sim = sim().await;
    sim.set_events(&mailbox("jan@acme.nl"), None, vec![shift("a", 1)]);
    let client = sim_client(&sim);
    let (from, to) = window();
    let c = cal("jan@acme.nl");
    within("read", client.read_calendar(&c, from, to))
        .await
        .expect("read");
    sim.revoke_tokens();
    within("read after 401", client.read_calendar(&c, from, to))
        .await
        .expect("read");
    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::Throttle { retry_after: None },
        times: Some(1),
    });
    within("read after 429", client.read_calendar(&c, from, to))
        .await
        .expect("read");
    sim.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::WrongSecret,
        times: Some(1),
    });
    let fresh = sim_client(&sim);
    let err = within("wrong secret", fresh.read_calendar(&c, from, to))
        .await
        .expect_err("wrong secret");
    tracing::info!(error = %err, debug = ?err, client = ?client, "captured for the redaction check");

    let logs =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        logs.contains("graph token obtained"),
        "TRACE logs were captured"
    );
    assert!(logs.contains("captured for the redaction check"));
    for text in [
        logs.as_str(),
        &err.to_string(),
        &format!("{err:?}"),
        &format!("{client:?}"),
    ] {
        assert!(!text.contains(SECRET), "client secret leaked");
        assert!(!text.contains("sim-access-token"), "access token leaked");
    }
}
