//! End-to-end checks of what an operator sees when something fails for every calendar at
//! once (SPEC §4 "Logs", "Metrics"; §5 the token): a refused Graph secret costs one token
//! request per cycle however many calendars there are, and is one log line and one cycle
//! record entry naming the cause and the number of calendars; the same for Graph unreachable.
//! Runs the real cycle against the Graph and TRiNG simulators on 127.0.0.1.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rooster::config::Config;
use rooster::cycle::{CycleReport, Mode, Reconciler, SystemClock};
use rooster::graph::GraphClient;
use rooster::graph::client::{GraphOptions, RetryPolicy};
use rooster::model::{Mailbox, Member, QueueNo, Secret};
use rooster::sim::graph::{GraphFault, GraphFaultKind, GraphSim, GraphSimOptions};
use rooster::sim::tring::{Fault, FaultKind, SimTringOptions, TringSim};
use rooster::store::{OpenMode, Store};
use rooster::tring::{KnownMembers, TringClient, TringClientOptions};
use tokio_util::sync::CancellationToken;

const KEY: &str = "obs-test-tring-key";
const SECRET: &str = "obs-test-graph-secret";
const CALENDARS: usize = 12;

async fn within<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {secs} s"))
}

// ------------------------------------------------------------------------------ log capture

#[path = "support/log_capture.rs"]
mod log_capture;

fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    log_capture::capture("info")
}

/// The tests share one log capture; each holds this while it runs so its lines are its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The lines logged so far that mention `marker` (each test uses its own mail domain).
fn log_lines(marker: &str) -> Vec<String> {
    let buf = logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf)
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

/// Lines logged since `from` (a byte offset taken with [`log_len`]).
fn log_since(from: usize) -> Vec<String> {
    log_capture::lines_since(logs(), from)
}

fn log_len() -> usize {
    log_capture::offset(logs())
}

// ---------------------------------------------------------------------------------- fixture

fn mailboxes(domain: &str) -> Vec<Mailbox> {
    (1..=CALENDARS)
        .map(|i| Mailbox::parse(&format!("agent{i}@{domain}")).expect("test mailbox"))
        .collect()
}

fn config_text(tring: &str, graph: &str, authority: &str, state: &Path, domain: &str) -> String {
    let mut text = format!(
        r#"
timezone = "Europe/Amsterdam"
poll_interval = "2m"
window = "14d"
state = "{state}"

[tring]
base_url = "{tring}"
tenant = "ACME"
key_env = "ROOSTER_OBS_TRING_KEY"

[graph]
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_file = "/run/credentials/rooster.service/graph-secret"
base_url = "{graph}"
authority = "{authority}"

[[queue]]
number = "600"
name = "Support"
ownership = "additive"

[[rule]]
name = "support shifts"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]
"#,
        state = state.display()
    );
    for (i, mailbox) in mailboxes(domain).iter().enumerate() {
        text.push_str(&format!(
            "\n[[person]]\nname = \"Agent {i}\"\nmailbox = \"{mailbox}\"\nextension = \"{}\"\n",
            201 + i
        ));
    }
    text
}

struct Fixture {
    graph: GraphSim,
    tring: TringSim,
    cfg: Arc<Config>,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

impl Fixture {
    /// Simulators and a config of [`CALENDARS`] persons in `domain`; `graph_base` replaces
    /// the simulator's Graph URL (an unreachable Graph) when given.
    async fn start(domain: &str, graph_base: Option<&str>) -> Fixture {
        logs();
        let graph = within(
            "starting the graph simulator",
            10,
            GraphSim::start(GraphSimOptions {
                client_secret: SECRET.into(),
                ..GraphSimOptions::default()
            }),
        )
        .await
        .expect("graph simulator starts");
        for mb in mailboxes(domain) {
            graph.set_events(&mb, None, Vec::new());
        }
        let tring = within(
            "starting the tring simulator",
            10,
            TringSim::start(SimTringOptions {
                key: Secret::new(KEY),
                queues: vec![(
                    QueueNo::parse("600").expect("queue"),
                    vec!["ext:299".parse::<Member>().expect("member")],
                )],
                ..SimTringOptions::default()
            }),
        )
        .await
        .expect("tring simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("rooster.db");
        let base = graph.base_url().to_string();
        let text = config_text(
            tring.base_url().as_str(),
            graph_base.unwrap_or(&base),
            graph.authority().as_str(),
            &db,
            domain,
        );
        let cfg = Arc::new(Config::parse(&text, Path::new("obs.toml")).expect("config parses"));
        Fixture {
            graph,
            tring,
            cfg,
            _dir: dir,
            db,
        }
    }

    fn graph_client(&self, token_backoff: Duration) -> GraphClient {
        GraphClient::with_options(
            &self.cfg.graph,
            Secret::new(SECRET),
            GraphOptions {
                retry: RetryPolicy {
                    max_tries: 3,
                    base_delay: Duration::from_millis(10),
                    max_retry_after: Duration::from_secs(1),
                },
                connect_timeout: Duration::from_millis(300),
                request_timeout: Duration::from_millis(500),
                token_backoff,
                ..GraphOptions::default()
            },
        )
        .expect("graph client")
    }

    async fn reconciler(
        &self,
        token_backoff: Duration,
    ) -> Reconciler<GraphClient, TringClient, SystemClock> {
        let tring = TringClient::with_options(
            &self.cfg.tring,
            Secret::new(KEY),
            TringClientOptions {
                connect_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_millis(500),
                retry: rooster::tring::RetryPolicy {
                    max_tries: 2,
                    base_delay: Duration::from_millis(10),
                    ..rooster::tring::RetryPolicy::default()
                },
            },
        )
        .expect("tring client")
        .with_known_members(KnownMembers::from_config(&self.cfg));
        let store = within(
            "opening the store",
            10,
            Store::open(&self.db, OpenMode::Writer),
        )
        .await
        .expect("store opens");
        Reconciler::new(
            self.cfg.clone(),
            self.graph_client(token_backoff),
            tring,
            SystemClock,
            Some(store),
            false,
        )
        .await
        .expect("reconciler builds")
    }

    async fn shutdown(self) {
        self.graph.shutdown();
        within("stopping the tring simulator", 5, self.tring.shutdown()).await;
    }
}

async fn cycle(rec: &mut Reconciler<GraphClient, TringClient, SystemClock>) -> CycleReport {
    within(
        "a cycle",
        30,
        rec.cycle(Mode::Full, &CancellationToken::new()),
    )
    .await
    .expect("the cycle's store writes succeed")
}

// ------------------------------------------------------------------------------------ tests

#[tokio::test]
async fn an_expired_secret_is_one_token_request_and_one_line_per_cycle() {
    let _serial = SERIAL.lock().await;
    let domain = "expired.example";
    let f = Fixture::start(domain, None).await;
    f.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::ExpiredSecret,
        times: None,
    });
    // No backoff across cycles: every cycle tries the token once again.
    let mut rec = f.reconciler(Duration::ZERO).await;
    let mut last_line = String::new();
    for n in 1..=3u64 {
        let from = log_len();
        let report = cycle(&mut rec).await;
        assert_eq!(
            f.graph.token_requests(),
            n,
            "cycle {n}: one token request per cycle for {CALENDARS} calendars"
        );
        assert_eq!(report.calendars_failed, CALENDARS);
        let expected = format!(
            "{CALENDARS} of {CALENDARS} calendars not read: graph token refused: the client secret expired (AADSTS7000222): create a new secret in Entra ID (App registrations, Certificates & secrets), store it in the file /run/credentials/rooster.service/graph-secret, and restart rooster"
        );
        assert_eq!(
            report.errors,
            vec![expected.clone()],
            "cycle {n}: one sentence"
        );
        let lines = log_since(from);
        let about_calendars: Vec<_> = lines
            .iter()
            .filter(|l| l.contains("calendar") && !l.contains("cycle finished"))
            .collect();
        assert_eq!(about_calendars.len(), 1, "cycle {n}: {lines:#?}");
        assert!(
            about_calendars[0].contains(&expected),
            "{}",
            about_calendars[0]
        );
        assert!(
            about_calendars[0].contains(" ERROR "),
            "{}",
            about_calendars[0]
        );
        assert!(
            about_calendars[0].contains("calendars_failed=12"),
            "{}",
            about_calendars[0]
        );
        last_line = about_calendars[0].clone();
    }
    assert!(log_lines(domain).is_empty(), "no calendar named one by one");
    // The cycle record keeps the one sentence too.
    let store = rec.store().expect("store").clone();
    let last = within("reading the last cycle", 10, store.last_cycle())
        .await
        .expect("reads")
        .expect("a cycle was recorded");
    assert_eq!(last.errors.len(), 1, "{:?}", last.errors);
    // The line carries the id of the cycle record it belongs to (SPEC §4 "Logs").
    assert!(
        last_line.contains("cycle{") && last_line.contains(&format!(" id={}}}:", last.id.0)),
        "{last_line}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn a_refused_secret_is_remembered_across_cycles_with_backoff() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start("refused.example", None).await;
    f.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::WrongSecret,
        times: None,
    });
    let mut rec = f.reconciler(Duration::from_secs(60)).await;
    for _ in 0..3 {
        let report = cycle(&mut rec).await;
        assert_eq!(report.calendars_failed, CALENDARS);
        assert!(
            report.errors[0].contains("AADSTS7000215"),
            "{:?}",
            report.errors
        );
    }
    assert_eq!(
        f.graph.token_requests(),
        1,
        "within the backoff no cycle asks Entra again"
    );
    let stats = rec.calendars().stats();
    assert_eq!(
        stats.token_failures,
        BTreeMap::from([("7000215".to_owned(), 1)])
    );
    f.shutdown().await;
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried_within_one_attempt() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start("tokendown.example", None).await;
    f.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::TokenDown,
        times: None,
    });
    let mut rec = f.reconciler(Duration::ZERO).await;
    let report = cycle(&mut rec).await;
    assert_eq!(f.graph.token_requests(), 3, "one attempt: its 3 tries");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    // The endpoint back: the next cycle reads every calendar.
    f.graph.clear_faults();
    let report = cycle(&mut rec).await;
    assert_eq!(report.calendars_failed, 0, "{:?}", report.errors);
    f.shutdown().await;
}

#[tokio::test]
async fn graph_unreachable_is_one_line_for_every_calendar() {
    let _serial = SERIAL.lock().await;
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let domain = "unreachable.example";
    let f = Fixture::start(domain, Some(&format!("http://127.0.0.1:{port}/v1.0"))).await;
    let mut rec = f.reconciler(Duration::ZERO).await;
    let from = log_len();
    let report = cycle(&mut rec).await;
    assert_eq!(report.calendars_failed, CALENDARS);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0]
            .starts_with("12 of 12 calendars not read: graph request failed: connection failed"),
        "{:?}",
        report.errors
    );
    let lines = log_since(from);
    let about: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("calendars not read"))
        .collect();
    assert_eq!(about.len(), 1, "{lines:#?}");
    assert!(
        about[0].contains(" WARN "),
        "transient: a warning: {}",
        about[0]
    );
    assert!(log_lines(domain).is_empty(), "no calendar named one by one");
    f.shutdown().await;
}

// ------------------------------------------------------------- /healthz, /metrics, status

/// The samples of a Prometheus text exposition: series (name and labels) → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("series {series} missing from {s:#?}"))
}

#[tokio::test]
async fn an_expired_secret_turns_healthz_503_and_the_alerts_fire_then_all_clears() {
    use rooster::metrics::{self, Metrics};
    let _serial = SERIAL.lock().await;
    let f = Fixture::start("health.example", None).await;
    let rec = f.reconciler(Duration::ZERO).await;
    let graph = rec.calendars().clone();
    let poll = f.cfg.poll_interval;
    // Watching began 7 minutes ago: 3 poll intervals (6 minutes) have passed.
    let m = Arc::new(
        Metrics::starting_at(poll, chrono::Utc::now() - chrono::Duration::minutes(7))
            .with_queues(f.cfg.queues.iter().map(|q| &q.number))
            .with_graph_counters(move || graph.stats()),
    );
    let cancel = CancellationToken::new();
    let addr = metrics::serve(
        "127.0.0.1:0".parse().expect("addr"),
        m.clone(),
        cancel.clone(),
    )
    .await
    .expect("metrics listen");
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            let r = within(
                "the metrics endpoint",
                10,
                http.get(format!("http://{addr}{path}")).send(),
            )
            .await
            .expect("answer");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (code, body) = get("/healthz").await;
    assert_eq!(code, 503, "no cycle in 3 intervals: {body}");
    assert_eq!(
        body,
        "no cycle completed in the 6m (3 poll intervals) since start\n"
    );
    // Before any failure every series an alert needs exists, at 0.
    let before = samples(&get("/metrics").await.1);
    let token = "rooster_graph_token_failures_total{code=\"7000222\"}";
    let failing = "rooster_calendars_failing";
    let complete = "rooster_last_complete_read_timestamp_seconds";
    let last_cycle = "rooster_last_cycle_timestamp_seconds";
    let list_failed = "rooster_tring_requests_total{action=\"list\",outcome=\"failed\"}";
    for series in [token, failing, complete, last_cycle, list_failed] {
        assert_eq!(sample(&before, series), 0.0, "{series}");
    }

    f.graph.inject(GraphFault {
        mailbox: None,
        kind: GraphFaultKind::ExpiredSecret,
        times: None,
    });
    let mut rec = rec.with_metrics(m.clone());
    cycle(&mut rec).await;
    let (code, body) = get("/healthz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("expired secret: every calendar read failed in the last 6m (3 poll intervals): 12 of 12 calendars not read: graph token refused: the client secret expired (AADSTS7000222)"),
        "{body}"
    );
    // `status` says the same, from the state.
    let mut out = Vec::new();
    let secrets = rooster::config::Secrets {
        tring_key: Secret::new(KEY),
        graph_client_secret: Secret::new(SECRET),
    };
    within(
        "status",
        20,
        rooster::commands::status((*f.cfg).clone(), &secrets, false, &mut out),
    )
    .await
    .expect("status runs");
    let text = String::from_utf8_lossy(&out);
    let first = body.lines().next().expect("a sentence");
    assert!(
        text.contains(&format!("health: FAILING: {first}")),
        "status must say what /healthz says:\n{text}\n/healthz: {body}"
    );

    // The alerts of INSTALL.md §10, evaluated by hand on the two scrapes.
    let after = samples(&get("/metrics").await.1);
    let now = chrono::Utc::now().timestamp() as f64;
    let increase = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(increase(token) > 0.0, "RoosterGraphSecretRefused fires");
    assert_eq!(
        sample(&after, failing),
        12.0,
        "RoosterCalendarsFailing fires"
    );
    assert!(
        now - sample(&after, complete) > 3.0 * 120.0,
        "RoosterCalendarsUnread fires"
    );
    assert!(
        now - sample(&after, last_cycle) < 3.0 * 120.0,
        "RoosterStalled stays quiet: cycles complete"
    );
    assert_eq!(
        increase(list_failed),
        0.0,
        "RoosterTringUnreachable stays quiet"
    );

    // The secret fixed: the next cycle reads every calendar and all clears.
    f.graph.clear_faults();
    cycle(&mut rec).await;
    let (code, body) = get("/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let fixed = samples(&get("/metrics").await.1);
    let now = chrono::Utc::now().timestamp() as f64;
    assert_eq!(sample(&fixed, failing), 0.0);
    assert!(
        now - sample(&fixed, complete) < 3.0 * 120.0,
        "RoosterCalendarsUnread clears"
    );
    assert_eq!(
        sample(&fixed, token),
        1.0,
        "a counter: the one failure stays counted"
    );
    assert!(sample(&fixed, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&fixed, "process_open_fds") > 0.0);
    cancel.cancel();
    f.shutdown().await;
}

#[tokio::test]
async fn tring_unreachable_fires_its_alert_and_turns_healthz_503() {
    use rooster::metrics::Metrics;
    let _serial = SERIAL.lock().await;
    let f = Fixture::start("tringdown.example", None).await;
    let m = Arc::new(
        Metrics::starting_at(
            f.cfg.poll_interval,
            chrono::Utc::now() - chrono::Duration::minutes(7),
        )
        .with_queues(f.cfg.queues.iter().map(|q| &q.number)),
    );
    let before = samples(&m.render());
    let mut rec = f.reconciler(Duration::ZERO).await.with_metrics(m.clone());
    f.tring.inject(Fault::always(FaultKind::Status(500)));
    cycle(&mut rec).await;
    let after = samples(&m.render());
    let series =
        |o: &str| format!("rooster_tring_requests_total{{action=\"list\",outcome=\"{o}\"}}");
    let increase = |s: &str| sample(&after, s) - sample(&before, s);
    // RoosterTringUnreachable: lists failed and none succeeded.
    assert!(increase(&series("failed")) > 0.0 && increase(&series("ok")) == 0.0);
    let h = m.health(chrono::Utc::now());
    assert!(!h.healthy);
    assert!(
        h.sentence.starts_with("no managed queue could be listed in TRiNG in the last 6m (3 poll intervals): queue 600: list failed"),
        "{}",
        h.sentence
    );
    f.shutdown().await;
}

#[tokio::test]
async fn status_with_tring_unreachable_answers_within_seconds_naming_the_queues() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start("status.example", None).await;
    let mut rec = f.reconciler(Duration::ZERO).await;
    cycle(&mut rec).await;
    // Every TRiNG call hangs for a minute (each list would take its timeouts and retries).
    f.tring
        .inject(Fault::always(FaultKind::Delay(Duration::from_secs(60))));
    let secrets = rooster::config::Secrets {
        tring_key: Secret::new(KEY),
        graph_client_secret: Secret::new(SECRET),
    };
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    within(
        "status with TRiNG unreachable",
        10,
        rooster::commands::status((*f.cfg).clone(), &secrets, false, &mut out),
    )
    .await
    .expect("status runs");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("(queue 600: no answer from TRiNG within 5s)"),
        "{text}"
    );
    f.tring.clear_faults();
    f.shutdown().await;
}
