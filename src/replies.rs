//! The answers the Graph and TRiNG clients received, handed to whoever asked to watch them:
//! `rooster doctor` (SPEC §4 "Doctor") reads the `Date` header of each to measure the host
//! clock, and with `--save-replies` keeps every body for a support request.
//!
//! A [`ReplyTap`] only collects; it decides nothing and writes nothing. Bodies arrive as the
//! clients hold them: TRiNG's already scrubbed of the key; Graph's and Entra's raw, so the
//! redaction for files lives with the writer (`commands::doctor`), never here. The request URL
//! is never kept (TRiNG's carries the key): a client names its call itself.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Which service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Entra ID's token endpoint (the Graph token).
    Entra,
    /// Microsoft Graph itself.
    Graph,
    Tring,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Entra => "entra",
            Service::Graph => "graph",
            Service::Tring => "tring",
        }
    }
}

/// One answer: when it was asked and received by the host clock, what came back.
#[derive(Clone)]
pub struct Reply {
    pub service: Service,
    /// The call as the client names it: `token`, `calendarview-jan@acme.nl`, `list-600`,
    /// `listqueues-201`, `custom-list`. Never a URL, never a secret.
    pub call: String,
    pub sent: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub status: u16,
    /// The `Date` header as sent, if any.
    pub date: Option<String>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    // The body may hold a token (Entra's answer) or calendar text: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("service", &self.service)
            .field("call", &self.call)
            .field("status", &self.status)
            .field("date", &self.date)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A shared list of [`Reply`]s. Cheap to clone; clones share the list.
#[derive(Clone, Default, Debug)]
pub struct ReplyTap {
    replies: Arc<Mutex<Vec<Reply>>>,
}

impl ReplyTap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Called by a client once per answer received (retries included).
    pub fn record(&self, reply: Reply) {
        self.lock().push(reply);
    }

    /// Every answer so far, in the order received.
    pub fn replies(&self) -> Vec<Reply> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Reply>> {
        // A panic elsewhere while pushing leaves a usable list.
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `Date` header of `headers`, as text.
pub fn date_header(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
