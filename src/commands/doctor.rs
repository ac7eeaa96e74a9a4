//! `rooster doctor` (SPEC §4 "Doctor"): read-only first contact with the real Graph and TRiNG
//! for the admin who just installed rooster. It runs the checks in SPEC order — config and
//! secrets, host clock, Graph token, calendars, rules, TRiNG, state — and returns a
//! [`DoctorReport`]: one line per check, `ok` / `warn` / `FAIL`, each warn and FAIL with its fix.
//!
//! It must never write: no TRiNG `add`/`del`/`clean` (only `list`, `listqueues` and the
//! custom-destination list are called), the state opened read-only and the writer lock only
//! looked at, so it works beside a running daemon. The one thing it writes is what
//! `--save-replies DIR` asks for: the answers, with secrets removed and calendar text replaced.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{CommandError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, out_err, write_private};
use crate::config::{Config, RuleCalendar, Secrets};
use crate::graph::client::GraphOptions;
use crate::graph::{GraphClient, GraphError, RequestError, RetryPolicy};
use crate::model::{CalendarRef, Extension, Member, Mobile, sanitize};
use crate::replies::{Reply, ReplyTap, Service};
use crate::schedule::{self, CalendarEvents, Schedule, ScheduleWarning};
use crate::store::{self, OpenMode, Store, StoreError};
use crate::tring::{KnownMembers, RejectReason, TringClient, TringClientOptions, TringError};

/// Doctor answers a person at a terminal: each request is tried at most twice, and a
/// `Retry-After` is waited for at most 10 s, so a run takes seconds.
const DOCTOR_RETRY: RetryPolicy = RetryPolicy {
    max_tries: 2,
    base_delay: Duration::from_secs(1),
    max_retry_after: Duration::from_secs(10),
};

/// SPEC §4 "Doctor": a host clock more than this far from a service's is a FAIL.
const MAX_CLOCK_OFFSET: TimeDelta = TimeDelta::seconds(2);

/// The INSTALL.md sections fixes point to (deploy/INSTALL.md headings).
const INSTALL_ENTRA: &str = "deploy/INSTALL.md section 2 \"Microsoft Entra app registration\"";
const INSTALL_SCOPE: &str =
    "deploy/INSTALL.md section 3 \"Scope the app to the mailboxes it needs\"";
const INSTALL_CALENDARS: &str = "deploy/INSTALL.md section 4 \"Where the calendars live\"";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so the checklist's `{:<5}` lines the columns up.
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// What a check is about, in SPEC §4's order (the report is sorted by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Config,
    Clock,
    Token,
    Calendar,
    Rule,
    Tring,
    State,
    /// `--save-replies`: where the answers went.
    Replies,
}

impl Area {
    fn as_str(self) -> &'static str {
        match self {
            Area::Config => "config",
            Area::Clock => "clock",
            Area::Token => "token",
            Area::Calendar => "calendar",
            Area::Rule => "rule",
            Area::Tring => "tring",
            Area::State => "state",
            Area::Replies => "replies",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub area: Area,
    pub status: Status,
    /// One sentence.
    pub message: String,
    /// For every warn and FAIL: a command, a config key or the INSTALL.md section.
    pub fix: Option<String>,
}

/// The whole checklist. `--json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The config file checked.
    pub config: String,
    pub checks: Vec<Check>,
    /// The config itself is invalid (exit 2); nothing else was checked.
    pub config_invalid: bool,
    /// Files written by `--save-replies`, in the order of the answers.
    pub saved_replies: Vec<String>,
    pub exit_code: u8,
}

impl DoctorReport {
    fn new(config: &Path) -> Self {
        DoctorReport {
            config: config.display().to_string(),
            checks: Vec::new(),
            config_invalid: false,
            saved_replies: Vec::new(),
            exit_code: EXIT_OK,
        }
    }

    fn push(&mut self, area: Area, status: Status, message: String, fix: Option<String>) {
        self.checks.push(Check {
            area,
            status,
            message,
            fix,
        });
    }

    fn ok(&mut self, area: Area, message: impl Into<String>) {
        self.push(area, Status::Ok, message.into(), None);
    }

    fn warn(&mut self, area: Area, message: impl Into<String>, fix: impl Into<String>) {
        self.push(area, Status::Warn, message.into(), Some(fix.into()));
    }

    fn fail(&mut self, area: Area, message: impl Into<String>, fix: impl Into<String>) {
        self.push(area, Status::Fail, message.into(), Some(fix.into()));
    }

    /// Sorts the lines into SPEC order (stable: the order within an area stays) and sets the
    /// exit code: 2 invalid config, 1 something FAILed, 0 otherwise (warnings allowed).
    fn finish(mut self) -> Self {
        self.checks.sort_by_key(|c| c.area);
        self.exit_code = if self.config_invalid {
            EXIT_USAGE
        } else if self.count(Status::Fail) > 0 {
            EXIT_FAILED
        } else {
            EXIT_OK
        };
        self
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The checklist as text: `status  area  sentence`, the fix indented below.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "rooster doctor: {}", self.config)?;
        for c in &self.checks {
            writeln!(out, "{:<5} {:<9} {}", c.status, c.area.as_str(), c.message)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "{:16}fix: {fix}", "")?;
            }
        }
        writeln!(
            out,
            "{} ok, {} warn, {} FAIL",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        )
    }
}

/// What `doctor` was asked besides the config.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// `--save-replies DIR`.
    pub save_replies: Option<PathBuf>,
}

/// `rooster doctor [--json] [--save-replies DIR]`: prints the checklist; the exit code is the
/// report's.
pub async fn run(
    path: &Path,
    opts: &DoctorOptions,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let report = doctor(path, opts).await;
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| CommandError::Failed(format!("report could not be encoded: {e}")))?;
        writeln!(out, "{text}").map_err(out_err)?;
    } else {
        report.render(out).map_err(out_err)?;
    }
    Ok(report.exit_code)
}

/// Every check, starting from the config file at `path`.
pub async fn doctor(path: &Path, opts: &DoctorOptions) -> DoctorReport {
    let mut r = DoctorReport::new(path);
    let config_fix = "correct the key named above, then run `rooster check-config` (config/rooster.example.toml shows every key)";
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            r.fail(Area::Config, e.to_string(), config_fix);
            r.config_invalid = true;
            return r.finish();
        }
    };
    let (secrets, warnings) = match cfg.load_secrets() {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                Area::Config,
                e.to_string(),
                "put the secret in the file or variable named by [tring] key_file/key_env or [graph] client_secret_file/client_secret_env; deploy/INSTALL.md section 5 \"Config and credentials\"",
            );
            r.config_invalid = true;
            return r.finish();
        }
    };
    r.ok(Area::Config, config_summary(&cfg));
    for w in warnings {
        r.warn(
            Area::Config,
            w,
            "deploy/INSTALL.md section 5 \"Config and credentials\"",
        );
    }
    services(&cfg, &secrets, opts, &mut r).await;
    r.finish()
}

/// Every check after the config, for a config already loaded (the demo's, built in memory).
pub async fn doctor_with(cfg: &Config, secrets: &Secrets, opts: &DoctorOptions) -> DoctorReport {
    let mut r = DoctorReport::new(&cfg.path);
    r.ok(Area::Config, config_summary(cfg));
    services(cfg, secrets, opts, &mut r).await;
    r.finish()
}

fn config_summary(cfg: &Config) -> String {
    format!(
        "{} is valid and its secrets are present: {} person(s), {} queue(s), {} rule(s), {} calendar(s) to read",
        cfg.path.display(),
        cfg.persons.len(),
        cfg.queues.len(),
        cfg.rules.len(),
        schedule::calendars_needed(&cfg.roster()).len()
    )
}

async fn services(cfg: &Config, secrets: &Secrets, opts: &DoctorOptions, r: &mut DoctorReport) {
    let tap = ReplyTap::new();
    // One retry, soon: a doctor run should take seconds, and a failure that outlasts one
    // retry is worth reporting as it is.
    let graph = GraphClient::with_options(
        &cfg.graph,
        secrets.graph_client_secret.clone(),
        GraphOptions {
            retry: DOCTOR_RETRY,
            ..GraphOptions::default()
        },
    );
    match graph {
        Ok(g) => graph_checks(cfg, &g.with_tap(tap.clone()), r).await,
        Err(e) => r.fail(
            Area::Token,
            e.to_string(),
            "check [graph] base_url and authority",
        ),
    }
    let tring = TringClient::with_options(
        &cfg.tring,
        secrets.tring_key.clone(),
        TringClientOptions {
            retry: DOCTOR_RETRY,
            ..TringClientOptions::default()
        },
    );
    match tring {
        Ok(t) => {
            let t = t
                .with_known_members(KnownMembers::from_config(cfg))
                .with_tap(tap.clone());
            tring_checks(cfg, &t, r).await;
        }
        Err(e) => r.fail(
            Area::Tring,
            e.to_string(),
            "check [tring] base_url, tenant and the key",
        ),
    }
    let replies = tap.replies();
    clock_checks(&replies, r);
    state_checks(cfg, r).await;
    if let Some(dir) = &opts.save_replies {
        match save_replies(dir, &replies, secrets) {
            Ok(files) => {
                r.ok(
                    Area::Replies,
                    format!(
                        "{} answer(s) saved in {} with secrets removed and calendar text replaced by placeholders",
                        files.len(),
                        dir.display()
                    ),
                );
                r.saved_replies = files;
            }
            Err(e) => r.fail(
                Area::Replies,
                format!("answers could not be saved in {}: {e}", dir.display()),
                "give --save-replies a directory this user can write",
            ),
        }
    }
}

// ---- 3–5: token, calendars, rules ----------------------------------------------------------

async fn graph_checks(cfg: &Config, graph: &GraphClient, r: &mut DoctorReport) {
    if let Err(e) = graph.check_token().await {
        r.fail(Area::Token, e.to_string(), e.fix());
        r.warn(
            Area::Calendar,
            "calendars and rules not checked: no Graph token",
            "fix the token first, then run `rooster doctor` again",
        );
        return;
    }
    r.ok(
        Area::Token,
        format!(
            "graph token issued to app {} in tenant {}",
            sanitize(&cfg.graph.client_id, 60),
            sanitize(&cfg.graph.tenant_id, 60)
        ),
    );
    let (from, to) = schedule::read_window(&cfg.roster(), Utc::now());
    let cals = schedule::calendars_needed(&cfg.roster());
    let mut events = CalendarEvents::new();
    for (cal, result) in graph.read_many(&cals, from, to).await {
        match result {
            Ok(read) => {
                r.ok(
                    Area::Calendar,
                    format!(
                        "calendar {cal}: readable over the window ({} to {}), {} event(s)",
                        from.format("%Y-%m-%d"),
                        to.format("%Y-%m-%d"),
                        read.events.len()
                    ),
                );
                events.insert(cal, read.events);
            }
            Err(e) => r.fail(Area::Calendar, e.to_string(), calendar_fix(&e)),
        }
    }
    rule_checks(cfg, &events, r);
}

/// The fix for a calendar that could not be read (SPEC §4 "Doctor" item 4).
fn calendar_fix(e: &GraphError) -> String {
    let consent = format!(
        "grant admin consent for the Calendars.Read application permission in Entra; {INSTALL_ENTRA}"
    );
    match e {
        GraphError::AccessPolicyDenied { mailbox, .. } => format!(
            "an Exchange admin adds {mailbox} to the app's scope (the group of the access policy or the RBAC management scope); {INSTALL_SCOPE}; changes can take an hour to reach Graph"
        ),
        GraphError::MailboxNotFound { .. } => format!(
            "correct the address ([[person]] mailbox or the rule's calendar): it must be an Exchange Online user or shared mailbox, not a Microsoft 365 group; {INSTALL_CALENDARS}"
        ),
        GraphError::CalendarNotFound { .. } => {
            "set the rule's calendar_name to a calendar that exists in that mailbox".into()
        }
        GraphError::TokenFailed { source, .. } => source.fix(),
        GraphError::PageMissing { source, .. } | GraphError::CalendarListFailed { source, .. } => {
            match source {
                RequestError::Forbidden { .. } => consent,
                RequestError::Unauthorized { .. } => format!(
                    "Graph refused the token: check that [graph] tenant_id is the mailboxes' tenant; {INSTALL_ENTRA}"
                ),
                RequestError::TokenFailed(t) => t.fix(),
                _ => "a passing failure, or Graph is out of reach: run `rooster doctor` again; if it stays, check the way to [graph] base_url (proxy, firewall)".into(),
            }
        }
        GraphError::EventNotUnderstood { .. } => "send the answer to the rooster maintainers: `rooster doctor --save-replies DIR` keeps it, calendar text replaced".into(),
        _ => "run `rooster doctor` again; if it stays, send `rooster doctor --save-replies DIR` output to the rooster maintainers".into(),
    }
}

fn rule_checks(cfg: &Config, events: &CalendarEvents, r: &mut DoctorReport) {
    let schedule = Schedule::new(&cfg.roster(), events);
    let counts = schedule.activations_per_rule(&cfg.roster());
    let warnings = schedule.all_warnings();
    for (rule, n) in cfg.rules.iter().zip(counts) {
        let name = sanitize(&rule.name, 80);
        let skipped = warnings
            .iter()
            .filter(|w| warning_rule(w) == rule.name)
            .count();
        let read = match &rule.calendar {
            RuleCalendar::Own => cfg.persons.iter().any(|p| {
                p.mailbox
                    .as_ref()
                    .is_some_and(|m| events.contains_key(&CalendarRef::default_of(m.clone())))
            }),
            RuleCalendar::Shared(c) => events.contains_key(c),
        };
        if n > 0 {
            r.ok(
                Area::Rule,
                format!("rule \"{name}\": {n} event(s) in the window match it"),
            );
        } else if skipped > 0 {
            r.warn(
                Area::Rule,
                format!(
                    "rule \"{name}\": {skipped} event(s) match it, but none names a usable person (listed below)"
                ),
                "see the lines below",
            );
        } else if !read {
            r.warn(
                Area::Rule,
                format!("rule \"{name}\": not checked, none of its calendars could be read"),
                "fix the calendar lines above first",
            );
        } else {
            r.warn(
                Area::Rule,
                format!(
                    "rule \"{name}\": no event in the window matches it ({})",
                    describe_match(rule)
                ),
                "check the spelling of the rule's match against Outlook (a category or subject typo is the usual cause; matching ignores case); `rooster calendar MAILBOX` shows the subjects and categories rooster reads",
            );
        }
    }
    for w in &warnings {
        let fix = match w {
            ScheduleWarning::UnknownPerson { .. } => {
                "add the name as a person's name or alias (aliases = [...]) in the config, or correct the event's subject"
            }
            ScheduleWarning::AmbiguousName { .. } => {
                "make the name or alias unique to one person in the config, or write the full name in the event"
            }
            ScheduleWarning::NoMobile { .. } => "give the person a mobile in the config",
        };
        r.warn(Area::Rule, w.to_string(), fix);
    }
}

fn warning_rule(w: &ScheduleWarning) -> &str {
    match w {
        ScheduleWarning::UnknownPerson { rule, .. }
        | ScheduleWarning::AmbiguousName { rule, .. }
        | ScheduleWarning::NoMobile { rule, .. } => rule,
    }
}

fn describe_match(rule: &crate::config::Rule) -> String {
    let m = &rule.matcher;
    let mut parts = Vec::new();
    if !m.categories.is_empty() {
        parts.push(format!(
            "categories {}",
            m.categories
                .iter()
                .map(|c| format!("\"{}\"", sanitize(c, 40)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(s) = &m.subject {
        parts.push(format!("subject \"{}\"", sanitize(s, 40)));
    }
    if m.subject_regex.is_some() {
        parts.push("subject_regex".into());
    }
    if !m.show_as.is_empty() {
        parts.push("show_as".into());
    }
    parts.join(", ")
}

// ---- 6: TRiNG -------------------------------------------------------------------------------

async fn tring_checks(cfg: &Config, tring: &TringClient, r: &mut DoctorReport) {
    let key_fix = "put the API key TRiNG gave you in the file or variable named by [tring] key_file / key_env; deploy/INSTALL.md section 5 \"Config and credentials\"";
    let mut accepted = false;
    for q in &cfg.queues {
        let label = format!("queue {} ({})", q.number, sanitize(&q.name, 40));
        match tring.list(&q.number).await {
            Ok(members) => {
                if !accepted {
                    accepted = true;
                    r.ok(
                        Area::Tring,
                        format!("tring key and tenant {} accepted", cfg.tring.tenant),
                    );
                }
                r.ok(
                    Area::Tring,
                    format!(
                        "{label}: listed, {} member(s), answer understood",
                        members.len()
                    ),
                );
            }
            Err(TringError::Rejected {
                reason: RejectReason::InvalidKey,
                message,
            }) => {
                r.fail(
                    Area::Tring,
                    format!("tring refused the key: {message}"),
                    key_fix,
                );
                return;
            }
            Err(TringError::Rejected {
                reason: RejectReason::InvalidTenant,
                message,
            }) => {
                r.fail(
                    Area::Tring,
                    format!("tring refused tenant {}: {message}", cfg.tring.tenant),
                    "set [tring] tenant to the tenant code TRiNG gave you with the key",
                );
                return;
            }
            Err(TringError::Rejected {
                reason: RejectReason::QueueNotFound,
                message,
            }) => r.fail(
                Area::Tring,
                format!("{label}: TRiNG does not know it: {message}"),
                format!(
                    "set [[queue]] number to the queue's internal number in TRiNG (queue {})",
                    q.number
                ),
            ),
            Err(TringError::Unparseable { body_excerpt }) => r.fail(
                Area::Tring,
                format!(
                    "{label}: TRiNG's list answer has a shape rooster does not know: {body_excerpt:?}"
                ),
                "send this answer to the rooster maintainers: `rooster doctor --save-replies DIR` keeps the whole body, key removed",
            ),
            Err(
                e @ (TringError::ConnectFailed { .. }
                | TringError::TimedOut { .. }
                | TringError::RequestFailed { .. }),
            ) => {
                r.fail(
                    Area::Tring,
                    e.to_string(),
                    "check that this host reaches [tring] base_url over HTTPS (proxy, firewall, DNS)",
                );
                return;
            }
            Err(e) => r.fail(
                Area::Tring,
                format!("{label}: {e}"),
                "run `rooster doctor` again; if it stays, send `rooster doctor --save-replies DIR` output to the rooster maintainers",
            ),
        }
    }
    extension_checks(cfg, tring, r).await;
    mobile_checks(cfg, tring, r).await;
}

/// Every configured extension with whose it is (a person, or a queue's static/fallback).
fn configured_extensions(cfg: &Config) -> BTreeMap<Extension, String> {
    let mut out = BTreeMap::new();
    for p in &cfg.persons {
        out.insert(p.extension.clone(), sanitize(&p.name, 60));
    }
    for q in &cfg.queues {
        for m in q.static_members.iter().chain(&q.fallback) {
            if let Member::Agent(e) = m {
                out.entry(e.clone())
                    .or_insert_with(|| format!("queue {} static/fallback", q.number));
            }
        }
    }
    out
}

fn configured_mobiles(cfg: &Config) -> BTreeMap<Mobile, String> {
    let mut out = BTreeMap::new();
    for p in &cfg.persons {
        if let Some(m) = &p.mobile {
            out.insert(m.clone(), sanitize(&p.name, 60));
        }
    }
    for q in &cfg.queues {
        for m in q.static_members.iter().chain(&q.fallback) {
            if let Member::Custom(c) = m {
                out.entry(c.clone())
                    .or_insert_with(|| format!("queue {} static/fallback", q.number));
            }
        }
    }
    out
}

async fn extension_checks(cfg: &Config, tring: &TringClient, r: &mut DoctorReport) {
    for (ext, who) in configured_extensions(cfg) {
        match tring.list_queues(&ext).await {
            Ok(queues) => {
                let list: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
                r.ok(
                    Area::Tring,
                    format!(
                        "extension {ext} ({who}): known to TRiNG, {}",
                        if list.is_empty() {
                            "in no queue now".to_owned()
                        } else {
                            format!("in queue(s) {}", list.join(", "))
                        }
                    ),
                );
            }
            Err(TringError::Rejected {
                reason: RejectReason::InvalidExtension,
                message,
            }) => r.fail(
                Area::Tring,
                format!("extension {ext} ({who}): TRiNG does not know it: {message}"),
                format!("set the extension of {who} in the config to its number in TRiNG"),
            ),
            Err(e) => r.warn(
                Area::Tring,
                format!("extension {ext} ({who}): cannot check: {e}"),
                "check the extension in the TRiNG portal",
            ),
        }
    }
}

async fn mobile_checks(cfg: &Config, tring: &TringClient, r: &mut DoctorReport) {
    let mobiles = configured_mobiles(cfg);
    if mobiles.is_empty() {
        return;
    }
    let registered: BTreeSet<String> = match tring.list_custom_destinations().await {
        Ok(list) => list.into_iter().map(|n| digits(&n)).collect(),
        Err(e) => {
            for (m, who) in &mobiles {
                r.warn(
                    Area::Tring,
                    format!(
                        "mobile {m} ({who}): cannot check whether it is a custom destination: {e}"
                    ),
                    "check in the TRiNG portal that a custom destination exists for it; without one TRiNG refuses to add it to a queue",
                );
            }
            return;
        }
    };
    for (m, who) in &mobiles {
        if registered.contains(&digits(m.as_str())) {
            r.ok(
                Area::Tring,
                format!("mobile {m} ({who}): a custom destination in TRiNG"),
            );
        } else {
            r.fail(
                Area::Tring,
                format!(
                    "mobile {m} ({who}): not a custom destination in TRiNG, so it cannot be added to a queue"
                ),
                format!(
                    "create a custom destination for {m} in the TRiNG portal, or correct the mobile of {who} in the config"
                ),
            );
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

// ---- 2: the clock ---------------------------------------------------------------------------

/// SPEC §4 "Doctor" item 2. A `Date` header has whole seconds, so the service's clock was in
/// `[D, D + 1 s)` while the host's was in `[sent, received]`: the offset lies in
/// `(D − received, D + 1 s − sent)`. FAIL only when that whole interval is beyond 2 s, so a
/// slow answer or the truncation never blames a good clock; the answer with the shortest
/// round trip is used.
fn clock_checks(replies: &[Reply], r: &mut DoctorReport) {
    let fix = "turn on time synchronisation: `timedatectl set-ntp true` (systemd-timesyncd) or install chrony; queue changes are only as punctual as the host clock";
    for (label, services) in [
        ("Graph", &[Service::Entra, Service::Graph][..]),
        ("TRiNG", &[Service::Tring][..]),
    ] {
        let mine: Vec<&Reply> = replies
            .iter()
            .filter(|x| services.contains(&x.service))
            .collect();
        if mine.is_empty() {
            continue; // unreachable: said above
        }
        let best = mine
            .iter()
            .filter_map(|x| {
                let d = x.date.as_deref()?;
                let server = DateTime::parse_from_rfc2822(d).ok()?.with_timezone(&Utc);
                Some((x.received - x.sent, server, x))
            })
            .min_by_key(|(rtt, _, _)| *rtt);
        let Some((_, server, x)) = best else {
            r.warn(
                Area::Clock,
                format!(
                    "cannot compare the host clock with {label}'s: no answer carried a Date header"
                ),
                "check the host clock by hand: `timedatectl status`",
            );
            continue;
        };
        let lo = server - x.received;
        let hi = server + TimeDelta::seconds(1) - x.sent;
        let mid = lo + (hi - lo) / 2;
        let secs = mid.num_milliseconds() as f64 / 1000.0;
        if lo > MAX_CLOCK_OFFSET || hi < -MAX_CLOCK_OFFSET {
            let dir = if secs > 0.0 { "behind" } else { "ahead of" };
            r.fail(
                Area::Clock,
                format!(
                    "the host clock is {:.1} s {dir} {label}'s (its Date header); more than 2 s apart",
                    secs.abs()
                ),
                fix,
            );
        } else {
            r.ok(
                Area::Clock,
                format!("the host clock is within 2 s of {label}'s (measured {secs:+.1} s)"),
            );
        }
    }
}

// ---- 7: the state ---------------------------------------------------------------------------

async fn state_checks(cfg: &Config, r: &mut DoctorReport) {
    let db = &cfg.state;
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let shown = dir.display();
    if !dir.is_dir() {
        r.fail(
            Area::State,
            format!("state directory {shown} does not exist"),
            format!(
                "sudo install -d -o rooster -g rooster -m 0700 {shown} (systemd's StateDirectory= also creates it when the service starts)"
            ),
        );
        return;
    }
    if writable(&dir) {
        r.ok(
            Area::State,
            format!("state directory {shown} is writable by this user"),
        );
    } else {
        r.fail(
            Area::State,
            format!("state directory {shown} is not writable by this user"),
            format!(
                "run doctor as the service's user (`sudo -u rooster rooster doctor`), or hand the directory to it: sudo chown -R rooster:rooster {shown}"
            ),
        );
    }
    match Store::open(db, OpenMode::ReadOnly).await {
        Ok(s) => {
            r.ok(
                Area::State,
                format!(
                    "state {} is readable and its migrations are current",
                    db.display()
                ),
            );
            s.close().await;
        }
        Err(StoreError::FileMissing { .. }) => r.ok(
            Area::State,
            format!(
                "state {} does not exist yet; the service (or `rooster once`) creates it",
                db.display()
            ),
        ),
        Err(e @ StoreError::MigrationPending { .. }) => r.warn(
            Area::State,
            e.to_string(),
            "the service applies it when it starts (or run `rooster once`)",
        ),
        Err(e @ StoreError::SchemaTooNew { .. }) => r.fail(
            Area::State,
            e.to_string(),
            "install the rooster version that wrote it (or newer)",
        ),
        Err(e) => r.fail(
            Area::State,
            e.to_string(),
            format!(
                "the service's user must own the state: sudo chown -R rooster:rooster {shown}; a damaged file is moved away and the service starts afresh (ownership is then learnt again)"
            ),
        ),
    }
    match store::writer_lock_holder(db) {
        Ok(Some(pid)) => r.ok(
            Area::State,
            format!(
                "a rooster daemon holds the writer lock ({}); doctor only reads, so both can run",
                pid.map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "pid unknown".into())
            ),
        ),
        Ok(None) => r.ok(Area::State, "no rooster daemon holds the writer lock"),
        Err(e) => r.warn(
            Area::State,
            format!(
                "cannot tell whether a daemon holds the writer lock {}: {e}",
                store::lock_path(db).display()
            ),
            format!(
                "sudo chown rooster:rooster {}",
                store::lock_path(db).display()
            ),
        ),
    }
}

/// Whether this process may create files in `dir` (access(2), so ACLs and root count).
fn writable(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        rustix::fs::access(
            dir,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .is_ok()
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
    }
}

// ---- --save-replies -------------------------------------------------------------------------

/// JSON keys whose values are secrets, anywhere in any answer.
const SECRET_KEYS: [&str; 4] = ["access_token", "refresh_token", "id_token", "client_secret"];
/// JSON keys whose values are calendar text (untrusted, personal), anywhere in Graph's answers:
/// subjects, bodies, locations, calendar and attendee names.
const CALENDAR_TEXT_KEYS: [&str; 10] = [
    "subject",
    "bodyPreview",
    "body",
    "uniqueBody",
    "location",
    "locations",
    "name",
    "displayName",
    "onlineMeeting",
    "onlineMeetingUrl",
];

/// Writes one file per answer into `dir` (created if missing): `tring-list-600.txt`,
/// `graph-calendarview-jan@acme.nl-1.json`. Returns the file names.
fn save_replies(dir: &Path, replies: &[Reply], secrets: &Secrets) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let stems: Vec<String> = replies
        .iter()
        .map(|x| format!("{}-{}", x.service.as_str(), file_safe(&x.call)))
        .collect();
    let mut total: HashMap<&str, usize> = HashMap::new();
    for s in &stems {
        *total.entry(s).or_default() += 1;
    }
    // Tokens Entra issued in this run are removed from every file, not only from its answer.
    let tokens: Vec<String> = replies
        .iter()
        .filter(|x| x.service == Service::Entra)
        .filter_map(|x| serde_json::from_slice::<Value>(&x.body).ok())
        .filter_map(|v| v.get("access_token")?.as_str().map(str::to_owned))
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut files = Vec::new();
    for (x, stem) in replies.iter().zip(&stems) {
        let n = seen.entry(stem).or_default();
        *n += 1;
        let (text, ext) = redact(x, secrets, &tokens);
        let name = if x.service == Service::Graph || total[stem.as_str()] > 1 {
            format!("{stem}-{n}.{ext}")
        } else {
            format!("{stem}.{ext}")
        };
        // Readable by the owner only: the answers name mailboxes and queue members.
        write_private(&dir.join(&name), &text)?;
        files.push(name);
    }
    Ok(files)
}

/// A call name as a file name: letters, digits and `@._-`; the rest becomes `_`.
fn file_safe(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The body to keep, and its file extension. Secrets go everywhere; in Graph's answers
/// calendar text is replaced by `[subject]`-style placeholders, and a Graph answer that is
/// not JSON is not kept at all (it could hold calendar text nobody can find in it).
fn redact(x: &Reply, secrets: &Secrets, tokens: &[String]) -> (String, &'static str) {
    let mut text = String::from_utf8_lossy(&x.body).into_owned();
    for secret in tokens.iter().map(String::as_str).chain([
        secrets.tring_key.expose(),
        secrets.graph_client_secret.expose(),
    ]) {
        text = crate::tring::scrub(&text, secret);
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(mut v) => {
            replace_keys(&mut v, &SECRET_KEYS, |_| "[redacted]".into());
            if x.service == Service::Graph {
                replace_keys(&mut v, &CALENDAR_TEXT_KEYS, |k| format!("[{k}]"));
            }
            let pretty = serde_json::to_string_pretty(&v).unwrap_or(text);
            (pretty + "\n", "json")
        }
        Err(_) if x.service == Service::Graph => (
            format!(
                "[an answer of {} bytes that is not JSON (HTTP {}); not kept, as it may hold calendar text]\n",
                x.body.len(),
                x.status
            ),
            "txt",
        ),
        Err(_) => (text, "txt"),
    }
}

fn replace_keys(v: &mut Value, keys: &[&str], placeholder: impl Fn(&str) -> String + Copy) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if keys.contains(&k.as_str()) {
                    *val = Value::String(placeholder(k));
                } else {
                    replace_keys(val, keys, placeholder);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                replace_keys(item, keys, placeholder);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(service: Service, at: &str, date: &str, rtt_ms: i64) -> Reply {
        let sent = DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc);
        Reply {
            service,
            call: "list-600".into(),
            sent,
            received: sent + TimeDelta::milliseconds(rtt_ms),
            status: 200,
            date: Some(date.into()),
            body: Vec::new(),
        }
    }

    fn clock(replies: &[Reply]) -> Vec<Check> {
        let mut r = DoctorReport::new(Path::new("x"));
        clock_checks(replies, &mut r);
        r.checks
    }

    #[test]
    fn a_clock_within_the_date_headers_second_is_ok() {
        // Host 10:00:00.400–.600, server said 10:00:00: within a second.
        let c = clock(&[reply(
            Service::Tring,
            "2026-03-30T10:00:00.400Z",
            "Mon, 30 Mar 2026 10:00:00 GMT",
            200,
        )]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Ok, "{c:?}");
    }

    #[test]
    fn a_clock_three_seconds_behind_fails_with_the_offset() {
        // Host 10:00:00.0–.1 while the server said 10:00:03: the host is ~3.5 s behind.
        let c = clock(&[reply(
            Service::Graph,
            "2026-03-30T10:00:00.000Z",
            "Mon, 30 Mar 2026 10:00:03 GMT",
            100,
        )]);
        assert_eq!(c[0].status, Status::Fail, "{c:?}");
        assert!(c[0].message.contains("3.5 s behind Graph"), "{c:?}");
        assert!(c[0].fix.as_deref().unwrap().contains("chrony"));
    }

    #[test]
    fn a_slow_answer_never_blames_a_good_clock() {
        // A 5 s round trip: the server's 10:00:04 fits a good host clock.
        let c = clock(&[reply(
            Service::Tring,
            "2026-03-30T10:00:00.000Z",
            "Mon, 30 Mar 2026 10:00:04 GMT",
            5000,
        )]);
        assert_eq!(c[0].status, Status::Ok, "{c:?}");
    }

    #[test]
    fn calendar_text_and_tokens_are_replaced_in_graph_answers() {
        let secrets = Secrets {
            tring_key: crate::model::Secret::new("k3y"),
            graph_client_secret: crate::model::Secret::new("s3cret"),
        };
        let body = serde_json::json!({"value": [{"subject": "Tandarts", "categories": ["Support"],
            "attendees": [{"emailAddress": {"name": "Klaas", "address": "k@x.nl"}}],
            "body": {"content": "s3cret"}}]});
        let x = Reply {
            service: Service::Graph,
            call: "calendarview-jan@acme.nl".into(),
            sent: Utc::now(),
            received: Utc::now(),
            status: 200,
            date: None,
            body: body.to_string().into_bytes(),
        };
        let (text, ext) = redact(&x, &secrets, &[]);
        assert_eq!(ext, "json");
        assert!(!text.contains("Tandarts") && !text.contains("Klaas") && !text.contains("s3cret"));
        assert!(
            text.contains("[subject]") && text.contains("Support"),
            "{text}"
        );
    }
}
