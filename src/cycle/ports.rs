//! The ports a cycle observes and acts through (SPEC §7): [`Calendars`] (Graph, or a fake),
//! [`Pbx`] (TRiNG, or a fake) and [`Clock`]. Each adapter implements its port beside its own
//! code (`graph::port`, `tring::port`); this file holds only the traits and the typed errors
//! that cross them, so the cycle can apply one policy to every adapter's failures:
//! transient ones are tried again next cycle, permanent ones need a person (SPEC §3 rule 9).

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use futures::Stream;

use crate::model::{CalendarRef, Event, Member, QueueNo};
use crate::plan::ActionKind;
use crate::tring::WriteOutcome;

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permanence {
    /// A timeout, a 5xx, a dropped connection, throttling: the next cycle tries again.
    Transient,
    /// A refusal that retrying cannot fix (wrong key, unknown custom destination, mailbox
    /// outside the access policy): it needs a person to change the config or the service.
    Permanent,
}

/// Why a read through a port (a calendar, a queue's `list`) gave nothing usable. The message
/// is one sentence, sanitised by the adapter, that names the thing at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    pub permanence: Permanence,
    pub message: String,
    /// Set when the cause is not this calendar's or queue's own but one many share (the
    /// Graph token refused, Graph unreachable): the cause alone, without the calendar. The
    /// cycle logs and records such failures once, with the number affected (SPEC §4 "Logs").
    pub common: Option<String>,
}

impl ReadError {
    pub fn transient(message: impl Into<String>) -> Self {
        ReadError {
            permanence: Permanence::Transient,
            message: message.into(),
            common: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        ReadError {
            permanence: Permanence::Permanent,
            message: message.into(),
            common: None,
        }
    }
    /// Marks the failure as one of a cause many calendars share ([`ReadError::common`]).
    pub fn with_common_cause(mut self, cause: impl Into<String>) -> Self {
        self.common = Some(cause.into());
        self
    }
    pub fn is_permanent(&self) -> bool {
        self.permanence == Permanence::Permanent
    }
}

/// Why a TRiNG write did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// TRiNG answered and refused it, or it never reached TRiNG: nothing changed.
    /// `Permanent` refusals are held back (SPEC §3 rule 9); `Transient` ones are retried by
    /// the next cycle.
    #[error("{message}")]
    Refused {
        permanence: Permanence,
        message: String,
    },
    /// It may or may not have been applied (a timeout or a broken connection after the
    /// request left); the next `list` decides (SPEC §3 rule 7).
    #[error("{0}")]
    Uncertain(String),
}

impl WriteError {
    pub fn transient(message: impl Into<String>) -> Self {
        WriteError::Refused {
            permanence: Permanence::Transient,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        WriteError::Refused {
            permanence: Permanence::Permanent,
            message: message.into(),
        }
    }
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            WriteError::Refused {
                permanence: Permanence::Permanent,
                ..
            }
        )
    }
}

/// One calendar's read: its events, or why not.
pub type CalendarResult = (CalendarRef, Result<Vec<Event>, ReadError>);

/// Where calendars come from: Graph, or a fake in tests.
pub trait Calendars: Send + Sync {
    /// Reads every calendar in `[from, to)`, yielding each as soon as it is read, in any
    /// order. Each result is a complete read or an error; calendars fail independently
    /// (SPEC §5). A stream rather than one list so that the cycle holds one calendar's
    /// events at a time, not a whole tenant's.
    fn read_all<'a>(
        &'a self,
        cals: &'a [CalendarRef],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Stream<Item = CalendarResult> + Send + 'a;
}

/// The queue side: TRiNG, or a fake in tests.
pub trait Pbx: Send + Sync {
    /// The members of `q` now. An answer whose shape is not understood is an error, never
    /// an empty queue (SPEC §3 rule 2).
    fn list(&self, q: &QueueNo)
    -> impl Future<Output = Result<BTreeSet<Member>, ReadError>> + Send;
    fn write(
        &self,
        kind: ActionKind,
        q: &QueueNo,
        m: &Member,
    ) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
}

/// The time source; injected so tests and the demo control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
