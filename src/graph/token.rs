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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::model::{Secret, sanitize};
use crate::replies::{Reply, ReplyTap, Service};

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
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "graph token refused (AADSTS7000215): the Graph client secret is wrong; put the secret's value (not its id) in the credential"
    )]
    SecretRejected,
    #[error(
        "graph token refused (AADSTS7000222): the Graph client secret has expired; create a new one in Entra and update the credential"
    )]
    SecretExpired,
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
            TokenError::SecretRejected => "copy the secret's Value (not its Secret ID) from Entra > App registrations > Certificates & secrets into [graph] client_secret_file (or client_secret_env); deploy/INSTALL.md section 2".into(),
            TokenError::SecretExpired => "create a new client secret in Entra and replace the credential; deploy/INSTALL.md section 9 \"Rotating the Graph client secret\"".into(),
            TokenError::SecretMissing => "put the secret's value in the file named by [graph] client_secret_file (or the variable of client_secret_env)".into(),
            TokenError::AppNotFound { .. } => "set [graph] client_id to the app's Application (client) ID, and tenant_id to the tenant the app is registered in; deploy/INSTALL.md section 2".into(),
            TokenError::TenantNotFound { .. } => "set [graph] tenant_id to the Directory (tenant) ID shown on the app's overview page in Entra".into(),
            TokenError::ConsentMissing { .. } => "grant admin consent for the Calendars.Read application permission (Entra > App registrations > API permissions), and check the app is enabled; deploy/INSTALL.md section 2".into(),
            TokenError::Refused { .. } => "look the AADSTS code up at https://login.microsoftonline.com/error and correct [graph] or the app registration".into(),
            TokenError::EndpointFailed { .. } | TokenError::RequestFailed { .. } => "check that this host reaches [graph] authority over HTTPS (proxy, firewall, DNS), then run rooster doctor again".into(),
            TokenError::AnswerNotUnderstood { .. } => "check [graph] authority: it must be Entra's login endpoint (https://login.microsoftonline.com)".into(),
        }
    }

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

/// Fetches and caches the token. Share it (inside [`GraphClient`](super::GraphClient)).
pub struct TokenSource {
    http: reqwest::Client,
    url: Url,
    tenant_id: String,
    client_id: String,
    secret: Secret,
    // A tokio Mutex held across the request: concurrent callers wait for one refresh
    // instead of each asking Entra for a token.
    cached: Mutex<Option<Cached>>,
    requests: AtomicU64,
    /// Set by `rooster doctor` only: every answer is also handed to it.
    tap: std::sync::OnceLock<ReplyTap>,
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
            cached: Mutex::new(None),
            requests: AtomicU64::new(0),
            tap: std::sync::OnceLock::new(),
        })
    }

    /// Hands every token answer to `tap` as well (`rooster doctor`). The first tap stays.
    pub fn set_tap(&self, tap: ReplyTap) {
        let _ = self.tap.set(tap);
    }

    /// How many times the token endpoint was asked (for `status` and the tests).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a fresh one when it nears expiry.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        // Refresh 5 minutes early; a short-lived token (simulator) at half its life.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }

    /// Forgets `rejected` after Graph answered 401 with it. A token already replaced by a
    /// concurrent caller is kept, so a burst of 401s causes one refresh, not one each.
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == rejected) {
            *cached = None;
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
        tracing::warn!(status, error = %err, "graph token request refused");
        Err(err)
    }

    fn classify(&self, status: u16, aad: AadError) -> TokenError {
        // The code is in `error_codes`; older answers only have it in the description.
        let has = |code: u64| {
            aad.error_codes.contains(&code)
                || aad.error_description.contains(&format!("AADSTS{code}:"))
        };
        if has(7_000_222) {
            TokenError::SecretExpired
        } else if has(7_000_215) {
            TokenError::SecretRejected
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
