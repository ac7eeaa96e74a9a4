//! The Graph access token: OAuth 2.0 client credentials against Entra ID
//! (`{authority}/{tenant_id}/oauth2/v2.0/token`, scope `https://graph.microsoft.com/.default`).
//! SPEC §5: one token per process until it nears expiry; a 401 triggers one refresh.
//!
//! This is a plain reqwest form POST, not the `oauth2` crate: Entra's error answers carry an
//! `error_codes` array (`[7000222]`) and an `AADSTS…` description that the operator message
//! depends on (an expired secret must read differently from a wrong one, graph-notes B12),
//! and `oauth2`'s `BasicErrorResponse` keeps only `error`/`error_description`. The POST also
//! shares the Graph client's one reqwest client (timeouts, no redirects) and sends rooster's
//! User-Agent itself, whatever client it is given.
//!
//! Holds the client secret and the token; both are [`Secret`]s and every type here redacts
//! them in `Debug`. Nothing here logs a URL with a secret (the secret travels in the body).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::client::RetryPolicy;
use crate::model::{Secret, sanitize};
use crate::replies::{Reply, ReplyTap, Service};
use crate::retry::{Sleeper, TokioSleeper};

const SCOPE: &str = "https://graph.microsoft.com/.default";
/// Refresh this long before `expires_in` runs out (tokens live 60–90 minutes).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Why no token could be had. Messages tell the operator what to change in Entra ID, and
/// [`TokenError::fix`] says how; both are the one place the AADSTS codes are explained.
///
/// The codes and their meaning are from Microsoft's published references:
/// <https://learn.microsoft.com/entra/identity-platform/reference-error-codes> (the AADSTS
/// table: 7000215 InvalidClientSecret, 7000222 InvalidClientSecretExpiredKeysProvided,
/// 700016 UnauthorizedClient_DoesNotMatchRequest, 90002 InvalidTenantName, 65001
/// DelegationDoesNotExist, 7000112 UnauthorizedClientApplicationDisabled, 500011
/// InvalidResourceServicePrincipalNotFound, 7000218 "the request body must contain
/// client_assertion or client_secret") and the client-secret troubleshooting table of
/// <https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal>.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error(
        "graph token refused: the client secret is wrong (AADSTS7000215): put the secret's value (not its id) in {store} and restart rooster"
    )]
    SecretRejected { store: String },
    #[error(
        "graph token refused: the client secret expired (AADSTS7000222): create a new secret in Entra ID (App registrations, Certificates & secrets), store it in {store}, and restart rooster"
    )]
    SecretExpired { store: String },
    #[error(
        "graph token refused: app {client_id} not found in tenant {tenant_id} (AADSTS700016); check client_id and tenant_id"
    )]
    AppNotFound {
        client_id: String,
        tenant_id: String,
    },
    #[error("graph token refused: tenant {tenant_id} not found (AADSTS90002); check tenant_id")]
    TenantNotFound { tenant_id: String },
    #[error(
        "graph token refused (AADSTS7000218): no client secret reached Entra; the credential is empty"
    )]
    SecretMissing,
    #[error(
        "graph token refused: the app is not allowed to sign in (AADSTS{code}: admin consent missing or app disabled); grant admin consent for Calendars.Read in Entra"
    )]
    ConsentMissing { code: u64 },
    #[error("graph token refused ({status}): {error}: {description}")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    #[error("graph token endpoint failed ({status}), will retry next cycle: {detail}")]
    EndpointFailed { status: u16, detail: String },
    #[error("graph token request failed: {detail}")]
    RequestFailed { detail: String },
    #[error("graph token endpoint answer not understood ({status}): {detail}")]
    AnswerNotUnderstood { status: u16, detail: String },
}

impl TokenError {
    /// What the operator does about it: the config key, the Entra step or the INSTALL.md
    /// section (SPEC §4 "Doctor": every failure comes with its fix).
    pub fn fix(&self) -> String {
        match self {
            TokenError::SecretRejected { .. } => "copy the secret's Value (not its Secret ID) from Entra > App registrations > Certificates & secrets into [graph] client_secret_file (or client_secret_env); deploy/INSTALL.md section 2".into(),
            TokenError::SecretExpired { .. } => "create a new client secret in Entra and replace the credential; deploy/INSTALL.md section 9 \"Rotating the Graph client secret\"".into(),
            TokenError::SecretMissing => "put the secret's value in the file named by [graph] client_secret_file (or the variable of client_secret_env)".into(),
            TokenError::AppNotFound { .. } => "set [graph] client_id to the app's Application (client) ID, and tenant_id to the tenant the app is registered in; deploy/INSTALL.md section 2".into(),
            TokenError::TenantNotFound { .. } => "set [graph] tenant_id to the Directory (tenant) ID shown on the app's overview page in Entra".into(),
            TokenError::ConsentMissing { .. } => "grant admin consent for the Calendars.Read application permission (Entra > App registrations > API permissions), and check the app is enabled; deploy/INSTALL.md section 2".into(),
            TokenError::Refused { .. } => "look the AADSTS code up at https://login.microsoftonline.com/error and correct [graph] or the app registration".into(),
            TokenError::EndpointFailed { .. } | TokenError::RequestFailed { .. } => "check that this host reaches [graph] authority over HTTPS (proxy, firewall, DNS), then run rooster doctor again".into(),
            TokenError::AnswerNotUnderstood { .. } => "check [graph] authority: it must be Entra's login endpoint (https://login.microsoftonline.com)".into(),
        }
    }

    /// The AADSTS code Entra answered with, as the `code` label of the token failure metric:
    /// a number, `other` for a refusal rooster does not know, `unreachable` when Entra
    /// gave no usable answer (SPEC §4 "Metrics").
    pub fn code_label(&self) -> String {
        match self {
            TokenError::SecretRejected { .. } => "7000215".into(),
            TokenError::SecretExpired { .. } => "7000222".into(),
            TokenError::AppNotFound { .. } => "700016".into(),
            TokenError::TenantNotFound { .. } => "90002".into(),
            TokenError::ConsentMissing { code } => code.to_string(),
            TokenError::SecretMissing => "7000218".into(),
            TokenError::Refused { .. } => "other".into(),
            TokenError::EndpointFailed { .. }
            | TokenError::RequestFailed { .. }
            | TokenError::AnswerNotUnderstood { .. } => "unreachable".into(),
        }
    }

    /// Every `code` label [`TokenError::code_label`] can give, so the metric's series exist
    /// at 0 from start.
    pub const CODE_LABELS: [&str; 10] = [
        "7000215",
        "7000222",
        "700016",
        "90002",
        "65001",
        "7000112",
        "500011",
        "7000218",
        "other",
        "unreachable",
    ];

    /// Permanent failures need an operator; the others may pass by themselves.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            TokenError::EndpointFailed { .. }
                | TokenError::RequestFailed { .. }
                | TokenError::AnswerNotUnderstood { .. }
        )
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Entra's error body (`{"error", "error_description", "error_codes", …}`).
#[derive(Debug, Deserialize)]
struct AadError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// The last token request's failure, remembered so that a refused secret costs one request
/// per backoff step, not one per calendar (SPEC §4 "Logs": one line per cycle).
struct Failed {
    error: TokenError,
    retry_at: Instant,
    /// Consecutive failed attempts, for the backoff.
    count: u32,
    /// The read (cycle) it happened in: within it the failure holds whatever the backoff.
    epoch: u64,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    failed: Option<Failed>,
}

/// How long a failed token request is remembered after `count` failures in a row: `base`
/// (30 s by default), doubling, at most ten times `base` (5 minutes). Within one read of
/// the calendars (a cycle) it is remembered whatever this says, so a cycle makes one attempt
/// however many calendars it reads; across cycles the backoff spaces the attempts, yet a
/// token endpoint back from an outage is tried again within a cycle or two.
pub fn failure_backoff(base: Duration, count: u32) -> Duration {
    crate::retry::doubled(base, count.saturating_sub(1), 10)
}

/// Fetches and caches the token. Share it (inside [`GraphClient`](super::GraphClient)).
pub struct TokenSource {
    http: reqwest::Client,
    url: Url,
    tenant_id: String,
    client_id: String,
    secret: Secret,
    /// Where the secret is stored, for the operator's fix in the error message.
    store: String,
    retry: RetryPolicy,
    sleeper: Arc<dyn Sleeper>,
    backoff: Duration,
    epoch: AtomicU64,
    // A tokio Mutex held across the request: concurrent callers wait for one refresh
    // (or one failure) instead of each asking Entra for a token.
    state: Mutex<State>,
    requests: AtomicU64,
    /// Set by `rooster doctor` only: every answer is also handed to it.
    tap: std::sync::OnceLock<ReplyTap>,
    failures: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("requests", &self.token_requests())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// `authority` is `https://login.microsoftonline.com` (or a simulator).
    pub fn new(
        http: reqwest::Client,
        authority: &Url,
        tenant_id: &str,
        client_id: &str,
        secret: Secret,
    ) -> Result<Self, url::ParseError> {
        let mut url = authority.clone();
        url.path_segments_mut()
            .map_err(|()| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
            .pop_if_empty()
            .extend([tenant_id, "oauth2", "v2.0", "token"]);
        Ok(Self {
            http,
            url,
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            store: "the configured credential".into(),
            retry: RetryPolicy::default(),
            sleeper: Arc::new(TokioSleeper),
            backoff: Duration::from_secs(30),
            epoch: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
            tap: std::sync::OnceLock::new(),
            failures: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Hands every token answer to `tap` as well (`rooster doctor`). The first tap stays.
    pub fn set_tap(&self, tap: ReplyTap) {
        let _ = self.tap.set(tap);
    }

    /// How transient failures (5xx, timeouts) of one token request are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How the waits between those tries are spent (the tokio timer unless a test says).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The first step of [`failure_backoff`].
    pub fn with_failure_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// Starts a new read of the calendars (a cycle): a failure remembered from an earlier
    /// one is tried again once its backoff has passed.
    pub fn new_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the secret is stored (`the file …`, `$VAR`), named in the fix for a refused one.
    pub fn with_secret_store(mut self, store: impl Into<String>) -> Self {
        self.store = store.into();
        self
    }

    /// Failed token requests (after their retries) by AADSTS code label.
    pub fn failures_by_code(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times the token endpoint was asked (for `status` and the tests).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a fresh one when it nears expiry.
    /// While a failed request is remembered, its error comes back at once without asking
    /// Entra again ([`failure_backoff`]).
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(c) = state.cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        if let Some(f) = state.failed.as_ref()
            && (f.epoch == epoch || Instant::now() < f.retry_at)
        {
            return Err(f.error.clone());
        }
        match self.fetch_with_retries().await {
            Ok((token, lifetime)) => {
                // Refresh 5 minutes early; a short-lived token (simulator) at half its life.
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                state.failed = None;
                state.cached = Some(Cached {
                    token: token.clone(),
                    refresh_at: Instant::now() + lifetime - margin,
                });
                Ok(token)
            }
            Err(error) => {
                let count = state.failed.as_ref().map_or(0, |f| f.count) + 1;
                *self
                    .failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(error.code_label())
                    .or_default() += 1;
                state.failed = Some(Failed {
                    error: error.clone(),
                    retry_at: Instant::now() + failure_backoff(self.backoff, count),
                    count,
                    epoch,
                });
                Err(error)
            }
        }
    }

    /// One token request with SPEC §5's retries for transient failures (5xx, timeouts);
    /// a refusal is final at once.
    async fn fetch_with_retries(&self) -> Result<(Secret, Duration), TokenError> {
        let mut tries = 0;
        let mut delays = self.retry.delays();
        loop {
            tries += 1;
            match self.fetch().await {
                Err(e) if !e.is_permanent() && tries < self.retry.max_tries => {
                    let wait = delays.next().unwrap_or(self.retry.base_delay);
                    tracing::debug!(try_no = tries, wait_ms = wait.as_millis() as u64, error = %e,
                        "graph token request failed; retrying");
                    self.sleeper.sleep(wait).await;
                }
                r => return r,
            }
        }
    }

    /// Forgets `rejected` after Graph answered 401 with it. A token already replaced by a
    /// concurrent caller is kept, so a burst of 401s causes one refresh, not one each.
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|c| &c.token == rejected) {
            state.cached = None;
        }
    }

    #[tracing::instrument(name = "graph_token", skip_all)]
    async fn fetch(&self) -> Result<(Secret, Duration), TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = chrono::Utc::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", SCOPE),
        ];
        let resp = self
            .http
            .post(self.url.clone())
            // Set here, not only on the shared client: a TokenSource built over any other
            // client must still name rooster to Entra (SPEC §5 "Clients").
            .header(reqwest::header::USER_AGENT, super::USER_AGENT)
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::RequestFailed {
                detail: describe_reqwest(&e),
            })?;
        let status = resp.status().as_u16();
        let date = crate::replies::date_header(resp.headers());
        let body = resp.bytes().await.map_err(|e| TokenError::RequestFailed {
            detail: describe_reqwest(&e),
        })?;
        if let Some(tap) = self.tap.get() {
            tap.record(Reply {
                service: Service::Entra,
                call: "token".into(),
                sent,
                received: chrono::Utc::now(),
                status,
                date,
                body: body.to_vec(),
            });
        }
        if status == 200 {
            let answer: TokenAnswer =
                serde_json::from_slice(&body).map_err(|e| TokenError::AnswerNotUnderstood {
                    status,
                    detail: e.to_string(),
                })?;
            if answer.access_token.is_empty() {
                return Err(TokenError::AnswerNotUnderstood {
                    status,
                    detail: "empty access_token".into(),
                });
            }
            let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3599).max(1));
            tracing::debug!(expires_in_s = lifetime.as_secs(), "graph token obtained");
            return Ok((Secret::new(answer.access_token), lifetime));
        }
        let err = match serde_json::from_slice::<AadError>(&body) {
            Ok(aad) => self.classify(status, aad),
            Err(_) if status >= 500 => TokenError::EndpointFailed {
                status,
                detail: sanitize(&String::from_utf8_lossy(&body), 120),
            },
            Err(e) => TokenError::AnswerNotUnderstood {
                status,
                detail: e.to_string(),
            },
        };
        // Debug only: the cycle logs the failure once with the calendars it cost (SPEC §4).
        tracing::debug!(status, error = %err, "graph token request refused");
        Err(err)
    }

    fn classify(&self, status: u16, aad: AadError) -> TokenError {
        // The code is in `error_codes`; older answers only have it in the description.
        let has = |code: u64| {
            aad.error_codes.contains(&code)
                || aad.error_description.contains(&format!("AADSTS{code}:"))
        };
        if has(7_000_222) {
            TokenError::SecretExpired {
                store: self.store.clone(),
            }
        } else if has(7_000_215) {
            TokenError::SecretRejected {
                store: self.store.clone(),
            }
        } else if has(700_016) {
            TokenError::AppNotFound {
                client_id: sanitize(&self.client_id, 60),
                tenant_id: sanitize(&self.tenant_id, 60),
            }
        } else if has(90_002) {
            TokenError::TenantNotFound {
                tenant_id: sanitize(&self.tenant_id, 60),
            }
        } else if has(7_000_218) {
            TokenError::SecretMissing
        } else if let Some(code) = [65_001, 7_000_112, 500_011].into_iter().find(|c| has(*c)) {
            TokenError::ConsentMissing { code }
        } else if status >= 500 {
            TokenError::EndpointFailed {
                status,
                detail: sanitize(first_line(&aad.error_description), 160),
            }
        } else {
            TokenError::Refused {
                status,
                error: sanitize(&aad.error, 40),
                description: sanitize(first_line(&aad.error_description), 160),
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    // Entra appends "Trace ID: … Correlation ID: …" on new lines (`\r\n`).
    s.lines().next().unwrap_or(s)
}

/// A reqwest error without its URL (a Graph nextLink is not secret, but URLs stay out of
/// errors as a habit, SPEC §4 Logs), with the causes that tell timeout from refusal.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "answer body failed"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&sanitize(&s.to_string(), 120));
        source = s.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_token_is_remembered_30s_doubling_up_to_5_minutes() {
        let base = Duration::from_secs(30);
        let secs: Vec<u64> = (1..=7)
            .map(|n| failure_backoff(base, n).as_secs())
            .collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(failure_backoff(Duration::ZERO, 3), Duration::ZERO);
    }
}
