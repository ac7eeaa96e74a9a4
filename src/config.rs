//! The config file (SPEC §4): TOML → raw structs (`deny_unknown_fields`, spans) → validated,
//! typed [`Config`] in a pure function; secrets are loaded in a separate step
//! ([`Config::load_secrets`]) so `plan`/`check-config` can say exactly which one is missing.
//!
//! Every validation error names the file, the line and the key at fault:
//! `rooster.toml:23: rule "on call": unknown queue "701"`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;
use url::Url;

use crate::model::{CalendarRef, Extension, Mailbox, Member, Mobile, QueueNo, Secret, ShowAs};

/// The validated config. Built only by [`Config::parse`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (secrets named by a relative path are found next to it).
    pub path: PathBuf,
    pub timezone: Tz,
    pub poll_interval: Duration,
    pub window: Duration,
    pub state: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub tring: TringConfig,
    pub graph: GraphConfig,
    pub persons: Vec<Person>,
    pub queues: Vec<QueueConfig>,
    pub rules: Vec<Rule>,
}

/// `[tring]`. The key itself is in [`Secrets`].
#[derive(Debug, Clone)]
pub struct TringConfig {
    /// `https://api.tring.nu/pbx/proxyapi.php`; https unless loopback.
    pub base_url: Url,
    /// Tenant code: letters, digits, `-` and `_` only.
    pub tenant: String,
    pub key: SecretSource,
}

/// `[graph]`. The client secret itself is in [`Secrets`].
#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Default `https://graph.microsoft.com/v1.0`.
    pub base_url: Url,
    /// Default `https://login.microsoftonline.com`.
    pub authority: Url,
    /// Calendars read at once across all mailboxes (default 8; Graph allows 4 per mailbox).
    pub concurrency: usize,
}

/// Where a secret comes from (SPEC §4: never the config itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `*_file`: resolved path.
    File(PathBuf),
    /// `*_env`: variable name.
    Env(String),
}

/// The secrets, loaded by [`Config::load_secrets`].
#[derive(Debug, Clone)]
pub struct Secrets {
    pub tring_key: Secret,
    pub graph_client_secret: Secret,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub mailbox: Option<Mailbox>,
    pub extension: Extension,
    pub mobile: Option<Mobile>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    Additive,
    Exclusive,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub number: QueueNo,
    pub name: String,
    pub ownership: Ownership,
    pub keep_last: bool,
    pub max_removals: usize,
    pub fallback: Vec<Member>,
    pub static_members: Vec<Member>,
}

/// Which calendars a rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleCalendar {
    /// Every person's own (default) calendar; events are about the owner.
    Own,
    /// One shared/room mailbox calendar; events name persons through `who`.
    Shared(CalendarRef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Subject,
    Attendees,
    Organizer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Member,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAs {
    Agent,
    Mobile,
}

/// A rule's `match`: an AND of the criteria given (SPEC §2). Never empty.
#[derive(Debug, Clone)]
pub struct Match {
    /// Lower-cased; any of.
    pub categories: Vec<String>,
    /// Lower-cased substring.
    pub subject: Option<String>,
    pub subject_regex: Option<Regex>,
    /// Any of. When it names `free`, free events are considered.
    pub show_as: Vec<ShowAs>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub calendar: RuleCalendar,
    pub who: Who,
    pub matcher: Match,
    /// For `effect = "absent"` an empty list means every managed queue.
    pub queues: Vec<QueueNo>,
    pub effect: Effect,
    pub member_as: MemberAs,
    pub lead: Duration,
    pub lag: Duration,
}
