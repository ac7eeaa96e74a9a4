//! A stateful TRiNG `proxyapi.php` simulator on 127.0.0.1 (axum), for the demo and for tests
//! of every crate user. It answers as `shared/tring-api.md` describes — key, tenant and queue
//! checks, `type=CU` only for known custom destinations, the idempotent `Error|` answers,
//! JSON lists in the observed shape (or, switchable at start or while running, every
//! alternative tring-api.md names via [`ListShape`]) — records each request, and injects
//! faults on demand ([`TringSim::inject`]). The list shapes are rendered here, by the
//! simulator's own code, never by calling rooster's parser.
//!
//! It never keeps the key of a request: a recorded request says only whether the key was
//! right, and the recorded query has the key replaced by `[redacted]`. It logs nothing.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::model::{Member, Mobile, QueueNo, Secret};

/// The path TRiNG serves the API on.
pub const API_PATH: &str = "/pbx/proxyapi.php";

/// How `action=list` answers when `format=json` is asked (without it, plain: the pipe line
/// for [`ListShape::PlainPipe`], the status line and one interface per line otherwise).
/// Agents are `201-ACME` in every JSON string shape (the observed form); the shapes differ
/// in how a custom destination is spelled, which tring-api.md leaves open ("Recognising a
/// member whatever the shape").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListShape {
    /// The observed shape: `["201-ACME","Local/0612345678@ACME-custom"]`, `null` when empty.
    #[default]
    JsonStrings,
    /// The observed string array with a custom destination as a bare number:
    /// `["201-ACME","0612345678"]`, `null` when empty.
    JsonStringsCuBare,
    /// The observed string array with a custom destination written like an agent:
    /// `["201-ACME","0612345678-ACME"]`, `null` when empty.
    JsonStringsCuSuffixed,
    /// `[{"extension":"201","interface":"SIP/201-ACME","type":"agent",…}, …]`, `[]` when empty.
    JsonObjects,
    /// The object variant with `"extension":"201-ACME"` for agents.
    JsonObjectsTenantSuffixed,
    /// Objects without `type` or `interface`: `[{"extension":"201",…},
    /// {"extension":"0612345678",…}]`, `[]` when empty.
    JsonObjectsWithoutType,
    /// `Success|N members in queue Q|` then one interface per line, even when JSON was asked.
    Plain,
    /// One pipe-separated line, `Success|SIP/201-ACME|Local/0612345678@ACME-custom|`, even
    /// when JSON was asked; an empty queue is `Success|0 members in queue Q|`.
    PlainPipe,
}

impl ListShape {
    /// Every shape, for tests that must hold in each.
    pub const ALL: [ListShape; 8] = [
        ListShape::JsonStrings,
        ListShape::JsonStringsCuBare,
        ListShape::JsonStringsCuSuffixed,
        ListShape::JsonObjects,
        ListShape::JsonObjectsTenantSuffixed,
        ListShape::JsonObjectsWithoutType,
        ListShape::Plain,
        ListShape::PlainPipe,
    ];
}

/// The calls the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Add,
    Del,
    Clean,
    List,
    ListQueues,
    /// `reqtype=MANAGEDB&object=CUSTOM&action=list`: the registered custom destinations.
    CustomList,
}

impl Action {
    fn parse(reqtype: &str, action: &str) -> Option<Action> {
        let queue = reqtype.eq_ignore_ascii_case("queue");
        let agent = reqtype.eq_ignore_ascii_case("agent");
        match action {
            "add" if queue => Some(Action::Add),
            "del" if queue => Some(Action::Del),
            "clean" if queue => Some(Action::Clean),
            "list" if queue => Some(Action::List),
            "listqueues" if agent => Some(Action::ListQueues),
            _ => None,
        }
    }
    fn is_write(self) -> bool {
        matches!(self, Action::Add | Action::Del | Action::Clean)
    }
}

/// What the simulator starts with.
#[derive(Debug, Clone)]
pub struct SimTringOptions {
    /// The read/write key.
    pub key: Secret,
    /// Optional read-only key: it may `list`/`listqueues`, writes answer
    /// `Error|Permission denied: read-only key|`.
    pub read_only_key: Option<Secret>,
    pub tenant: String,
    /// The queues that exist, with their members in order.
    pub queues: Vec<(QueueNo, Vec<Member>)>,
    /// The numbers registered as custom destinations (only these can be added with `type=CU`).
    pub custom_destinations: Vec<Mobile>,
    pub shape: ListShape,
    /// Where to listen; `None` is 127.0.0.1 on a free port.
    pub addr: Option<SocketAddr>,
}

impl Default for SimTringOptions {
    fn default() -> Self {
        Self {
            key: Secret::new("sim-key"),
            read_only_key: None,
            tenant: "ACME".to_owned(),
            queues: Vec::new(),
            custom_destinations: Vec::new(),
            shape: ListShape::default(),
            addr: None,
        }
    }
}

/// One request as the simulator saw it. Holds no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `None` when `reqtype`/`action` named no known call.
    pub action: Option<Action>,
    pub queue: Option<String>,
    pub extension: Option<String>,
    /// The `type` parameter (`CU`).
    pub member_type: Option<String>,
    pub reqtype: Option<String>,
    pub tenant: Option<String>,
    pub format: Option<String>,
    pub cache: Option<String>,
    /// Whether the key was the read/write or read-only key.
    pub key_ok: bool,
    /// The query in the order sent, with the key's value replaced by `[redacted]`.
    pub query_redacted: String,
}

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this HTTP status and a short body; nothing is applied.
    Status(u16),
    /// Wait this long, then answer normally (and apply).
    Delay(Duration),
    /// Answer 200 with this body; nothing is applied.
    Garbage(String),
    /// Answer 200 with `Error|<message>|`; nothing is applied.
    ErrorIn200(String),
    /// Close the connection without any answer (the connection's writes fail from then on,
    /// so hyper abandons it). Nothing is applied.
    DropConnection,
    /// Apply the write, then wait this long before answering (the client should time out).
    ApplyThenTimeout(Duration),
}

/// A fault for requests matching `queue` and `action` (`None` matches any), `times` times
/// (`None`: until cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub queue: Option<QueueNo>,
    pub action: Option<Action>,
    pub kind: FaultKind,
    pub times: Option<u32>,
}

impl Fault {
    /// A fault on every request, until cleared.
    pub fn always(kind: FaultKind) -> Self {
        Fault {
            queue: None,
            action: None,
            kind,
            times: None,
        }
    }
}

struct Inner {
    key: Secret,
    read_only_key: Option<Secret>,
    tenant: String,
    custom_destinations: Vec<Mobile>,
    state: Mutex<SimState>,
    /// Requests being answered now; [`TringSim::idle`] waits for zero.
    in_flight: tokio::sync::watch::Sender<usize>,
    /// Sent after every change a test may wait for ([`TringSim::until`]).
    changed: tokio::sync::watch::Sender<()>,
}

/// Counts one request as in flight for as long as its handler runs (or until it is dropped).
struct InFlight<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> InFlight<'a> {
    fn new(counter: &'a tokio::sync::watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

#[derive(Default)]
struct SimState {
    /// In the lock so a test can switch it between cycles ([`TringSim::set_shape`]).
    shape: ListShape,
    /// Added to the `Date` header of every answer ([`TringSim::set_clock_offset`]).
    clock_offset: chrono::TimeDelta,
    /// When set, `listqueues` for an extension not in it answers `Error|Invalid extension|`
    /// ([`TringSim::set_known_extensions`]); otherwise every extension is known.
    known_extensions: Option<Vec<String>>,
    /// Whether `MANAGEDB&object=CUSTOM&action=list` answers (default) or is refused.
    custom_list_refused: bool,
    queues: BTreeMap<QueueNo, Vec<Member>>,
    requests: Vec<RecordedRequest>,
    faults: Vec<Fault>,
}

impl Inner {
    /// Wakes [`TringSim::until`]. Called with the state unlocked.
    fn changed(&self) {
        self.changed.send_replace(());
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panicking test thread must not take every later request down with it.
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A running simulator. Stops on [`TringSim::shutdown`] or when dropped.
pub struct TringSim {
    addr: SocketAddr,
    inner: Arc<Inner>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TringSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TringSim")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TringSim {
    /// Binds (127.0.0.1:0 unless `opts.addr` says otherwise) and starts serving.
    pub async fn start(opts: SimTringOptions) -> io::Result<TringSim> {
        let bind = opts
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = SimListener(tokio::net::TcpListener::bind(bind).await?);
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            key: opts.key,
            read_only_key: opts.read_only_key,
            tenant: opts.tenant,
            custom_destinations: opts.custom_destinations,
            in_flight: tokio::sync::watch::Sender::new(0),
            changed: tokio::sync::watch::Sender::new(()),
            state: Mutex::new(SimState {
                shape: opts.shape,
                queues: opts.queues.into_iter().collect(),
                ..SimState::default()
            }),
        });
        let app = Router::new()
            .route(API_PATH, get(handle))
            .layer(axum::middleware::map_response_with_state(
                inner.clone(),
                dated,
            ))
            .with_state(inner.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<ConnKill>();
            let serve =
                axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned());
            // Serving on a bound listener only ends on shutdown; an error here has no one to
            // report to, and the tests notice a dead simulator by their requests failing.
            let _ = serve.await;
        });
        Ok(TringSim {
            addr,
            inner,
            cancel,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/pbx/proxyapi.php`.
    pub fn base_url(&self) -> Url {
        // Not input: a bound socket address always formats into a valid URL.
        Url::parse(&format!("http://{}{API_PATH}", self.addr))
            .expect("a socket address makes a valid url")
    }

    /// Waits until no request is being answered, so a request held by a `Delay` or
    /// `ApplyThenTimeout` fault has had its effect (or was dropped) before a test goes on.
    pub async fn idle(&self) {
        let mut count = self.inner.in_flight.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// Waits until `done` holds: checked now and again after every request recorded, every
    /// answer given (writes applied) and every edit by hand, so a test waits for what it
    /// needs to see rather than polling on a timer.
    pub async fn until(&self, mut done: impl FnMut() -> bool) {
        let mut changes = self.inner.changed.subscribe();
        while !done() {
            // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
            let _ = changes.changed().await;
        }
    }

    /// The members of a queue now (empty for an unknown queue).
    pub fn members(&self, q: &QueueNo) -> Vec<Member> {
        self.inner.lock().queues.get(q).cloned().unwrap_or_default()
    }

    /// Replaces a queue's members (creating the queue) — an edit "by hand" in the portal.
    pub fn set_members(&self, q: &QueueNo, members: Vec<Member>) {
        self.inner.lock().queues.insert(q.clone(), members);
        self.inner.changed();
    }

    /// Switches how `list` answers from the next request on.
    pub fn set_shape(&self, shape: ListShape) {
        self.inner.lock().shape = shape;
    }

    pub fn shape(&self) -> ListShape {
        self.inner.lock().shape
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().requests.clone()
    }

    /// From the next answer on, the `Date` header runs `offset` ahead of this host's clock
    /// (behind when negative): the drifting clock `rooster doctor` must notice.
    pub fn set_clock_offset(&self, offset: chrono::TimeDelta) {
        self.inner.lock().clock_offset = offset;
    }

    /// Only these extensions exist from now on: `listqueues` for another answers
    /// `Error|Invalid extension|`. `None` (the default) knows every extension.
    pub fn set_known_extensions(&self, extensions: Option<Vec<String>>) {
        self.inner.lock().known_extensions = extensions;
    }

    /// Makes `MANAGEDB&object=CUSTOM&action=list` answer `Error|Permission denied|` (a
    /// TRiNG that does not open that call to this key), or answer again.
    pub fn set_custom_list_refused(&self, refused: bool) {
        self.inner.lock().custom_list_refused = refused;
    }

    pub fn clear_requests(&self) {
        self.inner.lock().requests.clear();
        self.inner.changed();
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.lock().faults.clear();
    }

    /// Stops serving; requests in flight get at most a second to finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for TringSim {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The parsed query of one request.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn plain(body: impl Into<String>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn json_body(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn handle(
    State(sim): State<Arc<Inner>>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    RawQuery(query): RawQuery,
) -> Response {
    let _in_flight = InFlight::new(&sim.in_flight);
    let raw = query.unwrap_or_default();
    let params = Params {
        pairs: url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    let given_key = params.get("key").unwrap_or("");
    let full_key = given_key == sim.key.expose();
    let read_only = sim
        .read_only_key
        .as_ref()
        .is_some_and(|k| given_key == k.expose());
    let action = Action::parse(
        params.get("reqtype").unwrap_or(""),
        params.get("action").unwrap_or(""),
    )
    .or_else(|| {
        let managedb = params
            .get("reqtype")
            .is_some_and(|r| r.eq_ignore_ascii_case("managedb"));
        let custom = params
            .get("object")
            .is_some_and(|o| o.eq_ignore_ascii_case("custom"));
        (managedb && custom && params.get("action") == Some("list")).then_some(Action::CustomList)
    });
    let queue = params.get("number").map(str::to_owned);

    let fault = {
        let mut state = sim.lock();
        state.requests.push(RecordedRequest {
            action,
            queue: queue.clone(),
            extension: params.get("extension").map(str::to_owned),
            member_type: params.get("type").map(str::to_owned),
            reqtype: params.get("reqtype").map(str::to_owned),
            tenant: params.get("tenant").map(str::to_owned),
            format: params.get("format").map(str::to_owned),
            cache: params.get("cache").map(str::to_owned),
            key_ok: full_key || read_only,
            query_redacted: redacted_query(&params),
        });
        take_fault(&mut state.faults, queue.as_deref(), action)
    };
    sim.changed();

    match fault {
        Some(FaultKind::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, format!("simulated status {code}")).into_response();
        }
        Some(FaultKind::Garbage(body)) => return plain(body),
        Some(FaultKind::ErrorIn200(message)) => return plain(format!("Error|{message}|")),
        Some(FaultKind::DropConnection) => {
            kill.0.store(true, Ordering::SeqCst);
            return plain("");
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::ApplyThenTimeout(d)) => {
            let answer = answer(&sim, &params, action, full_key, read_only);
            sim.changed();
            tokio::time::sleep(d).await;
            return answer;
        }
        None => {}
    }
    let answer = answer(&sim, &params, action, full_key, read_only);
    sim.changed();
    answer
}

fn take_fault(
    faults: &mut Vec<Fault>,
    queue: Option<&str>,
    action: Option<Action>,
) -> Option<FaultKind> {
    let i = faults.iter().position(|f| {
        f.queue.as_ref().is_none_or(|q| Some(q.as_str()) == queue)
            && f.action.is_none_or(|a| Some(a) == action)
            && f.times != Some(0)
    })?;
    let kind = faults[i].kind.clone();
    if let Some(n) = faults[i].times.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(i);
        }
    }
    Some(kind)
}

fn redacted_query(params: &Params) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params.pairs {
        out.append_pair(k, if k == "key" { "[redacted]" } else { v });
    }
    out.finish()
}

/// The normal answer, applying writes (tring-api.md "Example answers").
fn answer(
    sim: &Inner,
    params: &Params,
    action: Option<Action>,
    full_key: bool,
    read_only: bool,
) -> Response {
    if !full_key && !read_only {
        return plain("Error|Invalid key|");
    }
    if params.get("tenant") != Some(sim.tenant.as_str()) {
        return plain("Error|Invalid tenant|");
    }
    let Some(action) = action else {
        return plain("Error|Invalid request|");
    };
    if action.is_write() && !full_key {
        return plain("Error|Permission denied: read-only key|");
    }
    let json = params.get("format") == Some("json");
    let mut state = sim.lock();

    if action == Action::CustomList {
        if state.custom_list_refused {
            return plain("Error|Permission denied|");
        }
        // MiRTA's records carry the number in `cu_param1` (tring-api.md).
        let list: Vec<_> = sim
            .custom_destinations
            .iter()
            .enumerate()
            .map(|(i, m)| {
                serde_json::json!({
                    "cu_id": i + 1,
                    "cu_name": format!("Mobile {}", i + 1),
                    "cu_type": "EXT",
                    "cu_param1": m.as_str(),
                })
            })
            .collect();
        return json_body(serde_json::Value::Array(list).to_string());
    }

    if action == Action::ListQueues {
        let Some(ext) = params.get("extension").filter(|e| is_digits(e)) else {
            return plain("Error|Invalid extension|");
        };
        if let Some(known) = &state.known_extensions
            && !known.iter().any(|k| k == ext)
        {
            return plain("Error|Invalid extension|");
        }
        let queues: Vec<&QueueNo> = state
            .queues
            .iter()
            .filter(|(_, ms)| ms.iter().any(|m| m.id() == ext))
            .map(|(q, _)| q)
            .collect();
        return if json {
            let list: Vec<_> = queues
                .iter()
                .map(|q| serde_json::json!({ "number": q.as_str(), "name": format!("Queue {q}") }))
                .collect();
            json_body(serde_json::Value::Array(list).to_string())
        } else {
            let list: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
            plain(format!("Success|{}|", list.join(",")))
        };
    }

    let number = params.get("number").unwrap_or("");
    let shape = state.shape;
    let Some((q, members)) = state.queues.iter_mut().find(|(q, _)| q.as_str() == number) else {
        return plain(format!(
            "Error|Queue {} not found|",
            digits_or_empty(number)
        ));
    };
    match action {
        Action::List => list_answer(members, q, &sim.tenant, shape, json),
        Action::Clean => {
            let n = members.len();
            members.clear();
            plain(format!("Success|Queue {q} cleaned, {n} members removed|"))
        }
        Action::Add | Action::Del => {
            let Some(ext) = params.get("extension").filter(|e| is_digits(e)) else {
                return plain("Error|Invalid extension|");
            };
            if action == Action::Del {
                return match members.iter().position(|m| m.id() == ext) {
                    Some(i) => {
                        members.remove(i);
                        plain("OK")
                    }
                    None => plain(format!(
                        "Error|Extension {ext} is not a member of queue {q}|"
                    )),
                };
            }
            let member = if params
                .get("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("cu"))
            {
                match Mobile::parse(ext) {
                    Ok(m) if sim.custom_destinations.contains(&m) => Member::Custom(m),
                    _ => return plain(format!("Error|Custom destination {ext} not found|")),
                }
            } else {
                match crate::model::Extension::parse(ext) {
                    Ok(e) => Member::Agent(e),
                    Err(_) => return plain("Error|Invalid extension|"),
                }
            };
            if members.iter().any(|m| m.id() == ext) {
                return plain(format!(
                    "Error|Extension {ext} is already a member of queue {q}|"
                ));
            }
            members.push(member);
            plain("OK")
        }
        Action::ListQueues | Action::CustomList => plain("Error|Invalid request|"),
    }
}

/// Sets the `Date` header from the simulated clock when it is off (hyper's own otherwise).
async fn dated(State(sim): State<Arc<Inner>>, mut resp: Response) -> Response {
    let offset = sim.lock().clock_offset;
    if !offset.is_zero() {
        let at = chrono::Utc::now() + offset;
        if let Ok(v) =
            header::HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        {
            resp.headers_mut().insert(header::DATE, v);
        }
    }
    resp
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Echoes a queue number only when it is harmless digits.
fn digits_or_empty(s: &str) -> &str {
    if is_digits(s) && s.len() <= 10 { s } else { "" }
}

fn interface(m: &Member, tenant: &str) -> String {
    match m {
        Member::Agent(e) => format!("SIP/{e}-{tenant}"),
        Member::Custom(c) => format!("Local/{c}@{tenant}-custom"),
    }
}

fn list_answer(
    members: &[Member],
    q: &QueueNo,
    tenant: &str,
    shape: ListShape,
    json: bool,
) -> Response {
    let counted_lines = || {
        let mut body = format!("Success|{} members in queue {q}|\n", members.len());
        for m in members {
            body.push_str(&interface(m, tenant));
            body.push('\n');
        }
        plain(body)
    };
    if shape == ListShape::PlainPipe {
        if members.is_empty() {
            return counted_lines();
        }
        let fields: Vec<String> = members.iter().map(|m| interface(m, tenant)).collect();
        return plain(format!("Success|{}|", fields.join("|")));
    }
    if !json || shape == ListShape::Plain {
        return counted_lines();
    }
    match shape {
        ListShape::JsonStrings
        | ListShape::JsonStringsCuBare
        | ListShape::JsonStringsCuSuffixed => {
            if members.is_empty() {
                return json_body("null".to_owned());
            }
            let list: Vec<String> = members
                .iter()
                .map(|m| match (m, shape) {
                    (Member::Agent(e), _) => format!("{e}-{tenant}"),
                    (Member::Custom(c), ListShape::JsonStringsCuBare) => c.to_string(),
                    (Member::Custom(c), ListShape::JsonStringsCuSuffixed) => {
                        format!("{c}-{tenant}")
                    }
                    (Member::Custom(_), _) => interface(m, tenant),
                })
                .collect();
            json_body(serde_json::json!(list).to_string())
        }
        ListShape::JsonObjects | ListShape::JsonObjectsTenantSuffixed => {
            let suffixed = shape == ListShape::JsonObjectsTenantSuffixed;
            let list: Vec<_> = members
                .iter()
                .map(|m| {
                    let (extension, ty) = match m {
                        Member::Agent(e) if suffixed => (format!("{e}-{tenant}"), "agent"),
                        Member::Agent(e) => (e.to_string(), "agent"),
                        Member::Custom(c) => (c.to_string(), "CU"),
                    };
                    serde_json::json!({
                        "extension": extension,
                        "interface": interface(m, tenant),
                        "name": "",
                        "type": ty,
                        "penalty": 0,
                        "paused": false,
                    })
                })
                .collect();
            json_body(serde_json::Value::Array(list).to_string())
        }
        ListShape::JsonObjectsWithoutType => {
            let list: Vec<_> = members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "extension": m.id(),
                        "name": "",
                        "penalty": 0,
                        "paused": false,
                    })
                })
                .collect();
            json_body(serde_json::Value::Array(list).to_string())
        }
        ListShape::Plain | ListShape::PlainPipe => counted_lines(),
    }
}

/// Lets a handler close its own connection without answering ([`FaultKind::DropConnection`]).
#[derive(Clone)]
struct ConnKill(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, SimListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        ConnKill(stream.io().kill.clone())
    }
}

/// A TCP listener whose connections can be killed from inside a handler.
struct SimListener(tokio::net::TcpListener);

impl Listener for SimListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    return (KillableStream { stream, kill }, addr);
                }
                // Out of file descriptors and the like: pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Once killed, every write fails, so hyper abandons the connection and the client sees it
/// close before any byte of an answer.
struct KillableStream {
    stream: tokio::net::TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "simulated dropped connection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
