//! A simulated Microsoft Graph and Entra token endpoint on 127.0.0.1 (axum), for the demo and
//! the tests (SPEC §6). It issues client-credentials tokens (checking the secret and answering
//! with Entra's real `AADSTS` error shapes), serves `calendarView` from model events with
//! `$select`, `$skip` paging and window filtering, lists named calendars, records requests
//! (never the token) and injects faults on demand. Events are written as JSON by
//! [`graph_event`](super::graph_event), from Microsoft's documented shapes and never through
//! rooster's own parser types, so the simulator can catch a misreading of Graph.
//!
//! Not a faithful Graph: only what rooster calls. Knows nothing of rules or queues.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::time::Instant;
use url::Url;

use crate::model::{Event, EventTime, Mailbox};
use crate::sim::graph_event::{GraphRendering, render_event, select};

/// How the simulator is set up.
#[derive(Clone)]
pub struct GraphSimOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Events per page (default 10, as Graph); a smaller `$top` is honoured.
    pub page_size: usize,
    pub token_ttl: Duration,
    /// How events are written (see [`GraphRendering`]); the default is the lean shape.
    pub rendering: GraphRendering,
}

impl std::fmt::Debug for GraphSimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSimOptions")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("page_size", &self.page_size)
            .field("token_ttl", &self.token_ttl)
            .field("rendering", &self.rendering)
            .finish()
    }
}

impl Default for GraphSimOptions {
    fn default() -> Self {
        Self {
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            client_id: "11111111-1111-1111-1111-111111111111".into(),
            client_secret: "sim-client-secret".into(),
            page_size: 10,
            token_ttl: Duration::from_secs(3599),
            rendering: GraphRendering::default(),
        }
    }
}

/// A fault to inject. `mailbox: None` applies to every mailbox; `times: None` forever.
#[derive(Debug, Clone)]
pub struct GraphFault {
    pub mailbox: Option<Mailbox>,
    pub kind: GraphFaultKind,
    pub times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFaultKind {
    /// Answer Graph calls with this status (and `Retry-After` seconds if given).
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// 429 TooManyRequests, as Outlook's MailboxConcurrency answer.
    Throttle { retry_after: Option<u64> },
    /// Wait this long before answering a Graph call.
    Delay(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// The n-th page (1-based) of a calendarView answers 500.
    FailPage(u32),
    /// 403 ErrorAccessDenied "Access to OData is disabled." (application access policy).
    AccessDenied,
    /// 404 ErrorItemNotFound.
    NotFound,
    /// The token endpoint answers 500.
    TokenDown,
    /// The token endpoint answers AADSTS7000215 (wrong secret) whatever the secret.
    WrongSecret,
    /// The token endpoint answers AADSTS7000222 (expired secret).
    ExpiredSecret,
    /// The token endpoint answers 400 `unauthorized_client` with this AADSTS code (65001
    /// consent missing, 7000112 app disabled, …), whatever the request.
    TokenRefused(u64),
    /// 403 ErrorAccessDenied "Access is denied. Check credentials and try again." — the
    /// answer of a token without the Calendars.Read role (admin consent missing).
    NoPermission,
}

impl GraphFaultKind {
    fn on_token_endpoint(&self) -> bool {
        matches!(
            self,
            GraphFaultKind::TokenDown
                | GraphFaultKind::WrongSecret
                | GraphFaultKind::ExpiredSecret
                | GraphFaultKind::TokenRefused(_)
        )
    }
}

/// One request the simulator saw. Holds no token or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedGraphRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub mailbox: Option<Mailbox>,
    pub status: u16,
}

#[derive(Default)]
struct SimState {
    /// (mailbox, calendar name) → events. `None` is the default calendar.
    calendars: BTreeMap<(Mailbox, Option<String>), Vec<Event>>,
    tokens: HashMap<String, Instant>,
    faults: Vec<GraphFault>,
    outage: bool,
    requests: Vec<RecordedGraphRequest>,
    token_requests: u64,
    calendar_view_requests: u64,
    next_token: u64,
    /// Added to the `Date` header of every answer ([`GraphSim::set_clock_offset`]).
    clock_offset: chrono::TimeDelta,
}

struct Shared {
    opts: GraphSimOptions,
    base: Url,
    state: Mutex<SimState>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it does not stop the server; call [`GraphSim::shutdown`].
pub struct GraphSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl std::fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSim")
            .field("addr", &self.addr)
            .finish()
    }
}

impl GraphSim {
    /// Starts on an ephemeral 127.0.0.1 port.
    pub async fn start(opts: GraphSimOptions) -> io::Result<GraphSim> {
        Self::start_on(opts, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (for `rooster sim --graph ADDR`).
    pub async fn start_on(opts: GraphSimOptions, addr: SocketAddr) -> io::Result<GraphSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base = Url::parse(&format!("http://{addr}/v1.0"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            opts,
            base,
            state: Mutex::new(SimState::default()),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users/{mailbox}/calendarView", get(view_default))
            .route("/v1.0/users/{mailbox}/calendars", get(list_calendars))
            .route(
                "/v1.0/users/{mailbox}/calendars/{id}/calendarView",
                get(view_named),
            )
            .layer(axum::middleware::map_response_with_state(
                shared.clone(),
                dated,
            ))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "graph simulator stopped");
            }
        });
        Ok(GraphSim {
            shared,
            addr,
            stop: Mutex::new(Some(tx)),
        })
    }

    /// `http://127.0.0.1:PORT/v1.0`, for `[graph] base_url`.
    pub fn base_url(&self) -> Url {
        self.shared.base.clone()
    }

    /// `http://127.0.0.1:PORT`, for `[graph] authority`.
    pub fn authority(&self) -> Url {
        let mut u = self.shared.base.clone();
        u.set_path("/");
        u
    }

    pub fn options(&self) -> &GraphSimOptions {
        &self.shared.opts
    }

    /// Replaces the events of a mailbox's default calendar (`None`) or of a named one.
    /// Setting events (even none) makes the mailbox exist.
    pub fn set_events(&self, mailbox: &Mailbox, calendar_name: Option<&str>, events: Vec<Event>) {
        let mut st = self.shared.lock();
        st.calendars.entry((mailbox.clone(), None)).or_default();
        st.calendars
            .insert((mailbox.clone(), calendar_name.map(str::to_owned)), events);
    }

    pub fn inject(&self, fault: GraphFault) {
        self.shared.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        let mut st = self.shared.lock();
        st.faults.clear();
        st.outage = false;
    }

    /// While on, every Graph call answers 503 (the demo's short outage).
    pub fn set_outage(&self, on: bool) {
        self.shared.lock().outage = on;
    }

    /// From the next answer on, the `Date` header (Graph's and the token endpoint's) runs
    /// `offset` ahead of this host's clock (behind when negative).
    pub fn set_clock_offset(&self, offset: chrono::TimeDelta) {
        self.shared.lock().clock_offset = offset;
    }

    /// Forgets every issued token, so the next Graph call gets a 401.
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    pub fn requests(&self) -> Vec<RecordedGraphRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn calendar_view_requests(&self) -> u64 {
        self.shared.lock().calendar_view_requests
    }

    pub fn token_requests(&self) -> u64 {
        self.shared.lock().token_requests
    }

    pub fn shutdown(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message,
            "innerError": {"date": Utc::now().to_rfc3339(), "request-id": "sim"}}})),
    )
        .into_response()
}

fn aad_error(status: StatusCode, error: &str, code: u64, text: &str) -> Response {
    let description = format!(
        "AADSTS{code}: {text}\r\nTrace ID: 00000000-sim\r\nCorrelation ID: 00000000-sim\r\nTimestamp: {}",
        Utc::now().format("%Y-%m-%d %H:%M:%SZ")
    );
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": "00000000-sim",
            "correlation_id": "00000000-sim",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

/// Takes the first live fault matching `pred`, counting down its `times`.
fn take_fault(
    st: &mut SimState,
    mailbox: Option<&Mailbox>,
    pred: impl Fn(&GraphFaultKind) -> bool,
) -> Option<GraphFaultKind> {
    let i = st.faults.iter().position(|f| {
        pred(&f.kind)
            && f.times != Some(0)
            && (f.mailbox.is_none() || f.mailbox.as_ref() == mailbox)
    })?;
    let f = &mut st.faults[i];
    if let Some(t) = f.times.as_mut() {
        *t -= 1;
    }
    Some(f.kind.clone())
}

fn record(
    shared: &Shared,
    path: String,
    query: Option<String>,
    mailbox: Option<Mailbox>,
    status: u16,
    method: &str,
) {
    shared.lock().requests.push(RecordedGraphRequest {
        method: method.into(),
        path,
        query,
        mailbox,
        status,
    });
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let resp = token_answer(&shared, &tenant, &form);
    record(
        &shared,
        format!("/{tenant}/oauth2/v2.0/token"),
        None,
        None,
        resp.status().as_u16(),
        "POST",
    );
    resp
}

fn token_answer(shared: &Shared, tenant: &str, form: &HashMap<String, String>) -> Response {
    let opts = &shared.opts;
    let mut st = shared.lock();
    st.token_requests += 1;
    match take_fault(&mut st, None, GraphFaultKind::on_token_endpoint) {
        Some(GraphFaultKind::TokenDown) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "token service down").into_response();
        }
        Some(GraphFaultKind::WrongSecret) => return wrong_secret(&opts.client_id),
        Some(GraphFaultKind::TokenRefused(code)) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                code,
                &format!("Simulated refusal for app '{}'.", opts.client_id),
            );
        }
        Some(GraphFaultKind::ExpiredSecret) => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_222,
                &format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app.",
                    opts.client_id
                ),
            );
        }
        _ => {}
    }
    if tenant != opts.tenant_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."
            ),
        );
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("scope") != "https://graph.microsoft.com/.default" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1_002_012,
            "The provided value for scope is not valid.",
        );
    }
    if field("client_id") != opts.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                crate::model::sanitize(field("client_id"), 60)
            ),
        );
    }
    if field("client_secret") != opts.client_secret {
        return wrong_secret(&opts.client_id);
    }
    st.next_token += 1;
    let token = format!(
        "sim-access-token-{}-{}",
        st.next_token,
        rand::random::<u64>()
    );
    st.tokens
        .insert(token.clone(), Instant::now() + opts.token_ttl);
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": opts.token_ttl.as_secs(),
        "ext_expires_in": opts.token_ttl.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

fn wrong_secret(client_id: &str) -> Response {
    aad_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7_000_215,
        &format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
}

fn calendar_id(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("AAMkSIM-{hex}")
}

/// What a Graph handler needs to know before it serves data.
enum Gate {
    Pass { page_fault: Option<u32> },
    Answer(Response),
}

/// Bearer check, outage and faults, shared by every Graph route.
async fn gate(shared: &Shared, headers: &HeaderMap, mailbox: &Mailbox) -> Gate {
    let delay = {
        let mut st = shared.lock();
        take_fault(&mut st, Some(mailbox), |k| {
            matches!(k, GraphFaultKind::Delay(_))
        })
    };
    if let Some(GraphFaultKind::Delay(d)) = delay {
        tokio::time::sleep(d).await;
    }
    let mut st = shared.lock();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer
        .and_then(|t| st.tokens.get(t))
        .is_some_and(|exp| Instant::now() < *exp);
    if !valid {
        return Gate::Answer(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty, invalid or has expired.",
        ));
    }
    if st.outage {
        return Gate::Answer(graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceNotAvailable",
            "The service is temporarily unavailable.",
        ));
    }
    let fault = take_fault(&mut st, Some(mailbox), |k| {
        !k.on_token_endpoint()
            && !matches!(k, GraphFaultKind::Delay(_) | GraphFaultKind::FailPage(_))
    });
    let answer = match fault {
        Some(GraphFaultKind::Status {
            status,
            retry_after,
        }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(with_retry_after(
                graph_error(code, "SimulatedFault", "injected fault"),
                retry_after,
            ))
        }
        Some(GraphFaultKind::Throttle { retry_after }) => Some(with_retry_after(
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            ),
            retry_after,
        )),
        Some(GraphFaultKind::Garbage) => Some((StatusCode::OK, "<html>garbage{").into_response()),
        Some(GraphFaultKind::AccessDenied) => Some(graph_error(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled.",
        )),
        Some(GraphFaultKind::NoPermission) => Some(graph_error(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )),
        Some(GraphFaultKind::NotFound) => Some(graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )),
        _ => None,
    };
    if let Some(a) = answer {
        return Gate::Answer(a);
    }
    if !st.calendars.keys().any(|(m, _)| m == mailbox) {
        return Gate::Answer(graph_error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            "The requested user is invalid.",
        ));
    }
    // FailPage faults are only looked at, and spent, by the calendarView handler.
    let page_fault = st.faults.iter().find_map(|f| match f.kind {
        GraphFaultKind::FailPage(n)
            if f.times != Some(0)
                && (f.mailbox.is_none() || f.mailbox.as_ref() == Some(mailbox)) =>
        {
            Some(n)
        }
        _ => None,
    });
    Gate::Pass { page_fault }
}

/// Sets the `Date` header from the simulated clock when it is off (hyper's own otherwise).
async fn dated(State(shared): State<Arc<Shared>>, mut resp: Response) -> Response {
    let offset = shared.lock().clock_offset;
    if !offset.is_zero() {
        let at = Utc::now() + offset;
        if let Ok(v) = HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
            resp.headers_mut().insert(header::DATE, v);
        }
    }
    resp
}

fn with_retry_after(mut r: Response, secs: Option<u64>) -> Response {
    if let Some(s) = secs
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn parse_mailbox(raw: &str) -> Result<Mailbox, Box<Response>> {
    Mailbox::parse(raw).map_err(|_| {
        Box::new(graph_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "Resource could not be discovered.",
        ))
    })
}

async fn view_default(
    State(shared): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1.0/users/{mailbox}/calendarView");
    calendar_view(&shared, path, &mailbox, None, q, headers).await
}

async fn view_named(
    State(shared): State<Arc<Shared>>,
    Path((mailbox, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1.0/users/{mailbox}/calendars/{id}/calendarView");
    calendar_view(&shared, path, &mailbox, Some(id), q, headers).await
}

fn query_string(q: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = q.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn calendar_view(
    shared: &Shared,
    path: String,
    raw_mailbox: &str,
    calendar: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let resp = calendar_view_answer(shared, &path, raw_mailbox, calendar, &q, &headers).await;
    shared.lock().calendar_view_requests += 1;
    record(
        shared,
        path,
        Some(query_string(&q)),
        Mailbox::parse(raw_mailbox).ok(),
        resp.status().as_u16(),
        "GET",
    );
    resp
}

async fn calendar_view_answer(
    shared: &Shared,
    path: &str,
    raw_mailbox: &str,
    calendar: Option<String>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let mailbox = match parse_mailbox(raw_mailbox) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let page_fault = match gate(shared, headers, &mailbox).await {
        Gate::Answer(r) => return r,
        Gate::Pass { page_fault } => page_fault,
    };
    let window = |k: &str| {
        q.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (window("startDateTime"), window("endDateTime")) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        );
    };
    let top = q
        .get("$top")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(shared.opts.page_size)
        .max(1);
    let skip = q
        .get("$skip")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let page_no = u32::try_from(skip / top + 1).unwrap_or(u32::MAX);
    let mut st = shared.lock();
    if page_fault == Some(page_no) {
        take_fault(&mut st, Some(&mailbox), |k| {
            *k == GraphFaultKind::FailPage(page_no)
        });
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UnknownError",
            "injected failure of this page",
        );
    }
    let name = match &calendar {
        None => None,
        Some(id) => match st
            .calendars
            .keys()
            .find(|(m, n)| m == &mailbox && n.as_deref().map(calendar_id).as_ref() == Some(id))
        {
            Some((_, n)) => n.clone(),
            None => {
                return graph_error(
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
        },
    };
    let events: Vec<&Event> = st
        .calendars
        .get(&(mailbox.clone(), name))
        .map(|evs| evs.iter().filter(|e| overlaps(e, from, to)).collect())
        .unwrap_or_default();
    let rendering = &shared.opts.rendering;
    // Graph honours `$select`; with the extras switch on the simulator answers as if it had
    // not, so rooster sees everything a real answer may carry.
    let fields = q.get("$select").filter(|_| !rendering.extras);
    let value: Vec<serde_json::Value> = events
        .iter()
        .skip(skip)
        .take(top)
        .map(|e| {
            let v = render_event(e, rendering);
            match fields {
                Some(f) => select(v, f),
                None => v,
            }
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#users('{}')/calendarView", shared.base, mailbox),
        "value": value,
    });
    if skip + top < events.len() {
        let mut next = q.clone();
        next.insert("$skip".into(), (skip + top).to_string());
        next.insert("$top".into(), top.to_string());
        let mut url = shared.base.clone();
        url.set_path(path);
        url.set_query(Some(&query_string(&next)));
        body["@odata.nextLink"] = json!(url.as_str());
    }
    axum::Json(body).into_response()
}

/// Graph's calendarView returns events overlapping the window; all-day dates are midnights.
fn overlaps(e: &Event, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (start, end) = match e.when {
        EventTime::Timed { start, end } => (start, end),
        EventTime::AllDay { start, end } => (
            start.and_time(NaiveTime::MIN).and_utc(),
            end.and_time(NaiveTime::MIN).and_utc(),
        ),
    };
    if start == end {
        from <= start && start < to
    } else {
        start < to && end > from
    }
}

async fn list_calendars(
    State(shared): State<Arc<Shared>>,
    Path(raw_mailbox): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1.0/users/{raw_mailbox}/calendars");
    let resp = match parse_mailbox(&raw_mailbox) {
        Err(r) => *r,
        Ok(mailbox) => match gate(&shared, &headers, &mailbox).await {
            Gate::Answer(r) => r,
            Gate::Pass { .. } => {
                let top = q
                    .get("$top")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
                    .min(shared.opts.page_size)
                    .max(1);
                let skip = q
                    .get("$skip")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let st = shared.lock();
                let mut all = vec![json!({"id": "AAMkSIM-default", "name": "Calendar"})];
                all.extend(st.calendars.keys().filter_map(|(m, n)| match n {
                    Some(n) if m == &mailbox => Some(json!({"id": calendar_id(n), "name": n})),
                    _ => None,
                }));
                let value: Vec<_> = all.iter().skip(skip).take(top).cloned().collect();
                let mut body = json!({ "value": value });
                if skip + top < all.len() {
                    let mut next = q.clone();
                    next.insert("$skip".into(), (skip + top).to_string());
                    next.insert("$top".into(), top.to_string());
                    let mut url = shared.base.clone();
                    url.set_path(&path);
                    url.set_query(Some(&query_string(&next)));
                    body["@odata.nextLink"] = json!(url.as_str());
                }
                axum::Json(body).into_response()
            }
        },
    };
    record(
        &shared,
        path,
        Some(query_string(&q)),
        Mailbox::parse(&raw_mailbox).ok(),
        resp.status().as_u16(),
        "GET",
    );
    resp
}
