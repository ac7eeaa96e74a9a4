//! Reads one calendar window through Graph `calendarView` (SPEC §5, graph-notes B1–B2, B9,
//! B12): every page, every event, or an error. A [`CalendarRead`] is complete by
//! construction; any failure on page N fails the whole read, so the cycle applies SPEC §3
//! rule 1 (adds only) instead of removing people whose shifts were on the missing page.
//!
//! Knows no rules or queues. Never sends the token anywhere but `base_url`'s origin, never
//! logs it, never puts it in an error. No `Prefer: outlook.timezone` (times are read as UTC),
//! no `calendarView/delta` (SPEC §5).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Semaphore;
use url::Url;

use super::normalize::{NormalizeError, dedupe, normalize_page};
use super::token::{TokenError, TokenSource, describe_reqwest};
use crate::config::GraphConfig;
use crate::model::{CalendarRef, Event, Mailbox, Secret, sanitize};
use crate::replies::{Reply, ReplyTap, Service};

/// The fields rooster needs (graph-notes B1: createdDateTime cannot be selected here).
const SELECT: &str = "id,subject,start,end,isAllDay,isCancelled,showAs,categories,sensitivity,organizer,attendees,type,seriesMasterId";
/// Page size asked for. Outlook's documented maximum `$top` is 1000 (unverified for
/// calendarView: the search corpus gave no authoritative page); Graph may page smaller anyway.
const TOP: u32 = 1000;
/// Outlook allows 4 concurrent requests per app and mailbox (graph-notes B12).
const PER_MAILBOX: usize = 4;
/// A calendar view that pages on past this is not terminating; refuse it.
const MAX_PAGES: u32 = 500;

/// A complete read of one calendar window: every page followed, every event understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRead {
    pub events: Vec<Event>,
    pub pages: u32,
}

/// How requests are retried: the policy both clients share (SPEC §5).
pub use crate::retry::RetryPolicy;
use crate::retry::{Sleeper, TokioSleeper};

/// The wait a `Retry-After` header asks for, capped by `policy`; `None` when absent or not
/// in seconds.
fn retry_after(policy: &RetryPolicy, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    policy.retry_after(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Client knobs beyond the config; the defaults are SPEC §5's.
#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub retry: RetryPolicy,
    /// How the waits between tries (calendar reads and token requests) are spent.
    pub sleeper: Arc<dyn Sleeper>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a failed token request is remembered at first ([`super::token::failure_backoff`]).
    pub token_backoff: Duration,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            sleeper: Arc::new(TokioSleeper),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            token_backoff: Duration::from_secs(30),
        }
    }
}

/// Why one Graph request failed after its retries.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("throttled on all {tries} tries (429/503)")]
    Throttled { tries: u32 },
    #[error("server failed with {status} on all {tries} tries")]
    ServerFailed { status: u16, tries: u32 },
    #[error("{detail} (after {tries} tries)")]
    TransportFailed { detail: String, tries: u32 },
    #[error("unauthorized (401) even with a fresh token: {message}")]
    Unauthorized { message: String },
    #[error("access denied by Exchange (403 {code}): {message}")]
    AccessPolicyDenied { code: String, message: String },
    #[error(
        "forbidden (403 {code}): {message}; check the app's Calendars.Read application permission"
    )]
    Forbidden { code: String, message: String },
    #[error("not found (404 {code}): {message}")]
    NotFound { code: String, message: String },
    #[error("refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error(transparent)]
    TokenFailed(#[from] TokenError),
}

impl RequestError {
    pub fn is_permanent(&self) -> bool {
        match self {
            RequestError::Throttled { .. }
            | RequestError::ServerFailed { .. }
            | RequestError::TransportFailed { .. } => false,
            RequestError::TokenFailed(e) => e.is_permanent(),
            _ => true,
        }
    }
}

/// Why a calendar could not be read completely. Each names the calendar first.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("graph client could not be built: {detail}")]
    ClientBuildFailed { detail: String },
    #[error("calendar {calendar}: {source}")]
    TokenFailed {
        calendar: CalendarRef,
        source: TokenError,
    },
    #[error(
        "calendar {calendar}: mailbox {mailbox} is outside the app's application access policy or Exchange RBAC scope (403 \"Access to OData is disabled\"); an Exchange admin must add it to the app's scope (see Test-ApplicationAccessPolicy)"
    )]
    AccessPolicyDenied {
        calendar: CalendarRef,
        mailbox: Mailbox,
    },
    #[error(
        "calendar {calendar}: mailbox {mailbox} not found or has no Exchange Online calendar (404 {code})"
    )]
    MailboxNotFound {
        calendar: CalendarRef,
        mailbox: Mailbox,
        code: String,
    },
    #[error("calendar {calendar}: mailbox {mailbox} has no calendar named {name:?}")]
    CalendarNotFound {
        calendar: CalendarRef,
        mailbox: Mailbox,
        name: String,
    },
    #[error("calendar {calendar}: listing the mailbox's calendars failed: {source}")]
    CalendarListFailed {
        calendar: CalendarRef,
        source: RequestError,
    },
    #[error("calendar {calendar}: read failed at page {page}, so none of it is used: {source}")]
    PageMissing {
        calendar: CalendarRef,
        page: u32,
        source: RequestError,
    },
    #[error("calendar {calendar}: page {page}: {source}")]
    EventNotUnderstood {
        calendar: CalendarRef,
        page: u32,
        source: NormalizeError,
    },
    #[error(
        "calendar {calendar}: page {page} links to {origin}, not to the configured Graph origin; refused (the token goes nowhere else)"
    )]
    NextLinkRefused {
        calendar: CalendarRef,
        page: u32,
        origin: String,
    },
    #[error("calendar {calendar}: more than {MAX_PAGES} pages; refused as runaway paging")]
    PagingRanAway { calendar: CalendarRef },
    #[error("calendar {calendar}: read aborted: {detail}")]
    ReadAborted {
        calendar: CalendarRef,
        detail: String,
    },
}

impl GraphError {
    /// Permanent errors need an operator (config, Entra, Exchange); transient ones may pass
    /// by the next cycle. Either way the read is incomplete (SPEC §3 rule 1).
    pub fn is_permanent(&self) -> bool {
        match self {
            GraphError::TokenFailed { source, .. } => source.is_permanent(),
            GraphError::PageMissing { source, .. }
            | GraphError::CalendarListFailed { source, .. } => source.is_permanent(),
            GraphError::ReadAborted { .. } => false,
            _ => true,
        }
    }

    /// The cause without the calendar, when it is not the calendar's own: the token refused
    /// or not obtained, Graph unreachable or failing for every request. The cycle says such
    /// a cause once for all the calendars it hits (SPEC §4 "Logs").
    pub fn common_cause(&self) -> Option<String> {
        match self {
            GraphError::TokenFailed { source, .. } => Some(source.to_string()),
            GraphError::PageMissing { source, .. }
            | GraphError::CalendarListFailed { source, .. } => match source {
                RequestError::TransportFailed { .. } | RequestError::ServerFailed { .. } => {
                    Some(format!("graph request failed: {source}"))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// Request counters for `status` and `/metrics` (SPEC §4 Metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphStats {
    pub requests_by_outcome: BTreeMap<&'static str, u64>,
    pub throttled: u64,
    pub token_requests: u64,
    /// Failed token requests by AADSTS code label ([`TokenError::code_label`]).
    pub token_failures: BTreeMap<String, u64>,
}

/// The Graph calendar reader. Cheap to clone (shared state); one per process.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    token: TokenSource,
    retry: RetryPolicy,
    sleeper: Arc<dyn Sleeper>,
    global: Semaphore,
    /// `[graph] concurrency`: calendars read at once.
    readers: usize,
    per_mailbox: Mutex<HashMap<Mailbox, Arc<Semaphore>>>,
    calendar_ids: Mutex<HashMap<(Mailbox, String), String>>,
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    throttled: AtomicU64,
    /// Set by `rooster doctor` only: every answer is also handed to it.
    tap: std::sync::OnceLock<ReplyTap>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.inner.base.as_str())
            .field("token", &self.inner.token)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// One try's result, before the retry decision.
enum Attempt {
    Done(Vec<u8>),
    Retry {
        wait: Option<Duration>,
        error: RequestError,
    },
    Unauthorized(String),
    Failed(RequestError),
}

/// Graph's error body: `{"error": {"code", "message"}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct CalendarList {
    value: Vec<CalendarEntry>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct CalendarEntry {
    id: String,
    #[serde(default)]
    name: String,
}

impl GraphClient {
    /// A client with SPEC §5's defaults.
    pub fn new(cfg: &GraphConfig, secret: Secret) -> Result<Self, GraphError> {
        Self::with_options(cfg, secret, GraphOptions::default())
    }

    pub fn with_options(
        cfg: &GraphConfig,
        secret: Secret,
        opts: GraphOptions,
    ) -> Result<Self, GraphError> {
        let build = |detail: String| GraphError::ClientBuildFailed { detail };
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .user_agent(super::USER_AGENT)
            // A redirect would carry the bearer token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| build(describe_reqwest(&e)))?;
        if cfg.base_url.cannot_be_a_base() {
            return Err(build(format!("base_url {} cannot be a base", cfg.base_url)));
        }
        let token = TokenSource::new(
            http.clone(),
            &cfg.authority,
            &cfg.tenant_id,
            &cfg.client_id,
            secret,
        )
        .map_err(|e| build(format!("authority {}: {e}", cfg.authority)))?
        .with_retry(opts.retry)
        .with_sleeper(opts.sleeper.clone())
        .with_failure_backoff(opts.token_backoff)
        .with_secret_store(match &cfg.client_secret {
            crate::config::SecretSource::File(p) => format!("the file {}", p.display()),
            crate::config::SecretSource::Env(v) => format!("${v}"),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: cfg.base_url.clone(),
                token,
                retry: opts.retry,
                sleeper: opts.sleeper,
                global: Semaphore::new(cfg.concurrency.max(1)),
                readers: cfg.concurrency.max(1),
                per_mailbox: Mutex::new(HashMap::new()),
                calendar_ids: Mutex::new(HashMap::new()),
                outcomes: Mutex::new(BTreeMap::new()),
                throttled: AtomicU64::new(0),
                tap: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Hands every answer from now on (token endpoint included) to `tap` as well, for
    /// `rooster doctor` (SPEC §4 "Doctor": the clock check and `--save-replies`).
    pub fn with_tap(self, tap: ReplyTap) -> Self {
        self.inner.token.set_tap(tap.clone());
        let _ = self.inner.tap.set(tap);
        self
    }

    /// Asks for a token (or uses the cached one): the first thing `rooster doctor` checks.
    pub async fn check_token(&self) -> Result<(), TokenError> {
        self.inner.token.token().await.map(|_| ())
    }

    pub fn stats(&self) -> GraphStats {
        GraphStats {
            requests_by_outcome: lock(&self.inner.outcomes).clone(),
            throttled: self.inner.throttled.load(Ordering::Relaxed),
            token_requests: self.inner.token.token_requests(),
            token_failures: self.inner.token.failures_by_code(),
        }
    }

    /// Reads every event of `cal` overlapping `[from, to)`, all pages, or fails.
    #[tracing::instrument(name = "graph_read", skip_all, fields(calendar = %cal))]
    pub async fn read_calendar(
        &self,
        cal: &CalendarRef,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<CalendarRead, GraphError> {
        let mut url = self.calendar_view_url(cal, from, to).await?;
        let mut page = 1;
        let mut events = Vec::new();
        loop {
            let body = self
                .get(&cal.mailbox, &url)
                .await
                .map_err(|e| lift(cal, Some(page), e))?;
            let (page_events, next) =
                normalize_page(&body).map_err(|source| GraphError::EventNotUnderstood {
                    calendar: cal.clone(),
                    page,
                    source,
                })?;
            tracing::trace!(page, events = page_events.len(), "graph page read");
            events.extend(page_events);
            // graph-notes B2: a page may be empty while a nextLink still exists; follow it.
            let Some(next) = next else { break };
            if page >= MAX_PAGES {
                return Err(GraphError::PagingRanAway {
                    calendar: cal.clone(),
                });
            }
            url = self.same_origin(cal, page, &next)?;
            page += 1;
        }
        let events = dedupe(events);
        tracing::debug!(pages = page, events = events.len(), "calendar read");
        Ok(CalendarRead {
            events,
            pages: page,
        })
    }

    /// Reads several calendars concurrently (bounded by the semaphores); each succeeds or
    /// fails on its own. Results come back in the order of `cals`.
    pub async fn read_many(
        &self,
        cals: &[CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(CalendarRef, Result<CalendarRead, GraphError>)> {
        let mut results: Vec<_> = self.read_stream(cals, from, to).collect().await;
        let order: HashMap<&CalendarRef, usize> =
            cals.iter().enumerate().map(|(i, c)| (c, i)).collect();
        results.sort_by_key(|(cal, _)| order.get(cal).copied());
        results
    }

    /// Reads several calendars, `[graph] concurrency` at a time, and yields each result as
    /// soon as it is complete (in completion order), so a caller can use and drop one
    /// calendar's events before the next arrive: a large tenant never holds them all in
    /// memory. Reads not started when the stream is dropped are never sent.
    pub fn read_stream<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Stream<Item = (CalendarRef, Result<CalendarRead, GraphError>)> + Send + 'a {
        // One read of the calendars is one cycle: at most one token attempt in it.
        self.inner.token.new_epoch();
        // Twice the global limit in flight, so calendars of a mailbox at its own limit of 4
        // do not hold up the others; the semaphores keep the requests within the limits.
        futures::stream::iter(cals)
            .map(move |cal| async move { (cal.clone(), self.read_calendar(cal, from, to).await) })
            .buffer_unordered(self.inner.readers * 2)
    }

    fn users_url(&self, mailbox: &Mailbox, rest: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            // `extend` percent-encodes each segment, so a mailbox stays one segment.
            segs.pop_if_empty()
                .extend(["users", mailbox.as_str()])
                .extend(rest);
        }
        url
    }

    async fn calendar_view_url(
        &self,
        cal: &CalendarRef,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Url, GraphError> {
        let mut url = match &cal.name {
            None => self.users_url(&cal.mailbox, &["calendarView"]),
            Some(name) => {
                let id = self.calendar_id(cal, name).await?;
                self.users_url(&cal.mailbox, &["calendars", &id, "calendarView"])
            }
        };
        // Written by hand rather than with query_pairs_mut: that would encode `$` as `%24`
        // and `:` as `%3A`; Graph documents the plain form.
        let fmt = "%Y-%m-%dT%H:%M:%SZ";
        url.set_query(Some(&format!(
            "startDateTime={}&endDateTime={}&$select={SELECT}&$top={TOP}",
            from.format(fmt),
            to.format(fmt)
        )));
        Ok(url)
    }

    /// Resolves a calendar's display name to its id, following paging; cached per mailbox.
    async fn calendar_id(&self, cal: &CalendarRef, name: &str) -> Result<String, GraphError> {
        let key = (cal.mailbox.clone(), name.to_owned());
        if let Some(id) = lock(&self.inner.calendar_ids).get(&key) {
            return Ok(id.clone());
        }
        let mut url = self.users_url(&cal.mailbox, &["calendars"]);
        url.set_query(Some("$select=id,name&$top=100"));
        let mut page = 1;
        loop {
            let body = self
                .get(&cal.mailbox, &url)
                .await
                .map_err(|e| lift(cal, None, e))?;
            let list: CalendarList =
                serde_json::from_slice(&body).map_err(|e| GraphError::CalendarListFailed {
                    calendar: cal.clone(),
                    source: RequestError::Refused {
                        status: 200,
                        code: "answer not understood".into(),
                        message: e.to_string(),
                    },
                })?;
            let found = list.value.iter().find(|c| c.name == name).or_else(|| {
                list.value
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name))
            });
            if let Some(c) = found {
                lock(&self.inner.calendar_ids).insert(key, c.id.clone());
                return Ok(c.id.clone());
            }
            let Some(next) = list.next_link else { break };
            if page >= MAX_PAGES {
                return Err(GraphError::PagingRanAway {
                    calendar: cal.clone(),
                });
            }
            url = self.same_origin(cal, page, &next)?;
            page += 1;
        }
        Err(GraphError::CalendarNotFound {
            calendar: cal.clone(),
            mailbox: cal.mailbox.clone(),
            name: sanitize(name, 60),
        })
    }

    /// A nextLink is followed verbatim, but only to the configured origin: the bearer token
    /// must never go to a host that a response body named.
    fn same_origin(&self, cal: &CalendarRef, page: u32, link: &str) -> Result<Url, GraphError> {
        let refused = |origin: String| GraphError::NextLinkRefused {
            calendar: cal.clone(),
            page,
            origin,
        };
        let url = Url::parse(link).map_err(|_| refused("an unparsable link".into()))?;
        if url.origin() != self.inner.base.origin() {
            return Err(refused(sanitize(&url.origin().ascii_serialization(), 80)));
        }
        Ok(url)
    }

    fn count(&self, outcome: &'static str) {
        *lock(&self.inner.outcomes).entry(outcome).or_default() += 1;
    }

    fn mailbox_permits(&self, mailbox: &Mailbox) -> Arc<Semaphore> {
        lock(&self.inner.per_mailbox)
            .entry(mailbox.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_MAILBOX)))
            .clone()
    }

    /// One GET with retries (SPEC §5). Returns the 200 body.
    async fn get(&self, mailbox: &Mailbox, url: &Url) -> Result<Vec<u8>, RequestError> {
        let mut delays = self.inner.retry.delays();
        let mut tries = 0;
        let mut refreshed = false;
        loop {
            tries += 1;
            let token = self.inner.token.token().await?;
            match self.attempt(mailbox, url, &token, tries).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Failed(e) => return Err(e),
                Attempt::Unauthorized(message) => {
                    if refreshed {
                        return Err(RequestError::Unauthorized { message });
                    }
                    // SPEC §5: a 401 triggers one refresh; it does not use up a try.
                    tracing::debug!(%mailbox, "graph answered 401; refreshing the token once");
                    self.inner.token.invalidate(&token).await;
                    refreshed = true;
                    tries -= 1;
                }
                Attempt::Retry { wait, error } => {
                    let Some(backoff) = delays.next() else {
                        return Err(error);
                    };
                    let wait = self.inner.retry.wait(backoff, wait);
                    // Debug: a Graph outage would give a line per calendar and try; the cycle
                    // logs the final failure, once per common cause (SPEC §4 "Logs").
                    tracing::debug!(%mailbox, try_no = tries, wait_ms = wait.as_millis() as u64,
                        error = %error, "graph request failed; retrying");
                    self.inner.sleeper.sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(&self, mailbox: &Mailbox, url: &Url, token: &Secret, tries: u32) -> Attempt {
        let per_mailbox = self.mailbox_permits(mailbox);
        // Closed semaphores never happen (we never close them); treat it as a failed request.
        let (Ok(_m), Ok(_g)) = (
            per_mailbox.acquire().await,
            self.inner.global.acquire().await,
        ) else {
            return Attempt::Failed(RequestError::TransportFailed {
                detail: "request limiter closed".into(),
                tries,
            });
        };
        let transport = |e: &reqwest::Error| RequestError::TransportFailed {
            detail: describe_reqwest(e),
            tries,
        };
        let sent = chrono::Utc::now();
        let resp = match self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(token.expose())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.count(if e.is_timeout() {
                    "timeout"
                } else {
                    "transport_failed"
                });
                return Attempt::Retry {
                    wait: None,
                    error: transport(&e),
                };
            }
        };
        let status = resp.status();
        let retry_after = retry_after(&self.inner.retry, resp.headers());
        let date = crate::replies::date_header(resp.headers());
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                self.count(if e.is_timeout() {
                    "timeout"
                } else {
                    "transport_failed"
                });
                return Attempt::Retry {
                    wait: None,
                    error: transport(&e),
                };
            }
        };
        if let Some(tap) = self.inner.tap.get() {
            tap.record(Reply {
                service: Service::Graph,
                call: call_name(mailbox, url),
                sent,
                received: chrono::Utc::now(),
                status: status.as_u16(),
                date,
                body: body.clone(),
            });
        }
        if status == StatusCode::OK {
            self.count("ok");
            return Attempt::Done(body);
        }
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .unwrap_or_default()
            .error;
        let code = sanitize(&detail.code, 60);
        let message = sanitize(&detail.message, 160);
        match status.as_u16() {
            429 | 503 => {
                self.count("throttled");
                self.inner.throttled.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry {
                    wait: retry_after,
                    error: RequestError::Throttled { tries },
                }
            }
            s @ (500..=599 | 408) => {
                self.count("server_error");
                Attempt::Retry {
                    wait: retry_after,
                    error: RequestError::ServerFailed { status: s, tries },
                }
            }
            401 => {
                self.count("unauthorized");
                Attempt::Unauthorized(message)
            }
            403 if detail.message.contains("Access to OData is disabled") => {
                // graph-notes B9: the application access policy / RBAC scope excludes this
                // mailbox — a per-calendar config error, not a transient one.
                self.count("access_denied");
                Attempt::Failed(RequestError::AccessPolicyDenied { code, message })
            }
            403 => {
                self.count("forbidden");
                Attempt::Failed(RequestError::Forbidden { code, message })
            }
            404 => {
                self.count("not_found");
                Attempt::Failed(RequestError::NotFound { code, message })
            }
            s => {
                self.count("refused");
                Attempt::Failed(RequestError::Refused {
                    status: s,
                    code,
                    message,
                })
            }
        }
    }
}

/// `calendarview-jan@acme.nl`: the last path segment and the mailbox, for a [`Reply`].
fn call_name(mailbox: &Mailbox, url: &Url) -> String {
    let what = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("request")
        .to_ascii_lowercase();
    format!("{what}-{mailbox}")
}

/// Puts a request failure in its calendar's terms; `page` is `None` for the calendar list.
fn lift(cal: &CalendarRef, page: Option<u32>, e: RequestError) -> GraphError {
    match e {
        RequestError::AccessPolicyDenied { .. } => GraphError::AccessPolicyDenied {
            calendar: cal.clone(),
            mailbox: cal.mailbox.clone(),
        },
        RequestError::NotFound { code, .. } => GraphError::MailboxNotFound {
            calendar: cal.clone(),
            mailbox: cal.mailbox.clone(),
            code,
        },
        RequestError::TokenFailed(source) => GraphError::TokenFailed {
            calendar: cal.clone(),
            source,
        },
        source => match page {
            Some(page) => GraphError::PageMissing {
                calendar: cal.clone(),
                page,
                source,
            },
            None => GraphError::CalendarListFailed {
                calendar: cal.clone(),
                source,
            },
        },
    }
}

/// A poisoned lock only means another task panicked mid-update of a counter or cache;
/// the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_capped_and_http_dates_are_ignored() {
        let p = RetryPolicy::default();
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&p, &h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "9999".parse().expect("header"),
        );
        assert_eq!(retry_after(&p, &h), Some(Duration::from_secs(120)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&p, &h), None);
    }
}
