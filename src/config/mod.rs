//! The config file (SPEC §4): TOML → raw structs (`deny_unknown_fields`, spans) → validated,
//! typed [`Config`] in a pure function; secrets are loaded in a separate step
//! ([`Config::load_secrets`]) so `plan`/`check-config` can say exactly which one is missing.
//!
//! Every validation error names the file, the line and the key at fault:
//! `rooster.toml:23: rule "on call": unknown queue "701"`.
//!
//! Layout: `raw` is the file's shape, `validate` has one function per table, `secrets` is the
//! only part that reads files, the environment or permissions; this file holds the typed
//! config and the entry points.

mod raw;
mod secrets;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;
use url::Url;

use crate::model::{CalendarRef, Extension, Mailbox, Member, Mobile, QueueNo, Secret, ShowAs};
use raw::RawConfig;

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
    /// `[web] listen`: the status page (SPEC §4 "Status page"); off when `None`.
    pub web: Option<SocketAddr>,
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

/// Defaults of SPEC §4/§5.
pub const DEFAULT_TIMEZONE: &str = "Europe/Amsterdam";
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(120);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.microsoft.com/v1.0";
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH_CONCURRENCY: usize = 8;
pub const DEFAULT_MAX_REMOVALS: usize = 20;

/// A config problem: one sentence naming file, line and key (`rooster.toml:23: rule "on call":
/// unknown queue "701"`). `line` is absent when the problem is not tied to one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Resolves a path given in the config relative to the config file's directory.
fn resolve_relative(config_path: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl Config {
    /// Reads and validates the config file. Does not load secrets.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages and to find secrets.
    /// Reads no file; the environment only for the default `state` path.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let ctx = validate::Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: e.span().map(|s| ctx.line_of(s.start)),
            message: e.message().trim().replace('\n', " "),
        })?;

        let top = validate::top_level(&ctx, &raw, secrets::default_state_path())?;
        let tring = validate::tring(&ctx, &raw.tring)?;
        let graph = validate::graph(&ctx, &raw.graph)?;
        let mut persons: Vec<Person> = Vec::new();
        for p in &raw.person {
            let person = validate::person(&ctx, p, &persons)?;
            persons.push(person);
        }
        let mut queues: Vec<QueueConfig> = Vec::new();
        for q in &raw.queue {
            let queue = validate::queue(&ctx, q, &queues, &persons)?;
            queues.push(queue);
        }
        let mut rules: Vec<Rule> = Vec::new();
        for r in &raw.rule {
            let rule = validate::rule(&ctx, r, &rules, &persons, &queues)?;
            rules.push(rule);
        }
        if queues.is_empty() {
            return Err(
                ctx.err("no [[queue]] is configured; rooster only manages queues the config names")
            );
        }

        Ok(Config {
            path: path.to_owned(),
            timezone: top.timezone,
            poll_interval: top.poll_interval,
            window: top.window,
            state: top.state,
            metrics: top.metrics,
            web: top.web,
            tring,
            graph,
            persons,
            queues,
            rules,
        })
    }

    pub fn queue(&self, number: &QueueNo) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| &q.number == number)
    }
}

/// The example config and helpers shared by the tests of `validate` and `secrets`.
#[cfg(test)]
mod test_support {
    use super::*;

    pub(super) const EXAMPLE: &str = include_str!("../../config/rooster.example.toml");

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("rooster.toml"))
    }

    /// The example with one line replaced, so each case shows only what it breaks.
    pub(super) fn example_with(old: &str, new: &str) -> String {
        assert!(
            EXAMPLE.contains(old),
            "example config no longer contains {old:?}"
        );
        EXAMPLE.replacen(old, new, 1)
    }

    pub(super) fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle in text")
            + 1
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{EXAMPLE, parse};
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let cfg = parse(EXAMPLE).unwrap();
        assert_eq!(cfg.timezone, chrono_tz::Europe::Amsterdam);
        assert_eq!(cfg.poll_interval, Duration::from_secs(120));
        assert_eq!(cfg.persons.len(), 3);
        assert_eq!(cfg.queues[1].ownership, Ownership::Exclusive);
        assert_eq!(cfg.queues[0].fallback, vec!["ext:200".parse().unwrap()]);
        assert_eq!(cfg.rules[0].lead, Duration::from_secs(120));
        assert_eq!(cfg.rules[2].effect, Effect::Absent);
        assert!(cfg.rules[2].queues.is_empty());
        assert_eq!(cfg.graph.concurrency, DEFAULT_GRAPH_CONCURRENCY);
        assert_eq!(cfg.tring.key, SecretSource::File("tring-key".into()));
    }
}
