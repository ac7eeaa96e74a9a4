//! Microsoft Graph: reads calendars for the cycle (SPEC §5, graph-notes B1–B12).
//!
//! - [`token`]: the client-credentials token, cached and shared, failures classified.
//! - [`client`]: `calendarView` with paging, throttling, retries and per-mailbox limits;
//!   a read is complete or it is an error, never a partial list (SPEC §3 rule 1).
//! - [`normalize`]: Graph JSON → [`Event`](crate::model::Event) (pure).
//!
//! This module knows no rules, queues or TRiNG.

pub mod client;
pub mod normalize;
mod port;
pub mod token;

pub use client::{CalendarRead, GraphClient, GraphError, GraphStats, RequestError, RetryPolicy};
pub use normalize::{NormalizeError, normalize_event, normalize_page};
pub use token::{TokenError, TokenSource};

/// Sent on every request to Graph and to Entra, token POST included (SPEC §5 "Clients"), so
/// both services' logs name the caller and its version.
pub(crate) const USER_AGENT: &str = concat!("rooster/", env!("CARGO_PKG_VERSION"));
