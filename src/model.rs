//! The vocabulary of rooster: validated identifiers (queue numbers, extensions, mobiles,
//! mailboxes), queue members, calendar events and secrets. SPEC §1.
//!
//! Every identifier that can reach a TRiNG or Graph URL is a newtype that can only be built
//! through validation, so calendar text or an unchecked string can never become a URL
//! parameter. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

/// Why a string was refused as an identifier. The message names what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {expected}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

fn invalid(what: &'static str, value: &str, expected: &'static str) -> InvalidId {
    // Keep the echoed value short and printable: it may come from a file or a command line.
    let value: String = value
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    InvalidId {
        what,
        value,
        expected,
    }
}

fn all_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

macro_rules! digit_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal, $max:literal, $expected:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if all_digits(s, $min, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(invalid($what, s, $expected))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

digit_id!(
    /// A TRiNG queue's internal number (`600`): 1–10 digits.
    QueueNo, "queue number", 1, 10, "expected 1 to 10 digits"
);
digit_id!(
    /// An extension (agent) number (`201`): 1–10 digits.
    Extension, "extension", 1, 10, "expected 1 to 10 digits"
);
digit_id!(
    /// A mobile number as TRiNG registers it as a custom destination (`0612345678`):
    /// digits only, 8–15 of them (E.164 allows 15; Dutch national numbers have 10).
    Mobile, "mobile", 8, 15, "expected 8 to 15 digits, no spaces or +"
);

/// A mailbox address (`jan@acme.nl`), lower-cased. It becomes a URL path segment for Graph,
/// always percent-encoded by the client; validation keeps it to the characters an Exchange
/// address can hold.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mailbox(String);

impl Mailbox {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        const EXPECTED: &str = "expected an address like name@example.nl";
        let lower = s.trim().to_lowercase();
        let Some((local, domain)) = lower.split_once('@') else {
            return Err(invalid("mailbox", s, EXPECTED));
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c));
        let domain_ok = domain.contains('.')
            && domain.len() <= 253
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if local_ok && domain_ok {
            Ok(Self(lower))
        } else {
            Err(invalid("mailbox", s, EXPECTED))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Mailbox {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        Self::parse(s)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({})", self.0)
    }
}

impl Serialize for Mailbox {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What sits in a queue: an agent (extension) or a custom destination (`type=CU`, a mobile).
/// Written `ext:201` or `cu:0612345678` everywhere a person or a script reads it (SPEC §4).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    Agent(Extension),
    Custom(Mobile),
}

impl Member {
    /// The value TRiNG's `extension=` parameter carries for this member.
    pub fn id(&self) -> &str {
        match self {
            Member::Agent(e) => e.as_str(),
            Member::Custom(m) => m.as_str(),
        }
    }
    pub fn is_custom(&self) -> bool {
        matches!(self, Member::Custom(_))
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Agent(e) => write!(f, "ext:{e}"),
            Member::Custom(m) => write!(f, "cu:{m}"),
        }
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Member {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        if let Some(ext) = s.strip_prefix("ext:") {
            Ok(Member::Agent(Extension::parse(ext)?))
        } else if let Some(m) = s.strip_prefix("cu:") {
            Ok(Member::Custom(Mobile::parse(m)?))
        } else {
            Err(invalid("member", s, "expected ext:NNN or cu:NUMBER"))
        }
    }
}

impl Serialize for Member {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which calendar a rule reads: a mailbox, optionally one of its named calendars
/// (otherwise the default calendar).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CalendarRef {
    pub mailbox: Mailbox,
    pub name: Option<String>,
}

impl CalendarRef {
    pub fn default_of(mailbox: Mailbox) -> Self {
        Self {
            mailbox,
            name: None,
        }
    }
}

impl fmt::Display for CalendarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            None => write!(f, "{}", self.mailbox),
            Some(n) => write!(f, "{}/{}", self.mailbox, crate::model::sanitize(n, 60)),
        }
    }
}

/// Graph's `showAs` (free/busy status).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

impl ShowAs {
    pub const ALL: [ShowAs; 6] = [
        ShowAs::Free,
        ShowAs::Tentative,
        ShowAs::Busy,
        ShowAs::Oof,
        ShowAs::WorkingElsewhere,
        ShowAs::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ShowAs::Free => "free",
            ShowAs::Tentative => "tentative",
            ShowAs::Busy => "busy",
            ShowAs::Oof => "oof",
            ShowAs::WorkingElsewhere => "workingElsewhere",
            ShowAs::Unknown => "unknown",
        }
    }
    /// Case-insensitive parse of Graph's and the config's spelling.
    pub fn parse(s: &str) -> Option<ShowAs> {
        ShowAs::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// Graph's `sensitivity`. Private and confidential events are never described by subject.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    #[default]
    Normal,
    Personal,
    Private,
    Confidential,
}

/// Graph's event `type`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    #[default]
    SingleInstance,
    Occurrence,
    Exception,
    SeriesMaster,
}

/// When an event happens. Timed events are UTC instants; all-day events are local dates
/// (end exclusive), expanded by the schedule in the configured zone (SPEC §2, graph-notes B5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventTime {
    Timed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    AllDay {
        start: NaiveDate,
        end: NaiveDate,
    },
}

/// One calendar event as rooster understands it, normalised from Graph (see `graph::normalize`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, serde::Deserialize)]
pub struct Event {
    /// Graph's id, unique within the mailbox.
    pub id: String,
    pub subject: String,
    pub when: EventTime,
    pub is_cancelled: bool,
    pub show_as: ShowAs,
    pub categories: Vec<String>,
    pub sensitivity: Sensitivity,
    /// Organizer's address, lower-cased.
    pub organizer: Option<String>,
    /// Attendees' addresses, lower-cased.
    pub attendees: Vec<String>,
    pub kind: EventKind,
    pub series_master_id: Option<String>,
}

impl Event {
    /// Private and confidential events are described as "private event", never by subject
    /// (graph-notes B7: app-only access sees them in full).
    pub fn is_private(&self) -> bool {
        matches!(
            self.sensitivity,
            Sensitivity::Private | Sensitivity::Confidential
        )
    }

    /// The subject as it may appear in logs, `plan --json` and `explain`: "private event"
    /// for private ones, otherwise sanitised and truncated (calendar text is untrusted).
    pub fn display_subject(&self) -> String {
        if self.is_private() {
            "private event".to_owned()
        } else {
            sanitize(&self.subject, 120)
        }
    }
}

/// Makes untrusted text safe for one log line or terminal: control characters (newlines,
/// ANSI escapes) and bidirectional overrides become `?`, and the text is cut at `max` chars
/// with an ellipsis.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
        out.push(if c.is_control() || bidi { '?' } else { c });
    }
    out
}

/// A secret (TRiNG key, Graph client secret, access token). `Debug` and `Display` print
/// `[redacted]`; only `expose` gives the value, at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_only_digits_of_the_right_length() {
        assert!(QueueNo::parse("600").is_ok());
        assert!(QueueNo::parse("").is_err());
        assert!(QueueNo::parse("60a").is_err());
        assert!(QueueNo::parse("600&action=clean").is_err());
        assert!(QueueNo::parse("12345678901").is_err());
        assert!(Extension::parse("201").is_ok());
        assert!(Extension::parse(" 201").is_err());
        assert!(Mobile::parse("0612345678").is_ok());
        assert!(Mobile::parse("+31612345678").is_err());
        assert!(Mobile::parse("06123").is_err());
    }

    #[test]
    fn members_round_trip_through_their_written_form() {
        for s in ["ext:201", "cu:0612345678"] {
            assert_eq!(s.parse::<Member>().unwrap().to_string(), s);
        }
        assert!("201".parse::<Member>().is_err());
        assert!("ext:201%26".parse::<Member>().is_err());
    }

    #[test]
    fn mailboxes_are_lowercased_and_checked() {
        assert_eq!(
            Mailbox::parse("Jan@ACME.nl").unwrap().as_str(),
            "jan@acme.nl"
        );
        assert!(Mailbox::parse("jan").is_err());
        assert!(Mailbox::parse("jan@acme").is_err());
        assert!(Mailbox::parse("jan/../x@acme.nl").is_err());
        assert!(Mailbox::parse("j an@acme.nl").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn sanitize_removes_control_and_bidi_and_truncates() {
        assert_eq!(sanitize("a\nb\x1b[31mc\u{202E}d", 100), "a?b?[31mc?d");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }
}
