//! Validation of the config (SPEC §4): one pure function per table — top level, `[tring]`,
//! `[graph]`, `[[person]]`, `[[queue]]`, `[[rule]]` — turning the raw file shape into typed
//! config. Every error names the file and line of the value at fault
//! (`rooster.toml:23: rule "on call": unknown queue "701"`). No file, environment or clock
//! access: a default that depends on the environment is passed in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;
use url::Url;

use super::raw::{RawConfig, RawGraph, RawPerson, RawQueue, RawRule, RawTring};
use super::{
    ConfigError, DEFAULT_AUTHORITY, DEFAULT_GRAPH_BASE, DEFAULT_GRAPH_CONCURRENCY,
    DEFAULT_MAX_REMOVALS, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEZONE, DEFAULT_WINDOW, Effect,
    GraphConfig, Match, MemberAs, Ownership, Person, QueueConfig, Rule, RuleCalendar, SecretSource,
    TringConfig, Who, resolve_relative,
};
use crate::model::{CalendarRef, Extension, Mailbox, Member, Mobile, QueueNo, ShowAs};

/// Turns byte offsets into 1-based line numbers and builds errors for one file.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }
    pub(super) fn err_at<T>(&self, span: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: Some(self.line_of(span.span().start)),
            message: message.into(),
        }
    }
    pub(super) fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: None,
            message: message.into(),
        }
    }
    pub(super) fn duration(&self, key: &str, v: &Spanned<String>) -> Result<Duration, ConfigError> {
        humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.err_at(
                v,
                format!(
                    "{key}: {:?} is not a duration like \"90s\", \"2m\" or \"14d\" ({e})",
                    v.get_ref()
                ),
            )
        })
    }
    pub(super) fn url(&self, key: &str, v: &Spanned<String>) -> Result<Url, ConfigError> {
        let url = Url::parse(v.get_ref())
            .map_err(|e| self.err_at(v, format!("{key}: {:?} is not a URL ({e})", v.get_ref())))?;
        check_url_scheme(&url).map_err(|m| self.err_at(v, format!("{key}: {m}")))?;
        Ok(url)
    }
}

/// The top-level keys, validated.
pub(super) struct TopLevel {
    pub(super) timezone: Tz,
    pub(super) poll_interval: Duration,
    pub(super) window: Duration,
    pub(super) state: PathBuf,
    pub(super) metrics: Option<SocketAddr>,
    /// `[web] listen`.
    pub(super) web: Option<SocketAddr>,
}

/// The top-level keys. `default_state` is used when `state` is not given (SPEC §4: it comes
/// from the environment, which this module does not read).
pub(super) fn top_level(
    ctx: &Ctx,
    raw: &RawConfig,
    default_state: PathBuf,
) -> Result<TopLevel, ConfigError> {
    let path = ctx.path;
    let timezone = match &raw.timezone {
        None => DEFAULT_TIMEZONE
            .parse::<Tz>()
            .expect("built-in zone name is valid"),
        Some(tz) => tz.get_ref().parse::<Tz>().map_err(|_| {
            ctx.err_at(
                tz,
                format!(
                    "timezone: {:?} is not an IANA time zone name like \"Europe/Amsterdam\"",
                    tz.get_ref()
                ),
            )
        })?,
    };
    let poll_interval = match &raw.poll_interval {
        None => DEFAULT_POLL_INTERVAL,
        Some(v) => {
            let d = ctx.duration("poll_interval", v)?;
            if d < Duration::from_secs(10) {
                return Err(ctx.err_at(v, "poll_interval: must be at least 10s"));
            }
            d
        }
    };
    let window = match &raw.window {
        None => DEFAULT_WINDOW,
        Some(v) => {
            let d = ctx.duration("window", v)?;
            if d < Duration::from_secs(3600) || d > Duration::from_secs(366 * 24 * 3600) {
                return Err(ctx.err_at(v, "window: must be between 1h and 366d"));
            }
            d
        }
    };
    let state = match &raw.state {
        Some(s) => resolve_relative(path, s.get_ref()),
        None => default_state,
    };
    let metrics = match &raw.metrics {
        None => None,
        Some(m) => Some(m.get_ref().parse::<SocketAddr>().map_err(|_| {
            ctx.err_at(
                m,
                format!(
                    "metrics: {:?} is not an address like \"127.0.0.1:9187\"",
                    m.get_ref()
                ),
            )
        })?),
    };
    let web = match &raw.web {
        None => None,
        Some(w) => {
            let listen = &w.get_ref().listen;
            Some(listen.get_ref().parse::<SocketAddr>().map_err(|_| {
                ctx.err_at(
                    listen,
                    format!(
                        "web.listen: {:?} is not an address like \"127.0.0.1:9188\"",
                        listen.get_ref()
                    ),
                )
            })?)
        }
    };
    Ok(TopLevel {
        timezone,
        poll_interval,
        window,
        state,
        metrics,
        web,
    })
}

/// `[tring]`.
pub(super) fn tring(ctx: &Ctx, raw: &Spanned<RawTring>) -> Result<TringConfig, ConfigError> {
    let t = raw.get_ref();
    let tenant = t.tenant.get_ref().trim().to_owned();
    if tenant.is_empty()
        || tenant.len() > 64
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ctx.err_at(
            &t.tenant,
            "tring.tenant: expected letters, digits, - or _ (the code from your TRiNG supplier)",
        ));
    }
    Ok(TringConfig {
        base_url: match &t.base_url {
            Some(u) => ctx.url("tring.base_url", u)?,
            None => {
                Url::parse("https://api.tring.nu/pbx/proxyapi.php").expect("valid built-in URL")
            }
        },
        tenant,
        key: secret_source(
            ctx,
            "tring",
            raw,
            "key_file",
            &t.key_file,
            "key_env",
            &t.key_env,
        )?,
    })
}

/// `[graph]`.
pub(super) fn graph(ctx: &Ctx, raw: &Spanned<RawGraph>) -> Result<GraphConfig, ConfigError> {
    let g = raw.get_ref();
    let guid = |key: &str, v: &Spanned<String>| -> Result<String, ConfigError> {
        let s = v.get_ref().trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if ok {
            Ok(s.to_owned())
        } else {
            Err(ctx.err_at(
                v,
                format!(
                    "graph.{key}: expected an Entra id like 00000000-0000-0000-0000-000000000000"
                ),
            ))
        }
    };
    Ok(GraphConfig {
        tenant_id: guid("tenant_id", &g.tenant_id)?,
        client_id: guid("client_id", &g.client_id)?,
        client_secret: secret_source(
            ctx,
            "graph",
            raw,
            "client_secret_file",
            &g.client_secret_file,
            "client_secret_env",
            &g.client_secret_env,
        )?,
        base_url: match &g.base_url {
            Some(u) => ctx.url("graph.base_url", u)?,
            None => Url::parse(DEFAULT_GRAPH_BASE).expect("valid built-in URL"),
        },
        authority: match &g.authority {
            Some(u) => ctx.url("graph.authority", u)?,
            None => Url::parse(DEFAULT_AUTHORITY).expect("valid built-in URL"),
        },
        concurrency: match &g.concurrency {
            None => DEFAULT_GRAPH_CONCURRENCY,
            Some(c) if (1..=64).contains(c.get_ref()) => *c.get_ref() as usize,
            Some(c) => return Err(ctx.err_at(c, "graph.concurrency: must be between 1 and 64")),
        },
    })
}

/// One `[[person]]`; `persons` are those before it in the file.
pub(super) fn person(
    ctx: &Ctx,
    p: &Spanned<RawPerson>,
    persons: &[Person],
) -> Result<Person, ConfigError> {
    let rp = p.get_ref();
    let name = rp.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(ctx.err_at(&rp.name, "person: name must not be empty"));
    }
    let label = format!("person {name:?}");
    if persons.iter().any(|q| q.name.eq_ignore_ascii_case(&name)) {
        return Err(ctx.err_at(
            &rp.name,
            format!("{label}: a person with this name is already defined"),
        ));
    }
    let extension = Extension::parse(rp.extension.get_ref())
        .map_err(|e| ctx.err_at(&rp.extension, format!("{label}: {e}")))?;
    if let Some(other) = persons.iter().find(|q| q.extension == extension) {
        return Err(ctx.err_at(
            &rp.extension,
            format!("{label}: extension {extension} is also {:?}'s", other.name),
        ));
    }
    let mailbox = match &rp.mailbox {
        None => None,
        Some(m) => {
            Some(Mailbox::parse(m.get_ref()).map_err(|e| ctx.err_at(m, format!("{label}: {e}")))?)
        }
    };
    let mobile = match &rp.mobile {
        None => None,
        Some(m) => {
            Some(Mobile::parse(m.get_ref()).map_err(|e| ctx.err_at(m, format!("{label}: {e}")))?)
        }
    };
    // A number that is both a mobile and an extension could not be told apart in a
    // TRiNG list that spells members as bare numbers (tring-api.md "Recognising a
    // member whatever the shape"), so one of the two would flap every cycle.
    if let (Some(m), Some(span)) = (&mobile, &rp.mobile) {
        let owner = if m.as_str() == extension.as_str() {
            Some(name.as_str())
        } else {
            persons
                .iter()
                .find(|q| q.extension.as_str() == m.as_str())
                .map(|q| q.name.as_str())
        };
        if let Some(owner) = owner {
            return Err(ctx.err_at(
                span,
                format!("{label}: mobile {m} is also {owner:?}'s extension"),
            ));
        }
    }
    if let Some(other) = persons.iter().find(|q| {
        q.mobile
            .as_ref()
            .is_some_and(|m| m.as_str() == extension.as_str())
    }) {
        return Err(ctx.err_at(
            &rp.extension,
            format!(
                "{label}: extension {extension} is also {:?}'s mobile",
                other.name
            ),
        ));
    }
    let mut aliases = Vec::new();
    for a in &rp.aliases {
        let alias = a.get_ref().trim();
        if alias.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
            return Err(ctx.err_at(
                a,
                format!("{label}: alias {alias:?} needs at least two letters or digits"),
            ));
        }
        aliases.push(alias.to_owned());
    }
    Ok(Person {
        name,
        mailbox,
        extension,
        mobile,
        aliases,
    })
}

/// One `[[queue]]`; `queues` are those before it in the file.
pub(super) fn queue(
    ctx: &Ctx,
    q: &Spanned<RawQueue>,
    queues: &[QueueConfig],
    persons: &[Person],
) -> Result<QueueConfig, ConfigError> {
    let rq = q.get_ref();
    let number = QueueNo::parse(rq.number.get_ref())
        .map_err(|e| ctx.err_at(&rq.number, format!("queue: {e}")))?;
    let label = format!("queue {number}");
    if queues.iter().any(|x| x.number == number) {
        return Err(ctx.err_at(&rq.number, format!("{label}: defined twice")));
    }
    let ownership = match rq.ownership.as_ref().map(|o| (o, o.get_ref().as_str())) {
        None | Some((_, "additive")) => Ownership::Additive,
        Some((_, "exclusive")) => Ownership::Exclusive,
        Some((o, other)) => {
            return Err(ctx.err_at(
                o,
                format!("{label}: ownership {other:?} is not \"additive\" or \"exclusive\""),
            ));
        }
    };
    let max_removals = match &rq.max_removals {
        None => DEFAULT_MAX_REMOVALS,
        Some(m) if (1..=1000).contains(m.get_ref()) => *m.get_ref() as usize,
        Some(m) => {
            return Err(ctx.err_at(
                m,
                format!("{label}: max_removals must be between 1 and 1000"),
            ));
        }
    };
    Ok(QueueConfig {
        name: rq.name.clone().unwrap_or_default(),
        ownership,
        keep_last: rq.keep_last.unwrap_or(true),
        max_removals,
        fallback: members(ctx, &format!("{label}: fallback"), &rq.fallback, persons)?,
        static_members: members(
            ctx,
            &format!("{label}: static"),
            &rq.static_members,
            persons,
        )?,
        number,
    })
}

/// One `[[rule]]`; `rules` are those before it in the file.
pub(super) fn rule(
    ctx: &Ctx,
    r: &Spanned<RawRule>,
    rules: &[Rule],
    persons: &[Person],
    queues: &[QueueConfig],
) -> Result<Rule, ConfigError> {
    let rr = r.get_ref();
    let name = rr.name.get_ref().trim().to_owned();
    let label = format!("rule {name:?}");
    if name.is_empty() {
        return Err(ctx.err_at(&rr.name, "rule: name must not be empty"));
    }
    if rules.iter().any(|x| x.name == name) {
        return Err(ctx.err_at(&rr.name, format!("{label}: defined twice")));
    }
    let calendar = if rr.calendar.get_ref() == "own" {
        if let Some(cn) = &rr.calendar_name {
            return Err(ctx.err_at(
                cn,
                format!("{label}: calendar_name needs calendar = \"<mailbox>\", not \"own\""),
            ));
        }
        if let Some(p) = persons.iter().find(|p| p.mailbox.is_none()) {
            return Err(ctx.err_at(&rr.calendar, format!("{label}: calendar = \"own\" reads every person's calendar, but person {:?} has no mailbox", p.name)));
        }
        RuleCalendar::Own
    } else {
        let mailbox = Mailbox::parse(rr.calendar.get_ref()).map_err(|e| {
            ctx.err_at(
                &rr.calendar,
                format!("{label}: calendar must be \"own\" or a mailbox: {e}"),
            )
        })?;
        let name = rr
            .calendar_name
            .as_ref()
            .map(|n| n.get_ref().trim().to_owned());
        RuleCalendar::Shared(CalendarRef { mailbox, name })
    };
    let who = match (&calendar, rr.who.as_ref().map(|w| (w, w.get_ref().as_str()))) {
        (_, None | Some((_, "subject"))) => Who::Subject,
        (RuleCalendar::Own, Some((w, _))) => return Err(ctx.err_at(w, format!("{label}: who applies to shared calendars; events in an own calendar are about its owner"))),
        (_, Some((_, "attendees"))) => Who::Attendees,
        (_, Some((_, "organizer"))) => Who::Organizer,
        (_, Some((w, other))) => return Err(ctx.err_at(w, format!("{label}: who {other:?} is not \"subject\", \"attendees\" or \"organizer\""))),
    };
    let effect = match rr.effect.as_ref().map(|e| (e, e.get_ref().as_str())) {
        None | Some((_, "member")) => Effect::Member,
        Some((_, "absent")) => Effect::Absent,
        Some((e, other)) => {
            return Err(ctx.err_at(
                e,
                format!("{label}: effect {other:?} is not \"member\" or \"absent\""),
            ));
        }
    };
    let member_as = match rr.member_as.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "agent")) => MemberAs::Agent,
        Some((_, "mobile")) => MemberAs::Mobile,
        Some((a, other)) => {
            return Err(ctx.err_at(
                a,
                format!("{label}: as {other:?} is not \"agent\" or \"mobile\""),
            ));
        }
    };
    let Some(m) = &rr.matcher else {
        return Err(ctx.err_at(
            r,
            format!(
                "{label}: match is required; a rule without match criteria would take every event"
            ),
        ));
    };
    let rm = m.get_ref();
    let subject_regex = match &rm.subject_regex {
        None => None,
        Some(re) => Some(
            regex::RegexBuilder::new(re.get_ref())
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    ctx.err_at(
                        re,
                        format!(
                            "{label}: subject_regex does not compile: {}",
                            e.to_string().lines().last().unwrap_or("invalid")
                        ),
                    )
                })?,
        ),
    };
    let mut show_as = Vec::new();
    for s in &rm.show_as {
        show_as.push(ShowAs::parse(s.get_ref()).ok_or_else(|| {
            ctx.err_at(s, format!("{label}: show_as {:?} is not one of free, tentative, busy, oof, workingElsewhere, unknown", s.get_ref()))
        })?);
    }
    let matcher = Match {
        categories: rm
            .categories
            .iter()
            .map(|c| c.trim().to_lowercase())
            .filter(|c| !c.is_empty())
            .collect(),
        subject: rm
            .subject
            .as_ref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty()),
        subject_regex,
        show_as,
    };
    if matcher.categories.is_empty()
        && matcher.subject.is_none()
        && matcher.subject_regex.is_none()
        && matcher.show_as.is_empty()
    {
        return Err(ctx.err_at(m, format!("{label}: match names no criteria; give categories, subject, subject_regex or show_as")));
    }
    let mut rule_queues = Vec::new();
    for q in rr.queues.iter().flatten() {
        let number =
            QueueNo::parse(q.get_ref()).map_err(|e| ctx.err_at(q, format!("{label}: {e}")))?;
        if !queues.iter().any(|x| x.number == number) {
            return Err(ctx.err_at(q, format!("{label}: unknown queue {:?}", q.get_ref())));
        }
        if !rule_queues.contains(&number) {
            rule_queues.push(number);
        }
    }
    if effect == Effect::Member && rule_queues.is_empty() {
        return Err(ctx.err_at(r, format!("{label}: queues is required for a member rule")));
    }
    if let (Effect::Absent, Some(a)) = (effect, &rr.member_as) {
        return Err(ctx.err_at(a, format!("{label}: as has no meaning for an absence rule")));
    }
    let lead = rr
        .lead
        .as_ref()
        .map(|v| ctx.duration(&format!("{label}: lead"), v))
        .transpose()?
        .unwrap_or_default();
    let lag = rr
        .lag
        .as_ref()
        .map(|v| ctx.duration(&format!("{label}: lag"), v))
        .transpose()?
        .unwrap_or_default();
    for (key, d, v) in [("lead", lead, &rr.lead), ("lag", lag, &rr.lag)] {
        if d > Duration::from_secs(7 * 24 * 3600) {
            return Err(ctx.err_at(
                v.as_ref().expect("non-zero means given"),
                format!("{label}: {key} must be at most 7d"),
            ));
        }
    }
    Ok(Rule {
        name,
        calendar,
        who,
        matcher,
        queues: rule_queues,
        effect,
        member_as,
        lead,
        lag,
    })
}

/// Secrets travel to these URLs, so they must be https; plain http only to loopback (tests,
/// the demo's simulators).
fn check_url_scheme(url: &Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{url} must be an https URL (plain http is allowed only to 127.0.0.1 or localhost)"
        )),
    }
}

fn secret_source(
    ctx: &Ctx,
    table: &str,
    span: &Spanned<impl Sized>,
    file_key: &str,
    file: &Option<Spanned<String>>,
    env_key: &str,
    env: &Option<Spanned<String>>,
) -> Result<SecretSource, ConfigError> {
    match (file, env) {
        (Some(f), None) if !f.get_ref().trim().is_empty() => {
            Ok(SecretSource::File(PathBuf::from(f.get_ref().trim())))
        }
        (None, Some(e)) if !e.get_ref().trim().is_empty() => {
            Ok(SecretSource::Env(e.get_ref().trim().to_owned()))
        }
        (Some(_), Some(e)) => Err(ctx.err_at(
            e,
            format!("[{table}]: give either {file_key} or {env_key}, not both"),
        )),
        _ => Err(ctx.err_at(
            span,
            format!("[{table}]: {file_key} or {env_key} is required (secrets never stand in the config itself)"),
        )),
    }
}

/// A queue's `static` or `fallback` members. SPEC §2: a mobile can only ever be added if it
/// is a configured person's `mobile`, so `cu:NUMBER` must be one; and an `ext:` that is a
/// person's mobile could not be told from that mobile in a `list` (tring-api.md
/// "Recognising a member whatever the shape").
fn members(
    ctx: &Ctx,
    what: &str,
    list: &[Spanned<String>],
    persons: &[Person],
) -> Result<Vec<Member>, ConfigError> {
    list.iter()
        .map(|m| {
            let member = m
                .get_ref()
                .parse::<Member>()
                .map_err(|e| ctx.err_at(m, format!("{what}: {e}")))?;
            let mobile_of = |digits: &str| {
                persons
                    .iter()
                    .find(|p| p.mobile.as_ref().is_some_and(|pm| pm.as_str() == digits))
            };
            match &member {
                Member::Custom(c) if mobile_of(c.as_str()).is_none() => Err(ctx.err_at(
                    m,
                    format!("{what}: {member} is not the mobile of any configured person"),
                )),
                Member::Agent(e) => match mobile_of(e.as_str()) {
                    Some(p) => Err(ctx.err_at(
                        m,
                        format!("{what}: {member} is {:?}'s mobile; write cu:{e}", p.name),
                    )),
                    None => Ok(member),
                },
                Member::Custom(_) => Ok(member),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{EXAMPLE, example_with, line_of, parse};

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "queues = [\"700\"]",
                "queues = [\"701\"]",
                "rule \"on call\": unknown queue \"701\"",
            ),
            (
                "extension = \"202\"",
                "extension = \"20x\"",
                "person \"Piet Jansen\": extension \"20x\" is not valid",
            ),
            (
                "extension = \"202\"",
                "extension = \"201\"",
                "extension 201 is also \"Jan de Vries\"'s",
            ),
            (
                "mobile = \"0687654321\"",
                "mobile = \"06-8765\"",
                "mobile \"06-8765\" is not valid",
            ),
            (
                "number = \"700\"",
                "number = \"7OO\"",
                "queue: queue number \"7OO\" is not valid",
            ),
            (
                "match = { subject = \"piket\" }",
                "match = { subject_regex = \"(\" }",
                "rule \"on call\": subject_regex does not compile",
            ),
            (
                "match = { subject = \"piket\" }",
                "match = { }",
                "match names no criteria",
            ),
            (
                "ownership = \"exclusive\"",
                "ownership = \"mine\"",
                "ownership \"mine\" is not",
            ),
            (
                "lead = \"2m\"",
                "lead = \"soon\"",
                "rule \"support shifts\": lead: \"soon\" is not a duration",
            ),
            (
                "timezone = \"Europe/Amsterdam\"",
                "timezone = \"Europe/Amsterdem\"",
                "timezone: \"Europe/Amsterdem\" is not an IANA",
            ),
            (
                "fallback = [\"ext:200\"]",
                "fallback = [\"200\"]",
                "queue 600: fallback: member \"200\" is not valid",
            ),
            (
                "who = \"subject\"",
                "who = \"everyone\"",
                "who \"everyone\" is not",
            ),
            (
                "base_url = \"https://api.tring.nu/pbx/proxyapi.php\"",
                "base_url = \"http://api.tring.nu/pbx/proxyapi.php\"",
                "must be an https URL",
            ),
            ("tenant = \"ACME\"", "tenant = \"AC&ME\"", "tring.tenant"),
            (
                "key_file = \"tring-key\"",
                "",
                "[tring]: key_file or key_env is required",
            ),
            ("as = \"agent\"", "as = \"robot\"", "as \"robot\" is not"),
            (
                "extension = \"203\"",
                "extension = \"0687654321\"",
                "person \"Anouk Bakker\": extension 0687654321 is also \"Piet Jansen\"'s mobile",
            ),
            (
                "fallback = [\"ext:200\"]",
                "fallback = [\"cu:0699999999\"]",
                "queue 600: fallback: cu:0699999999 is not the mobile of any configured person",
            ),
            (
                "static = []",
                "static = [\"ext:201\", \"cu:0699999999\"]",
                "queue 600: static: cu:0699999999 is not the mobile of any configured person",
            ),
            (
                "static = []",
                "static = [\"ext:0612345678\"]",
                "queue 600: static: ext:0612345678 is \"Jan de Vries\"'s mobile",
            ),
        ];
        for (old, new, want) in cases {
            let text = example_with(old, new);
            let err = parse(&text).expect_err(want).to_string();
            assert!(err.contains(want), "{new:?}: got {err:?}, want {want:?}");
            assert!(err.starts_with("rooster.toml:"), "{err}");
            if !new.is_empty() {
                let line = line_of(EXAMPLE, old);
                assert!(
                    err.starts_with(&format!("rooster.toml:{line}: ")),
                    "{new:?}: {err} (want line {line})"
                );
            }
        }
    }

    #[test]
    fn mobile_equal_to_an_extension_is_refused_at_the_mobile() {
        // Jan's extension becomes Piet's mobile: Piet's mobile line is at fault.
        let text = example_with("extension = \"201\"", "extension = \"0687654321\"");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(line_of(&text, "mobile = \"0687654321\"")));
        assert!(
            err.message.contains(
                "person \"Piet Jansen\": mobile 0687654321 is also \"Jan de Vries\"'s extension"
            ),
            "{err}"
        );
        // One person's own extension and mobile the same.
        let text = example_with("extension = \"202\"", "extension = \"0687654321\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("mobile 0687654321 is also \"Piet Jansen\"'s extension"),
            "{err}"
        );
    }

    #[test]
    fn configured_mobiles_may_be_static_or_fallback_members() {
        let text = example_with("static = []", "static = [\"cu:0612345678\"]");
        let text = text.replacen(
            "fallback = [\"ext:200\"]",
            "fallback = [\"ext:200\", \"cu:0687654321\"]",
            1,
        );
        let cfg = parse(&text).unwrap();
        assert_eq!(
            cfg.queues[0].static_members,
            vec!["cu:0612345678".parse().unwrap()]
        );
        assert_eq!(cfg.queues[0].fallback.len(), 2);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = example_with("keep_last = true", "keep_lats = true");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(line_of(&text, "keep_lats")));
        assert!(err.message.contains("keep_lats"), "{err}");
    }

    #[test]
    fn own_calendar_needs_every_person_to_have_a_mailbox() {
        let text = example_with("mailbox = \"anouk@acme.nl\"\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("person \"Anouk Bakker\" has no mailbox"),
            "{err}"
        );
    }

    #[test]
    fn http_is_allowed_only_to_loopback() {
        let local = example_with(
            "base_url = \"https://api.tring.nu/pbx/proxyapi.php\"",
            "base_url = \"http://127.0.0.1:9000/pbx/proxyapi.php\"",
        );
        assert!(parse(&local).is_ok());
        let remote = example_with(
            "# authority = \"https://login.microsoftonline.com\"",
            "authority = \"http://10.0.0.1\"",
        );
        assert!(
            parse(&remote)
                .unwrap_err()
                .to_string()
                .contains("graph.authority")
        );
    }
}
