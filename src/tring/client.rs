//! The HTTP side of the TRiNG adapter: builds the proxyapi GET requests exactly as TRiNG's
//! page writes them (`seed/tring-wachtrijen-api.txt`), sends them with one reqwest client,
//! retries what is safe to retry, and hands the body to [`super::parse`]. SPEC §5 "Clients".
//!
//! It must never let the key out: the key is only ever in the request URL, which is built
//! here and never formatted; transport errors are stripped of their URL; bodies and errors
//! are scrubbed of the key; `Debug` prints no key; spans carry no URL. It knows nothing of
//! rules or ownership.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, instrument};
use url::Url;

use super::parse::{
    KnownMembers, parse_clean, parse_custom_list, parse_list, parse_listqueues, parse_write,
};
use super::{TringError, WriteOutcome, scrub};
use crate::config::TringConfig;
use crate::model::{Extension, Member, QueueNo, Secret, sanitize};
use crate::plan::ActionKind;
use crate::replies::{Reply, ReplyTap, Service};

/// tring-api.md "Limits": at most this many requests in flight to TRiNG per client.
const MAX_IN_FLIGHT: usize = 4;

/// Bodies larger than this are not TRiNG answers (a queue list is a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;

/// How often and how patiently a request is tried: the policy both clients share (SPEC §5).
pub use crate::retry::RetryPolicy;

/// Timeouts and retries. Defaults are SPEC §5's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TringClientOptions {
    pub connect_timeout: Duration,
    /// The whole request, body included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for TringClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// Calls made, by action (`list`, `add`, `del`, `clean`, `listqueues`) and outcome
/// (`ok`, `already`, `rejected`, `unparseable`, `http_status`, `timeout`, `connect`,
/// `request_failed`, `uncertain`, and `retried` for every extra try). For `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TringStats {
    pub calls: BTreeMap<(&'static str, &'static str), u64>,
}

impl TringStats {
    pub fn get(&self, action: &str, outcome: &str) -> u64 {
        self.calls
            .iter()
            .filter(|((a, o), _)| *a == action && *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The TRiNG proxyapi client. Cheap to clone (one shared connection pool and counters).
#[derive(Clone)]
pub struct TringClient {
    http: reqwest::Client,
    base_url: Url,
    tenant: String,
    key: Secret,
    retry: RetryPolicy,
    /// The configured numbers that tell a listed mobile from an extension when TRiNG's
    /// answer does not say (tring-api.md "Recognising a member whatever the shape").
    known: Arc<KnownMembers>,
    in_flight: Arc<tokio::sync::Semaphore>,
    stats: Arc<Mutex<TringStats>>,
    /// Set by `rooster doctor` only: every answer is also handed to it.
    tap: Option<ReplyTap>,
}

impl fmt::Debug for TringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The base URL from the config carries no key; the key is never printed.
        f.debug_struct("TringClient")
            .field("base_url", &self.base_url.as_str())
            .field("tenant", &self.tenant)
            .field("key", &self.key)
            .field("retry", &self.retry)
            .field("known_mobiles", &self.known.mobiles().len())
            .field("known_extensions", &self.known.extensions().len())
            .finish()
    }
}

/// Is a try's failure worth another try? Writes only retry when the request provably never
/// reached TRiNG (a refused or failed connection); anything later might have applied it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl TringClient {
    /// A client with SPEC §5's default timeouts and retries. It knows no configured
    /// numbers until [`TringClient::with_known_members`] is called: every client built from a
    /// [`crate::config::Config`] must be given them, or a custom destination that `list`
    /// spells as a bare number reads as an extension.
    pub fn new(cfg: &TringConfig, key: Secret) -> Result<Self, TringError> {
        Self::with_options(cfg, key, TringClientOptions::default())
    }

    pub fn with_options(
        cfg: &TringConfig,
        key: Secret,
        opts: TringClientOptions,
    ) -> Result<Self, TringError> {
        let setup = |detail: &str| TringError::SetupFailed {
            detail: detail.to_owned(),
        };
        if key.expose().trim().is_empty() {
            return Err(setup("the tring key is empty"));
        }
        if !matches!(cfg.base_url.scheme(), "http" | "https") {
            return Err(setup("tring base_url must be http or https"));
        }
        if cfg.base_url.query().is_some() || cfg.base_url.username() != "" {
            // A query or credentials in the base URL would be printed by Debug.
            return Err(setup(
                "tring base_url must not carry a query or credentials",
            ));
        }
        if cfg.tenant.is_empty() {
            return Err(setup("tring tenant is empty"));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("rooster/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            // A redirect would re-send the key somewhere we did not choose.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| setup(&error_chain(e)))?;
        Ok(Self {
            http,
            base_url: cfg.base_url.clone(),
            tenant: cfg.tenant.clone(),
            key,
            retry: opts.retry,
            known: Arc::new(KnownMembers::default()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            stats: Arc::new(Mutex::new(TringStats::default())),
            tap: None,
        })
    }

    /// The same client, every answer (scrubbed of the key) also handed to `tap`, for
    /// `rooster doctor` (SPEC §4 "Doctor": the clock check and `--save-replies`).
    pub fn with_tap(mut self, tap: ReplyTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The same client reading `list` answers with `known` (usually
    /// `KnownMembers::from_config(&cfg)`): a listed number that is a configured mobile is
    /// `cu:`, a configured extension `ext:`, whatever the shape of the answer.
    pub fn with_known_members(mut self, known: KnownMembers) -> Self {
        self.known = Arc::new(known);
        self
    }

    /// The configured numbers `list` answers are read with.
    pub fn known_members(&self) -> &KnownMembers {
        &self.known
    }

    /// The tenant, for callers that parse list entries themselves (`201-ACME`).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// A snapshot of the call counters.
    pub fn stats(&self) -> TringStats {
        match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `action=list` with `format=json&cache=no` (cache=no so drift detection sees the truth).
    #[instrument(name = "tring_list", skip_all, fields(queue = %q))]
    pub async fn list(&self, q: &QueueNo) -> Result<Vec<Member>, TringError> {
        let url = self.queue_url(q, "list", None, &[("format", "json"), ("cache", "no")]);
        let result = match self.send("list", Kind::Read, url).await {
            Ok(body) => parse_list(&body, &self.tenant, &self.known)
                .map_err(|e| e.scrubbed(self.key.expose())),
            Err(e) => Err(e),
        };
        self.finish("list", result)
    }

    /// `action=add`; a custom destination gets `type=CU`.
    #[instrument(name = "tring_add", skip_all, fields(queue = %q, member = %m))]
    pub async fn add(&self, q: &QueueNo, m: &Member) -> Result<WriteOutcome, TringError> {
        let ty: &[(&str, &str)] = if m.is_custom() {
            &[("type", "CU")]
        } else {
            &[]
        };
        let url = self.queue_url(q, "add", Some(m), ty);
        self.write(ActionKind::Add, q, m, url).await
    }

    /// `action=del` (no `type`: TRiNG's page sends none for either kind).
    #[instrument(name = "tring_del", skip_all, fields(queue = %q, member = %m))]
    pub async fn del(&self, q: &QueueNo, m: &Member) -> Result<WriteOutcome, TringError> {
        let url = self.queue_url(q, "del", Some(m), &[]);
        self.write(ActionKind::Del, q, m, url).await
    }

    /// `action=clean`: removes every member. Returns TRiNG's message.
    #[instrument(name = "tring_clean", skip_all, fields(queue = %q))]
    pub async fn clean(&self, q: &QueueNo) -> Result<String, TringError> {
        let url = self.queue_url(q, "clean", None, &[]);
        let result = self
            .send("clean", Kind::Write, url)
            .await
            .and_then(|body| parse_clean(&body))
            .map_err(|e| self.uncertain_if_sent("clean", q, "every member", e));
        self.finish("clean", result)
    }

    /// `reqtype=AGENT&action=listqueues`: the queues an extension is in.
    #[instrument(name = "tring_listqueues", skip_all, fields(extension = %ext))]
    pub async fn list_queues(&self, ext: &Extension) -> Result<Vec<QueueNo>, TringError> {
        let mut url = self.base_url.clone();
        url.query_pairs_mut()
            .append_pair("key", self.key.expose())
            .append_pair("reqtype", "AGENT")
            .append_pair("action", "listqueues")
            .append_pair("tenant", &self.tenant)
            .append_pair("format", "json")
            .append_pair("extension", ext.as_str());
        let result = match self.send("listqueues", Kind::Read, url).await {
            Ok(body) => parse_listqueues(&body).map_err(|e| e.scrubbed(self.key.expose())),
            Err(e) => Err(e),
        };
        self.finish("listqueues", result)
    }

    /// `reqtype=MANAGEDB&object=CUSTOM&action=list`: the numbers registered as custom
    /// destinations (tring-api.md "Evidence from public client code"). Read only, and only by
    /// `rooster doctor`, to tell whether each configured mobile can be added with `type=CU`.
    #[instrument(name = "tring_custom_list", skip_all)]
    pub async fn list_custom_destinations(&self) -> Result<Vec<String>, TringError> {
        let mut url = self.base_url.clone();
        url.query_pairs_mut()
            .append_pair("key", self.key.expose())
            .append_pair("reqtype", "MANAGEDB")
            .append_pair("object", "CUSTOM")
            .append_pair("action", "list")
            .append_pair("tenant", &self.tenant)
            .append_pair("format", "json");
        let result = match self.send("custom_list", Kind::Read, url).await {
            Ok(body) => parse_custom_list(&body).map_err(|e| e.scrubbed(self.key.expose())),
            Err(e) => Err(e),
        };
        self.finish("custom_list", result)
    }

    /// `key, reqtype=queue, tenant, number, [extension], action, extra…` in the seed's order.
    fn queue_url(
        &self,
        q: &QueueNo,
        action: &str,
        m: Option<&Member>,
        extra: &[(&str, &str)],
    ) -> Url {
        let mut url = self.base_url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("key", self.key.expose())
                .append_pair("reqtype", "queue")
                .append_pair("tenant", &self.tenant)
                .append_pair("number", q.as_str());
            if let Some(m) = m {
                pairs.append_pair("extension", m.id());
            }
            pairs.append_pair("action", action);
            for (k, v) in extra {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    async fn write(
        &self,
        kind: ActionKind,
        q: &QueueNo,
        m: &Member,
        url: Url,
    ) -> Result<WriteOutcome, TringError> {
        let action = match kind {
            ActionKind::Add => "add",
            ActionKind::Del => "del",
        };
        let member = m.to_string();
        let result = self
            .send(action, Kind::Write, url)
            .await
            // The idempotent answers only count for the action they answer (tring-api.md).
            .and_then(|body| parse_write(&body, kind))
            .map_err(|e| self.uncertain_if_sent(action, q, &member, e));
        let result = self.finish(action, result);
        if result == Ok(WriteOutcome::AlreadyInState) {
            debug!(action, "tring says the queue already was in that state");
        }
        result
    }

    /// A failed write whose request may have reached TRiNG becomes `WriteUncertain`
    /// (including an answer we cannot read); connection failures (never sent) and clear
    /// answers (`Error|…|`, 4xx) stay as they are.
    fn uncertain_if_sent(
        &self,
        action: &'static str,
        q: &QueueNo,
        member: &str,
        e: TringError,
    ) -> TringError {
        let e = e.scrubbed(self.key.expose());
        let sent_maybe_applied = match &e {
            TringError::TimedOut { .. }
            | TringError::RequestFailed { .. }
            | TringError::Unparseable { .. } => true,
            TringError::HttpStatus { status, .. } => *status >= 500,
            _ => false,
        };
        if sent_maybe_applied {
            TringError::WriteUncertain {
                action,
                queue: q.to_string(),
                member: member.to_owned(),
                cause: e.to_string(),
            }
        } else {
            e
        }
    }

    /// Sends one GET, retrying per `kind`, and returns the body of a 2xx answer, scrubbed
    /// of the key. Extra tries are counted here; the final outcome by [`Self::finish`].
    async fn send(&self, action: &'static str, kind: Kind, url: Url) -> Result<String, TringError> {
        let mut delays = self.retry.delays();
        let mut attempt = 1u32;
        loop {
            let result = self.try_once(&url).await;
            let err = match result {
                Ok(body) => return Ok(body),
                Err(e) => e,
            };
            let again = match kind {
                Kind::Read => err.is_retryable(),
                Kind::Write => matches!(err, TringError::ConnectFailed { .. }),
            };
            match delays.next() {
                Some(delay) if again => {
                    debug!(action, attempt, error = %err, ?delay, "tring call failed, retrying");
                    self.count(action, "retried");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => {
                    debug!(action, attempt, error = %err, "tring call failed");
                    return Err(err);
                }
            }
        }
    }

    async fn try_once(&self, url: &Url) -> Result<String, TringError> {
        let key = self.key.expose();
        // The semaphore is never closed; if it were, sending without a permit is harmless.
        let _permit = self.in_flight.acquire().await.ok();
        let sent = chrono::Utc::now();
        let mut resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| transport_error(e).scrubbed(key))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(TringError::Unparseable {
                            body_excerpt: format!("answer larger than {MAX_BODY_BYTES} bytes"),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(transport_error(e).scrubbed(key)),
            }
        }
        let body = scrub(&String::from_utf8_lossy(&bytes), key);
        if let Some(tap) = &self.tap {
            tap.record(Reply {
                service: Service::Tring,
                call: call_name(url),
                sent,
                received: chrono::Utc::now(),
                status: status.as_u16(),
                date: crate::replies::date_header(resp.headers()),
                body: body.clone().into_bytes(),
            });
        }
        if !status.is_success() {
            return Err(TringError::HttpStatus {
                status: status.as_u16(),
                body_excerpt: sanitize(body.trim(), 120),
            });
        }
        Ok(body)
    }

    /// Counts a call's final outcome once.
    fn finish<T: AlreadyAware>(
        &self,
        action: &'static str,
        result: Result<T, TringError>,
    ) -> Result<T, TringError> {
        let outcome = match &result {
            Ok(v) if v.already() => "already",
            Ok(_) => "ok",
            Err(e) => failure_outcome(e),
        };
        self.count(action, outcome);
        result
    }

    fn count(&self, action: &'static str, outcome: &'static str) {
        let mut stats = match self.stats.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *stats.calls.entry((action, outcome)).or_insert(0) += 1;
    }
}

/// `list-600`, `listqueues-201`, `custom-list`: the call a request URL makes, from its
/// action and the queue or extension it names, never the key. Only digits are kept of those.
fn call_name(url: &Url) -> String {
    let (mut action, mut object, mut target) = (String::new(), String::new(), String::new());
    for (k, v) in url.query_pairs() {
        let digits = || v.chars().filter(char::is_ascii_digit).take(20).collect();
        match k.as_ref() {
            "action" => {
                action = v
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .take(20)
                    .collect()
            }
            "object" => {
                object = v
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .take(20)
                    .collect()
            }
            "number" | "extension" if target.is_empty() => target = digits(),
            _ => {}
        }
    }
    let mut name = if object.is_empty() {
        action.to_ascii_lowercase()
    } else {
        format!(
            "{}-{}",
            object.to_ascii_lowercase(),
            action.to_ascii_lowercase()
        )
    };
    if !target.is_empty() {
        name.push('-');
        name.push_str(&target);
    }
    name
}

/// Lets [`TringClient::finish`] tell an idempotent write from an applied one.
trait AlreadyAware {
    fn already(&self) -> bool {
        false
    }
}
impl AlreadyAware for WriteOutcome {
    fn already(&self) -> bool {
        *self == WriteOutcome::AlreadyInState
    }
}
impl AlreadyAware for Vec<Member> {}
impl AlreadyAware for Vec<QueueNo> {}
impl AlreadyAware for String {}
impl AlreadyAware for Vec<String> {}

fn failure_outcome(e: &TringError) -> &'static str {
    match e {
        TringError::ConnectFailed { .. } => "connect",
        TringError::TimedOut { .. } => "timeout",
        TringError::HttpStatus { .. } => "http_status",
        TringError::Unparseable { .. } => "unparseable",
        TringError::Rejected { .. } => "rejected",
        TringError::WriteUncertain { .. } => "uncertain",
        _ => "request_failed",
    }
}

/// Classifies a reqwest error without ever touching its URL. A connect error is checked
/// first: even a connect *timeout* means the request never left.
fn transport_error(e: reqwest::Error) -> TringError {
    let e = e.without_url();
    let detail = error_chain(&e);
    if e.is_connect() {
        TringError::ConnectFailed { detail }
    } else if e.is_timeout() {
        TringError::TimedOut { detail }
    } else {
        TringError::RequestFailed { detail }
    }
}

/// `error sending request: client error (Connect): tcp connect error: Connection refused`.
/// Only called on errors whose URL was removed.
fn error_chain(e: impl std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    sanitize(&out, 300)
}
