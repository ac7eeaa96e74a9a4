//! The TRiNG adapter (SPEC §4, §5; `shared/tring-api.md`): the proxyapi client, the parsing
//! of its answers, and the ops commands `queue …` / `agent queues`. This file holds the
//! adapter's vocabulary — its one error type and the outcome of a write — and re-exports the
//! public API. The adapter knows queues and members, never rules, calendars or ownership.
//!
//! The TRiNG key travels in the query string, so nothing in this module may format a request
//! URL: errors carry sanitised body excerpts and transport causes, never URLs.

pub mod cli;
pub mod client;
pub mod parse;
mod port;

pub use cli::{CleanOutcome, agent_queues, queue_add, queue_clean, queue_del, queue_list};
pub use client::{RetryPolicy, TringClient, TringClientOptions, TringStats};
pub use parse::{
    KnownMembers, parse_clean, parse_custom_list, parse_list, parse_listqueues, parse_write,
};

/// What a successful `add`/`del` did. tring-api.md: "already a member" answering an add and
/// "not a member" answering a del are success for reconciliation (the queue is in the wanted
/// state either way); the same messages answering the other action are not
/// ([`parse_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// TRiNG made the change.
    Applied,
    /// The member already was (add) or already was not (del) in the queue.
    AlreadyInState,
}

/// Why TRiNG refused a request with an `Error|…|` answer, as far as its message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    InvalidKey,
    InvalidTenant,
    /// A read-only key was used for a write (tring-api.md: permanent, log it clearly).
    PermissionDenied,
    QueueNotFound,
    /// `type=CU` add of a number that is not a custom destination in TRiNG.
    CustomDestinationNotFound,
    InvalidExtension,
    /// Any other `Error|` message.
    Other,
}

/// Everything that can go wrong talking to TRiNG. Messages are lowercase and never contain
/// the key or a URL; body excerpts are sanitised and short (SPEC §4 Logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TringError {
    /// The client could not be set up (bad base URL, empty key, TLS backend).
    #[error("tring client setup failed: {detail}")]
    SetupFailed { detail: String },
    /// No connection could be made: the request never reached TRiNG.
    #[error("tring connection failed: {detail}")]
    ConnectFailed { detail: String },
    /// The request was sent (or being sent) but no full answer came in time.
    #[error("tring request timed out: {detail}")]
    TimedOut { detail: String },
    /// The connection broke after the request was sent, or the body could not be read.
    #[error("tring request failed: {detail}")]
    RequestFailed { detail: String },
    /// TRiNG (or a proxy before it) answered with a non-2xx status.
    #[error("tring answered http {status}: {body_excerpt:?}")]
    HttpStatus { status: u16, body_excerpt: String },
    /// The answer matched none of the known shapes (tring-api.md "Responses").
    #[error("tring answer unparseable: {body_excerpt:?}")]
    Unparseable { body_excerpt: String },
    /// TRiNG answered `Error|message|`.
    #[error("tring refused the request: {message}")]
    Rejected {
        reason: RejectReason,
        message: String,
    },
    /// A write may or may not have been applied (timeout, 5xx or broken connection after the
    /// request was sent, or an unreadable answer): the caller must re-read the queue.
    #[error("tring {action} of {member} in queue {queue} uncertain, re-read the queue: {cause}")]
    WriteUncertain {
        action: &'static str,
        queue: String,
        member: String,
        cause: String,
    },
    /// `queue …` / `agent queues` could not write their output.
    #[error("output could not be written: {detail}")]
    OutputFailed { detail: String },
}

impl TringError {
    /// Worth trying again soon (a read; a write only when [`TringError::ConnectFailed`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            TringError::ConnectFailed { .. }
            | TringError::TimedOut { .. }
            | TringError::RequestFailed { .. } => true,
            TringError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Will not go away by itself: wrong or read-only key, wrong tenant, unknown queue,
    /// unknown custom destination, invalid extension, or a client that cannot be set up.
    pub fn is_permanent(&self) -> bool {
        match self {
            TringError::SetupFailed { .. } => true,
            TringError::Rejected { reason, .. } => !matches!(reason, RejectReason::Other),
            TringError::HttpStatus { status, .. } => matches!(status, 401 | 403),
            _ => false,
        }
    }

    /// Replaces every occurrence of `secret` in the texts this error carries. TRiNG might
    /// echo the key in an error body; the client runs every error through this.
    pub(crate) fn scrubbed(self, secret: &str) -> TringError {
        let s = |t: String| scrub(&t, secret);
        match self {
            TringError::SetupFailed { detail } => TringError::SetupFailed { detail: s(detail) },
            TringError::ConnectFailed { detail } => TringError::ConnectFailed { detail: s(detail) },
            TringError::TimedOut { detail } => TringError::TimedOut { detail: s(detail) },
            TringError::RequestFailed { detail } => TringError::RequestFailed { detail: s(detail) },
            TringError::HttpStatus {
                status,
                body_excerpt,
            } => TringError::HttpStatus {
                status,
                body_excerpt: s(body_excerpt),
            },
            TringError::Unparseable { body_excerpt } => TringError::Unparseable {
                body_excerpt: s(body_excerpt),
            },
            TringError::Rejected { reason, message } => TringError::Rejected {
                reason,
                message: s(message),
            },
            TringError::WriteUncertain {
                action,
                queue,
                member,
                cause,
            } => TringError::WriteUncertain {
                action,
                queue,
                member,
                cause: s(cause),
            },
            TringError::OutputFailed { detail } => TringError::OutputFailed { detail: s(detail) },
        }
    }
}

/// `text` with every occurrence of `secret` — as is, and in its query-string encoding, in
/// case an answer echoes the URL it was called with — replaced by `[redacted]`.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    text.replace(secret, "[redacted]")
        .replace(&encoded, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_key_as_is_and_url_encoded() {
        let key = "a+b/c=d";
        let text = "x a+b/c=d y a%2Bb%2Fc%3Dd z";
        assert_eq!(scrub(text, key), "x [redacted] y [redacted] z");
        assert_eq!(scrub("nothing", ""), "nothing");
    }

    #[test]
    fn only_clear_refusals_are_permanent() {
        let rejected = |reason| TringError::Rejected {
            reason,
            message: String::new(),
        };
        assert!(rejected(RejectReason::InvalidKey).is_permanent());
        assert!(!rejected(RejectReason::Other).is_permanent());
        let timed_out = TringError::TimedOut {
            detail: String::new(),
        };
        assert!(timed_out.is_retryable() && !timed_out.is_permanent());
    }
}
