//! From calendars to desired membership (SPEC §2): events + rules + an instant → the members
//! each managed queue must have, why, and the next instant at which that changes.
//!
//! Pure: no HTTP, SQL, clock or logging. Everything comes in as values (the config, the events
//! read per calendar, the instant) and goes out as values; skipped events are returned as
//! [`ScheduleWarning`]s for the caller to log. Calendar text only ever *chooses* among persons
//! and queues the config names: extensions and mobiles come from the config alone (SPEC §2).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::config::{Config, Effect, MemberAs, Person, Rule, RuleCalendar, Who};
use crate::model::{CalendarRef, Event, EventTime, Member, QueueNo, ShowAs, sanitize};

/// The events read, per calendar. Calendars that a rule needs but that are missing here simply
/// contribute nothing; whether a read was complete is the plan's business (SPEC §3 rule 1).
pub type CalendarEvents = BTreeMap<CalendarRef, Vec<Event>>;

/// Where a desired member comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyKind {
    /// An active calendar event matched by a rule.
    Event,
    /// The queue's `static` list: always a member.
    Static,
    /// The queue's `fallback` list: nobody else was desired.
    Fallback,
}

/// One reason a member is desired: the rule and the event (for `explain`, logs, `plan --json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Why {
    pub kind: WhyKind,
    /// The rule's name; `"static"` or `"fallback"` for those kinds.
    pub rule: String,
    /// The calendar the event was read from (`jan@acme.nl`); empty for static/fallback.
    pub calendar: String,
    /// [`Event::display_subject`]: `"private event"` for private ones; empty for static/fallback.
    pub subject: String,
    /// The event's own start and end (all-day: local midnights), without lead or lag, because
    /// that is what a person recognises from their calendar. For static/fallback both are the
    /// instant asked about.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Why {
    fn fixed(kind: WhyKind, at: DateTime<Utc>) -> Why {
        let rule = match kind {
            WhyKind::Static => "static",
            WhyKind::Fallback => "fallback",
            WhyKind::Event => "event",
        };
        Why {
            kind,
            rule: rule.to_owned(),
            calendar: String::new(),
            subject: String::new(),
            from: at,
            to: at,
        }
    }

    /// One human sentence, times in the configured zone:
    /// `rule "support shifts": "Support" in jan@acme.nl 2026-03-30 09:00–17:00`.
    pub fn describe(&self, tz: Tz) -> String {
        match self.kind {
            WhyKind::Static => "static member of the queue".to_owned(),
            WhyKind::Fallback => "fallback: no other member desired".to_owned(),
            WhyKind::Event => {
                let from = self.from.with_timezone(&tz);
                let to = self.to.with_timezone(&tz);
                let span = if from.date_naive() == to.date_naive() {
                    format!("{}–{}", from.format("%Y-%m-%d %H:%M"), to.format("%H:%M"))
                } else {
                    format!(
                        "{}–{}",
                        from.format("%Y-%m-%d %H:%M"),
                        to.format("%Y-%m-%d %H:%M")
                    )
                };
                format!(
                    "rule \"{}\": \"{}\" in {} {}",
                    sanitize(&self.rule, 80),
                    self.subject,
                    self.calendar,
                    span
                )
            }
        }
    }
}

/// A member a queue must have, with the person it stands for and every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredMember {
    pub member: Member,
    /// The person's name (several joined by ", " if they share the member); `None` for
    /// static and fallback members.
    pub person: Option<String>,
    /// Sorted, never empty.
    pub why: Vec<Why>,
}

/// The desired membership of every managed queue at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// Every queue in the config, including those that must be empty.
    pub queues: BTreeMap<QueueNo, BTreeMap<Member, DesiredMember>>,
    /// Events a rule matched but that could not be used, one per (rule, event), for events
    /// not yet over at the instant asked about (active now or coming up in the read window).
    pub warnings: Vec<ScheduleWarning>,
}

/// An event a rule matched but skipped. `Display` is one sanitised sentence naming the rule and
/// the event (calendar, subject, start) so an operator can find and fix it (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleWarning {
    /// A shared-calendar event that names no configured person.
    UnknownPerson {
        rule: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
    },
    /// A shared-calendar event whose subject names a phrase that two or more persons share.
    AmbiguousName {
        rule: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
        /// The shared name or alias as it matched (case- and accent-folded).
        name: String,
        persons: Vec<String>,
    },
    /// An `as = "mobile"` rule selected a person who has no `mobile` in the config.
    NoMobile {
        rule: String,
        person: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
    },
}

impl fmt::Display for ScheduleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start_fmt = |s: &DateTime<Utc>| s.format("%Y-%m-%d %H:%MZ").to_string();
        match self {
            ScheduleWarning::UnknownPerson {
                rule,
                calendar,
                subject,
                start,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} names no configured person; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start)
            ),
            ScheduleWarning::AmbiguousName {
                rule,
                calendar,
                subject,
                start,
                name,
                persons,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} names \"{}\", which is shared by {}; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start),
                sanitize(name, 80),
                sanitize(&persons.join(" and "), 200)
            ),
            ScheduleWarning::NoMobile {
                rule,
                person,
                calendar,
                subject,
                start,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} selects {}, who has no mobile configured; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start),
                sanitize(person, 80)
            ),
        }
    }
}

/// Every calendar some rule reads: each person's own calendar when any rule uses `"own"`,
/// plus each shared calendar. Sorted, without duplicates.
pub fn calendars_needed(cfg: &Config) -> Vec<CalendarRef> {
    let mut out = BTreeSet::new();
    for rule in &cfg.rules {
        out.extend(rule_calendars(cfg, rule));
    }
    out.into_iter().collect()
}

/// Which calendars feed each managed queue, through member rules and absence rules alike:
/// if one of them was not read completely, that queue gets no dels (SPEC §3 rule 1).
/// Every configured queue has an entry (empty when no rule touches it).
pub fn calendars_feeding(cfg: &Config) -> BTreeMap<QueueNo, BTreeSet<CalendarRef>> {
    let mut out: BTreeMap<QueueNo, BTreeSet<CalendarRef>> = cfg
        .queues
        .iter()
        .map(|q| (q.number.clone(), BTreeSet::new()))
        .collect();
    for rule in &cfg.rules {
        let cals = rule_calendars(cfg, rule);
        for q in rule_queues(cfg, rule) {
            if let Some(set) = out.get_mut(q) {
                set.extend(cals.iter().cloned());
            }
        }
    }
    out
}

/// The span calendars are read over: `now − max(1 day, largest lag) .. now + window` (SPEC §2).
/// Looking back covers events that started earlier but are still active through their lag.
pub fn read_window(cfg: &Config, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = TimeDelta::days(1);
    let back = cfg
        .rules
        .iter()
        .map(|r| delta(r.lag))
        .fold(day, TimeDelta::max);
    (sat_sub(now, back), sat_add(now, delta(cfg.window)))
}

/// The desired members of every managed queue at `t` (SPEC §2):
/// `static ∪ members of active member-rules − persons absent`, else `fallback` when empty.
pub fn desired_at(cfg: &Config, events: &CalendarEvents, t: DateTime<Utc>) -> Desired {
    let (acts, warnings) = activations(cfg, events);
    let mut queues = BTreeMap::new();
    for q in &cfg.queues {
        let mut members: BTreeMap<Member, DesiredMember> = BTreeMap::new();
        let absent = absent_persons(&acts, &q.number, t);
        for act in acts
            .iter()
            .filter(|a| a.member_effect() && a.covers(&q.number, t))
        {
            for (p, member) in &act.members {
                if absent.contains(p) {
                    continue;
                }
                let name = &cfg.persons[*p].name;
                let entry = members
                    .entry(member.clone())
                    .or_insert_with(|| DesiredMember {
                        member: member.clone(),
                        person: None,
                        why: Vec::new(),
                    });
                entry.person = Some(match entry.person.take() {
                    None => name.clone(),
                    Some(prev) if prev.split(", ").any(|n| n == name) => prev,
                    Some(prev) => format!("{prev}, {name}"),
                });
                entry.why.push(act.why.clone());
            }
        }
        // Static members stay whatever absences say: "static" means always (SPEC §2).
        for m in &q.static_members {
            members
                .entry(m.clone())
                .or_insert_with(|| DesiredMember {
                    member: m.clone(),
                    person: None,
                    why: Vec::new(),
                })
                .why
                .push(Why::fixed(WhyKind::Static, t));
        }
        if members.is_empty() {
            for m in &q.fallback {
                members.insert(
                    m.clone(),
                    DesiredMember {
                        member: m.clone(),
                        person: None,
                        why: vec![Why::fixed(WhyKind::Fallback, t)],
                    },
                );
            }
        }
        for dm in members.values_mut() {
            dm.why.sort();
            dm.why.dedup();
        }
        queues.insert(q.number.clone(), members);
    }
    let warnings = warnings
        .into_iter()
        .filter(|(until, _)| *until > t)
        .map(|(_, w)| w)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Desired { queues, warnings }
}

/// The first instant strictly after `after` at which some queue's desired *member set*
/// changes (provenance alone does not count), or `None` when nothing in the events read
/// changes it again. The daemon wakes at it (SPEC §5).
///
/// Desired sets are piecewise constant between activation edges (`start − lead`,
/// `end + lag`, all-day local midnights included), so only those edges are evaluated, in
/// order, until one differs from the set just before it. Activations are computed once; each
/// evaluation touches only the activations still alive after `after`.
pub fn next_boundary(
    cfg: &Config,
    events: &CalendarEvents,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let (acts, _) = activations(cfg, events);
    let live: Vec<&Activation> = acts.iter().filter(|a| a.to > after).collect();
    let candidates: BTreeSet<DateTime<Utc>> = live
        .iter()
        .flat_map(|a| [a.from, a.to])
        .filter(|c| *c > after)
        .collect();
    let mut before = member_sets(cfg, &live, after);
    for c in candidates {
        let now = member_sets(cfg, &live, c);
        if now != before {
            return Some(c);
        }
        before = now;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Internals

/// One matched event's effect: from `start − lead` until `end + lag`, on these queues, for
/// these persons (as the members the rule makes of them).
#[derive(Debug)]
struct Activation<'c> {
    rule: &'c Rule,
    /// Queues the rule touches (absence without queues: all managed ones).
    queues: Vec<&'c QueueNo>,
    /// (person index, member); for absence rules the member is the person's agent and is
    /// not used.
    members: Vec<(usize, Member)>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    why: Why,
}

impl Activation<'_> {
    fn member_effect(&self) -> bool {
        self.rule.effect == Effect::Member
    }
    fn covers(&self, q: &QueueNo, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to && self.queues.contains(&q)
    }
}

fn absent_persons(acts: &[Activation], q: &QueueNo, t: DateTime<Utc>) -> BTreeSet<usize> {
    acts.iter()
        .filter(|a| !a.member_effect() && a.covers(q, t))
        .flat_map(|a| a.members.iter().map(|(p, _)| *p))
        .collect()
}

/// Desired member sets only (no provenance), for boundary search.
fn member_sets(
    cfg: &Config,
    acts: &[&Activation],
    t: DateTime<Utc>,
) -> BTreeMap<QueueNo, BTreeSet<Member>> {
    let active: Vec<&Activation> = acts
        .iter()
        .copied()
        .filter(|a| a.from <= t && t < a.to)
        .collect();
    cfg.queues
        .iter()
        .map(|q| {
            let absent: BTreeSet<usize> = active
                .iter()
                .filter(|a| !a.member_effect() && a.queues.contains(&&q.number))
                .flat_map(|a| a.members.iter().map(|(p, _)| *p))
                .collect();
            let mut set: BTreeSet<Member> = active
                .iter()
                .filter(|a| a.member_effect() && a.queues.contains(&&q.number))
                .flat_map(|a| a.members.iter())
                .filter(|(p, _)| !absent.contains(p))
                .map(|(_, m)| m.clone())
                .collect();
            set.extend(q.static_members.iter().cloned());
            if set.is_empty() {
                set.extend(q.fallback.iter().cloned());
            }
            (q.number.clone(), set)
        })
        .collect()
}

/// Every matched event of every rule as an activation, and the warnings for events matched
/// but skipped, each with the instant after which it no longer matters.
fn activations<'c>(
    cfg: &'c Config,
    events: &CalendarEvents,
) -> (Vec<Activation<'c>>, Vec<(DateTime<Utc>, ScheduleWarning)>) {
    let names = NameIndex::new(&cfg.persons);
    let mut acts = Vec::new();
    let mut warnings = Vec::new();
    for rule in &cfg.rules {
        let queues = rule_queues(cfg, rule);
        let lead = delta(rule.lead);
        let lag = delta(rule.lag);
        for cal in rule_calendars(cfg, rule) {
            let Some(evs) = events.get(&cal) else {
                continue;
            };
            for ev in evs.iter().filter(|e| event_matches(rule, e)) {
                let (start, end) = event_span(ev, cfg.timezone);
                let from = sat_sub(start, lead);
                let to = sat_add(end, lag);
                if to <= from {
                    continue; // never active
                }
                let calendar = cal.to_string();
                let subject = ev.display_subject();
                let persons = match who_is_it(cfg, &names, rule, &cal, ev) {
                    Ok(p) => p,
                    Err(Unresolved::Nobody) => {
                        warnings.push((
                            to,
                            ScheduleWarning::UnknownPerson {
                                rule: rule.name.clone(),
                                calendar,
                                subject,
                                start,
                            },
                        ));
                        continue;
                    }
                    Err(Unresolved::Ambiguous { name, persons }) => {
                        warnings.push((
                            to,
                            ScheduleWarning::AmbiguousName {
                                rule: rule.name.clone(),
                                calendar,
                                subject,
                                start,
                                name,
                                persons,
                            },
                        ));
                        continue;
                    }
                };
                let mut members = Vec::new();
                for p in persons {
                    let person = &cfg.persons[p];
                    let member = match (rule.effect, rule.member_as) {
                        (Effect::Member, MemberAs::Mobile) => match &person.mobile {
                            Some(m) => Member::Custom(m.clone()),
                            None => {
                                warnings.push((
                                    to,
                                    ScheduleWarning::NoMobile {
                                        rule: rule.name.clone(),
                                        person: person.name.clone(),
                                        calendar: calendar.clone(),
                                        subject: subject.clone(),
                                        start,
                                    },
                                ));
                                continue;
                            }
                        },
                        _ => Member::Agent(person.extension.clone()),
                    };
                    members.push((p, member));
                }
                if members.is_empty() {
                    continue;
                }
                acts.push(Activation {
                    rule,
                    queues: queues.clone(),
                    members,
                    from,
                    to,
                    why: Why {
                        kind: WhyKind::Event,
                        rule: rule.name.clone(),
                        calendar,
                        subject,
                        from: start,
                        to: end,
                    },
                });
            }
        }
    }
    (acts, warnings)
}

/// The calendars a rule reads.
fn rule_calendars(cfg: &Config, rule: &Rule) -> Vec<CalendarRef> {
    match &rule.calendar {
        RuleCalendar::Own => cfg
            .persons
            .iter()
            .filter_map(|p| p.mailbox.clone().map(CalendarRef::default_of))
            .collect(),
        RuleCalendar::Shared(c) => vec![c.clone()],
    }
}

/// The managed queues a rule touches. An absence rule without queues touches them all;
/// queues not in the config are never touched (SPEC §1).
fn rule_queues<'c>(cfg: &'c Config, rule: &Rule) -> Vec<&'c QueueNo> {
    cfg.queues
        .iter()
        .map(|q| &q.number)
        .filter(|n| {
            rule.queues.contains(n) || (rule.effect == Effect::Absent && rule.queues.is_empty())
        })
        .collect()
}

/// SPEC §2: not cancelled; `free` only when the match names it; then the AND of the criteria.
fn event_matches(rule: &Rule, ev: &Event) -> bool {
    let m = &rule.matcher;
    if ev.is_cancelled {
        return false;
    }
    if ev.show_as == ShowAs::Free && !m.show_as.contains(&ShowAs::Free) {
        return false;
    }
    if !m.categories.is_empty()
        && !ev.categories.iter().any(|c| {
            let c = c.to_lowercase();
            m.categories.iter().any(|want| want.to_lowercase() == c)
        })
    {
        return false;
    }
    if let Some(s) = &m.subject
        && !ev.subject.to_lowercase().contains(&s.to_lowercase())
    {
        return false;
    }
    if let Some(re) = &m.subject_regex
        && !re.is_match(&ev.subject)
    {
        return false;
    }
    if !m.show_as.is_empty() && !m.show_as.contains(&ev.show_as) {
        return false;
    }
    true
}

/// The event's own span in UTC. All-day events run local midnight to local midnight in the
/// configured zone, so a DST day lasts 23 or 25 hours (SPEC §2, graph-notes B5).
fn event_span(ev: &Event, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    match ev.when {
        EventTime::Timed { start, end } => (start, end),
        EventTime::AllDay { start, end } => (local_midnight(start, tz), local_midnight(end, tz)),
    }
}

/// The first instant of `date` in `tz`. Where local midnight is ambiguous (clocks turned back
/// over it) that is the earlier one; where it does not exist (clocks jumped over it, or a whole
/// day was skipped as in Pacific/Apia 2011) it is the first valid instant after the gap.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Gaps are whole minutes and at most a day long; step through them minute by minute.
    for minutes in 0..=(26 * 60) {
        let local = midnight + TimeDelta::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // Unreachable for real zones; reading the date as UTC is the least surprising fallback.
    Utc.from_utc_datetime(&midnight)
}

enum Unresolved {
    Nobody,
    Ambiguous { name: String, persons: Vec<String> },
}

/// Who an event is about (SPEC §2 "Who the event is about"), as indices into `cfg.persons`.
fn who_is_it(
    cfg: &Config,
    names: &NameIndex,
    rule: &Rule,
    cal: &CalendarRef,
    ev: &Event,
) -> Result<Vec<usize>, Unresolved> {
    let by_mailbox = |addr: &str| -> Vec<usize> {
        cfg.persons
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.mailbox
                    .as_ref()
                    .is_some_and(|m| m.as_str().eq_ignore_ascii_case(addr))
            })
            .map(|(i, _)| i)
            .collect()
    };
    let found = match (&rule.calendar, rule.who) {
        // An own-calendar event is about the calendar's owner.
        (RuleCalendar::Own, _) => by_mailbox(cal.mailbox.as_str()),
        (RuleCalendar::Shared(_), Who::Subject) => names.persons_in(&ev.subject)?,
        (RuleCalendar::Shared(_), Who::Attendees) => {
            let mut found: BTreeSet<usize> = BTreeSet::new();
            for a in &ev.attendees {
                found.extend(by_mailbox(a));
            }
            found.into_iter().collect()
        }
        (RuleCalendar::Shared(_), Who::Organizer) => {
            ev.organizer.as_deref().map(by_mailbox).unwrap_or_default()
        }
    };
    if found.is_empty() {
        Err(Unresolved::Nobody)
    } else {
        Ok(found)
    }
}

/// Every person's name and aliases, folded for matching, with the persons each phrase names.
struct NameIndex<'c> {
    persons: &'c [Person],
    phrases: BTreeMap<String, BTreeSet<usize>>,
}

impl<'c> NameIndex<'c> {
    fn new(persons: &'c [Person]) -> Self {
        let mut phrases: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (i, p) in persons.iter().enumerate() {
            for phrase in std::iter::once(&p.name).chain(p.aliases.iter()) {
                let folded = fold(phrase);
                // A phrase with no letter or digit would match between any two words.
                if folded.chars().any(char::is_alphanumeric) {
                    phrases.entry(folded).or_default().insert(i);
                }
            }
        }
        NameIndex { persons, phrases }
    }

    /// The persons a subject names as whole phrases. A phrase found inside a longer phrase
    /// that also matched ("Jan" inside "Jan de Vries") does not count on its own, so a full
    /// name settles what a shared first name leaves open. Distinct persons named by their own
    /// distinct phrases are all returned ("Jan + Piet" is a plausible rota entry); a phrase
    /// shared by two persons makes the whole event ambiguous: never guessed (SPEC §2).
    fn persons_in(&self, subject: &str) -> Result<Vec<usize>, Unresolved> {
        let text = fold(subject);
        let mut hits: Vec<(usize, usize, &str)> = Vec::new();
        for phrase in self.phrases.keys() {
            hits.extend(
                whole_phrase_matches(&text, phrase)
                    .into_iter()
                    .map(|(s, e)| (s, e, phrase.as_str())),
            );
        }
        let longest: Vec<&(usize, usize, &str)> = hits
            .iter()
            .filter(|(s, e, _)| {
                !hits
                    .iter()
                    .any(|(s2, e2, _)| s2 <= s && e <= e2 && (e2 - s2) > (e - s))
            })
            .collect();
        let mut found = BTreeSet::new();
        for (_, _, phrase) in longest {
            let owners = &self.phrases[*phrase];
            if owners.len() > 1 {
                return Err(Unresolved::Ambiguous {
                    name: (*phrase).to_owned(),
                    persons: owners
                        .iter()
                        .map(|i| self.persons[*i].name.clone())
                        .collect(),
                });
            }
            found.extend(owners.iter().copied());
        }
        Ok(found.into_iter().collect())
    }
}

/// Byte spans of `phrase` in `text` bounded on both sides by a non-letter/digit or the ends.
fn whole_phrase_matches(text: &str, phrase: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(phrase) {
        let start = from + pos;
        let end = start + phrase.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            out.push((start, end));
        }
        // Step one character on, so overlapping candidates are considered too.
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Case- and accent-insensitive form: NFKD, combining marks dropped, lower-cased, runs of
/// white space collapsed to one space ("José  Özil" → "jose ozil").
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = true;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        for l in c.to_lowercase() {
            if l.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.push(l);
                space = false;
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn sat_add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn sat_sub(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono_tz::Europe::Amsterdam;
    use proptest::prelude::*;
    use regex::Regex;
    use url::Url;

    use super::*;
    use crate::config::{GraphConfig, Match, Ownership, QueueConfig, SecretSource, TringConfig};
    use crate::model::{EventKind, Extension, Mailbox, Mobile, Sensitivity};

    // ---- fixture builders ------------------------------------------------------------------

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp is RFC 3339")
            .with_timezone(&Utc)
    }

    fn mailbox(s: &str) -> Mailbox {
        Mailbox::parse(s).expect("test mailbox is valid")
    }

    fn ext(s: &str) -> Member {
        Member::Agent(Extension::parse(s).expect("test extension is valid"))
    }

    fn cu(s: &str) -> Member {
        Member::Custom(Mobile::parse(s).expect("test mobile is valid"))
    }

    fn q(s: &str) -> QueueNo {
        QueueNo::parse(s).expect("test queue is valid")
    }

    fn own_cal(s: &str) -> CalendarRef {
        CalendarRef::default_of(mailbox(s))
    }

    const PIKET: &str = "piket@acme.nl";

    fn person(name: &str, mb: &str, extension: &str) -> Person {
        Person {
            name: name.to_owned(),
            mailbox: Some(mailbox(mb)),
            extension: Extension::parse(extension).expect("test extension is valid"),
            mobile: None,
            aliases: Vec::new(),
        }
    }

    fn jan() -> Person {
        Person {
            mobile: Some(Mobile::parse("0612345678").expect("valid")),
            aliases: vec!["Jan".into(), "JdV".into()],
            ..person("Jan de Vries", "jan@acme.nl", "201")
        }
    }

    fn piet() -> Person {
        Person {
            aliases: vec!["Piet".into()],
            ..person("Piet Bakker", "piet@acme.nl", "202")
        }
    }

    fn queue(n: &str) -> QueueConfig {
        QueueConfig {
            number: q(n),
            name: format!("queue {n}"),
            ownership: Ownership::Additive,
            keep_last: true,
            max_removals: 20,
            fallback: Vec::new(),
            static_members: Vec::new(),
        }
    }

    fn rule(name: &str, calendar: RuleCalendar) -> Rule {
        Rule {
            name: name.to_owned(),
            calendar,
            who: Who::Subject,
            matcher: Match {
                categories: Vec::new(),
                subject: None,
                subject_regex: None,
                show_as: Vec::new(),
            },
            queues: vec![q("600")],
            effect: Effect::Member,
            member_as: MemberAs::Agent,
            lead: Duration::ZERO,
            lag: Duration::ZERO,
        }
    }

    /// "support shifts": own calendars, category Support, queue 600.
    fn shifts() -> Rule {
        rule("support shifts", RuleCalendar::Own).categories(&["support"])
    }

    /// "on call": the piket@ shared calendar, who = subject, subject "piket", queue 700.
    fn on_call() -> Rule {
        rule("on call", RuleCalendar::Shared(own_cal(PIKET)))
            .subject("piket")
            .queues(&["700"])
    }

    /// "away": own calendars, show as oof, absent from every queue.
    fn away() -> Rule {
        Rule {
            effect: Effect::Absent,
            queues: Vec::new(),
            ..rule("away", RuleCalendar::Own).show_as(&[ShowAs::Oof])
        }
    }

    trait RuleExt: Sized {
        fn categories(self, c: &[&str]) -> Self;
        fn subject(self, s: &str) -> Self;
        fn show_as(self, s: &[ShowAs]) -> Self;
        fn queues(self, qs: &[&str]) -> Self;
        fn who(self, w: Who) -> Self;
        fn mobile(self) -> Self;
        fn lead_lag(self, lead_min: u64, lag_min: u64) -> Self;
    }

    impl RuleExt for Rule {
        fn categories(mut self, c: &[&str]) -> Self {
            self.matcher.categories = c.iter().map(|s| s.to_lowercase()).collect();
            self
        }
        fn subject(mut self, s: &str) -> Self {
            self.matcher.subject = Some(s.to_lowercase());
            self
        }
        fn show_as(mut self, s: &[ShowAs]) -> Self {
            self.matcher.show_as = s.to_vec();
            self
        }
        fn queues(mut self, qs: &[&str]) -> Self {
            self.queues = qs.iter().map(|s| q(s)).collect();
            self
        }
        fn who(mut self, w: Who) -> Self {
            self.who = w;
            self
        }
        fn mobile(mut self) -> Self {
            self.member_as = MemberAs::Mobile;
            self
        }
        fn lead_lag(mut self, lead_min: u64, lag_min: u64) -> Self {
            self.lead = Duration::from_secs(lead_min * 60);
            self.lag = Duration::from_secs(lag_min * 60);
            self
        }
    }

    fn config() -> Config {
        let url = |s: &str| Url::parse(s).expect("test url is valid");
        Config {
            path: PathBuf::from("rooster.toml"),
            timezone: Amsterdam,
            poll_interval: Duration::from_secs(120),
            window: Duration::from_secs(14 * 86_400),
            state: PathBuf::from("rooster.db"),
            metrics: None,
            tring: TringConfig {
                base_url: url("http://127.0.0.1:9/proxyapi.php"),
                tenant: "ACME".into(),
                key: SecretSource::Env("TRING_KEY".into()),
            },
            graph: GraphConfig {
                tenant_id: "t".into(),
                client_id: "c".into(),
                client_secret: SecretSource::Env("GRAPH_SECRET".into()),
                base_url: url("http://127.0.0.1:9/v1.0"),
                authority: url("http://127.0.0.1:9"),
                concurrency: 8,
            },
            persons: vec![jan(), piet()],
            queues: vec![queue("600"), queue("700")],
            rules: vec![shifts(), on_call(), away()],
        }
    }

    trait ConfigExt: Sized {
        fn persons(self, p: Vec<Person>) -> Self;
        fn rules(self, r: Vec<Rule>) -> Self;
        fn queue_with(self, n: &str, f: impl FnOnce(&mut QueueConfig)) -> Self;
    }

    impl ConfigExt for Config {
        fn persons(mut self, p: Vec<Person>) -> Self {
            self.persons = p;
            self
        }
        fn rules(mut self, r: Vec<Rule>) -> Self {
            self.rules = r;
            self
        }
        fn queue_with(mut self, n: &str, f: impl FnOnce(&mut QueueConfig)) -> Self {
            let qc = self
                .queues
                .iter_mut()
                .find(|qc| qc.number == q(n))
                .expect("queue is in the test config");
            f(qc);
            self
        }
    }

    fn event(subject: &str, start: &str, end: &str) -> Event {
        Event {
            id: format!("{subject}@{start}"),
            subject: subject.to_owned(),
            when: EventTime::Timed {
                start: ts(start),
                end: ts(end),
            },
            is_cancelled: false,
            show_as: ShowAs::Busy,
            categories: Vec::new(),
            sensitivity: Sensitivity::Normal,
            organizer: None,
            attendees: Vec::new(),
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }
    }

    fn all_day(subject: &str, start: &str, end: &str) -> Event {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        Event {
            when: EventTime::AllDay {
                start: date(start),
                end: date(end),
            },
            ..event(subject, "2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z")
        }
    }

    /// Jan's 09:00–17:00 (CEST) support shift on Monday 30 March 2026.
    fn support_shift() -> Event {
        event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("Support")
    }

    trait EventExt: Sized {
        fn category(self, c: &str) -> Self;
        fn show(self, s: ShowAs) -> Self;
        fn cancelled(self) -> Self;
        fn private(self) -> Self;
        fn organizer(self, o: &str) -> Self;
        fn attendees(self, a: &[&str]) -> Self;
    }

    impl EventExt for Event {
        fn category(mut self, c: &str) -> Self {
            self.categories.push(c.to_owned());
            self
        }
        fn show(mut self, s: ShowAs) -> Self {
            self.show_as = s;
            self
        }
        fn cancelled(mut self) -> Self {
            self.is_cancelled = true;
            self
        }
        fn private(mut self) -> Self {
            self.sensitivity = Sensitivity::Private;
            self
        }
        fn organizer(mut self, o: &str) -> Self {
            self.organizer = Some(o.to_owned());
            self
        }
        fn attendees(mut self, a: &[&str]) -> Self {
            self.attendees = a.iter().map(|s| s.to_string()).collect();
            self
        }
    }

    fn events(list: Vec<(&str, Vec<Event>)>) -> CalendarEvents {
        list.into_iter()
            .map(|(mb, evs)| (own_cal(mb), evs))
            .collect()
    }

    fn members(d: &Desired, queue: &str) -> Vec<Member> {
        d.queues[&q(queue)].keys().cloned().collect()
    }

    fn members_at(cfg: &Config, evs: &CalendarEvents, queue: &str, t: &str) -> Vec<Member> {
        members(&desired_at(cfg, evs, ts(t)), queue)
    }

    // ---- activity, matching ----------------------------------------------------------------

    #[test]
    fn own_calendar_shift_makes_its_owner_an_agent_member() {
        let cfg = config();
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let d = desired_at(&cfg, &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(members(&d, "600"), vec![ext("201")]);
        assert_eq!(members(&d, "700"), Vec::<Member>::new());
        let dm = &d.queues[&q("600")][&ext("201")];
        assert_eq!(dm.person.as_deref(), Some("Jan de Vries"));
        assert_eq!(
            dm.why,
            vec![Why {
                kind: WhyKind::Event,
                rule: "support shifts".into(),
                calendar: "jan@acme.nl".into(),
                subject: "Support".into(),
                from: ts("2026-03-30T07:00:00Z"),
                to: ts("2026-03-30T15:00:00Z"),
            }]
        );
        assert_eq!(
            dm.why[0].describe(Amsterdam),
            "rule \"support shifts\": \"Support\" in jan@acme.nl 2026-03-30 09:00–17:00"
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn active_from_start_minus_lead_until_end_plus_lag_exclusive() {
        let cfg = config().rules(vec![shifts().lead_lag(2, 5)]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let cases = [
            ("2026-03-30T06:57:59Z", false, "before lead"),
            ("2026-03-30T06:58:00Z", true, "at start − lead"),
            ("2026-03-30T15:04:59Z", true, "inside lag"),
            ("2026-03-30T15:05:00Z", false, "at end + lag (exclusive)"),
        ];
        for (t, active, situation) in cases {
            let got = !members_at(&cfg, &evs, "600", t).is_empty();
            assert_eq!(got, active, "{situation} at {t}");
        }
    }

    #[test]
    fn events_that_do_not_count() {
        let cfg = config();
        let t = "2026-03-30T08:00:00Z";
        let cases = [
            ("cancelled", support_shift().cancelled()),
            ("free", support_shift().show(ShowAs::Free)),
            (
                "other category",
                event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("Lunch"),
            ),
            (
                "no category",
                event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z"),
            ),
            (
                "zero length",
                event("Support", "2026-03-30T08:00:00Z", "2026-03-30T08:00:00Z")
                    .category("Support"),
            ),
        ];
        for (situation, ev) in cases {
            let evs = events(vec![("jan@acme.nl", vec![ev])]);
            assert!(members_at(&cfg, &evs, "600", t).is_empty(), "{situation}");
        }
    }

    #[test]
    fn busy_states_other_than_free_all_count() {
        // Only the shift rule: an oof shift would otherwise also trigger "away", which wins.
        let cfg = config().rules(vec![shifts()]);
        for s in [
            ShowAs::Busy,
            ShowAs::Tentative,
            ShowAs::Oof,
            ShowAs::WorkingElsewhere,
            ShowAs::Unknown,
        ] {
            let evs = events(vec![("jan@acme.nl", vec![support_shift().show(s)])]);
            assert_eq!(
                members_at(&cfg, &evs, "600", "2026-03-30T08:00:00Z"),
                vec![ext("201")],
                "{s:?}"
            );
        }
    }

    #[test]
    fn free_event_counts_when_the_match_names_free() {
        let cfg = config().rules(vec![shifts().show_as(&[ShowAs::Free, ShowAs::Busy])]);
        let evs = events(vec![(
            "jan@acme.nl",
            vec![support_shift().show(ShowAs::Free)],
        )]);
        assert_eq!(
            members_at(&cfg, &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("201")]
        );
    }

    #[test]
    fn match_is_an_and_of_its_criteria() {
        let mut r = shifts().subject("DIENST").show_as(&[ShowAs::Busy]);
        r.matcher.subject_regex = Some(Regex::new(r"^Support").expect("test regex"));
        let cfg = config().rules(vec![r]);
        let t = "2026-03-30T08:00:00Z";
        let base = |subject: &str| {
            event(subject, "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("SUPPORT")
        };
        let cases = [
            ("all criteria hold", base("Support dienst"), true),
            ("subject substring missing", base("Support shift"), false),
            ("regex fails", base("Late dienst Support"), false),
            (
                "show_as differs",
                base("Support dienst").show(ShowAs::Tentative),
                false,
            ),
        ];
        for (situation, ev, want) in cases {
            let evs = events(vec![("jan@acme.nl", vec![ev])]);
            assert_eq!(
                !members_at(&cfg, &evs, "600", t).is_empty(),
                want,
                "{situation}"
            );
        }
    }

    #[test]
    fn private_event_is_described_as_private_event() {
        let cfg = config();
        let evs = events(vec![(
            "jan@acme.nl",
            vec![
                event(
                    "Support + dentist",
                    "2026-03-30T07:00:00Z",
                    "2026-03-30T15:00:00Z",
                )
                .category("Support")
                .private(),
            ],
        )]);
        let d = desired_at(&cfg, &evs, ts("2026-03-30T08:00:00Z"));
        let why = &d.queues[&q("600")][&ext("201")].why[0];
        assert_eq!(why.subject, "private event");
        assert!(!why.describe(Amsterdam).contains("dentist"));
    }

    #[test]
    fn events_in_calendars_no_rule_reads_are_ignored() {
        let cfg = config();
        let evs = events(vec![("someone@else.nl", vec![support_shift()])]);
        assert!(members_at(&cfg, &evs, "600", "2026-03-30T08:00:00Z").is_empty());
    }

    // ---- all-day and DST -------------------------------------------------------------------

    #[test]
    fn all_day_events_run_local_midnight_to_local_midnight() {
        let cases = [
            // (situation, date, next date, UTC start, UTC end, hours)
            (
                "ordinary winter day",
                "2026-01-15",
                "2026-01-16",
                "2026-01-14T23:00:00Z",
                "2026-01-15T23:00:00Z",
                24,
            ),
            (
                "spring forward: 23 hours",
                "2026-03-29",
                "2026-03-30",
                "2026-03-28T23:00:00Z",
                "2026-03-29T22:00:00Z",
                23,
            ),
            (
                "fall back: 25 hours",
                "2026-10-25",
                "2026-10-26",
                "2026-10-24T22:00:00Z",
                "2026-10-25T23:00:00Z",
                25,
            ),
        ];
        for (situation, d0, d1, from, to, hours) in cases {
            let cfg = config().rules(vec![shifts()]);
            let evs = events(vec![(
                "jan@acme.nl",
                vec![all_day("Support", d0, d1).category("Support")],
            )]);
            let (from, to) = (ts(from), ts(to));
            assert_eq!((to - from).num_hours(), hours, "{situation}");
            let before = from - TimeDelta::seconds(1);
            let last = to - TimeDelta::seconds(1);
            assert!(
                desired_at(&cfg, &evs, before).queues[&q("600")].is_empty(),
                "{situation}: before"
            );
            assert!(
                !desired_at(&cfg, &evs, from).queues[&q("600")].is_empty(),
                "{situation}: first instant"
            );
            assert!(
                !desired_at(&cfg, &evs, last).queues[&q("600")].is_empty(),
                "{situation}: last instant"
            );
            assert!(
                desired_at(&cfg, &evs, to).queues[&q("600")].is_empty(),
                "{situation}: end"
            );
            assert_eq!(
                next_boundary(&cfg, &evs, before),
                Some(from),
                "{situation}: boundary in"
            );
            assert_eq!(
                next_boundary(&cfg, &evs, from),
                Some(to),
                "{situation}: boundary out"
            );
        }
    }

    #[test]
    fn local_midnight_that_does_not_exist_or_repeats_is_handled() {
        use chrono_tz::America::Havana;
        use chrono_tz::Pacific::Apia;
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        // Samoa skipped 30 December 2011 entirely: its "midnight" is the first instant of the 31st.
        assert_eq!(
            local_midnight(date("2011-12-30"), Apia),
            ts("2011-12-30T10:00:00Z")
        );
        // Cuba springs forward at midnight (00:00 → 01:00): the day starts at 01:00 CDT.
        let spring = local_midnight(date("2026-03-08"), Havana);
        assert_eq!(spring, ts("2026-03-08T05:00:00Z"));
        // Cuba falls back at 01:00 CDT to 00:00 CST: midnight happens twice; take the earlier.
        let fall = local_midnight(date("2026-11-01"), Havana);
        assert_eq!(fall, ts("2026-11-01T04:00:00Z"));
    }

    // ---- who: subject, attendees, organizer ------------------------------------------------

    fn piket(subject: &str) -> Event {
        event(subject, "2026-03-30T16:00:00Z", "2026-03-31T06:00:00Z")
    }

    const NIGHT: &str = "2026-03-30T20:00:00Z";

    fn on_call_members(cfg: &Config, subject: &str) -> (Vec<Member>, Vec<ScheduleWarning>) {
        let evs = events(vec![(PIKET, vec![piket(subject)])]);
        let d = desired_at(cfg, &evs, ts(NIGHT));
        (members(&d, "700"), d.warnings)
    }

    #[test]
    fn subject_names_persons_by_whole_phrase() {
        let jose = Person {
            aliases: vec!["Özil".into()],
            ..person("José Álvarez", "jose@acme.nl", "203")
        };
        let cfg = config().persons(vec![jan(), piet(), jose]);
        let cases: &[(&str, &str, &[&str])] = &[
            ("alias in subject", "Piket Jan", &["201"]),
            ("full name, other case", "PIKET jan de vries", &["201"]),
            ("alias with punctuation around", "piket (JdV)", &["201"]),
            (
                "accent in config, none in subject",
                "piket jose alvarez",
                &["203"],
            ),
            ("accent in subject, none in alias", "piket Özil", &["203"]),
            ("no accent on either side", "piket ozil", &["203"]),
            ("extra white space", "piket José   Álvarez", &["203"]),
            (
                "two persons by their own names",
                "Piket Jan + Piet",
                &["201", "202"],
            ),
            ("name inside a longer word", "Piket Janneke", &[]),
            ("name glued to digits", "Piket Jan2", &[]),
            ("url syntax selects nothing", "piket 201&action=clean", &[]),
            ("an extension is not a name", "piket 202", &[]),
        ];
        for (situation, subject, want) in cases {
            let (got, warnings) = on_call_members(&cfg, subject);
            let want: Vec<Member> = want.iter().map(|e| ext(e)).collect();
            assert_eq!(got, want, "{situation}: {subject}");
            let unknown = warnings
                .iter()
                .any(|w| matches!(w, ScheduleWarning::UnknownPerson { .. }));
            assert_eq!(unknown, want.is_empty(), "{situation}: unknown warning");
        }
    }

    #[test]
    fn alias_shared_by_two_persons_skips_the_event_with_a_warning() {
        let jan_jansen = Person {
            aliases: vec!["Jan".into()],
            ..person("Jan Jansen", "jjansen@acme.nl", "204")
        };
        let cfg = config().persons(vec![jan(), piet(), jan_jansen]);
        let (got, warnings) = on_call_members(&cfg, "Piket Jan");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let ScheduleWarning::AmbiguousName { name, persons, .. } = &warnings[0] else {
            panic!("expected an ambiguity warning, got {warnings:?}");
        };
        assert_eq!(name, "jan");
        assert_eq!(
            persons,
            &["Jan de Vries".to_owned(), "Jan Jansen".to_owned()]
        );
        let text = warnings[0].to_string();
        for part in [
            "on call",
            "Piket Jan",
            PIKET,
            "2026-03-30 16:00Z",
            "Jan Jansen",
        ] {
            assert!(text.contains(part), "{text:?} lacks {part:?}");
        }
        // The full name settles what the shared first name leaves open.
        let (got, warnings) = on_call_members(&cfg, "Piket Jan Jansen");
        assert_eq!(got, vec![ext("204")]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn unknown_person_warns_once_per_event_and_names_it() {
        let cfg = config();
        let (got, warnings) = on_call_members(&cfg, "Piket Klaas\n\x1b[31m");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let text = warnings[0].to_string();
        assert!(text.contains("piket@acme.nl"), "{text}");
        assert!(text.contains("Piket Klaas"), "{text}");
        assert!(
            !text.contains('\n') && !text.contains('\x1b'),
            "unsanitised: {text:?}"
        );
    }

    #[test]
    fn warnings_cover_events_not_yet_over_only() {
        let cfg = config();
        let evs = events(vec![(PIKET, vec![piket("Piket Klaas")])]);
        let cases = [
            ("before the event", "2026-03-30T10:00:00Z", 1),
            ("during the event", NIGHT, 1),
            ("after the event", "2026-03-31T07:00:00Z", 0),
        ];
        for (situation, t, n) in cases {
            assert_eq!(
                desired_at(&cfg, &evs, ts(t)).warnings.len(),
                n,
                "{situation}"
            );
        }
    }

    #[test]
    fn attendees_and_organizer_name_persons_by_mailbox() {
        let by = |who| config().rules(vec![on_call().who(who)]);
        let ev = piket("Piket")
            .organizer("piet@acme.nl")
            .attendees(&["jan@acme.nl", "stranger@x.nl"]);
        let evs = events(vec![(PIKET, vec![ev])]);
        let at = |cfg: &Config| members(&desired_at(cfg, &evs, ts(NIGHT)), "700");
        assert_eq!(at(&by(Who::Attendees)), vec![ext("201")]);
        assert_eq!(at(&by(Who::Organizer)), vec![ext("202")]);
        let nobody = events(vec![(PIKET, vec![piket("Piket Jan")])]);
        let d = desired_at(&by(Who::Organizer), &nobody, ts(NIGHT));
        assert!(
            members(&d, "700").is_empty(),
            "subject is not read for who = organizer"
        );
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn mobile_members_come_from_the_config_only() {
        let cfg = config().rules(vec![on_call().mobile()]);
        let (got, warnings) = on_call_members(&cfg, "Piket Jan 0699999999");
        assert_eq!(got, vec![cu("0612345678")]);
        assert!(warnings.is_empty());
        // Piet has no mobile: skipped, with a warning naming him and the event.
        let (got, warnings) = on_call_members(&cfg, "Piket Piet 0699999999");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(
            matches!(&warnings[0], ScheduleWarning::NoMobile { person, .. } if person == "Piet Bakker")
        );
        assert!(warnings[0].to_string().contains("Piet Bakker"));
    }

    // ---- absence, static, fallback ---------------------------------------------------------

    fn jan_away() -> Event {
        all_day("Vakantie", "2026-03-30", "2026-03-31").show(ShowAs::Oof)
    }

    #[test]
    fn absence_beats_membership_in_every_queue_and_as_every_member() {
        let cfg = config().rules(vec![shifts(), on_call().mobile(), on_call(), away()]);
        let evs = events(vec![
            ("jan@acme.nl", vec![support_shift(), jan_away()]),
            ("piet@acme.nl", vec![support_shift()]),
            (PIKET, vec![piket("Piket Jan")]),
        ]);
        let d = desired_at(&cfg, &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(
            members(&d, "600"),
            vec![ext("202")],
            "Jan absent, Piet stays"
        );
        let d = desired_at(&cfg, &evs, ts(NIGHT));
        assert!(
            members(&d, "700").is_empty(),
            "neither Jan's agent nor his mobile"
        );
        // The next day the absence is over and the night shift (till 08:00 CEST) counts again.
        let d = desired_at(&cfg, &evs, ts("2026-03-30T22:30:00Z"));
        assert_eq!(members(&d, "700"), vec![ext("201"), cu("0612345678")]);
    }

    #[test]
    fn absence_limited_to_its_queues() {
        let away_from_700 = away().queues(&["700"]);
        let cfg = config().rules(vec![shifts(), away_from_700]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        assert_eq!(
            members_at(&cfg, &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("201")]
        );
    }

    #[test]
    fn static_members_stay_even_when_their_person_is_absent() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201"), ext("299")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        let d = desired_at(&cfg, &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(members(&d, "600"), vec![ext("201"), ext("299")]);
        let why = &d.queues[&q("600")][&ext("201")].why;
        assert_eq!(
            why.len(),
            1,
            "the absent person's rule is not a reason: {why:?}"
        );
        assert_eq!(why[0].kind, WhyKind::Static);
        assert_eq!(why[0].rule, "static");
    }

    #[test]
    fn static_member_also_desired_by_a_rule_lists_both_reasons() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let d = desired_at(&cfg, &evs, ts("2026-03-30T08:00:00Z"));
        let kinds: Vec<WhyKind> = d.queues[&q("600")][&ext("201")]
            .why
            .iter()
            .map(|w| w.kind)
            .collect();
        assert_eq!(kinds, vec![WhyKind::Event, WhyKind::Static]);
    }

    #[test]
    fn fallback_only_when_nothing_else_is_desired() {
        let cfg = config().queue_with("600", |qc| qc.fallback = vec![ext("200")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let cases = [
            ("during the shift", "2026-03-30T08:00:00Z", vec![ext("201")]),
            (
                "outside the shift",
                "2026-03-30T18:00:00Z",
                vec![ext("200")],
            ),
        ];
        for (situation, t, want) in cases {
            assert_eq!(members_at(&cfg, &evs, "600", t), want, "{situation}");
        }
        let d = desired_at(&cfg, &evs, ts("2026-03-30T18:00:00Z"));
        assert_eq!(
            d.queues[&q("600")][&ext("200")].why[0].kind,
            WhyKind::Fallback
        );
        // Absence empties the queue, so the fallback steps in.
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        assert_eq!(
            members_at(&cfg, &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("200")]
        );
    }

    // ---- calendars, window -----------------------------------------------------------------

    #[test]
    fn calendars_needed_lists_own_and_shared_once_sorted() {
        let cfg = config();
        assert_eq!(
            calendars_needed(&cfg),
            vec![
                own_cal("jan@acme.nl"),
                own_cal("piet@acme.nl"),
                own_cal(PIKET)
            ]
        );
        let only_shared = config().rules(vec![on_call(), on_call()]);
        assert_eq!(calendars_needed(&only_shared), vec![own_cal(PIKET)]);
    }

    #[test]
    fn calendars_feeding_counts_member_and_absence_rules() {
        let cfg = config().rules(vec![on_call(), away()]);
        let feeding = calendars_feeding(&cfg);
        let own: BTreeSet<CalendarRef> = [own_cal("jan@acme.nl"), own_cal("piet@acme.nl")].into();
        assert_eq!(feeding[&q("600")], own, "only the absence rule touches 600");
        let mut all = own.clone();
        all.insert(own_cal(PIKET));
        assert_eq!(feeding[&q("700")], all);
        let none = config().rules(vec![]);
        assert!(calendars_feeding(&none)[&q("600")].is_empty());
    }

    #[test]
    fn read_window_looks_back_a_day_or_the_largest_lag() {
        let now = ts("2026-03-30T12:00:00Z");
        let cfg = config();
        assert_eq!(
            read_window(&cfg, now),
            (ts("2026-03-29T12:00:00Z"), ts("2026-04-13T12:00:00Z"))
        );
        let cfg = config().rules(vec![shifts().lead_lag(0, 36 * 60)]);
        assert_eq!(read_window(&cfg, now).0, ts("2026-03-29T00:00:00Z"));
    }

    // ---- boundaries ------------------------------------------------------------------------

    #[test]
    fn next_boundary_is_the_next_change_of_any_member_set() {
        let cfg = config().rules(vec![shifts().lead_lag(2, 0), away()]);
        let evs = events(vec![
            (
                "jan@acme.nl",
                vec![
                    support_shift(),
                    // Back to back with the first: no change at 15:00Z.
                    event("Support", "2026-03-30T15:00:00Z", "2026-03-30T16:00:00Z")
                        .category("Support"),
                ],
            ),
            (
                "piet@acme.nl",
                vec![
                    // Starts and ends while Piet is away all day: never changes anything.
                    event("Support", "2026-03-31T08:00:00Z", "2026-03-31T09:00:00Z")
                        .category("Support"),
                    all_day("Ziek", "2026-03-31", "2026-04-01").show(ShowAs::Oof),
                ],
            ),
        ]);
        let cases = [
            (
                "before the shift: lead applies",
                "2026-03-30T06:00:00Z",
                Some("2026-03-30T06:58:00Z"),
            ),
            (
                "at the boundary itself: strictly after",
                "2026-03-30T06:58:00Z",
                Some("2026-03-30T16:00:00Z"),
            ),
            (
                "across a seamless hand-over",
                "2026-03-30T10:00:00Z",
                Some("2026-03-30T16:00:00Z"),
            ),
            (
                "nothing that changes anything later",
                "2026-03-30T16:00:00Z",
                None,
            ),
        ];
        for (situation, after, want) in cases {
            assert_eq!(
                next_boundary(&cfg, &evs, ts(after)),
                want.map(ts),
                "{situation}"
            );
        }
        assert_eq!(next_boundary(&cfg, &CalendarEvents::new(), ts(NIGHT)), None);
    }

    #[test]
    fn boundary_ignores_changes_of_provenance_only() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        assert_eq!(next_boundary(&cfg, &evs, ts("2026-03-30T00:00:00Z")), None);
    }

    #[test]
    fn next_boundary_over_a_busy_fortnight_of_unchanging_shifts() {
        // 3000 back-to-back quarter-hour shifts for Jan: his membership never changes until
        // the last one ends, so every edge in between must be looked at and passed over.
        let cfg = config().rules(vec![shifts()]);
        let base = ts("2026-03-30T00:00:00Z");
        let shifts: Vec<Event> = (0..3000)
            .map(|i| {
                let s = base + TimeDelta::minutes(15 * i);
                let e = s + TimeDelta::minutes(15);
                event("Support", &s.to_rfc3339(), &e.to_rfc3339()).category("Support")
            })
            .collect();
        let evs = events(vec![("jan@acme.nl", shifts)]);
        assert_eq!(
            next_boundary(&cfg, &evs, base),
            Some(base + TimeDelta::minutes(15 * 3000))
        );
    }

    // ---- properties ------------------------------------------------------------------------

    /// Small random worlds: shifts and absences for Jan and Piet on a grid of quarter hours.
    fn arb_events() -> impl Strategy<Value = CalendarEvents> {
        let one = (0usize..2, 0i64..40, 0i64..12, any::<bool>(), any::<bool>());
        proptest::collection::vec(one, 0..12).prop_map(|raw| {
            let base = ts("2026-03-30T06:00:00Z");
            let mut out = CalendarEvents::new();
            for (who, start, len, absent, cancelled) in raw {
                let mb = ["jan@acme.nl", "piet@acme.nl"][who];
                let s = base + TimeDelta::minutes(15 * start);
                let e = s + TimeDelta::minutes(15 * len);
                let mut ev = event("Support", &s.to_rfc3339(), &e.to_rfc3339()).category("Support");
                if absent {
                    ev = ev.show(ShowAs::Oof).category("Vrij");
                    ev.categories.retain(|c| c != "Support");
                }
                ev.is_cancelled = cancelled;
                out.entry(own_cal(mb)).or_default().push(ev);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn next_boundary_is_exactly_the_first_change(evs in arb_events(), after in 0i64..48) {
            let cfg = config()
                .rules(vec![shifts().lead_lag(5, 10), away().queues(&["600"])])
                .queue_with("600", |qc| qc.fallback = vec![ext("200")]);
            let base = ts("2026-03-30T06:00:00Z");
            let after = base + TimeDelta::minutes(15 * after);
            let sets = |t| -> BTreeMap<QueueNo, Vec<Member>> {
                desired_at(&cfg, &evs, t).queues.into_iter()
                    .map(|(k, v)| (k, v.into_keys().collect())).collect()
            };
            let start = sets(after);
            let b = next_boundary(&cfg, &evs, after);
            // Every minute up to the boundary (or the end of the world) looks like `after`.
            let horizon = b.unwrap_or(base + TimeDelta::hours(16));
            let mut t = after + TimeDelta::minutes(1);
            while t < horizon {
                prop_assert_eq!(&sets(t), &start, "changed at {} before boundary {:?}", t, b);
                t += TimeDelta::minutes(1);
            }
            if let Some(b) = b {
                prop_assert!(b > after);
                prop_assert_ne!(sets(b), start, "no change at boundary {}", b);
            }
        }

        #[test]
        fn desired_members_are_configured_members_only(evs in arb_events(), t in 0i64..64) {
            let cfg = config().rules(vec![shifts(), away()]);
            let t = ts("2026-03-30T06:00:00Z") + TimeDelta::minutes(15 * t);
            let allowed = [ext("201"), ext("202")];
            for set in desired_at(&cfg, &evs, t).queues.values() {
                for m in set.keys() {
                    prop_assert!(allowed.contains(m), "{} is no configured member", m);
                }
            }
        }
    }
}
